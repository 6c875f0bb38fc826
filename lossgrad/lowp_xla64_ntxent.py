"""JAX's CPU results (XLA) for optax's ntxent in float64 (JAX with jax_enable_x64), bit for bit, op by op.

The operations are lowp_xla_ntxent's, each computed in double and rounded once, subnormals flushed: the squared
norms' row sums, ‖e‖ = √max(ε, Σe²) with ε = 2⁻⁵², e/‖e‖ as a product with 1/‖e‖ (one feature: the quotient), the
cosines' sums over the features, the quotient by τ (an operand of jax.grad's trace), the shift by the row maximum,
XLA's own e^x (lowp_xla64.exp), the negatives' row sums, the C library's log, and the value's sum over the N × N
matrix (lowp_xla64.sum2d), divided by its count. jax.grad's backward pass runs the transposes: τ there is a
constant, a product with 1/τ; the sums over the partner rows are lowp_xla64.partner_sum's.

What is reproduced: op by op (--no-jit), every sum of fewer than 4,096 elements, and from 4,096 the row sums of up
to 2,047 (lowp_xla64.row_sum), so up to 1,023 pairs of up to 2,047 features, of any width while the [2B, 2B, d]
products stay under 4,096. The
value's sum over the matrix is reproduced below 4,096 elements (up to 31 pairs) with AVX2 (sum2d). Under jit XLA
fuses the whole step into kernels of its own, not reproduced in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import libm
from .errors import NotReproduced
from .losses._ops import Array
from .lowp_xla64 import exp, ftz, partner_sum, row_sum, sum2d

EPS = 2.0**-52  # (optax's epsilon, jnp.finfo(float64).eps)
JIT = ("JAX's float64 ntxent under jit (XLA fuses the step into kernels of its own, not reproduced in float64); ask "
       "for JAX op by op (--no-jit; jit=False in Python)")


class Ntxent64:
    """optax.ntxent(e, labels, τ) and jax.grad of it in float64, op by op, for e = [a; p] (N = 2B rows)."""

    def __init__(self, a: Array, p: Array, tau: float) -> None:
        e = self.e = ftz(np.concatenate([a, p]))
        n, d = e.shape
        self.tau = tau
        self.pos = (np.arange(n) + n // 2) % n
        n2 = row_sum(ftz(e * e))
        self.share = np.where(n2 >= EPS, np.where(n2 == EPS, 0.5, 1.0), 0.0)
        self.norm = ftz(np.sqrt(np.maximum(EPS, n2)))
        u = self.u = self.over_norm(e)
        cosines = row_sum(ftz(u[None, :, :] * u[:, None, :]).reshape(n * n, d)).reshape(n, n)
        xcs = ftz(cosines / tau)
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

    def over_norm(self, x: Array) -> Array:
        """x/‖e‖ row by row: a product with 1/‖e‖ (one feature: the quotient)."""
        norm = self.norm[:, None]
        return ftz(x / norm) if x.shape[1] == 1 else ftz(x * ftz(1.0 / norm))

    def value(self, count: float) -> float:
        """−Σ log_softmax / count: the sum over the N × N matrix holding each row's at its positive."""
        n = self.e.shape[0]
        matrix = np.zeros((n, n))
        matrix[np.arange(n), self.pos] = self.log_softmax
        return float(ftz(-sum2d(matrix) / count))

    def grads(self, count: float) -> Array:
        """jax.grad of value(count) with respect to e."""
        n = self.e.shape[0]
        rows = np.arange(n)
        c = ftz(1.0 / count)
        et = ftz(c / self.denom)
        row = ftz(et + -0.0 / self.total)  # (NaN where every negative's e^x underflowed to 0)
        g = np.where(self.diffs, ftz(row[:, None] * self.ds), 0.0)
        g[rows, self.pos] = ftz(-c + ftz(et * self.numer))
        g = ftz(g * ftz(1.0 / self.tau))
        u = self.u
        g_b = partner_sum(ftz(u[None, :, :] * g[:, :, None]), 1)  # ∂/∂(e[:, None]/‖e‖), over the partners j
        g_a = partner_sum(ftz(g[:, :, None] * u[:, None, :]), 0)  # ∂/∂(e[None]/‖e‖), over the rows i
        return ftz(self.through_norm(g_b) + self.through_norm(g_a))

    def through_norm(self, g: Array) -> Array:
        """The gradient through x/‖x‖, ‖x‖ = √max(ε, Σx²): g/‖x‖ + 2x·w·(½/‖x‖)·(−Σ g·‖x‖⁻²·x)."""
        e, norm = self.e, self.norm[:, None]
        s = row_sum(ftz(ftz(g * ftz(1.0 / ftz(norm * norm))) * e))[:, None]
        back = ftz(ftz(-s * ftz(0.5 / norm)) * self.share[:, None])
        return ftz(self.over_norm(g) + ftz(back * ftz(2.0 * e)))

    def losses(self) -> Array:
        """Each sample's loss: ½(ℓᵢ + ℓᵢ₊B), ℓ = −log_softmax."""
        b = self.e.shape[0] // 2
        rows = -self.log_softmax
        return ftz(ftz(rows[:b] + rows[b:]) * 0.5)


def model(y: Array, p: Array, tau: float, jit: bool) -> Any:
    """The float64 model of ntxent for anchors p and positives y (NotReproduced under jit)."""
    if jit:
        raise NotReproduced("dtype", JIT)
    return Ntxent64(p, y, tau)
