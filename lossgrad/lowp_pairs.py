"""PyTorch's CPU kernels for the losses of vector pairs, reproduced bit for bit in float32, float16 and bfloat16:
triplet_margin_loss (pairwise_distance, a 2-norm or 1-norm over each row), cosine_embedding_loss and lossgrad's
torch cosine (cosine_embedding_loss with target 1), with their autograd.

The row norms are `at::norm`'s CPU kernel. Its 2-norm of float32 and bfloat16 rows runs the vectorised last-dim
path that PyTorch's build compiles for AVX2 (norm_stub has no AVX-512 kernel): squares added into 8 float32 lanes
(bfloat16 rows widened 16 at a time into two registers, added one after the other), the lanes folded left to
right, then the last n mod 8 (16) elements one by one, of which the compiler vectorises the products of each whole
group of 4 (rounded before the add) and fuses the rest into multiply-adds. float16 rows, and every 1-norm, take
the generic reduction: a float32 running sum, element by element. Sums over a row (cosine_embedding_loss's Σxy,
Σx², Σy²) are torch.sum's (lowp.torch_sum). Every intermediate the kernels store is rounded to the dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .losses import Parts
from .losses._ops import Array
from .lowp import F32, fma, mean_value, quiet, rounder, torch_sum, upstream_c

DIST_EPS = 1e-6  # pairwise_distance's eps, a double taken as a float32 scalar
COS_EPS = 1e-12  # cosine_embedding_loss's EPSILON, likewise
VEC = 8  # the float32 lanes of the norm kernel (AVX2's, whatever the capability: norm_stub has no AVX-512 kernel)
GROUP = 4  # the products of the scalar tail the compiler vectorises, rounded before each add


def scalar(c: float, half: Any) -> Any:
    """A Python number as a tensor op of the dtype takes it: rounded to the dtype (then added in float32)."""
    return F32(np.float64(c).astype(half or F32))


def _tail(acc: Array, x: Array, start: int) -> Array:
    """The scalar tail of the norm kernel: buffer[0] += x·x over x[:, start:], the products of each whole group of
    GROUP rounded before the add, the last ones fused."""
    rest = x.shape[1] - start
    split = start + rest // GROUP * GROUP
    for k in range(start, x.shape[1]):
        v = x[:, k]
        acc = (acc + v * v).astype(F32) if k < split else fma(v, v, acc)
    return acc


def sum_squares(x: Array, half: Any) -> Array:
    """Σ x² of each row as at::norm's 2-norm kernel adds it in float32 (see the module's note)."""
    rows, n = x.shape
    if half is not None and np.dtype(half) == np.float16:
        total = np.zeros(rows, dtype=F32)
        for k in range(n):
            total = (total + x[:, k] * x[:, k]).astype(F32)  # (a square of a float16 is exact in float32)
        return total
    width = VEC if half is None else 2 * VEC
    acc = np.zeros((rows, VEC), dtype=F32)
    d = 0
    while d + width <= n:
        for part in range(0, width, VEC):
            v = x[:, d + part:d + part + VEC]
            acc = (acc + v * v).astype(F32)
        d += width
    total = acc[:, 0].copy()
    for j in range(1, VEC):
        total = (total + acc[:, j]).astype(F32)
    return _tail(total, x, d)


def _sum_abs(x: Array) -> Array:
    """Σ |x| of each row: the generic reduction's float32 running sum."""
    total = np.zeros(x.shape[0], dtype=F32)
    for k in range(x.shape[1]):
        total = (total + np.abs(x[:, k])).astype(F32)
    return total


def pairwise_distance(x1: Array, x2: Array, q: float, half: Any) -> tuple[Array, Array]:
    """pairwise_distance: u = x1 − x2 + ε (each op rounded, ε rounded to the dtype first), and its q-norm per
    row (q = 1 or 2)."""
    rnd = rounder(half)
    u = rnd(rnd(x1 - x2) + scalar(DIST_EPS, half))
    d = _sum_abs(u) if q == 1 else np.sqrt(sum_squares(u, half)).astype(F32)
    return u, rnd(d)


def norm_backward(g: Array, u: Array, d: Array, q: float, rnd: Callable[[Array], Array]) -> Array:
    """norm_backward for the upstream gradient g of each row's norm d: sgn(u)·g for q = 1, g·(u/d) (0 where
    d = 0) for q = 2."""
    if q == 1:
        return rnd(np.sign(u) * g[:, None])
    with np.errstate(all="ignore"):
        r = np.where(d[:, None] == 0, F32(0), rnd(u / d[:, None]))
    return rnd(g[:, None] * r)


