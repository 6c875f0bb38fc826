"""MONAI's options beyond tests/test_lowp_seg.py's: dice --jaccard, the Jaccard (IoU) loss
1 − (2Σpy + s)/(2(Σp + Σy − Σpy) + s) (MONAI's DiceLoss(jaccard=True)), and --smooth-dr, the denominator's smoothing
apart from the numerator's (MONAI's smooth_dr apart from smooth_nr) for dice and tversky. Exact against mpmath and
cases worked by hand; the torch convention against MONAI's own results on PyTorch's CPU kernels recorded by
scripts/golden_seg_monai.py in tests/golden/seg_monai.json (bit for bit in float32, float16 and bfloat16, on the
recorded instruction set, and in float64); Keras refuses both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, lossgrad as run

GOLDEN = Path(__file__).resolve().parent / "golden" / "seg_monai.json"
DATA = json.loads(GOLDEN.read_text())
CPU = {"AVX2": "avx2", "AVX512": "avx512"}[DATA["versions"]["cpu_capability"]]


def _f(xs: list) -> np.ndarray:
    return np.array([float(v) for v in xs], dtype=np.float64)


def _run(rec: dict) -> lossgrad.Result:
    shape = rec["shape"]
    return lossgrad.evaluate(rec["loss"], _f(rec["target"]).reshape(shape), _f(rec["pred"]).reshape(shape),
                             convention="torch", dtype=rec["dtype"], reduction=rec["reduction"], cpu=CPU,
                             **rec["options"])


def _id(i: int, rec: dict) -> str:
    opts = "-".join(f"{k}{v}" for k, v in rec["options"].items())
    shape = "x".join(map(str, rec["shape"]))
    return f"{rec['loss']}-{rec['dtype']}-{rec['reduction']}-{opts}-{shape}-{rec['name']}-{i}"


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(i, r) for i, r in enumerate(DATA["records"])])
def test_monai_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    assert not any("differ" in w for w in r.warnings), r.warnings  # (a NaN of MONAI's is said, as a result)
    want = {"losses": rec["losses"] and _f(rec["losses"]), "grad": _f(rec["grad"]),
            "value": rec["value"] and _f([rec["value"]])}
    got = {"losses": r.losses, "grad": r.grad, "value": r.value}
    for what, w in want.items():
        if w is None:
            continue
        if rec["dtype"] == "float64":  # (PyTorch's double kernels: bit for bit, σ's e^x SLEEF's)
            assert np.array_equal(np.asarray(got[what], dtype=np.float64).reshape(-1), w.reshape(-1),
                                  equal_nan=True), what
        else:  # (bit for bit in the dtype, NaN for NaN)
            a, b = np.float32(np.asarray(got[what], dtype=np.float64)).reshape(-1), np.float32(w).reshape(-1)
            assert np.array_equal(a.view(np.int32), b.view(np.int32)) or np.array_equal(a, b, equal_nan=True), what


def test_the_records_cover_every_dtype_option_and_reduction() -> None:
    jaccard = [r for r in DATA["records"] if r["options"].get("jaccard") and "smooth_dr" not in r["options"]]
    apart = [r for r in DATA["records"] if "smooth_dr" in r["options"]]
    assert len(jaccard) + len(apart) == len(DATA["records"])
    dtypes = {"float64", "float32", "float16", "bfloat16"}
    assert {r["dtype"] for r in jaccard} == {r["dtype"] for r in apart} == dtypes
    assert {(bool(r["options"].get("squared")), "smooth" in r["options"], bool(r["options"].get("from_logits")))
            for r in jaccard} == {(a, b, c) for a in (False, True) for b in (False, True) for c in (False, True)}
    assert {r["reduction"] for r in jaccard} == {"none", "sum", "mean"}
    assert {(r["loss"], bool(r["options"].get("jaccard")), bool(r["options"].get("squared")),
             bool(r["options"].get("from_logits"))) for r in apart} >= {
        (loss, False, False, logits) for loss in ("dice", "tversky") for logits in (False, True)} | {
        ("dice", True, False, False), ("dice", False, True, False)}
    assert {(r["options"].get("smooth"), r["options"]["smooth_dr"]) for r in apart} == {
        (1.0, 0.5), (None, 0.0), (0.0, 1.0), (1e-3, 2.0)}


def test_without_jaccard_the_records_are_dices() -> None:
    # MONAI's Jaccard differs from its Dice: without the halving of fp and fn every loss but a perfect one is larger
    rec = next(r for r in DATA["records"] if r["dtype"] == "float32" and r["reduction"] == "none"
               and r["options"].get("jaccard"))
    dice = lossgrad.dice(_f(rec["target"]).reshape(rec["shape"]), _f(rec["pred"]).reshape(rec["shape"]),
                         convention="torch", dtype="float32", reduction="none", cpu=CPU,
                         **{k: v for k, v in rec["options"].items() if k != "jaccard"})
    d, j = np.float32(dice.losses), np.float32(_f(rec["losses"]))
    assert np.all(d[j > 0] < j[j > 0]) and np.all(d[j == 0] == 0)  # (IoU = Dice/(2 − Dice) ≤ Dice)


def test_a_case_worked_by_hand() -> None:
    # y = (1, 0, 1, ½), p = (0.9, 0.2, 0.6, 0.4): I = Σpy = 1.7, Σp = 2.1, Σy = 2.5, union U = 2.9;
    # ℓ = 1 − 1.7/2.9 = 12/29; D = Σp + Σy = 4.6, J = 2U = 5.8, ∂ℓ/∂p_k = 2(2I − 2y_k·D)/J²:
    # (3.4 − 9.2)·2/33.64 = −10/29 for y = 1, 6.8/33.64 = 170/841 for y = 0, −2.4/33.64 = −60/841 for y = ½
    r = lossgrad.dice([1, 0, 1, 0.5], [0.9, 0.2, 0.6, 0.4], jaccard=True, reduction="none")
    assert r.losses[0] == pytest.approx(12 / 29, rel=1e-15)
    np.testing.assert_allclose(np.reshape(r.grad, -1), [-10 / 29, 170 / 841, -10 / 29, -60 / 841], rtol=1e-15)


def _truth(mpmath, ps: list, ys: list, squared: bool, s: float):
    """MONAI's Jaccard loss of one sample at mpmath's precision."""
    inter = mpmath.fsum(a * b for a, b in zip(ps, ys, strict=True))
    if squared:
        total = mpmath.fsum(a * a for a in ps) + mpmath.fsum(b * b for b in ys)
    else:
        total = mpmath.fsum(ps) + mpmath.fsum(ys)
    return 1 - (2 * inter + s) / (2 * (total - inter) + s)


def _ulps(got: float, truth) -> float:
    return abs(got - float(truth)) / np.spacing(abs(float(truth)))


def test_exact_against_mpmath() -> None:
    # masks hard and soft, predictions at three scales (down to 1e-9: the union far below 1), each smoothing
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 60
    rng = np.random.default_rng(5)
    for squared in (False, True):
        for s in (0.0, 1e-5, 1.0):
            y = np.where(rng.random((6, 9)) < 0.5, 1.0, np.round(rng.random((6, 9)), 3))
            p = rng.random((6, 9)) * rng.choice([1.0, 1e-3, 1e-9], (6, 1))
            r = lossgrad.dice(y, p, jaccard=True, squared=squared, smooth=s, reduction="none")
            for i in range(6):
                ys, ps = [mpmath.mpf(v) for v in y[i]], [mpmath.mpf(v) for v in p[i]]
                assert _ulps(r.losses[i], _truth(mpmath, ps, ys, squared, s)) <= 4
                for k in range(9):
                    g = mpmath.diff(lambda x, k=k, ps=ps, ys=ys, sq=squared, s=s:
                                    _truth(mpmath, ps[:k] + [x] + ps[k + 1:], ys, sq, s), ps[k])
                    assert _ulps(r.grad[i, k], g) <= 4, (squared, s, i, k)


def test_the_command_line() -> None:
    r = run("dice", "-y", "1,0,1,0.5", "-p", "0.9,0.2,0.6,0.4", "--jaccard", "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["value"] == pytest.approx(12 / 29, rel=1e-15)
    explained = run("dice", "-y", "1,0,1,0.5", "-p", "0.9,0.2,0.6,0.4", "--jaccard", "--explain")
    assert "Jaccard" in explained.out + explained.err


def test_keras_refuses_it_and_says_who_has_it() -> None:
    assert_usage_error(run("dice", "-y", "1,0", "-p", "0.4,0.3", "--jaccard", "-c", "keras"), "Jaccard",
                       "--convention torch")


def test_check_finds_the_jaccard_loss_in_a_users_gradient() -> None:
    r = run("check", "dice", "-y", "1,0,1,0.5", "-p", "0.9,0.2,0.6,0.4", "-f", "json",
            "--my-grad=" + ",".join(str(g) for g in (-10 / 29, 170 / 841, -10 / 29, -60 / 841)))
    assert r.code == 0, r.err
    assert r.json()["match"]["options"] == {"jaccard": True}
    assert any("--jaccard" in f for f in r.json()["findings"])


def test_smooth_dr_apart_worked_by_hand() -> None:
    # dice, y = (1, 0, 1, ½), p = (0.9, 0.2, 0.6, 0.4), s = 1 above and 0.5 below: N = 2·1.7 + 1 = 4.4,
    # D = 4.6 + 0.5 = 5.1, ℓ = 1 − 4.4/5.1 = 7/51, ∂ℓ/∂p_k = (N − 2y_k·D)/D²: −5.8/26.01 = −580/2601 for y = 1,
    # 4.4/26.01 = 440/2601 for y = 0, −0.7/26.01 = −70/2601 for y = ½
    r = lossgrad.dice([1, 0, 1, 0.5], [0.9, 0.2, 0.6, 0.4], smooth=1.0, smooth_dr=0.5, reduction="none")
    assert r.losses[0] == pytest.approx(7 / 51, rel=1e-15)
    np.testing.assert_allclose(np.reshape(r.grad, -1), [-580 / 2601, 440 / 2601, -580 / 2601, -70 / 2601],
                               rtol=1e-15)
    # tversky (α = β = ½): TP = 1.7, FP = Σp(1 − y) = 0.4, FN = Σ(1 − p)y = 0.8, U = 0.6; s = 0 above and 1 below:
    # ℓ = 1 − 1.7/(1.7 + 0.6 + 1) = 1.6/3.3 = 16/33
    t = lossgrad.tversky([1, 0, 1, 0.5], [0.9, 0.2, 0.6, 0.4], smooth=0.0, smooth_dr=1.0, reduction="none")
    assert t.losses[0] == pytest.approx(16 / 33, rel=1e-15)


def _truth_apart(mpmath, loss: str, ps: list, ys: list, nr: float, dr: float, jaccard: bool, squared: bool):
    """Dice (jaccard or not) or Tversky (α 0.3, β 0.7) with smooth_nr nr and smooth_dr dr, at mpmath's precision."""
    tp = mpmath.fsum(a * b for a, b in zip(ps, ys, strict=True))
    if loss == "tversky":
        fp = mpmath.fsum(a * (1 - b) for a, b in zip(ps, ys, strict=True))
        fn = mpmath.fsum((1 - a) * b for a, b in zip(ps, ys, strict=True))
        return 1 - (tp + nr) / (tp + mpmath.mpf("0.3") * fp + mpmath.mpf("0.7") * fn + dr)
    total = mpmath.fsum(a * a for a in ps) + mpmath.fsum(b * b for b in ys) if squared else mpmath.fsum(ps) + \
        mpmath.fsum(ys)
    return 1 - (2 * tp + nr) / ((2 * (total - tp) if jaccard else total) + dr)


