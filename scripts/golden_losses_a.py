"""Records the frameworks' outputs for poisson's --full term, categorical-focal, dice and tversky (Keras 3, and
PyTorch's as MONAI has them: python3 -m pip install --no-deps monai) in tests/golden/.

Each output file is in the case format tests/test_golden.py reads, with a top-level "loss" naming the loss it
holds (so that it can sit beside the file scripts/make_golden.py writes for the same loss). Cases run in float64
and in float32 (a case's params then carry "dtype": "float32"); gradients are each framework's autodiff of the
reduced value (of the sum, for reduction none). Run from the project root with the frameworks installed:

    python3 scripts/golden_losses_a.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import OUT, REDUCTIONS, golden_case, versions  # noqa: E402

SEED = 20261201


def poisson_full_inputs(rng, log_input):
    """Counts 0..40 and the edges of PyTorch's y > 1 mask (0.5, 1, 1 + 2⁻⁵², 2.5), beside rates near them."""
    y = np.concatenate([[0.0, 1.0, 0.5, 1 + 2**-52, 2.5, 3.0, 40.0, 1e6], rng.integers(0, 41, 8).astype(float)])
    p = y * rng.uniform(0.5, 1.5, y.size) + rng.gamma(1.0, 0.5, y.size)
    return y[:, None], (np.log(p) if log_input else p)[:, None]


def run_torch_poisson(y, p, log_input, reduction, dtype):
    import torch
    import torch.nn.functional as F

    t = getattr(torch, dtype)
    pt = torch.tensor(p, dtype=t, requires_grad=True)
    yt = torch.tensor(y, dtype=t)
    per = F.poisson_nll_loss(pt, yt, log_input=log_input, full=True, reduction="none")
    val = F.poisson_nll_loss(pt, yt, log_input=log_input, full=True, reduction=reduction) \
        if reduction != "none" else per.sum()
    val.backward()
    return per.detach().double().numpy(), (None if reduction == "none" else float(val.item())), \
        pt.grad.double().numpy()


def poisson_full_cases(rng):
    cases = []
    for log_input in (False, True):
        y, p = poisson_full_inputs(rng, log_input)
        for dtype in ("float64", "float32"):
            # float32 cases record the float32 inputs the framework saw
            yy, pp = y.astype(dtype).astype(np.float64), p.astype(dtype).astype(np.float64)
            params = {"full": True} | ({"dtype": "float32"} if dtype == "float32" else {})
            for reduction in REDUCTIONS:
                per, val, grad = run_torch_poisson(yy, pp, log_input, reduction, dtype)
                cases.append(golden_case("torch", log_input, None, params, reduction, yy, pp, per, val, grad))
    return cases


def categorical_focal_inputs(rng, from_logits):
    """Rows of 4 classes: one-hot and soft targets; logits with spreads past exp's range and a class holding all
    but 1e−9, or probability rows with zeros, values below Keras' clip and rows that do not sum to 1."""
    idx = rng.integers(0, 4, size=10)
    y = np.eye(4)[idx]
    y[1] = [0.1, 0.2, 0.3, 0.4]
    y[2] = [0.0, 0.5, 0.5, 0.0]
    if from_logits:
        z = rng.normal(scale=2, size=(10, 4))
        z[3] = [1000.0, -1000.0, 0.0, 3.0]
        z[4] = [25.0, 0.0, -2.0, 1.0]
        z[5] = [-745.0, 745.0, 0.5, -0.5]
        return y, z
    p = rng.dirichlet(np.ones(4), size=10)
    p[3] = [0.0, 0.5, 0.5, 0.0]
    p[4] = [1e-9, 1 - 1e-9, 0.0, 0.0]
    p[5] = p[5] * 0.5  # Keras divides each row by its sum
    p[6] = [0.05, 0.95, 0.0, 0.0]
    y[3], y[4], y[6] = np.eye(4)[1], np.eye(4)[1], np.eye(4)[1]
    return y, p


def run_keras_categorical_focal(conv, y, p, from_logits, reduction, dtype, gamma, alpha):
    import tensorflow as tf

    module = __import__("keras" if conv == "keras" else "tf_keras")
    pv = tf.Variable(p, dtype=getattr(tf, dtype))
    with tf.GradientTape() as tape:
        per = module.losses.categorical_focal_crossentropy(tf.constant(y, dtype=getattr(tf, dtype)), pv,
                                                           alpha=alpha, gamma=gamma, from_logits=from_logits)
        total = tf.reduce_sum(per)
        # the Loss class's sum_over_batch_size: the sum over the number of samples
        value = total / tf.cast(tf.size(per), total.dtype) if reduction == "mean" else total
    grad = tape.gradient(value, pv)
    return per.numpy().astype(np.float64), (None if reduction == "none" else float(value.numpy())), \
        grad.numpy().astype(np.float64)


def categorical_focal_cases(rng):
    cases = []
    options = [(2.0, [1.0]), (2.0, [0.25]), (0.5, [0.1, 0.2, 0.3, 0.4]), (0.0, [1.0]), (1.5, [0.1])]
    for from_logits in (False, True):
        y, p = categorical_focal_inputs(rng, from_logits)
        for conv in ("keras", "tf-keras"):
            for dtype in ("float64", "float32"):
                yy, pp = y.astype(dtype).astype(np.float64), p.astype(dtype).astype(np.float64)
                for gamma, alpha in options:
                    params = {"gamma": gamma, "class_alpha": alpha} | (
                        {"dtype": "float32"} if dtype == "float32" else {})
                    keras_alpha = alpha[0] if len(alpha) == 1 else alpha
                    for reduction in REDUCTIONS:
                        per, val, grad = run_keras_categorical_focal(conv, yy, pp, from_logits, reduction, dtype,
                                                                     gamma, keras_alpha)
                        cases.append(golden_case(conv, from_logits, None, params, reduction, yy, pp, per, val, grad))
    return cases


