"""Reduce: how the losses of every block become one value, what N is, and the factor the gradient carries.

`mean` divides by N (elements for elementwise losses, samples for row losses, or a sum of weights), `sum` does
not, `none` keeps the losses and reports each element's own derivative. An Accumulator takes blocks in order:
numpy's pairwise sum within a block, Neumaier's compensated sum across blocks, so the result does not depend on
the block size; two accumulators over consecutive parts of an input merge into the one over both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .errors import OptionError, counted

if TYPE_CHECKING:
    from .losses._ops import Array
    from .losses.base import Fold, Parts

REDUCTIONS = ("mean", "sum", "none")


class Total:
    """A compensated (Neumaier) running sum of block sums."""

    # (plain classes here and below: a dataclass costs its module 0.5-1 ms of start-up to build)
    def __init__(self) -> None:
        self.s = self.c = 0.0
        self.special = 0.0  # non-finite block sums are kept apart: inf - inf in the compensation would be nan

    def add(self, values: np.ndarray) -> None:
        self.add_sum(float(np.sum(values, dtype=np.float64)))

    def add_sum(self, x: float) -> None:
        if not math.isfinite(x):
            self.special += x
            return
        t = self.s + x
        if abs(self.s) >= abs(x):
            self.c += (self.s - t) + x
        else:
            self.c += (x - t) + self.s
        self.s = t

    @property
    def value(self) -> float:
        if self.special != 0 or math.isnan(self.special):
            return self.special
        return self.s + self.c


class Found:
    """How many losses were NaN (or infinite), and where the first was: (row, column)."""

    def __init__(self) -> None:
        self.count = 0
        self.first: tuple[int, int] | None = None

    def add(self, mask: np.ndarray, row0: int) -> None:
        if mask.any():
            self.count += int(mask.sum())
            if self.first is None:
                where = np.argwhere(mask.reshape(mask.shape[0], -1))[0]
                self.first = (row0 + int(where[0]), int(where[1]))

    def merge(self, other: Found, row0: int) -> None:
        self.count += other.count
        if self.first is None and other.first is not None:
            self.first = (row0 + other.first[0], other.first[1])


# a CSV stream holds at most this many values of its slices' value_parts (a pipe's until it ends; nll_loss's
# per-sample pieces): its memory stays flat
HELD_VALUES = 1 << 23


@dataclass
class Slices:
    """What the kernel's reduced value of a batch of `rows` samples needs of the slices it is evaluated in: the first
    one's parts, how many there were, the rows they held, and the fold of every slice's value_parts
    (Parts.value_fold; None once a slice has none). Where `rows` is not known beforehand (None: a pipe) the
    value_parts are held, and folded once the stream has ended. `hold`: the most values held so (or by a fold that
    keeps its pieces), beyond which the fold is given up; None: no limit (a batch in memory)."""

    rows: int | None
    hold: int | None = None
    first: Parts | None = None
    count: int = 0
    seen: int = 0
    fold: Fold | None = None
    held: list[dict[str, Array]] | None = field(default_factory=list)
    holding: int = 0

    def add(self, slices: Sequence[Parts]) -> None:
        for parts in slices:
            if self.first is None:
                self.first = parts
                self.fold = None if parts.value_fold is None else parts.value_fold(self.rows)
                if self.fold is not None or self.rows is not None:
                    self.held = None  # (held only while a fold waits for a stream's length)
            self.count += 1
            self.seen += parts.grad.shape[0]
            if parts.value_parts is None or parts.value_parts.keys() != (self.first.value_parts or {}).keys():
                self.fold = self.held = None  # (none, or a slice formed otherwise than the first: not one sum)
                continue
            if self.fold is not None:
                self.fold.add(parts.value_parts)
            elif self.held is not None:
                self.held.append(parts.value_parts)
            if self.held is not None or (self.fold is not None and self.fold.holds):
                self._held(sum(a.size for a in parts.value_parts.values()))

    def _held(self, values: int) -> None:
        self.holding += values
        if self.hold is not None and self.holding > self.hold:
            self.fold = self.held = None

    def folded(self) -> Fold | None:
        """The fold over the whole batch, once it has been seen (None where it cannot be formed)."""
        first = self.first
        if self.fold is None and self.rows is None and self.held and first is not None and first.value_fold:
            self.rows = self.seen
            fold = first.value_fold(self.seen)
            if fold is not None:
                for parts in self.held:
                    fold.add(parts)
            self.fold, self.held = fold, None
        return self.fold if self.rows in (None, self.seen) else None


class Accumulator:
    """What the reduction needs of the blocks seen so far: the sum of their losses, N, the rows, and the NaN and
    infinite losses among them; `slices`, where set, what the kernel's own reduced value needs of them."""

    def __init__(self) -> None:
        self.total = Total()
        self.n: int | float = 0  # the mean's N: a count, or a sum of weights (float)
        self.rows = 0
        self.nans, self.infinite, self.nan_grads = Found(), Found(), Found()
        self.nan_further: dict[str, Found] = {}  # NaN elements of each further input's gradient
        self.overflowed = Found()  # weighted losses or gradients beyond the float range
        self.unnormalised = Found()  # ce probability rows that do not sum to 1
        self.notes: dict[str, None] = {}  # the kernels' warnings (Parts.warnings), each once, as first seen
        self.blocks = 0
        self.pieces = 0  # a stream's blocks of rows, each evaluated alone (its kernels' sums its own)
        self.slices: Slices | None = None

    def add(self, losses: np.ndarray, rows: int, count: float | None = None, grad: np.ndarray | None = None,
            overflowed: np.ndarray | None = None, further: dict[str, np.ndarray] | None = None) -> None:
        """A block's losses (of `rows` samples) and their gradient; `count` of them count towards N (all, unless
        some were left out or weighted); `overflowed`: the samples whose weight took a finite loss or gradient
        beyond the float range (their infinities are the weight's, not the loss's)."""
        self.n += losses.size if count is None else count
        self.blocks += 1
        with np.errstate(over="ignore", invalid="ignore"):
            self.total.add(losses)
        infinite = np.isinf(losses)
        if overflowed is not None:
            self.overflowed.add(overflowed, self.rows)
            infinite &= ~(overflowed[:, None] if infinite.ndim == 2 else overflowed)
        self.nans.add(np.isnan(losses), self.rows)
        self.infinite.add(infinite, self.rows)
        if grad is not None:
            self.nan_grads.add(np.isnan(grad), self.rows)
        for name, g in (further or {}).items():  # (the further inputs' gradients: grad_target, grad_var, ...)
            if g.size and g.size % max(rows, 1) == 0:
                found = self.nan_further.setdefault(name, Found())
                found.add(np.isnan(g.reshape(rows, -1)), self.rows)
        self.rows += rows

    def merge(self, other: Accumulator) -> None:
        """Take in an accumulator over the samples that follow this one's (another block, shard or process)."""
        self.n += other.n
        self.total.add_sum(other.total.s)
        self.total.add_sum(other.total.c)
        self.total.special += other.total.special
        self.nans.merge(other.nans, self.rows)
        self.infinite.merge(other.infinite, self.rows)
        self.nan_grads.merge(other.nan_grads, self.rows)
        for name, found in other.nan_further.items():
            self.nan_further.setdefault(name, Found()).merge(found, self.rows)
        self.overflowed.merge(other.overflowed, self.rows)
        self.unnormalised.merge(other.unnormalised, self.rows)
        self.notes.update(other.notes)
        self.pieces += other.pieces
        self.rows += other.rows

    def finish(self, reduction: str, dtype: type[np.floating]) -> tuple[float | None, int | float]:
        """The reduced value (None for `none`) and the divisor that turns per-element derivatives into its
        gradient."""
        if reduction == "none":
            return None, 1
        if self.n == 0 and reduction != "sum":  # every sample weighs 0 or is left out: 0/0, as the frameworks give
            return math.nan, math.nan  # it (a NaN divisor makes every gradient NaN too, without a division by 0)
        with np.errstate(over="ignore"):  # (beyond the dtype's range the value is ±∞, a result like any other)
            if reduction == "sum":
                return float(dtype(self.total.value)), 1
            return float(dtype(self.total.value / self.n)), self.n


