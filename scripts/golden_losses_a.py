"""Records the frameworks' outputs for poisson's --full term and categorical-focal in tests/golden/.

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


if __name__ == "__main__":
    main()
