"""torchvision's sigmoid_focal_loss as PyTorch's CPU kernels compute it in float32, float16 and bfloat16, op by op.

torchvision forms the loss from plain tensor ops: p = σ(z), bce = binary_cross_entropy_with_logits(z, y),
p_t = p·y + (1 − p)·(1 − y), bce·(1 − p_t)^γ, times α_t = α·y + (1 − α)·(1 − y). Each op stores its result in the
dtype (a half op computes in float32 and rounds), and autograd runs each op's backward the same way, so the
gradient is the chain of those rounded steps, the two paths into p and into z added last. `(1 − p_t)^γ` is
torch.pow with a scalar exponent, whose kernel picks a formula by γ and by dtype (see `power`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import lowp, mkl
from .losses import Parts
from .losses._ops import Array
from .losses.base import Place

F32 = np.float32
Rounder = Callable[[Array], Array]

def _sleef_exponent(e: float, half: Any) -> Any:
    """The exponent as the pow kernel holds it: a double for float32, the half dtype's own value for halves."""
    return F32(e) if half is None else F32(np.float64(e).astype(half))


def scalar_tail(shape: tuple[int, ...], half: Any, place: Place | None = None) -> Array:
    """The elements cpu_kernel_vec leaves to its scalar loop: those after the last pair of whole registers
    (lowp.register: 32 floats or 64 halves a pair with AVX-512) of each thread's part of the whole batch
    (lowp.tails, `place` as it takes it)."""
    return lowp.tails(shape, 2 * lowp.register(half), place)


def power(m: Array, e: float, rnd: Rounder, half: Any, place: Place | None = None) -> Array:
    """torch.pow(m, e) for a scalar e on CPU: 0 fills ones, 1 copies; float32 and bfloat16 take √m at ½, 1/√m at
    −½ (bfloat16's scalar loop rounding √m first) and 1/m at −1, then, with the exponent as the kernel holds it
    (bfloat16's rounded: 2.005 is 2), m·m at 2, m·m·m at 3 and 1/(m·m) at −2, each product rounded; any other e
    (and every other one in float16, where 2 gives m·m all the same) is SLEEF's powf in registers, the C library's
    pow in the scalar loop."""
    if e == 0:
        return np.ones_like(m)
    if e == 1:
        return m.copy()
    if half is lowp.WIDE:
        return wide_power(m, e, place)
    held = float(_sleef_exponent(e, half)) if half is not None else e
    with np.errstate(divide="ignore"):
        if half is not np.float16 and e in (0.5, -0.5, -1):
            if e == 0.5:  # (float32: MKL's vmsSqrt, as PyTorch sends x ** 0.5 to its square root)
                return rnd(lowp.torch_sqrt(m, half))
            if e == -1:
                return rnd(F32(1) / m)
            return rnd(F32(1) / np.where(scalar_tail(m.shape, half, place), rnd(np.sqrt(m)), np.sqrt(m)))
        if held == 2 or (half is not np.float16 and held in (3, -2)):
            square = rnd(m * m)
            return square if held == 2 else rnd(square * m) if held == 3 else rnd(F32(1) / square)
    return rnd(pow_kernel(m, _sleef_exponent(e, half), e, half, place))


def wide_power(m: Array, e: float, place: Place | None = None) -> Array:
    """torch.pow(m, e) of doubles for a scalar e other than 0 and 1: √m at ½ (MKL's vmdSqrt), 1/√m at −½, 1/m at −1,
    m·m at 2, m·m·m at 3 and 1/(m·m) at −2; any other e SLEEF's powd_u10 in registers (a pair of them: 8 doubles
    with AVX2, 16 with AVX-512), the C library's pow in the scalar loop (lossgrad.sleef64, libm)."""
    from . import libm, sleef64

    with np.errstate(divide="ignore", invalid="ignore"):
        if e == 0.5:
            return mkl.sqrt64(m)
        if e in (-0.5, -1):
            return 1.0 / (np.sqrt(m) if e == -0.5 else m)
        if e in (2, 3, -2):
            square = m * m
            return square if e == 2 else square * m if e == 3 else 1.0 / square
        flat, tail = m.reshape(-1), lowp.tails(m.shape, lowp.register(None), place).reshape(-1)
        out = sleef64.pow(flat, e)
        out[tail] = libm.pow(flat[tail], e)
    return out.reshape(m.shape)


