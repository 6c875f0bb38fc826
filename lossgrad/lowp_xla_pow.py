"""optax's triplet_margin_loss with a norm_degree q other than 2, as JAX computes it on CPU (XLA): float32 op by op
and under jit, float16 and bfloat16 op by op.

optax measures d(u, v) = (Σ (u − v)^q + ε)^(1/q), ε = 1e-6, with jnp.power and no |·|. JAX traces jnp.power(x, q)
as lax.integer_pow for a Python int q (optax's default 2; what lossgrad reproduces for an integral --norm-degree):
repeated products by binary exponentiation, (x·x)·x for q = 3, (x·x)·(x·x) for 4; and as lax.pow for any other q
and for the root's 1/q (a weakly typed constant, rounded to the dtype). XLA's CPU backend emits lax.pow as LLVM's
llvm.pow, which no vector library takes: every element is a call of the C library's scalar powf (the object code's
one relocation, R_X86_64_64 powf, even where LLVM vectorizes the loop around it; no libmvec _ZGV…_powf, no SLEEF,
no polynomial of XLA's own), op by op and under jit, in the forward and in jax.grad; a half dtype's power is powf
of its float32 value. Measured with XLA_FLAGS=--xla_dump_to on jax 0.10.2: under jit XLA folds x^1 to x and x^0 to
1 (q = 1's root and its slope), writes x^2 and x^3 as products (the root of q = ½ and ⅓, whose last product LLVM
contracts into the difference of the two distances), and LLVM's library-call simplifier turns a constant x^½ into
|√x| (q = 1.5's slope, q = ½'s power; jit_powf); op by op the exponent is an operand and every power is powf.
Under jit the row sum of an integral q's powers contracts each power's last product into the running sum, but where
LLVM vectorizes the rows (rows of 2 to 8 features, by a cost model that goes by the products the power takes and q's
parity: POWER_ROWS, with AVX2 only avx2_power_rows, in each part of the rows where XLA splits the kernel between its
threads) or a row itself (16 to 32 features, by the products its powers take: ALONG_ROW_FROM). The anchor's gradient
is one multiply-add of the two sides' products, formed from the negative's, but in a single row whose kernel XLA
splits unevenly and in the ninth of 9 features for a high q (contracts_positive). In bfloat16 from 4096 elements,
the products into a power's result are kept in float32 (YNNPACK's row sum). In bfloat16 under jit (2 to 32 features,
below 4096 elements) XLA's row-sum kernel takes the squarings from kernels of their own and forms the products into
the result, each rounded to bfloat16, and LLVM contracts the last one into the float32 sum as in float32 (an FMA: a
power beyond float32's range is not rounded to ±inf before it is added, so inf + (−2.61)^95 stays inf where the
rounded powers give NaN), in lanes along the row that go by the set bits of q (half_plan, half_sum).

jax.grad multiplies the cotangent g by the slopes: q·x^(q−1) (lax.pow: q − 1 formed in the dtype, x^(q−1) a powf;
integer_pow: g·(2·x) for 2, g·(q·x^(q−1)) for 3 and more, x^(q−1) again by products, g itself for 1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import cpu, libm
from .errors import NotReproduced
from .losses._ops import Array
from .lowp_xla import (
    F32,
    ROW_PLANS,
    XLA_THREADS,
    YNN_FROM,
    LanePlan,
    Rounder,
    Stored,
    _fma,
    _in_order,
    _rows,
    avx2_stored_rows,
    ftz,
    margin_hinge,
    mul,
    product_sum,
    vector_add_sum,
    vector_fma_sum,
    xla_sum,
    xla_tasks,
    ynn_kept,
)
from .lowp_xla_rows import AVX2_PAIRED, _vector_rows

# integral q: rows of 2 to 8 features whose fused row sum of q-th powers LLVM's loop vectorizer takes 4 rows at a
# time below this many groups of 8 (a batch with 4 to 7 rows over its groups of 8), 8 at a time from there; its
# cost model, by the products the power takes and the parity of q (an odd q's last product is by x itself), read
# from XLA's dump of the LLVM IR below YNN_FROM elements (python3 scripts/golden_lowp_xla_pow.py --rows-read: two
# degrees or more of each key, q = 3 to 40, 45, 47, 48, 63, 64, 114, 145, 160, 201, 247, 281, 336, 362, 777, 1028
# and 8192, none apart from its key's numbers; q = 3 to 24 measured on results before, --vector-rows)
_NEVER = YNN_FROM
_FEW = {2: 3, 3: 5, 4: 5, 5: 4, 6: 4}
POWER_ROWS: dict[tuple[int, int], dict[int, int]] = {
    (2, 1): {2: 3, 3: 6, 4: 6, 5: 4, 6: 4, 7: _NEVER, 8: _NEVER},
    (2, 0): {2: 3, 3: 6, 4: 7, 5: 4, 6: 4, 7: _NEVER, 8: _NEVER},
    (3, 1): {2: 3, 3: 6, 4: 6, 5: 4, 6: 4, 7: 40, 8: 46},
    (3, 0): {2: 3, 3: 6, 4: 6, 5: 4, 6: 4, 7: 52, 8: 60},
    (4, 1): {**_FEW, 7: 17, 8: 18}, (4, 0): {**_FEW, 4: 6, 7: 18, 8: 19},
    (5, 1): {**_FEW, 7: 12, 8: 12}, (5, 0): {**_FEW, 7: 12, 8: 12},
    (6, 1): {**_FEW, 7: 9, 8: 10}, (6, 0): {**_FEW, 7: 10, 8: 10},
    (7, 1): {**_FEW, 7: 8, 8: 8}, (7, 0): {**_FEW, 7: 8, 8: 8},
    (8, 1): {**_FEW, 7: 7, 8: 7}, (8, 0): {**_FEW, 7: 7, 8: 7},
    (9, 1): {**_FEW, 3: 4, 7: 7, 8: 7}, (9, 0): {**_FEW, 7: 7, 8: 7},
    (10, 1): {**_FEW, 3: 4, 4: 4, 7: 6, 8: 6}, (10, 0): {**_FEW, 3: 4, 4: 4, 7: 6, 8: 6},
    (11, 1): {**_FEW, 3: 4, 4: 4, 7: 6, 8: 6}, (11, 0): {**_FEW, 3: 4, 4: 4, 7: 6, 8: 6},
    (12, 1): {**_FEW, 3: 4, 4: 4, 7: 6, 8: 6}, (12, 0): {**_FEW, 3: 4, 4: 4, 7: 6, 8: 6},
    (13, 1): {**_FEW, 3: 4, 4: 4, 7: 5, 8: 6}, (13, 0): {**_FEW, 3: 4, 4: 4, 7: 6, 8: 6}}


def power_rows(q: int) -> dict[int, int]:
    """POWER_ROWS' numbers for an integral q (none past the products measured)."""
    return POWER_ROWS.get((products(q), q % 2), {})