def describe(reduction: str, n: int | float, per_sample: bool, weight_note: str | None) -> str:
    """Which reduction, over what: 'mean over N=4 elements', 'weighted sum', 'reduction none'."""
    per = "samples" if per_sample else "elements"
    if reduction == "none":
        return "reduction none"
    if weight_note or isinstance(n, float):  # weights: what the mean divides by
        note = weight_note or "the sum of the class weights"
        return f"mean over N={n} ({note})" if reduction == "mean" else "weighted sum"
    return f"mean over N={n} {per}" if reduction == "mean" else f"sum over {n} {per}"


def formulas(reduction: str, n: int | float, weight_note: str | None, per_length: str = "") -> list[str]:
    """The reduction as formulas, for --explain; `per_length`: the framework whose mean divides each sequence's
    loss by its target length first (PyTorch's ctc), in words."""
    if per_length and reduction == "mean" and not weight_note:
        return [f"{per_length}'s mean: J = (1/N) Σᵢ ℓᵢ / max(Lᵢ, 1),  ∂J/∂xᵢ = (∂ℓᵢ/∂xᵢ) / (N·max(Lᵢ, 1)),  "
                f"N = {n}  (each sequence divided by its target length Lᵢ first)"]
    if weight_note and reduction != "none":
        lines = ["ℓᵢ ← wᵢ·ℓᵢ, ∂ℓᵢ/∂xᵢ ← wᵢ·∂ℓᵢ/∂xᵢ  (sample weights; the losses shown are the weighted ones)"]
        if reduction == "sum":
            return lines + ["J = Σᵢ wᵢℓᵢ"]
        if "sum of the sample weights" in weight_note:
            return lines + [f"J = Σᵢ wᵢℓᵢ / Σᵢ wᵢ,  ∂J/∂xᵢ = wᵢ·(∂ℓᵢ/∂xᵢ) / Σᵢ wᵢ,  Σᵢ wᵢ = {n}"]
        return lines + [f"J = Σᵢ wᵢℓᵢ / N,  ∂J/∂xᵢ = wᵢ·(∂ℓᵢ/∂xᵢ) / N,  N = {n}  (Keras' sum_over_batch_size; "
                        "(loss·w).mean() in PyTorch and optax)"]
    if reduction == "mean":
        return [f"J = (1/N) Σᵢ ℓᵢ,  ∂J/∂xᵢ = (∂ℓᵢ/∂xᵢ) / N,  N = {n}"]
    if reduction == "sum":
        return ["J = Σᵢ ℓᵢ,  ∂J/∂xᵢ = ∂ℓᵢ/∂xᵢ"]
    return ["no reduction: each ℓᵢ and its own derivative ∂ℓᵢ/∂xᵢ"]


