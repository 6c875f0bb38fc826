"""PyTorch's CPU kernels for the losses of vector pairs, reproduced bit for bit in float32, float16 and bfloat16:
triplet_margin_loss (pairwise_distance, a q-norm over each row, any q > 0), cosine_embedding_loss and lossgrad's
torch cosine (cosine_embedding_loss with target 1), with their autograd; and in float64 (lowp.WIDE) triplet (the
2-norm's 4 lanes of doubles, lowp.wide_norm_squares; the 1-norm's running sum in double; any other q's running sum
of the C library's pow, and the backward's torch.pow of doubles, lowp_focal.wide_power) and, with the `mkl` extra,
cosine-embedding and cosine (torch.sum over 4 lanes, MKL's vmdSqrt).

The row norms are `at::norm`'s CPU kernel. Its 2-norm of float32 and bfloat16 rows runs the vectorised last-dim
path that PyTorch's build compiles for AVX2 (norm_stub has no AVX-512 kernel): squares added into 8 float32 lanes
(bfloat16 rows widened 16 at a time into two registers, added one after the other), the lanes folded left to
right, then the last n mod 8 (16) elements one by one, of which the compiler vectorises the products of each whole
group of 4 (rounded before the add) and fuses the rest into multiply-adds. float16 rows, and every other norm, take
the generic reduction: a float32 running sum, element by element (of |u|^q by the C library's powf, glibc's, for
q other than 1 and 2, and its q-th root likewise). The backward's powers |u|^(q−1), |u|^(q−2) and d^(q−1) are
torch.pow's (lowp_focal.power: SLEEF's powf in registers). Sums over a row (cosine_embedding_loss's Σxy,
Σx², Σy²) are torch.sum's (lowp.row_sums). Every intermediate the kernels store is rounded to the dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import libm, mkl
from .losses import Parts
from .losses._ops import Array
from .lowp import (
    F32,
    WIDE,
    chunks,
    fma,
    given_margin,
    quiet,
    rounder,
    row_sums,
    summed_losses,
    torch_sqrt,
    upstream_c,
    weighed_pair,
    weighed_parts,
    wide_norm_squares,
    wide_row_sums,
    wide_summed,
    wide_upstream,
)
from .lowp_focal import power

DIST_EPS = 1e-6  # pairwise_distance's eps (a Python number: rounded to the dtype where it is added)
COS_EPS = 1e-12  # cosine_embedding_loss's EPSILON, likewise
VEC = 8  # the float32 lanes of the norm kernel (AVX2's, whatever the capability: norm_stub has no AVX-512 kernel)
GROUP = 4  # the products of the scalar tail the compiler vectorises, rounded before each add


def scalar(c: float, half: Any) -> Any:
    """A Python number as a tensor op of the dtype takes it: rounded to the dtype (then added in float32); in
    float64 (WIDE) the double itself."""
    return np.float64(c) if half is WIDE else F32(np.float64(c).astype(half or F32))


def _tail(acc: Array, x: Array, start: int) -> Array:
    """The scalar tail of the norm kernel: buffer[0] += x·x over x[:, start:], the products of each whole group of
    GROUP rounded before the add, the last ones fused."""
    rest = x.shape[1] - start
    split = start + rest // GROUP * GROUP
    for k in range(start, x.shape[1]):
        v = x[:, k]
        acc = (acc + v * v).astype(F32) if k < split else fma(v, v, acc)
    return acc


def running_sum(terms: Array) -> Array:
    """Σ of each row's terms as the generic reduction adds them (binary_kernel_reduce): a float32 running sum,
    element by element; a single row of more than GRAIN elements split among the threads (parallel_for's chunks),
    each chunk's running sum from 0, the threads' sums then added to 0 in order."""
    rows, n = terms.shape
    kind = np.float64 if terms.dtype == np.float64 else F32  # (float64 terms: the reduction in double)
    parts = chunks(n) if rows == 1 else [slice(0, n)]
    total = np.zeros(rows, dtype=kind)
    for part in parts:
        acc = np.zeros(rows, dtype=kind)
        for k in range(part.start, part.stop):
            acc = (acc + terms[:, k]).astype(kind)
        total = (total + acc).astype(kind)
    return total


def sum_squares(x: Array, half: Any) -> Array:
    """Σ x² of each row as at::norm's 2-norm kernel adds it in float32 (see the module's note)."""
    rows, n = x.shape
    if half is WIDE:
        return wide_norm_squares(x)
    if half is not None and np.dtype(half) == np.float16:
        return running_sum((x * x).astype(F32))  # (a square of a float16 is exact in float32)
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


# glibc's powf (2.28 and later; the C library's pow of two floats, as the generic norm reduction calls it): log2 x
# from a table of 16 points c and a degree-5 polynomial, then 2^(y·log2 x) from a table of 32 and a cubic, in double
POWF_LOG2_TAB = tuple(tuple(float.fromhex(h) for h in pair) for pair in (
    ("0x1.661ec79f8f3bep+0", "-0x1.efec65b963019p-2"), ("0x1.571ed4aaf883dp+0", "-0x1.b0b6832d4fca4p-2"),
    ("0x1.49539f0f010bp+0", "-0x1.7418b0a1fb77bp-2"), ("0x1.3c995b0b80385p+0", "-0x1.39de91a6dcf7bp-2"),
    ("0x1.30d190c8864a5p+0", "-0x1.01d9bf3f2b631p-2"), ("0x1.25e227b0b8eap+0", "-0x1.97c1d1b3b7afp-3"),
    ("0x1.1bb4a4a1a343fp+0", "-0x1.2f9e393af3c9fp-3"), ("0x1.12358f08ae5bap+0", "-0x1.960cbbf788d5cp-4"),
    ("0x1.0953f419900a7p+0", "-0x1.a6f9db6475fcep-5"), ("0x1p+0", "0x0p+0"),
    ("0x1.e608cfd9a47acp-1", "0x1.338ca9f24f53dp-4"), ("0x1.ca4b31f026aap-1", "0x1.476a9543891bap-3"),
    ("0x1.b2036576afce6p-1", "0x1.e840b4ac4e4d2p-3"), ("0x1.9c2d163a1aa2dp-1", "0x1.40645f0c6651cp-2"),
    ("0x1.886e6037841edp-1", "0x1.88e9c2c1b9ff8p-2"), ("0x1.767dcf5534862p-1", "0x1.ce0a44eb17bccp-2")))
POWF_LOG2_POLY = tuple(float.fromhex(h) for h in ("0x1.27616c9496e0bp-2", "-0x1.71969a075c67ap-2",
                                                  "0x1.ec70a6ca7baddp-2", "-0x1.7154748bef6c8p-1",
                                                  "0x1.71547652ab82bp0"))
EXP2F_TAB = (0x3FF0000000000000, 0x3FEFD9B0D3158574, 0x3FEFB5586CF9890F, 0x3FEF9301D0125B51, 0x3FEF72B83C7D517B,
             0x3FEF54873168B9AA, 0x3FEF387A6E756238, 0x3FEF1E9DF51FDEE1, 0x3FEF06FE0A31B715, 0x3FEEF1A7373AA9CB,
             0x3FEEDEA64C123422, 0x3FEECE086061892D, 0x3FEEBFDAD5362A27, 0x3FEEB42B569D4F82, 0x3FEEAB07DD485429,
             0x3FEEA47EB03A5585, 0x3FEEA09E667F3BCD, 0x3FEE9F75E8EC5F74, 0x3FEEA11473EB0187, 0x3FEEA589994CCE13,
             0x3FEEACE5422AA0DB, 0x3FEEB737B0CDC5E5, 0x3FEEC49182A3F090, 0x3FEED503B23E255D, 0x3FEEE89F995AD3AD,
             0x3FEEFF76F2FB5E47, 0x3FEF199BDD85529C, 0x3FEF3720DCEF9069, 0x3FEF5818DCFBA487, 0x3FEF7C97337B9B5F,
             0x3FEFA4AFA2A490DA, 0x3FEFD0765B6E4540)
EXP2F_POLY = tuple(float.fromhex(h) for h in ("0x1.c6af84b912394p-5", "0x1.ebfce50fac4f3p-3", "0x1.62e42ff0c52d6p-1"))
EXP2F_SHIFT = float.fromhex("0x1.8p+52") / 32  # (adding it rounds y·log2 x to a multiple of 1/32)
POWF_OVERFLOW = float.fromhex("0x1.fffffffd1d571p+6")


def _log2_inline(x: Array) -> Array:
    """powf's log2 x for positive finite x (subnormals scaled by 2^23 first), in double."""
    ix = x.view(np.uint32).astype(np.int64)
    with np.errstate(over="ignore"):
        scaled = (x * F32(2.0 ** 23)).view(np.uint32).astype(np.int64) - (23 << 23)
    ix = np.where(x < F32(2.0 ** -126), scaled, ix)
    tmp = ix - 0x3F330000
    top = (tmp >> 23) << 23
    tab = np.array(POWF_LOG2_TAB)[(tmp >> 19) % 16]
    z = (ix - top).astype(np.uint32).view(F32).astype(np.float64)
    r = z * tab[..., 0] - 1
    a = POWF_LOG2_POLY
    r2 = r * r
    q = (a[2] * r + a[3]) * r2 + (a[4] * r + ((tab[..., 1]) + (top >> 23)))
    out: Array = (a[0] * r + a[1]) * (r2 * r2) + q
    return out


