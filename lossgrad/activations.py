"""Activations and their Jacobians, for `lossgrad jacobian`: the link between a gradient with respect to
probabilities and one with respect to logits (the chain rule through sigmoid or softmax).

Each activation: forward values, the full Jacobian matrix J[i, j] = ∂aᵢ/∂xⱼ, and the formula text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .losses import _ops
from .losses._ops import Array

Values = tuple[Array, Array]  # the activation's values and its Jacobian


def softmax(x: Array) -> Values:
    s = _ops.softmax(x)
    return s, np.diag(s) - np.outer(s, s)


def sigmoid(x: Array) -> Values:
    sig, _, e = _ops.sigmoid_pair(x)
    # sigma(x)(1 - sigma(x)) = e / (1 + e)^2 with e = exp(-|x|): no 1 - sigma that cancels for large x
    return sig, np.diag(e / (1 + e) ** 2)


def tanh(x: Array) -> Values:
    t = np.tanh(x)
    # 1 - tanh^2 = sech^2 = 4 e / (1 + e)^2 with e = exp(-2|x|): no 1 - t^2 that cancels for large |x|
    e = np.exp(-2 * np.abs(x))
    return t, np.diag(4 * e / (1 + e) ** 2)


def relu(x: Array) -> Values:
    # the derivative at exactly 0 is taken as 0, as PyTorch, TensorFlow and JAX do
    return np.maximum(x, 0), np.diag((x > 0).astype(np.float64))


@dataclass(frozen=True)
class Activation:
    name: str
    fn: Callable[[Array], Values]
    formulas: tuple[str, ...]


ACTIVATIONS = {
    a.name: a
    for a in (
        Activation("softmax", softmax, ("sᵢ = e^xᵢ / Σⱼ e^xⱼ", "∂sᵢ/∂xⱼ = sᵢ(δᵢⱼ − sⱼ):  J = diag(s) − s·sᵀ")),
        Activation("sigmoid", sigmoid, ("σ(x) = 1 / (1 + e^−x)", "∂σᵢ/∂xⱼ = δᵢⱼ σ(xᵢ)(1 − σ(xᵢ))  (diagonal)")),
        Activation("tanh", tanh, ("tanh x", "∂tanh(xᵢ)/∂xⱼ = δᵢⱼ (1 − tanh² xᵢ)  (diagonal)")),
        Activation("relu", relu, ("max(x, 0)", "∂/∂xⱼ = δᵢⱼ [xᵢ > 0]  (0 at x = 0, as the frameworks take it)")),
    )
}
