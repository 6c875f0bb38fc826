"""JAX's CPU results (XLA) for optax's ntxent in float32, float16 and bfloat16, bit for bit, op by op.

lossgrad's contrastive --ntxent hands optax the 2B rows e = [anchors; positives] with labels [0..B−1, 0..B−1]. optax
forms the cosine matrix by broadcasting, not by a matrix product: (e[None]/‖e‖ · e[:, None]/‖e‖) summed over the
features, each squared norm clipped at the dtype's ε; then /τ, the shift by the row maximum, e^x, the masked row
sums, log and the sum over the matrix, negated and divided by its count 2B. Each operation is compiled on its own:
every result is stored in the dtype, jnp.sum adds a half dtype in float32, and XLA turns a division by a column or a
constant (the backward pass's τ) into a product with its reciprocal (rounded to the dtype), except in bfloat16,
where the quotient rounds once; the forward pass's τ is an operand of jax.grad's trace: the quotient. jax.grad's
backward pass runs the transposes of the same operations; its sums over the partner rows (the transposes of the
broadcasts) add in the dtype itself: float16 and bfloat16 in XLA's windows of 32, every addition rounded; float32 in
XLA's windows below 4096 elements and in YNNPACK's from 4096 (lowp_xla_partner: its tree of accumulators, the sum
over the rows in slices of 32768 elements). The value's sum over the N × N matrix is YNNPACK's from 4096 elements
(lowp_xla.xla_sum2d). Under jit XLA fuses all of it into kernels of its own: float32 in lowp_xla_ntxent_jit, float16
here (FusedHalf: the op-by-op roundings with two changes), bfloat16 too (FusedBf16: float32 kept inside the fused
kernels).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import cpu, lowp_xla64_ntxent
from .errors import NotReproduced
from .losses import Parts
from .losses._ops import Array
from .lowp_xla import (
    F32,
    YNN_FROM,
    AccumulatorPlan,
    _in_order,
    _rows_in_dtype,
    div,
    ftz,
    mul,
    rounder,
    vector_add_sum,
    xla_exp,
    xla_log,
    xla_sum,
    xla_sum2d,
)
from .lowp_xla_more import _over
from .lowp_xla_ntxent_jit import (
    Fused,
    _at_positives,
    avx2_blocks,
    squared_norms,
    stored,
    unsupported_shape,
    value_sum,
)
from .lowp_xla_partner import fits, partner_sum

__all__ = ["fits", "partner_sum"]  # (read by the tests and the golden script from here)

# the losses reproduced here, and the options each takes
TAKES: dict[str, tuple[str, ...]] = {"contrastive": ("temperature", "ntxent")}
SUPPORTED = ("contrastive --ntxent (ntxent; in float64 too: lowp_xla64_ntxent)",)
DTYPES = ("float32", "float16", "bfloat16", "float64")  # (float64: conventions.OPTAX.kernels_float64)
ULP_EPS = {"float32": F32(2.0**-23), "float16": F32(2.0**-10), "bfloat16": F32(2.0**-7)}


def _matrix_sum(v: Array, bf16: bool = False) -> F32:
    """jnp.sum of the N×N matrix whose row k holds v[k] alone, at its positive (float32), as XLA adds a whole 2-D
    array (xla_sum2d: below 4096 elements its windows and blocks, whose rows LLVM splits into the processor's lanes;
    from 4096 YNNPACK's, `bf16`: of a matrix stored in bfloat16, in its pairs)."""
    return xla_sum2d(_at_positives(v), bf16)


class Ntxent:
    """optax.ntxent(e, labels, τ) and jax.grad of it, as XLA computes them op by op, for e = [a; p] (N = 2B rows)."""

    def __init__(self, a: Array, p: Array, tau: float, half: Any, eps: F32) -> None:
        r = self.r = rounder(half)
        self.bf16 = half is not None and half is not np.float16
        e = self.e = r(np.concatenate([a, p]).astype(F32))
        n, d = e.shape
        self.pos = (np.arange(n) + n // 2) % n
        self.n2 = self.squared_norms(e)
        self.clipped = np.maximum(eps, self.n2)
        self.share = np.where(self.n2 >= eps, np.where(self.n2 == eps, F32(0.5), F32(1)), F32(0)).astype(F32)
        self.norm = r(np.sqrt(self.clipped))
        u = self.u = self.over_norm(e)
        self.t = r(F32(tau))
        xcs = self.scaled_cosines(u)
        rows = np.arange(n)
        self.diffs = np.ones((n, n), dtype=bool)
        self.diffs[rows, rows] = self.diffs[rows, self.pos] = False
        top = np.maximum(np.where(self.diffs, xcs, -np.inf).max(axis=1), xcs[rows, self.pos]).astype(F32)
        exps = np.where(self.diffs, xla_exp(r(xcs - top[:, None])), F32(0)).astype(F32)
        self.ds = r(exps)
        shifted = r(xcs[rows, self.pos] - top)
        self.numer = r(xla_exp(shifted))
        self.total = self.exp_total(exps)
        self.denom = r(self.total + self.numer)
        self.log_softmax = r(shifted - r(xla_log(self.denom)))

    def squared_norms(self, e: Array) -> Array:
        """Σe² along each row: the squares stored in the dtype, their sum in float32 (jnp.sum's: of bfloat16s, from
        4096 elements in YNNPACK's pairs), stored."""
        return self.r(xla_sum(mul(e, e, self.r), self.bf16))

    def over_norm(self, x: Array) -> Array:
        """x/‖e‖ row by row: a product with 1/‖e‖ rounded to the dtype (bfloat16, or one feature: the quotient)."""
        return _over(x, self.norm[:, None], self.r, self.bf16)

    def scaled_cosines(self, u: Array) -> Array:
        """The cosine matrix over τ: Σ uᵢ·uⱼ over the features (each product stored, the sum jnp.sum's in float32,
        stored), divided by τ."""
        n, d = u.shape
        products = mul(u[None, :, :], u[:, None, :], self.r).reshape(n * n, d)
        return self.divide(self.r(xla_sum(products, self.bf16)).reshape(n, n))

    def divide(self, x: Array) -> Array:
        """x / τ, τ in the dtype (jax.grad's trace hands XLA τ as an operand: the quotient itself)."""
        return div(x, self.t, self.r)

    def exp_total(self, exps: Array) -> Array:
        """Each row's sum of the negatives' e^x: the stored exponentials added in float32 (jnp.sum's order)."""
        return self.r(xla_sum(self.ds, self.bf16))

    def backward_tau(self, g: Array) -> Array:
        """g/τ in the backward pass, where τ is a constant: a product with 1/τ rounded to the dtype (bfloat16: the
        quotient rounded once)."""
        return div(g, self.t, self.r) if self.bf16 else mul(g, div(F32(1), self.t, self.r), self.r)

    def value(self, count: float) -> float:
        """−Σ log_softmax / count, the sum in float32 and stored, then divided in the dtype."""
        total = self.r(_matrix_sum(self.log_softmax, self.bf16))
        return float(div(-total, self.r(F32(count)), self.r))

    def grads(self, count: float) -> Array:
        """jax.grad of value(count) with respect to e."""
        r, n = self.r, self.e.shape[0]
        rows = np.arange(n)
        c = div(F32(1), r(F32(count)), r)
        et = div(c, self.denom, r)
        # the row's sum of the quotients: the others are −0/Σ, NaN where every negative's e^x underflowed to 0
        row = ftz(et + F32(-0.0) / self.total)
        g = np.where(self.diffs, mul(row[:, None], self.ds, r), F32(0)).astype(F32)
        g[rows, self.pos] = r(-c + mul(et, self.numer, r))
        g = self.backward_tau(g)
        u = self.u
        g_b = self.partner_sum(mul(u[None, :, :], g[:, :, None], r), 1)  # ∂/∂(e[:, None]/‖e‖), over the partners j
        g_a = self.partner_sum(mul(g[:, :, None], u[:, None, :], r), 0)  # ∂/∂(e[None]/‖e‖), over the partners i
        return r(self.through_norm(g_b) + self.through_norm(g_a))

    def partner_sum(self, x: Array, axis: int) -> Array:
        """jax.grad's sum of the products x [N, N, D] over the rows (axis 0) or the partners (axis 1)."""
        return partner_sum(x, axis, self.r)

    def through_norm(self, g: Array) -> Array:
        """The gradient through x/‖x‖, ‖x‖ = sqrt(max(ε, Σx²)): g/‖x‖ + 2x·w·(½/‖x‖)·(−Σ g·‖x‖^−2·x)."""
        r, e, norm = self.r, self.e, self.norm[:, None]
        terms = mul(mul(g, div(F32(1), mul(norm, norm, r), r), r), e, r)
        s = (xla_sum(terms) if r is ftz else _rows_in_dtype(terms, r))[:, None]
        back = mul(mul(-s, div(F32(0.5), norm, r), r), self.share[:, None], r)
        return r(self.over_norm(g) + mul(back, mul(F32(2), e, r), r))

    def losses(self) -> Array:
        """Each sample's loss: the mean of its two rows' −log_softmax, ½(ℓᵢ + ℓᵢ₊B), in the dtype."""
        b = self.e.shape[0] // 2
        rows = -self.log_softmax
        return mul(self.r(rows[:b] + rows[b:]), F32(0.5), self.r)


# float16 under jit from 16 to 32 rows: XLA's fused sums over the partner rows as LLVM vectorizes them, each product
# stored in float16 and every addition rounded to it, no multiply-adds (lowp_xla.vector_add_sum: each accumulator's
# blocks of rows, the accumulators added, the lanes halved, an epilogue's vector, the rows left). HALF_NARROW with up
# to 8 features, HALF_WIDE from 9 (where given). Measured with jax 0.10.2 on AVX-512 (tests/test_lowp_xla_ntxent.py,
# live); with AVX2 lowp_xla_ntxent_jit.avx2_blocks.
HALF_NARROW: dict[int, AccumulatorPlan] = {16: (8, ((0,),), 0), 18: (8, ((0, 1),), 0), 20: (4, ((0, 2), (1, 3)), 0),
                                    22: (4, ((0, 2), (1, 3)), 0), 24: (8, ((0, 1),), 0),
                                    **{n: (8, ((0, 1, 2),), 0) for n in range(26, 33, 2)}}
HALF_WIDE: dict[int, AccumulatorPlan] = {16: (8, ((0, 1),), 0), 18: (8, ((0, 1),), 2), 24: (8, ((0, 1, 2),), 0),
                                  32: (8, ((0, 2), (1, 3)), 0)}
# With one feature, for the sum over the rows i and the one over the partners j: 8 lanes over the whole blocks of 8
# rows, but at 20 and 22 rows 4 lanes, over the rows i with a vector epilogue of 4 and over the partners j in two
# accumulators; at 18 an epilogue of 2; at 32 the partners' blocks in two accumulators. Read from XLA's dump of the
# LLVM IR (XLA_FLAGS=--xla_dump_to) and measured with jax 0.10.2 on AVX-512.
_HALF_20: tuple[AccumulatorPlan, AccumulatorPlan] = ((4, ((0, 1, 2, 3),), 4), (4, ((0, 2), (1, 3)), 0))
HALF_ONE_FEATURE: dict[int, tuple[AccumulatorPlan, AccumulatorPlan]] = {
    16: ((8, ((0, 1),), 0),) * 2, 18: ((8, ((0, 1),), 2),) * 2, 20: _HALF_20, 22: _HALF_20,
    **{n: ((8, ((0, 1, 2),), 0),) * 2 for n in range(24, 31, 2)},
    32: ((8, ((0, 1, 2, 3),), 0), (8, ((0, 2), (1, 3)), 0))}


class FusedHalf(Ntxent):
    """float16 under jax.jit: the same operations, each result stored in float16 as op by op, except that τ is a
    constant (the forward pass multiplies by 1/τ, rounded to float16, as the backward pass does), the norm's
    backward pass takes ‖e‖^−2 as 1/max(ε, Σe²) itself, and from 16 to 32 rows LLVM vectorizes the fused partner
    sums (vector_add_sum; HALF_ONE_FEATURE's plans for rows of one feature; with AVX2, avx2_blocks' for float16)."""

    def partner_sum(self, x: Array, axis: int) -> Array:
        n, _, d = x.shape
        if n not in HALF_NARROW:
            return partner_sum(x, axis, self.r)
        if cpu.selected() == "avx2":
            lanes, parts, blocks = avx2_blocks(n, d, axis == 0, "float16")
            plan = lanes, tuple(tuple(range(k, blocks, parts)) for k in range(parts)), 0
        elif d == 1:
            plan = HALF_ONE_FEATURE[n][axis]
        else:
            plan = HALF_WIDE.get(n, HALF_NARROW[n]) if d > 8 else HALF_NARROW[n]
        return vector_add_sum(np.moveaxis(x, axis, 2).reshape(n * d, n), plan, self.r).reshape(n, d)

    def divide(self, x: Array) -> Array:
        return mul(x, div(F32(1), self.t, self.r), self.r)

    def through_norm(self, g: Array) -> Array:
        r, e, norm = self.r, self.e, self.norm[:, None]
        terms = mul(mul(g, div(F32(1), self.clipped, r)[:, None], r), e, r)
        s = _rows_in_dtype(terms, r)[:, None]
        back = mul(mul(-s, div(F32(0.5), norm, r), r), self.share[:, None], r)
        return r(self.over_norm(g) + mul(back, mul(F32(2), e, r), r))


class FusedBf16(Ntxent):
    """bfloat16 under jax.jit: XLA's fused kernels keep float32 where op by op each result is stored. The squares
    and the cosines' products (exact in float32: bfloat16 carries 8 bits) are summed in float32 as the float32 kernels
    sum them (lowp_xla_ntxent_jit's orders) and stored; 1/‖e‖ stays float32, so x/‖e‖ is x·(1/‖e‖) rounded once to
    bfloat16; τ is a constant, its reciprocal 1/τ a float32; the negatives' e^x reach their row sum unrounded. From
    64 rows (an N × N matrix of 4096 elements or more) YNNPACK fuses the cosines' sum with the product by 1/τ and
    skips the rounding between them. Everything else rounds as op by op: the backward pass's sums over the partner
    rows and the features add in bfloat16, every addition rounded, in XLA's windows of 32."""

    def squared_norms(self, e: Array) -> Array:
        return self.r(squared_norms(e))

    def over_norm(self, x: Array) -> Array:
        if x.shape[1] == 1:
            return div(x, self.norm[:, None], self.r)
        return mul(x, div(F32(1), self.norm)[:, None], self.r)

    def scaled_cosines(self, u: Array) -> Array:
        n, d = u.shape
        products = mul(u[None, :, :], u[:, None, :]).reshape(n * n, d)
        if d == 1:
            return mul(self.r(products[:, 0].reshape(n, n)), self.invt, self.r)
        sums = (xla_sum(products) if stored(n, d) else _in_order(products) + F32(0)).reshape(n, n)
        return mul(sums if n * n >= YNN_FROM else self.r(sums), self.invt, self.r)

    @property
    def invt(self) -> F32:
        return F32(F32(1) / self.t)

    def exp_total(self, exps: Array) -> Array:
        return self.r(xla_sum(exps))

    def backward_tau(self, g: Array) -> Array:
        return mul(g, self.invt, self.r)

    def value(self, count: float) -> float:
        """−Σ log_softmax / count: the float32 sum in the order of the float32 kernels (value_sum), stored, then
        divided in the dtype."""
        total = self.r(value_sum(self.log_softmax))
        return float(div(-total, self.r(F32(count)), self.r))




# the most products of two rows' features ([2B, 2B, d], float32) the reproduced kernels hold, each array 256 MiB
HELD_PRODUCTS = 1 << 26


def unsupported(loss: str, from_logits: bool, params: dict[str, Any], switches: dict[str, bool],
                sample_weight: bool) -> str | None:
    """Why JAX's results for these options are not reproduced (None: they are)."""
    if sample_weight:
        return "contrastive with {sample_weight}"
    return None


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = True,
            weights: Array | None = None, extra: dict[str, Array] | None = None) -> Parts:
    """contrastive --ntxent's parts as JAX computes them op by op: the predictions the anchors, the targets their
    positives; the mean over the B samples is optax's mean over the 2B rows (the sum: its total halved)."""
    b = p.shape[0]
    tau = float((params or {}).get("temperature", 0.07))
    products = (2 * b) ** 2 * p.shape[1]
    if products > HELD_PRODUCTS:
        raise NotReproduced("dtype", f"JAX's ntxent of {b} pairs of {p.shape[1]} features is reproduced from the "
                                     f"products of every two rows' features, [2B, 2B, d]: {products:,} values here, "
                                     f"beyond the {HELD_PRODUCTS:,} lossgrad holds; give fewer pairs or use "
                                     "--convention exact")
    if p.dtype == np.float64:
        return _parts(lowp_xla64_ntxent.model(y, p, tau, switches.get("jit", True)), b)
    if switches.get("jit", True):
        return _jit_parts(y, p, tau, half)
    kind = "float32" if half is None else np.dtype(half).name
    with np.errstate(all="ignore"):
        nt = Ntxent(p, y, tau, half, ULP_EPS[kind])
    return _parts(nt, b)


def _parts(nt: Any, b: int) -> Parts:
    """ntxent's parts from a model of it (losses(), and grads(m) and value(m) over the 2B rows, the mean's m = 2n):
    the anchors' gradient the predictions', the positives' the target's."""
    with np.errstate(all="ignore"):
        losses = nt.losses()

    @functools.cache  # (the mean's two gradients come from one computation)
    def both(n: float) -> list[Array]:
        with np.errstate(all="ignore"):
            g = nt.grads(2 * n)
        return [g[:b], g[b:]]

    def value(n: float) -> float:
        with np.errstate(all="ignore"):
            return float(nt.value(2 * n))
    g1 = both(1)
    return Parts(losses=losses, grad=g1[0], extra_grads={"target": g1[1]}, mean_grad=lambda n: both(n)[0],
                 mean_value=value, mean_extra_grads=lambda n: {"target": both(n)[1]})


def _jit_parts(y: Array, p: Array, tau: float, half: Any) -> Parts:
    """The parts under jax.jit (float32: lowp_xla_ntxent_jit; float16: FusedHalf)."""
    b, d = p.shape
    if half is not None:
        return _jit_half(y, p, tau, half)
    why = unsupported_shape(b, d)
    if why:
        raise NotReproduced("dtype", why + "; ask for JAX op by op (--no-jit; jit=False in Python)")
    with np.errstate(all="ignore"):
        nt = Fused(ftz(p.astype(F32)), ftz(y.astype(F32)), tau)
    return _parts(nt, b)


def _jit_half(y: Array, p: Array, tau: float, half: Any) -> Parts:
    """A half dtype's parts under jax.jit (float16: FusedHalf, bfloat16: FusedBf16)."""
    b, d = p.shape
    model = FusedHalf if half is np.float16 else FusedBf16
    with np.errstate(all="ignore"):
        nt = model(p, y, tau, half, ULP_EPS[np.dtype(half).name])
    return _parts(nt, b)
