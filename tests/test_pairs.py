"""The losses of more than a target and a prediction (gaussian-nll, triplet, margin-ranking, cosine-embedding):
the exact convention against mpmath (tests/reference.py's oracle), every gradient (the prediction's, the target's
and each extra input's) against finite differences, the float32 frameworks against what PyTorch and optax returned
(tests/golden/losses_b_float32.json, recorded by scripts/golden_losses_b.py; float64 is in test_golden.py), and
the extra inputs' reading: shapes, CSV columns, errors."""

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

import lossgrad
import reference as R
from conftest import lossgrad as run
from lossgrad.conventions import CONVENTIONS

GOLDEN = Path(__file__).resolve().parent / "golden" / "losses_b_float32.json"
ULP = 4
EXTRA = {"gaussian-nll": "var", "triplet": "negative", "margin-ranking": "other", "cosine-embedding": "label"}


def _assert_ulps(got, truth, where):
    e = R.ulps(got, truth)
    assert e <= ULP, f"{e} ulp at {where}: got {got!r}, truth {truth}"


# ---------------------------------------------------------------- exact against mpmath


@pytest.mark.parametrize("y,p,v", R.GAUSS_GRID)
def test_gaussian_nll_exact_within_4_ulp(y, p, v):
    r = lossgrad.gaussian_nll([y], [p], var=[v], reduction="sum")
    tl, tg, tv = R.gaussian_nll(y, p, v)
    _assert_ulps(r.losses[0], tl, (y, p, v))
    _assert_ulps(r.grad[0], tg, (y, p, v))
    _assert_ulps(r.grads["var"][0], tv, (y, p, v))


def test_gaussian_nll_full_exact_within_4_ulp():
    # + ½ log 2π, where it cancels against a negative ½ log v (v near 1/(2π))
    mp = R._mp()
    for y, p, v in [(0.0, 0.1, 0.15915494309189535), (1.0, 1.0, 0.1591549430918953), (0.0, 2.0, 3.0)]:
        r = lossgrad.gaussian_nll([y], [p], var=[v], full=True, reduction="sum")
        _assert_ulps(r.losses[0], R.gaussian_nll(y, p, v)[0] + mp.log(2 * mp.pi) / 2, (y, p, v))


def test_gaussian_nll_exact_random_within_4_ulp():
    rng = np.random.default_rng(7)
    y, p = rng.normal(size=40), rng.normal(size=40)
    v = np.exp(rng.uniform(-3, 3, size=40))
    v[:10] = (p[:10] - y[:10]) ** 2  # the var gradient's two terms equal, up to rounding
    r = lossgrad.gaussian_nll(y, p, var=v, reduction="sum")
    for i in range(40):
        tl, tg, tv = R.gaussian_nll(y[i], p[i], v[i])
        _assert_ulps(r.losses[i], tl, i)
        _assert_ulps(r.grad[i], tg, i)
        _assert_ulps(r.grads["var"][i], tv, i)


def test_triplet_exact_within_4_ulp():
    rng = np.random.default_rng(8)
    a, pos, neg = rng.normal(size=(3, 12, 4))
    neg[:4] = pos[:4] + rng.normal(size=(4, 4)) * 1e-9  # d(a, pos) ≈ d(a, neg): the loss is the margin, nearly
    # a − pos and a − neg pointing nearly the same way: the anchor's two unit vectors cancel
    neg[4:8] = a[4:8] + (pos[4:8] - a[4:8]) * 1.5 + rng.normal(size=(4, 4)) * 1e-10
    r = lossgrad.triplet(pos, a, negative=neg, reduction="none", margin=0.5)
    for i in range(12):
        loss, g_a, g_pos, g_neg = R.triplet(a[i], pos[i], neg[i], margin=0.5)
        _assert_ulps(r.losses[i], loss, i)
        for k in range(4):
            _assert_ulps(r.grad[i, k], g_a[k], (i, k))
            _assert_ulps(r.grads["target"][i, k], g_pos[k], (i, k))
            _assert_ulps(r.grads["negative"][i, k], g_neg[k], (i, k))