# with AVX2 (read from XLA's dump of the LLVM IR on an AMD EPYC, jax 0.10.2: python3 scripts/golden_lowp_xla_pow.py
# --rows-read on such a processor): LLVM's loop vectorizer never takes rows of 5 or 7 features, whose loads
# interleave too costly a stride, and takes rows of 8 features 8 at a time in a batch of 8 and from 16 rows (a
# batch of 4 rows of 8 stays scalar, as the squares' loop, avx2_stored_rows); rows of 2, 3, 4 and 6 features go 4
# rows at a time in a batch with 4 to 7 rows over fewer groups of 8 than this, by the products the power takes (and
# for 4 products, q's parity): for 2 or 3 products the squares' own thresholds (lowp_xla_rows.AVX2_PAIRED)
AVX2_FEW = AVX2_PAIRED
AVX2_MORE = {2: 4, 3: 4, 4: 4, 6: 4, 8: 0}


def avx2_power_rows(q: int) -> dict[int, int]:
    """AVX2's thresholds of the fused row sum of x^q (avx2_stored_rows' `four_below`)."""
    p = products(q)
    if p <= 3:
        return AVX2_FEW
    if p == 4 and q % 2 == 0:
        return {**AVX2_MORE, 3: 5, 6: 5}
    return AVX2_MORE


# an integral q's power takes products(q) products, by which LLVM's cost model decides whether to vectorize XLA's
# fused sum of a row's powers along the row itself (up to 32 features): from this many features in a batch of two
# rows or more, and in a batch of one (python3 scripts/golden_lowp_xla_pow.py --along-row: measured for q = 3 to 24
# and 31; 4 products from 30 in a batch, never alone; 6 from 25 and from 28; 7 to 13 products read from XLA's dump
# of the LLVM IR, python3 scripts/golden_lowp_xla_pow.py --lanes-read, for two degrees or more of each count)
ALONG_ROW_FROM = {4: (30, 33), 5: (28, 30), 6: (25, 28), 7: (23, 25), 8: (22, 23), 9: (20, 22), 10: (19, 20),
                  11: (18, 19), 12: (17, 18), 13: (16, 17)}
# past this many products LLVM vectorizes shorter rows along the row (--lanes-read, q = 255 to 2³¹ − 1: from 15
# features in a batch at 14 products, from 11 at 23, from 9 at 32, from 7 at 42; rows of 9 to 15 features in an
# order not pinned down): such powers are not reproduced under jit
MEASURED_PRODUCTS = 13
# q = ½'s roots vectorize along the row from this many features, in a batch of two rows or more and alone
ROOTS_ALONG_FROM = (28, 30)

def powf(x: Array, e: float) -> Array:
    """x^e as XLA's CPU code computes a power it does not rewrite: the C library's powf, one element at a time."""
    return ftz(libm.powf(x, e))


