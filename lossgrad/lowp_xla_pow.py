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
1 (q = 1's root and its slope), and LLVM's library-call simplifier turns a constant x^½ into |√x| (q = 1.5's
slope; jit_powf); op by op the exponent is an operand and every power is powf.

jax.grad multiplies the cotangent g by the slopes: q·x^(q−1) (lax.pow: q − 1 formed in the dtype, x^(q−1) a powf;
integer_pow: g·(2·x) for 2, g·(q·x^(q−1)) for 3 and more, x^(q−1) again by products, g itself for 1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import libm
from .errors import NotReproduced
from .losses._ops import Array
from .lowp_xla import F32, YNN_FROM, Rounder, _fma, _rows, ftz, margin_hinge, xla_sum


def powf(x: Array, e: float) -> Array:
    """x^e as XLA's CPU code computes a power it does not rewrite: the C library's powf, one element at a time."""
    return ftz(libm.powf(x, e))


def integral(q: float) -> bool:
    """Whether lossgrad takes --norm-degree q as optax's integer_pow (a Python int, as optax's default 2)."""
    return float(q).is_integer() and q > 0


def check(q: float, shape: tuple[int, ...], half: object, jit: bool) -> None:
    """Raise NotReproduced where JAX's results are not reproduced here: half dtypes under jit (XLA's fusions in
    them not measured); under jit in float32, q = 3 or 4 on rows of 2 to 8 features below YNN_FROM elements (LLVM's
    loop vectorizer takes some rows of the fused row sum 4 or 8 at a time by a cost model not measured for these
    powers), an integral q of 5 or more (its fused products not measured), and q below 1 (1/q > 1: XLA rewrites
    the root's power, not modelled)."""
    if half is not None and jit:
        raise NotReproduced("dtype", "JAX's triplet_margin_loss with a norm_degree other than 2 under jit is "
                            "reproduced in float32 only (in {dtype} op by op: --no-jit; jit=False in Python); use "
                            "{dtype} float32 or float64, or {convention} exact")
    rows, n = shape
    if not jit:
        return
    why = ("rows of 2 to 8 features (LLVM vectorizes some rows of XLA's fused sum of the powers by a cost model not "
           "measured for them)" if q in (3, 4) and 2 <= n <= 8 and rows * n < YNN_FROM else
           "an integral degree of 5 or more (XLA's fused products not measured)" if integral(q) and q >= 5 else
           "a degree below 1 (XLA rewrites the root's power 1/q, not modelled)" if q < 1 else None)
    if why:
        raise NotReproduced("dtype", f"JAX's triplet_margin_loss with norm_degree {q:g} under jit is not reproduced "
                            f"for {why}; ask for JAX op by op (--no-jit; jit=False in Python)")


def int_pow(x: Array, n: int, r: Rounder) -> Array:
    """lax.integer_pow(x, n), n ≥ 1, as JAX lowers it: binary exponentiation, each product rounded (n = 3: (x·x)·x,
    XLA's multiply of the square by x)."""
    acc: Array | None = None
    while n > 0:
        if n & 1:
            acc = x if acc is None else r(acc * x)
        n >>= 1
        if n > 0:
            x = r(x * x)
    assert acc is not None
    return acc


def power(x: Array, q: float, r: Rounder) -> Array:
    """jnp.power(x, q): integer_pow for an integral q, else lax.pow (glibc's powf, NaN for a negative x)."""
    return int_pow(x, int(q), r) if integral(q) else r(powf(x, q))


def jit_powf(x: Array, e: float) -> Array:
    """x^e as XLA's jitted code computes it for a constant e: glibc's powf, except that LLVM's library-call
    simplifier turns pow(x, ½) into |√x| (−∞ giving +∞), a correctly rounded square root (seen in the optimized IR;
    op by op the exponent is an operand and stays powf's)."""
    if e == 0.5:
        return ftz(np.where(x == -np.inf, F32(np.inf), np.abs(np.sqrt(x))))
    return ftz(powf(x, e))


def slope(x: Array, q: float, r: Rounder, jit: bool = False) -> Array | None:
    """jax.grad's factor q·x^(q−1) of jnp.power(x, q), None for q = 1 (integer_pow passes g on); `jit`: x^(q−1)
    as jit_powf takes it."""
    if integral(q):
        n = int(q)
        return None if n == 1 else r(F32(2) * x) if n == 2 else r(F32(n) * int_pow(x, n - 1, r))
    e = F32(r(F32(q)))
    return r(e * r((jit_powf if jit else powf)(x, float(r(e - F32(1))))))


def root_slope(h: Array, q: float, r: Rounder) -> Array:
    """jax.grad's factor (1/q)·h^(1/q − 1) of the root lax.pow(h, 1/q): 1/q (a weakly typed constant) and 1/q − 1
    rounded to the dtype (1 for q = 1: h^0, which XLA folds and glibc's powf gives for any h)."""
    e = F32(r(F32(1 / q)))
    return r(e * r(powf(h, float(r(e - F32(1))))))


def _fused_sum(d: Array, q: float) -> Array:
    """Σ d^q along each row as XLA's fused row loop adds it under jit in float32 (up to 32 features, fewer than
    YNN_FROM elements; the scalar loop, as the object code runs it): q = 3 from +0, each cube's last product
    contracted into the running sum, fma(d, d², acc); q = 4 as the squares' loop for 2, d₀²·d₀² + d₁⁴ in one FMA,
    then fma(d², d², acc); other q adding each power as it is, in order from +0."""
    if q in (3, 4):
        sq = ftz(d * d)
        if q == 4:
            acc = _fma(sq[:, 0], sq[:, 0], ftz(sq[:, 1] * sq[:, 1]))
            for i in range(2, d.shape[1]):
                acc = _fma(sq[:, i], sq[:, i], acc)
            return acc
        acc = np.zeros(d.shape[0], dtype=F32)
        for i in range(d.shape[1]):
            acc = _fma(d[:, i], sq[:, i], acc)
        return acc
    t = power(d, q, ftz)
    acc = np.zeros(d.shape[0], dtype=F32)
    for i in range(d.shape[1]):
        acc = ftz(acc + t[:, i])
    return acc


def triplet(a: Array, pos: Array, neg: Array, q: float, margin: float, r: Rounder, k: Rounder, jit: bool,
            fused: bool = False) -> tuple[Array, Array, Callable[[float], list[Array]]]:
    """triplet_margin_loss with norm_degree q: d(u, v) = (Σ (u − v)^q + ε)^(1/q), max(d(a, pos) − d(a, neg) +
    margin, 0); jax.grad through the root's slope and the power's (slope, root_slope), the maximum's share (½ at
    0) first. `fused` (float32 under jit): the powers summed in XLA's fused row loop (_fused_sum) and each
    gradient's row factor taken times q before its product with the slope's power (XLA's reassociation).
    Returns the losses, the terms the mean adds, and the gradients (anchor, positive, negative)."""
    eps = r(F32(1e-6))
    e = F32(r(F32(1 / q)))

    def dist(v: Array) -> tuple[Array, Array, Array]:
        d = r(a - v)
        if fused and d.shape[1] == 1 and integral(q) and int(q) in (3, 4):
            sq = ftz(d * d)
            h = _fma(d if q == 3 else sq, sq, eps)[:, 0]
            return d, r(powf(h, float(e))), root_slope(h, q, r)
        if fused and d.shape[1] <= 32 and d.size < YNN_FROM:
            s = _fused_sum(d, q)
        else:
            s = _rows(power(d, q, r), r, k) if not fused else xla_sum(power(d, q, ftz))
        h = r(s + eps)
        root = h if q == 1 else r(powf(h, float(e)))
        return d, root, root_slope(h, q, r)
    dp, root_p, jp = dist(pos)
    dn, root_n, jn = dist(neg)
    raw, back = margin_hinge(root_p, root_n, jp, jn, margin, r)

    def grads(n: float) -> list[Array]:
        cn, cp = back(n)
        if fused and q != 1 and dn.shape[1] == 1:
            sn, sp = slope(dn, q, ftz, True), slope(dp, q, ftz, True)
            bp, bt = ftz(cn * sn), ftz(cp * sp)
            return [_fma(cp, sp, bp), -bt, -bp]
        if fused and q != 1:
            (un, kn), (up, kp) = _factors(cn, dn, q), _factors(cp, dp, q)
            bp, bt = ftz(un * kn), ftz(up * kp)
            return [_fma(un, kn, bt), -bt, -bp]
        bp, bt = _through(cn, dn, q, r, fused), _through(cp, dp, q, r, fused)
        return [r(bp + bt), -bt, -bp]
    return r(raw), raw, grads


def _through(c: Array, d: Array, q: float, r: Rounder, fused: bool) -> Array:
    """A row's cotangent c taken through jnp.power(d, q) to d: c·(q·d^(q−1)) op by op."""
    if q == 1:
        return np.broadcast_to(c, d.shape).astype(F32)
    s = slope(d, q, r)
    assert s is not None
    return r(c * s)


def _factors(c: Array, d: Array, q: float) -> tuple[Array, Array]:
    """The two factors whose product is the gradient with respect to d under jit in float32: XLA reassociates
    c·(q·d^(q−1)) into d^(q−1)·(c·q) (d^½ for q = 1.5 a square root, jit_powf)."""
    part = int_pow(d, int(q) - 1, ftz) if integral(q) else jit_powf(d, float(F32(F32(q) - F32(1))))
    return part, ftz(c * F32(q))
