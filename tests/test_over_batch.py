"""dice and tversky --over-batch: one loss over the whole batch, its sums over every sample's outputs together (Keras
3's default axis=None, MONAI's batch=True). Cases worked by hand and exact against mpmath; Keras' and MONAI's own
results recorded by scripts/golden_over_batch.py in tests/golden/over_batch.json (bit for bit in float32, float16
and bfloat16, on the recorded instruction set, and in float64);
the command line, tensor files, check and compare; the combinations refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, lossgrad as run
from reference import dice as dice_truth, tversky as tversky_truth

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_over_batch import digest, held, inputs  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "over_batch.json").read_text())
CPU = {"AVX2": "avx2", "AVX512": "avx512"}[DATA["versions"]["cpu_capability"]]
CONVENTION = {"keras": "keras", "monai": "torch"}


def _id(rec: dict) -> str:
    opts = "-".join(f"{k}{v}" for k, v in rec["options"].items())
    return (f"{rec['framework']}-{rec['loss']}-{rec['dtype']}-{rec['reduction']}-{opts}-"
            f"{'x'.join(map(str, rec['shape']))}-{rec['kind'].replace(' ', '_')}")


def _hex(xs: object) -> np.ndarray:
    return np.array([float.fromhex(v) for v in np.atleast_1d(np.asarray(xs, dtype=object))], dtype=np.float64)


def _same(got: object, want: np.ndarray, dtype: str) -> bool:
    """Bit for bit: in float64 (MONAI's on PyTorch's double kernels, σ's e^x SLEEF's and the C library's; Keras' on
    TensorFlow's, lowp_tf_seg on lowp_tf.WIDE), and in a lower dtype as float32 (NaN for NaN)."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    if dtype == "float64":
        return bool(np.array_equal(got, want, equal_nan=True))
    a, b = got.astype(np.float32), want.astype(np.float32)
    return np.array_equal(a.view(np.int32), b.view(np.int32)) or np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(r) for r in DATA["records"]])
def test_the_frameworks_whole_batch_losses(rec: dict) -> None:
    options = dict(rec["options"])
    y, p = (held(a, rec["dtype"]) for a in inputs(rec["seed"], tuple(rec["shape"]), rec["kind"],
                                                  bool(options.get("from_logits"))))
    assert digest(y, p) == rec["inputs_sha256"]  # (the inputs the framework was given, rebuilt)
    r = lossgrad.evaluate(rec["loss"], y, p, convention=CONVENTION[rec["framework"]], dtype=rec["dtype"],
                          reduction=rec["reduction"], cpu=CPU, over_batch=True, **options)
    assert r.losses.shape == (1,) and r.grad.shape == y.shape
    value = r.losses[0] if r.value is None else r.value
    assert _same(value, _hex(rec["value"]), rec["dtype"]), (value, float.fromhex(rec["value"]))
    if isinstance(rec["grad"], dict):
        kept = r.grad if rec["dtype"] == "float64" else np.float32(r.grad).astype(np.float64)
        assert digest(kept) == rec["grad"]["sha256"]
    else:
        assert _same(r.grad, _hex(rec["grad"]), rec["dtype"])


def test_the_records_cover_both_frameworks_every_dtype_and_reduction() -> None:
    seen = {(r["framework"], r["loss"], r["dtype"], r["reduction"]) for r in DATA["records"]}
    assert seen == {(f, loss, d, red) for f in ("keras", "monai") for loss in ("dice", "tversky")
                    for d in ("float64", "float32", "float16", "bfloat16") for red in ("mean", "sum", "none")}
    assert max(r["shape"][0] * r["shape"][1] for r in DATA["records"]) >= 200_000
    monai = {k for r in DATA["records"] if r["framework"] == "monai" for k in r["options"]}
    assert {"squared", "jaccard", "from_logits", "smooth", "smooth_dr"} <= monai


