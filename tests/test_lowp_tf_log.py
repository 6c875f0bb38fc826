"""The keras and tf-keras conventions for the losses whose gradients go through log and log1p (bce on
probabilities and from logits, kl, ce on probabilities, poisson, focal, categorical-focal) against TensorFlow's own
CPU results, recorded by scripts/golden_lowp_tf_log.py in tests/golden/lowp_tf_log.json: float16 and bfloat16 bit
for bit (losses, reduced values, gradients), in memory, from a CSV batch and from tensor files, and live where
TensorFlow is installed; in float32 their losses and values (the gradients: tests/test_lowp_tf_rcp.py)."""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import lossgrad
from lossgrad import lowp_tf_log
from tf_records import csv_mean_grad, tensor_mean_grad

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_tf_log.json"
DATA = json.loads(GOLDEN.read_text())
HALF = [r for r in DATA["cases"] if r["dtype"] != "float32"]
FLOAT32 = [r for r in DATA["cases"] if r["dtype"] == "float32"]


def _f32(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _options(rec: dict) -> dict:
    kw: dict = {k: v for k, v in rec["params"].items() if v is not None}
    return kw | ({"labels": "index"} if rec["labels"] else {})


def _run(rec: dict, reduction: str) -> lossgrad.Result:
    return lossgrad.evaluate(rec["loss"], _f32(rec["target"]).astype(np.float64),
                             _f32(rec["pred"]).astype(np.float64), convention=rec["convention"],
                             dtype=rec["dtype"], reduction=reduction, from_logits=rec["from_logits"], **_options(rec))


def _id(i: int, rec: dict) -> str:
    return (f"{i}-{rec['convention']}-{rec['dtype']}-{rec['loss']}{'-logits' if rec['from_logits'] else ''}-"
            f"{np.shape(rec['pred'])}-{rec['note']}")


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    return bool(np.array_equal(got, want, equal_nan=True))


@pytest.mark.parametrize("rec", HALF, ids=[_id(i, r) for i, r in enumerate(HALF)])
def test_half_dtypes_are_tensorflows_bit_for_bit(rec: dict) -> None:
    r = _run(rec, "none")
    assert _same(r.losses.reshape(-1), _f32(rec["losses"])), "losses"
    for reduction in ("sum", "mean"):
        r = _run(rec, reduction)
        want = rec[reduction]
        assert _same(np.float32(r.value), np.float32(want["value"])), reduction
        assert _same(r.grad, _f32(want["grad"])), reduction


def test_the_golden_file_covers_every_loss_and_the_adversarial_inputs() -> None:
    cases = DATA["cases"]
    assert {(r["convention"], r["dtype"]) for r in cases} == {(c, d) for c in ("keras", "tf-keras")
                                                              for d in ("float32", "float16", "bfloat16")}
    kinds = {(r["loss"], r["from_logits"], r["labels"]) for r in HALF}
    assert kinds == {("bce", False, None), ("bce", True, None), ("kl", False, None), ("ce", False, None),
                     ("ce", False, "index"), ("poisson", False, None), ("focal", False, None),
                     ("focal", True, None), ("categorical-focal", False, None), ("categorical-focal", True, None)}
    assert max(np.shape(r["pred"])[1] for r in HALF) > 8192  # (a row summed by the reducer's tree)
    # Keras' clip: 1 − ε is 1 in both half dtypes, so a probability of 1 makes log(1 − p) = −∞ under Keras 3
    # (times 1 − y = 0 there: NaN), where tf-keras adds ε inside the log
    edges = [r for r in HALF if r["note"] == "at and beyond the clip" and r["loss"] == "bce"]
    assert all(np.isnan(_f32(r["losses"])).any() for r in edges if r["convention"] == "keras")
    assert all(np.isfinite(_f32(r["losses"])).all() for r in edges if r["convention"] == "tf-keras")


def test_the_reciprocal_of_a_half_value_rounds_as_one_over_x() -> None:
    # Eigen's reciprocal is within 2 float32 ulps of 1/x; rounded to the dtype it can differ from 1/x rounded only
    # where 1/x lies that close to a midpoint of the dtype: never for bfloat16 (8 bits against float32's 24), and
    # for float16 only at the magnitudes 2^e·(2 − 2^−10), whose 1/x = 2^−e−1·(1 + 2^−11 + 2^−22 + ...) sits just
    # above a midpoint (by hand), which TensorFlow's reciprocal here rounds as 1/x does
    def near_midpoint(x: np.ndarray, dtype: object) -> np.ndarray:
        f = (1 / x.astype(np.float64)).astype(np.float32)
        ends = [np.nextafter(np.nextafter(f, d), d) for d in (np.float32(-np.inf), np.float32(np.inf))]
        with np.errstate(over="ignore"):
            return np.logical_or.reduce([e.astype(dtype) != f.astype(dtype) for e in ends])

    bf = np.arange(0x80, 0x7F00, dtype=np.uint16).view(ml_dtypes.bfloat16)  # (1/x normal and finite)
    assert not near_midpoint(bf.astype(np.float32), ml_dtypes.bfloat16).any()
    h = np.arange(1, 0x7C00, dtype=np.uint16).view(np.float16)
    f = (1 / h.astype(np.float64))
    near = near_midpoint(h.astype(np.float32), np.float16) & (f < 65504)
    assert near.sum() == 28 and (h[near].view(np.uint16) & 0x3FF == 0x3FF).all()


def test_float32_forward_is_tensorflows() -> None:
    # the kernels' float32 losses and values match TensorFlow's bit for bit (the gradients: tests/test_lowp_tf_rcp.py
    # and, for the focal losses, tests/test_lowp_tf_focal32.py)
    for rec in FLOAT32:
        if rec["labels"]:
            continue
        parts = lowp_tf_log.compute(rec["loss"], _f32(rec["target"]), _f32(rec["pred"]), None, None, {},
                                    params=rec["params"], keras2=rec["convention"] == "tf-keras",
                                    from_logits=rec["from_logits"])
        assert _same(parts.losses.reshape(-1), _f32(rec["losses"])), _id(0, rec)
        assert parts.mean_value is not None
        assert _same(np.float32(parts.mean_value(1)), np.float32(rec["sum"]["value"])), _id(0, rec)
    assert lowp_tf_log.unsupported("ce", True, {}, {}, False) is None  # (ce from logits: lowp_tf's own)


def test_refused_with_the_reason() -> None:
    with pytest.raises(lossgrad.OptionError, match="not for categorical-focal with class_alpha"):
        lossgrad.evaluate("categorical-focal", [[1.0, 0.0]], [[0.3, 0.7]], convention="tf-keras",
                          dtype="float16", class_alpha=[0.2, 0.8])
    # beyond 2^100 a bfloat16 reciprocal's Newton correction is flushed to zero: rcpps itself, the processor's
    with pytest.raises(lossgrad.OptionError, match="reciprocal of 1.*e\\+30 .*not reproduced"):
        lossgrad.evaluate("poisson", [[1.0, 2.0]], [[2.0 ** 100, 3.0]], convention="keras", dtype="bfloat16")
    assert np.isfinite(lossgrad.evaluate("poisson", [[1.0, 2.0]], [[2.0 ** 99, 3.0]], convention="keras",
                                         dtype="bfloat16").value)
    # (sample weights are reproduced: tests/test_weights_tf.py)
    assert not lossgrad.evaluate("kl", [[0.5, 0.5]], [[0.3, 0.7]], convention="keras", dtype="float16",
                                 sample_weight=[2.0]).warnings


def _record(loss: str, dtype: str, shape: tuple[int, int], from_logits: bool = False) -> dict:
    return next(r for r in HALF if r["loss"] == loss and r["dtype"] == dtype and r["from_logits"] == from_logits
                and np.shape(r["pred"]) == shape and r["convention"] == "keras" and not r["labels"])


def test_csv_batch_mean_writes_the_kernels_gradients(tmp_path: Path) -> None:
    rec = _record("bce", "bfloat16", (7, 5))
    csv_mean_grad(tmp_path, rec, "keras")


def test_tensor_files_mean_writes_the_kernels_gradients(tmp_path: Path) -> None:
    rec = _record("poisson", "float16", (50, 9))
    tensor_mean_grad(tmp_path, rec, "keras", np.float16)


@pytest.mark.frameworks
def test_live_tensorflow_matches_on_fresh_random_inputs(live_rng: np.random.Generator) -> None:
    pytest.importorskip("tensorflow")
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import golden_lowp_tf_log

    rng = live_rng
    picked = golden_lowp_tf_log.cases(rng)
    for conv in ("keras", "tf-keras"):
        for dtype in ("float16", "bfloat16"):
            for loss, y, p, logits, note, *more in picked:
                if p.size > 200 or (dtype == "bfloat16" and loss == "categorical-focal" and logits):
                    continue
                test_half_dtypes_are_tensorflows_bit_for_bit(
                    golden_lowp_tf_log.record(conv, loss, y, p, note, dtype, logits, *more))
