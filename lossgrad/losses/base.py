"""What every loss provides, and the registry the CLI and the API read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import DomainError


@dataclass
class Parts:
    """One batch of a loss, before reduction.

    losses: per element (elementwise losses) or per sample (row losses such as ce).
    grad: derivative of the *sum* of `losses` with respect to the predictions as given (same shape).
    grad_logits: for losses on probabilities, the derivative with respect to the logits behind them.
    prob: sigmoid/softmax of the logits, when the predictions are logits.
    """

    losses: np.ndarray
    grad: np.ndarray
    grad_logits: np.ndarray | None = None
    prob: np.ndarray | None = None


def sign_mask(cond: np.ndarray, dtype) -> np.ndarray:
    """`cond` as integers as wide as `dtype`'s floats: all bits set where True, none where False (for select).
    Floats with no integer of their width (long double) keep `cond` itself, and select falls back to np.where."""
    size = np.dtype(dtype).itemsize
    if size not in (2, 4, 8):
        return cond
    m = cond.view(np.int8).astype(np.dtype(f"i{size}"))
    return np.negative(m, out=m)


def select(mask: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.where(cond, a, b) for floats of one dtype, bit for bit (signed zeros too), with `mask` from sign_mask.

    Branch-free: np.where branches per element, and on a sign that changes at random (z >= 0) it costs four
    times as much as these three integer passes."""
    if mask.dtype == bool:
        return np.where(mask, a, b)
    ints = mask.dtype
    bi = b.view(ints)
    out = np.bitwise_xor(a.view(ints), bi)
    out &= mask
    out ^= bi
    return out.view(a.dtype)


def first_bad(which: str, bad: np.ndarray, values: np.ndarray, what: str) -> None:
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


@dataclass(frozen=True)
class Loss:
    """A loss as the rest of lossgrad sees it.

    kind: "elementwise" (targets and predictions have the same shape, one loss per element, N = elements)
          or "rows" (one loss per sample row over C classes, N = samples; targets may be class indexes).
    compute(y, p, from_logits, conv, labels=None, **params) -> Parts, on 2-D arrays (samples x outputs).
    check(y, p, from_logits) raises DomainError for inputs outside the loss's domain.
    formulas(from_logits, conv, **params) -> list of lines for --explain.
    params: the numbers the loss takes (Param), passed to compute and formulas by name.
    last_axis: how an "elementwise" loss makes one value per sample: None (per element; Keras averages a sample's
          outputs), "sum" (compute gives per-element terms, summed over each sample's outputs: kl) or "vector"
          (compute gives one loss per sample from the whole row: cosine).
    """

    name: str
    summary: str
    kind: str
    compute: Callable
    check: Callable
    formulas: Callable
    has_logits: bool
    reference: str
    params: tuple = ()
    last_axis: str | None = None
    # why a loss on probabilities (or rates) can be infinite, and what to do: the warning shown when one is
    zero_hint: str = ""
    # what --from-logits predictions stand for: "sigmoid" or "softmax" of them (probabilities), "exp" (rates)
    link: str | None = None


LOSSES: dict[str, Loss] = {}


def register(loss: Loss) -> Loss:
    LOSSES[loss.name] = loss
    return loss


def xlogy(x: np.ndarray, logv: np.ndarray) -> np.ndarray:
    """x * logv with 0 * log(0) taken as 0 (a zero-weight term contributes nothing, even at p = 0)."""
    with np.errstate(invalid="ignore"):
        return np.where(x == 0, 0, x * logv)
