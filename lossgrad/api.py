"""The Python API: a loss of in-memory arrays in one call, and the Result the command line renders too.

    >>> import lossgrad
    >>> r = lossgrad.bce([0, 1], [-2.0, 3.0], from_logits=True)
    >>> r.value, r.grad

`run(setup, batch)` is the one path from a Setup and a Batch to a Result: evaluate each slice, accumulate,
reduce, divide the gradient by the mean's N.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .cpu import using
from .errors import DomainError, NotReproduced, OptionError, fill
from .evaluation import SLICE_ROWS, Block, evaluate as evaluate_block
from .inputs import Batch, read_arrays, read_sequences
from .losses import LOSSES, Parts
from .options import Reduction, Setup, setup as make_setup, switch
from .reduction import (
    EMPTY_MEAN,
    Accumulator,
    ExactSum,
    Slices,
    leading_shape,
    micro_warnings,
    quotient,
    split_rows,
    warnings,
)


@dataclass
class Result:
    """A loss evaluated on a batch: what the CLI renders and the API returns."""

    loss: str
    convention: str
    from_logits: bool
    reduction: str
    dtype: str
    n: int | float  # what the mean divides by: the count of losses, or (weights) a sum of weights
    value: float | None
    losses: np.ndarray
    grad: np.ndarray
    grad_logits: np.ndarray | None = None
    prob: np.ndarray | None = None
    target: np.ndarray = field(default_factory=lambda: np.empty(0))  # the targets as used (ce: probability rows)
    labels: np.ndarray | None = None
    per_sample: bool = False  # one loss per sample (ce; Keras' mean over each sample's outputs), not per element
    warnings: list[str] = field(default_factory=list)
    weight_note: str | None = None  # what the mean divides by under sample weights
    # the gradient with respect to each extra input (gaussian-nll's var: grads["var"]), divided by the mean's N
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    autocast: bool = False  # `dtype` is the predictions' and the gradient's; the loss ran under a mixed policy
    jit: bool | None = None  # optax in a low-precision dtype: JAX's results under jit (True) or op by op (False)
    joined: int | None = None  # --over-batch: the batch's outputs, taken together as one sample (its one loss)

    def __repr__(self) -> str:
        return (
            f"Result(loss={self.loss!r}, convention={self.convention!r}, reduction={self.reduction!r}, "
            f"n={self.n}, value={self.value!r})"
        )


def accumulate(setup: Setup, acc: Accumulator, blocks: Sequence[Block]) -> None:
    if acc.slices is not None:
        acc.slices.add([b.parts for b in blocks])
    for b in blocks:
        if b.unnormalised is not None:
            acc.unnormalised.add(b.unnormalised, acc.rows)
        acc.add(b.parts.losses, b.parts.grad.shape[0], b.count, b.parts.grad, b.overflowed, b.parts.extra_grads)
        acc.notes.update(dict.fromkeys(b.parts.warnings))  # (a block streamed or held: each warning once)


def result_warnings(setup: Setup, acc: Accumulator) -> list[str]:
    hint = infinite_hint(setup) if not setup.from_logits or setup.loss.kind == "sequence" else ""
    why = setup.conv.nan_why.get(setup.loss.name, "")
    return _normalising(setup, acc) + _weights_total(setup, acc) + warnings(acc, setup.conv.title, hint, why,
                                                                             setup.reduction.value)


def infinite_hint(setup: Setup) -> str:
    """Why a loss on probabilities is infinite: a probability of 0 (or 1) where the target needs the other side;
    under a clipping convention in a half dtype, its clip's bound 1 − ε being 1 in that dtype (log(1 − p): bce's
    and focal's)."""
    eps = setup.conv.eps
    if eps is None or setup.half is None or setup.loss.name not in ("bce", "focal"):
        return setup.loss.zero_hint
    one = float(np.asarray(1 - eps, dtype=np.float32).astype(setup.half))
    if one < 1:
        return setup.loss.zero_hint
    return (f"a probability of exactly 1 for a target below 1: {setup.conv.title} clips to [ε, 1 − ε], but "
            f"1 − ε is 1 in {setup.dtype.value}, so log(1 − p) is log 0; pass logits with --from-logits")


