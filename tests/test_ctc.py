"""ctc: the frameworks' numbers recorded by scripts/golden_ctc.py (tests/golden/ctc.json), a case worked by hand,
finite differences, and the mpmath oracle."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import lossgrad

GOLDEN = json.loads((Path(__file__).resolve().parent / "golden" / "ctc.json").read_text())


def _num(x):
    return np.array(x, dtype=object).astype(np.float64) if isinstance(x, list) else float(x)


def _close(got, want, rtol, atol, what):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    with np.errstate(invalid="ignore"):
        ok = (got == want) | (np.isnan(got) & np.isnan(want)) | (np.abs(got - want) <= rtol * np.abs(want) + atol)
    assert ok.all(), f"{what}: got {got[~ok][:4]} want {want[~ok][:4]} at {np.argwhere(~ok)[:4].tolist()}"


def _golden_id(case):
    return f"{case['name']}-{case['convention']}-{case['dtype']}-{case['reduction']}" + (
        "-zero_infinity" if case["zero_infinity"] else "")


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=_golden_id)
def test_convention_reproduces_framework(case):
    kw = {"zero_infinity": True} if case["zero_infinity"] else {}
    r = lossgrad.ctc(np.array(case["labels"]), _num(case["pred"]), input_lengths=case["input_lengths"],
                     target_lengths=case["target_lengths"], from_logits=case["from_logits"],
                     convention=case["convention"], reduction=case["reduction"], dtype=case["dtype"],
                     blank=case["blank"], **kw)
    # (Keras computes ctc in float32; tf-keras' CTC op adds log-probabilities by float32's log1pf(expf(·)) in float64)
    f32 = case["dtype"] == "float32" or case["convention"] in ("keras", "tf-keras")
    # the recursions add T log-probabilities and take exponentials of their sums: each framework rounds those sums
    # at the size of the largest log-probability or of the loss (optax's 1e5 for an impossible alignment), T times
    pred, losses = _num(case["pred"]), _num(case["losses"])
    eps = np.finfo(np.float32 if f32 else np.float64).eps
    atol = 8 * eps * pred.shape[1] * (1 + np.abs(pred).max() + np.abs(losses[np.isfinite(losses)]).max())
    rtol = 8 * eps if f32 else 1e-12
    # tf-keras' gradient is γ's over the probabilities plus its ε: γ's rounding grows by 1/(e^x + ε)
    scale = 1 / (np.exp(pred) + 1e-7) if case["convention"] == "tf-keras" else 1
    want_losses = losses / (np.maximum(case["target_lengths"], 1) if case["convention"] == "torch"
                            and case["reduction"] == "mean" else 1)
    if case["convention"] == "tf-keras" and case["dtype"] == "float64":  # (the CTCLoss op in double: lowp_tf_ctc)
        rtol = atol = 0
    if case["convention"] == "torch":  # PyTorch's kernels reproduced (lossgrad.lowp_ctc): exactly its numbers
        rtol = atol = 0
        kind = np.dtype(case["dtype"]).type  # (its mean's division of each loss, one rounding in the dtype)
        want_losses = (losses.astype(kind) / np.maximum(case["target_lengths"], 1).astype(kind)
                       if case["reduction"] == "mean" else losses)
    _close(r.grad, _num(case["grad"]), rtol, atol * scale, "grad")
    _close(r.losses, want_losses, rtol, atol, "losses")
    if case["value"] is not None:
        _close(r.value, _num(case["value"]), rtol, atol, "value")


# ---------------------------------------------------------------- a case worked by hand

# T = 3 frames, classes (blank, 1, 2), labels 1,2. The probabilities, frame by frame:
#   y1 = (1/4, 1/2, 1/4), y2 = (1/2, 1/4, 1/4), y3 = (1/4, 1/4, 1/2)
# The alignments of length 3 that collapse to "1 2" (b = blank), and their probabilities:
#   1 2 b: 1/2·1/4·1/4 = 1/32      b 1 2: 1/4·1/4·1/2 = 1/32      1 b 2: 1/2·1/2·1/2 = 4/32
#   1 1 2: 1/2·1/4·1/2 = 2/32      1 2 2: 1/2·1/4·1/2 = 2/32
# p(l|x) = 10/32 = 5/16, so the loss is −log(5/16) = log 3.2.
# γ_t(k), the share of p(l|x) whose alignments emit k at frame t:
#   t1: b 1/10 (b 1 2), 1 9/10 (the other four), 2 0
#   t2: b 4/10 (1 b 2), 1 3/10 (b 1 2, 1 1 2), 2 3/10 (1 2 b, 1 2 2)
#   t3: b 1/10 (1 2 b), 1 0, 2 9/10
# ∂ℓ/∂(log y_tk) = −γ_tk; with respect to the logits (here log y: each row sums to 1) y_tk − γ_tk.
HAND_Y = np.array([[1 / 4, 1 / 2, 1 / 4], [1 / 2, 1 / 4, 1 / 4], [1 / 4, 1 / 4, 1 / 2]])
HAND_GAMMA = np.array([[1 / 10, 9 / 10, 0], [4 / 10, 3 / 10, 3 / 10], [1 / 10, 0, 9 / 10]])


def test_hand_case_log_probabilities():
    r = lossgrad.ctc([1, 2], np.log(HAND_Y))
    assert r.value == pytest.approx(math.log(3.2), rel=1e-15)
    np.testing.assert_allclose(r.grad, -HAND_GAMMA, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(r.grad_logits, HAND_Y - HAND_GAMMA, rtol=1e-14, atol=1e-16)


def test_hand_case_logits_and_torch():
    z = np.log(HAND_Y) + np.array([[3.0], [-1.0], [0.5]])  # (a constant per frame leaves the softmax as it is)
    r = lossgrad.ctc([1, 2], z, from_logits=True)
    assert r.value == pytest.approx(math.log(3.2), rel=1e-15)
    np.testing.assert_allclose(r.grad, HAND_Y - HAND_GAMMA, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(r.prob, HAND_Y, rtol=1e-15)
    # PyTorch: its backward's e^x − γ, and its mean divides by the target length, 2
    t = lossgrad.ctc([1, 2], np.log(HAND_Y), convention="torch")
    assert t.value == pytest.approx(math.log(3.2) / 2, rel=1e-15)
    np.testing.assert_allclose(t.grad, (HAND_Y - HAND_GAMMA) / 2, rtol=1e-14, atol=1e-16)


def test_hand_case_finite_differences():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(3, 4, 5))
    labels, il, tl = np.array([[1, 1, 3], [2, 4, 0], [3, 0, 0]]), [4, 4, 3], [3, 2, 1]
    for logits in (True, False):
        x = z if logits else z - np.log(np.exp(z).sum(-1, keepdims=True))
        r = lossgrad.ctc(labels, x, input_lengths=il, target_lengths=tl, from_logits=logits, reduction="sum")
        h = 1e-6
        for idx in [(0, 0, 0), (0, 3, 1), (1, 2, 4), (2, 1, 3), (2, 3, 2)]:
            up, down = x.copy(), x.copy()
            up[idx] += h
            down[idx] -= h
            f = [lossgrad.ctc(labels, a, input_lengths=il, target_lengths=tl, from_logits=logits,
                              reduction="sum").value for a in (up, down)]
            assert r.grad[idx] == pytest.approx((f[0] - f[1]) / (2 * h), rel=1e-6, abs=1e-8), idx
    assert (r.grad[2, 3] == 0).all()  # (a frame past the sequence's length)


# ---------------------------------------------------------------- mpmath


def _adversarial():
    rng = np.random.default_rng(11)
    yield "peaked", 30 * rng.normal(size=(6, 4)), [1, 2, 3]
    yield "very peaked", 300 * rng.normal(size=(5, 3)), [1, 2]
    yield "repeats at the minimum T", rng.normal(size=(5, 3)), [1, 1, 1]
    on_path = np.array([[9.0, 0, 0], [0, 9, 0], [9, 0, 0], [0, 9, 0], [0, 0, 9]])
    yield "minimum T, peaked on the path", on_path, [1, 1, 2]
    yield "long", rng.normal(size=(40, 5)), [1, 2, 2, 3, 4, 1, 1]
    yield "one label, many frames", 5 * rng.normal(size=(30, 3)), [2]
    # the most probable class of each frame spells the labels: p(l|x) is within e^(−gap) of 1, the loss that small
    path = np.eye(4)[[1, 1, 0, 3, 2, 2]]
    yield "aligned, gaps of 40 (loss 1e−17)", 40 * path + rng.normal(size=(6, 4)), [1, 3, 2]
    yield "aligned, gaps of 150 (loss 1e−65)", 150 * path + 5 * rng.normal(size=(6, 4)), [1, 3, 2]
    yield "aligned, two labels over many frames", 60 * np.eye(3)[[1] * 5 + [0] * 3 + [2] * 4] + rng.normal(
        size=(12, 3)), [1, 2]
    # spanning hundreds, drawn as benchmarks/accuracy.py draws them: p(l|x) within 1e−66 of 1; and a most probable
    # path that is no alignment, where class 2's softmax and γ at frame 2 agree to 50 digits
    yield "spanning hundreds, p near 1", np.array(
        [[361.59985579259904, 514.3045822523902, -190.979752952308, -131.91485451086606],
         [-227.42314380334417, -204.51032093076628, -76.59010902655538, 164.0589140544749]]), [1, 3]
    yield "spanning hundreds, softmax = γ to 50 digits", np.array(
        [[-384.6870388582326, 468.2518896281913, 80.81750099232097, -394.33425977868086],
         [-161.23848818685775, -316.06032107526494, 300.69891566407733, 186.30982384646364]]), [2]


@pytest.mark.parametrize("name,z,labels", list(_adversarial()), ids=[a[0] for a in _adversarial()])
def test_exact_within_4_ulp_of_mpmath(name, z, labels):
    import reference as R

    loss, grad = R.ctc(z, labels)
    r = lossgrad.ctc(labels, z, from_logits=True, reduction="sum")
    assert R.ulps(r.value, loss) <= 4, (r.value, loss)
    worst = max(R.ulps(r.grad[t, k], grad[t][k]) for t in range(len(z)) for k in range(z.shape[1]))
    assert worst <= 4, name
    # on the log-probabilities: the same loss, and −γ = (softmax − γ) − softmax
    lp = z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) - z.max(-1, keepdims=True)
    lossp, gradp = R.ctc(lp, labels, log_probs=True)
    rp = lossgrad.ctc(labels, lp, reduction="sum")
    assert R.ulps(rp.value, lossp) <= 4
    assert max(R.ulps(rp.grad[t, k], gradp[t][k]) for t in range(len(z)) for k in range(z.shape[1])) <= 4


# ---------------------------------------------------------------- errors and the command line


@pytest.mark.parametrize("kw,message", [
    ({"y": [1, 3], "p": np.zeros((3, 3))}, "is not a label"),
    ({"y": [0, 1], "p": np.zeros((3, 3))}, "is the blank (0)"),
    ({"y": [1], "p": np.zeros((3, 3)), "blank": 3}, "must be a class index in [0, 3)"),
    ({"y": [[1], [2]], "p": np.zeros((2, 3, 3)), "input_lengths": [3, 4]}, "input length"),
    ({"y": [[1], [2]], "p": np.zeros((2, 3, 3)), "target_lengths": [1]}, "2 whole numbers"),
    ({"y": [1], "p": np.zeros(3)}, "predictions [T, C]"),
    ({"y": [1], "p": np.zeros((3, 3)), "from_logits": True, "convention": "torch"}, "log-probabilities"),
    ({"y": [1], "p": np.zeros((3, 3)), "convention": "optax"}, "takes logits"),
    ({"y": [1], "p": np.zeros((3, 3)), "from_logits": True, "convention": "keras", "zero_infinity": True},
     "no zero_infinity"),
])
def test_bad_arguments_name_what_is_wrong(kw, message):
    y, p = kw.pop("y"), kw.pop("p")
    with pytest.raises(lossgrad.LossgradError) as e:
        lossgrad.ctc(y, p, **kw)
    assert message in str(e.value)


def test_impossible_alignment_is_an_infinite_loss_with_a_hint():
    r = lossgrad.ctc([1, 1], np.log(np.full((2, 3), 1 / 3)))
    assert r.value == math.inf and (r.grad == 0).all()
    assert any("zero_infinity" in w for w in r.warnings)
    t = lossgrad.ctc([1, 1], np.log(np.full((2, 3), 1 / 3)), convention="torch", zero_infinity=True)
    assert t.value == 0 and (t.grad == 0).all()


def test_time_major_is_the_batch_transposed():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(2, 4, 3))
    a = lossgrad.ctc([[1, 2], [2, 0]], z, target_lengths=[2, 1], from_logits=True)
    b = lossgrad.ctc([[1, 2], [2, 0]], z.transpose(1, 0, 2), target_lengths=[2, 1], from_logits=True,
                     time_major=True)
    assert a.value == b.value
    np.testing.assert_array_equal(a.grad, b.grad.transpose(1, 0, 2))


def test_command_line(tmp_path):
    from conftest import lossgrad as run

    pred = ";".join(",".join(repr(float(v)) for v in row) for row in np.log(HAND_Y))
    r = run("ctc", "--target", "1,2", "--pred", pred, "-f", "json", "-r", "sum")
    assert r.code == 0
    out = json.loads(r.out)
    assert out["value"] == pytest.approx(math.log(3.2), rel=1e-15)
    np.testing.assert_allclose(np.reshape(out["grad"], (3, 3)), -HAND_GAMMA, rtol=1e-14, atol=1e-16)
    bad = run("ctc", "--target", "1;2", "--pred", pred)
    assert bad.code == 2 and bad.err.startswith("error: --target") and not bad.out
    csv = run("ctc", "--csv", str(tmp_path / "x.csv"))
    assert csv.code == 2 and "inline" in csv.err


def test_check_names_pytorchs_division_by_target_length():
    """A plain mean of the sequences' losses (Keras', optax's, exact's) checked against PyTorch's: the answer names
    PyTorch's division by each target length, for the loss and for the gradient."""
    from conftest import lossgrad as run

    lp = np.log(HAND_Y)
    pred = ";".join(",".join(repr(float(v)) for v in row) for row in lp)
    mine = lossgrad.ctc([1, 2], lp, convention="torch", reduction="sum")  # e^x − γ, not divided by L = 2
    grad = ",".join(f"{v:.8g}" for v in mine.grad.ravel())
    for given, said in ((["--my-grad", grad], "yours is the gradient of the plain mean"),
                        (["--my-loss", f"{math.log(3.2):.8g}"], "yours is the plain mean of the sequences' losses")):
        r = run("check", "ctc", "--target", "1,2", "--pred", pred, *given, "-c", "torch", "-f", "json")
        assert r.code == 0, r.err
        findings = " ".join(json.loads(r.out)["findings"])
        assert said in findings and "divides each sequence's loss by its target length" in findings