def test_a_batch_worked_by_hand() -> None:
    # y = [[1, 0], [1, 1]], p = [[1, 0], [0, 1]]: over the batch Σpy = 2, Σp = 2, Σy = 3, so dice is
    # 1 − 4/5 = 1/5 and ∂ℓ/∂p = (N − 2y·D)/D² with N = 4, D = 5: −6/25 where y = 1, 4/25 where y = 0. One loss per
    # sample instead: row 0 is perfect (0), row 1 is 1 − 2/3 = 1/3; their mean 1/6. tversky (α = β = ½): TP = 2,
    # FP = 0, FN = 1, ℓ = ½/(2 + ½) = 1/5 as dice; with α = 0.3, β = 0.7: 0.7/2.7 = 7/27.
    y, p = [[1.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]
    r = lossgrad.dice(y, p, over_batch=True)
    assert r.value == pytest.approx(1 / 5, rel=1e-15) and r.losses.tolist() == [r.value]
    assert np.allclose(r.grad, [[-6 / 25, 4 / 25], [-6 / 25, -6 / 25]], rtol=1e-15, atol=0)
    assert lossgrad.dice(y, p).value == pytest.approx(1 / 6, rel=1e-15)
    assert lossgrad.tversky(y, p, over_batch=True).value == pytest.approx(1 / 5, rel=1e-15)
    assert lossgrad.tversky(y, p, alpha=0.3, beta=0.7, over_batch=True).value == pytest.approx(7 / 27, rel=1e-15)
    # every reduction of one loss is that loss
    for reduction in ("sum", "none"):
        s = lossgrad.dice(y, p, over_batch=True, reduction=reduction)
        assert s.losses.tolist() == r.losses.tolist() and np.array_equal(s.grad, r.grad)


def _ulps(got: float, truth: object) -> float:
    return abs(got - float(truth)) / np.spacing(abs(float(truth)))


@pytest.mark.parametrize("loss", ["dice", "tversky"])
def test_exact_within_4_ulp_of_mpmath(loss: str) -> None:
    pytest.importorskip("mpmath")
    rng = np.random.default_rng(11)
    for scale in (1.0, 1e-3, 1e-9):
        y = np.where(rng.random((5, 7)) < 0.5, 1.0, np.round(rng.random((5, 7)), 3))
        p = rng.random((5, 7)) * scale
        kw = {"squared": True} if loss == "dice" and scale == 1e-3 else {"alpha": 0.3, "beta": 0.7} \
            if loss == "tversky" else {}
        r = lossgrad.evaluate(loss, y, p, over_batch=True, smooth=1e-5, **kw)
        truth = dice_truth if loss == "dice" else tversky_truth
        value, grad = truth(y.reshape(-1).tolist(), p.reshape(-1).tolist(), smooth=1e-5, **kw)
        assert _ulps(r.value, value) <= 4
        assert max(_ulps(g, t) for g, t in zip(r.grad.reshape(-1), grad, strict=True)) <= 4


def test_the_command_line_table_csv_and_json() -> None:
    args = ("dice", "-y", "1,0;1,1", "-p", "1,0;0,1", "--over-batch")
    table = run(*args, "-f", "table")
    assert table.code == 0, table.err
    assert "one loss over the whole batch of 4 outputs): value=0.2" in table.out
    assert " loss " not in table.out.splitlines()[2]  # (no loss column: the batch has one loss, the value)
    csv = run(*args, "-f", "csv")
    assert csv.out.splitlines()[0] == "grad_0,grad_1" and len(csv.out.splitlines()) == 3
    assert "value=0.2" in csv.err
    out = run(*args, "-f", "json").json()
    assert out["over_batch"] == {"outputs": 4} and out["n"] == 1 and out["losses"] == [out["value"]]
    assert np.allclose(out["grad"], [[-6 / 25, 4 / 25], [-6 / 25, -6 / 25]], rtol=1e-15, atol=0)
    explained = run(*args, "--explain", "-f", "table")
    assert "MONAI's batch=True" in explained.out


def test_a_bad_value_is_placed_in_the_batch_as_given() -> None:
    assert_usage_error(run("dice", "-y", "1,0,1;0,1,1", "-p", "0.5,0.5,0.5;0.5,0.5,1.5", "--over-batch"),
                       "--pred: row 2, value 3: 1.5 is outside [0, 1]")


def test_tensor_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    y, p = (rng.random((2, 3, 4)) < 0.5).astype(np.float32), rng.random((2, 3, 4)).astype(np.float32)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "p.npy", p)
    out = tmp_path / "out.npz"
    r = run("dice", "-y", tmp_path / "y.npy", "-p", tmp_path / "p.npy", "--over-batch", "-c", "keras", "-o", out)
    assert r.code == 0, r.err
    assert "one loss over the whole batch of 24 outputs" in r.err
    summary = run("dice", "-y", tmp_path / "y.npy", "-p", tmp_path / "p.npy", "--over-batch", "-f", "json").json()
    assert summary["over_batch"] == {"outputs": 24} and summary["losses_shape"] == [1]
    with np.load(out) as d:
        losses, grad = d["losses"], d["grad"]
    whole = lossgrad.dice(y.reshape(1, -1), p.reshape(1, -1), convention="keras", dtype="float32")
    assert losses.shape == (1,) and grad.shape == (2, 3, 4)
    assert losses.tolist() == np.float32(whole.losses).tolist()
    assert np.array_equal(grad.reshape(1, -1), np.float32(whole.grad))