def _weights_total(setup: Setup, acc: Accumulator) -> list[str]:
    """One line when PyTorch's mean over class weights is streamed in several blocks of rows: its kernels divide by
    their sums of the weights over the whole batch, which lossgrad forms over each block alone."""
    indexes = setup.loss.name == "nll" or setup.labels.value == "index"
    if not (setup.lowp and setup.conv.name == "torch" and indexes and setup.reduction is Reduction.MEAN
            and setup.params.get("class_weights") is not None and acc.pieces > 1):
        return []
    return ["the mean's gradient divides by lossgrad's sum of the class weights: a stream of several blocks of rows "
            "is evaluated block by block, and PyTorch's own sums over the whole batch, in its order, can differ in "
            "the last bit, more in gradient elements where the loss's two parts nearly cancel (label smoothing); "
            "give the batch as a tensor file for PyTorch's"]


def _normalising(setup: Setup, acc: Accumulator) -> list[str]:
    """One line when ce probability rows do not sum to 1: what this convention does with them."""
    k = acc.unnormalised.count
    if not k:
        return []
    row = (acc.unnormalised.first or (0, 0))[0]
    it = "them" if k > 1 else "it"
    what = (f"the {setup.conv.name} convention divides each row by its sum first (with class-index labels, after "
            "clipping each entry to [ε, 1 − ε])" if setup.conv.ce_probs == "keras"
            else f"the exact formula −Σ y·log p takes {it} as given (Keras divides each row by its sum first)")
    return [f"{k} probability row{'s' if k > 1 else ''} (first at row {row}) do{'es' if k == 1 else ''} not sum "
            f"to 1: {what}"]


def summary(setup: Setup, acc: Accumulator, per_sample: bool) -> Result:
    """The reduced value of what `acc` has seen, without the per-element arrays (batch mode writes those)."""
    value, _ = acc.finish(setup.reduction.value, setup.np_dtype)
    empty = np.empty(0)
    return Result(loss=setup.loss.name, convention=setup.conv.name, from_logits=setup.from_logits,
                  reduction=setup.reduction.value, dtype=setup.dtype.value, n=acc.n, value=value, losses=empty,
                  grad=empty, per_sample=per_sample, warnings=result_warnings(setup, acc) + list(acc.notes),
                  weight_note=setup.weight_note, autocast=setup.autocast, jit=setup.jit_mode)


def run(setup: Setup, batch: Batch) -> Result:
    """Evaluate a batch in memory and reduce it: the per-element losses, and gradients divided by the mean's N.
    A value outside the loss's domain is an InputError at the place the batch says it came from."""
    if setup.params.get("over_batch") and not batch.joined:
        return _over_batch(setup, batch)
    setup = setup.with_labels(batch.labels)
    try:
        blocks = evaluate_block(setup, batch.y, batch.p, batch.w, batch.extra)
    except DomainError as e:
        raise batch.error(e) from None
    acc = Accumulator()
    acc.slices = Slices(batch.p.shape[0])
    accumulate(setup, acc, blocks)
    r = summary(setup, acc, setup.per_sample_for(batch.p.shape[1]))
    _, divisor = acc.finish(setup.reduction.value, setup.np_dtype)
    r.losses = np.concatenate([b.parts.losses for b in blocks])
    r.value = batch_value(setup, acc.slices, divisor, r)
    with np.errstate(all="ignore"):  # (an infinite gradient over an infinite N is NaN: a result, warned of)
        kernel = any(b.parts.mean_grad is not None or b.parts.mean_extra_grads is not None for b in blocks)
        if kernel:  # (a kernel that brings 1/N in before it rounds)
            r.grad = np.concatenate([mean_part(b.parts, "grad", divisor) for b in blocks])
        else:
            r.grad = np.concatenate([b.parts.grad for b in blocks]) / _divisor(blocks[0].parts.grad, divisor)
        r.grad_logits = _scaled(_joined(blocks, "grad_logits"), divisor)
        r.grads = {k: np.concatenate([mean_part(b.parts, "grad_" + k, divisor) for b in blocks])
                   for k in blocks[0].parts.extra_grads or {}}
    r.warnings = [_empty_mean(setup, r, w) for w in r.warnings]
    r.prob = _joined(blocks, "prob")
    r.target = np.concatenate([b.target for b in blocks])
    r.labels = None if blocks[0].labels is None else np.concatenate([b.labels for b in blocks])  # type: ignore
    return r


