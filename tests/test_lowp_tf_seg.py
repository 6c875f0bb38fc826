"""dice and tversky under keras in float32, float16 and bfloat16 against TensorFlow's own CPU results (Keras 3's
Dice and Tversky), recorded by scripts/golden_lowp_tf_seg.py in tests/golden/lowp_tf_seg.json: bit for bit
(losses, reduced values, gradients), from memory and a CSV batch, and live against TensorFlow where it is
installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad import kernels, lowp_tf_seg
from lossgrad.losses import segmentation
from tf_records import check_record, f32, same

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_tf_seg.json"
DATA = json.loads(GOLDEN.read_text())


def _kw(rec: dict) -> dict:
    return dict(convention="keras", dtype=rec["dtype"]) | (
        {"alpha": rec["alpha"], "beta": rec["beta"]} if rec["loss"] == "tversky" else {}) | (
        {"eps": rec["eps"]} if rec["eps"] is not None else {})


def _run(rec: dict, reduction: str) -> lossgrad.Result:
    return lossgrad.evaluate(rec["loss"], f32(rec["target"]).astype(np.float64),
                             f32(rec["pred"]).astype(np.float64), reduction=reduction, **_kw(rec))


def check(rec: dict) -> None:
    check_record(rec, _run)


def _id(i: int, rec: dict) -> str:
    return f"{i}-{rec['dtype']}-{rec['loss']}-{np.shape(rec['pred'])}-{rec['note']}"


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(i, r) for i, r in enumerate(DATA["records"])])
def test_results_are_tensorflows_bit_for_bit(rec: dict) -> None:
    check(rec)


def test_the_golden_file_covers_every_loss_dtype_and_the_adversarial_inputs() -> None:
    cases = DATA["records"]
    assert {(r["loss"], r["dtype"]) for r in cases} == {(loss, d) for loss in lowp_tf_seg.TAKES
                                                         for d in ("float32", "float16", "bfloat16")}
    assert max(np.shape(r["pred"])[1] for r in cases) > 8192  # a row summed by the reducer's tree
    assert {r["dtype"] for r in cases if r["eps"] is not None} == {"float32", "float16", "bfloat16"}
    # an all-zero row is 1 − 0/ε = 1 (by hand) in every dtype
    zero = [r for r in cases if r["note"].startswith("all zero")]
    assert zero and all(f32(r["losses"])[0] == 1 for r in zero)
    # the float32 formulas (numpy's sums, the gradient in one expression) differ from TensorFlow's losses and
    # gradients somewhere: the kernels are what make these agree
    rec = next(r for r in cases if r["dtype"] == "float32" and r["loss"] == "tversky" and r["note"] == "random"
               and np.shape(r["pred"]) == (16, 24))
    formulas = segmentation._tversky_keras(f32(rec["target"]), f32(rec["pred"]), rec["beta"], rec["alpha"], 1e-7)
    assert not same(formulas[0], rec["losses"]) and not same(formulas[1], rec["sum"]["grad"])


def test_dice_and_tversky_are_no_longer_refused_in_half_dtypes() -> None:
    assert kernels.unsupported("tf", "bfloat16", "dice", False, {}, {}, False) is None
    assert kernels.unsupported("tf", "bfloat16", "tversky", False, {"alpha": 0.3, "beta": 0.7}, {}, False) is None
    assert kernels.unsupported("tf", "bfloat16", "dice", False, {}, {}, True) is None  # (tests/test_weights_tf.py)
    with pytest.raises(lossgrad.OptionError, match="denominator only"):
        lossgrad.dice([[1.0, 0.0]], [[0.5, 0.5]], convention="keras", dtype="bfloat16", smooth=0.1)


def _rec(loss: str, dtype: str) -> dict:
    return next(r for r in DATA["records"] if (r["loss"], r["dtype"]) == (loss, dtype) and r["note"] == "random"
                and np.shape(r["pred"]) == (7, 5))


@pytest.mark.parametrize("loss,dtype", [("dice", "float16"), ("tversky", "bfloat16")])
def test_a_csv_batch_gives_the_same_bits(tmp_path: Path, loss: str, dtype: str) -> None:
    # a CSV batch's rows under the mean (each row's gradient carrying 1/N) are TensorFlow's recorded gradients
    rec = _rec(loss, dtype)
    y, p = f32(rec["target"]), f32(rec["pred"])
    head = ",".join([f"t{i}" for i in range(5)] + [f"p{i}" for i in range(5)])
    (tmp_path / "b.csv").write_text(head + "\n" + "".join(",".join(repr(float(a)) for a in row) + "\n"
                                                          for row in np.hstack([y, p])))
    ab = ["--alpha", str(rec["alpha"]), "--beta", str(rec["beta"])] if loss == "tversky" else []
    r = run(loss, "--csv", "b.csv", "--target-cols", "0:5", "--pred-cols", "5:10", "-c", "keras", "--dtype",
            dtype, "-r", "mean", "-f", "csv", *ab, cwd=tmp_path)
    assert r.code == 0, r.err
    rows = np.loadtxt(r.out.splitlines()[1:], delimiter=",")
    assert np.array_equal(rows[:, 0], f32(rec["losses"])) and np.array_equal(rows[:, 1:], f32(rec["mean"]["grad"]))


@pytest.mark.frameworks
def test_live_tensorflow_matches_on_fresh_random_inputs(live_rng: np.random.Generator) -> None:
    pytest.importorskip("tensorflow")
    pytest.importorskip("keras")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import golden_lowp_tf_seg

    rng = live_rng
    shapes = [(int(rng.integers(1, 30)), int(rng.integers(1, 300))) for _ in range(3)]
    for loss in lowp_tf_seg.TAKES:
        for _, y, p, note, a, b in golden_lowp_tf_seg.random_cases(rng, loss, shapes):
            for dtype in ("float32", "float16", "bfloat16"):
                check(golden_lowp_tf_seg.record(loss, y, p, note, dtype, a, b))
