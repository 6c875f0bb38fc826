"""optax's kl_divergence and kl_divergence_with_log_targets under jax.jit in float32 on CPU, bit for bit: the
losses, jnp.mean or jnp.sum of them, and jax.grad of either with respect to the predictions.

What XLA makes of `jax.jit(jax.value_and_grad(...))` with the targets closed over as constants (read from its
optimized HLO and the fused kernels' LLVM IR, and measured against JAX for every shape up to 40 × 40):

- The targets' side is folded when XLA compiles: log y by the C library's logf (glibc's), e^y in float64 and
  rounded once to float32. log q (the predictions' log; none with log-probabilities) is a kernel of its own.
- Each row's loss Σ t·(c − log q) (t = y or e^y, c = log y, 0 where y = 0, or y) is one fused loop: a chain of
  multiply-adds from +0 in class order, but for rows of 5 to 8 classes that LLVM vectorizes (VECTOR_ROWS: 4 or
  8 rows, and from 16 rows the leading multiple of 4), where each product is stored and added in order. More
  than 32 rows or 32 classes: the products stored and added as jnp.sum adds them (YNNPACK's row sums from 4096
  elements, rows of any length, measured on 160 batches of 2 to 11 rows of 1,025 to 20,000 classes); a single row
  of 4096 classes or more YNNPACK fuses with its products into a dot (lowp_xla.dot_row), with log q inside it
  where q are probabilities: YNNPACK's own log there (lowp_ynn.ynn_log), not XLA's.
- The reduced value is another fused loop over the whole array: up to 32 × 32 one chain of multiply-adds in
  row-major order, except where LLVM splits the rows into lanes (lowp_xla.row_lanes, but not 2 rows, and 2
  lanes for 18 or 19 rows of 7 or 8 classes): row i in lane i mod w (its products contracted for up to 4
  classes, stored and added otherwise), the lanes halved, the rows left over contracted into the sum in order.
  Beyond 32 × 32 the products stored and added as jnp.sum adds a whole array (lowp_xla.xla_sum2d: from 4096
  elements YNNPACK's, in slices of whole rows; measured on 100 batches of 4,096 to 60,000 elements). jnp.mean
  multiplies by 1/n.
- jax.grad: −(t·c) folded into one constant (c the upstream 1/n, or 1), divided by q (a true division), or that
  constant itself with log-probabilities.

That is AVX-512's code (--cpu avx512). With AVX2 (--cpu avx2) LLVM splits both fused loops into avx2_lanes' lanes
(AVX2_VALUE_LANES where not), and only rows of 6 and 8 classes add stored products (AVX2_STORED).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import cpu
from .errors import NotReproduced
from .losses import Parts
from .losses._ops import Array
from .losses.base import Joined
from .lowp_xla import (
    F32,
    YNN_FROM,
    _fma,
    _in_order,
    avx2_lanes,
    avx2_stored_rows,
    div,
    dot_row,
    folded_exp,
    folded_log,
    ftz,
    lane_products,
    mul,
    product_sum,
    row_lanes,
    upstream,
    wide_known,
    xla_log,
    xla_sum,
    xla_sum2d,
)
from .lowp_xla_rows import _vector_rows
from .lowp_ynn import ynn_log

# rows of 5 to 8 classes whose fused row sums LLVM vectorizes: the rule lowp_xla_rows measured for triplet's
# squares, with 4 rows at a time wherever a batch has 4 or more rows over its groups of 8
VECTOR_ROWS = {n: YNN_FROM for n in range(5, 9)}
# the value's lanes where they are not lowp_xla.row_lanes' (rows, classes): lanes
VALUE_LANES = {(2, n): 0 for n in range(2, 9)} | {(r, n): 2 for r in (18, 19) for n in (7, 8)}
# with AVX2 (lowp_xla.avx2_lanes), read from XLA's LLVM IR for every block up to 32 × 32: the value's lanes where
# they are not avx2_lanes', and the row lengths whose vector lanes add stored products (lowp_xla.avx2_stored_rows;
# the code generator contracts the others' into multiply-adds, as the scalar loop does), measured against JAX
AVX2_VALUE_LANES = ({(2, n): 0 for n in range(1, 33)} | {(r, 7): 2 for r in (18, 19, 22, 23, 30, 31)}
                    | {(r, 5): 2 for r in (22, 23)})
AVX2_STORED = {6: 4, 8: 0}  # (as lowp_xla_rows.AVX2_UNPAIRED: up to 32 rows, where this loop runs, 4 or 8 at a time)


def kl_jit32(y: Array, p: Array, log_input: bool, log_target: bool
             ) -> tuple[Array, Callable[[float], Array], Callable[[float], float] | None, dict[str, Array]]:
    """The losses, the gradient of jnp.mean over n (n = 1: jnp.sum), its value (None where XLA's order is not
    known) and what it is formed from (t and d: joined_value's) of kl_divergence(log q, y) = Σ y·(log y − log q), or
    of kl_divergence_with_log_targets = Σ e^y·(y − log q), log q = p with log-probabilities, else log p."""
    one_dot = p.shape[0] == 1 and p.shape[1] >= YNN_FROM  # (YNNPACK's dot, log q fused into it)
    with np.errstate(all="ignore"):
        lq = p if log_input else ynn_log(p) if one_dot else xla_log(p)
        if log_target:
            t, c = folded_exp(y), y
        else:
            t, c = y, np.where(y == 0, F32(0), folded_log(y)).astype(F32)
        d = ftz(c - lq)
    read = ftz(t)  # (the fused loop reads a subnormal target as 0: DAZ; the gradient's −t·c is folded, kept)
    pieces = {"t": read, "d": d}

    def grad(n: float) -> Array:
        with np.errstate(all="ignore"):
            k = (t * upstream(n)).astype(F32)  # (folded with the targets: a subnormal kept)
            return -k if log_input else div(ftz(-k), ftz(p))  # (the division at run time reads one as 0: DAZ)
    known = fused_value(read, d) is not None
    return fused_rows(read, d), grad, ((lambda n: joined_value(pieces, n)) if known else None), pieces


def joined_value(pieces: dict[str, Array], n: float) -> float:
    """jnp.mean over n (n = 1: jnp.sum) of the losses Σ t·d, from t and d (a batch's, joined from its slices)."""
    total = fused_value(pieces["t"], pieces["d"])
    if total is None:
        raise NotReproduced("dtype", "JAX's sum of kl's products over this shape (YNNPACK's) is not reproduced")
    return float(total if n == 1 else mul(total, F32(1) / F32(n)))


def kl_parts(y: Array, p: Array, log_input: bool, log_target: bool) -> Parts:
    """kl_jit32's results as the parts lowp_xla.compute returns (the value lossgrad's own sum, said in a warning,
    where XLA's order is not known)."""
    losses, grad, value, pieces = kl_jit32(np.asarray(y, dtype=F32), np.asarray(p, dtype=F32), log_input,
                                           log_target)
    own = [] if value is not None else ["the reduced value is lossgrad's float32 sum: XLA's order for this shape "
                                        "(YNNPACK's from 4096 elements) is not reproduced"]
    whole: dict[str, Any] = {} if value is None else {"value_parts": pieces,
                                                       "value_fold": lambda rows: Joined(joined_value)}
    return Parts(losses=losses, grad=grad(1), mean_grad=grad, mean_value=value, warnings=own, **whole)


def fused_rows(t: Array, d: Array) -> Array:
    """Σ t·d along each row as XLA's fused loop adds it (the module's docstring)."""
    rows, n = t.shape
    with np.errstate(all="ignore"):
        if rows == 1 and n >= YNN_FROM:
            return product_sum(t, d)
        products = mul(t, d)
        if rows > 32 or n > 32 or n == 1:
            return xla_sum(products)
        out = np.zeros(rows, dtype=F32)
        for i in range(n):
            out = _fma(t[:, i], d[:, i], out)
        v = _stored_rows(rows, n)
        out[:v] = _in_order(products[:v]) + F32(0)
    return out


def _stored_rows(rows: int, n: int) -> int:
    """How many leading rows (up to 32 × 32) LLVM vectorizes with their products stored and added in order."""
    if cpu.selected() != "avx2":
        return _vector_rows(rows, n, VECTOR_ROWS)
    return avx2_stored_rows(rows, n, AVX2_STORED)


def _value_lanes(rows: int, n: int) -> tuple[int, bool]:
    """The value's lanes over a block (up to 32 × 32), and whether each product is contracted into its lane."""
    if cpu.selected() != "avx2":
        return VALUE_LANES.get((rows, n), row_lanes(rows, n)), n <= 4
    lanes = AVX2_VALUE_LANES.get((rows, n), avx2_lanes(rows, n))
    return lanes, not (lanes and avx2_stored_rows(rows, n, AVX2_STORED))


def fused_value(t: Array, d: Array) -> F32 | None:
    """Σ t·d over the whole array as XLA's fused loop adds it (the module's docstring); None where YNNPACK's order is
    not reproduced (lowp_xla.wide_known)."""
    rows, n = t.shape
    if rows == 1 and n >= YNN_FROM:
        with np.errstate(all="ignore"):
            return dot_row(t, d)
    if rows * n >= YNN_FROM and not wide_known(rows, n):
        return None
    with np.errstate(all="ignore"):
        products = mul(t, d)
        if rows > 32 or n > 32 or rows * n >= YNN_FROM:
            return F32(xla_sum2d(products))
        return lane_products(t, d, *_value_lanes(rows, n))