@pytest.mark.parametrize("loss, jaccard, squared", [("dice", False, False), ("dice", False, True),
                                                    ("dice", True, False), ("dice", True, True),
                                                    ("tversky", False, False)])
def test_smooth_dr_exact_against_mpmath(loss: str, jaccard: bool, squared: bool) -> None:
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 60
    rng = np.random.default_rng(6)
    for nr, dr in ((1.0, 0.5), (0.0, 1.0), (1e-3, 2.0), (2.0, 1e-3)):
        y = np.where(rng.random((4, 7)) < 0.5, 1.0, np.round(rng.random((4, 7)), 3))
        p = rng.random((4, 7)) * rng.choice([1.0, 1e-3], (4, 1))
        opts = {"alpha": 0.3, "beta": 0.7} if loss == "tversky" else {"jaccard": jaccard, "squared": squared}
        r = lossgrad.evaluate(loss, y, p, smooth=nr, smooth_dr=dr, reduction="none", **opts)
        for i in range(4):
            ys, ps = [mpmath.mpf(v) for v in y[i]], [mpmath.mpf(v) for v in p[i]]
            truth = _truth_apart(mpmath, loss, ps, ys, nr, dr, jaccard, squared)
            assert _ulps(r.losses[i], truth) <= 4, (nr, dr, i)
            for k in range(7):
                g = mpmath.diff(lambda x, k=k, ps=ps, ys=ys, nr=nr, dr=dr: _truth_apart(
                    mpmath, loss, ps[:k] + [x] + ps[k + 1:], ys, nr, dr, jaccard, squared), ps[k])
                assert _ulps(r.grad[i, k], g) <= 4, (nr, dr, i, k)


