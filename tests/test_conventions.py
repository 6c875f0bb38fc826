"""The frameworks' conventions where options cross: class weights with label smoothing and ignore_index, class
weights on one-hot and soft rows, PyTorch's index-only nll, and the one rule for a framework's NaN (the result,
and one warning naming the convention, the place and the reason). The framework numbers themselves are in
tests/golden (test_golden); these check the formulas the conventions follow, worked with numpy from the
frameworks' documented definitions, and the behaviour around them."""

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error
from lossgrad.reduction import Accumulator, warnings

RNG = np.random.default_rng(20261128)
Z = RNG.normal(scale=2, size=(7, 4))
IDX = np.array([0, 1, 2, 3, 1, 2, 0])
W = np.array([0.5, 2.0, 3.0, 0.25])


def log_softmax(z):
    s = z - z.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def torch_smoothed_weighted(z, idx, w, s):
    """PyTorch's cross_entropy with weight= and label_smoothing= (LossNLL.cpp): per sample
    (1 − s)·w[y]·(−log p_y) + (s/C)·Σₖ wₖ·(−log pₖ); its mean divides the sum by Σ w[y]."""
    lp = log_softmax(z)
    c = z.shape[1]
    rows = np.arange(len(idx))
    per = (1 - s) * w[idx] * -lp[rows, idx] + (s / c) * (w * -lp).sum(axis=1)
    return per, per.sum() / w[idx].sum()


@pytest.mark.parametrize("s", [0.0, 0.1, 0.3])
def test_torch_smoothing_weighs_each_class_inside(s):
    per, mean = torch_smoothed_weighted(Z, IDX, W, s)
    r = lossgrad.ce(IDX, Z, from_logits=True, convention="torch", label_smoothing=s, class_weights=W,
                    reduction="none")
    np.testing.assert_allclose(r.losses, per, rtol=1e-13)
    m = lossgrad.ce(IDX, Z, from_logits=True, convention="torch", label_smoothing=s, class_weights=W)
    assert m.n == pytest.approx(W[IDX].sum(), rel=1e-15)
    assert m.value == pytest.approx(mean, rel=1e-13)


def test_torch_smoothing_weights_gradient_matches_finite_differences():
    def value(z):
        return lossgrad.ce(IDX, z, from_logits=True, convention="torch", label_smoothing=0.2, class_weights=W).value

    g = lossgrad.ce(IDX, Z, from_logits=True, convention="torch", label_smoothing=0.2, class_weights=W).grad
    h = 1e-6
    for i, j in [(0, 0), (3, 2), (6, 1)]:
        zp, zm = Z.copy(), Z.copy()
        zp[i, j] += h
        zm[i, j] -= h
        assert g[i, j] == pytest.approx((value(zp) - value(zm)) / (2 * h), rel=1e-6, abs=1e-9)


def test_torch_probability_rows_smooth_then_weigh():
    """Probability targets: −Σₖ wₖ·ỹₖ·log pₖ with ỹ the smoothed row, the mean over N (PyTorch's prob-target
    branch), so smoothing comes before the weights."""
    y = RNG.dirichlet(np.ones(4), size=7)
    s = 0.2
    want = -(W * (y * (1 - s) + s / 4) * log_softmax(Z)).sum(axis=1)
    r = lossgrad.ce(y, Z, from_logits=True, convention="torch", label_smoothing=s, class_weights=W,
                    labels="onehot")
    np.testing.assert_allclose(r.losses, want, rtol=1e-13)
    assert r.n == 7


def test_torch_nll_one_hot_rows_are_their_class():
    lp = log_softmax(Z)
    by_index = lossgrad.nll(IDX, lp, convention="torch", class_weights=W)
    by_rows = lossgrad.nll(np.eye(4)[IDX], lp, convention="torch", class_weights=W)
    assert by_rows.value == by_index.value and by_rows.n == by_index.n == pytest.approx(W[IDX].sum())
    np.testing.assert_array_equal(by_rows.grad, by_index.grad)


def test_torch_nll_soft_rows_are_a_mode_it_lacks(cli):
    r = cli("nll", "-c", "torch", "-y", "0.5,0.5;0,1", "-p", "-0.7,-0.7;-1,-0.5")
    assert_usage_error(r, "not one-hot", "nll_loss has no probability-target mode", "row 1, value 1")
    # the exact mathematics has soft targets: −Σ y log p
    assert cli("nll", "-y", "0.5,0.5;0,1", "-p", "-0.7,-0.7;-1,-0.5").code == 0


