"""The Python API: a loss of in-memory arrays in one call, and the Result the command line renders too.

    >>> import lossgrad
    >>> r = lossgrad.bce([0, 1], [-2.0, 3.0], from_logits=True)
    >>> r.value, r.grad

`run(setup, batch)` is the one path from a Setup and a Batch to a Result: evaluate each slice, accumulate,
reduce, divide the gradient by the mean's N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DomainError, fill
from .evaluation import Block, evaluate as evaluate_block
from .inputs import Batch, read_arrays
from .losses import LOSSES
from .options import Setup, setup as make_setup
from .reduction import Accumulator, warnings


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

    def __repr__(self) -> str:
        return (
            f"Result(loss={self.loss!r}, convention={self.convention!r}, reduction={self.reduction!r}, "
            f"n={self.n}, value={self.value!r})"
        )


def accumulate(setup: Setup, acc: Accumulator, blocks: Sequence[Block]) -> None:
    for b in blocks:
        if b.unnormalised is not None:
            acc.unnormalised.add(b.unnormalised, acc.rows)
        acc.add(b.parts.losses, b.parts.grad.shape[0], b.count, b.parts.grad, b.overflowed)


def result_warnings(setup: Setup, acc: Accumulator) -> list[str]:
    hint = setup.loss.zero_hint if not setup.from_logits else ""
    return _normalising(setup, acc) + warnings(acc, setup.conv.title, hint, setup.conv.nan_why.get(setup.loss.name, ""),
                                                setup.reduction.value)


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
                  grad=empty, per_sample=per_sample, warnings=result_warnings(setup, acc),
                  weight_note=setup.weight_note)


def run(setup: Setup, batch: Batch) -> Result:
    """Evaluate a batch in memory and reduce it: the per-element losses, and gradients divided by the mean's N.
    A value outside the loss's domain is an InputError at the place the batch says it came from."""
    setup = setup.with_labels(batch.labels)
    try:
        blocks = evaluate_block(setup, batch.y, batch.p, batch.w)
    except DomainError as e:
        raise batch.error(e) from None
    acc = Accumulator()
    accumulate(setup, acc, blocks)
    r = summary(setup, acc, setup.per_sample_for(batch.p.shape[1]))
    _, divisor = acc.finish(setup.reduction.value, setup.np_dtype)
    r.losses = np.concatenate([b.parts.losses for b in blocks])
    with np.errstate(all="ignore"):  # (an infinite gradient over an infinite N is NaN: a result, warned of)
        r.grad = np.concatenate([b.parts.grad for b in blocks]) / _divisor(blocks[0].parts.grad, divisor)
        r.grad_logits = _scaled(_joined(blocks, "grad_logits"), divisor)
    r.prob = _joined(blocks, "prob")
    r.target = np.concatenate([b.target for b in blocks])
    r.labels = None if blocks[0].labels is None else np.concatenate([b.labels for b in blocks])  # type: ignore
    return r


def _joined(blocks: Sequence[Block], name: str) -> np.ndarray | None:
    arrays = [getattr(b.parts, name) for b in blocks]
    return None if arrays[0] is None else np.concatenate(arrays)


def _divisor(a: np.ndarray, divisor: int | float) -> Any:
    """The mean's N in the gradient's own dtype (float32 results stay float32)."""
    return a.dtype.type(divisor)


def _scaled(a: np.ndarray | None, divisor: int | float) -> np.ndarray | None:
    return a if a is None or divisor == 1 else a / _divisor(a, divisor)


def evaluate(loss: str, y: Any, p: Any, sample_weight: Any = None, **options: Any) -> Result:
    """The loss `loss` of predictions `p` against targets `y`, with its gradient.

    Options: from_logits, reduction ('mean', 'sum', 'none'), convention ('exact', 'keras', 'tf-keras', 'torch',
    'optax'), eps, dtype ('float64', 'float32'), labels ('auto', 'index', 'onehot'), and the loss's own
    parameters (see lossgrad.LOSSES[loss].params); `sample_weight`: one weight per sample, reduced as the
    convention does. Bad arguments raise OptionError or InputError (both ValueErrors)."""
    s = make_setup(loss, sample_weight=sample_weight is not None, **options)
    batch = read_arrays(s.loss, y, p, sample_weight)
    result = run(s, batch)
    result.warnings = [fill(w) for w in result.warnings]
    result.grad = result.grad.reshape(batch.shape)
    if result.grad_logits is not None:
        result.grad_logits = result.grad_logits.reshape(batch.shape)
    if not result.per_sample:
        result.losses = result.losses.reshape(batch.shape)
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
categorical_focal = _public("categorical-focal")
dice = _public("dice")
tversky = _public("tversky")

__all__ = ["Result", "evaluate", "run", "mse", "bce", "ce", "mae", "huber", "smooth_l1", "logcosh", "hinge",
           "squared_hinge", "nll", "kl", "poisson", "focal", "cosine", "categorical_focal",
           "dice", "tversky"]