def test_keras_refuses_smooth_dr() -> None:
    assert_usage_error(run("tversky", "-y", "1,0", "-p", "0.4,0.3", "--smooth-dr", "1", "-c", "keras"),
                       "--smooth-dr", "--eps")


def test_check_finds_a_plain_dice_gradient_checked_with_jaccard() -> None:
    # y = [[1, 0], [1, 1]], p = [[0.9, 0.2], [0.3, 0.7]], plain dice: row 0 N = 1.8, D = 2.1, (N − 2y·D)/D² is
    # −2.4/4.41 (y = 1) and 1.8/4.41 (y = 0); row 1 N = 2, D = 3: −4/9; the mean over 2 halves them. Checked with
    # --jaccard, check says to drop it (before, the fitted per-sample weights' arrays ended it in a failure)
    grad = ",".join(repr(v) for v in (-1.2 / 4.41, 0.9 / 4.41, -2 / 9, -2 / 9))
    r = run("check", "dice", "--jaccard", "-y", "1,0;1,1", "-p", "0.9,0.2;0.3,0.7", "--my-grad", grad, "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["match"]["options"] == {"jaccard": False}
    assert any("--jaccard = off, where you passed --jaccard = on" in f for f in r.json()["findings"])


@pytest.mark.frameworks
def test_live_float64(live_rng: np.random.Generator) -> None:
    # MONAI in float64 on fresh batches of probabilities and of logits (with jaccard, squared, both smoothings,
    # tversky; single samples long enough for the threads' split), bit for bit
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import golden_seg_monai

    rng = live_rng
    choices = [{}, {"squared": True}, {"jaccard": True}, {"squared": True, "jaccard": True, "smooth": 0.5},
               {"smooth": 1.0, "smooth_dr": 0.25}]
    for k in range(12):
        shape = (1, 40_001) if k == 0 else (int(rng.integers(1, 40)), int(rng.integers(1, 90)))
        y = np.where(rng.random(shape) < 0.5, 1.0, 0.0) if k % 2 else rng.random(shape)
        p = rng.random(shape) ** float(rng.choice([0.5, 1.0, 3.0]))
        loss = "tversky" if k % 3 == 2 else "dice"
        opts = dict({"alpha": 0.3, "beta": 0.7} if loss == "tversky" else choices[k % len(choices)])
        if k % 4 < 2:  # (logits at scales from 0.1 to 100)
            p, opts["from_logits"] = rng.normal(size=shape) * 10.0 ** rng.uniform(-1, 2), True
        for reduction in ("none", "sum", "mean"):
            rec = golden_seg_monai.record(loss, "float64", reduction, y, p, opts, "live")
            r = _run(rec)
            assert np.array_equal(r.grad.reshape(-1), _f(rec["grad"]), equal_nan=True), (loss, opts, shape)
            if rec["losses"] is not None:
                assert np.array_equal(r.losses, _f(rec["losses"]), equal_nan=True)
            else:
                assert r.value == float(rec["value"])


@pytest.mark.parametrize("dtype, p", [("float64", 1e-300), ("float32", 1e-30)])
def test_squared_single_pixel_keeps_its_norm(dtype: str, p: float) -> None:
    # one pixel, y = 0, --squared, MONAI's s = 1e-5: ‖p‖ over one element is |p| (vector_norm squares nothing), its
    # square underflows to 0, so ℓ = 1 − s/s = 0. tp = (P + G − D)/2 with D = ‖p − y‖²: ∂ℓ/∂tp = −2/s and
    # ∂ℓ/∂P = 1/s − 1/s = 0, so ∂ℓ/∂D = 1/s, and D's backward 2‖p‖·p/‖p‖ = 2p gives 2p/s (where a norm taken
    # as √(p²) = 0 would give 0)
    r = lossgrad.dice([[0.0]], [[p]], squared=True, convention="torch", reduction="sum", dtype=dtype)
    assert r.value == 0.0
    assert r.grad[0, 0] == pytest.approx(2 * p / 1e-5, rel=1e-6 if dtype == "float32" else 1e-14)


@pytest.mark.parametrize(("args", "why"), [
    (["--alpha", "0", "--beta", "0"], "no overlap, TP = Σpy = 0, and --alpha = 0 and --beta = 0 leave out the false "
                                      "positives and false negatives"),
    (["--alpha", "0"], "no overlap, TP = Σpy = 0, and --alpha = 0 leaves out the false positives"),
    ([], None)])
def test_a_tversky_denominator_of_0_says_why(args: list[str], why: str | None) -> None:
    """Row 0, p = (0.1, 0) against y = (0, 0): no overlap and no false negatives, so the denominator
    α·FP + β·FN is 0.1·α, 0 with α = 0; the error says so and names a nonzero α as a remedy (with α and β positive
    the row has a loss: 0.1α/(0.1α) = 1)."""
    r = run("tversky", "-y", "0,0;1,1", "-p", "0.1,0;0.5,0.5", *args, "-f", "json")
    if why is None:
        assert r.code == 0 and r.json()["losses"][0] == 1.0
        return
    assert_usage_error(r, f"error: --pred: row 1, value 1: 0.1 starts a row where the overlap's denominator is 0 "
                          f"({why})")
    assert r.err.strip().endswith("or a nonzero --alpha" + (" or --beta" if "--beta" in args else ""))
