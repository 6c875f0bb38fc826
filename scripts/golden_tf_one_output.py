"""Record Keras 3's and tf-keras' CosineSimilarity on samples of one output, for tests/golden/tf_one_output.json
(read by tests/test_lowp_tf_elem.py).

TensorFlow's reduce_sum over an axis of one element drops the axis: the element is copied, so a product of −0
stays −0, where a sum would start from +0. A cosine of one output is −(ŷ·p̂); where p² overflows the dtype (from
|p| = 256 in float16, about 1.8·10¹⁹ in float32 and bfloat16) rsqrt gives 0, p̂ is ±0 by the sign of p and the
loss ±0 by the signs of y and p. Each record: the case (convention, dtype, rows, scale of the predictions, weighted
or not), the seed its inputs are drawn from (`inputs`, pure numpy: the test draws them again) and their digest,
and the framework's losses (reduction none), and the value and gradient of the sum and of the mean (SHA-256 of
their float64 bytes; the values as hex). Versions and the processor are recorded.

    python3 scripts/golden_tf_one_output.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_weights_ctc import digest, hexed  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "tf_one_output.json"
REDUCTIONS = {"sum": "sum", "mean": "sum_over_batch_size"}
# (convention, dtype, rows, scale of p, weighted): predictions whose squares overflow the dtype in many rows
CASES = tuple((conv, dtype, rows, scale, weighted)
              for conv in ("keras", "tf-keras")
              for dtype, scale in (("float16", 300.0), ("bfloat16", 3e19), ("float32", 3e19))
              for rows, weighted in ((40, False), (40, True), (1, False)))


def inputs(seed: int, case: tuple) -> dict[str, np.ndarray]:
    """Targets and predictions [rows, 1] as the dtype holds them (rounded to nearest by numpy and ml_dtypes), and
    weights (float64, as given; none for an unweighted case)."""
    import ml_dtypes

    _, dtype, rows, scale, weighted = case
    kind = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}[dtype]
    rng = np.random.default_rng(seed)
    y = (rng.standard_normal((rows, 1)) * 10).astype(kind).astype(np.float64)
    p = (rng.standard_normal((rows, 1)) * scale).astype(kind).astype(np.float64)
    w = rng.uniform(0, 2, rows) if weighted else np.ones(0)
    return {"y": y, "p": p, "w": w}


def keras_run(case: tuple, d: dict[str, np.ndarray]) -> dict[str, Any]:
    """The framework's CosineSimilarity (Keras 3's with dtype=, tf-keras' on tensors of the dtype)."""
    import tensorflow as tf

    conv, dtype = case[:2]
    module = __import__("keras" if conv == "keras" else "tf_keras")
    kind = getattr(tf, dtype)
    kw = {"sample_weight": d["w"]} if d["w"].size else {}

    def loss(reduction: str) -> Any:
        return module.losses.CosineSimilarity(reduction=reduction, **({"dtype": dtype} if conv == "keras" else {}))
    y = tf.constant(d["y"], kind)
    out = {"losses": tf.cast(loss("none")(y, tf.constant(d["p"], kind), **kw), tf.float64).numpy()}
    for name, reduction in REDUCTIONS.items():
        pv = tf.Variable(tf.constant(d["p"], kind))
        with tf.GradientTape() as tape:
            value = loss(reduction)(y, pv, **kw)
        out[name] = (float(tf.cast(value, tf.float64).numpy()), tf.cast(tape.gradient(value, pv), tf.float64).numpy())
    return out


def record(k: int, case: tuple) -> dict[str, Any]:
    seed = 20261207 + k
    d = inputs(seed, case)
    got = keras_run(case, d)
    return {"case": list(case), "seed": seed, "inputs": digest(*d.values()), "losses": digest(got["losses"]),
            **{name: {"value": hexed(got[name][0]), "grad": digest(got[name][1])} for name in REDUCTIONS},
            "zeros": int(np.sum(got["losses"] == 0)), "negative_zeros": int(np.sum(np.signbit(got["losses"])
                                                                                   & (got["losses"] == 0)))}


def main() -> None:
    from make_golden import cpu_model, versions

    recs = [record(k, case) for k, case in enumerate(CASES)]
    OUT.write_text(json.dumps({"versions": versions() | {"cpu": cpu_model()}, "records": recs}, indent=1) + "\n")
    print(f"{OUT}: {len(recs)} records")


if __name__ == "__main__":
    main()