def test_compare_shows_each_convention_from_logits():
    from conftest import lossgrad as run

    z = ";".join(",".join(repr(float(v)) for v in row) for row in np.log(HAND_Y) + 1)
    r = run("compare", "ctc", "--from-logits", "--target", "1,2", "--pred", z, "-f", "json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert set(out["conventions"]) == {"exact", "keras", "optax"}
    assert "torch" in out["unsupported"] and "tf-keras" in out["unsupported"]
    for conv, res in out["conventions"].items():
        # Keras computes in float32
        assert res["value"] == pytest.approx(math.log(3.2), rel=1e-7 if conv == "keras" else 1e-15), conv


def test_compare_names_tf_keras_differences():
    """tf-keras' ctc_batch_cost takes the probabilities e^x: compare shows it on log-probabilities and says why its
    numbers differ (its ε, its gradient with respect to the probabilities)."""
    from conftest import lossgrad as run

    pred = ";".join(",".join(repr(float(v)) for v in row) for row in np.log(HAND_Y))
    r = run("compare", "ctc", "--target", "1,2", "--pred", pred, "-f", "json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert set(out["conventions"]) == {"exact", "tf-keras", "torch"}
    why = " ".join(d["why"] for d in out["differences"] if d["convention"] == "tf-keras")
    assert "ε = 1e-07" in why and "with respect to the probabilities" in why
    bad = run("ctc", "--from-logits", "--target", "1,2", "--pred", pred, "-c", "tf-keras")
    assert bad.code == 2 and "ctc_batch_cost takes softmax probabilities" in bad.err


def test_evaluate_by_name_is_ctc():
    rng = np.random.default_rng(8)
    z = rng.normal(size=(2, 5, 4))
    kw = dict(target_lengths=[2, 1], input_lengths=[5, 3], from_logits=True, convention="optax", reduction="sum")
    a = lossgrad.evaluate("ctc", [[1, 3], [2, 0]], z, **kw)
    b = lossgrad.ctc([[1, 3], [2, 0]], z, **kw)
    assert a.value == b.value and (a.grad == b.grad).all()
    a = lossgrad.evaluate("ctc", [[1, 3], [2, 0]], z, sample_weight=[1, 2], **kw)  # (a weight per sequence)
    b = lossgrad.ctc([[1, 3], [2, 0]], z, sample_weight=[1, 2], **kw)
    assert a.value == b.value and (a.grad == b.grad).all()


def test_check_solves_zero_infinity():
    """A sequence with no alignment (labels 1,1 need three frames) that the user counted as 0, gradient 0."""
    from conftest import lossgrad as run

    pred = "-1.0986122886681098,-1.0986122886681098,-1.0986122886681098;" * 1 + \
           "-1.0986122886681098,-1.0986122886681098,-1.0986122886681098"
    r = run("check", "ctc", "--target", "1,1", "--pred", pred, "--my-loss", "0", "--my-grad", "0,0,0,0,0,0",
            "-f", "json")
    assert r.code == 0, r.err
    assert "zero_infinity" in r.out or "zero-infinity" in r.out


@pytest.mark.frameworks
@pytest.mark.parametrize("conv,modules", [("torch", ["torch"]), ("keras", ["tensorflow", "keras"]),
                                          ("optax", ["jax", "optax"]), ("tf-keras", ["tensorflow", "tf_keras"])])
def test_live_framework_agrees(conv, modules, live_rng):
    """scripts/golden_ctc.py's cases run live on fresh inputs, float64 and float32, each reduction."""
    import importlib.util
    import sys

    for m in modules:
        if importlib.util.find_spec(m) is None:
            pytest.skip(f"{m} is not installed")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import golden_ctc

    rng = live_rng
    case = {"labels": [[2, 2, 1], [3, 0, 0], [1, 3, 0]], "input_lengths": [7, 6, 2], "target_lengths": [3, 1, 2],
            "blank": 0, "from_logits": conv not in ("torch", "tf-keras"), "convention": conv, "zero_infinity": False,
            "name": "live"}
    z = 4 * rng.normal(size=(3, 7, 4))
    for dtype in ("float64", "float32"):
        for reduction in ("mean", "sum", "none"):
            want = next(golden_ctc.cases(only=(conv, dtype, reduction, z, case)))
            test_convention_reproduces_framework({**want, "name": "live"})


def test_exact_float32_is_the_float64_result_rounded():
    rng = np.random.default_rng(21)
    z = (3 * rng.normal(size=(2, 6, 4))).astype(np.float32).astype(np.float64)
    kw = dict(target_lengths=[3, 2], from_logits=True, reduction="none")
    r64 = lossgrad.ctc([[1, 2, 1], [3, 3, 0]], z, **kw)
    r32 = lossgrad.ctc([[1, 2, 1], [3, 3, 0]], z, dtype="float32", **kw)
    assert r32.grad.dtype == np.float32
    np.testing.assert_array_equal(r32.losses, r64.losses.astype(np.float32))
    np.testing.assert_array_equal(r32.grad, r64.grad.astype(np.float32))


def test_listed_with_its_conventions():
    from conftest import lossgrad as run

    r = run("losses", "-f", "json")
    row = next(x for x in json.loads(r.out) if x["loss"] == "ctc")
    assert row["conventions"] == {"log-probs": ["exact", "tf-keras", "torch"], "logits": ["exact", "keras", "optax"]}
    assert "--blank" in row["options"] and "--zero-infinity" in row["options"]


@pytest.mark.parametrize("name,z,labels", [a for a in _adversarial() if "aligned" in a[0] or "near 1" in a[0]],
                         ids=lambda a: a if isinstance(a, str) else "")
def test_long_double_loss_near_zero_keeps_its_digits(name, z, labels):
    """The long double recursions alone (no decimal refinement), where p(l|x) is within 1e−16 of 1: −log1p(−Q) from
    logits, and Σ_t m_t + log(U + V) from log-probabilities (log-softmax in float64 rounds the top class to 0, so
    p can exceed 1 and the loss be negative)."""
    import reference as R
    from lossgrad.losses.ctc import EXACT_DTYPE, sequence

    x = z.astype(EXACT_DTYPE)
    lp = x - x.max(-1, keepdims=True) - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))
    loss = sequence(lp, np.array(labels), 0, "exact", normalized=True)[0]
    assert R.ulps(float(loss), R.ctc(z, labels)[0]) <= 4
    lp64 = z - z.max(-1, keepdims=True) - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))
    loss = sequence(lp64.astype(EXACT_DTYPE), np.array(labels), 0, "exact")[0]
    assert R.ulps(float(loss), R.ctc(lp64, labels, log_probs=True)[0]) <= 4


