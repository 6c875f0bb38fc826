"""MONAI's DiceLoss and TverskyLoss (the torch convention's dice and tversky) on PyTorch's CPU kernels, reproduced
bit for bit in float32, float16 and bfloat16, and in float64 (WIDE), on probabilities and from logits.

MONAI composes them of tensor operations, each of which rounds to the dtype (a half dtype's operation computes in
float32 and rounds once): a product per pixel, `torch.sum` over each sample's pixels (SumKernel's cascade, in
float32 for the half dtypes), `torch.linalg.vector_norm` for `squared_pred` (its own sum of squares), then a few
operations per sample. The gradient is autograd's: each operation's backward formula rounded as it is, and where a
tensor feeds several operations its gradients added in the order the engine runs their backward nodes (the node
created last first), which fixes the rounding of tp's gradient, a sum of four terms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import libm
from .losses import Parts
from .losses._ops import Array
from .lowp import (
    F32,
    GRAIN,
    SUM_LANES,
    WIDE,
    Rounder,
    chunks,
    fma,
    quiet,
    rounder,
    row_sums,
    sigmoid,
    summed_losses,
    upstream_c,
    weighed_parts,
    wide_norm_squares,
    wide_row_sums,
    wide_summed,
    wide_upstream,
)

MONAI_SMOOTH = 1e-5  # DiceLoss' and TverskyLoss' smooth_nr = smooth_dr
# float64 is lowp.WIDE: PyTorch's double kernels (σ(z) in double takes SLEEF's e^x and the C library's)
DTYPES = ("float32", "float16", "bfloat16", "float64")
# a reduction to one number over more than GRAIN elements is split among the intra-op threads (lowp.chunks), each
# thread's sum stored in the dtype, then those added (TensorIterator's two passes)
Backward = Callable[[Array], Array]  # the gradient for the inputs, given the upstream gradient of each loss


def _number(v: float, half: Any) -> Any:
    """A Python number as a multiplication takes it: float32, or the double itself in float64."""
    return np.float64(v) if half is WIDE else F32(v)


def _scalar_add(s: float, half: Any) -> Array:
    """A Python number as an addition takes it: the double as float32, and a half dtype's add rounds it to the
    dtype first (through float32, as c10's conversion goes); in float64 the double."""
    return np.asarray(np.float64(s)) if half is WIDE else rounder(half)(np.asarray(F32(s)))


def _sums(x: Array, half: Any) -> Array:
    """row_sums, and in float64 (WIDE) wide_row_sums."""
    return wide_row_sums(x) if half is WIDE else row_sums(x, half)


def _fused_squares(x: Array) -> Array:
    """Σx² of each row one element after another, each x·x + acc fused, for float16 values: their squares are exact
    in float32, so the fused sum is the plain running sum in float32 (np.add.accumulate's, left to right)."""
    if x.shape[1] == 0:
        return np.zeros(x.shape[0], dtype=F32)
    out: Array = np.add.accumulate(x * x, axis=1, dtype=F32)[:, -1]
    return out


def norm_squares(x: Array, half: Any) -> Array:
    """Σx² of each row as torch.linalg.vector_norm(x, 2, dim=-1) sums it before its square root: float32 and
    bfloat16 in 8 float32 lanes (a product, then a sum; a register of 8 floats, or of 16 bfloat16 as two), the
    lanes added in order, then the rest in order, in fours of unfused products (the compiler's vectorised
    epilogue) and the last n mod 4 fused (x·x + acc); float16 (the generic reduction) one by one, a single row of
    more than GRAIN in parallel_for's chunks whose float32 sums are then added. (A half's square is exact in
    float32, so fused or not matters to float32 alone.)"""
    rows, n = x.shape
    if half is np.float16:
        if rows > 1 or n <= GRAIN:
            return _fused_squares(x)
        total = np.zeros(rows, dtype=F32)
        for part in chunks(n):
            total = total + _fused_squares(x[:, part])
        return total
    step = 2 * SUM_LANES if half is not None else SUM_LANES
    whole = n - n % step
    acc = np.zeros((rows, SUM_LANES), dtype=F32)
    for d in range(0, whole, SUM_LANES):
        v = x[:, d:d + SUM_LANES]
        acc = acc + v * v
    total = acc[:, 0].copy()
    for j in range(1, SUM_LANES):
        total = total + acc[:, j]
    fours = n - (n - whole) % 4
    for d in range(whole, fours):
        total = total + x[:, d] * x[:, d]
    for d in range(fours, n):
        total = fma(x[:, d], x[:, d], total)
    out: Array = total
    return out


def vector_norm(x: Array, half: Any) -> Array:
    """torch.linalg.vector_norm(x, 2, dim=-1): the square root of norm_squares in float32, stored in the dtype (in
    float64, of _wide_norm_squares)."""
    if x.shape[1] == 1:  # (a norm over one element is its absolute value: nothing squared, nothing lost)
        return rounder(half)(np.abs(x[:, 0]))
    if half is WIDE:
        out: Array = np.sqrt(wide_norm_squares(x))
        return out
    return rounder(half)(np.sqrt(norm_squares(x, half)))


def sigmoid_backward(g: Array, q: Array, half: Any) -> Array:
    """sigmoid_backward's g·(1 − σ)·σ: each step rounded in float16, in float32 and rounded once otherwise."""
    rnd = rounder(half)
    if half is np.float16:
        return rnd(rnd(g * rnd(F32(1) - q)) * q)
    return rnd(g * (F32(1) - q) * q)


def _quotient(num: Array, den: Array, rnd: Rounder) -> tuple[Array, Callable[[Array], tuple[Array, Array]]]:
    """1 − num/den, and autograd's gradients of num and den for the upstream gradient c: num/den's backward
    −c/den, and −(−c)·((num/den)/den)."""
    r = rnd(num / den)

    def backward(c: Array) -> tuple[Array, Array]:
        dr = -c
        return rnd(dr / den), rnd(-dr * rnd(r / den))
    return rnd(F32(1) - r), backward


def _dice_terms(tp: Array, fp0: Array, fn0: Array, s: tuple[Array, Array], rnd: Rounder,
                jaccard: bool = False) -> tuple[Array, Callable[[Array], tuple[Array, Array, Array]]]:
    """DiceLoss from tp, fp and fn: fp, fn halved in place (not for jaccard), 1 − (2tp + s)/(2(tp + fp + fn) + s)
    (s: smooth_nr, then smooth_dr);
    the backward gives the gradients of tp, fp and fn (before the halving), tp's four terms added as the engine
    runs their nodes: tp + fp's, 2tp's, then fn = Σy − tp's and fp = Σp − tp's (the halvings' nodes, where there
    are, come after each sub's, so the order is the same without them)."""
    half = F32(1) if jaccard else F32(0.5)
    fp, fn = (fp0, fn0) if jaccard else (rnd(fp0 * half), rnd(fn0 * half))
    num = rnd(rnd(F32(2) * tp) + s[0])
    den = rnd(rnd(F32(2) * rnd(rnd(tp + fp) + fn)) + s[1])
    losses, quotient = _quotient(num, den, rnd)

    def backward(c: Array) -> tuple[Array, Array, Array]:
        dnum, dden = quotient(c)
        d3 = rnd(dden * F32(2))
        dfp, dfn = (d3, d3) if jaccard else (rnd(d3 * half), rnd(d3 * half))
        dtp = rnd(rnd(rnd(d3 + rnd(dnum * F32(2))) - dfn) - dfp)
        return dtp, dfp, dfn
    return losses, backward


def dice(y: Array, q: Array, squared: bool, smooth: float, half: Any, jaccard: bool = False,
         smooth_dr: float | None = None) -> tuple[Array, Backward]:
    """DiceLoss(squared_pred=squared, jaccard=jaccard, smooth_nr=smooth, smooth_dr=smooth_dr or smooth) of
    probabilities q (one channel): its losses, and the backward from the upstream gradient of each loss (a
    column) to the gradient for q."""
    rnd = rounder(half)
    s = _scalar_add(smooth, half), _scalar_add(smooth if smooth_dr is None else smooth_dr, half)
    if not squared:
        tp = _sums(rnd(q * y), half)[:, None]
        fp, fn = rnd(_sums(q, half)[:, None] - tp), rnd(_sums(y, half)[:, None] - tp)
        losses, terms = _dice_terms(tp, fp, fn, s, rnd, jaccard)

        def backward(c: Array) -> Array:
            dtp, dfp, _ = terms(c)
            return rnd(dfp + rnd(dtp * y))
        return losses[:, 0], backward
    return _dice_squared(y, q, s, half, jaccard)


def _dice_squared(y: Array, q: Array, s: tuple[Array, Array], half: Any,
                  jaccard: bool = False) -> tuple[Array, Backward]:
    """compute_tp_fp_fn with ord 2: P, G, D the squared norms of q, y and q − y (vector_norm, then pow 2),
    tp = (P + G − D)/2, fp = P − tp, fn = G − tp; autograd's backward through pow (g·2·norm) and vector_norm
    (g·(x/norm), 0 where the norm is 0)."""
    rnd = rounder(half)
    diff = rnd(q - y)
    npred, ndiff = vector_norm(q, half)[:, None], vector_norm(diff, half)[:, None]
    ntarget = vector_norm(y, half)[:, None]
    big_p, big_g, big_d = rnd(npred * npred), rnd(ntarget * ntarget), rnd(ndiff * ndiff)
    tp = rnd(rnd(rnd(big_p + big_g) - big_d) / F32(2))
    losses, terms = _dice_terms(tp, rnd(big_p - tp), rnd(big_g - tp), s, rnd, jaccard)

    def through_norm(g: Array, x: Array, norm: Array) -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            unit = np.where(norm == 0, F32(0), rnd(x / norm))
        return rnd(rnd(g * rnd(F32(2) * norm)) * unit)

    def backward(c: Array) -> Array:
        dtp, dfp, _ = terms(c)
        db = rnd(dtp / F32(2))
        return rnd(through_norm(-db, diff, ndiff) + through_norm(rnd(dfp + db), q, npred))
    return losses[:, 0], backward


def tversky(y: Array, q: Array, alpha: float, beta: float, smooth: float, half: Any,
            smooth_dr: float | None = None) -> tuple[Array, Backward]:
    """TverskyLoss of probabilities q (one channel): tp = Σqy, fp = Σq(1 − y)·α, fn = Σ(1 − q)y·β,
    1 − (tp + s)/(tp + fp + fn + s_dr); the backward adds q's three gradients as the engine runs their nodes
    (fn's, fp's, then tp's)."""
    rnd = rounder(half)
    s = _scalar_add(smooth, half)
    s_dr = _scalar_add(smooth if smooth_dr is None else smooth_dr, half)
    a, b = _number(alpha, half), _number(beta, half)
    omy, omq = rnd(F32(1) - y), rnd(F32(1) - q)
    tp = _sums(rnd(q * y), half)[:, None]
    fp = rnd(_sums(rnd(q * omy), half)[:, None] * a)
    fn = rnd(_sums(rnd(omq * y), half)[:, None] * b)
    losses, quotient = _quotient(rnd(tp + s), rnd(rnd(rnd(tp + fp) + fn) + s_dr), rnd)

    def backward(c: Array) -> Array:
        dnum, dden = quotient(c)
        dtp = rnd(dden + dnum)
        dfp, dfn = rnd(dden * a), rnd(dden * b)
        return rnd(rnd(-rnd(dfn * y) + rnd(dfp * omy)) + rnd(dtp * y))
    return losses[:, 0], backward


# the losses whose kernels this module reproduces (kernels.MORE hands them here before lowp), the parameters each takes
# (over_batch: the batch arrives joined as one row, api._over_batch and tensor_run.geometry)
TAKES = {"dice": ("squared", "smooth", "jaccard", "smooth_dr", "over_batch"),
         "tversky": ("alpha", "beta", "smooth", "smooth_dr", "over_batch")}
SUPPORTED = ("dice (MONAI's DiceLoss, with squared, smooth, smooth_dr and jaccard)",
             "tversky (MONAI's TverskyLoss, with alpha, beta, smooth and smooth_dr)",
             "sample weights as (loss(reduction='none') * w).mean() or .sum() on dice and tversky")


def placed(loss: str, from_logits: bool, probability_rows: bool, dtype: str = "float32") -> bool:
    """Whether a row's results depend on where it lies in the whole batch: σ(z)'s scalar loop at the end of each
    thread's part of the batch (lowp.sigmoid)."""
    return from_logits


# the losses weighed by sample as their users weigh them: MONAI's reduction="none" gives a loss per sample and
# channel, (N, C, 1, ...); one weight per sample broadcast over the channels (w.view(-1, 1, ...)), then .mean() or
# .sum(), whose MulBackward hands the quotient's backward c·w (lossgrad's one channel: a loss per sample)
WEIGHABLE = ("dice", "tversky")


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = True,
            weights: Array | None = None, extra: dict[str, Array] | None = None) -> Parts:
    """dice or tversky as MONAI's losses give them on PyTorch's CPU kernels (half None: float32): σ(z) first for
    logits (torch.sigmoid over the whole batch, params' "place" where these rows lie in it), the mean's 1/N
    brought into the gradient by torch.mean's backward before it rounds, its value torch.mean's (the float sum over
    N, rounded once); weighed by sample (WEIGHABLE), the quotient's backward fed each sample's upstream c·w.
    float64 inputs (half None) are PyTorch's double kernels (WIDE)."""
    if half is None and p.dtype == np.float64:
        return _wide(loss, y, p, params or {}, from_logits, weights)
    rnd = rounder(half)
    options = params or {}
    s, s_dr = _smoothing(options)
    y, p = y.astype(F32), p.astype(F32)
    with np.errstate(all="ignore"):
        q = sigmoid(p, rnd, half, options.get("place")) if from_logits else p
        if loss == "dice":
            losses, backward = dice(y, q, bool(options.get("squared")), s, half, bool(options.get("jaccard")), s_dr)
        else:
            losses, backward = tversky(y, q, float(options.get("alpha", 0.5)), float(options.get("beta", 0.5)), s,
                                       half, s_dr)

    def grad(n: float, up: Array | None = None) -> Array:
        c = np.full((y.shape[0], 1), upstream_c(n, rnd), dtype=F32) if up is None else np.reshape(up, (-1, 1))
        g = backward(c)
        return sigmoid_backward(g, q, half) if from_logits else g
    if weights is not None:
        return weighed_parts(losses, grad, q if from_logits else None, weights, half)
    return Parts(losses=losses, grad=quiet(grad)(1), prob=q if from_logits else None, mean_grad=quiet(grad),
                 **summed_losses(losses, rnd, half))


