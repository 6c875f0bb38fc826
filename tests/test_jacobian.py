"""`lossgrad jacobian`: values and Jacobians against finite differences and worked values, and the chain rule
that links the ce gradients with respect to probabilities and to logits."""

import math

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, lossgrad as run
from lossgrad.activations import ACTIVATIONS


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_jacobian_matches_finite_differences(name):
    x = np.array([-2.5, -0.3, 0.7, 1.9])
    values, jac = ACTIVATIONS[name].fn(x)
    h = 1e-6
    fd = np.column_stack([(ACTIVATIONS[name].fn(x + h * e)[0] - ACTIVATIONS[name].fn(x - h * e)[0]) / (2 * h)
                          for e in np.eye(4)])
    np.testing.assert_allclose(jac, fd, rtol=1e-7, atol=1e-9)


def test_softmax_worked_values():
    # by hand: s = e^x / sum e^x; J = diag(s) - s s^T, each row sums to 0
    out = run("jacobian", "softmax", "--x", "1,2,3", "-f", "json").json()
    e = [math.exp(v) for v in (1, 2, 3)]
    s = [v / sum(e) for v in e]
    assert out["values"] == pytest.approx(s, rel=1e-15)
    assert out["jacobian"][0] == pytest.approx([s[0] - s[0] ** 2, -s[0] * s[1], -s[0] * s[2]], rel=1e-14)
    assert np.allclose(np.sum(out["jacobian"], axis=1), 0, atol=1e-16)


def test_sigmoid_and_tanh_far_out_keep_their_tiny_derivatives():
    # sigma'(40) = e^-40 / (1 + e^-40)^2 = 4.248354255291589e-18 (mpmath); 1 - tanh(20)^2 = 4 e^-40 / (1 + e^-40)^2
    out = run("jacobian", "sigmoid", "--x", "0,40", "-f", "json").json()
    assert out["jacobian"] == [[0.25, 0.0], [0.0, pytest.approx(4.248354255291589e-18, rel=1e-15)]]
    out = run("jacobian", "tanh", "--x", "20", "-f", "json").json()
    assert out["jacobian"][0][0] == pytest.approx(4 * 4.248354255291589e-18, rel=1e-14)


def test_relu_at_zero_is_zero():
    out = run("jacobian", "relu", "--x", "-1,0,2", "-f", "json").json()
    assert out["values"] == [0.0, 0.0, 2.0] and np.diag(out["jacobian"]).tolist() == [0.0, 0.0, 1.0]


def test_chain_rule_from_probabilities_to_logits():
    # grad with respect to the logits = J_softmax^T (grad with respect to the probabilities)
    z = np.array([0.3, -1.2, 2.0])
    s, jac = ACTIVATIONS["softmax"].fn(z)
    y = np.array([0.0, 0.0, 1.0])
    grad_p = lossgrad.ce([y], [s], reduction="sum").grad[0]
    grad_z = lossgrad.ce([2], [z], from_logits=True, reduction="sum").grad[0]
    np.testing.assert_allclose(jac.T @ grad_p, grad_z, rtol=1e-12, atol=1e-15)


def test_table_and_errors():
    r = run("jacobian", "softmax", "--x", "1,2", "-f", "table")
    assert "J = diag(s) − s·sᵀ" in r.out and "j=1" in r.out
    assert_usage_error(run("jacobian", "gelu", "--x", "1"), "unknown activation 'gelu'")
    assert_usage_error(run("jacobian", "softmax"), "--x", "required")
    assert_usage_error(run("jacobian", "softmax", "--x", "1;2"), "--x", "one vector")
    assert_usage_error(run("jacobian", "softmax", "--x", "1,x"), "--x: value 2")
    # (a long vector's matrix would take gigabytes: 20,000 values, 400 million entries)
    assert_usage_error(run("jacobian", "softmax", "--x", ",".join(["0.5"] * 20000)), "--x: has 20,000 values",
                       "up to 1,024")
    r = run("jacobian", "softmax", "--x", ",".join(["0.5"] * 1024), "-f", "json")
    assert r.code == 0 and len(r.json()["jacobian"]) == 1024


def test_ce_explain_shows_the_chain_rule():
    r = run("ce", "--from-logits", "--explain", "-y", "2", "-p", "0.3,-1.2,2.0", "-f", "table")
    assert "lossgrad jacobian softmax" in r.out and "= sᵢⱼ·Σₖ yᵢₖ − yᵢⱼ" in r.out