def _min_backward(h: Array, a: Array, b: Array, rnd: Callable[[Array], Array]) -> tuple[Array, Array]:
    """at::min(a, b)'s backward: h to the smaller, h/2 to each at a tie."""
    share = np.where(a == b, rnd(h / F32(2)), h)
    return np.where(a > b, F32(0), share).astype(F32), np.where(a < b, F32(0), share).astype(F32)


def triplet(anchor: Array, pos: Array, neg: Array, q: float, margin: float, swap: bool,
            half: Any) -> tuple[Array, Callable[[float], tuple[Array, Array, Array]]]:
    """triplet_margin_loss: max(margin + d(a, pos) − d(a, neg), 0) with d pairwise_distance (with swap,
    min(d(a, neg), d(pos, neg))), each op rounded, the margin rounded to the dtype; the gradients for the anchor,
    the positive and the negative of the mean over n (1: the sum), autograd's: clamp_min passes g where
    the unclamped value is at least 0, each distance's norm_backward, the two paths into an input added."""
    rnd = rounder(half)
    up, dp = pairwise_distance(anchor, pos, q, half)
    un, dn = pairwise_distance(anchor, neg, q, half)
    us, ds = pairwise_distance(pos, neg, q, half) if swap else (un, dn)
    dneg = np.minimum(dn, ds) if swap else dn
    x = rnd(rnd(scalar(margin, half) + dp) - dneg)

    def grads(n: float) -> tuple[Array, Array, Array]:
        h = np.where(x >= 0, upstream_c(n, rnd), F32(0)).astype(F32)
        gp = norm_backward(h, up, dp, q, rnd)
        if not swap:
            gn = norm_backward(-h, un, dn, q, rnd)
            return rnd(gp + gn), -gp, -gn
        hn, hs = _min_backward(-h, dn, ds, rnd)
        gn, gs = norm_backward(hn, un, dn, q, rnd), norm_backward(hs, us, ds, q, rnd)
        return rnd(gp + gn), rnd(-gp + gs), rnd(-gn - gs)
    return np.maximum(x, F32(0)), grads


def triplet_parts(y: Array, p: Array, negative: Array, half: Any, options: dict[str, Any]) -> Parts:
    """triplet's Parts: p the anchor, y the positive; the mean's gradients with 1/n brought in first, its value
    torch.mean's."""
    q = float(options.get("norm_degree", 2.0))
    margin = float(options.get("margin", 1.0))
    with np.errstate(all="ignore"):
        losses, grads = triplet(p, y, negative, q, margin, bool(options.get("swap")), half)
    rnd = rounder(half)
    mean = mean_value(lambda: torch_sum(losses.reshape(1, -1))[0], rnd, half, False, True)
    return Parts(losses=losses, grad=quiet(grads)(1)[0],
                 extra_grads={"target": quiet(grads)(1)[1], "negative": quiet(grads)(1)[2]},
                 mean_grad=quiet(lambda n: grads(n)[0]), mean_value=mean,
                 mean_extra_grads=quiet(lambda n: {"target": grads(n)[1], "negative": grads(n)[2]}))


def _row_sum(x: Array, half: Any) -> Array:
    """torch.sum over each row, stored in the dtype."""
    return rounder(half)(torch_sum(x))


