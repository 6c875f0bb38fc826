"""Record Dice and Tversky over the whole batch, one loss for all of its samples, for tests/golden/over_batch.json
(read by tests/test_over_batch.py): lossgrad's --over-batch.

Keras 3: keras.losses.Dice(axis=None) and keras.losses.Tversky(axis=None), their default (alpha and beta handed
over swapped: Keras' alpha weighs the false negatives), with dtype= the dtype, on TensorFlow's CPU kernels, in
float64, float32, float16 and bfloat16: the loss (reduction None: one number), and the value and GradientTape's
gradient with respect to the predictions under "sum_over_batch_size" (lossgrad's mean) and "sum". MONAI:
DiceLoss(batch=True) and TverskyLoss(batch=True) on PyTorch's CPU kernels, one channel of pixels per sample
([B, 1, N]), with squared_pred, jaccard, sigmoid (logits), smooth_nr and smooth_dr, in the same four dtypes: the
reduced value and autograd's gradient ("none": its one loss, and the gradient of it).

Each record: the framework, the loss, dtype, reduction, lossgrad's options, the batch's shape and the seed its
inputs come from (inputs(): pure numpy, draws and comparisons only, so the test rebuilds them on any machine) with
the SHA-256 of the inputs as the framework is given them, and the framework's loss, value and gradient as
float.hex (a zero's sign kept); a gradient of more than 4,096 elements by SHA-256. Shapes run from one sample of
one output to 200,000 outputs (past TensorFlow's and PyTorch's reduction blocks and lossgrad's slices of 32,768
rows); besides random masks, soft targets, probabilities and logits: an all-zero batch (Keras: 0/ε; MONAI: its
smoothing), a perfect batch, and a batch with empty samples among full ones. The versions, the processor and
PyTorch's instruction set are recorded (σ(z)'s scalar tail depends on it).

    python3 scripts/golden_over_batch.py
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "over_batch.json"
DTYPES = ("float64", "float32", "float16", "bfloat16")
SHAPES = ((1, 1), (2, 3), (7, 5), (13, 1), (3, 40), (16, 24), (50, 300), (8, 2049), (5, 9000), (40, 1000),
          (4, 50000), (40000, 5))
KINDS = ("random", "soft", "all zero", "perfect", "empty samples")
HASHED = 4096  # gradients of more elements are kept by SHA-256
# MONAI's options (lossgrad's names), each tried on a few shapes
MONAI_OPTIONS = ({}, {"squared": True}, {"jaccard": True}, {"from_logits": True}, {"smooth": 1.0},
                 {"smooth": 1.0, "smooth_dr": 0.5}, {"squared": True, "jaccard": True, "from_logits": True})
TVERSKY = ({"alpha": 0.3, "beta": 0.7}, {"alpha": 0.5, "beta": 0.5, "from_logits": True})


def inputs(seed: int, shape: tuple[int, int], kind: str, from_logits: bool) -> tuple[np.ndarray, np.ndarray]:
    """Targets (masks, or soft masks) and predictions (probabilities, or logits) in float64, before the dtype."""
    rng = np.random.default_rng(seed)
    y = rng.random(shape) if kind == "soft" else (rng.random(shape) < 0.4) * 1.0
    p = rng.random(shape) ** float(rng.choice([0.5, 1.0, 3.0]))
    if kind == "all zero":
        y, p = np.zeros(shape), np.zeros(shape)
    elif kind == "perfect":
        p = y.copy()
    elif kind == "empty samples":
        y[::2], p[::3] = 0.0, 0.0
    if from_logits:  # (logits from −12 to 12 in steps of 1/64: exact in every dtype but the extremes of bfloat16)
        p = np.round((rng.random(shape) * 24 - 12) * 64) / 64
        if kind == "perfect":
            p = np.where(y > 0, 30.0, -30.0)
    return y, p


def held(a: np.ndarray, dtype: str) -> np.ndarray:
    """The values of the dtype nearest to a."""
    import ml_dtypes

    kind = {"float64": np.float64, "float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
    return np.asarray(a, dtype=np.float64).astype(kind[dtype]).astype(np.float64)


def digest(*arrays: np.ndarray) -> str:
    """SHA-256 of the arrays' float64 bytes, in C order, one after another, every NaN as numpy's (a NaN's sign
    and payload are no part of a result)."""
    h = hashlib.sha256()
    for a in arrays:
        x = np.asarray(a, dtype=np.float64)
        h.update(np.ascontiguousarray(np.where(np.isnan(x), np.nan, x)).tobytes())
    return h.hexdigest()


def _hex(a: Any) -> Any:
    a = np.asarray(a, dtype=np.float64)
    return float(a).hex() if a.ndim == 0 else [float(v).hex() for v in a.reshape(-1)]


def _grad(g: np.ndarray) -> Any:
    return {"sha256": digest(g)} if g.size > HASHED else _hex(g)


def keras_run(loss: str, y: np.ndarray, p: np.ndarray, dtype: str, reduction: str, opts: dict) -> dict:
    import keras
    import tensorflow as tf

    t = getattr(tf, dtype)
    red = {"mean": "sum_over_batch_size", "sum": "sum", "none": None}[reduction]
    if loss == "dice":
        f = keras.losses.Dice(axis=None, dtype=dtype, reduction=red)
    else:  # (Keras' alpha weighs the false negatives: lossgrad's beta)
        f = keras.losses.Tversky(alpha=opts["beta"], beta=opts["alpha"], axis=None, dtype=dtype, reduction=red)
    pv = tf.Variable(tf.constant(p, t))
    with tf.GradientTape() as tape:
        v = f(tf.constant(y, t), pv)
    g = tape.gradient(v, pv)
    return {"value": _hex(tf.cast(v, tf.float64).numpy()), "grad": _grad(tf.cast(g, tf.float64).numpy())}


def monai_run(loss: str, y: np.ndarray, p: np.ndarray, dtype: str, reduction: str, opts: dict) -> dict:
    import torch
    from monai.losses import DiceLoss, TverskyLoss

    t = getattr(torch, dtype)
    pt = torch.tensor(p, dtype=torch.float64).to(t).requires_grad_(True)
    yt = torch.tensor(y, dtype=torch.float64).to(t)
    s = opts.get("smooth", 1e-5)
    kw = {"smooth_nr": s, "smooth_dr": opts.get("smooth_dr", s), "batch": True, "reduction": reduction,
          "sigmoid": bool(opts.get("from_logits"))}
    if loss == "dice":
        f = DiceLoss(squared_pred=bool(opts.get("squared")), jaccard=bool(opts.get("jaccard")), **kw)
    else:
        f = TverskyLoss(alpha=opts["alpha"], beta=opts["beta"], **kw)
    v = f(pt[:, None, :], yt[:, None, :])
    (v.sum() if reduction == "none" else v).backward()
    assert pt.grad is not None
    return {"value": _hex(v.detach().to(torch.float64).reshape(-1)[0].numpy()),
            "grad": _grad(pt.grad.to(torch.float64).numpy())}


def cases() -> list[tuple[str, str, dict, tuple[int, int], str]]:
    """(framework, loss, options, shape, kind): every shape and kind for the plain losses, each option on a few."""
    out = []
    for shape in SHAPES:
        for kind in KINDS if shape[0] * shape[1] < 100_000 else ("random",):
            for fw in ("keras", "monai"):
                out.append((fw, "dice", {}, shape, kind))
                out.append((fw, "tversky", {"alpha": 0.3, "beta": 0.7}, shape, kind))
    for i, opts in enumerate(MONAI_OPTIONS[1:] + TVERSKY):
        for shape in (SHAPES[2 + i % 4], SHAPES[7 + i % 3]):
            out.append(("monai", "tversky" if "alpha" in opts else "dice", opts, shape, "random"))
    return out


def record(k: int, case: tuple, dtype: str, reduction: str) -> dict:
    fw, loss, opts, shape, kind = case
    seed = 20261205 + k
    y, p = (held(a, dtype) for a in inputs(seed, shape, kind, bool(opts.get("from_logits"))))
    run = keras_run if fw == "keras" else monai_run
    return {"framework": fw, "loss": loss, "dtype": dtype, "reduction": reduction, "options": opts,
            "shape": list(shape), "kind": kind, "seed": seed, "inputs_sha256": digest(y, p),
            **run(loss, y, p, dtype, reduction, opts)}


def main() -> None:
    import monai
    import torch

    from make_golden import cpu_model, versions

    records = []
    for k, case in enumerate(cases()):
        for dtype in DTYPES:
            for reduction in ("mean", "sum", "none"):
                if case[0] == "keras" and reduction == "sum" and case[3][0] * case[3][1] > 100_000:
                    continue  # (a scalar's sum is the scalar: the long batches' mean and none suffice)
                records.append(record(k, case, dtype, reduction))
    meta = {**versions(), "monai": monai.__version__, "cpu": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}
    OUT.write_text(json.dumps({"versions": meta, "made_by": "scripts/golden_over_batch.py", "records": records},
                              separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(records)} records, {OUT.stat().st_size} bytes, {meta}")


if __name__ == "__main__":
    main()
