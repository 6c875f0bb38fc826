"""Evaluate: one block of samples under a Setup -> its losses and gradients, not yet reduced.

A pure function of (setup, targets, predictions, weights): no state between blocks, so blocks can be evaluated
in any order, on any thread or machine, and their sums merged (reduction.Accumulator). The steps, in order:
check the weights, lay out ce's targets (class indexes, ignore_index), find the class weights, cast to the
dtype, check the loss's domain, compute the loss, make one loss per sample where the loss or the convention does,
then leave out ignored samples and apply the weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import autocast
from .errors import DomainError, InputError, LossgradError, NotReproduced, OptionError, counted
from .inputs import SHORT_BATCH_ELEMENTS, SHORT_BATCH_ROWS, YNN_ROWS
from .losses import Parts
from .losses.base import Joined, Place, first_bad
from .losses.classification import unnormalised_rows
from .losses.ctc import mean_divisors
from .options import Labels, Reduction, Setup

# a block's samples are evaluated in slices of at most this many: a few dozen numpy passes over slices that stay
# in cache beat the same passes over the whole block
SLICE_ROWS = 32768
GRADS = ("grad", "grad_logits", "extra_grads")


@dataclass
class Block:
    """A slice of samples, evaluated: its parts, the targets as used (ce: probability rows), the class indexes
    when targets were given so, and what its samples add to the mean's N (None: one per loss)."""

    parts: Parts
    target: np.ndarray
    labels: np.ndarray | None
    count: float | None
    per_sample: bool
    overflowed: np.ndarray | None = None  # samples whose weight took a finite loss or gradient to infinity
    unnormalised: np.ndarray | None = None  # ce on probabilities: the rows that do not sum to 1
    counts: np.ndarray | None = None  # each sample's part of `count` when it is a sum of weights (times count_per)
    count_per: int = 1


def evaluate(setup: Setup, y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None,
             extra: dict[str, np.ndarray] | None = None, place: Place | None = None) -> list[Block]:
    """A block (2-D arrays, samples x columns; the loss's extra inputs as p) in slices of at most SLICE_ROWS
    samples; a DomainError carries the block's own row and column. `place`: where the block lies in the whole
    batch (None: it is the batch), which each slice's kernels are told of theirs (Setup.batch's "place")."""
    n = p.shape[0]
    out = []
    size = max(n, 1) if setup.loss.whole_batch else SLICE_ROWS
    bounds = spans(n, size, least_rows(p.shape[1] if p.ndim > 1 else 1))
    setup = with_batch_totals(setup, y, p.shape[1], bounds) if len(bounds) > 1 else setup
    first, rows = place or (0, n)
    for start, end in bounds:
        at = replace(setup, batch={**setup.batch, "place": (first + start, rows)})
        try:
            # (no numpy warnings: infinities and NaNs are results, reported as lossgrad's own warning lines)
            with np.errstate(all="ignore"):
                out.append(evaluate_slice(at, y[start:end], p[start:end], None if w is None else w[start:end],
                                          {k: a[start:end] for k, a in (extra or {}).items()}))
        except DomainError as e:
            e.row += start
            raise
    return out


def with_batch_totals(setup: Setup, y: np.ndarray, classes: int, bounds: list[tuple[int, int]]) -> Setup:
    """The set-up of a batch taken in these slices, with what its kernels sum over the whole batch (PyTorch's
    class-weighted mean divides by the weights of all its samples; Keras counts the samples ignore_index keeps,
    and tf-keras gathers them into one tensor): kernels.batch_totals of its class indexes. A
    set-up that has them (a tensor file's block of a batch) keeps them."""
    weighed = setup.reduction is Reduction.MEAN and setup.params.get("class_weights") is not None
    if setup.batch or not (setup.lowp and setup.rows_loss and setup.conv.kernels
                           and (weighed or setup.params.get("ignore_index") is not None)):
        return setup
    try:
        # (each slice's class indexes and left-out samples; its rows of class probabilities, as wide as the
        # vocabulary in float64, are dropped as soon as they are made: a batch of them is gigabytes)
        each = [targets(setup, y[start:end], classes)[1:] for start, end in bounds]
    except (DomainError, OptionError):
        return setup  # (the slices raise it again, at its place)
    if each[0][0] is None:
        return setup
    labels = np.concatenate([labels for labels, _ in each])
    ignored = None if each[0][1] is None else np.concatenate([ignored for _, ignored in each])
    from . import kernels  # (the backends load only where a low-precision kernel runs)
    half = None if setup.autocast else setup.half  # (autocast: the kernels run in float32)
    batch = kernels.batch_totals(setup.conv.kernels, setup.loss.name, labels, ignored, half, setup.kernel_params)
    return replace(setup, batch=batch) if batch else setup