@pytest.mark.parametrize("conv", ["keras", "tf-keras"])
@pytest.mark.parametrize("from_logits", [True, False])
def test_keras_class_weights_on_one_hot_rows_are_the_argmax_class(conv, from_logits):
    p = Z if from_logits else np.exp(log_softmax(Z))
    by_index = lossgrad.ce(IDX, p, from_logits=from_logits, convention=conv, class_weights=W)
    by_rows = lossgrad.ce(np.eye(4)[IDX], p, from_logits=from_logits, convention=conv, class_weights=W)
    assert by_rows.value == pytest.approx(by_index.value, rel=1e-14) and by_rows.n == by_index.n == 7
    soft = np.full((7, 4), 0.1)
    soft[np.arange(7), IDX] = 0.7
    weighted = lossgrad.ce(soft, p, from_logits=from_logits, convention=conv, class_weights=W, reduction="none")
    plain = lossgrad.ce(soft, p, from_logits=from_logits, convention=conv, reduction="none")
    np.testing.assert_allclose(weighted.losses, plain.losses * W[IDX], rtol=1e-15)


def test_keras_class_weights_are_float32():
    """fit(class_weight=...) makes float32 sample weights (floatx): 0.1 weighs float32(0.1)."""
    w = np.array([0.1, 0.7, 1.3, 2.9])
    plain = lossgrad.ce(IDX, Z, from_logits=True, convention="keras", reduction="none")
    weighted = lossgrad.ce(IDX, Z, from_logits=True, convention="keras", class_weights=w, reduction="none")
    np.testing.assert_array_equal(weighted.losses, plain.losses * w.astype(np.float32).astype(np.float64)[IDX])


def test_focal_gamma_zero_under_tensorflow_is_nan_where_one_minus_pt_is_zero():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    z = np.array([40.0, -40.0, 0.5, 2.0])  # σ(40) rounds to 1: 1 − p_t = 0 exactly for the first two
    for conv in ("keras", "tf-keras"):
        r = lossgrad.focal(y, z, from_logits=True, gamma=0.0, convention=conv, reduction="none")
        assert np.isnan(r.grad[:2]).all() and np.isfinite(r.grad[2:]).all()
        assert len(r.warnings) == 1 and "2 NaN gradient elements" in r.warnings[0] and "γ = 0" in r.warnings[0]
        # elsewhere γ = 0 is bce: its own gradient σ(z) − y
        bce = lossgrad.bce(y, z, from_logits=True, convention=conv, reduction="none")
        np.testing.assert_array_equal(r.grad[2:], bce.grad[2:])
    for conv in ("torch", "optax"):  # PyTorch's pow returns zeros for a zero exponent; optax works in log space
        r = lossgrad.focal(y, z, from_logits=True, gamma=0.0, convention=conv, reduction="none")
        assert np.isfinite(r.grad).all() and not r.warnings


def test_cosine_zero_vector_under_optax_is_reported_nan(cli):
    r = cli("cosine", "-c", "optax", "-y", "1,2;0,0", "-p", "1,1;1,1")
    assert r.code == 0 and r.out.splitlines()[2].startswith("nan")
    warn = [ln for ln in r.err.splitlines() if ln.startswith("warning:")]
    assert len(warn) == 1 and "optax" in warn[0] and "row 1" in warn[0] and "0/0" in warn[0]
    # the exact mathematics has no cosine of a zero vector: an error, not a number
    assert_usage_error(cli("cosine", "-y", "1,2;0,0", "-p", "1,1;1,1"), "zero target vector")


def test_nan_warning_is_one_line_for_losses_and_gradients():
    acc = Accumulator()
    acc.add(np.array([1.0, np.nan]), 2, grad=np.array([[0.0, np.nan], [np.nan, np.nan]]))
    other = Accumulator()
    other.add(np.array([2.0]), 1, grad=np.array([[np.nan, 1.0]]))
    acc.merge(other)

    lines = warnings(acc, "T", "", "because")
    assert lines == ["1 NaN loss and 4 NaN gradient elements (first at row 1, column 0): T computes NaN there "
                     "(because)"]