def pow_kernel(m: Array, e: F32, e64: float, half: Any, place: Place | None = None) -> Array:
    """The general pow kernel: SLEEF's powf_u10 in whole registers, the C library's in the scalar loop (float32:
    pow of double operands, rounded once; halves: powf of float operands)."""
    flat = m.reshape(-1)
    tail = scalar_tail(m.shape, half, place).reshape(-1)
    with np.errstate(all="ignore"):
        out = powf(flat, e)
        exact = np.power(flat.astype(np.float64), e64 if half is None else float(e)).astype(F32)
    return np.where(tail, exact, out).reshape(m.shape)


DF = tuple[Array, Array]  # a double-float: an unevaluated sum of two float32s, the second the smaller


def _add2(x: Any, y: Any) -> DF:
    s = x + y
    v = s - x
    return s, (x - (s - v)) + (y - v)


def _df_add(x: DF, y: DF) -> DF:
    s = x[0] + y[0]
    return s, (((x[0] - s) + y[0]) + x[1]) + y[1]


def _df_add2(x: DF, y: DF) -> DF:
    s, t = _add2(x[0], y[0])
    return s, t + (x[1] + y[1])


def _df_mul(x: DF, y: DF) -> DF:
    s = x[0] * y[0]
    return s, lowp.fma(x[0], y[1], lowp.fma(x[1], y[0], lowp.fma(x[0], y[0], -s)))


def _df_scale(x: DF, y: Any) -> DF:
    s = x[0] * y
    return s, lowp.fma(x[1], y, lowp.fma(x[0], y, -s))


def _poly(x: Array, coefficients: tuple[float, ...]) -> Array:
    u = np.full_like(x, F32(coefficients[0]))
    for c in coefficients[1:]:
        u = lowp.fma(u, x, F32(c))
    return u


def _logkf(d: Array) -> DF:
    """SLEEF's logkf on AVX-512: log d in double-float arithmetic (d positive and finite)."""
    e, m = lowp._split(d)
    one = np.ones_like(m)
    x = lowp._df_div(*_add2(-one, m), *_add2(one, m))
    x2 = _df_mul(x, x)
    t = _poly(x2[0], (0.240320354700088500976562, 0.285112679004669189453125, 0.400007992982864379882812))
    c = (np.full_like(m, F32(0.66666662693023681640625)), np.full_like(m, F32(3.69183861259614332084311e-09)))
    s = _df_scale((np.full_like(m, lowp.LN2_DF[0]), np.full_like(m, lowp.LN2_DF[1])), e)
    s = _df_add(s, (x[0] * F32(2), x[1] * F32(2)))
    return _df_add(s, _df_mul(_df_mul(x2, x), _df_add2(_df_scale(x2, t), c)))


def _expkf(d: DF) -> Array:
    """SLEEF's expkf: e^d for a double-float d, 2^q·e^s with s = d − q·ln 2 kept in two parts."""
    q = np.rint((d[0] + d[1]) * F32(1.442695040888963407359924681001892137426645954152985934135449406931))
    s = d
    for part in (F32(-0.693145751953125), F32(-1.428606765330187045e-06)):
        head, tail = _add2(s[0], q * part)
        s = (head, tail + s[1])
    head = s[0] + s[1]
    s = (head, (s[0] - head) + s[1])
    u = _poly(s[0], (0.00136324646882712841033936, 0.00836596917361021041870117, 0.0416710823774337768554688,
                     0.166665524244308471679688, 0.499999850988388061523438))
    t = _df_add(s, _df_scale(_df_mul(s, s), u))
    one = np.ones_like(u)
    head = one + t[0]
    u = head + (((one - head) + t[0]) + t[1])
    result: Array = np.where(d[0] < -104, F32(0), _ldexp(u, np.clip(np.nan_to_num(q), -300, 300).astype(np.int32)))
    return result