def _empty_mean(setup: Setup, r: Result, warning: str) -> str:
    """The warning of a mean over no sample, told what the kernel made of it where that is not NaN throughout
    (Keras 3's mask weighs no sample N/0 but 0, divide_no_nan: value and gradient 0; tf-keras' N/0 is ∞, and 0·∞
    makes the value NaN, while no gradient reaches the left-out samples)."""
    if not warning.startswith(EMPTY_MEAN) or r.value is None or r.grad is None:
        return warning
    grad_nan = bool(np.isnan(r.grad).all())
    if math.isnan(r.value) and grad_nan:
        return warning
    return (f"{EMPTY_MEAN}: {setup.conv.title} gives the value {r.value:g} and a gradient of "
            f"{'NaN' if grad_nan else '0' if not r.grad.any() else 'these numbers'}")


def _joined(blocks: Sequence[Block], name: str) -> np.ndarray | None:
    arrays = [getattr(b.parts, name) for b in blocks]
    return None if arrays[0] is None else np.concatenate(arrays)


def batch_value(setup: Setup, slices: Slices, divisor: int | float, r: Result) -> float | None:
    """The reduced value of a batch evaluated in these slices: the kernel's, of a single slice (kernel_value), or
    over several from their value_parts folded in order (Parts.value_fold); else lossgrad's own sum (r.value), with a
    warning where the kernel sums otherwise."""
    first = slices.first
    if r.value is None or first is None:
        return r.value
    if slices.count == 1:
        return kernel_value(setup, first, divisor, r)
    if (fold := slices.folded()) is not None:
        try:
            return fold.value(divisor)
        except NotReproduced as e:
            r.warnings.append(f"the reduced value is lossgrad's own sum: {e.what.split('; use ')[0]}")
            return r.value
    if first.mean_value is not None:
        unknown = "; a stream's length is not known beforehand: give it as a file" if slices.rows is None else ""
        r.warnings.append(f"the reduced value is lossgrad's own sum: the batch is evaluated in {slices.count} parts "
                          f"(slices of up to {SLICE_ROWS} samples, or blocks of a file), and the kernel's sum over "
                          f"the whole batch is not reproduced from them{unknown}")
    return r.value


def kernel_value(setup: Setup, parts: Parts, divisor: int | float, r: Result) -> float | None:
    """The reduced value as the kernel sums it, in its order, not lossgrad's (r.value: lossgrad's, where the kernel
    gives none); where the kernel's sum is not reproduced for this shape, lossgrad's in float32 with a warning
    that says why, and an error in a half dtype."""
    if parts.mean_value is None:
        return r.value
    try:
        return parts.mean_value(divisor)
    except NotReproduced as e:
        if setup.half is not None:
            raise
        own = "own" if setup.dtype.value == "float64" else "float32"
        r.warnings.append(f"the reduced value is lossgrad's {own} sum: {e.what.split('; use ')[0]}")
        return r.value


def mean_part(parts: Parts, name: str, divisor: int | float) -> np.ndarray:
    """A block's gradient ("grad") or a further input's ("grad_var", ...) of the mean over `divisor`: the kernel's
    own where it brings 1/N in before it rounds (mean_grad, mean_extra_grads), else divided afterwards (and so a
    slice the kernels left to the float32 formulas beside slices they computed)."""
    if name == "grad":
        return parts.mean_grad(divisor) if parts.mean_grad is not None else parts.grad / _divisor(parts.grad, divisor)
    if parts.mean_extra_grads is not None:
        return parts.mean_extra_grads(divisor)[name[5:]]
    a = (parts.extra_grads or {})[name[5:]]
    return a / _divisor(a, divisor)


def _divisor(a: np.ndarray, divisor: int | float) -> Any:
    """The mean's N in the gradient's own dtype (float32 results stay float32)."""
    return a.dtype.type(divisor)


def _over_batch(setup: Setup, batch: Batch) -> Result:
    """--over-batch: the batch's samples joined into one, row after row, as Keras' axis=None and MONAI's
    batch=True take their sums over all of them; its one loss, and the gradients in the batch's own shape."""
    shape = batch.p.shape

    def locate(which: str, row: int, col: int) -> str:  # (the one row's column col: the batch's row and column)
        return batch.locate(which, *divmod(col, shape[1]))

    one = replace(batch, y=batch.y.reshape(1, -1), p=batch.p.reshape(1, -1), locate=locate, joined=True)
    r = run(setup, one)
    r.grad, r.target = r.grad.reshape(shape), r.target.reshape(batch.y.shape)
    r.prob = None if r.prob is None else r.prob.reshape(shape)
    r.grad_logits = None if r.grad_logits is None else r.grad_logits.reshape(shape)
    r.joined = batch.p.size
    return r