# ---------------------------------------------------------------- batches from tensor files


def _files(tmp_path, layout="tbc", dtype=np.float64):
    """A small batch saved as PyTorch lays it out ([T, B, C] log-probabilities, padded labels [B, S], lengths), or
    batch-first; the golden cases' labels and lengths."""
    rng = np.random.default_rng(17)
    z = rng.normal(size=(6, 3, 5))
    lp = (z - np.log(np.exp(z).sum(-1, keepdims=True))).astype(dtype)
    np.save(tmp_path / "lp.npy", lp if layout == "tbc" else lp.transpose(1, 0, 2))
    np.save(tmp_path / "tgt.npy", np.array([[1, 2, 2], [3, 0, 0], [4, 1, 0]]))
    np.save(tmp_path / "il.npy", np.array([6, 5, 4]))
    np.save(tmp_path / "tl.npy", np.array([3, 1, 2]))
    return lp


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_tensor_files_are_the_api_batch(tmp_path, reduction):
    """`lossgrad ctc --pred lp.npy --target tgt.npy --input-lengths il.npy --target-lengths tl.npy -c torch -o
    out.npz` writes the losses and the gradient of the value the Python API gives for the same arrays (PyTorch's
    mean divides by the target lengths)."""
    from conftest import lossgrad as run

    lp = _files(tmp_path)
    r = run("ctc", "--pred", "lp.npy", "--target", "tgt.npy", "--input-lengths", "il.npy", "--target-lengths",
            "tl.npy", "-c", "torch", "-r", reduction, "-o", "out.npz", cwd=tmp_path)
    assert r.code == 0, r.err
    want = lossgrad.ctc(np.load(tmp_path / "tgt.npy"), lp, input_lengths=[6, 5, 4], target_lengths=[3, 1, 2],
                        time_major=True, convention="torch", reduction=reduction)
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(out["losses"], want.losses)
    np.testing.assert_array_equal(out["grad"], want.grad)
    assert out["grad"].shape == lp.shape
    if reduction != "none":
        assert f"value={want.value!r}" in r.err