def powf(x: Array, y: Any) -> Array:
    """glibc's powf(x, y) for x ≥ 0 and a float y > 0: 2^(y·log2 x) rounded once to float32 (0 at 0, ∞ at ∞,
    NaN at NaN)."""
    x = np.asarray(x, dtype=F32)
    with np.errstate(all="ignore"):
        ylogx = float(F32(y)) * _log2_inline(np.where((x > 0) & np.isfinite(x), x, F32(1)))
        kd = ylogx + EXP2F_SHIFT
        ki = kd.view(np.uint64)
        r = ylogx - (kd - EXP2F_SHIFT)
        s = (np.array(EXP2F_TAB, dtype=np.uint64)[(ki % np.uint64(32)).astype(np.int64)]
             + (ki << np.uint64(47))).view(np.float64)
        c = EXP2F_POLY
        out = (((c[0] * r + c[1]) * (r * r) + (c[2] * r + 1)) * s).astype(F32)
    out = np.where(ylogx > POWF_OVERFLOW, F32(np.inf), np.where(ylogx <= -150.0, F32(0), out))
    result: Array = np.where((x == 0) | ~np.isfinite(x), x, out).astype(F32)
    return result


def pairwise_distance(x1: Array, x2: Array, q: float, half: Any) -> tuple[Array, Array]:
    """pairwise_distance: u = x1 − x2 + ε (each op rounded, ε rounded to the dtype first), and its q-norm per
    row."""
    rnd = rounder(half)
    u = rnd(rnd(x1 - x2) + scalar(DIST_EPS, half))
    if u.shape[1] == 1:
        d = np.abs(u[:, 0])  # (a norm over one element is its absolute value: no square, no powf taken)
    elif q == 1:
        d = running_sum(np.abs(u))
    elif q == 2:
        d = np.sqrt(sum_squares(u, half))  # (float32's root, or double's)
    elif half is WIDE:  # (NormOps in double: Σ pow(|u|, q), then pow(Σ, 1/q), the C library's)
        d = libm.pow(running_sum(libm.pow(np.abs(u), q)), 1.0 / q)
    else:
        total = running_sum(powf(np.abs(u), q))  # (NormOps: Σ powf(|u|, q) in float32, then powf(Σ, 1/q), 1/q a float)
        d = powf(total, F32(1) / F32(q))
    return u, rnd(d)


