"""TensorFlow's CPU kernels for Keras 3's Dice and Tversky losses (keras.losses.Dice, keras.losses.Tversky, one loss
per sample over its outputs) in float32, float16, bfloat16 and float64 (lowp_tf.WIDE: packets of 4 doubles).

Every Keras op is one TensorFlow kernel whose result is stored in the dtype: the products y·p, 1 − p and p·(1 − y),
reduce_sum over a sample's outputs (lowp_tf's reducer: float16 accumulating in float16, bfloat16 in float32 and
stored once), the Python constants 2, α, β and ε converted to the dtype, the denominator added left to right, the
quotient (RealDiv) and 1 − it. The gradient is GradientTape's: RealDiv's g/y for the numerator and
g·((−x/y)/y) for the denominator, Mul's g·other factor, Sum's broadcast, each rounded in the dtype, and a
prediction's contributions added by AddN in the dtype. The reduction over the batch is lowp_tf's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import lowp_tf
from .errors import OptionError
from .losses import Parts
from .losses._ops import Array
from .lowp_tf import Kind, held_weights, kind_of
from .lowp_tf_elem import rsum

# the losses whose kernels this module reproduces (kernels.MORE hands them here before lowp_tf_log) and the options
# each takes
# (over_batch: the batch arrives joined as one row, api._over_batch and tensor_run.geometry)
TAKES = {"dice": ("eps", "smooth", "smooth_dr", "over_batch"),  # (smooth and smooth_dr: refused by compute)
         "tversky": ("alpha", "beta", "eps", "smooth", "smooth_dr", "over_batch")}
WEIGHABLE = tuple(TAKES)  # (reproduced under sample weights too)
SUPPORTED = ("dice", "tversky (with --alpha, --beta)")
DTYPES = ("float32", "float16", "bfloat16", "float64")  # (float64: conventions.KERAS.kernels_float64)
EPS = 1e-7  # keras.backend.epsilon()
Grad = Callable[[Array], Array]  # the upstream gradient of each sample's loss -> the predictions'


def quotient(x: Array, d: Array, kind: Kind) -> tuple[Array, Callable[[Array], tuple[Array, Array]]]:
    """1 − x/d and, for an upstream g of it, RealDiv's gradients (−g)/d to x and (−g)·((−x/d)/d) to d."""
    k = kind
    losses = k.sub(k.number(1), k.div(x, d))

    def back(g: Array) -> tuple[Array, Array]:
        return k.div(-g, d), k.mul(-g, k.div(k.div(-x, d), d))
    return losses, back


def dice(y: Array, p: Array, kind: Kind, eps: float) -> tuple[Array, Grad]:
    """1 − 2·Σyp/((Σy + Σp) + ε); the gradient y·(2·gx) through the intersection plus gd through Σp."""
    k = kind
    two = k.number(2.0)
    x = k.mul(two, rsum(k.mul(y, p), k))
    d = k.add(k.add(rsum(y, k), rsum(p, k)), k.number(eps))
    losses, back = quotient(x, d, k)

    def grad(g: Array) -> Array:
        gx, gd = back(g)
        gi = k.mul(two, gx)[:, None]
        return k.add(k.mul(y, gi), gd[:, None])
    return losses, grad


def tversky(y: Array, p: Array, kind: Kind, a: float, b: float, eps: float) -> tuple[Array, Grad]:
    """Keras' 1 − TP/(((TP + FP·a) + FN·b) + ε), FP = Σ(1 − p)·y, FN = Σp·(1 − y) (Keras' alpha a weighs FP so
    named); the gradient of TP from the numerator and the denominator added, then each element's three parts."""
    k = kind
    ca, cb = k.number(a), k.number(b)
    one_p, one_y = k.sub(k.number(1), p), k.sub(k.number(1), y)
    tp, fp, fn = rsum(k.mul(y, p), k), rsum(k.mul(one_p, y), k), rsum(k.mul(p, one_y), k)
    d = k.add(k.add(k.add(tp, k.mul(fp, ca)), k.mul(fn, cb)), k.number(eps))
    losses, back = quotient(tp, d, k)

    def grad(g: Array) -> Array:
        gx, gd = back(g)
        gtp = k.add(gx, gd)[:, None]
        gfp, gfn = k.mul(gd, ca)[:, None], k.mul(gd, cb)[:, None]
        # AddN's order, as the tape collects them: the intersection's, FN's, then FP's (through 1 − p)
        return k.add(k.add(k.mul(y, gtp), k.mul(gfn, one_y)), -k.mul(gfp, y))
    return losses, grad


def compute(loss: str, y: Array, p: Array, labels: Array | None, half: Any, switches: dict[str, bool],
            batchmean: bool = False, params: dict[str, Any] | None = None, from_logits: bool = False,
            keras2: bool = False, weights: Array | None = None) -> Parts:
    """The per-sample losses (times the sample weights, lowp_tf.weighed), the gradient of their sum and of their
    mean over N (the upstream 1/N as divide_no_nan's gradient gives it), and the reduced value."""
    params = params or {}
    for name in ("smooth", "smooth_dr"):
        if params.get(name) is not None:
            raise OptionError(name, "Keras' dice and tversky add ε to the denominator only: set it with {eps}")
    kind = kind_of(half, p)
    y, p = y.astype(kind.dtype), p.astype(kind.dtype)
    eps = params.get("eps") or EPS
    with np.errstate(all="ignore"):
        if loss == "dice":
            losses, back = dice(y, p, kind, eps)
        else:  # (Keras' alpha weighs Σ(1 − p)y, lossgrad's beta: swapped)
            losses, back = tversky(y, p, kind, params.get("beta", 0.5), params.get("alpha", 0.5), eps)
    return lowp_tf.weighed(losses, back, kind, None if weights is None else held_weights(weights, kind, keras2))
