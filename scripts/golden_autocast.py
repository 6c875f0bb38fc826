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

`keras_records` (keras_cases) hold every other loss `--autocast` takes under Keras 3 and tf-keras: ce on
probabilities (rows, with label smoothing, class indexes) and from logits with label smoothing, bce with label
smoothing, mae, huber (delta 1 and 0.5), logcosh, hinge and squared-hinge (−1/1 and 0/1 labels), poisson, cosine
(a zero vector too), focal (gamma, alpha; probabilities and logits), categorical-focal (gamma, class_alpha: one, or
one per class), and Keras 3's dice and tversky (alpha, beta); two shapes each, logits out to ±100 and probabilities
at and beyond Keras' clip, with `params` lossgrad's options. They were recorded on another processor than the
first records (`keras_machine`): `python scripts/golden_autocast.py --keras` records them again alone.
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
KERAS_CLASSES = {"mse": "MeanSquaredError", "mae": "MeanAbsoluteError", "logcosh": "LogCosh", "hinge": "Hinge",
                 "squared-hinge": "SquaredHinge", "poisson": "Poisson", "kl": "KLDivergence",
                 "cosine": "CosineSimilarity"}
KERAS_ONLY = ("dice", "tversky")  # (tf-keras has neither)


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


# probabilities at and near Keras' clip [ε, 1 − ε] and at 0 and 1; logits far out either way
EDGES = np.array([0, 1, 1e-7, 1 - 1e-7, 5e-8, 1e-3, 0.999, 0.5, 1e-30], np.float32)
LOGIT_EDGES = np.array([0, 16.6355324, -104, 88.7, -88.7, 100, -100, 30, -30, 1e-30], np.float32)