def _smoothing(options: dict[str, Any]) -> tuple[float, float | None]:
    """smooth_nr (MONAI's default where --smooth is not given) and smooth_dr (None: smooth_nr's)."""
    smooth = options.get("smooth")
    s = MONAI_SMOOTH if smooth is None else float(smooth)
    return s, None if options.get("smooth_dr") is None else float(options["smooth_dr"])


def _wide(loss: str, y: Array, p: Array, options: dict[str, Any], from_logits: bool,
          weights: Array | None) -> Parts:
    """dice or tversky in float64: the operations above in double (σ(z) first for logits, lowp.sigmoid64), the
    mean's upstream 1/N (MeanBackward's), the value torch's float64 sum of the losses (over N for the mean);
    weighed by sample, the quotient's backward fed each sample's c·w in double."""
    s, s_dr = _smoothing(options)
    with np.errstate(all="ignore"):
        q = sigmoid(p, rounder(WIDE), WIDE, options.get("place")) if from_logits else p
        if loss == "dice":
            losses, backward = dice(y, q, bool(options.get("squared")), s, WIDE, bool(options.get("jaccard")), s_dr)
        else:
            losses, backward = tversky(y, q, float(options.get("alpha", 0.5)), float(options.get("beta", 0.5)), s,
                                       WIDE, s_dr)

    def grad(n: float, up: Array | None = None) -> Array:
        g = backward(np.full((y.shape[0], 1), wide_upstream(n)) if up is None else np.reshape(up, (-1, 1)))
        return sigmoid_backward(g, q, WIDE) if from_logits else g
    if weights is not None:
        return weighed_parts(losses, grad, q if from_logits else None, weights, WIDE)
    return Parts(losses=losses, grad=quiet(grad)(1), prob=q if from_logits else None, mean_grad=quiet(grad),
                 **wide_summed(losses))


def unsupported_mode(dtype: str, loss: str, from_logits: bool, sample_weight: bool) -> str | None:
    """float64 is reproduced from logits only where the C library can be loaded (torch.sigmoid's scalar loop calls
    its exp)."""
    if dtype == "float64" and from_logits and not libm.available():
        return f"{loss} from logits in float64 (torch.sigmoid's scalar loop calls the C library's exp, which could " \
               "not be loaded)"
    return None