def integral(q: float) -> bool:
    """Whether lossgrad takes --norm-degree q as optax's integer_pow (a Python int, as optax's default 2)."""
    return float(q).is_integer() and q > 0


def products(q: int) -> int:
    """The products lax.integer_pow(x, q) takes: a squaring for each bit after the first, and a product into the
    result for each set bit after the first (3 for x⁵ = x·(x²)², 6 for x¹⁵)."""
    return q.bit_length() - 1 + q.bit_count() - 1


def along_row(q: float, rows: int, n: int) -> bool:
    """Whether LLVM vectorizes XLA's fused sum of each row's powers along the row (under jit in float32, n ≤ 32):
    ALONG_ROW_FROM for an integral q, ROOTS_ALONG_FROM for ½."""
    if not (q == 0.5 or (integral(q) and q >= 3)):
        return False
    batch, alone = ROOTS_ALONG_FROM if q == 0.5 else ALONG_ROW_FROM.get(products(int(q)), (33, 33))
    return n >= (alone if rows == 1 else batch)


# under jit in float32, where d^(q−1) takes this many products or more, the scalar code of the anchor gradient's
# kernel in a batch of two rows or more of 9 features (LLVM's vector loop takes 8 of each row, the ninth a scalar
# remainder) contracts the positive's product into the multiply-add; below it, and every other row length, the
# negative's (measured on batches of 2 to 10,001 rows: 1 to 130 features for q = 192, 9 features for q = 224, 255,
# 256 and 4098, and 64 random shapes of up to 300,000 elements; 40 rows of 9 for q = 3 to 39 and 29 more to 4097,
# the smallest q from it 192)
GRADIENT_PRODUCTS_FROM = 13


def check(q: float, jit: bool) -> None:
    """Raise NotReproduced under jit for an integral q whose power takes more than MEASURED_PRODUCTS products, or
    that many where d^(q−1) takes GRADIENT_PRODUCTS_FROM or more (q = 254, 4098, 8192: rows of 11 and 12 features
    measured apart)."""
    if not (jit and integral(q) and q >= 3):
        return
    power_, slope_ = products(int(q)), products(int(q) - 1)
    if power_ > MEASURED_PRODUCTS or (power_ == MEASURED_PRODUCTS and slope_ >= GRADIENT_PRODUCTS_FROM):
        raise NotReproduced("dtype", f"JAX's triplet_margin_loss with norm_degree {q:g} under jit is not reproduced "
                            f"(x^{int(q)} takes {power_} products and d^{int(q) - 1} {slope_}; the code XLA's compiler "
                            f"picks is pinned down for powers of up to {MEASURED_PRODUCTS - 1} products, and "
                            f"{MEASURED_PRODUCTS} where d^(q−1) takes fewer than {GRADIENT_PRODUCTS_FROM}); ask for "
                            "JAX op by op (--no-jit; jit=False in Python)")


Times = Callable[[Array, Array], Array]  # a product rounded and flushed in the dtype


def int_pow(x: Array, n: int, r: Rounder, last: Rounder | None = None, into: Rounder | None = None,
            times: Times | None = None) -> Array:
    """lax.integer_pow(x, n), n ≥ 1, as JAX lowers it: binary exponentiation, each product rounded (n = 3: (x·x)·x,
    XLA's multiply of the square by x); `last`: how the last product is kept, `into`: the products into the result
    before it (last_factors), else as `r`; `times`: each product, rounded (lowp_xla64.mul), instead of r(a·b)."""
    if n == 1:
        return x
    u, v = last_factors(x, n, r, into, times)
    return times(u, v) if times and not last else (last or r)(u * v)


def last_factors(x: Array, n: int, r: Rounder, into: Rounder | None = None,
                 times: Times | None = None) -> tuple[Array, Array]:
    """The two factors of lax.integer_pow(x, n)'s last product, n ≥ 2 (the one LLVM contracts into a following
    addition): binary exponentiation, x squared at each bit and multiplied into the result at each set bit; x³ is
    x·x², x⁴ x²·x², x⁵ x·x⁴, x⁶ x²·x⁴, x⁷ (x·x²)·x⁴. `into`: how the products into the result are kept (x·x² of
    x⁷), else as `r` (or `times`)."""
    square: Times = times or (lambda a, b: mul(a, b, r))
    product: Times = (lambda a, b: into(a * b)) if into else square
    acc: Array | None = None
    last = (x, x)
    while n > 0:
        if n & 1:
            if acc is not None:
                last = (acc, x)
            acc = x if acc is None else product(acc, x)
        n >>= 1
        if n > 0:
            last = (x, x)
            x = square(x, x)
    return last


def power(x: Array, q: float, r: Rounder, last: Rounder | None = None, into: Rounder | None = None) -> Array:
    """jnp.power(x, q): integer_pow for an integral q, else lax.pow (glibc's powf, NaN for a negative x) of q
    rounded to the dtype (a weakly typed constant: ⅓ is 0.33325195 in float16); `last`: how the last product or
    the power is kept (bfloat16 under jit keeps what feeds a float32 sum in float32), `into`: the products into an
    integral power's result before it (int_pow), else as `r`."""
    if integral(q):
        return int_pow(x, int(q), r, last, into)
    return (last or r)(powf(x, float(r(F32(q)))))