def test_tensor_files_batch_first_pad_and_numbers(tmp_path):
    """[B, T, C] is read from the labels' B; lengths typed as numbers, and the target lengths found from --pad."""
    from conftest import lossgrad as run

    lp = _files(tmp_path, "btc", np.float32)
    r = run("ctc", "--pred", "lp.npy", "--target", "tgt.npy", "--input-lengths", "6,5,4", "--pad", "0",
            "-f", "json", "-o", "out.npz", cwd=tmp_path)
    assert r.code == 0, r.err
    want = lossgrad.ctc(np.load(tmp_path / "tgt.npy"), lp.astype(np.float64).transpose(1, 0, 2),
                        input_lengths=[6, 5, 4], target_lengths=[3, 1, 2], dtype="float32")
    out = np.load(tmp_path / "out.npz")
    assert out["grad"].dtype == np.float32 and out["grad"].shape == (3, 6, 5)
    np.testing.assert_array_equal(out["grad"], want.grad)
    assert json.loads(r.out)["value"] == pytest.approx(want.value, rel=1e-7)


@pytest.mark.parametrize("args,message", [
    (["--input-lengths", "il_bad.npy"], "error: --input-lengths: il_bad.npy[1]: 9.0 is not an input length"),
    (["--input-lengths", "6,5"], "error: --input-lengths: has 2 lengths for the 3 sequences"),
    (["--target", "tgt_bad.npy"], "error: --target: tgt_bad.npy[0, 2]: 7.0 is not a label"),
    (["--pred", "lp_nan.npy"], "error: --pred: lp_nan.npy[2, 1, 3]: nan is not a finite number"),
    (["--pred", "lp2d.npy"], "error: --pred: lp2d.npy has shape [3, 4]"),
    (["--batch-first"], "whose first axis is not the 3 sequences of --target"),
    (["--target-lengths", "3,1,2.5"], "error: --target-lengths: value 3: 2.5 is not a length"),
    (["--pad", "0"], "error: --pad: or --target-lengths"),
    (["--target", "tgt_none.npy"], "error: --target: tgt_none.npy is empty (shape [0, 3]); give an array"),
    (["--target", "tgt_short.npy"], "error: --target: tgt_short.npy is empty (shape [3, 0]); give an array"),
    (["--pred", "lp_t0.npy"], "error: --pred: lp_t0.npy is empty (shape [0, 3, 5]); give an array"),
    (["--pred", "lp_c0.npy"], "error: --pred: lp_c0.npy is empty (shape [6, 3, 0]); give an array"),
    (["--pred", "lp_b0.npy"], "error: --pred: lp_b0.npy is empty (shape [6, 0, 5]); give an array"),
    (["--input-lengths", "none.npy"], "error: --input-lengths: none.npy has 0 lengths for the 3 sequences"),
])
def test_tensor_files_errors_name_file_and_index(tmp_path, args, message):
    from conftest import assert_usage_error, lossgrad as run

    lp = _files(tmp_path)
    np.save(tmp_path / "il_bad.npy", np.array([6, 9, 4]))
    np.save(tmp_path / "tgt_bad.npy", np.array([[1, 2, 7], [3, 0, 0], [4, 1, 0]]))
    lp[2, 1, 3] = np.nan
    np.save(tmp_path / "lp_nan.npy", lp)
    np.save(tmp_path / "lp2d.npy", np.zeros((3, 4)))
    for name, shape in [("tgt_none", (0, 3)), ("tgt_short", (3, 0)), ("lp_t0", (0, 3, 5)), ("lp_c0", (6, 3, 0)),
                        ("lp_b0", (6, 0, 5)), ("none", (0,))]:
        np.save(tmp_path / f"{name}.npy", np.zeros(shape, dtype=np.int64 if "lp" not in name else np.float64))
    given = dict(zip(args[::2], args[1::2], strict=False))
    base = {"--pred": "lp.npy", "--target": "tgt.npy", "--target-lengths": "tl.npy"} | given
    flags = [a for a in args if a == "--batch-first"]
    r = run("ctc", *[x for kv in base.items() if kv[0] != "--batch-first" for x in kv], *flags, "-o", "o.npz",
            cwd=tmp_path)
    assert_usage_error(r, message)
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("pad", ["nan", "inf"])
def test_a_pad_value_that_no_label_can_equal_is_refused(tmp_path, pad):
    from conftest import assert_usage_error, lossgrad as run

    _files(tmp_path)
    assert_usage_error(run("ctc", "--pred", "lp.npy", "--target", "tgt.npy", "--pad", pad, cwd=tmp_path),
                       "error: --pad: must be a finite number")