def test_triplet_swap_exact_within_4_ulp():
    # swap: d(pos, neg) for the negative's distance where smaller; ∂/∂pos = −(a − pos)/‖a − pos‖ − (pos − neg)/‖pos −
    # neg‖, whose two unit vectors cancel where a − pos and neg − pos point the same way (rows 0 to 3)
    mp = R._mp()
    rng = np.random.default_rng(12)
    a, pos = rng.normal(size=(2, 8, 3))
    neg = pos + rng.normal(size=(8, 3)) * 0.1
    neg[:4] = pos[:4] + (a[:4] - pos[:4]) * 0.01 + rng.normal(size=(4, 3)) * 1e-12
    r = lossgrad.triplet(pos, a, negative=neg, swap=True, reduction="none")

    def norm(u, v):
        return mp.sqrt(sum((mp.mpf(x) - mp.mpf(z)) ** 2 for x, z in zip(u, v, strict=True)))

    for i in range(8):
        dp, dn, ds = norm(a[i], pos[i]), norm(a[i], neg[i]), norm(pos[i], neg[i])
        x = dp - min(dn, ds) + 1
        _assert_ulps(r.losses[i], max(x, 0), i)
        assert ds < dn and x > 0  # (each row swaps, above the kink)
        for k in range(3):
            u, s = (mp.mpf(a[i, k]) - pos[i, k]) / dp, (mp.mpf(pos[i, k]) - neg[i, k]) / ds
            _assert_ulps(r.grad[i, k], u, (i, k))
            _assert_ulps(r.grads["target"][i, k], -u - s, (i, k))
            _assert_ulps(r.grads["negative"][i, k], s, (i, k))


@pytest.mark.parametrize("conv", ["exact", "torch"])
def test_triplet_swap_gradients_match_finite_differences(conv):
    rng = np.random.default_rng(13)
    a, pos = rng.normal(size=(2, 6, 3))
    neg = pos + rng.normal(size=(6, 3)) * 0.3  # most rows swap
    args = [pos, a, neg]
    r = lossgrad.triplet(pos, a, negative=neg, swap=True, convention=conv, reduction="sum")
    for k, grad in ((0, r.grads["target"]), (1, r.grad), (2, r.grads["negative"])):
        fd = np.zeros_like(args[k])
        for idx in np.ndindex(fd.shape):
            up, dn = [x.copy() for x in args], [x.copy() for x in args]
            up[k][idx] += 1e-6
            dn[k][idx] -= 1e-6
            fd[idx] = (lossgrad.triplet(up[0], up[1], negative=up[2], swap=True, convention=conv, reduction="sum").value
                       - lossgrad.triplet(dn[0], dn[1], negative=dn[2], swap=True, convention=conv,
                                          reduction="sum").value) / 2e-6
        np.testing.assert_allclose(grad, fd, rtol=2e-6, atol=1e-8)


def test_margin_ranking_exact_within_4_ulp():
    # −y(x1 − x2) + margin rounded once, where the two roundings of the formula as written would cancel
    mp = R._mp()
    x1, x2, y, m = 1.0 + 2**-52, 0.1, 1.0, 0.9000000000000001
    r = lossgrad.margin_ranking([-y], [x1], other=[x2], margin=m, reduction="none")
    _assert_ulps(r.losses[0], mp.mpf(m) + (mp.mpf(x1) - mp.mpf(x2)), "loss")
    r = lossgrad.margin_ranking([y], [x1], other=[x2], margin=m, reduction="none")
    _assert_ulps(r.losses[0], max(mp.mpf(m) - (mp.mpf(x1) - mp.mpf(x2)), 0), "cancelling loss")


def test_cosine_embedding_unlike_exact_within_4_ulp():
    mp = R._mp()
    rng = np.random.default_rng(9)
    x1, x2 = rng.normal(size=(2, 10, 3))
    cos = [mp.fsum(mp.mpf(a) * b for a, b in zip(x1[i], x2[i], strict=True))
           / mp.sqrt(mp.fsum(mp.mpf(a) ** 2 for a in x1[i]) * mp.fsum(mp.mpf(b) ** 2 for b in x2[i]))
           for i in range(10)]
    margin = float(cos[0]) if cos[0] > 0 else 0.0  # cos − margin cancels in row 0
    r = lossgrad.cosine_embedding(x2, x1, label=-np.ones(10), margin=margin, reduction="none")
    for i in range(10):
        _assert_ulps(r.losses[i], max(cos[i] - mp.mpf(margin), 0), i)


