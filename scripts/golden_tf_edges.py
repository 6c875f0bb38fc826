"""Record Keras 3's and tf-keras' results at the edges of the floating-point range, for tests/golden/tf_edges.json
(read by tests/test_tf_edges.py). Subnormal inputs: TensorFlow's CPU code reads a subnormal operand as zero
(denormals-are-zero), so a subnormal soft target times a large factor, or a class α subnormal as the float32 tensor
Keras 3 makes of it, is 0 there. Huge exponents: Eigen's pow gives 0 or ∞ outright for |γ| from max_exponent·ln 2/ε
(7.4e8 in float32, 3.2e18 in float64), where its double words would overflow.

Each record: the convention, the loss (dice, tversky: Keras 3's Dice and Tversky with axis=1; categorical-focal:
Keras 3's and tf-keras' CategoricalFocalCrossentropy), the dtype, the options, the targets and predictions (each
held exactly in the dtype), and the per-sample losses (reduction none) and, for "sum" and "sum_over_batch_size"
(lossgrad's mean), the value and the GradientTape gradient with respect to the predictions, every number as
float.hex. The cases: a subnormal target beside a prediction of 1e-7 (dice's and tversky's gradient y·g with g
about −2/ε), in float32, bfloat16 and float64; categorical-focal with a class α of 1e-38 (a float32 subnormal) and
targets of 1e18, with targets of 5e-324 under α of 1e30 and 3e38 in float64, and Keras 3's float32 α tensor of
[1e-45, 1] in float64; categorical-focal and focal with γ from 1e9 to 3e38 (1e19 and 1e300 in float64), on
probabilities and logits, in rows of 8 classes (whole packets of Eigen's pow) and 3; a subnormal huber δ and focal
γ (read as 0 by the packets, as it is by the C library's powf), and float16 mse whose Square gradient overflows.

    python3 scripts/golden_tf_edges.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "tf_edges.json"
REDUCTIONS = ("sum", "sum_over_batch_size")


def held(a: list, dtype: str) -> np.ndarray:
    """The numbers as the dtype holds them, in float64."""
    import ml_dtypes

    kind = {"float32": np.float32, "float64": np.float64, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}[dtype]
    return np.asarray(a, dtype=np.float64).astype(kind).astype(np.float64)


def cases() -> list[tuple[str, str, str, dict, np.ndarray, np.ndarray]]:
    """(convention, loss, dtype, options, y, p)."""
    out = []
    tiny = {"float32": [1e-40, 3e-39, 2e-45], "bfloat16": [1e-39, 5e-40, 9e-41], "float64": [1e-310, 5e-324, 2e-308]}
    for dtype, subs in tiny.items():
        for loss, options in (("dice", {}), ("tversky", {}), ("tversky", {"alpha": 0.3, "beta": 0.7})):
            for sub in subs:
                out.append(("keras", loss, dtype, options, held([[sub, 0.0]], dtype), held([[1e-7, 0.0]], dtype)))
                out.append(("keras", loss, dtype, options, held([[sub, 0.5, 0.0], [0.0, sub, 1.0]], dtype),
                            held([[1e-7, 0.25, 0.0], [3e-7, 2e-7, 0.75]], dtype)))
    for conv in ("keras", "tf-keras"):
        for gamma in (1.0, 2.0):
            out.append((conv, "categorical-focal", "float32", {"gamma": gamma, "class_alpha": [1e-38]},
                        held([[0.0, 1e18, 0.0]], "float32"), held([[0.25, 0.5, 0.25]], "float32")))
            out.append((conv, "categorical-focal", "bfloat16", {"gamma": gamma},
                        held([[1e-39, 1.0, 0.0], [0.0, 0.5, 5e-40]], "bfloat16"),
                        held([[0.25, 0.5, 0.25], [0.125, 0.75, 0.125]], "bfloat16")))
            for alpha in ([1e30], [3e38, 1.0]):
                out.append((conv, "categorical-focal", "float64", {"gamma": gamma, "class_alpha": alpha,
                                                                   "from_logits": True},
                            held([[5e-324, 0.0], [0.0, 1.0]], "float64"), held([[0.0, 0.0], [1.0, -1.0]], "float64")))
    out.append(("keras", "categorical-focal", "float64", {"gamma": 2.0, "class_alpha": [1e-45, 1.0]},
                held([[1.0, 0.0], [0.5, 0.5]], "float64"), held([[0.25, 0.75], [0.5, 0.5]], "float64")))
    return out + huge_gammas() + subnormal_parameters()


def subnormal_parameters() -> list[tuple[str, str, str, dict, np.ndarray, np.ndarray]]:
    """A subnormal δ (huber) or γ (focal), which a packet operation reads as 0 and the C library's powf (focal's
    elements beyond the last whole packet) as it is; and float16 mse, whose Square gradient x·2 overflows."""
    out = []
    for conv in ("keras", "tf-keras"):
        for delta in (1e-38, 3e-39):
            out.append((conv, "huber", "float32", {"delta": delta}, held([[0.0, 0.0, 0.0]], "float32"),
                        held([[1e30, 2.0, 1e-3]], "float32")))
        for gamma in (3e-39, 1e-45):
            for classes in (3, 8, 11):  # (a tail element, a whole packet, and both)
                y = np.zeros((1, classes))
                y[0, 1] = 1.0
                p = np.full((1, classes), 0.5)
                p[0, 0] = 0.0
                out.append((conv, "focal", "float32", {"gamma": gamma}, held(y, "float32"), held(p, "float32")))
        out.append((conv, "mse", "float16", {}, held([[65504.0, 0.0], [-40000.0, 1.0]], "float16"),
                    held([[0.0, 0.0], [0.0, 1.0]], "float16")))
    return out


def huge_gammas() -> list[tuple[str, str, str, dict, np.ndarray, np.ndarray]]:
    """γ at and beyond Eigen's huge exponent, on probabilities and logits."""
    rng = np.random.default_rng(20261207)
    out = []
    for dtype, gammas in (("float32", (1e9, 1e30, 3e38)), ("float64", (1e19, 1e300))):
        for conv in ("keras", "tf-keras"):
            for gamma in gammas:
                for classes in (8, 3):
                    p = rng.dirichlet(np.ones(classes), 2)
                    y = np.eye(classes)[[0, classes - 1]]
                    out.append((conv, "categorical-focal", dtype, {"gamma": gamma}, held(y, dtype), held(p, dtype)))
                    z = rng.standard_normal((2, classes)) * 3
                    out.append((conv, "categorical-focal", dtype, {"gamma": gamma, "from_logits": True},
                                held(y, dtype), held(z, dtype)))
                if dtype == "float64":  # (focal's float64 is lossgrad's formulas: reproduced in float32)
                    continue
                out.append((conv, "focal", dtype, {"gamma": gamma, "from_logits": True},
                            held([[0.0, 1.0, 1.0, 0.0, 0.5, 1.0, 0.0, 0.25, 1.0]], dtype),
                            held([[-2.0, 3.0, -0.5, 0.25, 1.0, 8.0, -8.0, 0.0, 1e-3]], dtype)))
    return out


