"""Record what Keras 3 and tf-keras give with sample weights on TensorFlow's CPU kernels, in float32, float16 and
bfloat16, for tests/golden/weights_tf.json (read by tests/test_weights_tf.py).

Keras weighs the per-sample losses after the loss: `losses * sample_weight` in the loss's dtype, then the same
reduce_sum and divide_no_nan by N (keras/src/losses/loss.py reduce_weighted_values; tf_keras/src/utils/
losses_utils.py compute_weighted_loss); the gradient of each sample's loss is Mul's, the upstream times the weight
in the dtype. Each record: a convention, dtype, loss (its options), the inputs (values of the dtype), the weights as
given (float64, as float.hex: Keras 3 converts them to the dtype in one rounding, tf-keras through float32), and
what the framework's Loss class gives for them (Keras 3's with dtype= the dtype, tf-keras' on tensors of it): the
weighted per-sample losses (reduction "none"), and the value and the GradientTape gradient with respect to the
predictions under "sum" and "sum_over_batch_size" (lossgrad's mean), every float32 value as its 8 hex digits of
bits. Inputs are random and adversarial: weights 0, tiny (products flushed to zero, a float32 subnormal weight),
large (products beyond float16's range, weights float16 holds as ∞), weights whose rounding differs once and twice
rounded, random weights whose products round, saturated logits whose large loss a weight multiplies. Batches of more
than 32,768 samples (lossgrad evaluates them in slices) are kept as a seed, the SHA-256 of their inputs and of each
result (`long_inputs`, pure numpy). The TensorFlow build and the processor's flags are recorded.

    python3 scripts/golden_weights_tf.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "weights_tf.json"
REDUCTIONS = {"sum": "sum", "mean": "sum_over_batch_size"}
CONVENTIONS = ("keras", "tf-keras")
DTYPE_NAMES = ("float32", "float16", "bfloat16")
ELEMENTWISE = ("mae", "huber", "logcosh", "hinge", "squared-hinge", "cosine")
LOG = ("bce", "kl", "poisson", "focal", "categorical-focal")
SEGMENTATION = ("dice", "tversky")  # (Keras 3's only: tf-keras has neither)
# weights whose rounding tells one rounding from two: to float16, to bfloat16 and to float32 (Keras 3 converts the
# float64 numbers to the dtype, tf-keras casts a float64 tensor, through float32)
TIES = (1 + 2 ** -11 + 2 ** -40, 1 + 2 ** -8 + 2 ** -30, 1 + 2 ** -24 + 2 ** -60, 3 * (1 + 2 ** -11 + 2 ** -36))
POOL = (0.0, 0.0, 1.0, 0.5, 2.0, 3.0, 1 / 3, 0.1, 0.7, 1e-3, 1e-6, 2.0 ** -20, 1e4, 3e4, *TIES)
# (long batches: dtype, rows, classes, labels)
LONG = (("float32", 40000, 5, "index"), ("bfloat16", 40000, 5, "index"), ("float16", 36000, 7, "index"),
        ("float32", 34000, 5, "onehot"), ("bfloat16", 34000, 4, "onehot"))


def bits(a: Any) -> str:
    """The float32 values' bits, 8 hex digits each, in C order."""
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32)).reshape(-1).view(np.uint32).astype(">u4") \
        .tobytes().hex()


def unbits(s: str) -> np.ndarray:
    """The float32 values `bits` wrote (flat)."""
    return np.frombuffer(bytes.fromhex(s), dtype=">u4").astype(np.uint32).view(np.float32)


def digest(*arrays: Any) -> str:
    """SHA-256 of the arrays' float32 bytes, in C order, one after another."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.float32)).tobytes())
    return h.hexdigest()


def in_dtype(a: np.ndarray, dtype: str) -> np.ndarray:
    """Values as the dtype holds them, carried in float32 (numpy's rounding to nearest even, as TensorFlow's)."""
    if dtype == "float32":
        return np.asarray(a, dtype=np.float32)
    import ml_dtypes

    half = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    with np.errstate(over="ignore"):
        return np.asarray(a, dtype=np.float32).astype(half).astype(np.float32)


def long_inputs(seed: int, rows: int, classes: int, labels: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A long batch: targets (class indexes as a column, or probability rows), logits, weights (float64: a tenth
    0, the rest uniform in [0, 4), some from POOL)."""
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((rows, classes)) * rng.choice([0.3, 2.0, 8.0], (rows, 1))).astype(np.float32)
    y = (rng.integers(0, classes, (rows, 1)).astype(np.float32) if labels == "index"
         else rng.dirichlet(np.full(classes, 0.5), rows).astype(np.float32))
    w = rng.uniform(0, 4, rows)
    w[rng.random(rows) < 0.1] = 0
    pick = rng.random(rows) < 0.05
    w[pick] = rng.choice(POOL[:12], pick.sum())
    return y, z, w


