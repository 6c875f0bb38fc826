"""What every loss provides, and the registry the CLI and the API read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, SupportsFloat

import numpy as np

from ..errors import DomainError
from ._ops import Array

# (mask over the predictions, text(index)[, the largest relative difference it explains: one number, or an array
# of one per element]): one way a convention's numbers depart from the exact mathematics, for `lossgrad check`
Reason = tuple[Any, ...]
Reasons = Callable[..., list[Reason]]

SMALL = 1e-3  # a reason tagged with it explains only differences below this relative size
# where a slice of samples lies in the whole batch: its first row and the batch's rows (None: not known
# beforehand, a stream's); a kernel that lays its work out over the whole batch reads it (Setup.batch's "place")
Place = tuple[int, int | None]


def _g(x: SupportsFloat) -> str:
    """A number in a reason's text."""
    return f"{x:.3g}"


@dataclass
class Parts:
    """One batch of a loss, before reduction.

    losses: per element (elementwise losses) or per sample (row losses such as ce).
    grad: derivative of the *sum* of `losses` with respect to the predictions as given (same shape).
    grad_logits: for losses on probabilities, the derivative with respect to the logits behind them.
    prob: sigmoid/softmax of the logits, when the predictions are logits.
    mean_grad: the gradient of the mean over N, given N, where a kernel brings 1/N in before it rounds (PyTorch's
    nll_loss and mse_loss backward): dividing `grad` by N afterwards would round differently. None: grad / N.
    """

    losses: Array
    grad: Array
    grad_logits: Array | None = None
    prob: Array | None = None
    # derivative of the sum of `losses` with respect to each extra input (Loss.inputs), by name, in its shape
    extra_grads: dict[str, Array] | None = None
    mean_grad: Callable[[float], Array] | None = None
    mean_value: Callable[[float], float] | None = None  # the reduced value over N (1: the sum), as the kernel sums
    warnings: list[str] = field(default_factory=list)  # what a kernel did that the user should know of
    # the extra inputs' gradients of the mean over N, where a kernel brings 1/N in before it rounds (as mean_grad)
    mean_extra_grads: Callable[[float], dict[str, Array]] | None = None
    # the parts with each sample's loss divided by its own divisor first, as a kernel divides them before its mean
    # (PyTorch's ctc: by the target lengths); None: divided here
    divided: Callable[[Array], Parts] | None = None
    # a value the kernel forms over the whole batch from arrays of each slice (value_parts: rows, one per sample,
    # or the slice's own sums): value_fold, given the batch's number of samples (None: not known beforehand), takes
    # every slice's value_parts in order and gives it (None: it cannot without that number)
    value_parts: dict[str, Array] | None = None
    value_fold: Callable[[int | None], Fold | None] | None = None
    # per sample, whether its losses were finite before a kernel that weighs inside took its weight (None: the
    # kernel did not weigh them): an infinite weighted loss there is the weight's overflow, not the loss's
    finite_unweighted: Array | None = None


class Fold(Protocol):
    """A batch's reduced value, formed from its slices' value_parts as they come; `holds`: whether it keeps them
    (its memory grows with the batch)."""

    holds: bool

    def add(self, parts: dict[str, Array]) -> None: ...

    def value(self, n: float) -> float:
        """The value over N = n (1: the sum)."""


def joined(parts: dict[str, Array], of: Callable[[dict[str, Array], float], float]) -> dict[str, Any]:
    """Parts' mean_value, value_parts and value_fold for a value `of(parts, n)` of arrays of rows, one per sample:
    over these parts alone, and over a batch's slices' parts joined (Joined)."""
    return {"mean_value": lambda n: of(parts, n), "value_parts": parts, "value_fold": lambda rows: Joined(of)}


@dataclass
class Joined:
    """A batch's value from its slices' value_parts, every slice's kept and joined in order (`of`: the value of
    the pieces of a batch)."""

    of: Callable[[dict[str, Array], float], float]
    pieces: list[dict[str, Array]] = field(default_factory=list)
    holds: bool = True

    def add(self, parts: dict[str, Array]) -> None:
        self.pieces.append(parts)

    def value(self, n: float) -> float:
        return self.of({k: np.concatenate([p[k] for p in self.pieces]) for k in self.pieces[0]}, n)


