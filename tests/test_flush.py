"""Flush to zero just below the normal range (lossgrad.flush): the processor rounds to the dtype's precision first and
flushes after, so an exact product, quotient or fused multiply-add in [tiny·(1 − 2⁻²⁴), tiny·(1 − 2⁻²⁵)) is 0 in
float32, where numpy's rounding onto the subnormal grid gives tiny. The values are worked by hand in rationals; the
live tests hold the rule against JAX and TensorFlow."""

from fractions import Fraction

import numpy as np
import pytest

from lossgrad import flush, lowp_tf, lowp_xla
from lossgrad.lowp import fma
from lossgrad.lowp_xla64 import FLUSHED_BELOW

F32 = np.float32
TINY = float(np.finfo(F32).tiny)
BELOW = Fraction(2**25 - 1, 2**151)  # tiny·(1 − 2⁻²⁵): kept, the least such exact result
# exact products on either side of the bound: 2²⁵ − 1 = 31·601·1801 = 18631·1801, and 2²⁶ − 3 = 37·349·5197 =
# 12913·5197, tiny − 3·2⁻¹⁵², which numpy rounds up to tiny (3/8 of its last place below it)
KEPT = (F32(18631 * 2.0**-75), F32(1801 * 2.0**-76))
FLUSHED = (F32(12913 * 2.0**-76), F32(5197 * 2.0**-76))
JUST = np.nextafter(F32(2.0**-63), F32(0))  # (2⁻⁶³ × JUST = tiny·(1 − 2⁻²⁴) exactly)


def test_the_bound_is_tiny_less_a_quarter_of_its_last_place() -> None:
    assert flush.flushed_below(F32) == BELOW
    assert flush.flushed_below(np.float64) == FLUSHED_BELOW == Fraction(2**54 - 1, 2**1076)


def test_products_on_either_side_of_the_bound() -> None:
    assert Fraction(float(KEPT[0])) * Fraction(float(KEPT[1])) == BELOW
    assert Fraction(float(FLUSHED[0])) * Fraction(float(FLUSHED[1])) == BELOW - Fraction(1, 2**152)
    assert KEPT[0] * KEPT[1] == FLUSHED[0] * FLUSHED[1] == F32(TINY)  # (numpy's rounding: both tiny)
    assert flush.product(*KEPT) == F32(TINY)
    assert flush.product(*FLUSHED) == 0
    assert flush.product(F32(2.0**-63), JUST) == 0
    assert np.signbit(flush.product(F32(-2.0**-63), JUST))  # (a zero of the product's sign)
    assert flush.product(F32(2.0**-63), F32(2.0**-63)) == F32(TINY)


def test_arrays_broadcast_and_only_the_edge_is_redone() -> None:
    a = np.array([[2.0**-63], [3.0]], dtype=F32)
    b = np.array([JUST, F32(2.0**-63), F32(0.5)], dtype=F32)
    out = flush.product(a, b)
    assert out.dtype == F32 and out.shape == (2, 3)
    assert out.tolist() == [[0.0, TINY, 2.0**-64], [float(F32(3) * JUST), 3 * 2.0**-63, 1.5]]


def test_quotients() -> None:
    assert JUST / F32(2.0**63) == F32(TINY)  # numpy
    assert flush.quotient(JUST, F32(2.0**63)) == 0
    assert flush.quotient(F32(2.0**-63), F32(2.0**63)) == F32(TINY)
    # (a quotient of two float32s reaches the band only at its foot, tiny·(1 − 2⁻²⁴), a tie numpy rounds up: the
    # float32s next to d·tiny are at least d·2⁻¹⁵⁰ apart unless d is a power of two)
    assert flush.quotient(np.array([JUST, F32(2.0**-63)]), F32(2.0**63)).tolist() == [0.0, TINY]


def test_fused_multiply_add() -> None:
    c = F32(2.0**-125)
    assert fma(F32(2.0**-63), JUST, F32(0)) == F32(TINY)
    assert fma(F32(2.0**-63), JUST, F32(0), flush=True) == 0
    assert fma(F32(2.0**-63), -JUST, F32(0), flush=True) == 0 and np.signbit(fma(F32(2.0**-63), -JUST, F32(0), True))
    # 2⁻¹²⁵ − tiny·(1 − 2⁻²⁴) = tiny·(1 + 2⁻²⁴): rounds to tiny, kept
    assert fma(F32(2.0**-63), -JUST, c, flush=True) == F32(TINY)
    # an exact sum in the band: 2²⁷ − 3 = 25·173·31033 = 4325·31033, so that a·b − tiny = tiny − 3·2⁻¹⁵²
    a, b = F32(4325 * 2.0**-76), F32(31033 * 2.0**-76)
    assert Fraction(float(a)) * Fraction(float(b)) - Fraction(TINY) == BELOW - Fraction(1, 2**152)
    assert fma(a, b, F32(-TINY)) == F32(TINY)  # (numpy's rounding of the exact sum)
    assert fma(a, b, F32(-TINY), flush=True) == 0 and fma(a, b, F32(-TINY) * F32(0.75), flush=True) > F32(TINY)


def test_the_kernels_products_use_it() -> None:
    assert lowp_xla.mul(F32(2.0**-63), JUST) == 0 and lowp_xla.div(JUST, F32(2.0**63)) == 0
    assert lowp_xla._fma(F32(2.0**-63), JUST, F32(0)) == 0
    assert lowp_tf.mul(F32(2.0**-63), JUST) == 0 and lowp_tf.div(JUST, F32(2.0**63)) == 0
    kind = lowp_tf.Kind(rnd=lambda v: v)
    assert kind.op(np.multiply, F32(2.0**-63), JUST) == 0 and kind.op(np.multiply, *KEPT) == F32(TINY)
    # a half dtype computes in float32 and stores (the rounder): the flush comes first
    stored = lowp_xla.Stored(np.float16)
    assert lowp_xla.mul(F32(2.0**-63), JUST, stored) == 0
    assert lowp_xla.mul(F32(3), F32(2.0**-20), stored) == 3 * 2.0**-20


def _band_operands(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of float32s whose exact products lie within a few units of 2⁻¹⁵⁰ of tiny, on both sides."""
    a = (rng.integers(2**23, 2**24, n) * 2.0 ** rng.integers(-90, -60, n)).astype(F32)
    target = TINY * (1 + rng.uniform(-4, 4, n) * 2.0**-24)
    return a, (target / a.astype(np.float64)).astype(F32)


@pytest.mark.frameworks
def test_the_rule_is_jax_and_tensorflows() -> None:
    jax = pytest.importorskip("jax")
    tf = pytest.importorskip("tensorflow")
    a, b = _band_operands(np.random.default_rng(7), 4000)
    ours = lowp_xla.mul(a, b)
    assert (a * b == F32(TINY)).sum() > (ours == F32(TINY)).sum() > 0  # (the band is there, and drawn)
    jit = np.asarray(jax.jit(lambda x, y: x * y)(a, b))
    assert np.array_equal(ours.view(np.uint32), jit.view(np.uint32))
    assert np.array_equal(ours.view(np.uint32), tf.multiply(a, b).numpy().view(np.uint32))
    q = np.asarray(jax.jit(lambda x, y: x / y)(a, 1 / b))
    assert np.array_equal(lowp_xla.div(a, F32(1) / b).view(np.uint32), q.view(np.uint32))
    c = (a * F32(0.5)).astype(F32)
    fused = np.asarray(jax.jit(lambda x, y, z: x * y - z)(a, b, c))
    assert np.array_equal(lowp_xla._fma(a, b, -c).view(np.uint32), fused.view(np.uint32))
