"""Analytic gradients against central finite differences of the reduced value, on random inputs, for every loss,
input kind (probabilities / logits / index or one-hot targets), reduction and convention that has the loss."""

import zlib

import numpy as np
import pytest

import lossgrad
from lossgrad.conventions import CONVENTIONS

REDUCTIONS = ["mean", "sum", "none"]


def _inputs(loss, kind, rng):
    if loss == "kl":
        y = rng.dirichlet(np.ones(4), size=5)
        q = rng.dirichlet(np.ones(4), size=5) * 0.9 + 0.025
        return (np.log(y) if "target" in kind else y), (np.log(q) if "input" in kind else q)
    if loss == "poisson":
        y = rng.integers(0, 6, size=(5, 3)).astype(float)
        y[0] = [0.5, 1.0, 2.5]  # (--full: non-integer counts, and the edge of PyTorch's y > 1)
        return y, (rng.normal(size=(5, 3)) if kind.startswith("logits") else rng.gamma(2.0, 1.5, size=(5, 3)) + 0.05)
    if loss == "cosine":
        return rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    if loss == "focal":
        return _inputs("bce", "probs" if kind.startswith("probs") else "logits", rng)
    if loss in ("dice", "tversky"):  # masks, hard and soft
        y = (rng.random((4, 5)) < 0.5).astype(float)
        y[0] = rng.uniform(0, 1, 5)
        return y, (rng.uniform(0.05, 0.95, (4, 5)) if kind.startswith("probs") else rng.normal(scale=2, size=(4, 5)))
    if loss == "categorical-focal":  # (ce's rows, soft targets)
        return _inputs("ce", "probs-soft" if kind.startswith("probs") else "logits-soft", rng)
    if loss == "nll":
        z = rng.normal(size=(5, 4))
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        y = rng.integers(0, 4, size=5).astype(float) if kind == "index" else rng.dirichlet(np.ones(4), size=5)
        return y, logp
    if loss in ("hinge", "squared-hinge"):
        return rng.choice([-1.0, 1.0], size=(5, 3)), rng.normal(scale=2, size=(5, 3))
    if loss in ("mse", "mae", "huber", "smooth-l1", "logcosh"):
        return rng.normal(size=(5, 3)), rng.normal(size=(5, 3)) * 2
    if loss == "bce":
        y = rng.uniform(0, 1, size=(6, 2))
        y[:3] = np.round(y[:3])  # hard and soft labels
        # probabilities kept away from Keras' clip region so the function is smooth where we differentiate
        p = rng.uniform(0.05, 0.95, size=(6, 2)) if kind == "probs" else rng.normal(scale=3, size=(6, 2))
        return y, p
    # ce
    if kind.startswith("probs"):
        p = rng.dirichlet(np.ones(4), size=5) * 0.9 + 0.025
    else:
        p = rng.normal(scale=2, size=(5, 4))
    if kind.endswith("index"):
        return rng.integers(0, 4, size=5).astype(float), p
    return rng.dirichlet(np.ones(4), size=5), p


CASES = [
    (loss, kind, conv)
    for loss, kinds in [("mse", ["values"]), ("mae", ["values"]), ("huber", ["values"]), ("smooth-l1", ["values"]),
                        ("logcosh", ["values"]), ("hinge", ["values"]), ("squared-hinge", ["values"]),
                        ("nll", ["index", "onehot"]), ("bce", ["probs", "logits"]),
                        ("ce", ["probs-index", "probs-onehot", "logits-index", "logits-onehot"]),
                        ("kl", ["probs", "log-input", "log-target", "log-input-target"]),
                        ("poisson", ["probs", "logits", "probs-full", "logits-full"]),
                        ("cosine", ["values"]), ("focal", ["probs", "logits", "probs-alpha", "logits-gamma"]),
                        ("categorical-focal", ["probs", "logits", "probs-alpha", "logits-gamma"]),
                        ("dice", ["probs", "logits", "probs-squared", "logits-smooth"]),
                        ("tversky", ["probs", "logits", "probs-weights"])]
    for kind in kinds
    for conv in CONVENTIONS
    if (loss, "logits" if "logits" in kind else "probs") not in CONVENTIONS[conv].lacks
    and not any((loss, flag) in CONVENTIONS[conv].lacks for flag in ("log_input", "log_target") if flag[4:] in kind)
    and not (kind == "onehot" and loss in CONVENTIONS[conv].index_targets)  # (soft rows: a mode it lacks)
    and not (kind.endswith("-full") and (loss, "full") in CONVENTIONS[conv].lacks)
    and not (kind.endswith("-squared") and (loss, "squared") in CONVENTIONS[conv].lacks)
    and not (kind.endswith("-smooth") and CONVENTIONS[conv].segmentation == "keras")
]