def jit_power(x: Array, q: float) -> Array:
    """jnp.power(x, q) under jit in float32: integer_pow for an integral q, else jit_powf."""
    return int_pow(x, int(q), ftz) if integral(q) else jit_powf(x, q)


def ynn_powers(d: Array, q: float) -> Array:
    """The powers d^q of XLA's row sum under jit in float32 beyond its fused loop (jit_power); but from YNN_FROM
    elements in rows of two features or more YNNPACK takes the powers in with its sum, and computes a constant ½
    as any other exponent, with powf, not as LLVM's √ (measured: a few elements of each batch apart)."""
    if q == 0.5 and d.size >= YNN_FROM and d.shape[1] > 1:
        return powf(d, q)
    return jit_power(d, q)


def jit_powf(x: Array, e: float, r: Rounder = ftz) -> Array:
    """x^e as XLA's jitted code computes it for a constant e: glibc's powf, except that XLA's algebraic simplifier
    folds x^0 to 1, x^1 to x, x^2 to x·x and x^3 to x·(x·x), and LLVM's library-call simplifier turns pow(x, ½)
    into |√x| (−∞ giving +∞), a correctly rounded square root (seen in the optimized HLO and IR; op by op the
    exponent is an operand and stays powf's). `r`: how the products are rounded (a half dtype's, under jit)."""
    if e == 0:
        return np.ones_like(x)
    if e == 1:
        return x
    if e in (2, 3):
        return mul(x, x if e == 2 else mul(x, x, r), r)
    if e == 0.5:
        return ftz(np.where(x == -np.inf, F32(np.inf), np.abs(np.sqrt(x))))
    return ftz(powf(x, e))


def slope(x: Array, q: float, r: Rounder, jit: bool = False) -> Array | None:
    """jax.grad's factor q·x^(q−1) of jnp.power(x, q), None for q = 1 (integer_pow passes g on); `jit`: x^(q−1)
    as jit_powf takes it."""
    if integral(q):
        n = int(q)
        return None if n == 1 else mul(F32(2), x, r) if n == 2 else mul(F32(n), int_pow(x, n - 1, r), r)
    e = F32(r(F32(q)))
    return mul(e, r((jit_powf if jit else powf)(x, float(r(e - F32(1))))), r)


def root_slope(h: Array, q: float, r: Rounder, jit: bool = False, k: Rounder = ftz) -> Array:
    """jax.grad's factor (1/q)·h^(1/q − 1) of the root lax.pow(h, 1/q): 1/q (a weakly typed constant) and 1/q − 1
    rounded to the dtype (1 for q = 1: h^0, which XLA folds and glibc's powf gives for any h); `jit`: h^(1/q − 1)
    as jit_powf takes it."""
    e = F32(r(F32(1 / q)))
    power_ = jit_powf(h, float(r(e - F32(1))), k) if jit else powf(h, float(r(e - F32(1))))
    return mul(e, r(power_), r)


def half_fused(r: Rounder, jit: bool, q: float, shape: tuple[int, ...]) -> bool:
    """Whether the row sum of an integral q's powers (q ≥ 3) is XLA's fused loop under jit in bfloat16 (`r` rounds
    to bfloat16; 2 to 32 features, fewer than YNN_FROM elements): half_sum."""
    rows, n = shape
    return (jit and isinstance(r, Stored) and r.half is not np.float16 and integral(q) and q >= 3
            and 2 <= n <= 32 and rows * n < YNN_FROM)


# bfloat16 under jit: XLA computes a power's squarings in kernels of their own and the products into its result
# (one fewer than the set bits of q, each rounded to bfloat16) in the row sum's kernel, whose loop LLVM vectorizes
# along the row by the set bits of q (read from XLA's dump of the LLVM IR on jax 0.10.2: the vector.reduce.fadd
# widths and bin.rdx accumulators of the add_convert_fusion kernel, q = 3 to 17, 19, 20, 21, 23, 24, 27, 31, 32,
# 47, 63, 64, 95, 127, 128 and 191, 2 to 32 features in a batch of 24 rows and alone; the block orders fitted to
# JAX's results): in lanes from this many features, in a batch of two rows or more and alone (never for a power of
# 2, whose rows are added in order)
HALF_ALONG_FROM = {2: (30, 33), 3: (16, 16), 4: (16, 16), 5: (16, 16), 6: (16, 16), 7: (16, 16)}
# from this many set bits a row of 8 features is one vector of 8 lanes
HALF_EIGHT_FROM = 5
# from this many set bits (in a batch; alone) LLVM interleaves 2 accumulators over rows of 20 to 23 features (4
# lanes, no epilogue: the rest added in order) and of 32 (8 lanes), which the backend reassociates into the order
# 0, 2, 3, 1 (fitted to JAX's results)
HALF_PAIRED_FROM = (6, 7)
HALF_PAIRED: dict[int, LanePlan] = {20: (4, (0, 2, 3, 1), 0), 32: (8, (0, 2, 3, 1), 0)}


