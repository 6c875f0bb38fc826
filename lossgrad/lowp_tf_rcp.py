"""Eigen's float32 reciprocal as TensorFlow's x86 builds compute it: over whole packets of 8 the processor's
`rcpps` estimate refined by one Newton step without FMA, x + x·(1 − a·x), each operation rounded (the estimate
itself where 1 − a·x is NaN: a zero or infinite); 1/a for the scalar remainder.

`rcpps` depends only on the exponent and the top 12 bits of the mantissa, and gives 12 significant bits; its
table is the processor's. RCPPS is this processor's (an AMD EPYC), as read back from TensorFlow's own
reciprocal by scripts/golden_lowp_tf_rcp.py and kept in tests/golden/lowp_tf_rcp.json: for each of the 4096
buckets of x in [1, 2), the estimate's steps of 2^−12 from 1/x at the bucket's middle rounded to 12 bits (plus 8),
as zlib-compressed bytes in base64.
"""
from __future__ import annotations

import base64
import zlib

import numpy as np

from .losses._ops import Array
from .lowp_tf import F32, PACKET, TINY, add, div, ftz, mul

RCPPS = ("eNq1V9uW5CAIfIT6/x+e6UShCjCd3XPG7sSUXASDSMx8NVzNXuI6rj2NE1/wh9yhV37Xlnw5C0KO8S0d/GqHXU78uvHxxGIqAbf5MrSG"
         "gb0eyZz0ZKGnE9Z/adaISzLnG3BqsgCXF2Zg/us12nLg+uHGGxUc9JSIJ+z1sHxTTK/8XzAriSb8RGf5zR8WK94BsXXsl7so9BTvNx12"
         "6NsGFAjedBUhfYUyB0BvLSBGPETS/ZfIW/uYPLQMc6eNuDZ2DL/BfQfvDerrSn7PLbrpkQjCfo9YlcEZE38mLDPfSaqlFsk+CDNldbjT"
         "NNWzl+KW1hwYXpHOP7BV/ezkJ53xon1cFuwd9+DqY9ymTPwUrLX5Hzfgf6bEUcu1qPZiVn9amQGflQ3zVUfQo1YY6pNKh/57phpy4JN0"
         "G5PnvpXzX/jLFtIdcspmWjcEv0TpPd+ylz3j+etmynQ2LD5aXvlHbKSOEla5ebkN8l7ypW7PzFfoRlglgfnB/FedY8RKmR90acqPiieP"
         "jImfLhsPnrBW9UHlyW3jdA40/UpX+UWjGjVIEH3DwapHKhQAQ4H3DvvXgm8+uE3/3+oFTAXmgz5bJaDWJfBW6KzeMvgejg9kxMMdg55V"
         "td36wpTS+2Gc+q2n6Jd5xZ5xhemW+gCVw8wf84xrfaI3edZvdMNBH1dLuwSWDHOWVzuMBKKjbfYaW9PHnxJUf/ODFvzTB5CpoZO8JDXh"
         "N/mwYP364VO/O2yie6WnRbIBxc2X/PWof5BXjG/6nvEPx+qCwg==")


def rcp_rounded() -> Array:
    """1/x at the middle of each bucket of x in [1, 2), rounded to 12 significant bits: its float bits over 2^11."""
    x = 1 + (np.arange(4096) + 0.5) / 4096
    return ((1 / x).astype(F32).view(np.uint32).astype(np.int64) + 1024) >> 11


def table(encoded: str) -> Array:
    """The estimates of the 4096 buckets of x in [1, 2), from their encoding as in RCPPS."""
    steps = np.frombuffer(zlib.decompress(base64.b64decode(encoded)), np.uint8).astype(np.int64) - 8
    return ((rcp_rounded() + steps) << 11).astype(np.uint32).view(F32)


def encode(steps: Array) -> str:
    """A table's encoding as in RCPPS, from each bucket's steps of 2^−12 from 1/x at its middle rounded."""
    return base64.b64encode(zlib.compress(bytes((np.asarray(steps) + 8).astype(np.uint8)), 9)).decode()


def rcp_estimate(x: Array, estimates: Array | None = None) -> Array:
    """The processor's `rcpps` estimate of 1/x: the table over the top 12 bits of the mantissa, scaled by the
    exponent and signed; ±∞ for ±0 and subnormals (read as 0), ±0 for ±∞ and where the estimate is subnormal."""
    est = ESTIMATES if estimates is None else estimates
    bits = x.view(np.uint32).astype(np.int64)
    e = ((bits >> 23) & 255) - 127
    with np.errstate(all="ignore"):
        out = np.ldexp(est[(bits >> 11) & 4095], -e).astype(F32)
        out = np.where(np.abs(out) < TINY, F32(0), out)
        out = np.where(np.abs(x) < TINY, F32(np.inf), np.where(np.isinf(x), F32(0), out))
    return np.copysign(out, x).astype(F32)


def newton(x: Array, est: Array) -> Array:
    """Eigen's generic_reciprocal_newton_step without FMA: e + e·(1 − x·e), the estimate where 1 − x·e is NaN."""
    with np.errstate(all="ignore"):
        t = add(F32(1), -mul(x, est))
        out = add(mul(est, t), est)
    return np.where(np.isnan(t), est, out).astype(F32)


def reciprocal(x: Array, estimates: Array | None = None) -> Array:
    """tf.math.reciprocal in float32 over a tensor: packets of 8 through the flattened array (the estimate and
    its Newton step), 1/x for the last elements (fewer than a packet); a subnormal x reads as ±0 (TensorFlow sets
    the processor's denormals-are-zero mode)."""
    with np.errstate(all="ignore"):
        flat = ftz(x.reshape(-1))
    cut = flat.size - flat.size % PACKET
    with np.errstate(all="ignore"):
        out = np.concatenate([newton(flat[:cut], rcp_estimate(flat[:cut], estimates)), div(F32(1), flat[cut:])])
    return out.reshape(x.shape).astype(F32)


ESTIMATES = table(RCPPS)
