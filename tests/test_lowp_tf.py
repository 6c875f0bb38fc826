"""The keras and tf-keras conventions in float32, float16 and bfloat16 against TensorFlow's own CPU results,
recorded by scripts/golden_lowp_tf.py in tests/golden/lowp_tf.json: bit for bit (losses, reduced values,
gradients), and live against TensorFlow where it is installed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import lowp, lowp_tf

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_tf.json"
DATA = json.loads(GOLDEN.read_text())


def _f32(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _run(rec: dict, reduction: str) -> lossgrad.Result:
    kw: dict = dict(convention=rec["convention"], dtype=rec["dtype"], reduction=reduction)
    if rec["loss"] == "ce":
        kw.update(from_logits=True, labels=rec["labels"])
    return lossgrad.evaluate(rec["loss"], _f32(rec["target"]).astype(np.float64),
                             _f32(rec["pred"]).astype(np.float64), **kw)


def _id(i: int, rec: dict) -> str:
    return (f"{i}-{rec['convention']}-{rec['dtype']}-{rec['loss']}-{rec['labels']}-{np.shape(rec['pred'])}-"
            f"{rec['note']}")


@pytest.mark.parametrize("rec", DATA["cases"], ids=[_id(i, r) for i, r in enumerate(DATA["cases"])])
def test_results_are_tensorflows_bit_for_bit(rec: dict) -> None:
    r = _run(rec, "none")
    np.testing.assert_array_equal(r.losses.reshape(-1), _f32(rec["losses"]))  # (one output: (n, 1) elements)
    for reduction in ("sum", "mean"):
        r = _run(rec, reduction)
        want = rec[reduction]
        assert np.float32(r.value) == np.float32(want["value"]), reduction
        np.testing.assert_array_equal(r.grad, _f32(want["grad"]), err_msg=reduction)


def test_the_golden_file_covers_both_conventions_and_the_adversarial_rows() -> None:
    cases = DATA["cases"]
    assert {r["convention"] for r in cases} == {"keras", "tf-keras"}
    assert {r["dtype"] for r in cases} == {"float32", "float16", "bfloat16"}
    assert {(r["loss"], r["labels"]) for r in cases} == {("ce", "index"), ("ce", "onehot"), ("mse", None)}
    assert max(np.shape(r["pred"])[1] for r in cases) > 8192  # a row summed by the reducer's tree
    # saturated logits: e^(z − max) flushed to zero, so softmax has exact zeros
    saturated = [r for r in cases if r["note"].startswith("saturated")]
    assert saturated and all((_f32(r["sum"]["grad"]) == 0).any() for r in saturated)


def test_eigen_exp_and_log_are_not_the_correctly_rounded_ones() -> None:
    # the packet functions differ from e^x and log x rounded once somewhere on a grid: a reproduction that rounded
    # the float64 results could not pass the golden tests above
    x = np.linspace(-80, 80, 100001, dtype=np.float32)
    exact = np.exp(x.astype(np.float64)).astype(np.float32)
    assert (lowp_tf.pexp(x) != exact).any()
    assert (lowp_tf.libm_expf(x) == exact).mean() > 0.99
    y = np.exp(x / np.float32(2)).astype(np.float32)
    assert (lowp_tf.plog(y) != np.log(y.astype(np.float64)).astype(np.float32)).any()


def test_subnormal_results_are_flushed_to_zero() -> None:
    # e^−100 ≈ 3.7e−44 is a float32 subnormal: TensorFlow's exp gives 0 (its threads run flush-to-zero)
    assert lowp_tf.pexp(np.full(8, -100, np.float32)).tolist() == [0.0] * 8
    assert lowp_tf.libm_expf(np.array([-100], np.float32))[0] == 0


def test_other_losses_are_refused_with_a_reason() -> None:
    with pytest.raises(lossgrad.OptionError, match="kernels are reproduced for .*not for ce with"):
        lossgrad.evaluate("ce", [0, 1], [[0.5, 0.1], [0.3, 0.2]], convention="keras", dtype="bfloat16",
                          from_logits=True, ignore_index=1, sample_weight=[2.0, 1.0])
    assert "rcpps" in (lowp_tf.unsupported("bce", True, {}, {}, False) or "")
    assert "rcpps" in (lowp_tf.unsupported("ce", False, {}, {}, False) or "")
    assert lowp_tf.unsupported("ce", True, {"ignore_index": 3}, {}, True) == "ce with {ignore_index}"
    assert lowp_tf.unsupported("ce", True, {"ignore_index": 3}, {}, False) is None  # (tests/test_lowp_tf_ignore.py)
    assert lowp_tf.unsupported("mse", False, {}, {}, True) is None  # (sample weights: tests/test_weights_tf.py)
    # (label smoothing: tests/test_smoothing_tf.py)
    assert lowp_tf.unsupported("ce", True, {"label_smoothing": 0.1}, {}, True) is None


def test_keras_rounds_class_indexes_through_bfloat16_and_says_so() -> None:
    rec = next(r for r in DATA["cases"] if r["note"].startswith("labels") and r["dtype"] == "bfloat16"
               and r["convention"] == "keras")
    r = _run(rec, "mean")
    assert any("301 at row 0" in w and "became 300" in w for w in r.warnings), r.warnings
    # tf-keras casts the class indexes to int64 only: the same inputs need no warning there
    assert not _run({**rec, "convention": "tf-keras"}, "mean").warnings


def test_a_class_index_rounded_beyond_the_last_class_is_refused() -> None:
    # 998 lies halfway between bfloat16's 996 and 1000 (steps of 4 in [512, 1024)) and goes to the even 1000
    # (by hand): no class of 1000 logits, which TensorFlow's kernel refuses
    with pytest.raises(lossgrad.InputError, match="becomes class 1000 in bfloat16"):
        lossgrad.ce([998], np.zeros((1, 1000)), convention="keras", dtype="bfloat16", from_logits=True,
                    labels="index")


def test_a_class_index_float16_cannot_hold_is_refused() -> None:
    # float16's largest is 65,504, and 65,520 and above round to ∞, which TensorFlow casts to the int64
    # −9223372036854775808 and refuses ("Received a label value of -9223372036854775808 which is outside the valid
    # range", Keras 3.15.1 and TensorFlow 2.21.0 on CPU, for 65,520 and 70,000 over 100,000 classes; 65,519 rounds to
    # 65,504 and is a class)
    z = np.zeros((1, 100_000))
    for label in (65_520, 70_000):
        with pytest.raises(lossgrad.InputError, match="becomes ∞ in float16 .* no class"):
            lossgrad.ce([label], z, convention="keras", dtype="float16", from_logits=True, labels="index")
    r = lossgrad.ce([65_519], z, convention="keras", dtype="float16", from_logits=True, labels="index")
    assert any("65519 became 65504" in w for w in r.warnings), r.warnings


def test_unreproduced_float32_falls_back_to_the_formulas() -> None:
    # bce from logits under keras in float32 is not reproduced: the float32 formulas, still float32 results
    r = lossgrad.bce([[1.0, 0.0]], [[0.3, -2.0]], convention="keras", dtype="float32", from_logits=True)
    assert r.grad.dtype == np.float32 and np.isfinite(r.value)


@pytest.mark.frameworks
def test_live_tensorflow_matches_on_fresh_random_inputs(live_rng: np.random.Generator) -> None:
    pytest.importorskip("tensorflow")
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import golden_lowp_tf

    rng = live_rng
    for conv in ("keras", "tf-keras"):
        for dtype in ("float32", "float16", "bfloat16"):
            for loss, y, p, labels, note in golden_lowp_tf.ce_cases(rng)[:6] + golden_lowp_tf.mse_cases(rng)[:4]:
                rec = golden_lowp_tf.record(conv, loss, y, p, labels, note, dtype)
            test_results_are_tensorflows_bit_for_bit(rec)


def test_the_softmax_shown_is_the_kernels_own() -> None:
    # off the label, the sparse kernel's backprop is its softmax itself (softmax − 0), and the gradient of the sum
    # multiplies it by 1: TensorFlow's recorded gradient there is the softmax lossgrad shows
    for rec in (r for r in DATA["cases"] if r["labels"] == "index" and r["dtype"] == "float32"):
        r = _run(rec, "sum")
        grad = _f32(rec["sum"]["grad"])
        off = np.ones(grad.shape, dtype=bool)
        off[np.arange(grad.shape[0]), _f32(rec["target"])[:, 0].astype(int)] = False
        assert r.prob is not None
        np.testing.assert_array_equal(r.prob[off], grad[off])


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_mse_gradient_where_the_prediction_is_the_target_has_each_frameworks_sign(dtype: str) -> None:
    # tf-keras differentiates tf.math.squared_difference(p, y): TensorFlow's gradient 2g·(p − y) is +0 at p = y;
    # Keras 3 differentiates ops.square(y − p) and then the subtraction, −(2g·(y − p)), −0 there (by hand: the
    # other element, p − y = 1 over N = 2, is 1 in both)
    for convention, negative in (("tf-keras", False), ("keras", True)):
        grad = lossgrad.mse([[1.5, 2.0]], [[1.5, 3.0]], convention=convention, dtype=dtype).grad
        assert np.asarray(grad, dtype=np.float64).tolist() == [[0.0, 1.0]]
        assert bool(np.signbit(np.asarray(grad, dtype=np.float64)[0, 0])) is negative


@pytest.mark.parametrize("loss", ["ce", "categorical-focal"])
def test_class_indexes_of_a_large_vocabulary_take_memory_by_their_rows(loss: str) -> None:
    # the one-hot rows of class indexes are formed row by row: an identity matrix of 40,000 classes to index into
    # would take 6.4 GB
    import tracemalloc

    rng = np.random.default_rng(4)
    z = rng.normal(size=(2, 40_000))
    tracemalloc.start()
    try:
        r = lossgrad.evaluate(loss, np.array([7.0, 39_999.0]), z, from_logits=True, labels="index",
                              convention="keras", dtype="float32")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak
    assert r.grad.shape == z.shape and np.isfinite(r.value)
    assert np.argmin(r.grad[1]) == 39_999  # (the label's gradient: softmax − 1)


def test_running_sums_are_the_additions_one_by_one_even_through_a_flushed_subnormal() -> None:
    rng = np.random.default_rng(6)
    terms = rng.normal(scale=10.0, size=(5, 700, 8)).astype(np.float32)
    first = rng.normal(size=(5, 8)).astype(np.float32)
    # row 3 passes through a subnormal partial sum (1.5e-38 − 1.4e-38), which TensorFlow flushes to zero
    first[3], terms[3] = 0, 0
    terms[3, :3] = np.array([1.5e-38, -1.4e-38, 1.2e-38], dtype=np.float32)[:, None]

    def one_by_one(kind: lowp_tf.Kind) -> np.ndarray:
        acc = first
        for j in range(terms.shape[1]):
            acc = kind.add(acc, terms[:, j])
        return acc
    for kind in (lowp_tf.FLOAT32, lowp_tf.kind_of(lowp.half_dtype("bfloat16")), lowp_tf.kind_of(np.float16)):
        assert np.array_equal(kind.running(first, terms).view(np.int32), one_by_one(kind).view(np.int32))
    unflushed = np.add.accumulate(np.concatenate([first[:, None], terms], axis=1), axis=1, dtype=np.float32)
    assert (unflushed[3, -1] != one_by_one(lowp_tf.FLOAT32)[3]).all()  # (the flush is felt at the end)