def cosine_embedding(x1: Array, x2: Array, label: Array, margin: float,
                     half: Any) -> tuple[Array, Callable[[float], tuple[Array, Array]]]:
    """cosine_embedding_loss: cos = Σx1x2 / sqrt((Σx1² + ε)(Σx2² + ε)), 1 − cos for label 1, (cos − margin)
    clamped at 0 for −1, each op rounded (ε and the margin rounded to the dtype); the gradients for x1 and x2 of
    the mean over n (1: the sum), autograd's through div, sqrt, the product of the two norms and the three
    products: x's gradient 2·(g₁·x) (its square's two paths) plus g·(the other vector)."""
    rnd = rounder(half)
    prod = _row_sum(rnd(x1 * x2), half)
    m1 = rnd(_row_sum(rnd(x1 * x1), half) + scalar(COS_EPS, half))
    m2 = rnd(_row_sum(rnd(x2 * x2), half) + scalar(COS_EPS, half))
    denom = rnd(np.sqrt(rnd(m1 * m2)))
    cos = rnd(prod / denom)
    below = rnd(cos - scalar(margin, half))
    alike, unlike = label == 1, label == -1
    losses = rnd(np.where(alike, rnd(F32(1) - cos), F32(0)) + np.where(unlike, np.maximum(below, F32(0)), F32(0)))

    def grads(n: float) -> tuple[Array, Array]:
        g = upstream_c(n, rnd)
        g_cos = (-np.where(alike, g, F32(0)) + np.where(unlike & (below >= 0), g, F32(0))).astype(F32)
        g_prod = rnd(g_cos / denom)
        g_den = rnd(-g_cos * rnd(rnd(prod / denom) / denom))
        g_mm = rnd(g_den / (F32(2) * denom))
        g_m1, g_m2 = rnd(g_mm * m2), rnd(g_mm * m1)
        t1 = rnd(g_m1[:, None] * x1)
        t2 = rnd(g_m2[:, None] * x2)
        return rnd((t1 + t1) + rnd(g_prod[:, None] * x2)), rnd((t2 + t2) + rnd(g_prod[:, None] * x1))
    return losses, grads


def cosine_parts(y: Array, p: Array, label: Array | None, half: Any, options: dict[str, Any]) -> Parts:
    """cosine-embedding's Parts (x1 the predictions, x2 the targets: the gradient for both), or with no labels
    lossgrad's torch cosine, cosine_embedding_loss(pred, target, 1) (the gradient for the predictions)."""
    labels = np.ones(p.shape[0], dtype=F32) if label is None else np.asarray(label, dtype=F32).reshape(-1)
    with np.errstate(all="ignore"):
        losses, grads = cosine_embedding(p, y, labels, float(options.get("margin") or 0.0), half)
    rnd = rounder(half)
    mean = mean_value(lambda: torch_sum(losses.reshape(1, -1))[0], rnd, half, False, True)
    extra = None if label is None else {"target": quiet(grads)(1)[1]}
    return Parts(losses=losses, grad=quiet(grads)(1)[0], extra_grads=extra, mean_grad=quiet(lambda n: grads(n)[0]),
                 mean_value=mean,
                 mean_extra_grads=None if label is None else quiet(lambda n: {"target": grads(n)[1]}))


# the losses whose kernels this module reproduces (kernels.MORE hands them here before lowp), the parameters each
# takes, and what it covers (for messages)
TAKES = {"triplet": ("margin", "norm_degree", "swap"), "cosine-embedding": ("margin",), "cosine": ()}
SUPPORTED = ("triplet (norm_degree 1 or 2, with margin and swap)",
             "cosine-embedding and cosine (float16 and bfloat16; with margin)")


def unsupported(loss: str, from_logits: bool, params: dict[str, Any], switches: dict[str, bool],
                sample_weight: bool) -> str | None:
    """Why PyTorch's kernels for this loss and these options are not reproduced (None: they are): sample weights
    (PyTorch's functions take none), and pairwise_distance's norms other than 1 and 2 (their |u|^q is the C
    library's powf and its backward SLEEF's pow, which are not reproduced)."""
    if sample_weight:
        return f"{loss} with {{sample_weight}}"
    q = params.get("norm_degree")
    if loss == "triplet" and q is not None and float(q) not in (1.0, 2.0):
        return f"triplet with {{norm_degree}} {float(q):g} (its |u|^q is powf's; 1 and 2 are reproduced)"
    return None


def unsupported_dtype(loss: str, dtype: str) -> str | None:
    """cosine_embedding_loss in float32 takes its square root from MKL's vsSqrt (about one float32 root in six
    an ulp from the correctly rounded one), which is not reproduced; a half dtype's root is correctly rounded."""
    if loss in ("cosine", "cosine-embedding") and dtype == "float32":
        return (f"{loss} in float32 (its square root is MKL's vsSqrt, not correctly rounded; float16 and bfloat16 "
                "are reproduced)")
    return None


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = False,
            weights: Array | None = None, extra: dict[str, Array] | None = None) -> Parts:
    """The Parts of triplet (`extra`: negative), cosine-embedding (`extra`: label) or cosine, as PyTorch's CPU
    kernels give them in float32 (half None) or the half dtype (carried in float32)."""
    y, p = y.astype(F32), p.astype(F32)
    more = extra or {}
    if loss == "triplet":
        return triplet_parts(y, p, np.asarray(more["negative"], dtype=F32), half, params or {})
    return cosine_parts(y, p, more.get("label"), half, params or {})