def half_plan(q: int, rows: int, n: int) -> LanePlan | None:
    """The lanes in which XLA's fused loop under jit in bfloat16 adds each row of n features' powers x^q (None: in
    order): ROW_PLANS from HALF_ALONG_FROM's lengths, as float32's, but HALF_PAIRED's for the costlier kernels,
    and one vector of 8 for a row of 8 from HALF_EIGHT_FROM set bits."""
    bits = q.bit_count()
    if n == 8 and bits >= HALF_EIGHT_FROM:
        return (8, (0,), 0)
    batch, alone = HALF_ALONG_FROM.get(min(bits, 7), (33, 33))
    if n > 32 or n < (alone if rows == 1 else batch):
        return None
    if bits >= HALF_PAIRED_FROM[rows == 1] and (20 <= n <= 23 or n == 32):
        return HALF_PAIRED[20 if n < 32 else 32]
    return ROW_PLANS[max(k for k in ROW_PLANS if k <= n)]


def half_sum(d: Array, q: int, r: Rounder) -> Array:
    """Σ d^q along each row as XLA's fused loop adds it under jit in bfloat16 (2 to 32 features, fewer than
    YNN_FROM elements): the products into each power rounded to bfloat16 (`r`), its last product contracted into
    the float32 sum (an FMA: a product beyond float32's range is not rounded to ±inf on its own, so that +inf plus
    a power of the other sign stays +inf where the rounded powers would give inf − inf = NaN, and −1.99e38 plus a
    power of 4.04e38 is 2.05e38, not inf; the product of two bfloat16s is otherwise exact), in LLVM's lanes along
    the row (half_plan), else in order from +0."""
    u, v = last_factors(d, q, r)
    plan = half_plan(q, *d.shape)
    return _contracted(u, v, False) if plan is None else vector_fma_sum(u, v, plan)


def _fused_sum(d: Array, q: float) -> Array:
    """Σ d^q along each row as XLA's fused row loop adds it under jit in float32 (up to 32 features, fewer than
    YNN_FROM elements): an integral q ≥ 3 as the scalar loop adds it (_contracted), but for the rows LLVM's loop
    vectorizer takes 4 or 8 at a time (vector_power_rows), whose powers are stored and added in order; other q adding
    each power as it is, in order from +0."""
    if along_row(q, *d.shape):
        return along_row_sum(d, q)
    if integral(q) and q >= 3:
        u, v = last_factors(d, int(q), ftz)
        out = _contracted(u, v, int(q) % 2 == 0)
        vector = vector_power_rows(int(q), *d.shape)
        out[vector] = _in_order(mul(u[vector], v[vector]), ftz)
        return out
    t = jit_powf(d, q)
    acc = np.zeros(d.shape[0], dtype=F32)
    for i in range(d.shape[1]):
        acc = ftz(acc + t[:, i])
    return acc


def row_sum_tasks(q: int, rows: int, n: int, threads: int = XLA_THREADS) -> int:
    """The tasks among which XLA splits its fused row sum of q-th powers (lowp_xla.xla_tasks): per element a
    difference, the power's products and an addition (one fewer a row); two rows of n read and a sum written."""
    return xla_tasks(rows * (n * (products(q) + 2) - 1), 4 * rows * (2 * n + 1), threads)


def gradient_tasks(q: int, n: int, threads: int = XLA_THREADS) -> int:
    """The tasks among which XLA splits the kernel of a single row's anchor gradient (scalar_gradient): per
    element it reads the anchor and both rows (from YNN_FROM, for an odd q, the two differences stored instead),
    forms each side's difference, power d^(q−1) and product with the row's factor, and adds the two; 7 flops and 3
    factors a row."""
    stored = n >= YNN_FROM and q % 2 == 1
    flops = n * (2 * (products(q - 1) + 1) + (1 if stored else 3)) + 7
    return xla_tasks(flops, 4 * n * (3 if stored else 4) + 12, threads)


def more_threads(q: float, shape: tuple[int, ...]) -> str | None:
    """A note where JAX on a machine of more threads than XLA_THREADS splits a kernel whose split shows in the
    results (the row sum over 2 to 8 features, a single row's gradient) into more parts (None elsewhere)."""
    rows, n = shape
    if not (integral(q) and q >= 3) or (rows > 1 and rows * n >= YNN_FROM):
        return None
    q_ = int(q)
    many = 64  # (more threads than any of these kernels' costs can use)
    tasks = gradient_tasks(q_, n, many) if rows == 1 else row_sum_tasks(q_, rows, n, many) if 2 <= n <= 8 else 1
    if rows == 1 and all((n % t != 0) == (n % XLA_THREADS != 0) for t in range(XLA_THREADS + 1, tasks + 1)):
        return None  # (a single row's split shows only in whether its parts are equal)
    if tasks <= XLA_THREADS:
        return None
    return (f"JAX under jit splits this triplet_margin_loss kernel (norm_degree {q:g}, {rows} x {n}) among as many "
            f"as {tasks} threads on a machine of that many cores; lossgrad follows {XLA_THREADS}, as the golden files "
            "were recorded, and on more cores JAX's results may differ in the last bit")