# the loss's own options each kind stands for
PARAMS = {("kl", "log-input"): {"log_input": True}, ("kl", "log-target"): {"log_target": True},
          ("kl", "log-input-target"): {"log_input": True, "log_target": True},
          ("focal", "probs-alpha"): {"alpha": 0.25}, ("focal", "logits-gamma"): {"gamma": 1.5, "alpha": 0.6},
          ("poisson", "probs-full"): {"full": True}, ("poisson", "logits-full"): {"full": True},
          ("categorical-focal", "probs-alpha"): {"class_alpha": [0.25, 0.5, 1.0, 2.0]},
          ("categorical-focal", "logits-gamma"): {"gamma": 0.5, "class_alpha": [0.3]},
          ("dice", "probs-squared"): {"squared": True}, ("dice", "logits-smooth"): {"smooth": 0.5},
          ("tversky", "probs-weights"): {"alpha": 0.2, "beta": 0.8}}


def _total(loss, y, p, **kw):
    r = lossgrad.evaluate(loss, y, p, **kw)
    return r.value if r.value is not None else float(np.sum(r.losses))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss,kind,conv", CASES)
def test_gradient_matches_finite_differences(loss, kind, conv, reduction):
    rng = np.random.default_rng(zlib.crc32(f"{loss} {kind} {conv} {reduction}".encode()))
    y, p = _inputs(loss, kind, rng)
    kw = dict(from_logits="logits" in kind, reduction=reduction, convention=conv, **PARAMS.get((loss, kind), {}))
    if loss == "nll":
        kw["labels"] = kind
    grad = lossgrad.evaluate(loss, y, p, **kw).grad
    # a loss the framework computes in float32 (tf-keras' huber) gets float32-sized steps and tolerance
    f32 = loss in CONVENTIONS[conv].floatx_losses
    fd = np.zeros_like(p)
    for idx in np.ndindex(p.shape):
        h = (1e-3 if f32 else 1e-6) * max(1.0, abs(p[idx]))
        up, dn = p.copy(), p.copy()
        up[idx] += h
        dn[idx] -= h
        fd[idx] = (_total(loss, y, up, **kw) - _total(loss, y, dn, **kw)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-3 if f32 else 2e-6, atol=1e-4 if f32 else 1e-8)


