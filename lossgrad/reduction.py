"""Reductions: how element losses become one value, and the factor their gradient carries.

`mean` divides by N (elements for elementwise losses, samples for row losses), `sum` does not, `none` keeps the
losses and reports each element's own derivative. The value is accumulated chunk by chunk: numpy's pairwise sum
within a chunk, Neumaier's compensated sum across chunks, so the result does not depend on the chunk size.
"""

from __future__ import annotations

import math

import numpy as np

REDUCTIONS = ("mean", "sum", "none")


class Total:
    """A compensated (Neumaier) running sum of chunk sums, and the count of what was summed."""

    def __init__(self) -> None:
        self.s = 0.0
        self.c = 0.0
        self.n = 0
        self.special = 0.0  # non-finite chunk sums are kept apart: inf - inf in the compensation would be nan

    def add(self, values: np.ndarray, count: int | None = None) -> None:
        """Add `values` to the sum; `count` of them count towards N (all, unless some were ignored)."""
        self.n += values.size if count is None else count
        x = float(np.sum(values, dtype=np.float64))
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


def reduce(total: Total, reduction: str, n: int, dtype) -> tuple[float | None, int]:
    """The reduced value (None for `none`) and the divisor that turns per-element derivatives into its gradient."""
    if reduction == "none":
        return None, 1
    if reduction == "sum":
        return float(dtype(total.value)), 1
    return float(dtype(total.value / n)), n