def first_bad(which: str, bad: Array, values: Array, what: str) -> None:
    """Raise DomainError at the first True of `bad` (a 2-D mask over `values`)."""
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DomainError(which, int(row), int(col), float(values[row, col]), what)


@dataclass(frozen=True)
class Param:
    """A number a loss takes besides its inputs (huber's delta): its option is --NAME."""

    name: str
    default: float | None
    help: str
    positive: bool = True  # must be > 0 (else >= 0)
    integer: bool = False  # a class index (any sign), not a size
    vector: bool = False  # numbers separated by commas (one per class), not one number
    flag: bool = False  # an on/off switch (--log-input), not a number
    fraction: bool = False  # in [0, 1] (focal's α, label smoothing), not any size
    signed: bool = False  # any finite number, negative too (a margin PyTorch takes below 0), not a size


@dataclass(frozen=True)
class Input:
    """An array a loss takes besides the targets and predictions (gaussian-nll's variances): its option is --NAME,
    numbers as --pred takes them (or, with --csv, columns as --pred-cols); the API takes it as NAME=array.

    per_sample: one value per sample may stand for all of a sample's outputs (a column that broadcasts);
    per_prediction: one value per prediction may be given (a pair's label may not: it is one per sample)."""

    name: str
    help: str
    per_sample: bool = False
    differentiated: bool = True  # the loss gives its gradient (a label is not differentiated)
    per_prediction: bool = True

    def forms(self, per_sample: str) -> str:
        """The shapes it may take, for a message (`per_sample`: the samples' shape, in words)."""
        if not self.per_prediction:
            return f"one per sample ({per_sample})"
        return "one per prediction" + (f", or one per sample ({per_sample})" if self.per_sample else "")


@dataclass(frozen=True)
class Loss:
    """A loss as the rest of lossgrad sees it.

    kind: "elementwise" (targets and predictions have the same shape, one loss per element, N = elements)
          or "rows" (one loss per sample row over C classes, N = samples; targets may be class indexes).
    compute(y, p, from_logits, conv, labels=None, **params) -> Parts, on 2-D arrays (samples x outputs).
    check(y, p, from_logits) raises DomainError for inputs outside the loss's domain.
    formulas(from_logits, conv, **params) -> list of lines for --explain.
    reasons(conv, y2, p2, from_logits, labels) -> list of Reason: where and why a convention departs from the exact
          numbers (for diagnose; None: it never does, or not in ways worth naming).
    params: the numbers the loss takes (Param), passed to compute and formulas by name.
    last_axis: how an "elementwise" loss makes one value per sample: None (per element; Keras averages a sample's
          outputs), "sum" (compute gives per-element terms, summed over each sample's outputs: kl) or "vector"
          (compute gives one loss per sample from the whole row: cosine).
    """

    name: str
    summary: str
    kind: str
    compute: Callable[..., Parts]
    check: Callable[..., None]
    formulas: Callable[..., list[str]]
    has_logits: bool
    reference: str
    params: tuple[Param, ...] = ()
    last_axis: str | None = None
    # why a loss on probabilities (or rates) can be infinite, and what to do: the warning shown when one is
    zero_hint: str = ""
    # what --from-logits predictions stand for: "sigmoid" or "softmax" of them (probabilities), "exp" (rates)
    link: str | None = None
    # reasons(conv, y2, p2, from_logits, labels) -> [Reason]: why `conv`'s numbers differ from the exact ones
    reasons: Reasons | None = None
    # the arrays it takes besides targets and predictions, shaped like the predictions (compute and check take
    # them by name, sliced with the predictions; the gradient with respect to each is Parts.extra_grads[name])
    inputs: tuple[Input, ...] = ()
    # the loss gives the gradient with respect to its targets too (Parts.extra_grads["target"]: embeddings)
    target_grad: bool = False
    # each sample's loss depends on every sample (contrastive): the batch is evaluated at once, never streamed
    whole_batch: bool = False


LOSSES: dict[str, Loss] = {}


def register(loss: Loss) -> Loss:
    LOSSES[loss.name] = loss
    return loss