EMPTY_MEAN = "the mean's N is 0 (every sample weighs 0 or is left out)"
NAN_WHY = "such as 0·log 0 taken as 0·(−∞); the exact convention gives the limit"


def warnings(acc: Accumulator, title: str, zero_hint: str, nan_why: str = "", reduction: str = "mean") -> list[str]:
    """One line for a mean whose N is 0 or overflowed; one for NaN results (losses or gradient elements: which
    convention computes NaN, where, and why; `nan_why`: the loss's own reason under this convention, else the usual
    0·(−∞)); one for infinite losses (how many, the first, and why; `zero_hint`: why a loss on probabilities is
    infinite; empty: it overflowed)."""
    out = weight_warnings(acc, reduction)
    further = {name: f for name, f in acc.nan_further.items() if f.count}
    if acc.nans.count or acc.nan_grads.count or further:
        first = acc.nans.first or acc.nan_grads.first
        of = "" if first else f" of grad_{next(iter(further))}"
        row, col = first or next(iter(further.values())).first or (0, 0)
        k, g = acc.nans.count, acc.nan_grads.count + sum(f.count for f in further.values())
        what = [f"{k} NaN loss{'es' if k > 1 else ''}"] if k else []
        what += [f"{g} NaN gradient element{'s' if g > 1 else ''}"] if g else []
        out.append(f"{' and '.join(what)} (first at row {row}, column {col}{of}): {title} computes NaN there "
                   f"({nan_why or NAN_WHY})")
    if acc.infinite.count:
        row, col = acc.infinite.first or (0, 0)
        k = acc.infinite.count
        why = zero_hint or "the loss overflows the float range"
        out.append(f"{k} infinite loss{'es' if k > 1 else ''} (first at row {row}, column {col}): {why}")
    return out