# ---------------------------------------------------------------- every gradient against finite differences


def _inputs(loss, rng):
    if loss == "gaussian-nll":
        return rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), np.abs(rng.normal(size=(5, 3))) + 0.2
    if loss == "triplet":
        return rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    if loss == "margin-ranking":
        return rng.choice([-1.0, 1.0], size=8), rng.normal(size=8), rng.normal(size=8)
    return rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), np.array([1.0, -1, 1, -1, -1])


CASES = [(loss, conv) for loss in EXTRA for conv in CONVENTIONS if (loss, "probs") not in CONVENTIONS[conv].lacks]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss,conv", CASES)
def test_every_gradient_matches_finite_differences(loss, conv, reduction):
    rng = np.random.default_rng(zlib.crc32(f"{loss} {conv} {reduction}".encode()))
    y, p, x = _inputs(loss, rng)
    name = EXTRA[loss]
    kw = dict(convention=conv, reduction=reduction)

    def value(y_, p_, x_):
        return lossgrad.evaluate(loss, y_, p_, **{name: x_}, **kw).value

    r = lossgrad.evaluate(loss, y, p, **{name: x}, **kw)
    wrt = {"pred": (1, r.grad), name: (2, r.grads.get(name)), "target": (0, r.grads.get("target"))}
    for what, (k, grad) in wrt.items():
        if grad is None:  # (the labels of ranking and of cosine-embedding are not differentiated)
            continue
        args = [y, p, x]
        fd = np.zeros_like(args[k])
        for idx in np.ndindex(args[k].shape):
            h = 1e-6 * max(1.0, abs(args[k][idx]))
            up, dn = [a.copy() for a in args], [a.copy() for a in args]
            up[k][idx] += h
            dn[k][idx] -= h
            fd[idx] = (value(*up) - value(*dn)) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=2e-6, atol=1e-8, err_msg=what)


def test_per_sample_variance_gradient_sums_its_outputs():
    # one variance for a sample's 3 outputs: its derivative is the sum of the per-element ones (hand: the chain
    # rule through a broadcast)
    y, p = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]), np.array([[0.5, 1.0, 1.0], [0.0, 2.0, 1.5]])
    per = lossgrad.gaussian_nll(y, p, var=[[0.5] * 3, [2.0] * 3], reduction="sum")
    one = lossgrad.gaussian_nll(y, p, var=[0.5, 2.0], reduction="sum")
    assert one.value == per.value and one.grads["var"].shape == (2,)
    np.testing.assert_allclose(one.grads["var"], per.grads["var"].sum(axis=1), rtol=1e-15)


def test_torch_passes_the_variance_gradient_through_its_clamp_and_exact_does_not():
    # var 1e-8 below eps 1e-6: v = 1e-6, e = 0.5; d/dv ½(log v + e²/v) = ½(1/v − e²/v²) (hand) for torch; exact
    # with the same floor has a flat clamp there, 0
    torch = lossgrad.gaussian_nll([0.0], [0.5], var=[1e-8], convention="torch", reduction="sum")
    exact = lossgrad.gaussian_nll([0.0], [0.5], var=[1e-8], var_eps=1e-6, reduction="sum")
    assert torch.grads["var"][0] == pytest.approx(0.5 * (1 / 1e-6 - 0.25 / 1e-12), rel=1e-12)
    assert exact.grads["var"][0] == 0 and exact.value == pytest.approx(torch.value, rel=1e-12)


# ---------------------------------------------------------------- float32, as the frameworks computed it


def _float32_cases():
    if not GOLDEN.exists():
        return []
    data = json.loads(GOLDEN.read_text())
    return [pytest.param(c, id=f"{c['loss']}-{c['convention']}-{c['reduction']}-{i}") for i, c in
            enumerate(data["cases"])]