# from this many rows XLA under jit (float32 and bfloat16; float16 never, nor op by op) compiles triplet's hinge
# max(d⁺ − d⁻ + m, 0) into a YNNPACK fusion in a program without the gradient: with the sum in jnp.mean or jnp.sum
# of the losses alone (any row length), and in the losses alone for rows of two features or more whose root is not
# h·(h·h) (1/q = 3, left to XLA's loop). YNNPACK's maximum is x86's vmaxps(x, 0), which gives 0 for a NaN x, where
# XLA's own propagates it. A program with jax.grad (the training step lossgrad reproduces: jax.jit of
# jax.value_and_grad) keeps the hinge in XLA's loop at any size. (Read from the optimized HLO, the `maximum` in a
# kind=__ynn_fusion computation, and measured on jax 0.10.2: 4095 and 4096 to 20,000 rows of 1 to 100 features,
# q = ⅓, ¼, ⅕, ½, 1, 1.5, 2, 2.5, 3, 5.)
LONE_HINGE_ROWS = YNN_FROM


def lone_program_note(losses: Array, shape: tuple[int, ...], q: float, r: Rounder) -> str | None:
    """A warning where the losses of a batch of `shape` (rows, features) hold NaN (optax's power of a negative
    difference, an odd q's root of a negative sum, ∞ − ∞) from LONE_HINGE_ROWS rows: the training step, which
    lossgrad reproduces, keeps them NaN, but a jitted program without the gradient counts them as 0 (the caller asks
    only under jit, in float32 or bfloat16; `r` rounds to the dtype, in which XLA takes 1/q). No count: a long
    batch's slices give the same line, shown once."""
    rows, n = shape
    if rows < LONE_HINGE_ROWS or not np.isnan(losses).any():
        return None
    alone = n > 1 and float(r(F32(1 / q))) != 3  # (the losses' own program: YNNPACK's hinge too)
    return ("the NaN losses are those of JAX's training step (jax.jit of jax.value_and_grad, whose mean and sum are "
            "NaN too), which lossgrad reproduces; a jitted program without the gradient compiles the hinge max(·, 0) "
            f"of {LONE_HINGE_ROWS} rows or more into YNNPACK, whose maximum gives 0 for NaN: there jnp.mean or "
            "jnp.sum of the losses alone counts those rows as 0" + (", and the losses alone are 0" if alone else "")
            + " (other results may differ there in last bits)")


def vector_power_rows(q: int, rows: int, n: int) -> Array:
    """Which rows of 2 to 8 features LLVM's loop vectorizer takes 4 or 8 at a time in XLA's fused row sum of an
    integral q's powers (POWER_ROWS, _vector_rows): in each task's equal part of the rows, or in none where the
    parts differ in size (a guarded loop, left scalar)."""
    tasks = row_sum_tasks(q, rows, n)
    vector = np.zeros(rows, dtype=bool)
    if rows % tasks == 0:
        part = rows // tasks
        w = (avx2_stored_rows(part, n, avx2_power_rows(q)) if cpu.selected() == "avx2"
             else _vector_rows(part, n, power_rows(q)))
        for start in range(0, rows, part):
            vector[start:start + w] = True
    return vector