def weight_warnings(acc: Accumulator, reduction: str) -> list[str]:
    """What the weights did to the reduction: a weighted loss or gradient, or the mean's N, beyond the float
    range, or an N of 0."""
    out = []
    if acc.overflowed.count:
        row, col = acc.overflowed.first or (0, 0)
        k = acc.overflowed.count
        out.append(f"{k} sample{'s' if k > 1 else ''} (first at row {row}): the weight times a finite loss or "
                   "gradient is beyond the dtype's range, so it is shown as infinite; scale the weights "
                   "down (a weighted mean does not change)")
    if reduction == "mean" and acc.n == 0:
        out.append(f"{EMPTY_MEAN}: the mean is 0/0, so the value and the gradient are NaN, as the frameworks give "
                   "them")
    elif reduction == "mean" and math.isinf(acc.n):
        out.append("the sum of the weights is beyond the float range (1.8e308), so the mean divides by infinity; "
                   "scale the weights down (a weighted mean does not change)")
    return out


class ExactSum:
    """A sum of floats held exactly, as an integer times a power of two: adding and merging never round, so any
    split of the same numbers into shards, merged in any order, gives the same sum; `value` rounds it once."""

    def __init__(self, num: int = 0, exp: int = 0) -> None:
        self.num, self.exp = num, exp  # the sum is num · 2**exp

    @classmethod
    def of(cls, values: np.ndarray) -> ExactSum:
        """The exact sum of the finite values (non-finite ones are counted apart, by the caller)."""
        a = np.asarray(values, dtype=np.float64).reshape(-1)
        a = a[np.isfinite(a) & (a != 0)]
        if a.size == 0:
            return cls()
        m, e = np.frexp(a)  # a = m · 2**e with 53 significant bits in m
        mant = (m * 2.0**53).astype(np.int64)
        e = e.astype(np.int64) - 53
        order = np.argsort(e, kind="stable")
        mant, e = mant[order], e[order]
        starts = np.flatnonzero(np.r_[True, e[1:] != e[:-1]])
        # 27-bit halves: their int64 sums cannot overflow below 2**36 values
        hi = np.add.reduceat(mant >> 26, starts).tolist()
        lo = np.add.reduceat(mant & ((1 << 26) - 1), starts).tolist()
        exps = e[starts].tolist()
        low = exps[0]
        num = sum(((h << 26) + lw) << (x - low) for h, lw, x in zip(hi, lo, exps, strict=True))
        return cls(num, low)

    def __add__(self, other: ExactSum) -> ExactSum:
        low = min(self.exp, other.exp)
        return ExactSum((self.num << (self.exp - low)) + (other.num << (other.exp - low)), low)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExactSum) and self.fraction() == other.fraction()

    def __hash__(self) -> int:
        return hash(self.fraction())

    def __repr__(self) -> str:
        return f"ExactSum({self.value!r})"

    def fraction(self) -> tuple[int, int]:
        """The sum as numerator and denominator."""
        return (self.num << self.exp, 1) if self.exp >= 0 else (self.num, 1 << -self.exp)

    @property
    def value(self) -> float:
        """The sum rounded once to the nearest double (±inf beyond the float range)."""
        return quotient(self, ExactSum(1))