def least_rows(width: int) -> int:
    """The fewest rows a slice of a longer batch may have, for rows of `width` values: a framework computes a short
    batch otherwise, by its rows (XLA: 32 or fewer, SHORT_BATCH_ROWS; and it hands 4,096 rows or more of probability
    rows to YNNPACK's fusions under jit in bfloat16) or by its elements (fewer than SHORT_BATCH_ELEMENTS)."""
    return max(SHORT_BATCH_ROWS, -(-SHORT_BATCH_ELEMENTS // max(width, 1)), YNN_ROWS)


def spans(total: int, step: int, least: int) -> list[tuple[int, int]]:
    """[start, end) of the rows 0..total in steps of `step`, a last span of fewer than `least` rows joined to the
    one before it (at least one span, empty when total is 0)."""
    starts = list(range(0, max(total, 1), step))
    if len(starts) > 1 and total - starts[-1] < least:
        starts.pop()
    return [(a, b) for a, b in zip(starts, [*starts[1:], max(total, 1)], strict=True)]


def evaluate_slice(setup: Setup, y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None,
                   extra: dict[str, np.ndarray] | None = None) -> Block:
    if setup.autocast:  # float32 on the predictions as the half dtype holds them; the gradient returned in it
        held = autocast.predictions(p, setup.half)
        too_large(setup, "pred", p, held)
        p = held
        block = evaluate_slice(setup.float32, y, p, w, extra)
        block.parts = autocast.returned(block.parts, setup.half)
        return block
    w = checked_weights(setup, w, p.shape[0])
    extra = extra_inputs(setup, extra or {}, p.shape)
    labels = ignored = class_w = count_w = None
    if setup.rows_loss:
        y, labels, ignored = targets(setup, y, p.shape[1])
        class_w, count_w = class_weights(setup, y, labels, p.shape[1])
        if class_w is not None and setup.lowp and w is None:  # (fit's sample weights: the kernels weigh them)
            w, class_w = class_w, None
    elif y.shape != p.shape and setup.loss.kind != "sequence":
        raise InputError("target", f"shape {y.shape} does not match the predictions' {p.shape}")
    else:
        check_pos_weight(setup, p.shape[1])
    y, p = cast(setup, y, p)
    setup.loss.check(y, p, setup.from_logits, **setup.switches, **extra)
    unnormalised = None
    if setup.loss.name == "ce" and not setup.from_logits:
        unnormalised = unnormalised_rows(p, divided=setup.conv.ce_probs == "keras")
    parts, weighed = compute(setup, y, p, labels, extra, w)
    parts = per_sample(setup, parts, p.shape[1])
    parts = sequence_mean(setup, parts, y)
    count: float | None = None
    counts, count_per = None, 1
    if ignored is not None:
        parts, count = leave_out(parts, ignored), int((~ignored).sum())
        count_w = None if count_w is None else np.where(ignored, 0, count_w)
    if class_w is not None:
        parts = weigh(parts, class_w)
    if count_w is not None:  # PyTorch's mean over class indexes divides by the sum of their weights
        counts = count_w.astype(parts.losses.dtype)
        count = float(np.sum(counts, dtype=np.float64))
    overflowed = None
    shown = (lambda q: _rounded_once(q, setup.half)) if setup.half is not None and not setup.lowp else None
    if w is not None:
        w = np.where(ignored, 0, w) if ignored is not None else w
        # (reproduced kernels weigh inside, where they round)
        finite = None if weighed else _finite_rows(parts, setup.half if shown else None)
        parts = parts if weighed else weigh(parts, w)
        parts = shown(parts) if shown else parts
        overflowed = _overflowed(parts, finite, lambda: _finite_rows(compute(setup, y, p, labels, extra)[0]))
        if setup.conv.sample_weight_mean == "sum-of-weights":
            count_per = parts.losses.shape[1] if parts.losses.ndim == 2 else 1
            counts, count = w, float(np.sum(w, dtype=np.float64)) * count_per
    elif shown:
        parts = shown(parts)
    return Block(parts, y, labels, count, setup.per_sample_for(p.shape[1]), overflowed, unnormalised, counts,
                 count_per)


def widened(parts: Parts) -> Parts:
    """float32 kernels' parts as the framework casts them back to float64: the reduced value is then taken in
    float64 (lossgrad's own sum), the gradient of the mean the kernel's."""
    own = parts.mean_grad
    return replace(parts, losses=parts.losses.astype(np.float64), grad=parts.grad.astype(np.float64),
                   prob=None if parts.prob is None else parts.prob.astype(np.float64), mean_value=None,
                   value_parts=None, value_fold=None,
                   mean_grad=None if own is None else (lambda n: own(n).astype(np.float64)))


def _overflowed(weighted: Parts, finite: np.ndarray | None, unweighted: Callable[[], np.ndarray]) -> np.ndarray:
    """The samples whose weight took a finite loss or gradient beyond the dtype's range. `finite`: the samples whose
    parts were finite before they were weighed, None where the kernels weighed them inside; then the kernel's own
    finite_unweighted, or (only where a weighted sample is not finite) `unweighted()`, from the parts computed again
    without weights."""
    broken = ~_finite_rows(weighted)
    if not broken.any():
        return broken
    if finite is None and weighted.finite_unweighted is not None:
        finite = weighted.finite_unweighted
    if finite is None:
        try:
            with np.errstate(all="ignore"):
                finite = unweighted()
        except LossgradError:  # (kernels that refuse these inputs unweighted: no weight is named)
            return np.zeros_like(broken)
    return finite & broken


def _finite_rows(parts: Parts, half: Any = None) -> np.ndarray:
    """Per sample: whether its losses and gradient are all finite (`half`: once rounded to that dtype)."""
    losses = parts.losses if parts.losses.ndim == 2 else parts.losses[:, None]
    grad = parts.grad
    if half is not None:
        with np.errstate(over="ignore"):
            losses, grad = losses.astype(half), grad.astype(half)
    return np.asarray(np.isfinite(losses).all(axis=1) & np.isfinite(grad).all(axis=1))


def checked_weights(setup: Setup, w: np.ndarray | None, samples: int) -> np.ndarray | None:
    """Per-sample weights: one per sample, finite and at least 0."""
    if not setup.sample_weight:
        return None
    if w is None:
        raise OptionError("sample_weight", "no weights came with the samples")
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    unit = "sequence" if setup.loss.kind == "sequence" else "sample"
    if w.size != samples:
        raise InputError("{sample_weight}", f"has {counted(w.size, 'weight')} but there are "
                                            f"{counted(samples, unit)}; give one per {unit}")
    first_bad("weight", ~(np.isfinite(w) & (w >= 0))[:, None], w[:, None],
              "is not a sample weight: weights are finite and at least 0")
    return w


def label_layout(setup: Setup, target_cols: int, classes: int) -> Labels:
    """Index or one-hot ce targets, from `target_cols` columns against `classes` prediction columns."""
    if setup.labels is Labels.INDEX or (setup.labels is Labels.AUTO and target_cols == 1 and classes != 1):
        if target_cols != 1:
            raise InputError("{labels}", f"index labels need one target column, got {target_cols}")
        return Labels.INDEX
    if target_cols != classes:
        hint = "; class indexes, one per sample, are read with {labels} index" if target_cols == 1 else ""
        raise InputError("{target}", f"one-hot/probability targets need one column per class ({classes}), got "
                                     f"{target_cols}{hint}")
    return Labels.ONEHOT


def _takes(setup: Setup, option: str) -> bool:
    """Whether the loss has `option` (an error suggests only options the loss takes)."""
    return any(p.name == option for p in setup.loss.params)


def targets(setup: Setup, y: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """ce targets as rows of class probabilities, the class indexes when given as such, and the samples left out
    by ignore_index (their rows are zeros, their index 0)."""
    ignore = setup.params.get("ignore_index")
    if label_layout(setup, y.shape[1], classes) is Labels.ONEHOT:
        if ignore is not None:
            raise OptionError("ignore_index", "applies to class-index targets, not one-hot/probability rows")
        if setup.loss.name not in setup.conv.index_targets:
            return y, None, None
        y = rows_as_indexes(setup, y)
    idx = y[:, 0]
    ignored = None if ignore is None else idx == ignore
    if ignored is not None:
        idx = np.where(ignored, 0, idx)
    bad = (idx != np.floor(idx)) | (idx < 0) | (idx >= classes)
    if bad.any():
        row = int(np.argmax(bad))
        raise DomainError("target", row, 0, float(idx[row]), f"is not a class index: an integer in [0, {classes})"
                          + ("" if ignore is not None or not _takes(setup, "ignore_index")
                             else " ({ignore_index} K leaves the samples of label K out)"))
    labels = idx.astype(np.intp)
    onehot = np.zeros((y.shape[0], classes))
    onehot[np.arange(y.shape[0]), labels] = 1
    if ignored is not None:
        onehot[ignored] = 0
    if setup.params.get("label_smoothing") and not setup.conv.sparse_smoothing:
        raise OptionError("label_smoothing", f"{setup.conv.title} has no label smoothing with class-index "
                          "targets (sparse_categorical_crossentropy); give one-hot targets")
    return onehot, labels, ignored


def rows_as_indexes(setup: Setup, y: np.ndarray) -> np.ndarray:
    """One-hot rows as the class index column of a convention whose loss takes class indexes only; a row that is
    not one-hot is a mode the framework lacks."""
    hot = (y == 1).sum(axis=1) == 1
    bad = ~(((y == 0) | (y == 1)).all(axis=1) & hot)
    if bad.any():
        row = int(np.argmax(bad))
        col = int(np.argmax((y[row] != 0) & (y[row] != 1))) if not hot[row] else 0
        raise DomainError("target", row, col, float(y[row, col]),
                          f"is in a row that is not one-hot, and {setup.conv.title} takes class indexes only for "
                          f"{setup.loss.name} (nll_loss has no probability-target mode); give class indexes or one-hot "
                          "rows")
    return np.argmax(y, axis=1).astype(np.float64)[:, None]


def class_weights(setup: Setup, y: np.ndarray, labels: np.ndarray | None,
                  classes: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The per-sample weights that class_weights make, and the weights whose sum is the mean's N (None: N).

    Keras' fit(class_weight=...) turns them into sample weights in floatx (float32): a sample weighs its class's
    weight, a one-hot or soft row its argmax class's (np.argmax and tf.argmax: the first of equal maxima).
    PyTorch weighs each class's term inside the loss (the loss's compute does it), and its mean over class
    indexes divides by the sum of the samples' class weights."""
    w = setup.params.get("class_weights")
    if w is None:
        return None, None
    if w.size != classes:
        raise OptionError("class_weights", f"has {counted(w.size, 'weight')} but the predictions have "
                                            f"{counted(classes, 'class', 'classes')}")
    if setup.conv.class_weights == "n":
        cls = labels if labels is not None else np.argmax(y, axis=1)
        return w.astype(np.float32).astype(np.float64)[cls], None
    return None, None if labels is None else w[labels]


def extra_inputs(setup: Setup, extra: dict[str, np.ndarray], shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The loss's extra inputs, each shaped like the predictions (or one column, where one per sample may stand
    for a sample's outputs), in the dtype; one missing, misshapen or too large for the dtype is an error."""
    out = {}
    for i in setup.loss.inputs:
        a = extra.get(i.name)
        if a is None:
            raise OptionError(i.name, f"is required: {setup.loss.name} takes {i.help[0].lower()}{i.help[1:]}")
        if not ((i.per_prediction and a.shape == shape) or (i.per_sample and a.shape == (shape[0], 1))):
            raise InputError(f"{{{i.name}}}", f"has shape {a.shape} but the predictions {shape}; give "
                                              f"{i.forms(f'{shape[0]} x 1')}")
        with np.errstate(over="ignore"):
            out[i.name] = a.astype(setup.np_dtype)
        too_large(setup, i.name, a, out[i.name])
    return out


def check_pos_weight(setup: Setup, outputs: int) -> None:
    pw = setup.params.get("pos_weight")
    if pw is not None and pw.size not in (1, outputs):
        raise OptionError("pos_weight", f"has {counted(pw.size, 'weight')}; give one, or one per output column "
                                        f"({outputs})")


def cast(setup: Setup, y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs rounded to the dtype; a value too large for it is a domain error."""
    dtype = setup.np_dtype
    if setup.half is not None:  # (half values are carried in float32 arrays)
        held, p = cast_to(setup, y, p, dtype)
        y = y if setup.loss.kind == "sequence" else held  # (a sequence's lengths and labels are counts, not values)
        return y.astype(np.float32), p.astype(np.float32)
    if dtype is not np.float64:
        return cast_to(setup, y, p, dtype)
    return y.astype(dtype, copy=False), p.astype(dtype, copy=False)


def cast_to(setup: Setup, y: np.ndarray, p: np.ndarray, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inputs rounded to `dtype`; a value too large for it is a domain error."""
    with np.errstate(over="ignore"):
        held_y, held_p = y.astype(dtype), p.astype(dtype)
    too_large(setup, "target", y, held_y)
    too_large(setup, "pred", p, held_p)
    return held_y, held_p


def too_large(setup: Setup, which: str, given: np.ndarray, held: np.ndarray) -> None:
    """A value the dtype holds as ±inf (the given values are finite) is a domain error that shows the value as
    given and the dtype's largest finite number."""
    name = setup.dtype.value
    if name == "bfloat16":
        import ml_dtypes

        largest = float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)
    else:
        largest = float(np.finfo(np.dtype(name)).max)
    finite = np.isfinite(held if held.dtype.kind == "f" else held.astype(np.float32))  # (bfloat16 through float32)
    first_bad(which, ~finite, given,
              f"is too large for {name}, whose largest finite number is {largest:.8g}")


def _kernels_dtype(setup: Setup) -> bool:
    """Whether the convention's kernels run in this dtype for this loss (float32; float64 where they cover it too:
    Convention.kernels_float64), so that options they lack leave lossgrad's formulas, with a warning."""
    dtype = setup.dtype.value
    return dtype == "float32" or (dtype == "float64" and setup.loss.name in setup.conv.kernels_float64)


def _without_mkl(setup: Setup) -> bool:
    """float64 kernels that lack only MKL's functions: there float64 is lossgrad's formulas without a word, as
    float64 is the default dtype (the README says how to get them)."""
    from .mkl import INSTALL

    return setup.dtype.value == "float64" and INSTALL in (setup.kernels_lacking or "")


def lacking(setup: Setup) -> str:
    """Why the convention's kernels are not reproduced here, as a warning says it."""
    from . import kernels
    from .mkl import INSTALL  # (the kernels lack only MKL's e^x, log x or √x: that says how to get them)

    why = setup.kernels_lacking or ""
    return why if INSTALL in why else f"{kernels.TITLES[setup.conv.kernels or '']} kernels are not reproduced for {why}"


def compute(setup: Setup, y: np.ndarray, p: np.ndarray, labels: np.ndarray | None,
            extra: dict[str, np.ndarray] | None = None, w: np.ndarray | None = None) -> tuple[Parts, bool]:
    """The loss's parts in its working dtype, returned in the setup's dtype, and whether they are weighed by the
    sample weights w already (by reproduced kernels, where they round; lossgrad's formulas, here where the kernels
    turned out not to be reproduced too, leave it to the caller)."""
    fallback = None
    if setup.lowp:
        from . import kernels  # (the backends load only where a low-precision kernel runs)
        try:
            parts = kernels.compute(setup.conv.kernels or "", setup.loss.name, y, p, labels, setup.half,
                                    setup.kernel_switches, setup.batchmean, {**setup.kernel_params, **setup.batch},
                                    from_logits=setup.from_logits, weights=w, extra=extra)
            return (widened(parts) if setup.float32_kernels else parts), True
        except NotReproduced as e:
            if setup.half is not None:
                raise  # (float32: the formulas below, as where the kernels are not reproduced at all)
            fallback = f"computed by lossgrad's {setup.dtype.value} formulas, not bit for bit: {e.what}"
    elif _kernels_dtype(setup) and setup.kernels_lacking is not None and not _without_mkl(setup):
        fallback = f"computed by lossgrad's {setup.dtype.value} formulas, not bit for bit: {lacking(setup)}"
    work = setup.work_dtype
    params = setup.params
    if params.get("class_weights") is not None and setup.conv.class_weights == "n":
        params = {**params, "class_weights": None}  # sample weights (class_weights above), not the loss's own
    # (contiguous rows: numpy's sums take another order over a strided view, and a CSV block's columns are one)
    y, p = np.ascontiguousarray(y, dtype=work), np.ascontiguousarray(p, dtype=work)
    with np.errstate(over="ignore", under="ignore"):
        parts = setup.loss.compute(y, p, setup.from_logits,
                                   setup.conv, labels, **params,
                                   **{k: a.astype(work, copy=False) for k, a in (extra or {}).items()})
    parts.warnings += [fallback] if fallback else []
    if setup.half is not None:
        return parts, False  # (rounded once, after the weights: evaluate_slice)
    if work is not setup.np_dtype:
        parts = _map(parts, ("losses", "grad", "grad_logits", "prob", "extra_grads"),
                     lambda a: a.astype(setup.np_dtype))
    return parts, False


def _rounded_once(parts: Parts, half: Any) -> Parts:
    """The exact parts rounded once to the half dtype (carried in float32); the mean's gradient and value divided
    before they are rounded."""
    unit, total = parts.grad, float(np.sum(parts.losses, dtype=np.float64))

    def rounded(a: np.ndarray) -> np.ndarray:
        return np.asarray(a).astype(half).astype(np.float32)

    extra = dict(parts.extra_grads or {})
    parts = _map(parts, ("losses", "grad", "grad_logits", "prob", "extra_grads"), rounded)
    parts.mean_grad = lambda n: rounded(unit / n)
    if extra:  # (a further input's gradient likewise: divided, then rounded once)
        parts.mean_extra_grads = lambda n: {k: rounded(v / n) for k, v in extra.items()}
    parts.mean_value = lambda n: float(rounded(np.asarray(total / n)))  # (the sum of the unrounded losses)
    # (over a batch's slices: their sums of the unrounded losses, added exactly)
    parts.value_parts = {"sum": np.array([total])}
    parts.value_fold = lambda rows: Joined(lambda sums, n: float(rounded(np.asarray(math.fsum(sums["sum"]) / n))))
    return parts


def per_sample(setup: Setup, parts: Parts, outputs: int) -> Parts:
    """One loss per sample where the loss is a divergence of whole rows (kl: the terms summed), or where the
    convention averages a sample's outputs first (Keras: its elements are samples, each derivative carries 1/k)."""
    if setup.loss.last_axis == "sum" and not setup.keeps_elements:
        if parts.losses.ndim == 2:
            parts.losses = parts.losses.sum(axis=1)
    elif (setup.loss.last_axis is None and setup.conv.last_axis_mean and not setup.rows_loss and outputs > 1
          and not setup.lowp):  # (a kernel backend takes the mean over the outputs itself, as the framework does)
        k = parts.grad.dtype.type(outputs)
        parts.losses = parts.losses.sum(axis=1) / k
        parts = _map(parts, GRADS, lambda a: a / k)
    return parts


def sequence_mean(setup: Setup, parts: Parts, y: np.ndarray) -> Parts:
    """Sequence losses whose convention's mean divides each loss by a length of its own first (PyTorch's ctc: the
    target length), before the mean over the batch."""
    if setup.loss.kind != "sequence" or setup.reduction is not Reduction.MEAN:
        return parts
    d = mean_divisors(setup.conv, y)
    if d is None:
        return parts
    if parts.divided is not None:
        return parts.divided(d)
    d = d.astype(parts.losses.dtype)
    parts.losses = parts.losses / d
    return _map(parts, GRADS, lambda a: a / d[:, None])


def leave_out(parts: Parts, ignored: np.ndarray) -> Parts:
    """Samples left out (ignore_index): loss and gradient 0."""
    keep = ~ignored
    parts.losses = np.where(keep, parts.losses, 0)
    return _map(parts, GRADS, lambda a: np.where(keep[:, None], a, 0))


def weigh(parts: Parts, w: np.ndarray) -> Parts:
    """Each sample's loss and gradient times its weight."""
    wt = w.astype(parts.losses.dtype)
    parts.losses = parts.losses * (wt[:, None] if parts.losses.ndim == 2 else wt)
    return _map(parts, GRADS, lambda a: a * wt[:, None])


def _map(parts: Parts, names: tuple[str, ...], fn: Any) -> Parts:
    """`fn` applied to each named array of `parts` (and to each extra input's gradient)."""
    for name in names:
        a = getattr(parts, name)
        if isinstance(a, dict):
            setattr(parts, name, {k: fn(v) for k, v in a.items()})
        elif a is not None:
            setattr(parts, name, fn(a))
    return parts
