"""Keras' cross entropy under fit(class_weight=...), keras and tf-keras, in float32, float16 and bfloat16, against
TensorFlow's own CPU results recorded by scripts/golden_lowp_tf_class_weights.py in
tests/golden/lowp_tf_class_weights.json: bit for bit (weighted losses, reduced values, gradients). fit's class
weights are float32 sample weights of each row's class, which TensorFlow's kernels weigh as any sample weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import kernels
from tf_records import check_record

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_tf_class_weights.json"
DATA = json.loads(GOLDEN.read_text())


def _f32(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _run(rec: dict, reduction: str) -> lossgrad.Result:
    return lossgrad.evaluate("ce", _f32(rec["target"]).astype(np.float64), _f32(rec["pred"]).astype(np.float64),
                             convention=rec["convention"], dtype=rec["dtype"], from_logits=rec["from_logits"],
                             labels=rec["labels"], class_weights=rec["class_weights"], reduction=reduction,
                             cpu=DATA["meta"]["cpu"])


def _id(i: int, rec: dict) -> str:
    return (f"{i}-{rec['convention']}-{rec['dtype']}-{rec['labels']}-{'logits' if rec['from_logits'] else 'probs'}"
            f"-{np.shape(rec['pred'])}")


def _same(got: object, want: object) -> None:
    np.testing.assert_array_equal(np.asarray(got, dtype=np.float32), _f32(want))  # (NaN equals NaN here)


@pytest.mark.parametrize("rec", DATA["cases"], ids=[_id(i, r) for i, r in enumerate(DATA["cases"])])
def test_results_are_tensorflows_bit_for_bit(rec: dict) -> None:
    check_record(rec, _run, unsaid="not bit for bit")


def test_class_weights_are_fits_float32_sample_weights() -> None:
    # what fit made of the class weights: each row's class weight, rounded to float32 (the half dtype rounds it
    # again inside the loss)
    for rec in DATA["cases"]:
        y = _f32(rec["target"])
        cls = y[:, 0].astype(int) if rec["labels"] == "index" else np.argmax(y, axis=1)
        _same(np.float32(rec["class_weights"])[cls], rec["sample_weights"])


def test_not_with_ignore_index() -> None:
    # Keras multiplies the ignore_class mask into the sample weights; that product is not reproduced
    for dtype in ("float16", "bfloat16"):
        assert kernels.unsupported("tf", dtype, "ce", True, {"class_weights": np.ones(2)}, {}, False) is None
        with pytest.raises(lossgrad.OptionError, match="not for ce with ignore_index, class_weights"):
            lossgrad.evaluate("ce", [0, 1], [[0.5, 0.1], [0.3, 0.2]], convention="keras", dtype=dtype,
                              from_logits=True, ignore_index=1, class_weights=[1.0, 2.0])
