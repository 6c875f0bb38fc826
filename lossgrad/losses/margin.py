"""Margin losses for labels in {-1, 1} (0/1 labels are read as -1/1, as Keras converts them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._ops import Array
from .base import Loss, Parts, Reason, first_bad, register

if TYPE_CHECKING:
    from ..conventions import Convention


def _signed(y: Array) -> Array:
    # Keras converts labels that are all 0/1 to -1/1; elementwise, 0 -> -1 is the same thing
    return np.where(y == 0, -1, y).astype(y.dtype, copy=False)


def hinge_check(y: Array, p: Array, from_logits: bool) -> None:
    first_bad("target", ~np.isin(y, (-1, 0, 1)), y, "is not a class label: hinge targets are -1/1 (or 0/1)")
    if (y == 0).any() and (y == -1).any():
        first_bad("target", y == -1, y, "mixes with 0 labels: give -1/1 or 0/1 targets, not both")


def hinge_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None) -> Parts:
    y = _signed(y)
    m = 1 - y * p
    losses = np.maximum(m, 0)
    # the kink m = 0: TensorFlow's maximum passes the whole gradient (-y), JAX's splits it (-y/2), exact takes 0
    grad = np.where(m > 0, -y, np.where(m == 0, -y * p.dtype.type(conv.hinge_tie), 0)) + 0  # + 0: no -0
    return Parts(losses=losses, grad=grad.astype(p.dtype, copy=False))


def hinge_formulas(from_logits: bool, conv: Convention) -> list[str]:
    return ["yᵢ ∈ {−1, 1} (0 read as −1)", "ℓᵢ = max(1 − yᵢpᵢ, 0)",
            f"∂ℓᵢ/∂pᵢ = −yᵢ where 1 − yᵢpᵢ > 0, else 0 ({conv.hinge_tie:g}·(−yᵢ) at 1 − yᵢpᵢ = 0)"]


def squared_hinge_compute(y: Array, p: Array, from_logits: bool, conv: Convention,
                          labels: Array | None = None) -> Parts:
    y = _signed(y)
    m = np.maximum(1 - y * p, 0)
    return Parts(losses=m * m, grad=-2 * y * m)


def hinge_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool,
                  labels: Array | None, **opts: Any) -> list[Reason]:
    kink = (1 - _signed(y2) * p2) == 0
    return [(kink, lambda i: f"1 − y·p = 0, the hinge's kink: {conv.name}'s autodiff gives {conv.hinge_tie:g}·(−y) "
                             "there, the exact convention 0 (any value between is a subgradient)")]


def squared_hinge_formulas(from_logits: bool, conv: Convention) -> list[str]:
    return ["yᵢ ∈ {−1, 1} (0 read as −1)", "ℓᵢ = max(1 − yᵢpᵢ, 0)²", "∂ℓᵢ/∂pᵢ = −2yᵢ·max(1 − yᵢpᵢ, 0)"]


HINGE = register(
    Loss(
        name="hinge",
        summary="hinge loss, max(1 − y·p, 0), labels −1/1 or 0/1",
        kind="elementwise",
        compute=hinge_compute,
        check=hinge_check,
        formulas=hinge_formulas,
        has_logits=False,
        reasons=hinge_reasons,
        reference="keras.losses.hinge, optax.losses.hinge_loss",
    )
)

SQUARED_HINGE = register(
    Loss(
        name="squared-hinge",
        summary="squared hinge loss, max(1 − y·p, 0)², labels −1/1 or 0/1",
        kind="elementwise",
        compute=squared_hinge_compute,
        check=hinge_check,
        formulas=squared_hinge_formulas,
        has_logits=False,
        reference="keras.losses.squared_hinge",
    )
)
