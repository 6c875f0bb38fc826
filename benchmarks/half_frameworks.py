"""The frameworks' own float16 and bfloat16 results, computed live, for benchmarks/half.py: PyTorch (plain, and
under torch.autocast), Keras 3 (losses in the dtype, and under the mixed policy) and optax (eagerly and under jit).
Each returns the per-element losses (one per row for ce and kl), the gradient of the reduced value (the mean; kl's
batchmean) with respect to the predictions, and that value, in float64.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from half import Case, Outcome, held

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # (TensorFlow's start-up notes would bury the table's stderr)


def _f64(a: Any) -> np.ndarray:
    return np.asarray(a.float().detach().numpy() if hasattr(a, "detach") else np.asarray(a, dtype=np.float32),
                      dtype=np.float64)


def torch_outcome(case: Case, y: np.ndarray, p: np.ndarray, dtype: str,
                  autocast: bool = False) -> tuple[Outcome, dict[str, Any]]:
    """F.cross_entropy, binary_cross_entropy_with_logits, mse_loss, kl_div (log-probabilities, batchmean) on tensors
    of the dtype; under torch.autocast("cpu", dtype) these ops run in float32 on the dtype's inputs."""
    import torch
    import torch.nn.functional as F

    dt = getattr(torch, dtype)
    z = torch.tensor(p, dtype=dt, requires_grad=True)
    t = torch.tensor(y.astype(np.int64)) if case.loss == "ce" else torch.tensor(y, dtype=dt)
    fn = {"ce": F.cross_entropy, "bce": F.binary_cross_entropy_with_logits, "mse": F.mse_loss,
          "kl": F.kl_div}[case.loss]
    with torch.autocast("cpu", dtype=dt) if autocast else contextlib.nullcontext():
        losses = fn(z, t, reduction="none")
        value = fn(z, t, reduction="batchmean" if case.loss == "kl" else "mean")
    if case.loss == "kl":  # a row's divergence, as a user sums it
        losses = losses.sum(dim=1)
    value.backward()
    assert z.grad is not None
    return Outcome(_f64(losses), _f64(z.grad), float(value.detach())), {}


def keras_outcome(case: Case, y: np.ndarray, p: np.ndarray, dtype: str,
                  mixed: bool = False) -> tuple[Outcome, dict[str, Any]]:
    """keras.losses' classes on tensors of the dtype (TensorFlow backend), the gradient by tf.GradientTape: computed
    in the dtype (the loss's dtype=dtype), or under the mixed_<dtype> policy, where a loss computes in float32.
    Keras' kl takes probabilities: the student's, rounded to the dtype."""
    import keras
    import tensorflow as tf

    kl = case.loss == "kl"
    pred = held(np.exp(p), dtype) if kl else p
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(f"mixed_{dtype}" if mixed else "float32")
    try:
        obj, each = (_keras_loss(case.loss, None if mixed else dtype, r) for r in ("sum_over_batch_size", None))
        z = tf.constant(pred, dtype=dtype)
        t = tf.constant(y.astype(np.int64) if case.loss == "ce" else y, dtype="int64" if case.loss == "ce" else dtype)
        with tf.GradientTape() as tape:
            tape.watch(z)
            value = obj(t, z)
        grad = tape.gradient(value, z)
        losses = each(t, z)
    finally:
        keras.config.set_dtype_policy(old)
    return Outcome(_f64(np.asarray(losses, dtype=np.float32)), _f64(np.asarray(grad, dtype=np.float32)),
                   float(value)), ({"log_input": False, "p": pred} if kl else {})


def _keras_loss(loss: str, dtype: str | None, reduction: str | None) -> Any:
    """The Keras loss object, in `dtype` (None: floatx, float32), with the reduction (None: per-sample losses)."""
    import keras

    kw = {"dtype": dtype, "reduction": reduction}
    return {"ce": lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True, **kw),
            "bce": lambda: keras.losses.BinaryCrossentropy(from_logits=True, **kw),
            "mse": lambda: keras.losses.MeanSquaredError(**kw), "kl": lambda: keras.losses.KLDivergence(**kw)}[loss]()


def optax_outcome(case: Case, y: np.ndarray, p: np.ndarray, dtype: str,
                  jit: bool = False) -> tuple[Outcome, dict[str, Any]]:
    """optax.losses on jax arrays of the dtype, the mean (of each row's kl: batchmean) by jnp.mean, the gradient by
    jax.value_and_grad, eagerly or under jax.jit."""
    import jax
    import jax.numpy as jnp
    import optax

    z = jnp.asarray(p, dtype=dtype)
    t = jnp.asarray(y.astype(np.int32)) if case.loss == "ce" else jnp.asarray(y, dtype=dtype)
    fn = {"ce": optax.losses.softmax_cross_entropy_with_integer_labels,
          "bce": optax.losses.sigmoid_binary_cross_entropy, "mse": optax.losses.squared_error,
          "kl": optax.losses.kl_divergence}[case.loss]

    def per(q: Any) -> Any:
        return fn(q, t)

    def mean(q: Any) -> Any:
        return jnp.mean(per(q))

    both = jax.value_and_grad(mean)
    if jit:
        per, both = jax.jit(per), jax.jit(both)
    value, grad = both(z)
    return Outcome(_f64(per(z)), _f64(grad), float(value)), {}


def available() -> list[tuple[str, Callable[..., tuple[Outcome, dict[str, Any]]], dict[str, Any]]]:
    """The live rows whose framework is installed."""
    rows = [("PyTorch", "", "torch", torch_outcome, {}),
            ("PyTorch", ", torch.autocast", "torch", torch_outcome, {"autocast": True}),
            ("Keras", ", loss in the dtype", "keras", keras_outcome, {}),
            ("Keras", ", mixed policy", "keras", keras_outcome, {"mixed": True}),
            ("optax", "", "optax", optax_outcome, {}), ("optax", ", jit", "optax", optax_outcome, {"jit": True})]
    return [(f"{name} {_version(mod)}{how}", fn, kw) for name, how, mod, fn, kw in rows
            if importlib.util.find_spec(mod) is not None]


def _version(mod: str) -> str:
    return str(__import__(mod).__version__).split("+")[0]
