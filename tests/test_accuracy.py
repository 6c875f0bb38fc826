"""Accuracy of the exact convention against mpmath (tests/reference.py, 800 digits): at most 4 ulp in float64 over
the adversarial grid and property-based samples; float32 within a float32 ulp of its truth; reductions that do
not depend on the chunking."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lossgrad
import reference as R
from lossgrad.reduction import Total

pytest.importorskip("mpmath")

ULP = 4


def _bce_logits(y, z, dtype="float64"):
    r = lossgrad.evaluate("bce", y, z, from_logits=True, reduction="none", dtype=dtype)
    return r.losses, r.grad


def _bce_probs(y, p, dtype="float64"):
    r = lossgrad.evaluate("bce", y, p, reduction="none", dtype=dtype)
    return r.losses, r.grad, r.grad_logits


def _assert_ulps(got, truth, dtype=np.float64, limit=ULP, where=None):
    e = R.ulps(got, truth, dtype)
    assert e <= limit, f"{e} ulp at {where}: got {got!r}, truth {truth}"


def test_grid_bce_logits():
    pairs = [(y, z) for y in R.LABELS for z in R.LOGITS]
    y, z = np.array(pairs).T
    losses, grad = _bce_logits(y, z)
    for i, (a, b) in enumerate(pairs):
        tl, tg = R.bce_logits(a, b)
        _assert_ulps(losses[i], tl, where=(a, b))
        _assert_ulps(grad[i], tg, where=(a, b))


def test_grid_bce_probs():
    pairs = [(y, p) for y in R.LABELS for p in R.PROBS]
    y, p = np.array(pairs).T
    with np.errstate(all="ignore"):
        losses, grad, gl = _bce_probs(y, p)
    for i, (a, b) in enumerate(pairs):
        tl, tg, tgl = R.bce_probs(a, b)
        _assert_ulps(losses[i], tl, where=(a, b))
        _assert_ulps(grad[i], tg, where=(a, b))
        _assert_ulps(gl[i], tgl, where=(a, b))


def _assert_ce_logits(y, z, target=None):
    """ce from logits on one row against mpmath; `target` (a class index) takes the index path instead of y."""
    if target is None:
        r = lossgrad.ce([y], [z], from_logits=True, labels="onehot", reduction="none")
    else:
        r = lossgrad.ce([target], [z], from_logits=True, labels="index", reduction="none")
    tl, tg = R.ce_logits(y, z)
    _assert_ulps(r.losses[0], tl, where=(y, z, target))
    for j in range(len(z)):
        _assert_ulps(r.grad[0][j], tg[j], where=(y, z, target, j))


def test_grid_ce_logits():
    for y, z in R.ce_rows():
        _assert_ce_logits(y, z)


def test_grid_ce_probs():
    for y, p in R.ce_prob_rows():
        with np.errstate(all="ignore"):
            r = lossgrad.ce([y], [p], labels="onehot", reduction="none")
        tl, tg, tgl = R.ce_probs(y, p)
        _assert_ulps(r.losses[0], tl, where=(y, p))
        for j in range(len(p)):
            _assert_ulps(r.grad[0][j], tg[j], where=(y, p, j))
            _assert_ulps(r.grad_logits[0][j], tgl[j], where=(y, p, j))


def test_pytorch_blind_spot_is_right_here():
    # numerics.md: PyTorch's bce-with-logits gradient at z = 40, y = 1 is 0; the truth is -sigma(-40) = -4.25e-18
    _, grad = _bce_logits([1.0], [40.0])
    _assert_ulps(grad[0], R.bce_logits(1.0, 40.0)[1], limit=1)
    assert grad[0] == pytest.approx(-4.248354255291589e-18, rel=1e-15)


labels = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1))
logits = st.floats(-1e300, 1e300, allow_nan=False)
probs = st.floats(0, 1)


@settings(max_examples=150, deadline=None)
@given(y=labels, z=st.one_of(logits, st.floats(-50, 50)))
def test_property_bce_logits(y, z):
    losses, grad = _bce_logits([y], [z])
    tl, tg = R.bce_logits(y, z)
    _assert_ulps(losses[0], tl, where=(y, z))
    _assert_ulps(grad[0], tg, where=(y, z))


@settings(max_examples=150, deadline=None)
@given(y=labels, p=probs)
def test_property_bce_probs(y, p):
    with np.errstate(all="ignore"):
        losses, grad, gl = _bce_probs([y], [p])
    tl, tg, tgl = R.bce_probs(y, p)
    _assert_ulps(losses[0], tl, where=(y, p))
    _assert_ulps(grad[0], tg, where=(y, p))
    _assert_ulps(gl[0], tgl, where=(y, p))


@settings(max_examples=100, deadline=None)
@given(y=st.floats(-1e100, 1e100), p=st.floats(-1e100, 1e100))
def test_property_mse(y, p):
    r = lossgrad.mse([y], [p], reduction="none")
    tl, tg = R.mse(y, p)
    _assert_ulps(r.losses[0], tl, where=(y, p))
    _assert_ulps(r.grad[0], tg, where=(y, p))


@settings(max_examples=80, deadline=None)
@given(z=st.lists(st.floats(-800, 800), min_size=2, max_size=4),
       w=st.lists(st.floats(0, 1), min_size=4, max_size=4))
def test_property_ce_logits(z, w):
    _assert_ce_logits(w[: len(z)], z)


@settings(max_examples=80, deadline=None)
@given(p=st.lists(st.floats(1e-300, 1), min_size=2, max_size=4),
       w=st.lists(st.floats(0, 1), min_size=4, max_size=4))
def test_property_ce_probs(p, w):
    y = w[: len(p)]
    r = lossgrad.ce([y], [p], labels="onehot", reduction="none")
    tl, tg, tgl = R.ce_probs(y, p)
    _assert_ulps(r.losses[0], tl, where=(y, p))
    for j in range(len(p)):
        _assert_ulps(r.grad[0][j], tg[j], where=(y, p, j))
        _assert_ulps(r.grad_logits[0][j], tgl[j], where=(y, p, j))


def test_soft_labels_at_their_own_logit():
    # sigma(z) - y where z = logit(y) up to rounding: the float64 terms cancel to nothing; the truth is tiny
    y = np.linspace(0.01, 0.99, 99)
    z = np.log(y / (1 - y))
    _, grad = _bce_logits(y, z)
    for a, b, g in zip(y, z, grad, strict=True):
        _assert_ulps(g, R.bce_logits(a, b)[1], where=(a, b))


@pytest.mark.parametrize("loss,kw,y,p", [
    ("bce", {"from_logits": True}, [0.0, 1.0, 0.3, 0.999], [-18.6, 0.51, 2.94, 40.0]),
    ("bce", {}, [0.0, 1.0, 0.3, 0.999], [1e-30, 0.6248, 0.9497, 0.5]),
    ("mse", {}, [0.11, 0.01, 0.59], [0.12, 0.35, 0.61]),
    ("ce", {"from_logits": True}, [[0.2, 0.8, 0.0]], [[0.3, -1.2, 2.0]]),
])
def test_float32_is_the_float32_rounding_of_the_truth(loss, kw, y, p):
    # float32 inputs computed exactly and rounded once: within a float32 ulp of the truth at those inputs
    r32 = lossgrad.evaluate(loss, y, p, dtype="float32", reduction="none", **kw)
    y32 = np.asarray(y, dtype=np.float32).astype(np.float64)
    p32 = np.asarray(p, dtype=np.float32).astype(np.float64)
    r64 = lossgrad.evaluate(loss, y32, p32, reduction="none", **kw)
    assert r32.grad.dtype == np.float32
    np.testing.assert_array_equal(r32.grad, r64.grad.astype(np.float32))
    np.testing.assert_array_equal(r32.losses, r64.losses.astype(np.float32))


@pytest.mark.parametrize("conv", ["keras", "tf-keras", "torch"])
def test_float32_framework_conventions_compute_in_float32(conv):
    # a float32 framework rounds at every step: close to the float64 answer, not equal to its rounding
    p = np.array([0.01, 0.3, 0.62, 0.97])
    y = np.array([0.0, 1.0, 0.0, 1.0])
    r32 = lossgrad.bce(y, p, convention=conv, dtype="float32")
    r64 = lossgrad.bce(y.astype(np.float32), p.astype(np.float32).astype(np.float64), convention=conv)
    assert r32.grad.dtype == np.float32
    np.testing.assert_allclose(r32.grad, r64.grad, rtol=1e-5)


def test_reduction_is_accurate_and_independent_of_chunking():
    rng = np.random.default_rng(5)
    x = np.abs(rng.normal(size=300_000)) * 10.0 ** rng.uniform(-8, 8, 300_000)
    truth = math.fsum(x.tolist())
    values = []
    for chunk in (7, 1000, 65536, 300_000):
        t = Total()
        for k in range(0, x.size, chunk):
            t.add(x[k:k + chunk])
        values.append(t.value)
        assert abs(t.value - truth) <= 2 * np.spacing(truth)
    assert max(values) - min(values) <= 2 * np.spacing(truth)


def test_batch_mean_matches_fsum_through_the_cli_reader(tmp_path):
    # the CSV path feeds the evaluator in chunks; the mean must not depend on that
    from lossgrad.evaluation import evaluate
    from lossgrad.options import setup
    from lossgrad.reduction import Accumulator

    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 10_000).astype(float)
    z = rng.normal(scale=4, size=10_000)
    full = lossgrad.bce(y, z, from_logits=True).value
    s, acc = setup("bce", from_logits=True), Accumulator()
    for k in range(0, 10_000, 333):
        for block in evaluate(s, y[k:k + 333, None], z[k:k + 333, None]):
            acc.add(block.parts.losses, block.parts.grad.shape[0], block.count)
    value, _ = acc.finish("mean", np.float64)
    losses = lossgrad.bce(y, z, from_logits=True, reduction="none").losses
    truth = math.fsum(losses.tolist()) / 10_000
    assert abs(value - truth) <= np.spacing(truth) and abs(full - truth) <= np.spacing(truth)


@settings(max_examples=80, deadline=None)
@given(z=st.lists(st.floats(-800, 800), min_size=2, max_size=5), t=st.integers(0, 4))
def test_property_ce_logits_index_labels(z, t):
    # class-index targets take their own path (no soft-label cancellation to guard against)
    t = t % len(z)
    _assert_ce_logits([1.0 if j == t else 0.0 for j in range(len(z))], z, target=t)


def test_grid_ce_logits_index_labels():
    for _, z in R.ce_rows():
        for t in range(len(z)):
            _assert_ce_logits([1.0 if j == t else 0.0 for j in range(len(z))], z, target=t)


REGRESSION = {
    "mae": (R.mae, {}), "huber": (R.huber, {"delta": 0.7}), "smooth-l1": (R.smooth_l1, {"beta": 0.5}),
    "logcosh": (R.logcosh, {}),
}


@pytest.mark.parametrize("loss", list(REGRESSION))
def test_grid_regression(loss):
    ref, params = REGRESSION[loss]
    d = params.get("delta", params.get("beta", 1.0))
    errors = [0.0, 1e-300, -1e-300, 1e-20, 1e-8, -1e-8, 0.3, -0.3, d, -d, 1.0, 1.999, 2.0, 2.001, -5.0, 30.0, 710.0,
              -1000.0, 1e10, 1e300]
    for y in (0.0, 1.5, -3.25):
        p = [y + e for e in errors]
        r = lossgrad.evaluate(loss, [y] * len(p), p, reduction="none", **params)
        for i, pi in enumerate(p):
            tl, tg = ref(y, pi, **params)
            _assert_ulps(r.losses[i], tl, where=(loss, y, pi))
            _assert_ulps(r.grad[i], tg, where=(loss, y, pi))


@settings(max_examples=60, deadline=None)
@given(y=st.floats(-1e6, 1e6), e=st.one_of(st.floats(-50, 50), st.floats(-1e-6, 1e-6)))
def test_property_regression(y, e):
    p = y + e
    for loss, (ref, params) in REGRESSION.items():
        r = lossgrad.evaluate(loss, [y], [p], reduction="none", **params)
        tl, tg = ref(y, p, **params)
        _assert_ulps(r.losses[0], tl, where=(loss, y, p))
        _assert_ulps(r.grad[0], tg, where=(loss, y, p))


@settings(max_examples=80, deadline=None)
@given(y=labels, z=st.one_of(st.floats(-50, 50), st.floats(-1e300, 1e300)), w=st.floats(0.01, 100))
def test_property_bce_pos_weight(y, z, w):
    r = lossgrad.bce([y], [z], from_logits=True, reduction="none", pos_weight=[w])
    tl, tg = R.bce_logits_weighted(y, z, w)
    _assert_ulps(r.losses[0], tl, where=(y, z, w))
    _assert_ulps(r.grad[0], tg, where=(y, z, w))


def test_pos_weight_at_its_own_logit():
    # (1 - y) sigma(z) = w y sigma(-z) at z = log(w y / (1 - y)): the weighted gradient cancels there
    for y in (0.2, 0.5, 0.9):
        for w in (0.5, 3.0):
            z = math.log(w * y / (1 - y))
            r = lossgrad.bce([y], [z], from_logits=True, reduction="none", pos_weight=[w])
            _assert_ulps(r.grad[0], R.bce_logits_weighted(y, z, w)[1], where=(y, z, w))


# ---------------------------------------------------------------- kl, poisson, focal, cosine


def _assert_row(r, tl, tg, where):
    _assert_ulps(r.losses[0], tl, where=where)
    for j, t in enumerate(tg):
        _assert_ulps(r.grad[0][j], t, where=(where, j))


KL_ROWS = [([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]), ([0.2, 0.3, 0.5], [0.2000001, 0.2999999, 0.5]),
           ([0.0, 1.0, 0.0], [0.05, 0.95, 0.0]), ([0.5, 0.5, 0.0], [1e-300, 1 - 1e-16, 1e-20]),
           ([1e-300, 1 - 1e-300, 0.0], [0.5, 0.25, 0.25]), ([0.25, 0.25, 0.5], [0.5, 0.25, 0.25]),
           ([0.1, 0.2, 0.7], [0.1 + 2**-40, 0.2 - 2**-40, 0.7])]


@pytest.mark.parametrize("log_input,log_target", [(False, False), (True, False), (False, True), (True, True)])
def test_grid_kl(log_input, log_target):
    for y, q in KL_ROWS:
        if (log_input or log_target) and 0.0 in q + y:
            continue
        yy = np.log(y) if log_target else y
        qq = np.log(q) if log_input else q
        with np.errstate(all="ignore"):
            r = lossgrad.kl([yy], [qq], reduction="none", log_input=log_input, log_target=log_target)
        tl, tg = R.kl(yy, qq, log_input, log_target)
        _assert_row(r, tl, tg, (yy, qq))


@settings(max_examples=80, deadline=None)
@given(y=st.lists(st.floats(0, 1), min_size=2, max_size=4), q=st.lists(st.floats(1e-300, 1), min_size=4, max_size=4),
       near=st.booleans())
def test_property_kl(y, q, near):
    q = q[: len(y)]
    if near:  # the prediction a hair from the target: the row's terms cancel
        q = [max(a * (1 + 1e-9 * (-1) ** i), 1e-300) for i, a in enumerate(y)]
        q = [min(v, 1.0) for v in q]
    r = lossgrad.kl([y], [q], reduction="none")
    tl, tg = R.kl(y, q)
    _assert_row(r, tl, tg, (y, q))


POISSON_GRID = [(y, p) for y in (0.0, 1.0, 3.0, 2.5, 1e-10, 1e6) for p in
                (1e-300, 1e-8, 0.5, 1.0, 2.718281828459045, 3.0, 2.5, 1e6, 1e300)]


def test_grid_poisson():
    y, p = np.array(POISSON_GRID).T
    r = lossgrad.poisson(y, p, reduction="none")
    for i, (a, b) in enumerate(POISSON_GRID):
        tl, tg = R.poisson(a, b)
        _assert_ulps(r.losses[i], tl, where=(a, b))
        _assert_ulps(r.grad[i], tg, where=(a, b))
    z = [math.log(b) for _, b in POISSON_GRID[:-1]] + [700.0]
    yz = [a for a, _ in POISSON_GRID]
    r = lossgrad.poisson(yz, z, from_logits=True, reduction="none")
    for i, (a, b) in enumerate(zip(yz, z, strict=True)):
        tl, tg = R.poisson(a, b, log_input=True)
        _assert_ulps(r.losses[i], tl, where=(a, b))
        _assert_ulps(r.grad[i], tg, where=(a, b))


@settings(max_examples=80, deadline=None)
@given(y=st.floats(0, 1e6), p=st.floats(1e-300, 1e6), z=st.floats(-700, 700))
def test_property_poisson(y, p, z):
    r = lossgrad.poisson([y], [p], reduction="none")
    tl, tg = R.poisson(y, p)
    _assert_ulps(r.losses[0], tl, where=(y, p))
    _assert_ulps(r.grad[0], tg, where=(y, p))
    r = lossgrad.poisson([y], [z], from_logits=True, reduction="none")
    tl, tg = R.poisson(y, z, log_input=True)
    _assert_ulps(r.losses[0], tl, where=(y, z))
    _assert_ulps(r.grad[0], tg, where=(y, z))


FULL_GRID = [(y, p) for y in (0.0, 1.0, 2.0, 3.0, 2.5, 0.5, 1e-30, 1e-10, 9.999, 10.0, 17.0, 1e6, 1e15, 1e300)
             for p in (1e-300, 1e-8, 0.5, 1.0, 3.0, 2.5, 9.999, 10.0 + 2**-49, 17.0 * (1 + 1e-12), 1e6, 1e6 + 1,
                       1e15, 1e300)] + [(y, y) for y in (0.7, 3.0, 12.5, 1e6, 1e15)]


@pytest.mark.parametrize("from_logits", [False, True])
def test_grid_poisson_full(from_logits):
    # the sum p − y·log p + log y! cancels to about ½·log(2πy) at p = y, from terms of size y·log y
    pairs = [(a, math.log(b) if from_logits else b) for a, b in FULL_GRID]
    if from_logits:
        pairs += [(a, math.log(a) + d) for a in (3.0, 1e6, 1e15) for d in (0.0, 1e-12, -2**-40)]
        # y·(z − log y)² near 1 for y near 1e15: log y's own rounding (in long double) would show
        pairs += [(652878057723859.2, 34.112411856152285), (1e15, math.log(1e15) + 3e-8), (1e15, 34.538776394910684)]
    y, p = np.array(pairs).T
    r = lossgrad.poisson(y, p, reduction="none", from_logits=from_logits, full=True)
    for i, (a, b) in enumerate(pairs):
        tl, tg = R.poisson(a, b, log_input=from_logits, full=True)
        _assert_ulps(r.losses[i], tl, where=(a, b))
        _assert_ulps(r.grad[i], tg, where=(a, b))


@settings(max_examples=80, deadline=None)
@given(y=st.one_of(st.integers(0, 40).map(float), st.floats(0, 1e6)), near=st.floats(-1e-6, 1e-6),
       p=st.floats(1e-300, 1e6))
def test_property_poisson_full(y, near, p):
    for q in (p, y * (1 + near) if y > 0 else p):
        r = lossgrad.poisson([y], [q], reduction="none", full=True)
        _assert_ulps(r.losses[0], R.poisson(y, q, full=True)[0], where=(y, q))
        z = math.log(q)
        r = lossgrad.poisson([y], [z], from_logits=True, reduction="none", full=True)
        _assert_ulps(r.losses[0], R.poisson(y, z, log_input=True, full=True)[0], where=(y, z))


CF_OPTIONS = [(2.0, None), (0.5, [0.1, 0.2, 0.7]), (0.0, None), (1.0, [0.25])]


@pytest.mark.parametrize("gamma,alpha", CF_OPTIONS)
def test_grid_categorical_focal_logits(gamma, alpha):
    # the ce grid's rows: spreads past ±745, one class holding all but 1e−300, soft targets at the softmax itself
    for y, z in R.ce_rows():
        r = lossgrad.categorical_focal([y], [z], from_logits=True, reduction="none", gamma=gamma, class_alpha=alpha)
        tl, tg = R.categorical_focal(y, z, True, gamma, None if alpha is None else alpha * (3 // len(alpha)))
        _assert_row(r, tl, tg, (y, z))


@pytest.mark.parametrize("gamma,alpha", CF_OPTIONS)
def test_grid_categorical_focal_probs(gamma, alpha):
    for y, p in R.ce_prob_rows():
        if 0.0 in p and any(t and not q for t, q in zip(y, p, strict=True)):
            continue  # an infinite loss: the ulp measure has nothing to say
        r = lossgrad.categorical_focal([y], [p], reduction="none", gamma=gamma, class_alpha=alpha)
        tl, tg = R.categorical_focal(y, p, False, gamma, None if alpha is None else alpha * (3 // len(alpha)))
        _assert_row(r, tl, tg, (y, p))


@settings(max_examples=60, deadline=None)
@given(z=st.lists(st.floats(-800, 800), min_size=3, max_size=3), w=st.lists(st.floats(0, 1), min_size=3, max_size=3),
       gamma=st.sampled_from([0.0, 0.5, 2.0, 3.7]), near=st.booleans())
def test_property_categorical_focal_logits(z, w, gamma, near):
    y = [v / sum(w) for v in w] if sum(w) > 0 else [1.0, 0.0, 0.0]
    if near:  # the targets at the model's own probabilities: the gradient's two terms nearly cancel
        e = [math.exp(v - max(z)) for v in z]
        y = [v / sum(e) for v in e]
    r = lossgrad.categorical_focal([y], [z], from_logits=True, reduction="none", gamma=gamma)
    tl, tg = R.categorical_focal(y, z, True, gamma)
    _assert_row(r, tl, tg, (y, z))


SEG_ROWS = [([1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]), ([1.0, 1.0, 0.0, 0.0], [0.4, 0.0, 0.0, 0.9]),
            ([1.0, 0.0, 1.0], [1.0, 0.0, 1.0]), ([1.0, 0.0, 1.0], [1 - 1e-16, 1e-300, 1.0]),
            ([1.0, 0.0], [1 - 2**-53, 2**-53]), ([0.0, 0.0, 0.0], [1e-300, 0.5, 0.0]), ([1.0, 1.0], [1e-300, 5e-324]),
            ([0.3, 0.7, 0.5], [0.3, 0.7, 0.5000001]), ([0.25, 0.5, 1.0], [0.1, 0.9, 0.999]),
            ([1e-300, 1.0, 0.0], [1e-300, 1.0, 1e-20]),
            # a small overlap (2Σpy = 4.7e−41) far below the denominator: squared's p_k·N − y_k·D, not D(p − y) − pE
            ([0.0, 0.0, 0.0, 1.0, 0.0], [1.3180844044806131e-56, 9.313234282895718e-06, 1.869653681904893e-08,
                                         2.3494782525442066e-41, 4.298592925673157e-07])]


@pytest.mark.parametrize("loss,kw", [("dice", {}), ("dice", {"squared": True}), ("dice", {"smooth": 1e-5}),
                                     ("tversky", {}), ("tversky", {"alpha": 0.3, "beta": 0.7}),
                                     ("tversky", {"alpha": 0.0, "beta": 1.0, "smooth": 1.0})])
def test_grid_segmentation(loss, kw):
    # perfect predictions (the loss 0 from terms of size 1), a row with no positives, tiny and subnormal values
    for y, p in SEG_ROWS:
        r = lossgrad.evaluate(loss, [y], [p], reduction="none", **kw)
        tl, tg = getattr(R, loss)(y, p, **kw)
        _assert_row(r, tl, tg, (y, p))


@settings(max_examples=60, deadline=None)
@given(y=st.lists(st.sampled_from([0.0, 1.0, 0.5, 1e-300]), min_size=3, max_size=3),
       p=st.lists(st.floats(0, 1), min_size=3, max_size=3), near=st.floats(-1e-9, 1e-9), squared=st.booleans())
def test_property_segmentation(y, p, near, squared):
    if near:  # a hair from the mask: the loss far below its terms
        p = [min(max(v + near * (i - 1), 0.0), 1.0) for i, v in enumerate(y)]
    if sum(y) + sum(p) == 0:
        return  # (0/0: refused, see test_losses_a)
    for loss, kw in (("dice", {"squared": squared}), ("tversky", {"alpha": 0.3, "beta": 0.7})):
        r = lossgrad.evaluate(loss, [y], [p], reduction="none", **kw)
        tl, tg = getattr(R, loss)(y, p, **kw)
        _assert_row(r, tl, tg, (loss, y, p))


@pytest.mark.parametrize("gamma,alpha", [(2.0, None), (0.5, 0.25), (1.0, None), (0.0, 0.75)])
def test_grid_focal(gamma, alpha):
    pairs = [(y, z) for y in R.LABELS for z in R.LOGITS if abs(z) < 1e10]
    y, z = np.array(pairs).T
    r = lossgrad.focal(y, z, from_logits=True, reduction="none", gamma=gamma, alpha=alpha)
    for i, (a, b) in enumerate(pairs):
        tl, tg = R.focal(a, b, True, gamma, alpha)
        _assert_ulps(r.losses[i], tl, where=(a, b))
        _assert_ulps(r.grad[i], tg, where=(a, b))
    pairs = [(y, p) for y in R.LABELS for p in R.PROBS if 0 < p < 1]
    y, p = np.array(pairs).T
    r = lossgrad.focal(y, p, reduction="none", gamma=gamma, alpha=alpha)
    for i, (a, b) in enumerate(pairs):
        tl, tg = R.focal(a, b, False, gamma, alpha)
        _assert_ulps(r.losses[i], tl, where=(a, b))
        _assert_ulps(r.grad[i], tg, where=(a, b))


@settings(max_examples=80, deadline=None)
@given(y=labels, z=st.floats(-60, 60), gamma=st.sampled_from([2.0, 1.5, 0.5]))
def test_property_focal(y, z, gamma):
    r = lossgrad.focal([y], [z], from_logits=True, reduction="none", gamma=gamma)
    tl, tg = R.focal(y, z, True, gamma)
    _assert_ulps(r.losses[0], tl, where=(y, z))
    _assert_ulps(r.grad[0], tg, where=(y, z))


COSINE_ROWS = [([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]), ([1.0, 2.0, 3.0], [2.0, 4.0, 6.000000001]),
               ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]), ([1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]),
               ([1e-300, 2e-300, 0.0], [1e300, 2e300, 1.0]), ([3.0, -4.0], [3.0 + 2**-40, -4.0]),
               ([0.1, 0.2, 0.3, 0.4, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5000001])]


def test_grid_cosine():
    for y, p in COSINE_ROWS:
        r = lossgrad.cosine([y], [p], reduction="none")
        tl, tg = R.cosine(y, p)
        _assert_row(r, tl, tg, (y, p))


@settings(max_examples=80, deadline=None)
@given(y=st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3), e=st.lists(st.floats(-1e-6, 1e-6), min_size=3,
                                                                                max_size=3), s=st.floats(0.01, 100))
def test_property_cosine(y, e, s):
    if not any(y) or not any(a * s + b for a, b in zip(y, e, strict=True)):
        return
    p = [a * s + b for a, b in zip(y, e, strict=True)]  # nearly parallel: 1 − cos cancels in float64
    r = lossgrad.cosine([y], [p], reduction="none")
    tl, tg = R.cosine(y, p)
    _assert_row(r, tl, tg, (y, p))


# ---------------------------------------------------------------- extreme parameters and intermediate range

SCALES = [1e300, 1e-300, 1.7e308, 1e-310, 5e-324, 1e154, 1.0]
RATIOS = [0.0, 1e-10, 0.1, 0.5, 0.999, 1.0, 1.001, 2.0, 1e10]  # |e| / β: both branches and the kink


@pytest.mark.parametrize("loss", ["smooth-l1", "huber"])
def test_grid_regression_extreme_parameters(loss):
    # ½e²/β with e² out of range (β = 1e300, e = 1e200: truth 5e99; β = 1e−300, e = 1e−301: 5e−303), and p − y
    # itself out of range where the linear branch is not (δ = 0.5, e = 2e308: 1e308)
    ref, name = (R.smooth_l1, "beta") if loss == "smooth-l1" else (R.huber, "delta")
    for b in SCALES:
        pairs = [(y, y + r * b * sign) for r in RATIOS for sign in (1, -1) for y in (0.0, 1.5)
                 if math.isfinite(y + r * b)]
        pairs += [(-1e308, 1e308), (1e308, -1.7e308), (0.0, 1e200), (0.0, 1e-301)]
        y, p = np.array(pairs).T
        with np.errstate(over="ignore"):
            r = lossgrad.evaluate(loss, y, p, reduction="none", **{name: b})
        for i, (a, c) in enumerate(pairs):
            tl, tg = ref(a, c, b)
            _assert_ulps(r.losses[i], tl, where=(loss, b, a, c))
            _assert_ulps(r.grad[i], tg, where=(loss, b, a, c))


@settings(max_examples=80, deadline=None)
@given(u=st.floats(-307, 307), r=st.floats(-3, 3), y=st.floats(-1e300, 1e300))
def test_property_regression_any_scale(u, r, y):
    # β and δ across the whole range, errors on both sides of them
    b = 10.0 ** u
    p = y + r * b
    if not math.isfinite(p):
        return
    for loss, ref, name in (("smooth-l1", R.smooth_l1, "beta"), ("huber", R.huber, "delta")):
        with np.errstate(over="ignore"):
            res = lossgrad.evaluate(loss, [y], [p], reduction="none", **{name: b})
        tl, tg = ref(y, p, b)
        _assert_ulps(res.losses[0], tl, where=(loss, b, y, p))
        _assert_ulps(res.grad[0], tg, where=(loss, b, y, p))
    for loss, ref in (("mse", R.mse), ("logcosh", R.logcosh), ("mae", R.mae)):
        with np.errstate(over="ignore"):
            res = lossgrad.evaluate(loss, [y], [p], reduction="none")
        tl, tg = ref(y, p)
        _assert_ulps(res.losses[0], tl, where=(loss, y, p))
        _assert_ulps(res.grad[0], tg, where=(loss, y, p))


KL_LOG_TARGET_ROWS = [([-800.0, 0.0], [1e-300, 1.0]), ([-745.0, -1e-300], [5e-324, 1.0]),
                      ([-1000.0, -0.5], [1e-320, 0.3]), ([-740.0, -1e4], [1e-310, 5e-324]),
                      ([-700.0, -0.001], [1e-300, 0.999])]


@pytest.mark.parametrize("log_input", [False, True])
def test_grid_kl_log_target_beyond_exp_range(log_input):
    # −e^t/q where e^t underflows and q is tiny: t = −800, q = 1e−300 gives −3.67e−48 (not 0); t = −745,
    # q = 5e−324 gives −0.571 (not −1); the terms e^t·(t − log q) likewise
    for y, q in KL_LOG_TARGET_ROWS:
        qq = [math.log(v) if log_input else v for v in q]
        if log_input:
            qq[0] = -1e300  # a log-probability far below anything a float holds: e^t·(t + 1e300) is in range
        with np.errstate(all="ignore"):
            r = lossgrad.kl([y], [qq], reduction="none", log_target=True, log_input=log_input)
        tl, tg = R.kl(y, qq, log_input, True)
        _assert_row(r, tl, tg, (y, qq))


@settings(max_examples=80, deadline=None)
@given(t=st.lists(st.floats(-1200, 0), min_size=2, max_size=3), q=st.lists(st.floats(5e-324, 1), min_size=3,
                                                                            max_size=3), log_input=st.booleans())
def test_property_kl_log_target(t, q, log_input):
    q = q[: len(t)]
    qq = [math.log(v) for v in q] if log_input else q
    r = lossgrad.kl([t], [qq], reduction="none", log_target=True, log_input=log_input)
    tl, tg = R.kl(t, qq, log_input, True)
    _assert_row(r, tl, tg, (t, qq))


@pytest.mark.parametrize("gamma", [0.5, 1e-3, 0.0, 1.0, 2.0, 50.0, 1e3])
@pytest.mark.parametrize("alpha", [None, 0.25, 0.0, 1.0])
def test_focal_at_the_ends_of_the_range(gamma, alpha):
    # |z| beyond even long double's exponent range (y = 1, z = 2e4: the truth is −0, not NaN); p at 0 and 1 with
    # targets that are and are not there (infinite bce: its 1/p outgrows the factor's log p); a class weighed 0
    y = [0.0, 1.0, 0.5, 1e-300, 1 - 2**-53]
    for fl, xs in ((True, [2e4, -2e4, 1e300, -1e300, 800.0, -800.0, 1e5]),
                   (False, [0.0, 1.0, 5e-324, 1 - 2**-53, 1e-300])):
        pairs = [(a, b) for a in y for b in xs]
        ys, xx = np.array(pairs).T
        with np.errstate(all="ignore"):
            r = lossgrad.focal(ys, xx, from_logits=fl, reduction="none", gamma=gamma, alpha=alpha)
        for i, (a, b) in enumerate(pairs):
            tl, tg = R.focal(a, b, fl, gamma, alpha)
            _assert_ulps(r.losses[i], tl, where=(fl, a, b))
            _assert_ulps(r.grad[i], tg, where=(fl, a, b))


def test_focal_gradient_keeps_its_sign_below_the_smallest_float():
    r = lossgrad.focal([1.0, 0.0], [2e4, -2e4], from_logits=True, reduction="none", gamma=0.5, alpha=0.25)
    assert r.grad.tolist() == [0.0, 0.0] and math.copysign(1, r.grad[0]) == -1 and math.copysign(1, r.grad[1]) == 1


@settings(max_examples=60, deadline=None)
@given(y=labels, z=st.one_of(st.floats(-1e4, 1e4), st.floats(-60, 60)), gamma=st.floats(0, 200),
       alpha=st.one_of(st.none(), st.floats(0, 1)))
def test_property_focal_any_gamma_alpha(y, z, gamma, alpha):
    r = lossgrad.focal([y], [z], from_logits=True, reduction="none", gamma=gamma, alpha=alpha)
    tl, tg = R.focal(y, z, True, gamma, alpha)
    _assert_ulps(r.losses[0], tl, where=(y, z, gamma, alpha))
    _assert_ulps(r.grad[0], tg, where=(y, z, gamma, alpha))


@settings(max_examples=60, deadline=None)
@given(y=labels, z=st.one_of(logits, st.floats(-800, 800)), w=st.floats(1e-300, 1e300))
def test_property_bce_pos_weight_any_size(y, z, w):
    # w·y·σ(−z) with y·σ(−z) subnormal (y = 1e−300, z = 40) or σ(−z) so (z = 745) before a large w
    r = lossgrad.bce([y], [z], from_logits=True, reduction="none", pos_weight=[w])
    tl, tg = R.bce_logits_weighted(y, z, w)
    _assert_ulps(r.losses[0], tl, where=(y, z, w))
    _assert_ulps(r.grad[0], tg, where=(y, z, w))


# ---------------------------------------------------------------- label smoothing: the smoothed target, unrounded

SMOOTHINGS = [0.1, 0.2, 0.3, 1e-10, 0.5, 1.0, 1e-300]


@pytest.mark.parametrize("s", SMOOTHINGS)
def test_grid_bce_probs_smoothed(s):
    # y = 1, s = 0.1: the target is 0.94999999999999999722, not the double 0.95000000000000006661; at p = 0.95 the
    # gradient is −8.8e−16, where the rounded target gives −2.3e−15
    near = [float(R.smoothed(v, s, 2)) for v in (1.0, 0.0, 0.3)]
    ps = [0.95, 0.05, 0.5, 0.3, 1e-300, 5e-324, 1 - 2**-53, 0.0, 1.0] + near
    pairs = [(a, b) for a in (0.0, 1.0, 0.5, 0.3, 1e-300) for b in ps]
    y, p = np.array(pairs).T
    with np.errstate(all="ignore"):
        r = lossgrad.bce(y, p, reduction="none", label_smoothing=s)
    for i, (a, b) in enumerate(pairs):
        tl, tg, tgl = R.bce_probs(R.smoothed(a, s, 2), b)
        _assert_ulps(r.losses[i], tl, where=(s, a, b))
        _assert_ulps(r.grad[i], tg, where=(s, a, b))
        _assert_ulps(r.grad_logits[i], tgl, where=(s, a, b))


@pytest.mark.parametrize("s", SMOOTHINGS)
def test_grid_bce_logits_smoothed(s):
    own = [float(R._mp().log(R.smoothed(v, s, 2) / (1 - R.smoothed(v, s, 2)))) for v in (1.0, 0.3)]
    pairs = [(a, b) for a in (0.0, 1.0, 0.5, 0.3, 1e-300) for b in R.LOGITS + own]
    y, z = np.array(pairs).T
    r = lossgrad.bce(y, z, from_logits=True, reduction="none", label_smoothing=s)
    for i, (a, b) in enumerate(pairs):
        tl, tg = R.bce_logits(R.smoothed(a, s, 2), b)
        _assert_ulps(r.losses[i], tl, where=(s, a, b))
        _assert_ulps(r.grad[i], tg, where=(s, a, b))


def _smoothed_row(y, s):
    return [R.smoothed(v, s, len(y)) for v in y]


@pytest.mark.parametrize("s", SMOOTHINGS)
def test_grid_ce_smoothed(s):
    rows = R.ce_rows()
    for t in range(3):  # logits whose softmax is the smoothed one-hot target itself: every cell cancels
        y = [1.0 if j == t else 0.0 for j in range(3)]
        target = [float(v) for v in _smoothed_row(y, s)]
        rows.append((y, [math.log(v) for v in target]))
    for y, z in rows:
        r = lossgrad.ce([y], [z], from_logits=True, labels="onehot", reduction="none", label_smoothing=s)
        tl, tg = R.ce_logits(_smoothed_row(y, s), z)
        _assert_row(r, tl, tg, (s, y, z))
    for y, p in R.ce_prob_rows() + [([1.0, 0.0, 0.0], [float(v) for v in _smoothed_row([1.0, 0.0, 0.0], s)])]:
        with np.errstate(all="ignore"):
            r = lossgrad.ce([y], [p], labels="onehot", reduction="none", label_smoothing=s)
        tl, tg, tgl = R.ce_probs(_smoothed_row(y, s), p)
        _assert_row(r, tl, tg, (s, y, p))
        for j, t in enumerate(tgl):
            _assert_ulps(r.grad_logits[0][j], t, where=(s, y, p, j))


@settings(max_examples=60, deadline=None)
@given(y=labels, p=probs, z=st.floats(-50, 50), s=st.floats(0, 1))
def test_property_bce_smoothed(y, p, z, s):
    with np.errstate(all="ignore"):
        r = lossgrad.bce([y], [p], reduction="none", label_smoothing=s)
    tl, tg, tgl = R.bce_probs(R.smoothed(y, s, 2), p)
    _assert_ulps(r.losses[0], tl, where=(s, y, p))
    _assert_ulps(r.grad[0], tg, where=(s, y, p))
    _assert_ulps(r.grad_logits[0], tgl, where=(s, y, p))
    r = lossgrad.bce([y], [z], from_logits=True, reduction="none", label_smoothing=s)
    tl, tg = R.bce_logits(R.smoothed(y, s, 2), z)
    _assert_ulps(r.losses[0], tl, where=(s, y, z))
    _assert_ulps(r.grad[0], tg, where=(s, y, z))


@settings(max_examples=60, deadline=None)
@given(z=st.lists(st.floats(-800, 800), min_size=2, max_size=4), t=st.integers(0, 3), s=st.floats(0, 1),
       p=st.lists(st.floats(1e-300, 1), min_size=4, max_size=4))
def test_property_ce_smoothed(z, t, s, p):
    y = [1.0 if j == t % len(z) else 0.0 for j in range(len(z))]
    r = lossgrad.ce([y], [z], from_logits=True, labels="onehot", reduction="none", label_smoothing=s)
    tl, tg = R.ce_logits(_smoothed_row(y, s), z)
    _assert_row(r, tl, tg, (s, y, z))
    p = p[: len(z)]
    r = lossgrad.ce([y], [p], labels="onehot", reduction="none", label_smoothing=s)
    tl, tg, tgl = R.ce_probs(_smoothed_row(y, s), p)
    _assert_row(r, tl, tg, (s, y, p))
    for j, v in enumerate(tgl):
        _assert_ulps(r.grad_logits[0][j], v, where=(s, y, p, j))
