"""optax's cosine_distance under jax.jit in float32, bfloat16 and float16 (lossgrad.lowp_xla_cos) against JAX's own
CPU results recorded by scripts/golden_lowp_xla_cos.py in tests/golden/lowp_xla_cos.json, bit for bit: losses,
reduced value and gradient, and against live JAX on fresh batches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import golden_script, live_rounds
from lossgrad import lowp_xla_cos
from test_lowp_xla_more import _run, compare

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_xla_cos.json"
DATA = json.loads(GOLDEN.read_text())
RECORDS = DATA["records"]


def _id(i: int, rec: dict) -> str:
    return f"{i}-{rec['dtype']}-{rec['name']}-{rec['reduction']}"


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(i, r) for i, r in enumerate(RECORDS)])
def test_jax_cpu_bit_for_bit_under_jit(rec: dict) -> None:
    r = _run(rec)
    assert not any("float32 formulas" in w for w in r.warnings)
    assert not any(compare(rec, r).values())


def test_the_golden_file_covers_each_of_xlas_ways() -> None:
    assert {(r["dtype"], r["jit"], r["loss"]) for r in RECORDS} == {
        (dtype, True, "cosine") for dtype in ("float32", "bfloat16", "float16")}
    shapes = {np.shape(r["pred"]) for r in RECORDS if r["dtype"] == "float32"}
    features = {d for _, d in shapes}
    # one feature, fused row sums (2 to 32; 5 to 8 vectorized), windows of 32, YNNPACK's lanes from 4096 elements
    assert features >= {1, 2, 3, 5, 8, 9, 32, 33, 100, 257, 1000}
    # and rows of one feature (no row sums) in each half dtype
    assert {r["dtype"] for r in RECORDS if np.shape(r["pred"])[1] == 1} == {"float32", "bfloat16", "float16"}
    assert any(n * d >= 4096 and d <= 32 for n, d in shapes) and any(n * d >= 4096 and d > 32 for n, d in shapes)
    # 4096 rows or more (YNNPACK's fusion of the whole gradient), with the overflowing row whose −S is 0 − 0
    assert any(n >= 4096 and d > 1 for n, d in shapes) and any(n >= 4096 and d == 1 for n, d in shapes)
    assert {r["reduction"] for r in RECORDS} == {"mean", "sum", "none"}
    # zero rows (NaN), and squares flushed to zero or overflowing (inf, NaN) among the records
    losses = np.concatenate([np.array(r["losses"], dtype=np.float32) for r in RECORDS])
    assert np.isnan(losses).any() and np.isinf(losses).any() and (losses == 0).any()
    assert DATA["versions"]["jax"] and DATA["versions"]["optax"] and DATA["versions"]["cpu_flags"]


def test_jnp_sums_gradient_takes_each_of_llvms_ways_for_rows_of_3_to_6_features() -> None:
    # rows 8 at a time (the first columns contract the other product), 4 at a time and in the scalar loop
    ways = {(d, lowp_xla_cos.by_eights(n, d) > 0, 16 <= n and n % 8 >= 4) for n, d in
            (np.shape(r["pred"]) for r in RECORDS if r["reduction"] != "mean" and r["dtype"] == "float32")
            if 3 <= d <= 6}
    assert {(d, True) for d in range(3, 7)} <= {(d, eights) for d, eights, _ in ways}
    assert any(not eights and fours for _, eights, fours in ways)
    assert any(not eights and not fours for _, eights, fours in ways)


@pytest.mark.frameworks
def test_fresh_batches_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    golden = golden_script("golden_lowp_xla_cos", "jax", "optax")
    from golden_lowp_xla import _rounded
    from golden_lowp_xla_more import record

    rng = live_rng
    for i in range(live_rounds(12, 120)):
        dtype = ("float32", "bfloat16", "float16")[i % 3]
        d = int(rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 33, 40, 64, 100, 257]))
        if d <= 8 and rng.integers(4) == 0:  # (4096 rows or more: YNNPACK's fusions of whole rows)
            n = int(rng.integers(4096, 6000))
        else:
            n = int(rng.integers(1, min(300, 6000 // d) + 1))
        if dtype == "float32" and rng.integers(4) == 0:  # (a single long row: YNNPACK's dot)
            n, d = 1, int(rng.integers(4096, 40000))
        reduction = str(rng.choice(["mean", "sum", "none"]))
        if dtype == "float16":
            y, p = golden.rows16(rng, n, d)
        else:
            y, p = (_rounded(a, dtype) for a in golden.rows(rng, n, d))
        rec = record("cosine", {}, dtype, True, reduction, y, p, f"{n}x{d}")
        assert not any(compare(rec, _run(rec)).values()), (dtype, n, d, reduction)


def test_bfloat16_from_4096_elements_takes_ynnpacks_fusions(monkeypatch: pytest.MonkeyPatch) -> None:
    # the bfloat16 records of 4096 elements or more: JAX's bit for bit, with YNNPACK's fusions dropping the bfloat16
    # roundings inside them; computed as below 4096 elements instead, 7 of the 9 records differ (the losses of 64 × 64
    # and 128 × 40 rows, and from 4096 rows the losses and the gradients), in 40,022 elements
    big = [r for r in RECORDS if r["dtype"] == "bfloat16" and np.size(r["pred"]) >= 4096]
    shapes = {np.shape(r["pred"]) for r in big}
    assert {(64, 64), (4095, 2), (4096, 2), (4096, 1)} <= shapes and len(big) == 9
    assert not any(any(compare(r, _run(r)).values()) for r in big)
    monkeypatch.setattr(lowp_xla_cos, "YNN_FROM", 2**62)
    apart = [sum(compare(r, _run(r)).values()) for r in big]
    assert (sum(a > 0 for a in apart), sum(apart)) == (7, 40022)


def test_half_dtypes_by_hand() -> None:
    # float16, one feature, by hand: XLA folds ŷ = y·rsqrt(y²) for y = 145.75: y² = 21243.06 → 21248 in float16,
    # 1/√21248 = 0.0068602 → 1798·2^−18 = 0.0068588, times 145.75 = 0.99968 → 0.99951171875 (steps of 2^−11 below
    # 1); p/‖p‖ = 1, so the loss is 1 − 0.99951171875 = 2^−11 where the exact cosine distance is 0
    r = lossgrad.evaluate("cosine", [[145.75]], [[255.125]], convention="optax", dtype="float16")
    assert r.losses.tolist() == [2.0**-11]
    # by hand: ŷ = (3, 4)/5 in bfloat16 (3/5 → 0.6015625), p/‖p‖ = (1, 0): 1 − 0.6015625 = 0.3984375 (the nearest
    # bfloat16 to 0.4 would be 0.400390625)
    r = lossgrad.evaluate("cosine", [[3.0, 4.0]], [[1.0, 0.0]], convention="optax", dtype="bfloat16")
    assert r.losses.tolist() == [0.3984375]
    # float16, by hand: 1/5 → 0.199951171875, 3 times that 0.599853515625, halfway between 0.599609375 and
    # 0.60009765625 (steps of 2^−11): to even, 0.599609375; 1 − 0.599609375 = 0.400390625
    r = lossgrad.evaluate("cosine", [[3.0, 4.0]], [[1.0, 0.0]], convention="optax", dtype="float16")
    assert r.losses.tolist() == [0.400390625]


def test_targets_squares_below_the_normals_are_flushed_by_the_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    # the record "subnormal squares" (JAX's bit for bit above): a target row of normal and subnormal squares has the
    # norm of its normal ones alone, and rows of subnormal squares only a norm of 0, so a loss of −∞ (and NaN where
    # ŷ·p is ∞ − ∞) and NaN gradients; with the squares kept, every row differs
    rec = next(r for r in RECORDS if r.get("name") == "subnormal squares")
    losses = np.array(rec["losses"], dtype=np.float32)
    assert np.isfinite(losses[0]) and losses[1] == -np.inf and np.isnan(losses[2])
    monkeypatch.setattr(lowp_xla_cos, "ftz", lambda x: np.asarray(x, dtype=np.float32))  # (no flushing at all)
    got = np.asarray(_run(rec).losses, dtype=np.float32).reshape(-1)
    assert all(not np.array_equal(got[i:i + 1], losses[i:i + 1], equal_nan=True) for i in range(3)), got
