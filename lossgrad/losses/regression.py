"""Regression losses: elementwise functions of the prediction error."""

from __future__ import annotations

import numpy as np

from .base import Loss, Parts, register


def mse_compute(y: np.ndarray, p: np.ndarray, from_logits: bool, conv, labels=None) -> Parts:
    """Squared error (p - y)^2; every framework computes the same thing (Keras averages the last axis first,
    which for rectangular input is the same mean)."""
    d = p - y
    # keep the factor 2 that some texts drop: d/dp (p - y)^2 = 2 (p - y)
    return Parts(losses=d * d, grad=2 * d)


def mse_check(y, p, from_logits):
    return None


def mse_formulas(from_logits, conv):
    return ["ℓᵢ = (pᵢ − yᵢ)²", "∂ℓᵢ/∂pᵢ = 2 (pᵢ − yᵢ)"]


MSE = register(
    Loss(
        name="mse",
        summary="mean squared error, (p − y)²",
        kind="elementwise",
        compute=mse_compute,
        check=mse_check,
        formulas=mse_formulas,
        has_logits=False,
        reference="keras.losses.mean_squared_error, torch.nn.functional.mse_loss, optax.losses.squared_error",
    )
)
