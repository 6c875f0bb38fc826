"""poisson --full: the log y! term as the mathematics has it and as PyTorch approximates it, worked by hand."""

import math

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, lossgrad as run


def test_full_adds_log_factorial_and_leaves_the_gradient():
    # by hand: log 3! = log 6, log 0! = log 1! = 0, log Γ(3/2) = log(√π/2)
    y, p = [3.0, 0.0, 1.0, 0.5], [2.0, 0.7, 1.5, 0.25]
    plain = lossgrad.poisson(y, p, reduction="none")
    full = lossgrad.poisson(y, p, reduction="none", full=True)
    added = [math.log(6), 0.0, 0.0, math.log(math.sqrt(math.pi) / 2)]
    np.testing.assert_allclose(full.losses - plain.losses, added, rtol=1e-15, atol=1e-16)
    assert full.grad.tolist() == plain.grad.tolist()


def test_full_at_its_minimum_is_half_log_two_pi_y_and_more():
    # by hand: at p = y = 1 the loss is 1 − 0 + log 1! = 1; at p = y = 2 it is 2 − 2 log 2 + log 2
    r = lossgrad.poisson([1.0, 2.0], [1.0, 2.0], reduction="none", full=True)
    assert r.losses[0] == 1.0
    assert r.losses[1] == pytest.approx(2 - math.log(2), rel=1e-15)
    # and from log rates: e^0 − 0 + log 1! = 1
    assert lossgrad.poisson([1.0], [0.0], from_logits=True, full=True).value == 1.0


def test_torch_full_is_stirling_above_one_and_nothing_below():
    # by hand: PyTorch adds y log y − y + ½ log(2πy) for y > 1 only: 3 log 3 − 3 + ½ log(6π) at y = 3, 0 at y = ½
    y, z = [3.0, 0.5, 1.0], [0.25, -1.0, 0.5]
    plain = lossgrad.poisson(y, z, from_logits=True, reduction="none", convention="torch")
    full = lossgrad.poisson(y, z, from_logits=True, reduction="none", convention="torch", full=True)
    stirling = 3 * math.log(3) - 3 + 0.5 * math.log(6 * math.pi)
    np.testing.assert_allclose(full.losses - plain.losses, [stirling, 0.0, 0.0], rtol=1e-15, atol=0)
    # Stirling's approximation falls short of log 3! by about 1/36
    exact = lossgrad.poisson(y, z, from_logits=True, reduction="none", full=True)
    assert exact.losses[0] - full.losses[0] == pytest.approx(math.log(6) - stirling, rel=1e-12)
    assert 1 / 36 - 1 / 3240 < math.log(6) - stirling < 1 / 36


@pytest.mark.parametrize("conv", ["keras", "tf-keras"])
def test_keras_has_no_full_term(conv):
    with pytest.raises(lossgrad.OptionError, match="has no log y! term"):
        lossgrad.poisson([1.0], [1.0], convention=conv, full=True)
    assert_usage_error(run("poisson", "-y", "1", "-p", "1", "--full", "-c", conv), "--full", "--convention torch")


def test_full_applies_to_poisson_only():
    with pytest.raises(lossgrad.OptionError, match="applies to poisson, not to mse"):
        lossgrad.mse([1.0], [1.0], full=True)
    assert_usage_error(run("mse", "-y", "1", "-p", "1", "--full"), "--full")


def test_full_explains_both_terms():
    r = run("poisson", "-y", "3", "-p", "2", "--full", "--explain", "-c", "torch", "-f", "json")
    assert r.code == 0, r.err
    assert any("Stirling" in line for line in r.json()["formulas"])