def _edged(rng: np.random.Generator, a: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """`a` with about a tenth of its elements replaced by edge values."""
    a = a.copy()
    edge = rng.random(a.shape) < 0.1
    a[edge] = rng.choice(edges, edge.sum())
    return a


def _probs(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Probabilities on a logistic scale (many near 0 and 1), some at the edges."""
    z = rng.standard_normal(shape) * rng.choice([0.5, 3.0, 12.0], (shape[0], 1))
    return _edged(rng, 1 / (1 + np.exp(-z)), EDGES)


def _logits(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return _edged(rng, rng.standard_normal(shape) * rng.choice([0.3, 3.0, 12.0, 40.0], (shape[0], 1)), LOGIT_EDGES)


def _rows(rng: np.random.Generator, shape: tuple[int, int], concentration: float) -> np.ndarray:
    """Probability rows (some entries near 0, one near 1 where the concentration is small)."""
    return rng.dirichlet(np.full(shape[1], concentration), shape[0])


def keras_cases(rng: np.random.Generator, dtype: str) -> list[dict]:
    """Every other loss Keras' and tf-keras' mixed policies run under --autocast (tf-keras has no dice nor tversky),
    on two shapes each, with the options that change the computation; predictions in the dtype (adversarial:
    logits of ±100, probabilities at and beyond the clip), targets in float32."""
    out: list[dict] = []

    def add(loss: str, pred: np.ndarray, target: np.ndarray, from_logits: bool = False, labels: str | None = None,
            **params: object) -> None:
        out.append({"loss": loss, "from_logits": from_logits, "labels": labels, "pred": _rounded(pred, dtype),
                    "target": np.asarray(target, np.float32), "params": params})

    for shape in ((12, 5), (3, 33)):
        onehot = np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]
        soft = _rows(rng, shape, 0.5)
        add("ce", _edged(rng, _rows(rng, shape, 0.3), EDGES), onehot)
        add("ce", _rows(rng, shape, 0.3), soft, label_smoothing=0.1)
        add("ce", _rows(rng, shape, 0.3), rng.integers(0, shape[1], (shape[0], 1)), labels="index")
        add("ce", _logits(rng, shape), soft, from_logits=True, label_smoothing=0.2)
        add("categorical-focal", _probs(rng, shape), soft, gamma=2.0)
        add("categorical-focal", _rows(rng, shape, 0.3), onehot, gamma=1.5, class_alpha=[0.25])
        add("categorical-focal", _logits(rng, shape), soft, from_logits=True, gamma=2.0)
        add("categorical-focal", _logits(rng, shape), onehot, from_logits=True, gamma=0.5,
            class_alpha=rng.uniform(0.1, 2, shape[1]).astype(np.float32).tolist())
    for shape in ((16, 6), (7, 1)):
        hard = (rng.random(shape) < 0.5).astype(np.float32)
        soft = rng.random(shape)
        scale = rng.choice([1e-3, 0.1, 1.0, 5.0, 100.0], (shape[0], 1))
        y = rng.standard_normal(shape) * scale
        add("bce", _probs(rng, shape), soft, label_smoothing=0.1)
        add("bce", _logits(rng, shape), hard, from_logits=True, label_smoothing=0.1)
        add("mae", y + rng.standard_normal(shape) * scale, y)
        add("huber", y + rng.standard_normal(shape) * scale, y, delta=1.0)
        e = np.resize(np.array([-1.0, -0.999, 0.5, 1.001, 0.0, 2.5, -2.5, 3.0, 30.0]), shape)
        add("huber", y + e * rng.choice([1.0, 0.5], (shape[0], 1)), y, delta=0.5)
        add("logcosh", y + rng.standard_normal(shape) * scale * 10, y)
        signs = rng.choice([-1.0, 1.0], shape)
        add("hinge", rng.standard_normal(shape) * scale, signs)
        add("hinge", _edged(rng, rng.standard_normal(shape) * 2, np.array([1.0, -1.0, 0.0])), hard)
        add("squared-hinge", rng.standard_normal(shape) * scale, signs)
        add("squared-hinge", _edged(rng, rng.standard_normal(shape) * 2, np.array([1.0, -1.0, 0.0])), hard)
        add("poisson", _edged(rng, rng.exponential(2.0, shape), np.array([0.0, 1e-8, 1e-7, 1e4])),
            np.floor(rng.exponential(3.0, shape)))
        add("cosine", rng.standard_normal(shape) * scale, rng.standard_normal(shape))
        add("focal", _probs(rng, shape), hard, gamma=2.0)
        add("focal", _probs(rng, shape), soft, gamma=0.5, alpha=0.25)
        add("focal", _logits(rng, shape), hard, from_logits=True, gamma=2.0, alpha=0.25)
        add("focal", _logits(rng, shape), soft, from_logits=True, gamma=1.5)
        add("dice", _probs(rng, shape), hard)
        add("tversky", _probs(rng, shape), soft, alpha=0.3, beta=0.7)
    zero = np.zeros((1, 6))  # (cosine of a zero vector: Keras' normalisation floor)
    add("cosine", np.vstack([zero, rng.standard_normal((2, 6))]), np.vstack([rng.standard_normal((1, 6)), zero,
                                                                             rng.standard_normal((1, 6))]))
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
    params = case.get("params") or {}
    smoothing = {"label_smoothing": params["label_smoothing"]} if params.get("label_smoothing") else {}
    if case["loss"] == "ce" and case["labels"] == "index":
        return losses.SparseCategoricalCrossentropy(from_logits=case["from_logits"], reduction=reduction,
                                                    ignore_class=case.get("ignore_index"))
    if case["loss"] == "ce":
        return losses.CategoricalCrossentropy(from_logits=case["from_logits"], reduction=reduction, **smoothing)
    if case["loss"] == "bce":
        return losses.BinaryCrossentropy(from_logits=case["from_logits"], reduction=reduction, **smoothing)
    if case["loss"] == "focal":  # (lossgrad's alpha: Keras' alpha with apply_class_balancing)
        alpha = params.get("alpha")
        return losses.BinaryFocalCrossentropy(from_logits=case["from_logits"], reduction=reduction,
                                              gamma=params.get("gamma", 2.0), apply_class_balancing=alpha is not None,
                                              alpha=0.25 if alpha is None else alpha)
    if case["loss"] == "categorical-focal":  # (lossgrad's class_alpha unset: Keras' alpha 1)
        alpha = params.get("class_alpha")
        return losses.CategoricalFocalCrossentropy(from_logits=case["from_logits"], reduction=reduction,
                                                   gamma=params.get("gamma", 2.0),
                                                   alpha=1.0 if alpha is None else alpha[0] if len(alpha) == 1
                                                   else alpha)
    if case["loss"] == "huber":
        return losses.Huber(delta=params.get("delta", 1.0), reduction=reduction)
    if case["loss"] == "dice":  # (one loss per sample, as lossgrad's: axis 1)
        return losses.Dice(reduction=reduction, axis=1)
    if case["loss"] == "tversky":  # (Keras' alpha weighs the false negatives, lossgrad's the false positives)
        return losses.Tversky(alpha=params.get("beta", 0.5), beta=params.get("alpha", 0.5), reduction=reduction,
                              axis=1)
    return getattr(losses, KERAS_CLASSES[case["loss"]])(reduction=reduction)


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


def keras_records() -> list[dict]:
    """The records of keras_cases under Keras' and tf-keras' policies."""
    rng = np.random.default_rng(20262)
    records = []
    for dtype in ("bfloat16", "float16"):
        for case in keras_cases(rng, dtype):
            for reduction in ("mean", "sum"):
                base = {"loss": case["loss"], "dtype": dtype, "reduction": reduction,
                        "from_logits": case["from_logits"], "labels": case["labels"], "params": case["params"],
                        "target": _short(case["target"]), "pred": _short(case["pred"])}
                for conv in ("keras",) if case["loss"] in KERAS_ONLY else ("keras", "tf-keras"):
                    records.append({**base, "convention": conv, **run_keras(conv, case, dtype, reduction)})
    return records


def _machine() -> dict:
    """The versions and the processor the records were made with (lossgrad's name for its vector width, cpu)."""
    flags = sorted({f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                    for f in line.split(":")[1].split() if f.startswith(("avx", "fma", "f16c"))})
    return {"versions": versions(), "cpu": torch.backends.cpu.get_cpu_capability().lower(), "cpu_flags": flags}


def main() -> None:
    """All records; with --keras only keras_records, the rest of the file kept as it was recorded (the PyTorch
    records and the first Keras ones on a processor with AVX-512)."""
    if "--keras" in sys.argv[1:]:
        data = json.loads(OUT.read_text())
        data |= {"keras_machine": _machine(), "keras_records": keras_records()}
        OUT.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {len(data['keras_records'])} Keras records to {OUT}")
        return
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
    added = keras_records()
    OUT.write_text(json.dumps({"versions": versions(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                               "facts": facts(), "records": records, "keras_machine": _machine(),
                               "keras_records": added}, indent=1) + "\n")
    print(f"wrote {len(records) + len(added)} records to {OUT}")


if __name__ == "__main__":
    main()