def _ldexp(x: Array, q: Array) -> Array:
    """SLEEF's vldexp: x·2^q as four multiplications by 2^(16k) and one by the rest, each rounded (a result
    among the subnormals is rounded more than once)."""
    sign = q >> 31
    m = (((sign + q) >> 6) - sign) << 4
    q = q - (m << 2)
    m = np.clip(m + 127, 0, 255)
    u = (m.astype(np.uint32) << 23).view(F32)
    for _ in range(4):
        x = x * u
    out: Array = x * ((q + 127).astype(np.uint32) << 23).view(F32)
    return out


def powf(x: Array, y: F32) -> Array:
    """SLEEF's powf_u10 for x ≥ 0: e^(y·log x), the log and the product in double-float arithmetic; 0^y is 0
    (∞ for y < 0), x^0 and 1^y are 1."""
    x = np.asarray(x, dtype=F32)
    with np.errstate(all="ignore"):
        usable = (x > 0) & np.isfinite(x)
        r = _expkf(_df_scale(_logkf(np.where(usable, x, F32(1))), y))
        r = np.where(np.isnan(r), F32(np.inf), r)
        edge = np.where((y < 0) == (x == 0), F32(np.inf), F32(0))
        r = np.where(usable, r, edge)
    out: Array = np.where((y == 0) | (x == 1), F32(1), r).astype(F32)
    return out


def focal(y: Array, z: Array, gamma: float, alpha: float | None, half: Any,
          place: Place | None = None) -> tuple[Array, lowp.Backward, Array]:
    """The losses, the gradient for the mean over n (1: the sum) or for an upstream gradient `up`, and σ(z),
    every op as torch forms it."""
    rnd = lowp.rounder(half)
    ce = rnd(rnd(rnd(F32(1) - y) * z) - lowp.log_sigmoid(z, rnd))  # (binary_cross_entropy_with_logits)
    p = lowp.sigmoid(z, rnd, half, place)
    c = rnd(F32(1) - y)
    pt = rnd(rnd(p * y) + rnd(rnd(F32(1) - p) * c))
    m = rnd(F32(1) - pt)
    f = power(m, gamma, rnd, half, place)
    loss = rnd(ce * f)
    at = None
    if alpha is not None:
        at = rnd(rnd(F32(alpha) * y) + rnd(F32(1 - alpha) * c))
        loss = rnd(at * loss)
    diff = rnd(p - y)
    # d(m^γ)/dm = γ·m^(γ−1): torch's pow_backward raises m to γ − 1 with the same kernel (0 for γ = 0)
    dpow = None if gamma == 0 else rnd(F32(gamma) * power(m, gamma - 1, rnd, half, place))

    def grad(n: float, up: Array | None = None) -> Array:
        g = lowp.upstream_c(n, rnd) if up is None else up
        if at is not None:
            g = rnd(g * at)
        g_ce, g_f = rnd(g * f), rnd(g * ce)
        g_m = np.zeros_like(m) if dpow is None else rnd(g_f * dpow)
        g_pt = -g_m
        g_p = rnd(rnd(g_pt * y) - rnd(g_pt * c))
        through_p = sigmoid_backward(g_p, p, rnd, half)
        return rnd(through_p + rnd(diff * g_ce))
    return loss, grad, p


def sigmoid_backward(g: Array, p: Array, rnd: Rounder, half: Any) -> Array:
    """g·(1 − p)·p: float16 rounds each step, bfloat16 widens to float32 and rounds once."""
    if half is np.float16:
        return rnd(rnd(g * rnd(F32(1) - p)) * p)
    return rnd(g * (F32(1) - p) * p)


def focal_parts(y: Array, z: Array, half: Any, params: dict[str, Any], weights: Array | None = None) -> Parts:
    """focal's Parts: the mean's value torch.mean's (the float sum over n, rounded once); weighed by sample as
    PyTorch users weigh it (lowp.weighed_parts)."""
    gamma = 2.0 if params.get("gamma") is None else float(params["gamma"])  # (torchvision's default)
    alpha = params.get("alpha")
    with np.errstate(all="ignore"):
        losses, grad, prob = focal(y, z, gamma, None if alpha is None else float(alpha), half, params.get("place"))
    if weights is not None:
        return lowp.weighed_parts(losses, grad, prob, weights, half)
    rnd = lowp.rounder(half)
    return Parts(losses=losses, grad=lowp.quiet(grad)(1), prob=prob, mean_grad=lowp.quiet(grad),
                 **lowp.summed_losses(losses, rnd, half))