def _close32(got, want, scale, what):
    # 16 float32 ulp of the value, or of the size of the terms it came from (`scale`): the frameworks' order of
    # operations rounds differently from this one
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64).reshape(np.shape(got))
    eps = float(np.finfo(np.float32).eps)
    with np.errstate(invalid="ignore"):  # (optax's odd norm degrees: a negative sum of cubes to the 1/3, NaN)
        ok = (np.abs(got - want) <= 16 * eps * (np.abs(want) + scale)) | (np.isnan(got) & np.isnan(want))
    assert ok.all(), f"{what}: got {got[~ok][:4]} want {want[~ok][:4]}"


@pytest.mark.parametrize("case", _float32_cases())
def test_float32_reproduces_framework(case):
    loss = case["loss"]
    inputs = {k: np.array(v) for k, v in case["inputs"].items()}
    r = lossgrad.evaluate(loss, np.array(case["target"]), np.array(case["pred"]), convention=case["convention"],
                          reduction=case["reduction"], dtype="float32", **case["params"], **inputs)
    n = r.n if case["reduction"] == "mean" else 1
    # the terms of a gradient: O(1) for the hinges and cosines, e/v and 1/v for gaussian-nll (per element)
    gscale = 1.0 / n
    if loss == "gaussian-nll":
        v = np.maximum(np.broadcast_to(np.array(case["inputs"]["var"]).reshape(len(case["pred"]), -1),
                                       np.shape(case["pred"])), case["params"].get("var_eps", 1e-6))
        gscale = (1 + np.abs(np.array(case["pred"]) - np.array(case["target"]))) / v / n
    _close32(r.grad, case["grad"], gscale, "grad")
    for name, g in case["grads"].items():
        # (d/dvar: e²/v² and 1/v, per element; one variance per sample: the sum over its outputs)
        scale = gscale * (1 + gscale * n) if loss == "gaussian-nll" else gscale
        scale = scale if np.ndim(scale) == 0 or np.shape(g) == np.shape(scale) else scale.sum(axis=1)
        _close32(r.grads[name], g, scale, f"grad_{name}")
    if case["value"] is not None:
        _close32(r.value, case["value"], abs(case["value"]) + 1, "value")
    _close32(r.losses, case["losses"], np.abs(np.array(case["losses"])) + 1, "losses")


# ---------------------------------------------------------------- reading the extra inputs


def test_cli_reports_each_gradient():
    r = run("gaussian-nll", "-y", "1,2,3", "-p", "1.5,2,2", "--var", "0.5,1,2", "-f", "json")
    out = r.json()
    # hand: e = (0.5, 0, −1), v = (0.5, 1, 2); ∂/∂p = e/v/3, ∂/∂v = (v − e²)/(2v²)/3
    assert r.code == 0 and out["grad"] == pytest.approx([1 / 3, 0, -1 / 6])
    assert out["grad_var"] == pytest.approx([(0.5 - 0.25) / 0.5 / 3, 0.5 / 3, (2 - 1) / 8 / 3])


@pytest.mark.parametrize("args,message", [
    (["gaussian-nll", "-y", "1,2,3", "-p", "1,2,3", "--var", "1,2"], "--var: has 2 values but --pred has 3"),
    (["gaussian-nll", "-y", "1,2,3", "-p", "1,2,3"], "--var: is missing"),
    (["gaussian-nll", "-y", "1,2", "-p", "1,2", "--var", "0,1"], "--var: value 1: 0.0 is 0"),
    (["gaussian-nll", "-y", "1,2", "-p", "1,2", "--var", "-1,1"], "is negative"),
    (["triplet", "-y", "1,2", "-p", "1,2", "--negative", "1,2,3"], "--negative: has 3 values"),
    (["margin-ranking", "-y", "1,0.5", "-p", "1,2", "--other", "1,2"], "is not a ranking label"),
    (["cosine-embedding", "-y", "1,2;3,4", "-p", "1,2;3,4", "--label", "1,1,1"], "--label: has 3 values"),
    (["compare", "mse", "-y", "1", "-p", "2", "--var", "1"], "--var: applies to gaussian-nll, not to mse"),
    (["plot", "gaussian-nll"], "takes --var too"),
])
def test_bad_extra_inputs_are_one_error_line(args, message):
    r = run(*args)
    assert r.code == 2 and r.out == "" and r.err.startswith("error: ") and r.err.count("\n") == 1, r.err
    assert message in r.err