def norm_backward(g: Array, u: Array, d: Array, q: float, half: Any) -> Array:
    """norm_backward for the upstream gradient g of each row's norm d, by q's branch: sgn(u)·g for q = 1;
    g·(u/d) for q = 2; (sgn(u)·|u|^(q−1), 0 where u = 0)·g·d^(1−q) below 1; sgn(u)·|u|^(q−1) between 1 and 2, and
    u·|u|^(q−2) above 2, times g/d^(q−1) (0 where d = 0). Each product rounded, each power torch.pow's."""
    rnd = rounder(half)
    if q == 1:
        return rnd(np.sign(u) * g[:, None])
    with np.errstate(all="ignore"):
        if q == 2:
            r = np.where(d[:, None] == 0, F32(0), rnd(u / d[:, None]))
            return rnd(g[:, None] * r)
        if q < 1:
            scaled = rnd(np.sign(u) * np.where(u == 0, F32(0), power(np.abs(u), q - 1, rnd, half)))
            return rnd(rnd(scaled * g[:, None]) * power(d, 1 - q, rnd, half)[:, None])
        if q < 2:
            scaled = rnd(np.sign(u) * power(np.abs(u), q - 1, rnd, half))
        else:
            scaled = rnd(u * power(np.abs(u), q - 2, rnd, half))
        scale = np.where(d == 0, F32(0), rnd(g / power(d, q - 1, rnd, half)))
    return rnd(scaled * scale[:, None])


