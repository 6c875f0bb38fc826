"""Record the frameworks' CTC losses and gradients in tests/golden/ctc.json (read by tests/test_ctc.py).

    python3 scripts/golden_ctc.py

PyTorch's F.ctc_loss on log-probabilities (time-major [T, B, C]), Keras 3's keras.ops.ctc_loss on logits
([B, T, C], reduced as keras.losses.CTC reduces: the sum over the batch size) and optax.ctc_loss on logits (with
paddings), each in float64 and float32, each case's value, per-sequence losses and the gradient of the value with
respect to the framework's input; and tf-keras' tf_keras.backend.ctc_batch_cost on the probabilities e^x of the
log-probabilities x (its gradient with respect to those probabilities; the classes reordered so that the blank is
the last, as ctc_batch_cost takes it, and the gradient put back in the case's order), reduced as Keras' fit reduces
the [B, 1] losses it returns.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "ctc.json"


def log_softmax(z):
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def inputs():
    """(name, logits [B, T, C], padded labels [B, S], input lengths, target lengths, blank)."""
    rng = np.random.default_rng(20261201)
    yield "hand", np.array([[[0.5, 1.0, -0.5], [0.0, 0.3, 0.8], [1.2, -0.4, 0.1]]]), [[1, 2]], [3], [2], 0
    yield ("batch", rng.normal(size=(3, 6, 5)), [[1, 1, 0], [2, 3, 2], [4, 0, 0]], [6, 5, 4], [2, 3, 1], 0)
    yield ("peaked", 30 * rng.normal(size=(2, 5, 4)), [[1, 2, 1], [3, 3, 0]], [5, 4], [3, 2], 0)
    yield ("minimum", rng.normal(size=(2, 3, 3)), [[1, 1], [2, 1]], [3, 2], [2, 2], 0)
    yield ("impossible", rng.normal(size=(2, 3, 3)), [[1, 1], [2, 0]], [2, 3], [2, 1], 0)
    yield ("blank-last", rng.normal(size=(2, 4, 4)), [[0, 1], [2, 2]], [4, 4], [2, 2], 3)


def torch_case(z, labels, il, tl, blank, reduction, dtype, zero_infinity=False):
    import torch

    lp = torch.tensor(log_softmax(z).transpose(1, 0, 2), dtype=dtype, requires_grad=True)
    loss = torch.nn.functional.ctc_loss(lp, torch.tensor(labels), torch.tensor(il), torch.tensor(tl), blank=blank,
                                        reduction=reduction, zero_infinity=zero_infinity)
    losses = torch.nn.functional.ctc_loss(lp.detach(), torch.tensor(labels), torch.tensor(il), torch.tensor(tl),
                                          blank=blank, reduction="none", zero_infinity=zero_infinity)
    (loss.sum() if reduction == "none" else loss).backward()
    pred = lp.detach().numpy().astype(np.float64).transpose(1, 0, 2)
    return (pred, None if reduction == "none" else float(loss.detach()), losses.numpy(),
            lp.grad.numpy().transpose(1, 0, 2))


def keras_case(z, labels, il, tl, blank, reduction, dtype):
    import keras
    import tensorflow as tf

    x = tf.Variable(tf.constant(z, dtype=dtype))
    with tf.GradientTape() as tape:
        losses = keras.ops.ctc_loss(tf.constant(labels), x, tf.constant(tl), tf.constant(il), mask_index=blank)
        value = {"mean": tf.reduce_sum(losses) / len(labels), "sum": tf.reduce_sum(losses),
                 "none": tf.reduce_sum(losses)}[reduction]
    grad = tape.gradient(value, x)
    return (x.numpy().astype(np.float64), None if reduction == "none" else float(value), losses.numpy(),
            grad.numpy())


def optax_case(z, labels, il, tl, blank, reduction, dtype):
    import jax
    import jax.numpy as jnp
    import optax

    jax.config.update("jax_enable_x64", True)
    lab = np.array(labels)
    x = jnp.asarray(z, dtype=dtype)
    logit_pad = (np.arange(z.shape[1])[None, :] >= np.array(il)[:, None]).astype(np.float64)
    label_pad = (np.arange(lab.shape[1])[None, :] >= np.array(tl)[:, None]).astype(np.float64)

    def f(x):
        losses = optax.ctc_loss(x, jnp.asarray(logit_pad, dtype), jnp.asarray(lab), jnp.asarray(label_pad, dtype),
                                blank_id=blank)
        return {"mean": jnp.mean(losses), "sum": jnp.sum(losses), "none": jnp.sum(losses)}[reduction], losses

    (value, losses), grad = jax.value_and_grad(f, has_aux=True)(x)
    return (np.asarray(x).astype(np.float64), None if reduction == "none" else float(value), np.asarray(losses),
            np.asarray(grad))


def tfkeras_case(z, labels, il, tl, blank, reduction, dtype):
    import tensorflow as tf
    import tf_keras

    x = log_softmax(z).astype(dtype.as_numpy_dtype).astype(np.float64)  # the log-probabilities lossgrad is given
    c = x.shape[2]
    order = [k for k in range(c) if k != blank] + [blank]  # ctc_batch_cost's blank is the last class
    where = np.argsort(order)
    lab = np.where(np.arange(np.shape(labels)[1])[None, :] < np.array(tl)[:, None], where[np.array(labels)], 0)
    prob = tf.Variable(tf.exp(tf.constant(x[..., order], dtype=dtype)))
    with tf.GradientTape() as tape:
        losses = tf_keras.backend.ctc_batch_cost(tf.constant(lab), prob, tf.constant(np.array(il)[:, None]),
                                                 tf.constant(np.array(tl)[:, None]))
        value = {"mean": tf.reduce_mean(losses), "sum": tf.reduce_sum(losses),
                 "none": tf.reduce_sum(losses)}[reduction]
    grad = tape.gradient(value, prob).numpy()[..., where]
    return (x.astype(np.float64), None if reduction == "none" else float(value), losses.numpy()[:, 0], grad)


def _json(a):
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    out = [v if np.isfinite(v) else str(v) for v in a.reshape(-1).tolist()]
    return np.array(out, dtype=object).reshape(a.shape).tolist()


def _runs(which):
    if which == "torch":
        import torch

        return ("torch", torch_case, {"float64": torch.float64, "float32": torch.float32}, False)
    if which == "keras":
        import tensorflow as tf

        return ("keras", keras_case, {"float64": tf.float64, "float32": tf.float32}, True)
    if which == "tf-keras":
        import tensorflow as tf

        return ("tf-keras", tfkeras_case, {"float64": tf.float64, "float32": tf.float32}, False)
    return ("optax", optax_case, {"float64": np.float64, "float32": np.float32}, True)


def cases(only=None):
    """Every recorded case; `only` = (convention, dtype, reduction, logits, case): that one case, run now."""
    if only is not None:
        conv, dtype, reduction, z, case = only
        _, fn, dtypes, _ = _runs(conv)
        zz = z.astype(np.float32).astype(np.float64) if dtype == "float32" else z
        pred, value, losses, grad = fn(zz, case["labels"], case["input_lengths"], case["target_lengths"],
                                       case["blank"], reduction, dtypes[dtype])
        yield {**case, "dtype": dtype, "reduction": reduction, "pred": _json(pred), "value": _json(value),
               "losses": _json(losses), "grad": _json(grad)}
        return
    runs = [_runs(name) for name in ("torch", "keras", "optax", "tf-keras")]
    for name, z, labels, il, tl, blank in inputs():
        for conv, fn, dtypes, logits in runs:
            for dtype, framework_dtype in dtypes.items():
                zz = z.astype(np.float32).astype(np.float64) if dtype == "float32" else z
                for reduction in ("mean", "sum", "none"):
                    extra = [False, True] if conv == "torch" and name == "impossible" else [False]
                    for zero_inf in extra:
                        kw = {"zero_infinity": zero_inf} if conv == "torch" else {}
                        pred, value, losses, grad = fn(zz, labels, il, tl, blank, reduction, framework_dtype, **kw)
                        yield {"name": name, "convention": conv, "dtype": dtype, "reduction": reduction,
                               "from_logits": logits, "blank": blank, "zero_infinity": zero_inf,
                               "labels": labels, "input_lengths": il, "target_lengths": tl, "pred": _json(pred),
                               "value": _json(value), "losses": _json(losses), "grad": _json(grad)}


def main():
    data = {"versions": versions(), "made_by": "scripts/golden_ctc.py", "format": "sequences",
            "cases": list(cases())}
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{len(data['cases'])} cases -> {OUT}")


if __name__ == "__main__":
    main()