def test_csv_columns_for_the_extra_inputs(tmp_path):
    f = tmp_path / "g.csv"
    f.write_text("y,p,v\n1,1.5,0.5\n2,2,1\n3,2,2\n")
    r = run("gaussian-nll", "--csv", f, "--target-cols", "y", "--pred-cols", "p", "--var", "v", "-f", "csv")
    lines = r.out.splitlines()
    assert r.code == 0 and lines[0] == "loss,grad,grad_var" and len(lines) == 4
    inline = run("gaussian-nll", "-y", "1,2,3", "-p", "1.5,2,2", "--var", "0.5,1,2", "-f", "csv")
    assert inline.out == r.out
    r = run("gaussian-nll", "--csv", f, "--var", "v", "-f", "json")
    assert r.code == 2 and "--target-cols and --pred-cols" in r.err
    r = run("gaussian-nll", "--csv", f, "--target-cols", "y", "--pred-cols", "p", "--var", "p")
    assert r.code == 2 and "already a target, prediction or weight" in r.err
    f.write_text("y,p,v\n1,1.5,-0.5\n")
    r = run("gaussian-nll", "--csv", f, "--target-cols", "y", "--pred-cols", "p", "--var", "v")
    assert r.code == 2 and f"{f}:2:" in r.err and "negative" in r.err


def test_batch_mode_streams_the_further_inputs_and_their_gradients(tmp_path):
    # a file (N counted first) and the same piped (rows spooled until N is known), both against the API's numbers
    rng = np.random.default_rng(11)
    a, pos, neg = rng.normal(size=(3, 3000, 2))
    f = tmp_path / "t.csv"
    np.savetxt(f, np.column_stack([pos, a, neg]), delimiter=",", header="y0,y1,a0,a1,n0,n1", comments="")
    args = ("triplet", "--target-cols", "y0,y1", "--pred-cols", "a0,a1", "--negative", "n0,n1", "-f", "csv")
    streamed, piped = run(*args, "--csv", f), run(*args, input=f.read_text())
    assert streamed.code == 0 and streamed.out == piped.out
    head, *rows = streamed.out.splitlines()
    # (each further gradient's columns named after its own input's columns: the gradient with respect to n0 is
    # grad_negative_n0)
    assert head == "loss,grad_a0,grad_a1,grad_target_y0,grad_target_y1,grad_negative_n0,grad_negative_n1"
    got = np.array([[float(v) for v in row.split(",")] for row in rows])
    d = np.loadtxt(f, delimiter=",", skiprows=1)
    r = lossgrad.triplet(d[:, :2], d[:, 2:4], negative=d[:, 4:])
    np.testing.assert_array_equal(got, np.column_stack([r.losses, r.grad, r.grads["target"], r.grads["negative"]]))


def test_compare_shows_the_further_gradients():
    # var 1e-8, e = 0.5: exact ½(1/v − e²/v²) at v = 1e-8, torch at its clamp 1e-6 (hand), each over N = 1
    r = run("compare", "gaussian-nll", "-y", "0", "-p", "0.5", "--var", "1e-8", "-f", "json")
    convs = r.json()["conventions"]
    assert convs["exact"]["grad_var"][0] == pytest.approx(0.5 * (1e8 - 0.25e16), rel=1e-12)
    assert convs["torch"]["grad_var"][0] == pytest.approx(0.5 * (1e6 - 0.25e12), rel=1e-12)
    r = run("compare", "gaussian-nll", "-y", "0", "-p", "0.5", "--var", "1e-8", "-f", "table")
    assert r.code == 0 and "grad_var under each convention:" in r.out


