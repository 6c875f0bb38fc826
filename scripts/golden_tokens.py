"""Writes tests/golden/tokens.json: token-level cross entropy on [B, T, V] = [2, 3, 5] float32 logits with [2, 3]
integer labels, as PyTorch and Keras 3 compute it (read by tests/test_tensors.py).

- PyTorch: F.cross_entropy on the logits as [B·T, V] and the labels as [B·T] (its layout for sequences) with
  ignore_index=-100, reduction mean, sum and none; the gradient of the reduced value (of the sum for none) by
  autograd.
- Keras 3 (TensorFlow backend): SparseCategoricalCrossentropy(from_logits=True) on the [2, 3, 5] tensors as they
  are, without ignore_class (every label a class) and with ignore_class=-100; the losses with reduction=None and
  the gradient of the default reduction by GradientTape.

Run from the project root with the frameworks installed: python scripts/golden_tokens.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from make_golden import versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "tokens.json"
IGNORE = -100


def inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits (float32), labels with one ignored token, and the same labels with every token a class."""
    rng = np.random.default_rng(2024)
    logits = np.round(rng.normal(scale=2.0, size=(2, 3, 5)), 3).astype(np.float32)
    labels = np.array([[1, 4, IGNORE], [0, 2, 3]], dtype=np.int64)
    every = np.where(labels == IGNORE, 2, labels)
    return logits, labels, every


def torch_cases(logits: np.ndarray, labels: np.ndarray) -> dict:
    import torch
    import torch.nn.functional as F

    out = {}
    for reduction in ("mean", "sum", "none"):
        z = torch.tensor(logits, requires_grad=True)
        loss = F.cross_entropy(z.reshape(-1, 5), torch.tensor(labels).reshape(-1), ignore_index=IGNORE,
                               reduction=reduction)
        (loss if reduction != "none" else loss.sum()).backward()
        value = loss.detach().numpy()
        out[reduction] = {"value": None if reduction == "none" else float(value),
                          "losses": value.reshape(2, 3).tolist() if reduction == "none" else None,
                          "grad": z.grad.numpy().astype(float).tolist()}
    return out


def keras_case(logits: np.ndarray, labels: np.ndarray, ignore_class: int | None) -> dict:
    import keras
    import tensorflow as tf

    z = tf.Variable(logits)
    y = tf.constant(labels)
    with tf.GradientTape() as tape:
        value = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=ignore_class)(y, z)
    grad = tape.gradient(value, z)
    losses = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=ignore_class,
                                                        reduction=None)(y, z)
    return {"labels": labels.tolist(), "ignore_class": ignore_class, "value": float(value.numpy()),
            "losses": np.asarray(losses).astype(float).tolist(), "grad": grad.numpy().astype(float).tolist()}


def main() -> None:
    logits, labels, every = inputs()
    golden = {"versions": versions(), "made_by": "scripts/golden_tokens.py",
              "logits": logits.astype(float).tolist(), "labels": labels.tolist(), "ignore_index": IGNORE,
              "torch": torch_cases(logits, labels),
              "keras": [keras_case(logits, every, None), keras_case(logits, labels, IGNORE)]}
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