def smooth_l1(y: Array, p: Array, beta: float, rnd: Rounder, half: Any,
              place: Place | None = None) -> tuple[Array, lowp.Backward]:
    """smooth_l1_loss in float16 and bfloat16. The forward: bfloat16's kernel widens both inputs to float32 and
    rounds once; float16's computes in float16, each op rounded, β rounded to it; z = |p − y|, ½·z·z/β below β,
    z − ½·β from β on. The backward (both) is lowp.smooth_l1's: x = p − y in float32, unrounded, norm·(x/β or ±1)
    in registers of 32 halves, norm·x/β in the scalar loop after them (β a double, the quotient rounded to float32
    and then to the dtype), norm = 1/N as a float; rounded once."""
    h = F32(0.5)
    if half is np.float16:
        b = rnd(np.asarray(beta, dtype=F32))
        z = rnd(np.abs(p - y))
        losses = np.where(z < b, rnd(rnd(rnd(h * z) * z) / b), rnd(z - rnd(h * b)))
    else:
        b, z = F32(beta), np.abs(p - y)
        losses = rnd(np.where(z < b, ((h * z) * z) / b, z - h * b))
    _, grad = lowp.smooth_l1(y, p, beta, rnd, half, place)
    return losses, lambda n, up=None: rnd(grad(n, up))


def smooth_l1_parts(y: Array, p: Array, half: Any, params: dict[str, Any], weights: Array | None = None) -> Parts:
    """smooth-l1's Parts: float32 (and β = 0, l1_loss) as lowp forms them, float16 and bfloat16 here; the mean's
    value torch.mean's; weighed by sample as PyTorch users weigh it (lowp.weighed_parts)."""
    beta = params.get("beta")
    if half is None or not beta:
        if weights is not None:
            return lowp.weighed("smooth-l1", y, p, None, half, {}, False, params, True, weights)
        return lowp.elementwise_parts("smooth-l1", y, p, half, {}, False, params, True, None)
    rnd = lowp.rounder(half)
    with np.errstate(all="ignore"):
        losses, grad = smooth_l1(y, p, float(beta), rnd, half, params.get("place"))
    if weights is not None:
        return lowp.weighed_parts(losses, grad, None, weights, half)
    return Parts(losses=losses, grad=lowp.quiet(grad)(1), mean_grad=lowp.quiet(grad),
                 **lowp.summed_losses(losses, rnd, half))


# the losses whose kernels this module reproduces (kernels.MORE hands them here before lowp), the parameters each takes
TAKES = {"focal": ("gamma", "alpha"), "smooth-l1": ("beta",)}
WEIGHABLE = ("focal", "smooth-l1")  # (sample weights as PyTorch users weigh a loss: lowp.weighed_parts)


def placed(loss: str, from_logits: bool, probability_rows: bool, dtype: str = "float32") -> bool:
    """Whether a row's results depend on where it lies in the whole batch: the scalar loops at the end of each
    thread's part of the batch (scalar_tail)."""
    return True
SUPPORTED = ("smooth-l1",
             "focal (torchvision's, from logits, with gamma and alpha; in float32 not with gamma 0.5 or 1.5)")


def unsupported_options(loss: str, dtype: str, params: dict[str, Any]) -> str | None:
    """Options reproduced in some dtypes only: float32 focal at γ = ½ or 1.5 takes a float32 √ (MKL's in PyTorch's
    builds, reproduced where MKL is installed)."""
    if loss == "focal" and dtype == "float32" and params.get("gamma") in (0.5, 1.5) and not mkl.available():
        return (f"focal in float32 with {{gamma}} 0.5 or 1.5 (its float32 square root is MKL's: {mkl.INSTALL}; "
                "float16 and bfloat16 are reproduced)")
    return None


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = True,
            weights: Array | None = None, extra: dict[str, Array] | None = None) -> Parts:
    """focal (from logits) or smooth-l1 as PyTorch's CPU kernels give them in float32 (half None) or the half dtype
    (carried in float32)."""
    y, p = y.astype(F32), p.astype(F32)
    parts = focal_parts if loss == "focal" else smooth_l1_parts
    return parts(y, p, half, params or {}, weights)
