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
from conftest import live_rounds
from lossgrad import lowp_xla
from lossgrad.errors import LossgradError

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_xla_sum2d.json"
DATA = json.loads(GOLDEN.read_text())
RECORDS, SUMS = DATA["records"], DATA["sums"]


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
    # in float32 its vectorized fused sum (2, 4, 8 or 16 and more rows of up to 32) is lossgrad's own too
    lanes = rec["loss"] == "mse" and rec["jit"] and rec["dtype"] == "float32" and rows <= 32 and cols <= 32 and \
        lowp_xla.fused_lanes(rows, cols) > 0
    return lowp_xla.sums_2d(np.zeros((rows, cols), dtype=np.float32)) and not single_row and not lanes


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(i, r) for i, r in enumerate(RECORDS)])
def test_reduced_value_bit_for_bit(rec: dict) -> None:
    if not _covered(rec):
        if rec["dtype"] == "float32":  # lossgrad's own float32 sum instead, with its warning
            r = _run(rec)
            assert r.value is not None and any("lossgrad's float32 sum" in w for w in r.warnings)
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
    # each of XLA's orders: in order, lanes of 2, 4 and 8 rows (with a tail), windows with and without padding
    widths = {lowp_xla.row_lanes(*np.shape(r["pred"])) for r in RECORDS if max(np.shape(r["pred"])) <= 32}
    assert widths == {0, 2, 4, 8}
    assert {(64, 6), (100, 3)} <= {np.shape(r["pred"]) for r in RECORDS if _covered(r)}


@pytest.mark.parametrize("rec", SUMS, ids=["x".join(map(str, r["shape"])) for r in SUMS])
def test_whole_array_sum_bit_for_bit(rec: dict) -> None:
    x = np.array(rec["x"], dtype=np.float32).reshape(rec["shape"])
    assert lowp_xla.xla_sum2d(x).view(np.int32) == np.float32(rec["value"]).view(np.int32)


def test_a_whole_sum_of_rows_beyond_ynnpacks_slice() -> None:
    # from 4096 elements YNNPACK sums whole rows in slices of 32768 elements (tests/test_ynn_sums.py); rows of more
    # than 32768 in 2 or 3 rows go in runs of 32768 (tests/golden/lowp_xla_wide.json holds JAX's values and
    # tests/test_lowp_xla.py undoes the rule; by hand, 2 × 32769 ones are 65538 in any order); from 4 rows the order
    # depends on the size and the sum is refused
    assert lowp_xla.xla_sum2d(np.ones((2, 32769), dtype=np.float32)) == 65538
    with pytest.raises(LossgradError, match="YNNPACK"):
        lowp_xla.xla_sum2d(np.ones((4, 32769), dtype=np.float32))


def test_sums_cover_each_split() -> None:
    shapes = {tuple(r["shape"]) for r in SUMS}
    assert any(n % 32 == 31 and n > 32 and k <= 32 for n, k in shapes)  # the row loop split at a padding of one
    assert any(k % 32 == 31 and k > 32 for n, k in shapes)  # the column loop's
    assert any(n * k >= 32 * 33 and n > 32 * 32 for n, k in shapes)  # two levels of windows


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
    for _ in range(live_rounds(4, 40)):
        cols = int(rng.integers(2, 80))
        rows = int(rng.integers(1, min(12000 // cols, 300) + 1))  # (from 4096 elements YNNPACK's whole-array sum)
        z = _rounded(rng.standard_normal((rows, cols)) * rng.choice([0.1, 1.0, 30.0], (rows, cols)), dtype)
        y = _rounded(rng.random((rows, cols)), dtype)
        for loss in ("mse", "bce"):
            for reduction in ("mean", "sum"):
                rec = _record(loss, dtype, jit, reduction, y, z)
                test_reduced_value_bit_for_bit(rec)


@pytest.mark.parametrize("loss", ["mse", "hinge", "huber"])
def test_a_long_batchs_value_is_ynnpacks_in_float32_and_bfloat16(loss: str, cli) -> None:
    # 5000 losses: XLA hands their sum to YNNPACK, whose order (Kahan levels included) lossgrad follows
    # (test_ynn_sums.py holds it to JAX's recorded sums): no warning, within float32 rounding of the float64 mean
    rng = np.random.default_rng(5)
    y, p = np.where(rng.random(5000) < 0.5, -1.0, 1.0), rng.standard_normal(5000)
    r = lossgrad.evaluate(loss, y, p, convention="optax", dtype="float32")
    own = lossgrad.evaluate(loss, y, p, convention="optax", dtype="float32", reduction="none").losses
    assert r.value == pytest.approx(float(np.mean(own.astype(np.float64))), rel=1e-6)
    assert not r.warnings
    assert not lossgrad.evaluate(loss, y, p, convention="optax", dtype="bfloat16").warnings
    csv = "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(y, p, strict=True))
    out = cli(loss, "-c", "optax", "--dtype", "float32", "--format", "csv", input=csv)
    assert out.code == 0 and "lossgrad's float32 sum" not in out.err