def _min_backward(h: Array, a: Array, b: Array, rnd: Callable[[Array], Array]) -> tuple[Array, Array]:
    """at::min(a, b)'s backward: h to the smaller, h/2 to each at a tie."""
    share = np.where(a == b, rnd(h / F32(2)), h)
    return np.where(a > b, F32(0), share).astype(h.dtype), np.where(a < b, F32(0), share).astype(h.dtype)


def triplet(anchor: Array, pos: Array, neg: Array, q: float, margin: float, swap: bool,
            half: Any) -> tuple[Array, Callable[..., tuple[Array, Array, Array]]]:
    """triplet_margin_loss: max(margin + d(a, pos) − d(a, neg), 0) with d pairwise_distance (with swap,
    min(d(a, neg), d(pos, neg))), each op rounded, the margin rounded to the dtype; the gradients for the anchor,
    the positive and the negative of the mean over n (1: the sum), or of an upstream gradient per sample,
    autograd's: clamp_min passes g where the unclamped value is at least 0, each distance's norm_backward, the two
    paths into an input added."""
    rnd = rounder(half)
    up, dp = pairwise_distance(anchor, pos, q, half)
    un, dn = pairwise_distance(anchor, neg, q, half)
    us, ds = pairwise_distance(pos, neg, q, half) if swap else (un, dn)
    dneg = np.minimum(dn, ds) if swap else dn
    x = rnd(rnd(scalar(margin, half) + dp) - dneg)

    def grads(n: float, upstream: Array | None = None) -> tuple[Array, Array, Array]:
        c = (wide_upstream(n) if half is WIDE else upstream_c(n, rnd)) if upstream is None else upstream
        h = np.where(x >= 0, c, F32(0)).astype(x.dtype)
        gp = norm_backward(h, up, dp, q, half)
        if not swap:
            gn = norm_backward(-h, un, dn, q, half)
            return rnd(gp + gn), -gp, -gn
        hn, hs = _min_backward(-h, dn, ds, rnd)
        gn, gs = norm_backward(hn, un, dn, q, half), norm_backward(hs, us, ds, q, half)
        return rnd(gp + gn), rnd(-gp + gs), rnd(-gn - gs)
    return np.maximum(x, F32(0)), grads


def triplet_parts(y: Array, p: Array, negative: Array, half: Any, options: dict[str, Any],
                  weights: Array | None = None) -> Parts:
    """triplet's Parts: p the anchor, y the positive; the mean's gradients with 1/n brought in first, its value
    torch.mean's; weighed by sample as PyTorch users weigh it (lowp.weighed_pair)."""
    q = float(options.get("norm_degree", 2.0))
    margin = float(options.get("margin", 1.0))
    with np.errstate(all="ignore"):
        losses, grads = triplet(p, y, negative, q, margin, bool(options.get("swap")), half)
    if weights is not None:
        return weighed_pair(losses, grads, ("target", "negative"), weights, half)
    value = wide_summed(losses) if half is WIDE else summed_losses(losses, rounder(half), half)
    return Parts(losses=losses, grad=quiet(grads)(1)[0],
                 extra_grads={"target": quiet(grads)(1)[1], "negative": quiet(grads)(1)[2]},
                 mean_grad=quiet(lambda n: grads(n)[0]), **value,
                 mean_extra_grads=quiet(lambda n: {"target": grads(n)[1], "negative": grads(n)[2]}))


