"""XLA's float32 row sums from 4096 elements, which it hands to YNNPACK, against JAX's own results recorded by
scripts/golden_ynn_sums.py in tests/golden/ynn_sums.json: bit for bit, rows of 513 to 1,000,000 elements, and
YNNPACK's other sums (whole arrays, columns, the partner sums of a broadcast, a product with a broadcast factor);
and YNNPACK's Kahan step worked by hand."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import golden_script, live_rounds
from lossgrad import lowp_xla, lowp_xla_partner

GOLDEN = Path(__file__).resolve().parent / "golden" / "ynn_sums.json"
DATA = json.loads(GOLDEN.read_text())
ROWS = [r for r in DATA["records"] if "kind" not in r]
KINDS = [r for r in DATA["records"] if "kind" in r]


def _sums(shape: tuple[int, ...]) -> np.ndarray:
    x = golden_script("golden_ynn_sums").values(shape)
    return lowp_xla.xla_sum(x.reshape(-1, x.shape[-1]) if x.ndim > 1 else x.reshape(1, -1))


@pytest.mark.parametrize("rec", ROWS, ids=["x".join(map(str, r["shape"])) for r in ROWS])
def test_jax_sums_bit_for_bit(rec: dict) -> None:
    got, want = _sums(tuple(rec["shape"])), np.array(rec["sums"], dtype=np.float32)
    assert (got.view(np.int32) == want.view(np.int32)).all()


def test_the_records_reach_every_part_of_the_sum() -> None:
    shapes = [tuple(r["shape"]) for r in ROWS]
    n = [s[-1] for s in shapes]
    assert min(n) < 1024 < max(n)  # (one Kahan step, and several)
    assert any(k % 16 for k in n) and any(k % 1024 == 0 for k in n)  # (a part-filled vector; a last Kahan step)
    assert any(len(s) == 2 and s[0] < 4 and s[1] > 32768 for s in shapes)  # (runs of 32768)
    assert any(len(s) == 2 and s[0] >= 4 and s[1] > 32768 for s in shapes)  # (one run per row)
    assert DATA["versions"]["jaxlib"]


def _model(kind: str, arrays: list[np.ndarray]) -> np.ndarray:
    """lossgrad's model of each kind of YNNPACK sum (scripts/golden_ynn_sums.py's KINDS)."""
    if kind == "whole":
        return np.array([lowp_xla.xla_sum2d(arrays[0])])
    if kind == "columns":
        return lowp_xla_partner.column_sums(arrays[0])
    if kind == "partners":
        return lowp_xla_partner.partner_sum(arrays[0], 1, lowp_xla.ftz)
    if kind == "fused-partners":
        return lowp_xla_partner.partner_sum(lowp_xla.ftz(arrays[0] * arrays[1]), 1, lowp_xla.ftz, fused=True)
    if kind == "bfloat16":
        x = arrays[0]
        return lowp_xla.xla_sum(x.reshape(-1, x.shape[-1]), bf16=True)
    g, w, e = arrays
    return lowp_xla.dot_lanes(lowp_xla.ftz(g * w[:, None]), e)


@pytest.mark.parametrize("rec", KINDS, ids=[f"{r['kind']}-{'x'.join(map(str, r['shape']))}" for r in KINDS])
def test_ynnpacks_other_sums_bit_for_bit(rec: dict) -> None:
    script = golden_script("golden_ynn_sums")
    got = _model(rec["kind"], script.inputs(rec["kind"], tuple(rec["shape"]))).reshape(-1)
    want = np.frombuffer(base64.b64decode(rec["bits"]), dtype="<f4")
    assert got.shape == want.shape and (got.view(np.int32) == want.view(np.int32)).all()


def test_the_other_kinds_reach_each_part() -> None:
    shapes = {(r["kind"], tuple(r["shape"])) for r in KINDS}
    assert any(k == "whole" and s[0] * s[1] > 32768 for k, s in shapes)  # (several slices of rows)
    columns = [s for k, s in shapes if k == "columns"]
    assert any(r >= 512 and r * c <= 32768 for r, c in columns)  # (one slice, Kahan's step twice)
    assert any(32768 // c < r for r, c in columns) and any(c > 32768 for r, c in columns)
    assert any(k == "partners" and s[0] > 256 for k, s in shapes)
    assert any(k == "fused-partners" and s[0] * s[2] > 32768 for k, s in shapes)
    assert any(k == "dot" and s[1] % 4 for k, s in shapes) and any(k == "dot" and s[1] % 4 == 0 for k, s in shapes)
    pairs = [s[-1] for k, s in shapes if k == "bfloat16"]  # (a part-filled vector; Kahan's step every 2048; runs)
    assert any(n % 32 for n in pairs) and min(pairs) < 2048 < max(pairs) and max(pairs) > 32768


def test_the_kahan_step_by_hand() -> None:
    # a in the first 1024 elements, b in the next, both in lane 4: level 2 takes a, then a + b by Kahan's step,
    # t = RN(a + b), e = (t − a) − b, and at the end RN(t − e). With a = 0.330571, b = 1.8522509 (float32):
    # t = 2.182822, e = 1.1920929e−07 (one ulp of 1: t − a is not exact, |a| < |b|), so the sum is one ulp below
    # the correctly rounded a + b (JAX gives the same, measured)
    a, b = np.float32(0.330571), np.float32(1.8522509)
    t = np.float32(a + b)
    e = np.float32(np.float32(t - a) - b)
    assert t == np.float32(2.182822) and e == np.float32(1.1920929e-07)
    x = np.zeros((2, 2048), dtype=np.float32)
    x[:, 4], x[:, 1028] = a, b
    assert (lowp_xla.xla_sum(x) == np.float32(t - e)).all() and np.float32(t - e) == np.nextafter(t, np.float32(0))


def test_the_bfloat16_records_are_not_float32s_order() -> None:
    # summed as float32's kernel adds them, one element a lane, the bfloat16 records differ: their pairs are seen
    script = golden_script("golden_ynn_sums")
    apart = 0
    for rec in (r for r in KINDS if r["kind"] == "bfloat16"):
        x = script.inputs("bfloat16", tuple(rec["shape"]))[0]
        want = np.frombuffer(base64.b64decode(rec["bits"]), dtype="<f4")
        apart += int((lowp_xla.xla_sum(x.reshape(-1, x.shape[-1])).view(np.int32) != want.view(np.int32)).any())
    assert apart >= 12


def test_bfloat16_rows_are_added_in_pairs_by_hand() -> None:
    # YNNPACK's bfloat16 kernel takes 32 elements a vector into 16 lanes, lane i adding element 2i + 1 and then 2i,
    # the lanes then halved pairwise: a row (x₀, x₁, x₂) sums as (x₁ + x₀) + x₂, where float32's kernel, one element
    # a lane, adds (x₀ + x₂) + x₁. With x = (2⁻²³, 2, 2⁻²³), each 2⁻²³ half an ulp of 2: in pairs 2 + 2⁻²³ is a tie
    # that rounds to even, 2, and so does the second addition, 2; in float32's order 2⁻²³ + 2⁻²³ = 2⁻²² is exact,
    # and 2 + 2⁻²² is 2 and one ulp
    x = np.array([[2.0**-23, 2.0, 2.0**-23]] * 4096, dtype=np.float32)  # (4096 rows: YNNPACK's)
    assert (lowp_xla.xla_sum(x, bf16=True) == np.float32(2)).all()
    assert (lowp_xla.xla_sum(x) == np.float32(2 + 2.0**-22)).all()


@pytest.mark.frameworks
def test_fresh_sums_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    import jax
    import jax.numpy as jnp

    total = jax.jit(lambda a: jnp.sum(a, axis=-1))
    rng = live_rng
    for _ in range(live_rounds(4, 40)):
        n = int(rng.choice([rng.integers(2, 1025), rng.integers(1025, 40000), rng.integers(40000, 200000)]))
        rows = int(rng.choice([1, 2, 3, 4, 5, 8]))
        rows = max(rows, -(-4096 // n))
        x = (rng.standard_normal((rows, n)) * 2.0 ** rng.integers(-12, 12, size=(rows, n))).astype(np.float32)
        want = np.asarray(total(x))
        got = lowp_xla.xla_sum(x)
        assert (got.view(np.int32) == want.view(np.int32)).all(), (rows, n)
