"""XLA's row sums that more than one of optax's losses share: the fused row sums of squares under jit in float32
(XLA's scalar loop of multiply-adds, and the rows LLVM's loop vectorizer takes 4 or 8 at a time, as measured with
AVX-512 and with AVX2).
jax.grad's backward row sums in a half dtype are lowp_xla._rows_in_dtype."""

from __future__ import annotations

from . import cpu
from .losses._ops import Array
from .lowp_xla import YNN_FROM, _fma, _in_order, _vector_rows, avx2_stored_rows, ftz, mul, xla_sum

# rows of 2 to 8 features: below this many groups of 8 rows, a batch with 4 to 7 rows over is vectorized 4 rows at
# a time, else 8 (LLVM's cost model, measured below 4096 elements; 7 and 8 features: always 4); the loop over
# stored differences (UNPAIRED) vectorizes rows of 5 to 8 features only
FOUR_BELOW = {2: 3, 3: 7, 4: 8, 5: 5, 6: 5, 7: 4096, 8: 4096}
UNPAIRED = {5: 4, 6: 4, 7: 4096, 8: 4096}
# with AVX2 (measured against JAX on an AMD EPYC, up to 70 rows): the row lengths whose vectorized rows add stored
# squares, and below how many groups of 8 rows a batch with 4 to 7 over goes 4 rows at a time
# (lowp_xla.avx2_stored_rows); the other lengths' vector lanes contract them as the scalar loop does
AVX2_PAIRED = {2: 5, 3: 5, 4: 5, 6: 5, 8: 0}
AVX2_UNPAIRED = {6: 4, 8: 0}


def _fma_chain(d: Array) -> Array:
    """Σd² along each row as XLA's scalar loop adds it: d₀·d₀ + d₁² in one FMA, then each square contracted into the
    running sum."""
    acc = _fma(d[:, 0], d[:, 0], mul(d[:, 1], d[:, 1]))
    for i in range(2, d.shape[1]):
        acc = _fma(d[:, i], d[:, i], acc)
    return acc


def fused_squares(d: Array, paired: bool) -> Array:
    """Σd² along each row as XLA computes it under jit in float32, the squares fused into the reduction: up to 32
    features a loop of its own, whose rows LLVM vectorizes (the squares added in order) or leaves to the scalar
    loop (each square contracted into the running sum, _fma_chain); more features, the squares stored and summed
    as jnp.sum adds them (XLA's windows of 32, or YNNPACK's lanes from 4096 elements). `paired`: the subtraction
    fused into the loop too (jnp.mean over 2 rows or more); otherwise XLA stores the differences first, and its
    loop over them vectorizes otherwise (UNPAIRED; a pair of rows of 5 to 8 features as one vector: its first 4
    squares added in order and a fifth contracted, 6 to 8 all added in order)."""
    rows, n = d.shape
    if n > 32 or rows * n >= YNN_FROM:
        return xla_sum(mul(d, d))
    if cpu.selected() == "avx2":
        return _avx2_squares(d, paired)
    if not paired and rows == 2 and 5 <= n <= 8:
        first = 4 if n == 5 else n
        acc = _in_order(mul(d[:, :first], d[:, :first]), ftz)
        return acc if first == n else _fma(d[:, 4], d[:, 4], acc)
    out = _fma_chain(d)
    v = _vector_rows(rows, n, FOUR_BELOW if paired else UNPAIRED)
    out[:v] = _in_order(mul(d[:v], d[:v]), ftz)
    return out


def _avx2_squares(d: Array, paired: bool) -> Array:
    """fused_squares with AVX2 (up to 32 features): the vectorized rows of AVX2_PAIRED's or AVX2_UNPAIRED's lengths
    (and an unpaired pair of rows of 6) add their squares in order, the rest contract them (_fma_chain)."""
    out = _fma_chain(d)
    rows, n = d.shape
    pair = not paired and (rows, n) == (2, 6)  # (measured: the pair's squares added in order, as one vector)
    v = rows if pair else avx2_stored_rows(rows, n, AVX2_PAIRED if paired else AVX2_UNPAIRED)
    out[:v] = _in_order(mul(d[:v], d[:v]), ftz)
    return out