def test_sequence_options_need_a_batch_of_files():
    from conftest import lossgrad as run

    r = run("ctc", "--target", "1,2", "--pred", "0,0,0;0,0,0;0,0,0", "--input-lengths", "3")
    assert r.code == 2 and "applies to batches of sequences from tensor files" in r.err


def _check_own_gradient(tmp_path, fmt: str, **options):
    """check of the _files batch, given lossgrad's own gradient under `options` as --my-grad mine.npy."""
    from conftest import lossgrad as run

    lp = _files(tmp_path)
    mine = lossgrad.ctc(np.load(tmp_path / "tgt.npy"), lp, input_lengths=[6, 5, 4], target_lengths=[3, 1, 2],
                        time_major=True, **options)
    np.save(tmp_path / "mine.npy", mine.grad)
    return run("check", "ctc", "--pred", "lp.npy", "--target", "tgt.npy", "--input-lengths", "il.npy",
               "--target-lengths", "tl.npy", "--my-grad", "mine.npy", "-f", fmt, cwd=tmp_path)


def test_check_finds_torch_from_tensor_files(tmp_path):
    """PyTorch's gradient written by lossgrad itself ([T, B, C], its target-length mean) is recognised by check
    from the same files."""

    r = _check_own_gradient(tmp_path, "json", convention="torch")
    assert r.code == 0, r.err
    assert json.loads(r.out)["match"]["convention"] == "torch"