@pytest.mark.parametrize("conv", ["exact", "keras", "tf-keras", "torch"])
def test_grad_logits_is_the_chain_rule_through_the_sigmoid(conv):
    # d/dz of bce(y, sigmoid(z)) computed by finite differences in z equals grad_logits
    rng = np.random.default_rng(3)
    y = rng.uniform(0, 1, size=6)
    z = rng.normal(size=6)
    p = 1 / (1 + np.exp(-z))
    gl = lossgrad.bce(y, p, convention=conv).grad_logits
    h = 1e-6
    fd = [(lossgrad.bce(y, 1 / (1 + np.exp(-(z + h * e))), convention=conv).value
           - lossgrad.bce(y, 1 / (1 + np.exp(-(z - h * e))), convention=conv).value) / (2 * h)
          for e in np.eye(6)]
    np.testing.assert_allclose(gl, fd, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("conv", ["exact", "keras"])
def test_ce_grad_logits_is_the_chain_rule_through_the_softmax(conv):
    rng = np.random.default_rng(4)
    y = rng.dirichlet(np.ones(3), size=4)
    z = rng.normal(size=(4, 3))
    sm = lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # noqa: E731
    gl = lossgrad.ce(y, sm(z), convention=conv).grad_logits
    h = 1e-6
    fd = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        up, dn = z.copy(), z.copy()
        up[idx] += h
        dn[idx] -= h
        hi, lo = lossgrad.ce(y, sm(up), convention=conv).value, lossgrad.ce(y, sm(dn), convention=conv).value
        fd[idx] = (hi - lo) / (2 * h)
    np.testing.assert_allclose(gl, fd, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("loss,kind,conv", [("bce", "probs", "keras"), ("bce", "logits", "exact"),
                                            ("ce", "logits-onehot", "torch"), ("ce", "probs-onehot", "tf-keras"),
                                            ("ce", "logits-index", "exact")])
def test_label_smoothing_gradient_matches_finite_differences(loss, kind, conv):
    rng = np.random.default_rng(zlib.crc32(f"smooth {loss} {kind} {conv}".encode()))
    y, p = _inputs(loss, kind, rng)
    kw = dict(from_logits="logits" in kind, convention=conv, label_smoothing=0.15)
    grad = lossgrad.evaluate(loss, y, p, **kw).grad
    fd = np.zeros_like(p)
    for idx in np.ndindex(p.shape):
        up, dn = p.copy(), p.copy()
        up[idx] += 1e-6
        dn[idx] -= 1e-6
        fd[idx] = (_total(loss, y, up, **kw) - _total(loss, y, dn, **kw)) / 2e-6
    np.testing.assert_allclose(grad, fd, rtol=2e-6, atol=1e-8)


def test_label_smoothing_is_the_smoothed_targets():
    # worked by hand: s = 0.25 turns y = 1 into 0.875 and y = 0 into 0.125 (bce, K = 2), both exact in binary
    a = lossgrad.bce([1.0, 0.0], [0.3, -0.4], from_logits=True, label_smoothing=0.25)
    b = lossgrad.bce([0.875, 0.125], [0.3, -0.4], from_logits=True)
    assert a.value == b.value and a.grad.tolist() == b.grad.tolist()
    # Keras rounds the smoothed target to a float first: s = 0.2 gives it 1·0.8 + 0.1 = 0.9 and 0.1, the doubles
    # (the exact convention takes 1 − 0.2/2 itself, 0.89999999999999999445, which is not a double)
    a = lossgrad.bce([1.0, 0.0], [0.3, -0.4], from_logits=True, label_smoothing=0.2, convention="keras")
    b = lossgrad.bce([0.9, 0.1], [0.3, -0.4], from_logits=True, convention="keras")
    assert a.value == b.value and a.grad.tolist() == b.grad.tolist()


def test_bce_hard_labels_take_the_unrefined_path_with_the_same_bits():
    # hard 0/1 targets skip the cancellation check; the values are those of the checked path
    from lossgrad.losses import classification

    rng = np.random.default_rng(6)
    z = rng.normal(scale=20, size=(4000, 1))
    y = rng.integers(0, 2, size=(4000, 1)).astype(float)
    losses, grad, prob = classification._bce_logits_exact(y, z)
    soft = y.copy()
    soft[0, 0] = 0.5  # one soft label sends the whole slice through the checked path
    _, grad_soft, _ = classification._bce_logits_exact(soft, z)
    assert np.array_equal(grad[1:], grad_soft[1:])
    # and by hand: sigma(z) - y is sigma(z) for y = 0 and -sigma(-z) for y = 1
    want = np.where(y == 0, 1 / (1 + np.exp(-z)), -1 / (1 + np.exp(z)))
    assert np.allclose(grad, want, rtol=2e-15, atol=0)  # (both sides a few ulps from the truth)
