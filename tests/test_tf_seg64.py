"""dice and tversky under keras in float64 (lossgrad's default dtype): TensorFlow's double kernels as Keras 3's Dice
and Tversky run them (lowp_tf_seg on lowp_tf.WIDE: Eigen's reducer in packets of 4 doubles), against the results
scripts/golden_tf_seg64.py recorded in tests/golden/tf_seg64.json, bit for bit (losses, values, gradients), from
memory, a CSV batch and a tensor file; live against TensorFlow where it is installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad import kernels
from lossgrad.losses import segmentation
from tf_records import written_mean_matches

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_pairs64 import digest, matches  # noqa: E402
from golden_tf_seg64 import inputs  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "tf_seg64.json").read_text())


def _inputs(rec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    y, p, w = inputs(rec["seed"], tuple(rec["shape"]), rec["kind"])
    assert digest(y, p, *([] if w is None else [w])) == rec["inputs_sha256"]  # (the inputs Keras was given)
    return y, p, w


def _kw(rec: dict) -> dict:
    return dict(convention="keras", over_batch=rec["axis"] is None) | (
        {"alpha": rec["alpha"], "beta": rec["beta"]} if rec["loss"] == "tversky" else {}) | (
        {"eps": rec["eps"]} if rec["eps"] is not None else {})


def check(rec: dict, y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> None:
    if "losses" in rec:
        r = lossgrad.evaluate(rec["loss"], y, p, reduction="none", sample_weight=w, **_kw(rec))
        assert matches(r.losses, rec["losses"]) and not r.warnings
    for reduction in ("sum", "mean"):
        r = lossgrad.evaluate(rec["loss"], y, p, reduction=reduction, sample_weight=w, **_kw(rec))
        assert np.array_equal(r.value, float.fromhex(rec[reduction]["value"])), (reduction, r.value)
        assert matches(np.reshape(r.grad, y.shape), rec[reduction]["grad"]), reduction
        assert not r.warnings, r.warnings


def _id(i: int, rec: dict) -> str:
    return f"{i}-{rec['loss']}-{'x'.join(map(str, rec['shape']))}-{rec['kind']}" \
           f"{'-batch' if rec['axis'] is None else ''}{'-eps' if rec['eps'] else ''}"


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(i, r) for i, r in enumerate(DATA["records"])])
def test_results_are_tensorflows_double_kernels_bit_for_bit(rec: dict) -> None:
    check(rec, *_inputs(rec))


def test_the_records_cover_each_loss_kind_and_layout() -> None:
    recs = DATA["records"]
    for loss in ("dice", "tversky"):
        mine = [r for r in recs if r["loss"] == loss]
        assert {r["kind"] for r in mine} == {"random", "zeros", "subnormal", "weights"}
        assert {r["axis"] for r in mine} == {1, None} and any(r["eps"] for r in mine)
        assert {r["shape"][1] % 4 for r in mine} == {0, 1, 2, 3}  # (rows of every length modulo a packet)
        assert max(r["shape"][1] for r in mine) > 2 * 4096  # (the reducer's tree: leaves of 1024 packets of 4)


def test_an_all_zero_row_is_one_and_a_perfect_row_zero() -> None:
    # by hand: 1 − 2·0/(0 + 0 + ε) = 1; a perfect row of five 1s: 1 − 10/(5 + 5 + ε), the quotient rounded first
    rec = next(r for r in DATA["records"] if r["loss"] == "dice" and r["kind"] == "zeros")
    y, p, _ = _inputs(rec)
    losses = lossgrad.evaluate("dice", y, p, convention="keras", reduction="none").losses
    assert losses[0] == 1.0 and losses[3] == 1.0
    assert losses[2] == 1.0 - 10.0 / (10.0 + 1e-7) and 0 < losses[2] < 2e-8


def test_lossgrads_float64_formulas_miss_the_kernels_bits() -> None:
    # numpy's sums and the gradient in one expression (what float64 ran before) differ from TensorFlow's
    apart = 0
    for rec in DATA["records"]:
        if rec["loss"] != "dice" or rec["kind"] != "random" or rec["axis"] is None or rec["eps"]:
            continue
        y, p, _ = _inputs(rec)
        losses, grad = segmentation._dice_keras(y, p, 1e-7)
        apart += not (matches(losses, rec["losses"]) and matches(grad, rec["sum"]["grad"]))
    assert apart >= 3


def test_keras_float64_is_reproduced_and_tf_keras_has_no_dice() -> None:
    assert kernels.unsupported("tf", "float64", "dice", False, {}, {}, True) is None
    assert kernels.unsupported("tf", "float64", "tversky", False, {"alpha": 0.3, "beta": 0.7}, {}, False) is None
    with pytest.raises(lossgrad.OptionError, match="tf-keras has no Dice"):
        lossgrad.dice([[1.0, 0.0]], [[0.5, 0.5]], convention="tf-keras")


def _rec(loss: str, shape: tuple[int, int]) -> dict:
    return next(r for r in DATA["records"] if r["loss"] == loss and tuple(r["shape"]) == shape
                and r["kind"] == "random" and r["axis"] == 1 and not r["eps"])


@pytest.mark.parametrize("loss", ["dice", "tversky"])
def test_a_csv_batch_gives_the_same_bits(tmp_path: Path, loss: str) -> None:
    rec = _rec(loss, (20, 9))
    y, p, _ = _inputs(rec)
    k = y.shape[1]
    head = ",".join([f"t{i}" for i in range(k)] + [f"p{i}" for i in range(k)])
    (tmp_path / "b.csv").write_text(head + "\n" + "".join(",".join(repr(float(a)) for a in row) + "\n"
                                                          for row in np.hstack([y, p])))
    ab = ["--alpha", str(rec["alpha"]), "--beta", str(rec["beta"])] if loss == "tversky" else []
    r = run(loss, "--csv", "b.csv", "--target-cols", f"0:{k}", "--pred-cols", f"{k}:{2 * k}", "-c", "keras",
            "-r", "mean", "-f", "csv", *ab, cwd=tmp_path)
    assert r.code == 0, r.err
    rows = np.loadtxt(r.out.splitlines()[1:], delimiter=",")
    assert matches(rows[:, 0], rec["losses"]) and matches(rows[:, 1:], rec["mean"]["grad"])


def test_a_tensor_file_gives_the_same_bits(tmp_path: Path) -> None:
    rec = _rec("tversky", (5, 4097))
    y, p, _ = _inputs(rec)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "p.npy", p)
    r = run("tversky", "--target", "y.npy", "--pred", "p.npy", "-c", "keras", "--alpha", str(rec["alpha"]),
            "--beta", str(rec["beta"]), "-r", "mean", "-o", "out.npz", "-f", "json", cwd=tmp_path)
    written_mean_matches(r, tmp_path / "out.npz", rec)


@pytest.mark.frameworks
def test_live_tensorflow_matches_on_fresh_random_inputs(live_rng: np.random.Generator) -> None:
    pytest.importorskip("tensorflow")
    pytest.importorskip("keras")
    import golden_tf_seg64

    rng = live_rng
    for _ in range(6):
        loss = str(rng.choice(["dice", "tversky"]))
        cols = rng.integers(1, 300) if rng.random() < 0.8 else rng.integers(4000, 9000)  # (the tree's leaves)
        shape = (int(rng.integers(1, 40)), int(cols))
        kind = str(rng.choice(["random", "weights"])) if shape[0] > 1 else "random"
        a, b = (float(rng.choice([0.3, 0.5, 0.7])), float(rng.choice([0.2, 0.5, 1.0]))) if loss == "tversky" \
            else (0.5, 0.5)
        axis = None if kind == "random" and rng.random() < 0.3 else 1  # (over the batch: one loss, unweighed)
        rec = golden_tf_seg64.record(loss, int(rng.integers(2**31)), shape, kind, a, b, axis=axis)
        check(rec, *_inputs(rec))