def test_check_finds_keras_default_in_a_users_numbers() -> None:
    # Keras' Dice() as its users call it, axis=None, on a batch of 2 × 3 in float32: the record's gradient and loss
    rec = next(r for r in DATA["records"] if r["framework"] == "keras" and r["loss"] == "dice" and r["shape"] == [2, 3]
               and r["dtype"] == "float32" and r["reduction"] == "mean" and r["kind"] == "random")
    y, p = (held(a, "float32") for a in inputs(rec["seed"], (2, 3), "random", False))

    def rows(a: np.ndarray) -> str:
        return ";".join(",".join(repr(float(v)) for v in row) for row in a)

    r = run("check", "dice", "-y", rows(y), "-p", rows(p), "--dtype", "float32", "-f", "json",
            "--my-grad", ",".join(repr(float(v)) for v in _hex(rec["grad"])),
            "--my-loss", repr(float.fromhex(rec["value"])))
    assert r.code == 0, r.err
    found = r.json()
    assert found["match"]["options"].get("over_batch") is True
    assert any("your numbers need --over-batch = on, which you did not pass" in f for f in found["findings"])


def test_compare_says_one_loss() -> None:
    r = run("compare", "dice", "-y", "1,0;1,1", "-p", "0.9,0.2;0.4,0.7", "--over-batch", "-f", "table")
    assert r.code == 0, r.err
    assert "one loss over the whole batch: value and gradient under each convention" in r.out
    assert "the batch's loss" in r.out
    js = run("compare", "dice", "-y", "1,0;1,1", "-p", "0.9,0.2;0.4,0.7", "--over-batch", "-f", "json").json()
    assert js["over_batch"] == {"outputs": 4}
    assert {d["place"] for d in js["differences"] if d["of"] == "loss"} == {"the batch's loss"}


@pytest.mark.parametrize("extra, where, words", [
    (["--sample-weight", "1,2"], "--over-batch", "drop --sample-weight"),
    (["--micro-batches", "2"], "--micro-batches", "run each micro-batch on its own"),
])
def test_combinations_refused(extra: list, where: str, words: str) -> None:
    assert_usage_error(run("dice", "-y", "1,0;1,1", "-p", "0.9,0.2;0.4,0.7", "--over-batch", *extra), where, words)


def test_a_csv_batch_is_read_whole(tmp_path: Path) -> None:
    # (not streamed in blocks: the batch's one loss needs every row) the gradient row by row, the value on stderr
    f = tmp_path / "b.csv"
    f.write_text("y0,y1,p0,p1\n1,0,1,0\n1,1,0,1\n")
    r = run("dice", "--csv", f, "--target-cols", "y0,y1", "--pred-cols", "p0,p1", "--over-batch", "-f", "csv")
    assert r.code == 0, r.err
    assert r.out.splitlines() == ["grad_p0,grad_p1", "-0.24,0.16", "-0.24,-0.24"]
    assert "value=0.2" in r.err