def _scaled(a: np.ndarray | None, divisor: int | float) -> np.ndarray | None:
    return a if a is None or divisor == 1 else a / _divisor(a, divisor)


def evaluate(loss: str, y: Any, p: Any, sample_weight: Any = None, cpu: str | None = None, **options: Any) -> Result:
    """The loss `loss` of predictions `p` against targets `y`, with its gradient.

    Options: from_logits, reduction ('mean', 'sum', 'none'), convention ('exact', 'keras', 'tf-keras', 'torch',
    'optax'), eps, dtype ('float64', 'float32', 'float16', 'bfloat16'), labels ('auto', 'index', 'onehot'), and
    the loss's own parameters (see lossgrad.LOSSES[loss].params) and extra inputs (LOSSES[loss].inputs:
    gaussian-nll's var=; their gradients are Result.grads[name]); `sample_weight`: one weight per sample, reduced as
    the convention does; autocast=True with a half dtype: the predictions are a mixed-precision model's, the loss
    runs under the convention's policy (lossgrad.autocast); `cpu`: 'avx512' or 'avx2', the processor whose
    framework kernels are reproduced (default: this machine's, lossgrad.cpu). Bad arguments raise OptionError or
    InputError (both ValueErrors)."""
    with using(cpu):
        return _evaluate(loss, y, p, sample_weight, **options)


def _evaluate(loss: str, y: Any, p: Any, sample_weight: Any, **options: Any) -> Result:
    if LOSSES.get(loss) is not None and LOSSES[loss].kind == "sequence":
        return ctc(y, p, sample_weight=sample_weight, **options)
    names = {i.name for i in LOSSES[loss].inputs} if loss in LOSSES else set()
    extra = {k: options.pop(k) for k in list(options) if k in names}
    s = make_setup(loss, sample_weight=sample_weight is not None, **options)
    batch = read_arrays(s.loss, y, p, sample_weight, extra)
    result = run(s, batch)
    result.warnings = [fill(w) for w in result.warnings]
    result.grad = result.grad.reshape(batch.shape)
    if result.grad_logits is not None:
        result.grad_logits = result.grad_logits.reshape(batch.shape)
    given = {k: np.shape(v) for k, v in extra.items()} | {"target": np.shape(y)}
    result.grads = {k: g.reshape(given[k]) for k, g in result.grads.items()}
    if not result.per_sample:
        result.losses = result.losses.reshape(batch.shape)
    elif len(batch.shape) > 2 and result.joined is None:  # one loss per row of the last axis: [B, T, C] -> [B, T]
        result.losses = result.losses.reshape(batch.shape[:-1])
    return result


def _public(name: str) -> Callable[..., Result]:
    def fn(y: Any, p: Any, *, from_logits: bool = False, reduction: str = "mean", convention: str = "exact",
           eps: float | None = None, dtype: str = "float64", sample_weight: Any = None, **kw: Any) -> Result:
        return evaluate(name, y, p, sample_weight=sample_weight, from_logits=from_logits, reduction=reduction,
                        convention=convention, eps=eps, dtype=dtype, **kw)

    fn.__name__ = fn.__qualname__ = name.replace("-", "_")
    fn.__doc__ = f"{LOSSES[name].summary}. Returns a Result with value, losses and grad."
    return fn


mse = _public("mse")
bce = _public("bce")
ce = _public("ce")
mae = _public("mae")
huber = _public("huber")
smooth_l1 = _public("smooth-l1")
logcosh = _public("logcosh")
hinge = _public("hinge")
squared_hinge = _public("squared-hinge")
nll = _public("nll")
kl = _public("kl")
poisson = _public("poisson")
focal = _public("focal")
cosine = _public("cosine")
gaussian_nll = _public("gaussian-nll")
triplet = _public("triplet")
margin_ranking = _public("margin-ranking")
cosine_embedding = _public("cosine-embedding")
categorical_focal = _public("categorical-focal")
dice = _public("dice")
tversky = _public("tversky")
contrastive = _public("contrastive")