def _loss(conv: str, loss: str, dtype: str, options: dict, reduction: str | None):  # noqa: ANN202
    import keras

    if loss == "dice":
        return keras.losses.Dice(reduction=reduction, axis=1, dtype=dtype)
    if loss == "tversky":  # (lossgrad's --alpha weighs the false negatives, Keras' beta)
        return keras.losses.Tversky(alpha=options.get("beta", 0.5), beta=options.get("alpha", 0.5),
                                    reduction=reduction, axis=1, dtype=dtype)
    module = keras.losses if conv == "keras" else __import__("tf_keras").losses
    if loss in ("focal", "huber", "mse"):  # (focal: lossgrad's α none unless given, apply_class_balancing off)
        cls, kw = {"focal": ("BinaryFocalCrossentropy", {"from_logits": bool(options.get("from_logits")),
                                                          "gamma": options.get("gamma")}),
                   "huber": ("Huber", {"delta": options.get("delta")}), "mse": ("MeanSquaredError", {})}[loss]
        return getattr(module, cls)(reduction=reduction or "none", **kw) if conv == "tf-keras" else \
            getattr(module, cls)(reduction=reduction, dtype=dtype, **kw)
    alpha = options.get("class_alpha", [1.0])  # (lossgrad's α_k = 1 where none is given; Keras' own default is 0.25)
    alpha = alpha[0] if len(alpha) == 1 else alpha
    kw = {"alpha": alpha, "gamma": options["gamma"], "from_logits": bool(options.get("from_logits"))}
    if conv == "keras":
        return keras.losses.CategoricalFocalCrossentropy(reduction=reduction, dtype=dtype, **kw)
    import tf_keras

    return tf_keras.losses.CategoricalFocalCrossentropy(reduction=reduction or "none", **kw)


def record(conv: str, loss: str, dtype: str, options: dict, y: np.ndarray, p: np.ndarray) -> dict:
    import tensorflow as tf

    kind = {"float32": tf.float32, "float64": tf.float64, "bfloat16": tf.bfloat16, "float16": tf.float16}[dtype]
    out = {"convention": conv, "loss": loss, "dtype": dtype, "options": options,
           "target": [float(v).hex() for v in y.reshape(-1)], "pred": [float(v).hex() for v in p.reshape(-1)],
           "shape": list(y.shape)}
    # (the inputs made from numpy arrays of the dtype: tf.cast of a float64 tensor would flush the subnormals first)
    yt = tf.constant(y.astype(tf.dtypes.as_dtype(kind).as_numpy_dtype))
    for reduction in (None, *REDUCTIONS):
        pv = tf.Variable(tf.constant(p.astype(tf.dtypes.as_dtype(kind).as_numpy_dtype)))
        with tf.GradientTape() as tape:
            v = _loss(conv, loss, dtype, options, reduction)(yt, pv)
        if reduction is None:
            out["losses"] = [float(x).hex() for x in np.asarray(v.numpy(), dtype=np.float64).reshape(-1)]
            continue
        g = tape.gradient(v, pv)
        out[reduction] = {"value": float(np.float64(v.numpy())).hex(),
                          "grad": [float(x).hex() for x in np.asarray(g.numpy(), dtype=np.float64).reshape(-1)]}
    return out


def main() -> None:
    from make_golden import cpu_model, versions

    records = [record(*case) for case in cases()]
    meta = {**versions(), "cpu": cpu_model()}
    OUT.write_text(json.dumps({"versions": meta, "made_by": "scripts/golden_tf_edges.py", "records": records},
                              separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(records)} records, {meta}")


if __name__ == "__main__":
    main()