def along_row_sum(d: Array, q: float) -> Array:
    """Σ d^q along each row of 16 to 32 features as LLVM vectorizes XLA's fused loop along the row (along_row): lanes
    of features, block after block (an integral q's last products contracted into them: ROW_PLANS, 8 lanes for 24
    to 27 and for 32 features, in order; 4 lanes for 28 to 31, whose blocks its two accumulators take in turn and
    the backend reassociates into the order 0, 2, 4, 3, 1, 5; below 24 an epilogue's vectors after the first 16;
    ½'s roots added in 8 lanes), the first lane from +0, the lanes halved pairwise, then the features left in order."""
    n = d.shape[1]
    if integral(q):
        u, v = last_factors(d, int(q), ftz)
        return vector_fma_sum(u, v, ROW_PLANS[max(k for k in ROW_PLANS if k <= n)])
    return vector_add_sum(jit_powf(d, q), (8, (tuple(range(n // 8)),), 0), ftz)


# q = 1, ½ and ⅓ under jit in float32 (roots h^(1/q) that XLA writes as h, h·h and h·(h·h)): XLA fuses the losses
# into their sum, whose loop over the rows LLVM vectorizes for batches of these many rows (rows of one feature; of
# more), 8 lanes block after block; XLA's windows add other batches (measured: python3
# scripts/golden_lowp_xla_pow.py --loss-lanes); keyed by 1/q
LOSS_LANES = {1.0: (range(24, 33), range(30, 33)), 2.0: (range(25, 33), range(25, 33)),
              3.0: (range(24, 33), range(24, 33))}
# batches (rows, features) whose sum LLVM takes 4 lanes at a time over the first 16 losses, then 2 at a time
# (vector_add_sum's epilogue of 2 lanes repeated; read from XLA's dump of the LLVM IR)
LOSSES_PAIRED = {1.0: (range(23, 24), range(1, 2)), 3.0: (range(22, 24), range(1, YNN_FROM))}


def fused_value(terms: Array, n: int, q: float) -> Callable[[float], float]:
    """jnp.sum (over 1) or jnp.mean (over N) of the losses under jit in float32 for q = 1, ½ or ⅓, rows of n
    features: XLA's fused sum of the losses (LOSS_LANES, LOSSES_PAIRED, else XLA's windows), times 1/N."""
    rows, e = terms.shape[0], float(F32(1 / q))
    paired = LOSSES_PAIRED.get(e)

    def value(count: float) -> float:
        if paired is not None and rows in paired[0] and n in paired[1]:
            total = vector_add_sum(terms.reshape(1, -1), (4, ((0, 1, 2, 3),), 2), ftz)[0]
        elif rows in LOSS_LANES[e][min(n, 2) - 1]:
            total = vector_add_sum(terms.reshape(1, -1), (8, (tuple(range(rows // 8)),), 0), ftz)[0]
        else:
            total = xla_sum(terms.reshape(1, -1))[0]
        return float(ftz(total) if count == 1 else mul(total, F32(1) / F32(count)))
    return value


def _contracted(u: Array, v: Array, even: bool) -> Array:
    """Σ u·v along each row as XLA's scalar loop adds the powers u·v (last_factors): each product contracted into
    the running sum, from +0 for an odd q and, for an even q (a power LLVM knows is not −0, so the +0 goes), from
    fma(u₀, v₀, u₁·v₁), as the squares' loop for q = 2."""
    if not even:
        acc = np.zeros(u.shape[0], dtype=F32)
        for i in range(u.shape[1]):
            acc = _fma(u[:, i], v[:, i], acc)
        return acc
    acc = _fma(u[:, 0], v[:, 0], mul(u[:, 1], v[:, 1]))
    for i in range(2, u.shape[1]):
        acc = _fma(u[:, i], v[:, i], acc)
    return acc


def triplet(a: Array, pos: Array, neg: Array, q: float, margin: float, r: Rounder, k: Rounder, jit: bool,
            fused: bool = False, regroup: bool = False) -> tuple[Array, Array, Callable[[float], list[Array]]]:
    """triplet_margin_loss with norm_degree q: d(u, v) = (Σ (u − v)^q + ε)^(1/q), max(d(a, pos) − d(a, neg) +
    margin, 0); jax.grad through the root's slope and the power's (slope, root_slope), the maximum's share (½ at
    0) first. `fused` (float32 under jit): the powers summed in XLA's fused row loop (_fused_sum) and each
    gradient's row factor taken times q before its product with the slope's power (XLA's reassociation).
    Returns the losses, the terms the mean adds, and the gradients (anchor, positive, negative)."""
    eps = r(F32(1e-6))
    e = F32(r(F32(1 / q)))

    def dist(v: Array) -> tuple[Array, Array, Array, Array]:
        d = (k if q == 1 else r)(a - v)  # (for q = 1 the differences feed the sum alone: kept as `k`)
        kept = ynn_kept(d.shape, r, k)
        if fused and d.shape[1] == 1 and integral(q) and q >= 3:
            h = _fma(*last_factors(d, int(q), ftz), eps)[:, 0]
        elif fused and d.size >= YNN_FROM and integral(q) and int(q) & (int(q) - 1):
            # (YNNPACK takes the power's last product in with the sum where that product has two factors: a single
            # row's dot, runs of 32768 in any batch; a power of 2's last product is a square, summed as it is)
            h = r(product_sum(*last_factors(d, int(q), ftz)) + eps)
        elif fused and d.shape[1] <= 32 and d.size < YNN_FROM:
            h = r(_fused_sum(d, q) + eps)
        elif half_fused(r, jit, q, d.shape):
            h = r(r(half_sum(d, int(q), r)) + eps)
        elif fused:
            h = r(xla_sum(ynn_powers(d, q)) + eps)
        else:
            h = kept(_rows(power(d, q, r, k, ynn_into(d.shape, k)), kept, k) + eps)
        root = jit_powf(h, float(e), k) if jit else powf(h, float(e))
        # (q = 1: the root is h itself, and YNNPACK's fusion goes on to the hinge's difference and margin)
        return d, h, (kept if q == 1 else r)(root), root_slope(h, q, r, jit, k)
    dp, hp, root_p, jp = dist(pos)
    dn, _, root_n, jn = dist(neg)
    diff = _root_difference(hp, root_n, e) if fused else None
    raw, back = margin_hinge(root_p, root_n, jp, jn, margin, r, diff, ynn_kept(dn.shape, r, k) if q == 1 else r)

    def grads(n: float) -> list[Array]:
        cn, cp = back(n)
        if fused and q != 1 and dn.shape[1] == 1:
            sn, sp = slope(dn, q, ftz, True), slope(dp, q, ftz, True)
            bp, bt = mul(cn, sn), mul(cp, sp)
            return [_fma(cp, sp, bp), -bt, -bp]
        if fused and q != 1:
            (un, kn), (up, kp) = _factors(cn, dn, q), _factors(cp, dp, q)
            bp, bt = mul(un, kn), mul(up, kp)
            anchor = np.where(contracts_positive(q, dn.shape), _fma(up, kp, bp), _fma(un, kn, bt))
            return [anchor, -bt, -bp]
        if regroup and q != 1 and dn.shape[1] > 1:
            (un, kn), (up, kp) = _factors(cn, dn, q, r), _factors(cp, dp, q, r)
            bp, bt = mul(un, kn, r), mul(up, kp, r)
        else:
            bp, bt = _through(cn, dn, q, r, jit), _through(cp, dp, q, r, jit)
        return [r(bp + bt), -bt, -bp]
    return r(raw), raw, grads


def ynn_into(shape: tuple[int, ...], k: Rounder) -> Rounder | None:
    """How the products into an integral power's result are kept in a half dtype's row sum (None: rounded to the
    dtype): from YNN_FROM elements in rows of two features or more XLA hands the sum to YNNPACK with those
    products, and YNNPACK drops their rounding to bfloat16 (XLA's converts are in its fusion), kept as `k`
    (float32 in bfloat16 under jit; float16, whose `k` is its own rounding, keeps it)."""
    rows, n = shape
    return k if rows * n >= YNN_FROM and n > 1 else None


def contracts_positive(q: float, shape: tuple[int, ...]) -> Array:
    """Which elements of the anchor's gradient under jit in float32 LLVM's scalar code forms as fma(positive's
    factors, negative's product), where the vector code contracts the negative's: every element of a single row
    split unevenly (scalar_gradient), and the ninth feature of a batch of 9 features where d^(q−1) takes
    GRADIENT_PRODUCTS_FROM products or more (the remainder of an 8-wide loop)."""
    rows, n = shape
    out = np.full(shape, scalar_gradient(q, shape))
    if rows > 1 and n == 9 and integral(q) and q >= 3 and products(int(q) - 1) >= GRADIENT_PRODUCTS_FROM:
        out[:, 8] = True
    return out


def scalar_gradient(q: float, shape: tuple[int, ...]) -> bool:
    """Whether XLA's kernel of the anchor's gradient under jit in float32 (an integral q) is a guarded scalar loop,
    whose multiply-add LLVM forms from the positive's product (a vectorized one from the negative's): a single row
    split among tasks along the row into parts of unequal size (gradient_tasks)."""
    rows, n = shape
    return rows == 1 and integral(q) and q >= 3 and n % gradient_tasks(int(q), n) != 0


def _root_difference(h_p: Array, root_n: Array, e: F32) -> Array | None:
    """d(a, pos) − d(a, neg) under jit in float32 where XLA's algebraic simplifier writes the root h^e as products
    (e = 2: h·h, e = 3: h·(h·h); q = ½ and ⅓) and LLVM contracts the positive's last product into the
    subtraction: fma(h_p, h_p or h_p², −d(a, neg)); None for any other e (a powf, nothing to contract)."""
    if e not in (2, 3):
        return None
    return _fma(h_p, h_p if e == 2 else mul(h_p, h_p), -root_n)


def _through(c: Array, d: Array, q: float, r: Rounder, jit: bool) -> Array:
    """A row's cotangent c taken through jnp.power(d, q) to d: c·(q·d^(q−1)) op by op."""
    if q == 1:
        return np.broadcast_to(c, d.shape).astype(F32)
    s = slope(d, q, r, jit)
    assert s is not None
    return mul(c, s, r)


def _factors(c: Array, d: Array, q: float, r: Rounder = ftz) -> tuple[Array, Array]:
    """The two factors whose product is the gradient with respect to d under jit in float32 (and float16, each
    rounded by `r`): XLA reassociates c·(q·d^(q−1)) into d^(q−1)·(c·q) (d^½ for q = 1.5 a square root,
    jit_powf)."""
    part = int_pow(d, int(q) - 1, r) if integral(q) else r(jit_powf(d, float(r(r(F32(q)) - F32(1)))))
    return part, mul(c, r(F32(q)), r)
