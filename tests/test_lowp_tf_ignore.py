"""Keras' sparse cross entropy with ignore_class under keras and tf-keras, in float32, float16 and bfloat16, against
TensorFlow's own CPU results recorded by scripts/golden_lowp_tf_ignore.py in tests/golden/lowp_tf_ignore.json: bit
for bit (losses, reduced values, gradients); and live against TensorFlow on a batch lossgrad takes in slices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import golden_script
from lossgrad import conventions, kernels, lowp_tf
from tf_records import check_record

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_tf_ignore.json"
DATA = json.loads(GOLDEN.read_text())
CPU = DATA["meta"]["cpu"]


def _f32(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _run(rec: dict, reduction: str, **kw: object) -> lossgrad.Result:
    return lossgrad.evaluate("ce", _f32(rec["target"]).astype(np.float64), _f32(rec["pred"]).astype(np.float64),
                             convention=rec["convention"], dtype=rec["dtype"], from_logits=True, labels="index",
                             ignore_index=rec["ignore_index"], reduction=reduction, cpu=CPU, **kw)


def _id(i: int, rec: dict) -> str:
    return f"{i}-{rec['convention']}-{rec['dtype']}-{np.shape(rec['pred'])}-{rec['note']}"


def _same(got: object, want: object) -> None:
    np.testing.assert_array_equal(np.asarray(got, dtype=np.float32), _f32(want))  # (NaN equals NaN here)


@pytest.mark.parametrize("rec", DATA["cases"], ids=[_id(i, r) for i, r in enumerate(DATA["cases"])])
def test_results_are_tensorflows_bit_for_bit(rec: dict) -> None:
    check_record(rec, _run, unsaid="not bit for bit")


def test_the_mean_weighs_the_kept_samples_n_over_k_not_one_over_k() -> None:
    # Keras' mean is reduce_sum(loss · N/K) / N: in float32 it can differ from the kept losses' sum over K, which
    # lossgrad's formulas (the exact convention) take
    recs = [r for r in DATA["cases"] if r["dtype"] == "float32" and r["convention"] == "keras"]
    apart = 0
    for rec in recs:
        kept = _f32(rec["losses"])[_f32(rec["target"])[:, 0] != rec["ignore_index"]]
        if kept.size:
            apart += float(np.float32(rec["mean"]["value"])) != float(np.sum(kept) / np.float32(kept.size))
    assert apart >= 1


def test_no_sample_kept() -> None:
    # Keras 3's divide_no_nan weighs no sample: value 0; tf-keras' N/0 is ∞, 0·∞ NaN; no gradient reaches either
    for conv, value in (("keras", "0.0"), ("tf-keras", "nan")):
        rec = next(r for r in DATA["cases"] if r["note"] == "all ignored" and r["convention"] == conv)
        assert rec["mean"]["value"] == value
        r = _run(rec, "mean")
        _same(r.value, value)
        assert not r.grad.any()
        assert r.warnings == [f"the mean's N is 0 (every sample weighs 0 or is left out): "
                              f"{conventions.get(conv).title} gives the value {float(value):g} and a gradient of 0"]


def test_still_refused_under_sample_weights() -> None:
    # Keras multiplies the mask into the sample weights; that product is not reproduced (lossgrad's float32
    # formulas, with a warning; refused in the half dtypes)
    assert lowp_tf.unsupported("ce", True, {"ignore_index": 3}, {}, True) == "ce with {ignore_index}"
    for dtype in ("float16", "bfloat16"):
        assert kernels.unsupported("tf", dtype, "ce", True, {"ignore_index": 3}, {}, False) is None
        with pytest.raises(lossgrad.OptionError, match="not for ce with ignore_index"):
            lossgrad.evaluate("ce", [0, 1], [[0.5, 0.1], [0.3, 0.2]], convention="keras", dtype=dtype,
                              from_logits=True, ignore_index=1, sample_weight=[2.0, 1.0])


@pytest.mark.frameworks
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_live_a_batch_taken_in_slices(dtype: str, live_rng: np.random.Generator) -> None:
    # more rows than a slice (lossgrad.evaluation.SLICE_ROWS): the count K and, for tf-keras, the place of the
    # kept rows in boolean_mask's tensor are the whole batch's
    g = golden_script("golden_lowp_tf_ignore", "tensorflow", "keras", "tf_keras")
    rows = 33000
    z = (live_rng.standard_normal((rows, 3)) * 4).astype(np.float32)
    y = live_rng.integers(0, 3, (rows, 1)).astype(np.float32)
    y[live_rng.random(rows) < 0.3] = -100
    for conv in ("keras", "tf-keras"):
        rec = json.loads(json.dumps(g.record(conv, y, z, -100, "slices", dtype)))
        for reduction in ("sum", "mean"):
            r = lossgrad.evaluate("ce", y.astype(np.float64), _f32(rec["pred"]).astype(np.float64),
                                  convention=conv, dtype=dtype, from_logits=True, labels="index", ignore_index=-100,
                                  reduction=reduction)
            _same(r.value, rec[reduction]["value"])
            _same(r.grad, rec[reduction]["grad"])