@pytest.mark.parametrize("args", [
    ["margin-ranking", "-y", "1,-1,1", "-p", "0.75,0.25,0.5", "--other", "0.5,0.25,1"],
    ["margin-ranking", "-y", "1,-1;1,1", "-p", "0.75,0.25;0.5,1", "--other", "0.5,0.25;1,1"],
    ["gaussian-nll", "-y", "1,2;3,4", "-p", "0.75,0.25;0.5,1", "--var", "0.5,0.25"],
    ["gaussian-nll", "-y", "1,2;3,4", "-p", "0.75,0.25;0.5,1", "--var", "0.5,0.25;1,2"]])
def test_compare_shapes_the_further_gradients_as_each_convention_alone(args):
    """compare's JSON gives each further gradient the shape the convention's own JSON gives it: the predictions'
    (a flat list for a flat --pred), or one value per sample."""
    convs = run("compare", *args, "-f", "json").json()["conventions"]
    for name, got in convs.items():
        alone = run(*args, "-c", name, "-f", "json").json()
        key = next(k for k in alone if k.startswith("grad_") and k != "grad_logits")
        assert got[key] == alone[key] and np.shape(got["grad"]) == np.shape(alone["grad"])


def test_api_names_the_input_in_errors():
    with pytest.raises(lossgrad.InputError, match="var"):
        lossgrad.gaussian_nll([1.0, 2.0], [1.0, 2.0], var=[1.0, np.nan])
    with pytest.raises(lossgrad.InputError, match="negative: is missing"):
        lossgrad.triplet([[1.0, 2.0]], [[1.0, 2.0]])
    # a scalar or a 3-D array where rows are due: said in words, not a traceback
    with pytest.raises(lossgrad.InputError, match=r"negative: has 1 value but p has 1 row of 2"):
        lossgrad.triplet([[1.0, 2.0]], [[0.0, 1.0]], negative=9.0)
    with pytest.raises(lossgrad.InputError, match=r"negative: has shape \[1, 1, 2\] but p has 1 row of 2"):
        lossgrad.triplet([[1.0, 2.0]], [[0.0, 1.0]], negative=[[[1.0, 2.0]]])


@pytest.mark.parametrize("q", [0.5, 1.0, 1.5, 3.0])
def test_triplet_exact_takes_the_subgradient_0_where_a_difference_is_0(q):
    # anchor (0, 0), positive (1, 0), negative (0.5, 0): the second coordinates are equal, so each distance is its
    # first coordinate's, 1 and 0.5 for any q, and the loss 1 − 0.5 + 1 = 1.5 (by hand). The first coordinate's
    # derivatives are ±1 (sign of the difference); the second's is 0, where |x|^q has none for q ≤ 1: PyTorch's
    # norm backward takes 0 there, and so does exact (it raised in its cancellation path before)
    r = lossgrad.triplet([[1.0, 0.0]], [[0.0, 0.0]], negative=[[0.5, 0.0]], norm_degree=q)
    assert r.value == pytest.approx(1.5, rel=1e-15)
    assert r.grad.tolist() == [[0.0, 0.0]]
    np.testing.assert_allclose(r.grads["target"], [[1.0, 0.0]], rtol=1e-15)
    np.testing.assert_allclose(r.grads["negative"], [[-1.0, 0.0]], rtol=1e-15)
    assert run("triplet", "-p", "0,0", "-y", "1,0", "--negative", "0.5,0", "--norm-degree", q).code == 0