def cosine_embedding(x1: Array, x2: Array, label: Array, margin: float,
                     half: Any) -> tuple[Array, Callable[..., tuple[Array, Array]]]:
    """cosine_embedding_loss: cos = Σx1x2 / sqrt((Σx1² + ε)(Σx2² + ε)), 1 − cos for label 1, (cos − margin)
    clamped at 0 for −1, each op rounded (ε and the margin rounded to the dtype); the gradients for x1 and x2 of
    the mean over n (1: the sum), or of an upstream gradient `up` per sample, autograd's through div, sqrt, the
    product of the two norms and the three products: x's gradient 2·(g₁·x) (its square's two paths) plus g·(the
    other vector)."""
    rnd = rounder(half)
    sums = wide_row_sums if half is WIDE else (lambda x: row_sums(x, half))
    eps = np.float64(F32(COS_EPS)) if half is WIDE else scalar(COS_EPS, half)  # (a float constant in C++)
    prod = sums(rnd(x1 * x2))
    m1 = rnd(sums(rnd(x1 * x1)) + eps)
    m2 = rnd(sums(rnd(x2 * x2)) + eps)
    denom = rnd(mkl.sqrt64(rnd(m1 * m2)) if half is WIDE else torch_sqrt(rnd(m1 * m2), half))
    cos = rnd(prod / denom)
    below = rnd(cos - scalar(margin, half))
    alike, unlike = label == 1, label == -1
    losses = rnd(np.where(alike, rnd(F32(1) - cos), F32(0)) + np.where(unlike, np.maximum(below, F32(0)), F32(0)))

    def grads(n: float, up: Array | None = None) -> tuple[Array, Array]:
        g = (wide_upstream(n) if half is WIDE else upstream_c(n, rnd)) if up is None else up
        g_cos = (-np.where(alike, g, F32(0)) + np.where(unlike & (below >= 0), g, F32(0))).astype(prod.dtype)
        g_prod = rnd(g_cos / denom)
        g_den = rnd(-g_cos * rnd(rnd(prod / denom) / denom))
        g_mm = rnd(g_den / (F32(2) * denom))
        g_m1, g_m2 = rnd(g_mm * m2), rnd(g_mm * m1)
        t1 = rnd(g_m1[:, None] * x1)
        t2 = rnd(g_m2[:, None] * x2)
        return rnd((t1 + t1) + rnd(g_prod[:, None] * x2)), rnd((t2 + t2) + rnd(g_prod[:, None] * x1))
    return losses, grads


def cosine_parts(y: Array, p: Array, label: Array | None, half: Any, options: dict[str, Any],
                 weights: Array | None = None) -> Parts:
    """cosine-embedding's Parts (x1 the predictions, x2 the targets: the gradient for both), or with no labels
    lossgrad's torch cosine, cosine_embedding_loss(pred, target, 1) (the gradient for the predictions); weighed by
    sample as PyTorch users weigh it (lowp.weighed_pair)."""
    labels = np.ones(p.shape[0], dtype=F32) if label is None else np.asarray(label, dtype=F32).reshape(-1)
    with np.errstate(all="ignore"):
        losses, grads = cosine_embedding(p, y, labels, float(given_margin(options)), half)
    if weights is not None:
        if label is None:
            return weighed_parts(losses, lambda n, up=None: grads(n, up)[0], None, weights, half)
        return weighed_pair(losses, grads, "target", weights, half)
    value = wide_summed(losses) if half is WIDE else summed_losses(losses, rounder(half), half)
    extra = None if label is None else {"target": quiet(grads)(1)[1]}
    return Parts(losses=losses, grad=quiet(grads)(1)[0], extra_grads=extra, mean_grad=quiet(lambda n: grads(n)[0]),
                 **value,
                 mean_extra_grads=None if label is None else quiet(lambda n: {"target": grads(n)[1]}))