def spec(case: dict) -> dict:
    """A case's loss as lossgrad's options name it."""
    out: dict[str, Any] = {}
    if case["loss"] in ("ce", "bce", "focal", "categorical-focal"):
        out["from_logits"] = case.get("from_logits", True)
    if case.get("labels"):
        out["labels"] = case["labels"]
    return out | (case.get("params") or {})


def _loss(module: Any, case: dict, reduction: str, dtype: str) -> Any:
    loss, params = case["loss"], case.get("params") or {}
    if loss in ELEMENTWISE:
        import golden_lowp_tf_elem

        return golden_lowp_tf_elem._loss(module, loss, reduction, dtype, params.get("delta"))
    if loss in SEGMENTATION:
        import golden_lowp_tf_seg

        return golden_lowp_tf_seg._loss(loss, reduction, dtype, params.get("alpha", 0.5), params.get("beta", 0.5))
    if loss == "mse":
        kw = {"reduction": reduction} | ({"dtype": dtype} if module.__name__ == "keras" else {})
        return module.losses.MeanSquaredError(**kw)
    import golden_lowp_tf_log

    return golden_lowp_tf_log._loss(module, loss, case.get("from_logits", True), reduction, dtype,
                                    case.get("labels") if case.get("labels") == "index" else None, params)