@pytest.mark.parametrize("convention", ["exact", "torch"])
def test_cosine_embedding_takes_a_negative_margin(convention):
    """PyTorch takes a margin of any sign (its documentation suggests −1 to 1). By hand: cos((3, 4), (1, 0)) = 0.6,
    label 1: 0.4; cos((4, 3), (0, 1)) = 0.6, label −1, margin −0.5: 0.6 + 0.5 = 1.1; mean 0.75."""
    r = run("cosine-embedding", "-y", "1,0;0,1", "-p", "3,4;4,3", "--label", "1,-1", "--margin", "-0.5",
            "-c", convention, "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["value"] == pytest.approx(0.75, rel=1e-12)


def test_a_label_is_one_per_sample_only(tmp_path):
    """cosine-embedding's --label is one per pair (sample): one per prediction was taken, and its first column used
    for every output, silently (labels "1,-1;1,-1" gave both pairs label 1); now it is an error that names the one
    form it takes, inline, in the API and from a tensor file."""
    args = ("cosine-embedding", "-y", "1,0;0,1", "-p", "3,4;4,3")
    for label in ("1,-1;1,-1", "1,-1,1"):
        r = run(*args, "--label", label)
        assert r.code == 2 and r.out == "" and r.err.strip().endswith("give one per sample (2)"), r.err
    with pytest.raises(lossgrad.InputError, match="give one per sample"):
        lossgrad.cosine_embedding([[1, 0], [0, 1]], [[3, 4], [4, 3]], label=[[1, -1], [1, -1]])
    np.save(tmp_path / "x1.npy", np.array([[3.0, 4.0], [4.0, 3.0]]))
    np.save(tmp_path / "x2.npy", np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.save(tmp_path / "label.npy", np.array([[1.0, -1.0], [1.0, -1.0]]))
    r = run("cosine-embedding", "-p", "x1.npy", "-y", "x2.npy", "--label", "label.npy", "-o", "out.npz", cwd=tmp_path)
    assert r.code == 2 and "give one per sample (shape [2])" in r.err and not (tmp_path / "out.npz").exists(), r.err
    # (by hand: cos((3, 4), (1, 0)) = 0.6, label 1: 0.4; cos((4, 3), (0, 1)) = 0.6, label −1: 0.6; mean 0.5)
    assert lossgrad.cosine_embedding([[1, 0], [0, 1]], [[3, 4], [4, 3]], label=[1, -1]).value == pytest.approx(0.5)


def test_nan_in_a_further_gradient_is_warned_and_counted():
    """x2 = (1e-300, 1e-300) against x1 = (1e300, 1e300) under torch: the squared norms overflow and underflow, and
    the gradient for the targets is NaN (as PyTorch's), while the predictions' is 0; the warning counts the NaN
    elements of every gradient and says which the first is in. Before, it said nothing."""
    r = lossgrad.cosine_embedding([[1e-300, 1e-300]], [[1e300, 1e300]], label=[1], convention="torch")
    assert np.isnan(r.grads["target"]).all() and not np.isnan(r.grad).any()
    assert [w for w in r.warnings if w.startswith("2 NaN gradient elements (first at row 0, column 0 of grad_target)")]


def test_triplet_margins_of_0_or_less_are_refused_under_torch_alone():
    """PyTorch's triplet_margin_loss raises ValueError for a margin ≤ 0; optax computes it, and so does exact. By
    hand, a = (0, 0), pos = (1, 0), neg = (0, 0.5), margin −0.25: 1 − 0.5 − 0.25 = 0.25."""
    from conftest import assert_usage_error

    args = ("triplet", "-y", "1,0", "-p", "0,0", "--negative", "0,0.5", "--margin", "-0.25")
    assert_usage_error(run(*args, "-c", "torch"), "error: --margin: PyTorch's triplet_margin_loss refuses a margin "
                                                  "of -0.25 (ValueError: margin must be greater than 0)")
    r = run(*args, "-f", "json")
    assert r.code == 0 and r.json()["value"] == 0.25
    assert "torch" in run("compare", *args, "-f", "json").json()["unsupported"]


def test_another_losss_input_is_said_as_such():
    """--other given to cosine-embedding, or --var to mse: which losses take it, and what this one takes (it was
    "No such option: --other (Possible options: --help)")."""
    from conftest import assert_usage_error

    assert_usage_error(run("cosine-embedding", "-y", "1,0;0,1", "-p", "3,4;4,3", "--label", "1,-1", "--other", "1,2"),
                       "error: --other: applies to margin-ranking, not to cosine-embedding; cosine-embedding takes "
                       "--label")
    assert_usage_error(run("mse", "-y", "1", "-p", "2", "--var", "1"),
                       "error: --var: applies to gaussian-nll, not to mse; mse takes a target and a prediction only")
