"""Whose CPU kernels are reproduced bit for bit in float32, float16 and bfloat16, by which module.

A convention's `kernels` names a backend; each backend module holds a framework's kernels and says, through
`unsupported`, which losses and options it covers in which dtype (None: all of this). Everything else about the
low-precision path (rounding the inputs, reductions, output) is shared.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from . import lowp, lowp_tf, lowp_tfk, lowp_xla_more
from .losses import Parts
from .losses._ops import Array

# the backend module of each `kernels` name, and whose kernels they are (for messages)
BACKENDS: dict[str, ModuleType] = {"torch": lowp, "tf": lowp_tf, "tf-keras": lowp_tfk, "xla": lowp_xla_more}
TITLES = {"torch": "PyTorch's", "tf": "TensorFlow's", "tf-keras": "TensorFlow's", "xla": "XLA's"}


def unsupported(kernels: str, dtype: str, loss: str, from_logits: bool, params: dict[str, Any],
                switches: dict[str, bool], sample_weight: bool) -> str | None:
    """Why `kernels` are not reproduced for this loss, these options and this dtype (None: they are)."""
    backend = BACKENDS[kernels]
    if dtype not in getattr(backend, "DTYPES", ("float32", "float16", "bfloat16")):
        return f"{dtype}"
    in_dtype = getattr(backend, "unsupported_dtype", None)  # (a loss reproduced in some dtypes only)
    if in_dtype is not None and in_dtype(loss, dtype) is not None:
        return str(in_dtype(loss, dtype))
    why: str | None = backend.unsupported(loss, from_logits, params, switches, sample_weight)
    return why


def supported(kernels: str) -> str:
    """What the backend covers, for a message."""
    return "; ".join(BACKENDS[kernels].SUPPORTED)


def compute(kernels: str, loss: str, y: Array, p: Array, labels: Array | None, half: Any,
            switches: dict[str, bool], batchmean: bool, params: dict[str, Any], from_logits: bool = True,
            weights: Array | None = None, extra: dict[str, Array] | None = None) -> Parts:
    """The loss's parts as the backend's kernels give them (half None: float32); a loss on probabilities and
    the sample weights and the loss's further inputs (`extra`) are passed on only when there are (a backend that
    lacks them refuses them first)."""
    more: dict[str, Any] = {} if from_logits else {"from_logits": False}
    if weights is not None:
        more["weights"] = weights
    if extra:
        more["extra"] = extra
    parts: Parts = BACKENDS[kernels].compute(loss, y, p, labels, half, switches, batchmean, params=params, **more)
    return parts