def run(conv: str, case: dict, dtype: str) -> dict[str, Any]:
    """The framework's weighted losses (reduction none) and each reduction's value and gradient, float32 arrays."""
    import tensorflow as tf

    kind = {"float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}[dtype]
    module = __import__("keras" if conv == "keras" else "tf_keras")
    y, p, w = case["target"], case["pred"], np.asarray(case["weights"], dtype=np.float64)
    # (class indexes as float32 numbers: Keras 3 casts them to the loss's dtype, tf-keras passes them on)
    yt = tf.constant(y[:, 0], tf.float32) if case.get("labels") == "index" else tf.constant(y, kind)
    per = _loss(module, case, "none", dtype)(yt, tf.constant(p, kind), sample_weight=w)
    out: dict[str, Any] = {"losses": tf.cast(per, tf.float32).numpy()}
    for name, reduction in REDUCTIONS.items():
        pv = tf.Variable(tf.constant(p, kind))
        with tf.GradientTape() as tape:
            value = _loss(module, case, reduction, dtype)(yt, pv, sample_weight=w)
        out[name] = (tf.cast(value, tf.float32).numpy(), tf.cast(tape.gradient(value, pv), tf.float32).numpy())
    return out


def held(case: dict, dtype: str) -> dict:
    """The case with its inputs as the dtype holds them (class indexes as they are)."""
    y = case["target"] if case.get("labels") == "index" else in_dtype(case["target"], dtype)
    return case | {"target": y, "pred": in_dtype(case["pred"], dtype)}


def record(conv: str, case: dict, dtype: str) -> dict:
    """A case's record: its inputs, weights and the framework's results, every float32 value's bits."""
    case = held(case, dtype)
    got = run(conv, case, dtype)
    rec = {"convention": conv, "dtype": dtype, "loss": case["loss"], "options": spec(case), "note": case["note"],
           "shape": list(case["pred"].shape), "target_cols": int(case["target"].shape[1]),
           "target": bits(case["target"]), "pred": bits(case["pred"]),
           "weights": [float(v).hex() for v in np.asarray(case["weights"], dtype=np.float64)],
           "losses": bits(got["losses"])}
    for name in REDUCTIONS:
        rec[name] = {"value": bits(got[name][0]), "grad": bits(got[name][1])}
    return rec


def long_record(conv: str, dtype: str, rows: int, classes: int, labels: str, seed: int) -> dict:
    """A long batch's record: its seed, and digests of its inputs as the dtype holds them and of the results."""
    y, z, w = long_inputs(seed, rows, classes, labels)
    case = held({"loss": "ce", "labels": labels, "target": y, "pred": z, "weights": w, "note": "long"}, dtype)
    got = run(conv, case, dtype)
    rec = {"convention": conv, "dtype": dtype, "loss": "ce", "options": spec(case), "note": "long batch",
           "seed": seed, "shape": [rows, classes], "inputs": digest(case["target"], case["pred"], w),
           "losses": digest(got["losses"])}
    for name in REDUCTIONS:
        rec[name] = {"value": bits(got[name][0]), "grad": digest(got[name][1])}
    return rec


def weights(rng: np.random.Generator, n: int) -> np.ndarray:
    """Weights for n samples: random in [0, 4) with many bits (their products round), and some from POOL."""
    w = rng.uniform(0, 4, n) * rng.choice([1.0, 1.0, 1e-2, 30.0], n)
    pick = rng.random(n) < 0.4
    w[pick] = rng.choice(POOL, pick.sum())
    return w


def _logits(rng: np.random.Generator, rows: int, classes: int) -> np.ndarray:
    scale = rng.choice([0.1, 1.0, 5.0, 30.0], (rows, 1))
    return (rng.standard_normal((rows, classes)) * scale).astype(np.float32)


def _probs(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    p = 1 / (1 + np.exp(-rng.standard_normal(shape) * rng.choice([0.5, 3.0], (shape[0], 1))))
    return p.astype(np.float32)


def random_case(rng: np.random.Generator, loss: str, rows: int, cols: int, labels: str | None = None,
                from_logits: bool = True, note: str = "random") -> dict:
    """One batch of `loss` on random inputs, with `weights`."""
    params: dict[str, Any] = {}
    if loss == "ce" and from_logits:
        z = _logits(rng, rows, cols)
        y = (rng.integers(0, cols, (rows, 1)).astype(np.float32) if labels == "index" else
             np.eye(cols, dtype=np.float32)[rng.integers(0, cols, rows)] if labels == "onehot" and rng.random() < 0.5
             else rng.dirichlet(np.full(cols, 0.3), rows).astype(np.float32))
    elif loss in ("ce", "kl", "categorical-focal"):
        y = (rng.integers(0, cols, (rows, 1)).astype(np.float32) if labels == "index" else
             rng.dirichlet(np.full(cols, 0.5), rows).astype(np.float32))
        z = (_logits(rng, rows, cols) if from_logits else
             rng.dirichlet(np.full(cols, 0.5), rows).astype(np.float32) if loss == "kl" else _probs(rng, (rows, cols)))
        if loss == "categorical-focal":
            params = {"gamma": 2.0}
    elif loss in SEGMENTATION:
        y = (rng.random((rows, cols)) < 0.4).astype(np.float32)
        z = _probs(rng, (rows, cols))
        if loss == "tversky":
            params = {"alpha": 0.3, "beta": 0.7}
    elif loss in ("bce", "focal"):
        y = (rng.random((rows, cols)) < 0.5).astype(np.float32)
        z = _logits(rng, rows, cols) if from_logits else _probs(rng, (rows, cols))
        if loss == "focal":
            params = {"gamma": 2.0}
    elif loss == "poisson":
        y = np.floor(rng.exponential(3.0, (rows, cols))).astype(np.float32)
        z = rng.exponential(2.0, (rows, cols)).astype(np.float32)
    elif loss in ("hinge", "squared-hinge"):
        y = rng.choice([-1.0, 1.0], (rows, cols)).astype(np.float32)
        z = _logits(rng, rows, cols)
    else:
        scale = rng.choice([1e-3, 1.0, 100.0], (rows, 1))
        y = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        z = (y + rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        if loss == "huber":
            params = {"delta": float(rng.choice([0.3, 1.0, 2.7]))}
    case = {"loss": loss, "target": y, "pred": z, "weights": weights(rng, rows), "labels": labels, "note": note,
            "params": params}
    return case | ({} if from_logits or loss not in ("ce", "bce", "focal", "categorical-focal")
                   else {"from_logits": False})


def cases(rng: np.random.Generator) -> list[dict]:
    """Random and adversarial cases of each loss (ce from logits on class indexes and on probability rows, mse, the
    element-wise losses and those through log)."""
    out = []
    for rows, cols in [(1, 2), (5, 7), (13, 10), (64, 17), (9, 33), (37, 3), (11, 8)]:
        out.append(random_case(rng, "ce", rows, cols, "index"))
        out.append(random_case(rng, "ce", rows, cols, "onehot"))
    for rows, cols in [(7, 5), (13, 1), (50, 9), (3, 40), (16, 64)]:
        out.append(random_case(rng, "mse", rows, cols))
    for loss in ELEMENTWISE + LOG + ("ce",):
        for rows, cols in [(7, 5), (13, 1), (20, 9)] if loss not in ("kl", "categorical-focal", "ce") else \
                [(7, 5), (20, 9)]:
            logits = loss in ("bce", "focal", "categorical-focal") and rows == 20
            out.append(random_case(rng, loss, rows, cols, from_logits=logits or loss == "cosine"))
    out.append(random_case(rng, "ce", 9, 6, "index", from_logits=False, note="probabilities, class indexes"))
    for loss in SEGMENTATION:
        for rows, cols in [(7, 5), (20, 9)]:
            out.append(random_case(rng, loss, rows, cols, from_logits=False))
    # saturated logits (losses of 10^4) times large and tiny weights; the rounding weights alone
    z = np.array([[1e4, 0, -1e4, 50], [-88, -100, 0, 0], [3, 3, 3, 3], [0, -200, -300, -400], [0, 1e4, 0, 0],
                  [5, -5, 0, 1]], np.float32)
    w = np.array([3e4, 1e-6, 0.0, 1e4, 2.0 ** -20, 1e-30])
    out.append({"loss": "ce", "target": np.array([[2], [1], [0], [3], [0], [1]], np.float32), "pred": z,
                "weights": w, "labels": "index", "note": "large losses times large and tiny weights"})
    out.append({"loss": "ce", "target": np.eye(4, dtype=np.float32)[[2, 1, 0, 3, 0, 1]], "pred": z,
                "weights": w, "labels": "onehot", "note": "large losses times large and tiny weights, one-hot"})
    z = _logits(rng, 8, 6)
    out.append({"loss": "ce", "target": rng.integers(0, 6, (8, 1)).astype(np.float32), "pred": z,
                "weights": np.array([*TIES, 0.1, 1 / 3, 0.0, 1e-40]), "labels": "index",
                "note": "weights rounded once and twice, a subnormal weight"})
    y = np.array([[1e-20, 0, 1e19], [0, 3e-39, -1e-30], [100, -100, 7], [1, 2, 3]], np.float32)
    out.append({"loss": "mse", "target": y, "pred": np.zeros_like(y), "weights": np.array([1e4, 3e4, 1e-6, *TIES[:1]]),
                "note": "squares near overflow times weights"})
    out.append({"loss": "mse", "target": y[2:], "pred": np.zeros_like(y[2:]), "weights": np.array([0.0, 1e-40]),
                "note": "zero and subnormal weights"})
    # weights float16 holds as ∞ (65520 by a tie), and below its subnormals
    beyond = np.array([1e5, 7e4, 65520.0, 65519.0, 1e-8, 3e-8])
    for loss, labels in (("ce", "index"), ("mse", None), ("bce", None)):
        out.append(random_case(rng, loss, 6, 4, labels, note="weights beyond float16") | {"weights": beyond})
    return out


def fits(case: dict, dtype: str) -> bool:
    """Inputs the dtype holds as finite numbers (lossgrad refuses the others)."""
    with np.errstate(over="ignore"):
        return dtype != "float16" or bool(np.isfinite(case["pred"].astype(np.float16)).all()
                                          and np.isfinite(case["target"].astype(np.float16)).all())


def meta() -> dict:
    import tensorflow as tf

    from make_golden import versions

    flags = sorted({f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                    for f in line.split(":")[1].split() if f.startswith(("avx", "fma", "sse4"))})
    return {"versions": versions(), "build": {k: str(v) for k, v in tf.sysconfig.get_build_info().items()},
            "compile_flags": tf.sysconfig.get_compile_flags(), "cpu_flags": flags,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}


def main() -> None:
    rng = np.random.default_rng(20261205)
    every = cases(rng)
    records = [record(conv, case, dtype) for dtype in DTYPE_NAMES for conv in CONVENTIONS for case in every
               if fits(case, dtype) and (conv == "keras" or case["loss"] not in SEGMENTATION)]
    records += [long_record(conv, dtype, rows, classes, labels, 7100 + i)
                for i, (dtype, rows, classes, labels) in enumerate(LONG) for conv in CONVENTIONS]
    OUT.write_text(json.dumps({"meta": meta(), "records": records}, indent=None) + "\n")
    print(f"{len(records)} records -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