def test_shards_and_arrays_of_more_axes(tmp_path: Path) -> None:
    # a glob of three shards [2, 4] is the batch [6, 4]; the API's [2, 3, 4] the same 24 values
    rng = np.random.default_rng(4)
    y, p = (rng.random((6, 4)) < 0.5).astype(np.float32), rng.random((6, 4)).astype(np.float32)
    for i in range(3):
        np.save(tmp_path / f"y_{i}.npy", y[2 * i:2 * i + 2])
        np.save(tmp_path / f"p_{i}.npy", p[2 * i:2 * i + 2])
    out = tmp_path / "out.npz"
    r = run("dice", "-y", str(tmp_path / "y_*.npy"), "-p", str(tmp_path / "p_*.npy"), "--over-batch", "-o", out)
    assert r.code == 0, r.err
    whole = lossgrad.dice(y, p, over_batch=True, dtype="float32")
    with np.load(out) as d:
        assert d["losses"].tolist() == np.float32(whole.losses).tolist()
        assert np.array_equal(d["grad"], np.float32(whole.grad))
    three = lossgrad.dice(y.reshape(2, 3, 4), p.reshape(2, 3, 4), over_batch=True, dtype="float32")
    assert three.losses.shape == (1,) and three.value == whole.value
    assert np.array_equal(three.grad.reshape(6, 4), whole.grad)


def test_one_loss_per_sample_keeps_the_leading_shape(tmp_path: Path) -> None:
    # without --over-batch a [1, 1, 4] tensor is one sample whose loss keeps the leading shape [1, 1]
    np.save(tmp_path / "y.npy", np.array([[[1, 0, 1, 0]]], dtype=np.float32))
    np.save(tmp_path / "p.npy", np.array([[[0.9, 0.2, 0.7, 0.3]]], dtype=np.float32))
    out = tmp_path / "out.npz"
    assert run("dice", "-y", tmp_path / "y.npy", "-p", tmp_path / "p.npy", "-o", out).code == 0
    with np.load(out) as d:
        assert d["losses"].shape == (1, 1)


def test_an_all_zero_batch_is_said_as_the_batch() -> None:
    assert_usage_error(run("dice", "-y", "0,0;0,0", "-p", "0,0;0,0", "--over-batch"),
                       "the whole batch's predictions and targets are all 0 (--over-batch)", "give --smooth")


def test_check_tries_it_off_when_given() -> None:
    # the per-sample gradient of y = [[1, 0], [1, 1]], p = [[1, 0], [0, 1]] (the batch above): row 0 is perfect,
    # (N − 2y·D)/D² with N = D = 2: −1/2 where y = 1, 1/2 where y = 0; row 1, N = 2, D = 3: −4/9 (y = 1); the
    # mean over 2 halves them
    grad = "-0.25,0.25;-0.2222222222222222,-0.2222222222222222"
    r = run("check", "dice", "-y", "1,0;1,1", "-p", "1,0;0,1", "--over-batch", "--my-grad", grad, "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["match"]["options"] == {"over_batch": False}
    assert any("--over-batch = off, where you passed --over-batch = on" in f for f in r.json()["findings"])
    assert_usage_error(run("check", "dice", "-y", "1,0;1,1", "-p", "1,0;0,1", "--over-batch", "--micro-batches",
                           "2", "--my-grad", grad), "--micro-batches", "run each micro-batch on its own")


def test_reduction_none_to_a_tensor_file(tmp_path: Path) -> None:
    np.save(tmp_path / "y.npy", np.array([[1.0, 0.0], [1.0, 1.0]]))
    np.save(tmp_path / "p.npy", np.array([[1.0, 0.0], [0.0, 1.0]]))
    out = tmp_path / "out.npz"
    r = run("dice", "-y", tmp_path / "y.npy", "-p", tmp_path / "p.npy", "--over-batch", "-r", "none", "-o", out)
    assert r.code == 0, r.err
    assert "one loss over the whole batch of 4 outputs): value=0.2" in r.err
    with np.load(out) as d:
        assert d["losses"].tolist() == [pytest.approx(0.2, rel=1e-15)]