# ---------------------------------------------------------------- gradient accumulation


@dataclass
class Micro:
    """A batch split into `k` equal micro-batches of `size` rows, as gradient accumulation splits it: each one's
    mean and N, the mean of those means (what a loop computes that averages each micro-batch and divides by k),
    the true mean over every counted sample, and the gradient the loop's loss has (each element's derivative over
    k·n of its micro-batch)."""

    k: int
    size: int
    counts: list[int | float]
    means: list[float]
    value: float  # the mean of the k means
    true_value: float  # the mean over all counted samples
    n: int | float  # the true mean's N
    grad: np.ndarray  # of `value`, shaped as the predictions (2-D)
    warnings: list[str] = field(default_factory=list)
    grad_logits: np.ndarray | None = None  # (bce and ce on probabilities) with respect to the logits behind them
    leading: tuple[int, ...] | None = None  # the samples' leading shape ([B, T] of a [B, T, V] tensor)
    per_sample: bool = True  # N counts samples (else elements)

    @property
    def unit(self) -> str:
        """What N counts: tokens (rows of a [B, T, V] tensor), samples or elements."""
        if not self.per_sample:
            return "elements"
        return "tokens" if self.leading is not None and len(self.leading) > 1 else "samples"

    @property
    def groups(self) -> str:
        """What each micro-batch holds: '2 samples', '2 sequences (10 rows)'."""
        if self.leading is None or len(self.leading) < 2:
            return f"{self.size} sample{'s' if self.size > 1 else ''}"
        first = self.leading[0] // self.k
        return f"{first} sequence{'s' if first > 1 else ''} ({self.size} rows)"

    @property
    def ratio(self) -> float:
        """value / true_value: how far the loop's loss is from the true mean."""
        with np.errstate(all="ignore"):
            return float(np.float64(self.value) / np.float64(self.true_value))

    def as_dict(self) -> dict[str, Any]:
        return {"k": self.k, "size": self.size, "n": self.counts, "means": self.means, "value": self.value,
                "true_value": self.true_value, "true_n": self.n, "ratio": self.ratio}


def micro_batches(setup: Setup, batch: Batch, k: int, leading: tuple[int, ...] | None = None,
                  whole: Result | None = None) -> Micro:
    """The batch's rows split into k equal contiguous micro-batches (`leading`: the samples' leading shape, whose
    first axis is split; a [B, T, V] tensor's is (B, T), taken from the batch's shape when it has 3 or more axes),
    each reduced by the setup's mean."""
    micro_needs_mean(setup)
    leading = leading or leading_shape(batch.shape, batch.p.shape[0])
    size = split_rows(batch.p.shape[0], k, leading)
    setup = setup.with_labels(batch.labels)
    whole = whole or run(setup, batch)
    raw = run(replace(setup, reduction=Reduction.SUM), batch)
    groups = [run(setup, _rows(batch, i * size, (i + 1) * size)) for i in range(k)]
    m = micro_summary(setup, size, groups, whole, leading)
    per_row = micro_divisors(m)
    m.grad = _over(raw.grad, per_row)
    m.grad_logits = None if raw.grad_logits is None else _over(raw.grad_logits, per_row)
    return m


# --micro-batches with --over-batch, refused
MICRO_OVER_BATCH = ("compares the mean of micro-batch means with the batch's mean of its samples' losses, and "
                    "{over_batch} gives the batch one loss: run each micro-batch on its own")


def micro_needs_mean(setup: Setup) -> None:
    if setup.params.get("over_batch"):
        raise OptionError("micro_batches", MICRO_OVER_BATCH)
    if setup.reduction is not Reduction.MEAN:
        raise OptionError("micro_batches", f"compares means, and {{reduction}} is {setup.reduction.value}: a sum "
                                           "does not depend on how the batch is split, a mean of means does")


def micro_summary(setup: Setup, size: int, groups: list[Result], whole: Result,
                  leading: tuple[int, ...] | None) -> Micro:
    """The micro-batches' means (each group's Result) beside the whole batch's mean; the gradient still empty."""
    k = len(groups)
    counts = [r.n for r in groups]
    means = [math.nan if r.value is None else r.value for r in groups]
    dtype = setup.np_dtype
    value = float(dtype(math.fsum(means) / k)) if all(map(math.isfinite, means)) else float(np.sum(means) / k)
    return Micro(k, size, counts, means, value, float(whole.value or 0.0), whole.n, np.empty(0),
                 micro_warnings(counts) + _group_warnings(groups, whole), None, leading, whole.per_sample)


