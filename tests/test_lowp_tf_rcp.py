"""Eigen's float32 reciprocal under the keras and tf-keras conventions (lossgrad.lowp_tf_rcp): the processor's
`rcpps` table as scripts/golden_lowp_tf_rcp.py read it back from TensorFlow's own reciprocal into
tests/golden/lowp_tf_rcp.json, TensorFlow's reciprocals of further probes bit for bit, and the float32 losses
through log and log1p (bce, kl, ce on probabilities, poisson) against TensorFlow's results recorded in
tests/golden/lowp_tf_log.json, bit for bit; live where TensorFlow is installed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import lowp_tf_log, lowp_tf_rcp
from tf_records import csv_mean_grad, tensor_mean_grad

GOLDEN = Path(__file__).resolve().parent / "golden"
DATA = json.loads((GOLDEN / "lowp_tf_rcp.json").read_text())
LOG = json.loads((GOLDEN / "lowp_tf_log.json").read_text())
FOCAL = ("focal", "categorical-focal")  # (their float32 pow, sigmoid and softmax: tests/test_lowp_tf_focal32.py)
FLOAT32 = [r for r in LOG["cases"] if r["dtype"] == "float32" and r["loss"] not in FOCAL]


def _f32(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    return bool(np.array_equal(got, want, equal_nan=True))


def _run(rec: dict, reduction: str) -> lossgrad.Result:
    kw: dict = {k: v for k, v in rec["params"].items() if v is not None}
    return lossgrad.evaluate(rec["loss"], _f32(rec["target"]).astype(np.float64),
                             _f32(rec["pred"]).astype(np.float64), convention=rec["convention"], dtype="float32",
                             reduction=reduction, from_logits=rec["from_logits"],
                             **kw | ({"labels": "index"} if rec["labels"] else {}))


def _id(i: int, rec: dict) -> str:
    return (f"{i}-{rec['convention']}-{rec['loss']}{'-logits' if rec['from_logits'] else ''}"
            f"{'-index' if rec['labels'] else ''}-{np.shape(rec['pred'])}-{rec['note']}")


def test_the_carried_table_is_the_recorded_one() -> None:
    assert lowp_tf_rcp.RCPPS == DATA["rcpps"]
    assert DATA["meta"]["cpu"] and "avx" in DATA["meta"]["cpu_flags"]


def test_the_estimates_are_rcpps_within_its_bound() -> None:
    # 12 significant bits, within the instruction set's documented 1.5·2^−12 of 1/x over each bucket of [1, 2)
    est = lowp_tf_rcp.ESTIMATES.astype(np.float64)
    assert not (lowp_tf_rcp.ESTIMATES.view(np.uint32) & 2047).any()
    lo, hi = 1 + np.arange(4096) / 4096, 1 + (np.arange(4096) + 1) / 4096
    assert (np.abs(est * lo - 1) < 1.5 * 2.0 ** -12).all() and (np.abs(est * hi - 1) < 1.5 * 2.0 ** -12).all()


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["note"] for c in DATA["cases"]])
def test_reciprocals_are_tensorflows_bit_for_bit(case: dict) -> None:
    x = np.array(case["x"], dtype=np.uint32).view(np.float32)
    assert np.array_equal(lowp_tf_rcp.reciprocal(x).view(np.uint32), np.array(case["got"], dtype=np.uint32))


@pytest.mark.parametrize("rec", FLOAT32, ids=[_id(i, r) for i, r in enumerate(FLOAT32)])
def test_float32_losses_through_log_are_tensorflows_bit_for_bit(rec: dict) -> None:
    r = _run(rec, "none")
    assert _same(r.losses.reshape(-1), _f32(rec["losses"])), "losses"
    for reduction in ("sum", "mean"):
        r = _run(rec, reduction)
        assert _same(np.float32(r.value), np.float32(rec[reduction]["value"])), reduction
        assert _same(r.grad, _f32(rec[reduction]["grad"])), reduction


def test_another_processors_table_changes_gradients_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # a stand-in table (1/x at each bucket's middle rounded to 12 bits, every step 0) for another processor's
    # rcpps: each reciprocal stays within Eigen's 2 ulps of 1/x, the losses and values stay TensorFlow's here, and
    # some gradient elements move
    stand_in = lowp_tf_rcp.table(lowp_tf_rcp.encode(np.zeros(4096, dtype=np.int64)))
    assert (stand_in != lowp_tf_rcp.ESTIMATES).sum() > 1000
    x = np.concatenate([_f32(r["pred"]).reshape(-1) for r in FLOAT32 if not r["from_logits"]])
    x = x[np.isfinite(x) & (x > 0)]
    exact = (1 / x.astype(np.float64)).astype(np.float32).view(np.int32)
    theirs = lowp_tf_rcp.reciprocal(x, stand_in)
    assert (np.abs(theirs.view(np.int32) - exact) <= 2).all() and (theirs != lowp_tf_rcp.reciprocal(x)).any()
    monkeypatch.setattr(lowp_tf_rcp, "ESTIMATES", stand_in)
    moved = 0
    for rec in FLOAT32:
        r = _run(rec, "sum")
        assert _same(np.float32(r.value), np.float32(rec["sum"]["value"]))
        moved += int((r.grad != _f32(rec["sum"]["grad"])).sum())
    assert moved > 0


def test_the_float32_kernels_cover_the_losses_through_log() -> None:
    for loss in ("bce", "kl", "poisson", *FOCAL):
        assert lowp_tf_log.unsupported(loss, False, {}, {}, False) is None
    r = lossgrad.bce([[1.0, 0.0]], [[0.3, 0.9]], convention="keras", dtype="float32")
    assert r.grad.dtype == np.float32 and not r.warnings


def _record(loss: str, shape: tuple[int, int], convention: str) -> dict:
    return next(r for r in FLOAT32 if r["loss"] == loss and not r["from_logits"] and not r["labels"]
                and np.shape(r["pred"]) == shape and r["convention"] == convention)


def test_csv_batch_mean_writes_the_kernels_gradients(tmp_path: Path) -> None:
    rec = _record("kl", (7, 5), "tf-keras")
    csv_mean_grad(tmp_path, rec, "tf-keras")


def test_tensor_files_mean_writes_the_kernels_gradients(tmp_path: Path) -> None:
    rec = _record("poisson", (9, 17), "keras")
    tensor_mean_grad(tmp_path, rec, "keras", np.float32)


@pytest.mark.frameworks
def test_live_tensorflow_matches_on_fresh_random_inputs(live_rng: np.random.Generator) -> None:
    tf = pytest.importorskip("tensorflow")
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import golden_lowp_tf_log

    rng = live_rng
    x = rng.integers(0, 2 ** 32, 8 * 4099, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = x[np.isfinite(x)]
    got = tf.math.reciprocal(tf.constant(x)).numpy()
    assert np.array_equal(lowp_tf_rcp.reciprocal(x).view(np.uint32), got.view(np.uint32))
    for conv in ("keras", "tf-keras"):
        for loss, y, p, logits, note, *more in golden_lowp_tf_log.cases(rng):
            if loss not in FOCAL and p.size <= 2000:
                test_float32_losses_through_log_are_tensorflows_bit_for_bit(
                    golden_lowp_tf_log.record(conv, loss, y, p, note, "float32", logits, *more))
