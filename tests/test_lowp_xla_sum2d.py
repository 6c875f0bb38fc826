"""The optax convention's reduced value over more than one output per sample (mse, bce from logits on [N, K]
arrays) against JAX's CPU results recorded by scripts/golden_lowp_xla_sum2d.py in tests/golden/lowp_xla_sum2d.json:
bit for bit where lossgrad reproduces XLA's order of the sum, refused (half dtypes) or lossgrad's own float32 sum
elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import lowp_xla
from lossgrad.errors import LossgradError

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_xla_sum2d.json"
RECORDS = json.loads(GOLDEN.read_text())["records"]


def _run(rec: dict) -> lossgrad.Result:
    kw = dict(convention="optax", dtype=rec["dtype"], reduction=rec["reduction"], jit=rec["jit"])
    if rec["loss"] == "bce":
        kw["from_logits"] = True
    return lossgrad.evaluate(rec["loss"], np.array(rec["target"], dtype=np.float32).astype(np.float64),
                             np.array(rec["pred"], dtype=np.float32).astype(np.float64), **kw)


def _id(i: int, rec: dict) -> str:
    shape = "x".join(map(str, np.shape(rec["pred"])))
    return f"{i}-{rec['loss']}-{rec['dtype']}-{'jit' if rec['jit'] else 'ops'}-{rec['reduction']}-{shape}"


def _covered(rec: dict) -> bool:
    rows, cols = np.shape(rec["pred"])
    # under jit squared_error's fused sum over one row of up to 32 keeps an order not pinned down
    single_row = rec["loss"] == "mse" and rec["jit"] and rec["dtype"] != "float16" and rows == 1 and cols <= 32
    return lowp_xla.sums_2d(np.zeros((rows, cols), dtype=np.float32)) and not single_row


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(i, r) for i, r in enumerate(RECORDS)])
def test_reduced_value_bit_for_bit(rec: dict) -> None:
    if not _covered(rec):
        if rec["dtype"] == "float32":  # lossgrad's own float32 sum instead, with its warning
            assert _run(rec).value is not None
        else:
            with pytest.raises(LossgradError, match="is not reproduced"):
                _run(rec)
        return
    r = _run(rec)
    got, want = np.float32(r.value), np.float32(rec["value"])
    assert got.view(np.int32) == want.view(np.int32), (got, want)


def test_golden_covers_both_sides() -> None:
    covered = [_covered(r) for r in RECORDS]
    assert any(covered) and not all(covered)


@pytest.mark.frameworks
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("jit", [True, False])
def test_live_random(dtype: str, jit: bool, live_rng: np.random.Generator, jax_x32: None) -> None:
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from golden_lowp_xla import _record, _rounded

    rng = live_rng
    for _ in range(6):
        rows, cols = int(rng.choice([1, 3, 5, 7, 9, 11, 13, 15])), int(rng.integers(2, 33))
        z = _rounded(rng.standard_normal((rows, cols)) * rng.choice([0.1, 1.0, 30.0], (rows, cols)), dtype)
        y = _rounded(rng.random((rows, cols)), dtype)
        for loss in ("mse", "bce"):
            for reduction in ("mean", "sum"):
                rec = _record(loss, dtype, jit, reduction, y, z)
                test_reduced_value_bit_for_bit(rec)