@pytest.mark.parametrize("layout", ["tbc", "btc"])
def test_compare_and_check_give_cells_in_the_files_layout(tmp_path, layout):
    """compare's JSON gradients are the arrays -o writes, in the file's own layout, and every reason and finding
    names a cell (t, b, c) of a [T, B, C] file ((b, t, c) of a [B, T, C] one) that belongs to the sequence it
    speaks of; before, a [T, B, C] batch's gradients were its [B, T, C] numbers reshaped, and the cells sequence
    0's reasons named were frames 0 and 1 of every sequence."""
    from conftest import lossgrad as run

    _files(tmp_path, layout)
    args = ("--pred", "lp.npy", "--target", "tgt.npy", "--input-lengths", "il.npy", "--target-lengths", "tl.npy")
    b_axis = 1 if layout == "tbc" else 0
    r = run("compare", "ctc", *args, "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    for name in ("exact", "torch"):
        assert run("ctc", *args, "-c", name, "-o", f"{name}.npz", cwd=tmp_path).code == 0
        np.testing.assert_array_equal(np.array(out["conventions"][name]["grad"]),
                                      np.load(tmp_path / f"{name}.npz")["grad"])
    named = [(d["element"], int(d["why"].split("divides sequence ")[1].split("'")[0])) for d in out["differences"]
             if d["of"] == "grad" and "divides sequence" in d["why"]]
    assert named and all(element[b_axis] == seq for element, seq in named)
    assert {seq for _, seq in named} == {0, 1, 2}
    np.save(tmp_path / "mine.npy", np.load(tmp_path / "torch.npz")["grad"])
    r = run("check", "ctc", *args, "--my-grad", "mine.npy", "-f", "table", cwd=tmp_path)
    assert r.code == 0 and "(0, 0, 0), (0, 0, 1)" in r.out and ("(1, 0, 0)" in r.out) == (layout == "tbc"), r.out


def test_check_says_no_ratio_that_the_elements_do_not_hold(tmp_path):
    """exact's summed gradient (−γ) against torch's and tf-keras's means: the mean's 1/N is one difference, but no
    element is theirs times 3 (PyTorch divides by the target lengths and returns e^x − γ; tf-keras's is with respect
    to the probabilities), so check names the 1/N without calling the gradient 3× theirs."""

    r = _check_own_gradient(tmp_path, "table", reduction="sum")
    assert r.code == 0, r.err
    assert "3.000×" not in r.out and "is a sum where torch's is a mean over N=3" in r.out, r.out


def test_a_nan_or_infinity_is_said_one_way_wherever_it_is_read(tmp_path):
    """The same words for a NaN or an infinity typed, in a sequence batch's file and in a tensor file."""
    from conftest import assert_usage_error, lossgrad as run

    lp = _files(tmp_path)
    lp[2, 1, 3] = np.nan
    np.save(tmp_path / "lp_nan.npy", lp)
    np.save(tmp_path / "inf.npy", np.array([[0.5, np.inf]]))
    np.save(tmp_path / "y.npy", np.array([[0.5, 0.5]]))
    said = "is not a finite number; NaN and infinity are not valid inputs"
    assert_usage_error(run("ctc", "--pred", "lp_nan.npy", "--target", "tgt.npy", cwd=tmp_path),
                       f"error: --pred: lp_nan.npy[2, 1, 3]: nan {said}")
    assert_usage_error(run("mse", "--pred", "inf.npy", "--target", "y.npy", "-o", "o.npz", cwd=tmp_path),
                       f"error: --pred: inf.npy[0, 1]: inf {said}")
    assert_usage_error(run("mse", "-y", "1,2", "-p", "1,nan"), f"error: --pred: value 2: 'nan' {said}")


def test_check_gives_each_sequences_term_its_reason(tmp_path):
    """PyTorch's mean given as --my-loss: against tf-keras every sequence's term is apart, and each line says why;
    sequence 1 (target length 1, so PyTorch's division leaves it) only by tf-keras's ε, which check now names
    (before, the line gave the two numbers alone)."""
    from conftest import lossgrad as run

    lp = _files(tmp_path)
    mine = lossgrad.ctc(np.load(tmp_path / "tgt.npy"), lp, input_lengths=[6, 5, 4], target_lengths=[3, 1, 2],
                        time_major=True, convention="torch")
    r = run("check", "ctc", "--pred", "lp.npy", "--target", "tgt.npy", "--input-lengths", "il.npy",
            "--target-lengths", "tl.npy", "--my-loss", repr(mine.value), "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["match"]["convention"] == "torch"
    terms = [f for f in out["findings"] if f.startswith("sample ")]
    assert len(terms) == 3 and all("(" in t for t in terms), terms
    assert "ε = 1e-07" in next(t for t in terms if t.startswith("sample 1:"))