def quotient(a: ExactSum, b: ExactSum) -> float:
    """a / b rounded once to the nearest double (Python's int division rounds correctly); 0/0 is NaN."""
    an, ad = a.fraction()
    bn, bd = b.fraction()
    num, den = an * bd, ad * bn
    if den == 0:
        return math.nan if num == 0 else math.copysign(math.inf, num)
    try:
        return num / den
    except OverflowError:
        return math.copysign(math.inf, num) * (1 if den > 0 else -1)


def split_rows(rows: int, k: int, leading: tuple[int, ...] | None = None) -> int:
    """How many rows each of `k` equal micro-batches holds: the first axis of the samples' leading shape
    (`leading`, default (rows,): a [B, T, V] tensor is B·T rows of V classes) split into k equal contiguous parts,
    as gradient accumulation splits a batch."""
    shape = leading or (rows,)
    first = shape[0]
    if k < 1:
        raise OptionError("micro_batches", f"is {k}; it takes a whole number of micro-batches, at least 1")
    if math.prod(shape) != rows:
        raise OptionError("micro_batches", f"the leading shape {list(shape)} holds {math.prod(shape)} rows, not "
                                           f"the {rows} given")
    what = counted(first, "sample") if len(shape) == 1 else \
        f"{counted(first, 'sequence')} (the first axis of the leading shape {list(shape)})"
    if first % k:
        fits = [str(d) for d in range(1, first + 1) if first % d == 0]
        shown = ", ".join(fits[:6]) + ", ..." if len(fits) > 6 else f"{', '.join(fits[:-1])} or {fits[-1]}"
        hint = f"choose a number that divides {first}: {shown}" if first > 1 else "one sample cannot be split"
        split = f"is more micro-batches than the {what}" if k > first else \
            f"does not split the {what} into equal micro-batches ({first} = {k}·{first // k} + {first % k})"
        raise OptionError("micro_batches", f"{k} {split}; {hint}")
    return rows // k


def micro_formulas(k: int) -> list[str]:
    """--micro-batches as formulas, for --explain: the loop's loss and its gradient beside the true mean."""
    return [f"J_micro = (1/K) Σₖ (Σ_{{i∈k}} ℓᵢ / nₖ),  ∂J_micro/∂xᵢ = (∂ℓᵢ/∂xᵢ) / (K·nₖ),  K = {k}  (gradient "
            "accumulation that averages each micro-batch k, nₖ its N; equal to J when every nₖ = N/K)"]


def leading_shape(shape: tuple[int, ...], rows: int) -> tuple[int, ...] | None:
    """The samples' leading shape when predictions of 3 or more axes were flattened into rows ([B, T, V]: (B, T),
    whose first axis micro-batches split); None for rows as given."""
    return tuple(shape[:-1]) if len(shape) > 2 and math.prod(shape[:-1]) == rows else None


def micro_warnings(counts: list[int | float]) -> list[str]:
    """One line for micro-batches whose N is 0: their mean is 0/0, NaN, as an accumulation loop computes it."""
    empty = [i for i, n in enumerate(counts) if n == 0]
    if not empty:
        return []
    which = ", ".join(map(str, empty[:5])) + (", ..." if len(empty) > 5 else "")
    return [f"micro-batch{'es' if len(empty) > 1 else ''} {which} count{'s' if len(empty) == 1 else ''} no "
            f"samples (every one weighs 0 or is left out): {'their means are' if len(empty) > 1 else 'its mean is'} "
            "0/0 = NaN, so the accumulated loss is NaN, as an accumulation loop computes it (the gradient of its "
            "elements stays 0, as PyTorch's backward gives it)"]
