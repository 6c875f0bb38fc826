"""torch.sum of float16 and bfloat16 tensors (lowp.half_sum: each load of 16 adds its two halves into 8 float32 lanes)
and the torch convention's losses whose results go through it, against PyTorch's own CPU results recorded by
scripts/golden_half_sums.py in tests/golden/half_sums.json. Every input there sums to a tie of the dtype, where
float32's order (one element a lane) rounds the other way: the records fail with that order put back. Also float32
cross entropy against probability rows, class-weighted or smoothed, over more than 32,768 elements: its value is
torch.sum's in the threads' two passes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import lowp
from test_lowp_more import assert_torch_results
from test_lowp_seg import array

GOLDEN = Path(__file__).resolve().parent / "golden" / "half_sums.json"
DATA = json.loads(GOLDEN.read_text())
EXTRA = ("label", "var")  # (the losses' further inputs the records hold)


def _sum_id(rec: dict) -> str:
    return f"{rec['dtype']}-{'x'.join(map(str, rec['x']['shape']))}"


def _loss_id(i: int, rec: dict) -> str:
    return f"{rec['loss']}-{rec['dtype']}-{rec['reduction']}-{i}"


def _sums(rec: dict) -> np.ndarray:
    return lowp.row_sums(array(rec["x"], rec["dtype"]), lowp.half_dtype(rec["dtype"]))


def _run(rec: dict) -> dict:
    dtype = rec["dtype"]
    extra = {k: array(rec[k], dtype).astype(np.float64) for k in EXTRA if k in rec}
    r = lossgrad.evaluate(rec["loss"], array(rec["target"], dtype).astype(np.float64),
                          array(rec["pred"], dtype).astype(np.float64), convention="torch", dtype=dtype,
                          reduction=rec["reduction"], **extra, **rec["options"])
    return {"losses": r.losses, "value": r.value, "grad": r.grad, **{f"grad_{k}": g for k, g in r.grads.items()}}


@pytest.mark.parametrize("rec", DATA["sums"], ids=[_sum_id(r) for r in DATA["sums"]])
def test_half_sums_bit_for_bit(rec: dict) -> None:
    assert_torch_results({"sum": _sums(rec)}, rec)


@pytest.mark.parametrize("rec", DATA["records"], ids=[_loss_id(i, r) for i, r in enumerate(DATA["records"])])
def test_losses_through_half_sums_bit_for_bit(rec: dict) -> None:
    assert_torch_results(_run(rec), rec)


def _apart(got: dict, rec: dict) -> bool:
    try:
        assert_torch_results(got, rec)
    except AssertionError:
        return True
    return False


def test_float32s_order_is_apart_from_every_half_record(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records were placed where the two orders round apart: with float32's, none is torch's
    monkeypatch.setattr(lowp, "summer", lambda half: lambda rows, n: lowp.RowSum(rows, n))
    assert all(_apart({"sum": _sums(rec)}, rec) for rec in DATA["sums"])
    assert all(_apart(_run(rec), rec) for rec in DATA["records"] if rec["dtype"] != "float32")


def test_one_pass_is_apart_from_every_large_float32_record(monkeypatch: pytest.MonkeyPatch) -> None:
    # float32 cross entropy over more than GRAIN elements: its value summed in one pass, not the threads' two
    large = [rec for rec in DATA["records"] if rec["dtype"] == "float32"]
    assert large and all(np.prod(rec["pred"]["shape"]) > lowp.GRAIN for rec in large)
    monkeypatch.setattr(lowp, "GRAIN", 10 ** 12)
    assert all(_apart(_run(rec), rec) for rec in large)


def test_golden_records_cover_the_kernels_paths() -> None:
    versions = DATA["versions"]
    assert versions["torch"].startswith("2.13.0") and versions["cpu_capability"] == "AVX512"
    lengths = {rec["x"]["shape"][1] for rec in DATA["sums"]}
    # rows shorter than a load (element by element), of one load and a tail, of many, and one row that PyTorch's
    # threads split
    assert {9, 24, 300} <= lengths and max(lengths) > lowp.GRAIN
    losses = {(rec["loss"], rec["dtype"]) for rec in DATA["records"]}
    assert losses == {(loss, dtype) for loss in ("cosine-embedding", "mse", "dice", "gaussian-nll", "ce")
                      for dtype in ("float16", "bfloat16")} | {("ce", "float32")}
