"""Whose CPU kernels are reproduced bit for bit in float32, float16 and bfloat16, by which module.

A convention's `kernels` names a backend; each backend module holds a framework's kernels and says, through
`unsupported`, which losses and options it covers in which dtype (None: all of this). Everything else about the
low-precision path (rounding the inputs, reductions, output) is shared.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from . import (
    flush,
    lowp,
    lowp_ctc,
    lowp_focal,
    lowp_pairs,
    lowp_seg,
    lowp_tf_ctc,
    lowp_tf_elem,
    lowp_tf_log,
    lowp_tf_seg,
    lowp_xla_ctc,
    lowp_xla_more,
    lowp_xla_ntxent,
)
from .losses import Parts
from .losses._ops import Array

# the backend module of each `kernels` name, and whose kernels they are (for messages)
BACKENDS: dict[str, ModuleType] = {"torch": lowp, "tf": lowp_tf_log, "tf-keras": lowp_tf_log, "xla": lowp_xla_more}
TITLES = {"torch": "PyTorch's", "tf": "TensorFlow's", "tf-keras": "TensorFlow's", "xla": "XLA's"}
# a backend's losses whose kernels live in modules of their own (each with the backend's `compute` and TAKES, the
# losses it covers and the parameters each takes; `unsupported` and SUPPORTED where it has more to say): they take
# those losses before the backend's main module (which they import, so it cannot import them)
MORE: dict[str, tuple[ModuleType, ...]] = {"torch": (lowp_pairs, lowp_seg, lowp_focal, lowp_ctc),
                                          "tf": (lowp_tf_elem, lowp_tf_seg, lowp_tf_ctc),
                                          "tf-keras": (lowp_tf_elem, lowp_tf_ctc),
                                          "xla": (lowp_xla_ntxent, lowp_xla_ctc)}
# what every module of a backend is told beside the loss's inputs: tf-keras runs TensorFlow's kernels as Keras 2
# calls them (its mean over a sample's outputs in the loss's dtype, where Keras 3 averages half dtypes in float32)
KEYWORDS: dict[str, dict[str, Any]] = {"tf-keras": {"keras2": True}}


def backend(kernels: str, loss: str) -> ModuleType:
    """The module that holds `kernels`' reproduction of `loss`."""
    return next((m for m in MORE.get(kernels, ()) if loss in m.TAKES), BACKENDS[kernels])


def batch_totals(kernels: str, loss: str, labels: Array, ignored: Array | None, half: Any,
                 params: dict[str, Any]) -> dict[str, Any]:
    """What `kernels` sum over a whole batch that lossgrad evaluates in slices, as parameters each slice's compute
    takes ({}: nothing, each slice is computed alone)."""
    totals = getattr(backend(kernels, loss), "batch_totals", None)
    return {} if totals is None else dict(totals(loss, labels, ignored, half, params))


def placed(kernels: str, loss: str, from_logits: bool, probability_rows: bool, dtype: str) -> bool:
    """Whether `kernels` compute a row by where it lies in the whole batch, in the dtype they run in, so that a
    block of it needs its place in the batch (Setup.batch's "place": its first row and the batch's rows)."""
    of = getattr(backend(kernels, loss), "placed", None)
    return of is not None and bool(of(loss, from_logits, probability_rows, dtype))


def unsupported(kernels: str, dtype: str, loss: str, from_logits: bool, params: dict[str, Any],
                switches: dict[str, bool], sample_weight: bool) -> str | None:
    """Why `kernels` are not reproduced for this loss, these options and this dtype (None: they are)."""
    module = backend(kernels, loss)
    if dtype not in getattr(module, "DTYPES", ("float32", "float16", "bfloat16")):
        return f"{dtype}"
    in_dtype = getattr(module, "unsupported_dtype", None)  # (a loss reproduced in some dtypes only)
    if in_dtype is not None and in_dtype(loss, dtype) is not None:
        return str(in_dtype(loss, dtype))
    in_mode = getattr(module, "unsupported_mode", None)  # (a mode, or sample weights, in some dtypes only)
    if in_mode is not None and in_mode(dtype, loss, from_logits, sample_weight) is not None:
        return str(in_mode(dtype, loss, from_logits, sample_weight))
    in_options = getattr(module, "unsupported_options", None)  # (options reproduced in some dtypes only)
    if in_options is not None and in_options(loss, dtype, params) is not None:
        return str(in_options(loss, dtype, params))
    if not hasattr(module, "unsupported"):  # (WEIGHABLE: the losses whose kernels weigh samples)
        return _beyond(module.TAKES[loss], loss, params, sample_weight and loss not in getattr(module, "WEIGHABLE", ()))
    why: str | None = module.unsupported(loss, from_logits, params, switches, sample_weight)
    in_mode = getattr(module, "unsupported_in", None)  # (a loss reproduced in some dtypes only, by its mode)
    return why if why is not None or in_mode is None else in_mode(dtype, loss, from_logits)


def _beyond(takes: tuple[str, ...], loss: str, params: dict[str, Any], sample_weight: bool) -> str | None:
    """The options set beyond those a loss's kernels take, as a refusal (None: none are)."""
    extra = [k for k, v in params.items() if not (v is None or v is False or (np.ndim(v) == 0 and v == 0))
             and k not in takes]
    if sample_weight:
        extra.append("sample_weight")
    return f"{loss} with {', '.join('{' + k + '}' for k in extra)}" if extra else None


def refused(kernels: str, dtype: str, loss: str) -> str | None:
    """Why the framework itself refuses this loss in this dtype, in its words (None: it computes it)."""
    why = getattr(BACKENDS[kernels], "refused", None)
    return None if why is None else why(loss, dtype)  # type: ignore[no-any-return]


def supported(kernels: str) -> str:
    """What the backend covers, for a message."""
    more = (s for m in MORE.get(kernels, ()) for s in getattr(m, "SUPPORTED", ()))
    return "; ".join([*BACKENDS[kernels].SUPPORTED, *more])


# the backends whose CPU code reads a subnormal input as zero (TensorFlow's: denormals-are-zero; XLA's does too at
# run time, but under jit it folds what depends on the targets alone at compile time, subnormals kept, and its
# kernels here model each operation as it runs)
DAZ = ("tf", "tf-keras")


def compute(kernels: str, loss: str, y: Array, p: Array, labels: Array | None, half: Any,
            switches: dict[str, bool], batchmean: bool, params: dict[str, Any], from_logits: bool = True,
            weights: Array | None = None, extra: dict[str, Array] | None = None) -> Parts:
    """The loss's parts as the backend's kernels give them (half None: float32); a loss on probabilities and
    the sample weights and the loss's further inputs (`extra`) are passed on only when there are (a backend that
    lacks them refuses them first)."""
    if kernels in DAZ:  # (the arrays as the kernels read them; the numbers the loss takes: Kind.number)
        y, p, weights = flush.daz(y), flush.daz(p), flush.daz(weights)
        extra = None if extra is None else {k: flush.daz(v) for k, v in extra.items()}
    more: dict[str, Any] = {} if from_logits else {"from_logits": False}
    if weights is not None:
        more["weights"] = weights
    if extra:
        more["extra"] = extra
    more.update(KEYWORDS.get(kernels, {}))
    parts: Parts = backend(kernels, loss).compute(loss, y, p, labels, half, switches, batchmean, params=params, **more)
    return parts

