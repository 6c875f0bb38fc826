"""Record PyTorch's and Keras' mixed-precision results on CPU for tests/golden/autocast.json (read by
tests/test_autocast.py).

PyTorch: the loss called inside `torch.autocast("cpu", dtype=...)` on predictions of that dtype (a model's
output), targets in float32. Keras 3: the loss object made under the global `mixed_bfloat16` / `mixed_float16`
policy, called on predictions of the low dtype. tf-keras: the same policy, the predictions passed through the float32
output layer its mixed precision guide prescribes (`Activation("linear", dtype="float32")`). Each record: the loss,
convention, dtype, reduction, inputs (predictions already representable in the dtype, targets in float32), the
reduced value (float32) and the gradient the low-precision predictions receive, every number a float64 that holds
the value exactly. `facts` records the policies themselves: the dtype each op returns under autocast, and whether
binary_cross_entropy on probabilities runs or raises.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import versions  # noqa: E402

F = torch.nn.functional
OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "autocast.json"
TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def _short(a) -> list | str:
    """Numbers as the shortest decimal strings that read back to the same float32 (every value here is one)."""
    flat = np.asarray(a, dtype=np.float32)
    if flat.ndim == 0:
        return str(flat)
    return np.vectorize(lambda v: str(np.float32(v)), otypes=[object])(flat).tolist()


def _rounded(a: np.ndarray, dtype: str) -> np.ndarray:
    return torch.tensor(a, dtype=torch.float32).to(TORCH[dtype]).to(torch.float32).numpy()


def cases(rng: np.random.Generator, dtype: str) -> list[dict]:
    """The inputs: ce with class indexes (some ignored: -100) and with probability rows, bce from logits and on
    probabilities, mse, kl (log-probability predictions for PyTorch, probabilities for Keras); predictions in the
    dtype, targets in float32."""
    out = []
    z = _rounded(rng.standard_normal((24, 10)) * rng.choice([0.1, 1.0, 5.0, 20.0], (24, 1)), dtype)
    soft = rng.random((24, 10)).astype(np.float32)
    out.append({"loss": "ce", "from_logits": True, "labels": "index", "pred": z,
                "target": rng.integers(0, 10, 24).astype(np.float64)[:, None]})
    ignored = rng.integers(0, 10, 24).astype(np.float64)[:, None]
    ignored[::5] = -100
    out.append({"loss": "ce", "from_logits": True, "labels": "index", "pred": z, "target": ignored,
                "ignore_index": -100})
    out.append({"loss": "ce", "from_logits": True, "labels": "onehot", "pred": z,
                "target": soft / soft.sum(axis=1, keepdims=True)})
    x = _rounded(rng.standard_normal((64, 4)) * rng.choice([0.1, 1.0, 5.0, 30.0], (64, 4)), dtype)
    y = rng.random((64, 4)).astype(np.float32)
    y[:16] = np.round(y[:16])
    out.append({"loss": "bce", "from_logits": True, "pred": x, "target": y})
    out.append({"loss": "mse", "from_logits": False, "pred": x, "target": y})
    # (on probabilities: PyTorch's CPU autocast runs binary_cross_entropy in float32; CUDA's refuses it)
    probs = _rounded(np.clip(rng.random((64, 4)), 1e-3, 1 - 1e-3), dtype)
    out.append({"loss": "bce", "from_logits": False, "pred": probs, "target": y})
    q = rng.random((16, 10))
    q = q / q.sum(axis=1, keepdims=True)
    t = rng.random((16, 10)).astype(np.float32)
    t = t / t.sum(axis=1, keepdims=True)
    out.append({"loss": "kl", "from_logits": False, "pred": _rounded(np.log(q), dtype), "target": t,
                "log_input": True})
    out.append({"loss": "kl", "from_logits": False, "pred": _rounded(q, dtype), "target": t, "log_input": False})
    return out


def torch_loss(case: dict, t: torch.Tensor, reduction: str) -> torch.Tensor:
    y = torch.tensor(case["target"], dtype=torch.float32)
    if case["loss"] == "ce":
        target = y[:, 0].long() if case["labels"] == "index" else y
        return F.cross_entropy(t, target, reduction=reduction, ignore_index=case.get("ignore_index", -100))
    if case["loss"] == "bce" and not case["from_logits"]:
        return F.binary_cross_entropy(t, y, reduction=reduction)
    if case["loss"] == "bce":
        return F.binary_cross_entropy_with_logits(t, y, reduction=reduction)
    if case["loss"] == "mse":
        return F.mse_loss(t, y, reduction=reduction)
    return F.kl_div(t, y, reduction=reduction)  # (mean: over every element, as lossgrad's kl mean)


def run_torch(case: dict, dtype: str, reduction: str) -> dict:
    pt = torch.tensor(case["pred"], dtype=TORCH[dtype], requires_grad=True)
    with torch.autocast("cpu", dtype=TORCH[dtype]):
        out = torch_loss(case, pt, reduction)
    out.backward()
    return {"value": _short(out.detach().numpy()), "value_dtype": str(out.dtype).removeprefix("torch."),
            "grad": _short(pt.grad.float().numpy()), "grad_dtype": str(pt.grad.dtype).removeprefix("torch.")}


def keras_loss(module, case: dict, reduction: str):
    losses = module.losses
    if case["loss"] == "ce" and case["labels"] == "index":
        return losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction,
                                                    ignore_class=case.get("ignore_index"))
    if case["loss"] == "ce":
        return losses.CategoricalCrossentropy(from_logits=True, reduction=reduction)
    if case["loss"] == "bce":
        return losses.BinaryCrossentropy(from_logits=case["from_logits"], reduction=reduction)
    if case["loss"] == "mse":
        return losses.MeanSquaredError(reduction=reduction)
    return losses.KLDivergence(reduction=reduction)


def run_keras(conv: str, case: dict, dtype: str, reduction: str) -> dict:
    import tensorflow as tf

    module = __import__("keras" if conv == "keras" else "tf_keras")
    module.mixed_precision.set_global_policy(f"mixed_{dtype}")
    try:
        fn = keras_loss(module, case, {"mean": "sum_over_batch_size", "sum": "sum"}[reduction])
        v = tf.Variable(tf.cast(tf.constant(case["pred"], tf.float32), dtype))
        with tf.GradientTape() as tape:
            out = tf.convert_to_tensor(v)  # (a model's output is a tensor: tf-keras layers cast tensors only)
            pred = out if conv == "keras" else module.layers.Activation("linear", dtype="float32")(out)
            out = fn(tf.constant(case["target"], tf.float32), pred)
        g = tape.gradient(out, v)
    finally:
        module.mixed_precision.set_global_policy("float32")
    return {"value": _short(tf.cast(out, tf.float32).numpy()), "value_dtype": out.dtype.name,
            "grad": _short(tf.cast(g, tf.float32).numpy()), "grad_dtype": g.dtype.name}


def facts() -> dict:
    """The policies as the installed frameworks show them."""
    import tensorflow as tf
    import tf_keras

    out: dict = {"torch_op_dtypes": {}}
    z = torch.randn(4, 5).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for name, fn in {"log_softmax": lambda: F.log_softmax(z, 1), "softmax": lambda: F.softmax(z, 1),
                         "log": lambda: torch.log(z.abs()), "sigmoid": lambda: torch.sigmoid(z),
                         "cross_entropy": lambda: F.cross_entropy(z, torch.tensor([0, 1, 2, 3])),
                         "nll_loss": lambda: F.nll_loss(z, torch.tensor([0, 1, 2, 3])),
                         "binary_cross_entropy_with_logits": lambda: F.binary_cross_entropy_with_logits(z, z.float()),
                         "mse_loss": lambda: F.mse_loss(z, z.float()),
                         "kl_div": lambda: F.kl_div(z, z.float().exp(), reduction="batchmean")}.items():
            out["torch_op_dtypes"][name] = str(fn().dtype).removeprefix("torch.")
        try:
            r = F.binary_cross_entropy(torch.sigmoid(z), torch.rand(4, 5))
            out["torch_bce_probs"] = {"raises": None, "dtype": str(r.dtype).removeprefix("torch.")}
        except RuntimeError as e:
            out["torch_bce_probs"] = {"raises": str(e)}
    tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        v = tf.cast(tf.constant([[0.5, -1.0]]), tf.bfloat16)
        raw = tf_keras.losses.CategoricalCrossentropy(from_logits=True)(tf.constant([[0.0, 1.0]]), v)
        out["tf_keras_loss_dtype_without_float32_layer"] = raw.dtype.name
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        out["keras_loss_dtype_under_mixed_policy"] = keras.losses.CategoricalCrossentropy().dtype
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return out


def main() -> None:
    rng = np.random.default_rng(20260)
    records = []
    for dtype in ("bfloat16", "float16"):
        for case in cases(rng, dtype):
            for reduction in ("mean", "sum"):
                base = {"loss": case["loss"], "dtype": dtype, "reduction": reduction,
                        "from_logits": case["from_logits"], "labels": case.get("labels"),
                        "ignore_index": case.get("ignore_index"),
                        "log_input": case.get("log_input"), "target": _short(case["target"]),
                        "pred": _short(case["pred"])}
                if case["loss"] != "kl" or case["log_input"]:
                    records.append({**base, "convention": "torch", **run_torch(case, dtype, reduction)})
                if case["loss"] != "kl" or not case["log_input"]:
                    for conv in ("keras", "tf-keras"):
                        records.append({**base, "convention": conv, **run_keras(conv, case, dtype, reduction)})
    OUT.write_text(json.dumps({"versions": versions(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                               "facts": facts(), "records": records}, indent=1) + "\n")
    print(f"wrote {len(records)} records to {OUT}")


if __name__ == "__main__":
    main()