def segmentation_inputs(rng, from_logits):
    """Masks of 6 pixels: hard and soft targets, an empty target row, a perfect prediction, a row of zeros."""
    y = (rng.random((8, 6)) < 0.4).astype(float)
    y[1] = np.round(rng.uniform(0, 1, 6), 3)
    y[2] = 0.0
    y[7] = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    if from_logits:
        z = rng.normal(scale=3, size=(8, 6))
        z[3] = [40.0, -40.0, 0.0, 1e-3, -20.0, 20.0]
        return y, z
    p = rng.uniform(0, 1, (8, 6))
    p[3] = y[3]  # perfect
    p[4] = [0.0, 1.0, 1e-9, 1 - 1e-9, 0.5, 0.0]
    p[7] = 0.0
    return y, p


def run_keras_segmentation(loss, y, p, reduction, dtype, alpha, beta):
    import keras
    import tensorflow as tf

    pv = tf.Variable(p, dtype=getattr(tf, dtype))
    yt = tf.constant(y, dtype=getattr(tf, dtype))
    with tf.GradientTape() as tape:
        # axis=1: one loss per sample (keras' default axis=None takes the whole batch as one set)
        per = keras.losses.dice(yt, pv, axis=1) if loss == "dice" else \
            keras.losses.tversky(yt, pv, alpha=alpha, beta=beta, axis=1)
        total = tf.reduce_sum(per)
        value = total / tf.cast(tf.size(per), total.dtype) if reduction == "mean" else total
    grad = tape.gradient(value, pv)
    return per.numpy().astype(np.float64), (None if reduction == "none" else float(value.numpy())), \
        grad.numpy().astype(np.float64)


def run_monai(loss, y, p, from_logits, reduction, dtype, squared, alpha, beta, smooth=None, jaccard=False,
              smooth_dr=None):
    import torch
    from monai.losses import DiceLoss, TverskyLoss

    t = getattr(torch, dtype)
    pt = torch.tensor(p, dtype=t, requires_grad=True)
    yt = torch.tensor(y, dtype=t)

    kw = {} if smooth is None else {"smooth_nr": smooth, "smooth_dr": smooth}  # (None: MONAI's default, 1e-5)
    if smooth_dr is not None:
        kw["smooth_dr"] = smooth_dr

    def fn(red):
        # (batch, channel, pixels): one channel, each sample's pixels reduced
        if loss == "dice":
            f = DiceLoss(sigmoid=from_logits, squared_pred=squared, reduction=red, jaccard=jaccard, **kw)
        else:
            f = TverskyLoss(sigmoid=from_logits, alpha=alpha, beta=beta, reduction=red, **kw)
        return f(pt[:, None, :], yt[:, None, :])

    per = fn("none").reshape(-1)
    val = fn(reduction) if reduction != "none" else per.sum()
    val.backward()
    return per.detach().double().numpy(), (None if reduction == "none" else float(val.item())), \
        pt.grad.double().numpy()


def segmentation_cases(rng, loss):
    cases = []
    opts = [{"squared": False}, {"squared": True}] if loss == "dice" else [{"alpha": 0.5, "beta": 0.5},
                                                                          {"alpha": 0.3, "beta": 0.7}]
    for from_logits in (False, True):
        y, p = segmentation_inputs(rng, from_logits)
        for conv in ("keras", "torch"):
            if conv == "keras" and from_logits:
                continue  # (Keras' dice and tversky take probabilities)
            for dtype in ("float64", "float32"):
                yy, pp = y.astype(dtype).astype(np.float64), p.astype(dtype).astype(np.float64)
                for o in opts:
                    if conv == "keras" and o.get("squared"):
                        continue
                    params = {k: v for k, v in o.items() if v is not False} | (
                        {"dtype": "float32"} if dtype == "float32" else {})
                    for reduction in REDUCTIONS:
                        if conv == "keras":
                            # Keras' alpha weighs Σ(1 − p)y: lossgrad's beta
                            out = run_keras_segmentation(loss, yy, pp, reduction, dtype, o.get("beta"), o.get("alpha"))
                        else:
                            out = run_monai(loss, yy, pp, from_logits, reduction, dtype, o.get("squared", False),
                                            o.get("alpha"), o.get("beta"))
                        cases.append(golden_case(conv, from_logits, None, params, reduction, yy, pp, *out))
    return cases


def write(stem, loss, cases, meta):
    path = OUT / f"{stem}.json"
    path.write_text(json.dumps({"versions": meta, "made_by": "scripts/golden_losses_a.py", "loss": loss,
                                "cases": cases}, indent=1) + "\n")
    print(f"{path.name}: {len(cases)} cases")


def main():
    rng = np.random.default_rng(SEED)
    meta = versions()
    write("poisson-full", "poisson", poisson_full_cases(rng), meta)
    write("categorical-focal", "categorical-focal", categorical_focal_cases(rng), meta)
    import monai

    meta = meta | {"monai": monai.__version__}
    for loss in ("dice", "tversky"):
        write(loss, loss, segmentation_cases(rng, loss), meta)


if __name__ == "__main__":
    main()