# the losses whose kernels this module reproduces (kernels.MORE hands them here before lowp), the parameters each
# takes, and what it covers (for messages)
TAKES = {"triplet": ("margin", "norm_degree", "swap"), "cosine-embedding": ("margin",), "cosine": ()}
SUPPORTED = ("triplet (with norm_degree, margin and swap; in float32 and float64 with norm_degree 0.5, 1.5 or 2.5 "
             "only with the mkl extra)",
             "cosine-embedding and cosine (float16 and bfloat16, and float32 and float64 with the mkl extra; with "
             "margin)",
             "sample weights as (loss(reduction='none') * w).mean() or .sum() on triplet, cosine-embedding and cosine")
ROOT_NORMS = (0.5, 1.5, 2.5)  # the norms whose backward takes a float32 power ½ (x ** 0.5 is torch.sqrt: MKL's)
# the losses weighed by sample as PyTorch users weigh them (its functions take no weight per sample): each loss of
# reduction="none" times its weight, then .mean() or .sum(), autograd handing the loss's backward c·w (kernels reads
# it, and refuses the options beyond TAKES)
WEIGHABLE = ("triplet", "cosine-embedding", "cosine")
DTYPES = ("float32", "float16", "bfloat16", "float64")  # (float64: unsupported_mode and unsupported_options say which)


def unsupported_dtype(loss: str, dtype: str) -> str | None:
    """cosine_embedding_loss in float32 takes its square root from MKL's vsSqrt (about one float32 root in six
    an ulp from the correctly rounded one), reproduced where MKL is installed; a half dtype's root is correctly
    rounded."""
    if loss in ("cosine", "cosine-embedding") and dtype == "float32" and not mkl.available():
        return (f"{loss} in float32 (its square root is MKL's vsSqrt, not correctly rounded: {mkl.INSTALL}; "
                "float16 and bfloat16 are reproduced)")
    return None


def unsupported_mode(dtype: str, loss: str, from_logits: bool, sample_weight: bool) -> str | None:
    """float64 cosine_embedding_loss only with the `mkl` extra (its square root in double is MKL's vmdSqrt, not
    correctly rounded); lossgrad's float64 formulas take the rest."""
    if dtype == "float64" and loss != "triplet" and not mkl.available():
        return f"{loss} in float64 (its square root in double is MKL's vmdSqrt: {mkl.INSTALL})"
    return None


def unsupported_options(loss: str, dtype: str, params: dict[str, Any]) -> str | None:
    """Options reproduced in some dtypes only: float32 and float64 triplet with a norm whose backward takes |u|^½
    or d^½ (q = ½, 1.5, 2.5: torch.sqrt, MKL's in PyTorch's builds, reproduced where MKL is installed)."""
    q = params.get("norm_degree")
    if loss == "triplet" and dtype in ("float32", "float64") and q is not None and float(q) in ROOT_NORMS \
            and not mkl.available():
        return (f"triplet in {dtype} with {{norm_degree}} {float(q):g} (its backward's square root is MKL's: "
                f"{mkl.INSTALL}; float16 and bfloat16 are reproduced)")
    return None


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = False,
            weights: Array | None = None, extra: dict[str, Array] | None = None) -> Parts:
    """The Parts of triplet (`extra`: negative), cosine-embedding (`extra`: label) or cosine, as PyTorch's CPU
    kernels give them in float32 (half None) or the half dtype (carried in float32); triplet's float64 inputs in
    float64 (WIDE)."""
    more = extra or {}
    if half is None and p.dtype == np.float64:
        if loss == "triplet":
            return triplet_parts(y, p, np.asarray(more["negative"], dtype=np.float64), WIDE, params or {}, weights)
        return cosine_parts(y, p, more.get("label"), WIDE, params or {}, weights)
    y, p = y.astype(F32), p.astype(F32)
    if loss == "triplet":
        return triplet_parts(y, p, np.asarray(more["negative"], dtype=F32), half, params or {}, weights)
    return cosine_parts(y, p, more.get("label"), half, params or {}, weights)