def _group_warnings(groups: list[Result], whole: Result) -> list[str]:
    """What the micro-batches' own runs warn of beyond the whole batch's (a mean that is lossgrad's own sum in a
    micro-batch of a few samples), each once, with the micro-batches it applies to."""
    seen: dict[str, list[int]] = {}
    for i, r in enumerate(groups, 1):
        for w in r.warnings:
            if w not in whole.warnings:
                seen.setdefault(w, []).append(i)
    return [f"micro-batch{'es' if len(ix) > 1 else ''} {', '.join(map(str, ix))}: {w}" for w, ix in seen.items()]


def micro_divisors(m: Micro) -> np.ndarray:
    """What each row's unscaled derivative is divided by in the loop's loss: k·n of its micro-batch. One that
    counts nothing has every element left out or weighing 0, whose derivatives stay 0 (PyTorch's backward of its
    NaN mean gives them 0 too)."""
    return np.repeat([float(m.k * n) if n else 1.0 for n in m.counts], m.size)


def _over(a: np.ndarray, per_row: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return (a.reshape(per_row.size, -1) / per_row.astype(a.dtype)[:, None]).reshape(a.shape)


def evaluate_micro(loss: str, y: Any, p: Any, k: int, sample_weight: Any = None,
                   leading: tuple[int, ...] | None = None, **options: Any) -> Micro:
    """`lossgrad.evaluate`'s arrays and options split into k micro-batches (see `micro_batches`); y and p as the
    loss takes them, rows first (flatten a [B, T, V] tensor's logits to B·T rows and pass leading=(B, T))."""
    names = {i.name for i in LOSSES[loss].inputs} if loss in LOSSES else set()
    extra = {k: options.pop(k) for k in list(options) if k in names}  # (the loss's further inputs: other=, var=)
    s = make_setup(loss, sample_weight=sample_weight is not None, **options)
    m = micro_batches(s, read_arrays(s.loss, y, p, sample_weight, extra), k, leading)
    m.warnings = [fill(w) for w in m.warnings]
    return m


def _rows(batch: Batch, start: int, end: int) -> Batch:
    """Rows start to end of the batch, with their weights and the loss's further inputs (margin-ranking's other,
    gaussian-nll's var, ...)."""
    return replace(batch, y=batch.y[start:end], p=batch.p[start:end], w=None if batch.w is None else
                   batch.w[start:end], extra={k: v[start:end] for k, v in batch.extra.items()})


# ---------------------------------------------------------------- partial results that merge


@dataclass(frozen=True)
class Partial:
    """What a reduction needs of some samples, held exactly: the sum of their losses and the mean's N as exact
    sums (ExactSum), the samples, and how many losses were NaN, +inf or −inf. Partials of any split of a batch,
    merged in any order or grouping, give the same result to the last bit; they pickle, so they can come from
    other threads, processes or machines."""

    key: tuple[Any, ...]  # the loss and options it was computed under: only alike partials merge
    total: ExactSum
    n: ExactSum
    rows: int = 0
    nans: int = 0
    posinf: int = 0
    neginf: int = 0

    @property
    def count(self) -> float:
        """The mean's N (a count, or a sum of weights), rounded once."""
        return self.n.value


def partial(setup_or_loss: Setup | str, y: Any, p: Any, sample_weight: Any = None, **options: Any) -> Partial:
    """A Partial of the samples (y, p, sample_weight), under a Setup or a loss name with the options
    `lossgrad.evaluate` takes (`reduction` mean or sum)."""
    s = setup_or_loss if isinstance(setup_or_loss, Setup) else make_setup(
        setup_or_loss, sample_weight=sample_weight is not None, **options)
    if s.reduction is Reduction.NONE:
        raise OptionError("reduction", "is none, which keeps every loss: a partial result reduces (mean or sum)")
    batch = read_arrays(s.loss, y, p, sample_weight)
    s = s.with_labels(batch.labels)
    try:
        blocks = evaluate_block(s, batch.y, batch.p, batch.w)
    except DomainError as e:
        raise batch.error(e) from None
    key = (s.loss.name, s.conv.name, s.from_logits, s.reduction.value, s.dtype.value, s.batchmean,
           repr(sorted(s.params.items())), s.autocast)
    total, n = ExactSum(), ExactSum()
    nans = posinf = neginf = 0
    for b in blocks:
        losses = b.parts.losses
        total += ExactSum.of(losses)
        nans += int(np.isnan(losses).sum())
        posinf, neginf = posinf + int((losses == np.inf).sum()), neginf + int((losses == -np.inf).sum())
        if b.counts is not None:
            part = ExactSum.of(b.counts)
            n += ExactSum(part.num * b.count_per, part.exp)
        else:
            n += ExactSum(int(losses.size if b.count is None else b.count))
    return Partial(key, total, n, batch.p.shape[0], nans, posinf, neginf)


def merge(a: Partial, b: Partial) -> Partial:
    """The Partial of both: exact, so merge(merge(a, b), c) == merge(a, merge(b, c)) and merge(a, b) ==
    merge(b, a) to the last bit."""
    if a.key != b.key:
        raise OptionError("reduction", f"partials of different losses or options do not merge: {a.key} and {b.key}")
    return Partial(a.key, a.total + b.total, a.n + b.n, a.rows + b.rows, a.nans + b.nans, a.posinf + b.posinf,
                   a.neginf + b.neginf)


def finish(part: Partial) -> float:
    """The reduced value: the exact sum (or the exact sum over the exact N) rounded once, in the partial's dtype.
    A NaN loss, or +inf with −inf, gives NaN; an infinite loss gives that infinity."""
    if part.nans or (part.posinf and part.neginf):
        return math.nan
    value = part.total.value if part.key[3] == "sum" else quotient(part.total, part.n)
    if part.posinf or part.neginf:
        value = math.inf if part.posinf else -math.inf
        if part.key[3] == "mean" and part.n == ExactSum():
            value = math.nan
    return float(np.float32(value)) if part.key[4] == "float32" else value



def ctc(y: Any, p: Any, *, input_lengths: Any = None, target_lengths: Any = None, time_major: bool = False,
        from_logits: bool = False, reduction: str = "mean", convention: str = "exact", dtype: str = "float64",
        sample_weight: Any = None, cpu: str | None = None, **kw: Any) -> Result:
    """CTC of label sequences `y` given predictions `p` (log-probabilities, or logits with from_logits=True): one
    sequence as labels [L] and predictions [T, C], or a batch as padded labels [B, L], predictions [B, T, C] ([T, B,
    C] with time_major=True, as PyTorch lays them out) and each sequence's input and target lengths (default: all
    of T and L). Also blank (default 0) and zero_infinity; sample_weight, one weight per sequence, reduced as the
    convention weighs sequences; cpu, as evaluate's. Returns a Result: one loss per sequence, and grad (and prob,
    grad_logits) in the predictions' shape."""
    with using(cpu):
        return _ctc(y, p, input_lengths, target_lengths, switch("time_major", time_major), sample_weight,
                    from_logits=from_logits, reduction=reduction, convention=convention, dtype=dtype, **kw)


def _ctc(y: Any, p: Any, input_lengths: Any, target_lengths: Any, time_major: bool, sample_weight: Any,
         **kw: Any) -> Result:
    s = make_setup("ctc", sample_weight=sample_weight is not None, **kw)
    batch = read_sequences(y, p, input_lengths, target_lengths, time_major, sample_weight)
    r = run(s, batch)
    r.warnings = [fill(w) for w in r.warnings]
    packed = batch.shape if len(batch.shape) == 2 else (batch.p.shape[0], -1, batch.shape[-1])  # [B, T, C]
    for name in ("grad", "grad_logits", "prob"):
        a = getattr(r, name)
        if a is not None:
            a = a.reshape(packed)
            setattr(r, name, a.transpose(1, 0, 2) if time_major and a.ndim == 3 else a)
    return r

__all__ = ["Result", "evaluate", "run", "mse", "bce", "ce", "mae", "huber", "smooth_l1", "logcosh", "hinge",
           "squared_hinge", "nll", "kl", "poisson", "focal", "cosine", "gaussian_nll", "triplet", "margin_ranking",
           "cosine_embedding", "ctc", "categorical_focal", "dice", "tversky", "contrastive", "Micro", "micro_batches",
           "evaluate_micro", "Partial", "partial", "merge", "finish"]
