"""JAX's CPU results (XLA) for optax's ntxent in float64 (JAX with jax_enable_x64), bit for bit, op by op.

The operations are lowp_xla_ntxent's, each computed in double and rounded once, subnormals flushed: the squared
norms' row sums, ‖e‖ = √max(ε, Σe²) with ε = 2⁻⁵², e/‖e‖ as a product with 1/‖e‖ (one feature: the quotient), the
cosines' sums over the features, the quotient by τ (an operand of jax.grad's trace), the shift by the row maximum,
XLA's own e^x (lowp_xla64.exp), the negatives' row sums, the C library's log, and the value's sum over the N × N
matrix (lowp_xla64.sum2d), divided by its count. jax.grad's backward pass runs the transposes: τ there is a
constant, a product with 1/τ; the sums over the partner rows are lowp_xla64.partner_sum's.

Under jit (Fused64) τ is a constant: the forward pass multiplies by 1/τ too. With rows of more than 32 features
XLA stores every product before summing it, so the sums are op by op's, but for four: the backward pass's positive
score G·eˣ − 1/N is one FMA; the sums over the partner rows below 4,096 products are FMA chains in row order, and
from 4,096 the sum over the partners j runs in slices of 16384 // d rows (YNNPACK's fusion, as in float32); the
norm's backward pass takes ‖e‖⁻² as 1/max(ε, Σe²) and contracts one product of g·(1/‖e‖) + m·e, as float32's
does; and the value's sum over the N × N matrix goes in row order from 18 to 32 rows (elsewhere sum2d's).
With 32 features or fewer XLA fuses the products into its sums' loops, which LLVM splits into lanes by shape: not
pinned down (measured: one or two gradients apart in about a fifth of the shapes), the formulas.

What is reproduced: every sum of fewer than 4,096 elements, and from 4,096 the row sums of up to 2,047
(lowp_xla64.row_sum), so up to 1,023 pairs of up to 2,047 features, of any width while the [2B, 2B, d] products stay
under 4,096; under jit rows of 33 to 2,047 features. The value's sum over the matrix is reproduced below 4,096
elements (up to 31 pairs) with AVX2 (sum2d). Measured with jax 0.10.2 on an AMD EPYC with AVX2
(scripts/golden_xla64_ntxent.py --measure).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import libm
from .errors import NotReproduced
from .losses._ops import Array
from .lowp_xla import SLAB
from .lowp_xla64 import YNN_FROM, _in_order, div, exp, ftz, fused, mul, partner_sum, row_sum, sum2d
from .lowp_xla_ntxent_jit import chain
from .lowp_xla_partner import _runs

EPS = 2.0**-52  # (optax's epsilon, jnp.finfo(float64).eps)
FUSED_UP_TO = 32  # under jit, rows of this many features or fewer are fused into their sums' loops
JIT = (f"JAX's float64 ntxent under jit of rows of {FUSED_UP_TO} features or fewer (XLA fuses the products into its "
       "sums' loops, whose lanes LLVM picks by shape: not pinned down); ask for JAX op by op (--no-jit; jit=False in "
       "Python)")


class Ntxent64:
    """optax.ntxent(e, labels, τ) and jax.grad of it in float64, op by op, for e = [a; p] (N = 2B rows)."""

    def __init__(self, a: Array, p: Array, tau: float) -> None:
        e = self.e = ftz(np.concatenate([a, p]))
        n, d = e.shape
        self.tau = tau
        self.pos = (np.arange(n) + n // 2) % n
        n2 = row_sum(mul(e, e))
        self.share = np.where(n2 >= EPS, np.where(n2 == EPS, 0.5, 1.0), 0.0)
        self.clipped = np.maximum(EPS, n2)
        self.norm = ftz(np.sqrt(self.clipped))
        u = self.u = self.over_norm(e)
        cosines = row_sum(mul(u[None, :, :], u[:, None, :]).reshape(n * n, d)).reshape(n, n)
        xcs = self.scaled(cosines)
        rows = np.arange(n)
        self.diffs = np.ones((n, n), dtype=bool)
        self.diffs[rows, rows] = self.diffs[rows, self.pos] = False
        top = np.maximum(np.where(self.diffs, xcs, -np.inf).max(axis=1), xcs[rows, self.pos])
        self.ds = np.where(self.diffs, exp(ftz(xcs - top[:, None])), 0.0)
        shifted = ftz(xcs[rows, self.pos] - top)
        self.numer = exp(shifted)
        self.total = row_sum(self.ds)
        self.denom = ftz(self.total + self.numer)
        self.log_softmax = ftz(shifted - ftz(libm.log(self.denom)))

    def scaled(self, cosines: Array) -> Array:
        """The cosines over τ: the quotient (τ an operand of jax.grad's trace)."""
        return div(cosines, self.tau)

    def over_norm(self, x: Array) -> Array:
        """x/‖e‖ row by row: a product with 1/‖e‖ (one feature: the quotient)."""
        norm = self.norm[:, None]
        return div(x, norm) if x.shape[1] == 1 else mul(x, div(1.0, norm))

    def value(self, count: float) -> float:
        """−Σ log_softmax / count: the sum over the N × N matrix holding each row's at its positive."""
        n = self.e.shape[0]
        matrix = np.zeros((n, n))
        matrix[np.arange(n), self.pos] = self.log_softmax
        return float(div(-sum2d(matrix), count))

    def grads(self, count: float) -> Array:
        """jax.grad of value(count) with respect to e."""
        n = self.e.shape[0]
        rows = np.arange(n)
        c = div(1.0, count)
        et = div(c, self.denom)
        row = ftz(et + -0.0 / self.total)  # (NaN where every negative's e^x underflowed to 0)
        g = np.where(self.diffs, mul(row[:, None], self.ds), 0.0)
        g[rows, self.pos] = self.at_positive(et, c)
        g_a, g_b = self.partner_sums(mul(g, div(1.0, self.tau)))
        return ftz(self.through_norm(g_a, False) + self.through_norm(g_b, True))

    def at_positive(self, et: Array, c: Array) -> Array:
        """The score at each row's positive, G·eˣ − c (G = c/Σ)."""
        return ftz(-c + mul(et, self.numer))

    def partner_sums(self, g: Array) -> tuple[Array, Array]:
        """Σᵢ gᵢⱼ·uᵢ (∂/∂(e[None]/‖e‖), over the rows i) and Σⱼ gᵢⱼ·uⱼ (∂/∂(e[:, None]/‖e‖), over the partners j)."""
        u = self.u
        return partner_sum(mul(g[:, :, None], u[:, None, :]), 0), partner_sum(mul(u[None, :, :], g[:, :, None]), 1)

    def through_norm(self, g: Array, on_scale: bool) -> Array:
        """The gradient through x/‖x‖, ‖x‖ = √max(ε, Σx²): g/‖x‖ + 2x·w·(½/‖x‖)·(−Σ g·‖x‖⁻²·x) (`on_scale`: which
        broadcast it goes through, for the fused kernels)."""
        e, norm = self.e, self.norm[:, None]
        s = row_sum(mul(mul(g, div(1.0, mul(norm, norm))), e))[:, None]
        back = mul(mul(-s, div(0.5, norm)), self.share[:, None])
        return ftz(self.over_norm(g) + mul(back, mul(2.0, e)))

    def losses(self) -> Array:
        """Each sample's loss: ½(ℓᵢ + ℓᵢ₊B), ℓ = −log_softmax."""
        b = self.e.shape[0] // 2
        rows = -self.log_softmax
        return mul(ftz(rows[:b] + rows[b:]), 0.5)


def _fma(a: Array, b: Array, c: Array) -> Array:
    return ftz(fused(a, b, c))


class Fused64(Ntxent64):
    """Ntxent64 under jax.jit, for rows of more than FUSED_UP_TO features: τ a constant, the positive's score an FMA,
    the partner sums of the fused kernels, the norm's backward pass as float32's fused kernels take it, the value's
    sum in row order from 18 to 32 rows."""

    def scaled(self, cosines: Array) -> Array:
        return mul(cosines, 1.0 / self.tau)

    def value(self, count: float) -> float:
        if 18 <= self.e.shape[0] <= 32:  # (LLVM reduces each row's lanes into a running sum: row order)
            return float(div(-(_in_order(self.log_softmax[None, :])[0] + 0.0), count))
        return super().value(count)

    def at_positive(self, et: Array, c: Array) -> Array:
        return ftz(fused(et, self.numer, -c))

    def partner_sums(self, g: Array) -> tuple[Array, Array]:
        """FMA chains in row order below 4,096 products; from 4,096 YNNPACK's, the sum over the partners j in slices
        of 16384 // d rows (lowp_xla_partner's runs)."""
        u = self.u
        n, d = u.shape
        if n * n * d < YNN_FROM:
            return (chain(g.T[:, None, :], u.T[None, :, :], mul, _fma),
                    chain(g[:, None, :], u.T[None, :, :], mul, _fma))
        over_j = np.moveaxis(mul(u[None, :, :], g[:, :, None]), 1, 2).reshape(n * d, n)
        return (partner_sum(mul(g[:, :, None], u[:, None, :]), 0),
                _runs(over_j, max(1, SLAB * 4 // 8 // d), ftz).reshape(n, d))

    def through_norm(self, g: Array, on_scale: bool) -> Array:
        """g·(1/‖e‖) + m·e, m = ((−s·½/‖e‖)·w)·2, s = Σ (g·(1/max(ε, Σe²)))·e: the FMA on g·(1/‖e‖) (`on_scale`,
        through e[:, None]/‖e‖), else on m·e."""
        e, inv = self.e, div(1.0, self.norm)[:, None]
        s = row_sum(mul(mul(g, div(1.0, self.clipped)[:, None]), e))
        m = mul(mul(mul(-s, div(0.5, self.norm)), self.share), 2.0)[:, None]
        return ftz(fused(g, inv, mul(e, m))) if on_scale else ftz(fused(e, m, mul(g, inv)))


def model(y: Array, p: Array, tau: float, jit: bool) -> Any:
    """The float64 model of ntxent for anchors p and positives y (NotReproduced under jit for rows of
    FUSED_UP_TO features or fewer)."""
    if not jit:
        return Ntxent64(p, y, tau)
    if p.shape[1] <= FUSED_UP_TO:
        raise NotReproduced("dtype", JIT)
    return Fused64(p, y, tau)
