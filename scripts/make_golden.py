"""Runs the real frameworks on random and edge-case inputs and writes tests/golden/*.json.

Needs the `frameworks` extra (tensorflow-cpu, tf-keras, keras, torch==2.13.0, jax, optax), never lossgrad's own
runtime. Each file records the framework versions that produced it. Run from the project root:

    python -m pip install -e ".[frameworks]" && python scripts/make_golden.py

Every case is float64 end to end (jax with x64 enabled); gradients are each framework's own autodiff of the
reduced value (for reduction none: of the sum of the per-element losses).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden"
REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------- inputs


def bce_prob_inputs(rng):
    eps = 1e-7
    p_edge = [0.0, 1.0, 1e-8, eps, 1.5e-7, 1 - eps, 1 - 1e-8, 0.5, 1e-300, 1 - 2**-53, 2e-7, 0.9999998]
    p = np.array(p_edge * 2 + list(rng.uniform(0, 1, 12)))
    y = np.array([0.0] * len(p_edge) + [1.0] * len(p_edge) + list(np.round(rng.uniform(0, 1, 6), 3))
                 + [0.0, 1.0] * 3)
    return y, p


def bce_logit_inputs(rng):
    z_edge = [0.0, 1e-3, -1e-3, 1.0, -1.0, 10.0, -10.0, 37.0, -37.0, 40.0, -40.0, 100.0, -100.0, 1000.0, -1000.0]
    z = np.array(z_edge * 3 + list(rng.normal(scale=5, size=10)))
    y = np.array([0.0] * 15 + [1.0] * 15 + [0.999] * 8 + [0.25] * 7 + list(np.round(rng.uniform(0, 1, 10), 3)))
    return y, z


def ce_logit_inputs(rng, labels):
    z = rng.normal(scale=2, size=(8, 4))
    z[5] = [1000.0, -1000.0, 0.0, 3.0]  # a spread far past exp's range
    z[6] = [40.0, 0.0, -2.0, 1.0]  # one class holds nearly all the probability
    z[7] = [-745.0, 745.0, 0.5, -0.5]
    idx = rng.integers(0, 4, size=8)
    idx[6] = 0
    if labels == "index":
        return idx.astype(float), z
    y = np.eye(4)[idx]
    y[1] = [0.1, 0.2, 0.3, 0.4]  # soft targets
    y[2] = [0.0, 0.5, 0.5, 0.0]
    if labels == "multihot":
        y[3] = [1.0, 1.0, 0.0, 0.0]  # sum(y) = 2: TF's fused kernel and autodiff disagree here
        y[4] = [0.0, 0.0, 0.0, 0.0]
    return y, z


def ce_prob_inputs(rng, labels):
    p = rng.dirichlet(np.ones(4), size=8)
    p[3] = [0.0, 0.5, 0.5, 0.0]  # exact zeros: clipped
    p[4] = [1e-8, 1 - 1e-8, 0.0, 0.0]
    p[5] = p[5] * 2.0  # rows that do not sum to 1 are renormalised
    p[6] = [0.05, 0.95, 0.0, 0.0]
    idx = rng.integers(0, 4, size=8)
    idx[3], idx[4], idx[6] = 1, 1, 1
    if labels == "index":
        return idx.astype(float), p
    y = np.eye(4)[idx]
    y[1] = [0.1, 0.2, 0.3, 0.4]
    return y, p


def mse_inputs(rng, k):
    return rng.normal(size=(10, k)), rng.normal(size=(10, k))


def regression_inputs(rng, k, delta=1.0):
    """Errors at the edges that matter: 0, exactly +-delta (the huber/smooth-l1 seam), tiny, and large."""
    y = rng.normal(size=(12, k))
    e = rng.normal(scale=2, size=(12, k))
    e[0, 0], e[1, 0], e[2, 0], e[3, 0], e[4, 0], e[5, 0] = 0.0, delta, -delta, 1e-8, 50.0, -1e3
    return y, y + e


# ---------------------------------------------------------------- frameworks


def versions():
    import jax
    import keras
    import optax
    import tensorflow as tf
    import tf_keras
    import torch

    return {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__, "keras": keras.__version__,
            "torch": torch.__version__, "jax": jax.__version__, "optax": optax.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}


def torch_meta() -> dict:
    """versions(), with PyTorch's intra-op threads, its CPU capability and the processor: what a golden file of
    PyTorch's kernels, whose last bits depend on them, records."""
    import torch

    return {**versions(), "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu": cpu_model()}


def cpu_model() -> str:
    """The processor's name, as /proc/cpuinfo gives it ("unknown" elsewhere): the golden files of kernels whose last
    bits depend on it record it."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


def jax_versions() -> dict:
    """versions(), with jaxlib's, JAX's devices and the processor's vector extensions, which XLA's CPU code is
    compiled for."""
    import jax
    import jaxlib

    flags = sorted({f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                    for f in line.split(":")[1].split() if f.startswith(("avx", "fma", "sse4"))})
    return versions() | {"jaxlib": jaxlib.__version__, "jax_devices": str(jax.devices()), "cpu_flags": flags}


def run_keras(module, loss, y, p, from_logits, labels, reduction, param=None, smoothing=0.0):
    """Keras 3 (`keras`) or Keras 2 (`tf_keras`) functional loss on float64 tensors, reduced as its Loss class
    does (sum_over_batch_size: sum / number of samples), differentiated with GradientTape."""
    import tensorflow as tf

    losses = module.losses
    pv = tf.Variable(p, dtype=tf.float64)
    with tf.GradientTape() as tape:
        if loss == "bce":
            per = losses.binary_crossentropy(tf.constant(y), pv, from_logits=from_logits, label_smoothing=smoothing)
        elif loss == "mse":
            per = losses.mean_squared_error(tf.constant(y), pv)
        elif loss == "mae":
            per = losses.mean_absolute_error(tf.constant(y), pv)
        elif loss == "huber":
            per = losses.huber(tf.constant(y), pv, delta=param)
        elif loss == "logcosh":
            per = losses.log_cosh(tf.constant(y), pv)
        elif loss == "hinge":
            per = losses.hinge(tf.constant(y), pv)
        elif loss == "squared-hinge":
            per = losses.squared_hinge(tf.constant(y), pv)
        elif labels == "index":
            per = losses.sparse_categorical_crossentropy(tf.constant(y.astype(np.int64)), pv, from_logits=from_logits)
        else:
            per = losses.categorical_crossentropy(tf.constant(y), pv, from_logits=from_logits,
                                                  label_smoothing=smoothing)
        total = tf.reduce_sum(per)
        value = total / tf.cast(tf.size(per), total.dtype) if reduction == "mean" else total
    grad = tape.gradient(value, pv)
    return per.numpy(), (None if reduction == "none" else float(value.numpy())), grad.numpy()


def run_torch(loss, y, p, from_logits, labels, reduction, param=None, smoothing=0.0):
    import torch
    import torch.nn.functional as F

    pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    yt = torch.tensor(y, dtype=torch.float64)
    if loss == "bce":
        fn = F.binary_cross_entropy_with_logits if from_logits else F.binary_cross_entropy
        per = fn(pt, yt, reduction="none")
        val = fn(pt, yt, reduction=reduction) if reduction != "none" else per.sum()
    elif loss in ("mse", "mae", "huber", "smooth-l1"):
        fn = {"mse": F.mse_loss, "mae": F.l1_loss,
              "huber": lambda a, b, reduction: F.huber_loss(a, b, reduction=reduction, delta=param),
              "smooth-l1": lambda a, b, reduction: F.smooth_l1_loss(a, b, reduction=reduction, beta=param)}[loss]
        per = fn(pt, yt, reduction="none")
        val = fn(pt, yt, reduction=reduction) if reduction != "none" else per.sum()
    elif loss == "nll":
        target = torch.tensor(y.astype(np.int64))
        per = F.nll_loss(pt, target, reduction="none")
        val = F.nll_loss(pt, target, reduction=reduction) if reduction != "none" else per.sum()
    else:
        target = torch.tensor(y.astype(np.int64)) if labels == "index" else yt
        per = F.cross_entropy(pt, target, reduction="none", label_smoothing=smoothing)
        val = (F.cross_entropy(pt, target, reduction=reduction, label_smoothing=smoothing) if reduction != "none"
               else per.sum())
    val.backward()
    return per.detach().numpy(), (None if reduction == "none" else float(val.item())), pt.grad.numpy()


def jax_run(per_fn, p, reduction):
    """Per-element losses, the reduced value (None for none) and jax's gradient of the mean or sum, float64."""
    import jax
    import jax.numpy as jnp

    def reduced(pp):
        per = per_fn(pp)
        return jnp.mean(per) if reduction == "mean" else jnp.sum(per)

    pj = jnp.asarray(p, dtype=jnp.float64)
    value, grad = jax.value_and_grad(reduced)(pj)
    return np.asarray(per_fn(pj)), (None if reduction == "none" else float(value)), np.asarray(grad)


def run_optax(loss, y, p, from_logits, labels, reduction, param=None, smoothing=0.0):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    def per_fn(pp):
        if loss == "bce":
            return optax.losses.sigmoid_binary_cross_entropy(pp, jnp.asarray(y))
        if loss == "mse":
            return optax.losses.squared_error(pp, jnp.asarray(y))
        if loss == "huber":
            return optax.losses.huber_loss(pp, jnp.asarray(y), delta=param)
        if loss == "logcosh":
            return optax.losses.log_cosh(pp, jnp.asarray(y))
        if loss == "hinge":
            return optax.losses.hinge_loss(pp, jnp.asarray(np.where(y == 0, -1.0, y)))
        if labels == "index":
            return optax.losses.softmax_cross_entropy_with_integer_labels(pp, jnp.asarray(y.astype(np.int64)))
        target = jnp.asarray(y)
        return optax.losses.softmax_cross_entropy(pp, optax.smooth_labels(target, smoothing) if smoothing else target)

    return jax_run(per_fn, p, reduction)


def run(conv, loss, y, p, from_logits, labels, reduction, param=None, smoothing=0.0):
    if conv == "keras":
        import keras

        return run_keras(keras, loss, y, p, from_logits, labels, reduction, param, smoothing)
    if conv == "tf-keras":
        import tf_keras

        return run_keras(tf_keras, loss, y, p, from_logits, labels, reduction, param, smoothing)
    if conv == "torch":
        return run_torch(loss, y, p, from_logits, labels, reduction, param, smoothing)
    return run_optax(loss, y, p, from_logits, labels, reduction, param, smoothing)


# samples left out by class (PyTorch's ignore_index, Keras' ignore_class): (loss, convention, from_logits, index)
IGNORING = [("ce", "torch", True, -100), ("nll", "torch", False, -100), ("ce", "keras", True, -1),
            ("ce", "keras", False, -1), ("ce", "tf-keras", True, -1), ("ce", "tf-keras", False, -1)]


def run_ignoring(conv, loss, y, p, from_logits, reduction, ignore):
    """The frameworks' own reductions with left-out samples: PyTorch's mean divides by the samples kept, Keras'
    loss classes weigh the mask by total/valid (the same)."""
    if conv == "torch":
        import torch
        import torch.nn.functional as F

        pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
        t = torch.tensor(y.astype(np.int64))
        fn = F.nll_loss if loss == "nll" else F.cross_entropy
        per = fn(pt, t, reduction="none", ignore_index=ignore)
        val = fn(pt, t, reduction=reduction, ignore_index=ignore) if reduction != "none" else per.sum()
        val.backward()
        return per.detach().numpy(), (None if reduction == "none" else float(val.item())), pt.grad.numpy()
    import tensorflow as tf

    module = __import__("keras" if conv == "keras" else "tf_keras")
    kw = {"dtype": "float64"} if conv == "keras" else {}
    red = {"mean": "sum_over_batch_size", "sum": "sum", "none": "none"}[reduction]
    cls = module.losses.SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=ignore, reduction=red, **kw)
    pv = tf.Variable(p, dtype=tf.float64)
    with tf.GradientTape() as tape:
        out = cls(tf.constant(y.astype(np.int64)), pv)
        total = tf.reduce_sum(out)
    grad = tape.gradient(total, pv).numpy()
    per = module.losses.SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=ignore, reduction="none",
                                                      **kw)(tf.constant(y.astype(np.int64)), pv).numpy()
    return per, (None if reduction == "none" else float(out.numpy())), grad


# class weights: PyTorch's weight= (mean over the sum of the weights), Keras' class_weight (sample weights w[t],
# mean over N): (loss, convention, from_logits, labels)
WEIGHTED = [("ce", "torch", True, "index"), ("ce", "torch", True, "onehot"), ("nll", "torch", False, "index"),
            ("ce", "keras", True, "index"), ("ce", "tf-keras", True, "index")]


def run_weighted(conv, loss, y, p, labels, reduction, weights):
    if conv == "torch":
        import torch
        import torch.nn.functional as F

        pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
        t = torch.tensor(y.astype(np.int64)) if labels == "index" else torch.tensor(y, dtype=torch.float64)
        w = torch.tensor(weights, dtype=torch.float64)
        fn = F.nll_loss if loss == "nll" else F.cross_entropy
        per = fn(pt, t, weight=w, reduction="none")
        val = fn(pt, t, weight=w, reduction=reduction) if reduction != "none" else per.sum()
        val.backward()
        return per.detach().numpy(), (None if reduction == "none" else float(val.item())), pt.grad.numpy()
    import tensorflow as tf

    module = __import__("keras" if conv == "keras" else "tf_keras")
    kw = {"dtype": "float64"} if conv == "keras" else {}
    red = {"mean": "sum_over_batch_size", "sum": "sum", "none": "none"}[reduction]
    sw = tf.constant(weights[y.astype(int)])
    pv = tf.Variable(p, dtype=tf.float64)
    cls = module.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=red, **kw)
    with tf.GradientTape() as tape:
        out = cls(tf.constant(y.astype(np.int64)), pv, sample_weight=sw)
        total = tf.reduce_sum(out)
    grad = tape.gradient(total, pv).numpy()
    per = module.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none", **kw)(
        tf.constant(y.astype(np.int64)), pv, sample_weight=sw).numpy()
    return per, (None if reduction == "none" else float(out.numpy())), grad


# label smoothing where each framework has it: (loss, convention, from_logits, labels)
SMOOTHING = [("bce", c, fl, None) for c in ("keras", "tf-keras") for fl in (False, True)] + \
    [("ce", c, fl, "onehot") for c in ("keras", "tf-keras") for fl in (False, True)] + \
    [("ce", "torch", True, "index"), ("ce", "torch", True, "onehot"), ("ce", "optax", True, "onehot")]


# the regression losses each framework has, with the parameter value(s) to try
REGRESSION = {
    "mae": {"keras": [None], "tf-keras": [None], "torch": [None]},
    "huber": {"keras": [1.0, 0.7], "tf-keras": [1.0, 0.7], "torch": [1.0, 0.7], "optax": [1.0, 0.7]},
    "smooth-l1": {"torch": [1.0, 0.5, 0.0]},
    "logcosh": {"keras": [None], "tf-keras": [None], "optax": [None]},
    "hinge": {"keras": [None], "tf-keras": [None], "optax": [None]},
    "squared-hinge": {"keras": [None], "tf-keras": [None]},
}


def margin_inputs(rng, k, zero_one):
    """Labels -1/1 (or 0/1), predictions with some exactly at the kink 1 - y p = 0."""
    y = rng.choice([0.0, 1.0] if zero_one else [-1.0, 1.0], size=(12, k))
    p = rng.normal(scale=1.5, size=(12, k))
    s = np.where(y == 0, -1.0, y)
    p[0, 0], p[1, 0], p[2, 0] = s[0, 0], s[1, 0], 0.0  # at the kink, and a zero prediction
    return y, p
PARAM_NAME = {"huber": "delta", "smooth-l1": "beta"}


# ---------------------------------------------------------------- kl, poisson, focal, cosine


def kl_inputs(rng):
    y = rng.dirichlet(np.ones(4), size=8)
    q = rng.dirichlet(np.ones(4), size=8)
    y[0] = [0.0, 1.0, 0.0, 0.0]
    y[1] = [0.5, 0.5, 0.0, 0.0]
    q[2] = y[2] * (1 + 1e-6 * np.array([1.0, -1.0, 1.0, -1.0]))  # nearly the same distribution
    q[3] = [1e-9, 1.0 - 2e-9, 1e-9, 0.0]  # below the clip, and 0 where the target is not 0 ... or is
    y[3] = [0.2, 0.6, 0.2, 0.0]
    q[4] = [0.0, 1.0, 0.0, 0.0]  # the clip's upper bound exactly, zeros where the target is positive
    return y, q


def poisson_inputs(rng, k, log_input):
    y = rng.integers(0, 6, size=(10, k)).astype(float)
    y[1, 0] = 2.5
    if log_input:
        z = rng.normal(scale=1.5, size=(10, k))
        z[0, 0] = np.log(3.0)
        y[0, 0] = 3.0
        return y, z
    p = rng.gamma(2.0, 1.5, size=(10, k))
    p[0, 0], y[0, 0] = 0.0, 0.0
    p[2, 0], y[2, 0] = 0.0, 2.0
    p[3, 0], y[3, 0] = 3.0, 3.0
    return y, p


def focal_inputs(rng, from_logits, extreme=True):
    if from_logits:
        y, z = bce_logit_inputs(rng)
        if not extreme:
            keep = np.abs(z) < 50
            y, z = y[keep], z[keep]
        return y[:, None], z[:, None]
    y, p = bce_prob_inputs(rng)
    keep = (p > 0) & (p < 1) if not extreme else np.ones_like(p, dtype=bool)
    return y[keep][:, None], p[keep][:, None]


def cosine_inputs(rng, k, zeros):
    y = rng.normal(size=(8, k))
    p = rng.normal(size=(8, k))
    p[1] = y[1] * 3.0 + 1e-7 * rng.normal(size=k)  # nearly parallel
    p[2] = -2.0 * y[2]  # opposite
    p[3] = y[3]  # the same
    if zeros:
        y[4] = 0.0  # a zero target vector: Keras gives 0
        p[5] = 0.0
        p[6] = 1e-9 * rng.normal(size=k)  # inside the clamps
    return y, p


def run_family(conv, loss, y, p, reduction, log_input=False, log_target=False, gamma=2.0, alpha=None,
               from_logits=False):
    """kl, poisson, focal and cosine: each framework's function, its own reduction, its autodiff."""
    if conv in ("keras", "tf-keras"):
        import tensorflow as tf

        module = __import__("keras" if conv == "keras" else "tf_keras")
        pv = tf.Variable(p, dtype=tf.float64)
        yt = tf.constant(y)
        with tf.GradientTape() as tape:
            if loss == "kl":
                per = module.losses.kl_divergence(yt, pv)
            elif loss == "poisson":
                per = module.losses.poisson(yt, pv)
            elif loss == "cosine":
                per = module.losses.cosine_similarity(yt, pv)
            else:
                per = module.losses.binary_focal_crossentropy(
                    yt, pv, apply_class_balancing=alpha is not None, alpha=alpha if alpha is not None else 0.25,
                    gamma=gamma, from_logits=from_logits)
            total = tf.reduce_sum(per)
            value = total / tf.cast(tf.size(per), total.dtype) if reduction == "mean" else total
        grad = tape.gradient(value, pv)
        return per.numpy(), (None if reduction == "none" else float(value.numpy())), grad.numpy()
    if conv == "torch":
        import torch
        import torch.nn.functional as F

        pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
        yt = torch.tensor(y, dtype=torch.float64)
        if loss == "kl":
            inp = pt if log_input else torch.log(pt)

            def fn(red):
                return F.kl_div(inp, yt, reduction=red, log_target=log_target)
        elif loss == "poisson":
            def fn(red):
                return F.poisson_nll_loss(pt, yt, log_input=from_logits, full=False, reduction=red)
        elif loss == "cosine":
            def fn(red):
                return F.cosine_embedding_loss(pt, yt, torch.ones(p.shape[0], dtype=torch.float64), reduction=red)
        else:
            focal = torchvision_focal()

            def fn(red):
                return focal(pt, yt, alpha=-1 if alpha is None else alpha, gamma=gamma, reduction=red)
        per = fn("none")
        val = fn(reduction) if reduction != "none" else per.sum()
        val.backward()
        return per.detach().numpy(), (None if reduction == "none" else float(val.item())), pt.grad.numpy()
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    def per_fn(pp):
        if loss == "kl":
            lq = pp if log_input else jnp.log(pp)
            if log_target:
                return optax.losses.kl_divergence_with_log_targets(lq, jnp.asarray(y))
            return optax.losses.kl_divergence(lq, jnp.asarray(y))
        if loss == "cosine":
            return optax.losses.cosine_distance(pp, jnp.asarray(y))
        return optax.losses.sigmoid_focal_loss(pp, jnp.asarray(y), alpha=alpha, gamma=gamma)

    return jax_run(per_fn, p, reduction)


def torchvision_focal():
    """torchvision.ops.sigmoid_focal_loss from the installed torchvision's source file, without importing the
    package (its compiled ops need the CUDA build of torch; the loss itself is plain torch)."""
    import importlib.util

    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        raise SystemExit("PyTorch's focal loss comes from torchvision: python -m pip install --no-deps "
                         "torchvision==0.28.0")
    path = Path(spec.submodule_search_locations[0]) / "ops" / "focal_loss.py"
    source = path.read_text().replace("from ..utils import _log_api_usage_once", "")
    space = {"_log_api_usage_once": lambda *a: None}
    exec(compile(source, str(path), "exec"), space)
    return space["sigmoid_focal_loss"]


def torchvision_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torchvision")
    except PackageNotFoundError:
        return None


def family_cases():
    """(loss, convention, options, input maker) for kl, poisson, focal and cosine."""
    out = []
    for conv in ("keras", "tf-keras", "torch", "optax"):
        out.append(("kl", conv, {}, kl_inputs))
    for conv in ("torch", "optax"):
        for opts in ({"log_input": True}, {"log_input": True, "log_target": True}, {"log_target": True}):
            def make(rng, opts=opts):
                y, q = kl_inputs(rng)
                q = np.clip(q, 1e-12, 1)
                q = q / q.sum(axis=1, keepdims=True)
                return (np.log(np.clip(y, 1e-30, 1)) if opts.get("log_target") else y,
                        np.log(q) if opts.get("log_input") else q)
            out.append(("kl", conv, opts, make))
    for k in (1, 3):
        for conv in ("keras", "tf-keras", "torch"):
            out.append(("poisson", conv, {}, lambda rng, k=k: poisson_inputs(rng, k, False)))
        out.append(("poisson", "torch", {"from_logits": True}, lambda rng, k=k: poisson_inputs(rng, k, True)))
    for conv in ("keras", "tf-keras", "torch", "optax"):
        for gamma, alpha in ((2.0, None), (2.0, 0.25), (0.5, None)):
            extreme = gamma >= 1
            out.append(("focal", conv, {"from_logits": True, "gamma": gamma, "alpha": alpha},
                        lambda rng, e=extreme: focal_inputs(rng, True, e)))
            if conv in ("keras", "tf-keras"):
                out.append(("focal", conv, {"gamma": gamma, "alpha": alpha},
                            lambda rng, e=extreme: focal_inputs(rng, False, e)))
    for conv in ("keras", "tf-keras", "torch", "optax"):
        for k in (3, 5):
            out.append(("cosine", conv, {}, lambda rng, k=k, z=conv != "optax": cosine_inputs(rng, k, z)))
    return out


def run_sample_weighted(conv, loss, y, p, from_logits, labels, reduction, w):
    """Per-sample weights as each framework takes them: Keras' loss classes (sample_weight, sum_over_batch_size),
    PyTorch's bce weight= (mean over the elements), and (loss * w).mean() where the loss has no weight argument
    (PyTorch's ce, optax)."""
    if conv in ("keras", "tf-keras"):
        module = __import__("keras" if conv == "keras" else "tf_keras")
        kw = {"dtype": "float64"} if conv == "keras" else {}
        cls = {"bce": lambda r: module.losses.BinaryCrossentropy(from_logits=from_logits, reduction=r, **kw),
               "mse": lambda r: module.losses.MeanSquaredError(reduction=r, **kw),
               "ce": lambda r: module.losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction=r,
                                                                           **kw)}[loss]
        return keras_weighted_run(cls, y, p, labels, reduction, w)
    if conv == "torch":
        import torch
        import torch.nn.functional as F

        pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
        wt = torch.tensor(w, dtype=torch.float64)
        if loss == "bce":
            per = F.binary_cross_entropy_with_logits(pt, torch.tensor(y), weight=wt[:, None], reduction="none")
            val = (F.binary_cross_entropy_with_logits(pt, torch.tensor(y), weight=wt[:, None], reduction=reduction)
                   if reduction != "none" else per.sum())
        else:
            target = torch.tensor(y.astype(np.int64))
            per = F.cross_entropy(pt, target, reduction="none") * wt
            val = {"mean": per.mean(), "sum": per.sum(), "none": per.sum()}[reduction]
        val.backward()
        return per.detach().numpy(), (None if reduction == "none" else float(val.item())), pt.grad.numpy()
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    def per_fn(pp):
        return optax.losses.sigmoid_binary_cross_entropy(pp, jnp.asarray(y)) * jnp.asarray(w)[:, None]

    return jax_run(per_fn, p, reduction)


SAMPLE_WEIGHTED = [("bce", c, True, None) for c in ("keras", "tf-keras", "torch", "optax")] + \
    [("mse", c, False, None) for c in ("keras", "tf-keras")] + [("ce", c, True, "index") for c in ("keras", "torch")]


def add_sample_weighted(by_loss):
    rng = np.random.default_rng(20261125)
    for loss, conv, from_logits, labels in SAMPLE_WEIGHTED:
        if loss == "bce":
            y, p = bce_logit_inputs(rng)
            y, p = y[:20, None], p[:20, None]
        elif loss == "mse":
            y, p = mse_inputs(rng, 3)
        else:
            y, p = ce_logit_inputs(rng, "index")
        w = np.round(rng.uniform(0, 3, size=p.shape[0]), 2)
        w[0] = 0.0
        for reduction in REDUCTIONS:
            per, val, grad = run_sample_weighted(conv, loss, y, p, from_logits, labels, reduction, w)
            by_loss[loss].append({
                "convention": conv, "from_logits": from_logits, "labels": labels,
                "params": {"sample_weight": w.tolist()}, "reduction": reduction, "target": as_list(y),
                "pred": as_list(p), "losses": encode(as_list(per)) if loss != "mse" or conv == "torch" else None,
                "value": encode(val), "grad": encode(as_list(grad)),
            })


def golden_case(conv, from_logits, labels, params, reduction, y, p, per, val, grad):
    """One recorded case: the inputs and options, and what the framework returned (`per` None: not compared)."""
    return {
        "convention": conv, "from_logits": from_logits, "labels": labels, "params": params,
        "reduction": reduction, "target": as_list(y), "pred": as_list(p),
        "losses": None if per is None else encode(as_list(per)), "value": encode(val), "grad": encode(as_list(grad)),
    }


def add_family(by_loss):
    # Keras' per-sample values (poisson, focal: the mean over the outputs) compare when k = 1
    add_family_cases(by_loss, family_cases(), 20261124, lambda loss, conv, p: (
        loss in ("kl", "cosine") or p.shape[1] == 1 or conv in ("torch", "optax")))


def add_family_cases(by_loss, cases, seed, keep_losses):
    """The cases' inputs drawn in turn from one seeded generator, run under every reduction (run_family)."""
    rng = np.random.default_rng(seed)
    for loss, conv, opts, make in cases:
        y, p = make(rng)
        params = {k: v for k, v in opts.items() if k != "from_logits" and v is not None}
        for reduction in REDUCTIONS:
            per, val, grad = run_family(conv, loss, y, p, reduction, **opts)
            keep = keep_losses(loss, conv, p)
            by_loss.setdefault(loss, []).append(golden_case(conv, bool(opts.get("from_logits")), None, params,
                                                            reduction, y, p, per if keep else None, val, grad))


# ---------------------------------------------------------------- crossings of options


def keras_class_sample_weights(conv, y, weights):
    """The sample weights fit(class_weight=...) makes, by the framework's own conversion: Keras 3's
    class_weight_to_sample_weights, tf-keras' _make_class_weight_map_fn (both: a row's argmax class, float32)."""
    import tensorflow as tf

    cw = {i: float(v) for i, v in enumerate(weights)}
    if conv == "keras":
        from keras.src.trainers.data_adapters.data_adapter_utils import class_weight_to_sample_weights

        return np.asarray(class_weight_to_sample_weights(y, cw))
    from tf_keras.src.engine.data_adapter import _make_class_weight_map_fn

    _, _, sw = _make_class_weight_map_fn(cw)(tf.zeros((y.shape[0], 1)), tf.constant(y))
    return sw.numpy()


def run_keras_crossed(conv, y, p, from_logits, labels, reduction, smoothing=0.0, weights=None, ignore=None,
                      sample_weight=None):
    """Keras' loss classes with every option they take: label_smoothing (categorical), ignore_class (sparse),
    sample_weight (given, or made from class weights as fit does)."""
    module = __import__("keras" if conv == "keras" else "tf_keras")
    kw = {"dtype": "float64"} if conv == "keras" else {}
    sw = sample_weight if weights is None else keras_class_sample_weights(conv, y, weights)

    def cls(red):
        if labels == "index":
            extra = {} if ignore is None else {"ignore_class": ignore}
            return module.losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction=red, **extra, **kw)
        return module.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=smoothing,
                                                     reduction=red, **kw)

    return keras_weighted_run(cls, y, p, labels, reduction, sw)


def keras_weighted_run(cls, y, p, labels, reduction, sw):
    """A Keras loss class `cls(reduction)` on (y, p) with sample weights `sw` (or None): the per-sample losses, the
    reduced value, and the gradient of that value by GradientTape."""
    import tensorflow as tf

    target = tf.constant(y.astype(np.int64) if labels == "index" else y)
    red = {"mean": "sum_over_batch_size", "sum": "sum", "none": "none"}[reduction]
    pv = tf.Variable(p, dtype=tf.float64)
    swt = None if sw is None else tf.constant(sw)
    with tf.GradientTape() as tape:
        out = cls(red)(target, pv, sample_weight=swt)
        total = tf.reduce_sum(out)
    grad = tape.gradient(total, pv).numpy()
    per = cls("none")(target, pv, sample_weight=swt).numpy()
    return per, (None if reduction == "none" else float(out.numpy())), grad


def run_torch_crossed(loss, y, p, labels, reduction, smoothing=0.0, weights=None, ignore=-100, sample_weight=None):
    """F.cross_entropy / F.nll_loss with weight=, label_smoothing=, ignore_index=; per-sample weights as
    (loss(reduction='none') * w).mean(). nll_loss takes class indexes only: one-hot rows go in as their argmax."""
    import torch
    import torch.nn.functional as F

    pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    if labels == "index" or loss == "nll":
        t = torch.tensor((y if labels == "index" else np.argmax(y, axis=1)).astype(np.int64))
    else:
        t = torch.tensor(y, dtype=torch.float64)
    w = None if weights is None else torch.tensor(weights, dtype=torch.float64)

    def fn(red):
        if loss == "nll":
            return F.nll_loss(pt, t, weight=w, ignore_index=ignore, reduction=red)
        return F.cross_entropy(pt, t, weight=w, ignore_index=ignore, label_smoothing=smoothing, reduction=red)

    per = fn("none")
    if sample_weight is not None:
        per = per * torch.tensor(sample_weight, dtype=torch.float64)
        val = {"mean": per.mean(), "sum": per.sum(), "none": per.sum()}[reduction]
    else:
        val = fn(reduction) if reduction != "none" else per.sum()
    val.backward()
    return per.detach().numpy(), (None if reduction == "none" else float(val.item())), pt.grad.numpy()


def run_optax_crossed(y, p, labels, reduction, smoothing=0.0, sample_weight=None):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    w = jnp.ones(p.shape[0]) if sample_weight is None else jnp.asarray(sample_weight)

    def per_fn(pp):
        if labels == "index":
            return optax.losses.softmax_cross_entropy_with_integer_labels(pp, jnp.asarray(y.astype(np.int64))) * w
        target = jnp.asarray(y)
        return optax.losses.softmax_cross_entropy(pp, optax.smooth_labels(target, smoothing) if smoothing
                                                  else target) * w

    return jax_run(per_fn, p, reduction)


def item_one_inputs():
    """A small worked case: three classes, labels 0 1 2 1."""
    z = np.array([[2.0, -1.0, 0.5], [0.3, 1.2, -0.7], [-1.5, 0.2, 2.2], [1.0, 1.0, -2.0]])
    return np.array([0.0, 1.0, 2.0, 1.0]), z


def log_softmax_rows(z):
    s = z - z.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def crossed_cases():
    """(loss, convention, from_logits, labels, options, input maker): the options crossed with each other where
    the framework has them together. Soft rows (one-hot targets with a row of probabilities) are in the one-hot
    inputs."""
    cw, odd = [2.0, 4.0, 6.0, 0.5], [0.1, 0.7, 1.3, 2.9]  # odd: weights that float32 rounds
    out = [("ce", "torch", True, "index", {"label_smoothing": 0.2, "class_weights": [0.5, 2.0, 3.0]},
            lambda rng: item_one_inputs())]
    ce_idx = lambda rng: ce_logit_inputs(rng, "index")  # noqa: E731
    ce_hot = lambda rng: ce_logit_inputs(rng, "onehot")  # noqa: E731
    with_ignored = lambda rng: _ignored(ce_logit_inputs(rng, "index"), -100)  # noqa: E731
    for opts in ({"label_smoothing": 0.2, "class_weights": cw}, {"label_smoothing": 0.1, "class_weights": odd}):
        out.append(("ce", "torch", True, "index", opts, ce_idx))
        out.append(("ce", "torch", True, "onehot", opts, ce_hot))
    for opts in ({"label_smoothing": 0.2, "class_weights": cw}, {"label_smoothing": 0.2}, {"class_weights": cw}):
        out.append(("ce", "torch", True, "index", {**opts, "ignore_index": -100}, with_ignored))
    out.append(("ce", "torch", True, "index", {"label_smoothing": 0.2, "sample_weight": True}, ce_idx))
    out.append(("ce", "torch", True, "onehot", {"label_smoothing": 0.2, "sample_weight": True}, ce_hot))
    hot_logp = lambda rng: _hard(ce_logit_inputs(rng, "index"), log_softmax_rows)  # noqa: E731
    out.append(("nll", "torch", False, "onehot", {"class_weights": cw}, hot_logp))
    out.append(("nll", "torch", False, "onehot", {}, hot_logp))
    out.append(("nll", "torch", False, "index", {"class_weights": cw, "ignore_index": -100},
                lambda rng: _ignored(_hard(ce_logit_inputs(rng, "index"), log_softmax_rows, onehot=False), -100)))
    for conv in ("keras", "tf-keras"):
        for from_logits in (True, False):
            maker = (lambda rng, lb: ce_logit_inputs(rng, lb)) if from_logits else ce_prob_inputs
            for lb in ("index", "onehot"):
                for w in (cw, odd):
                    out.append(("ce", conv, from_logits, lb, {"class_weights": w},
                                lambda rng, m=maker, lb=lb: m(rng, lb)))
            out.append(("ce", conv, from_logits, "onehot", {"label_smoothing": 0.2, "class_weights": cw},
                        lambda rng, m=maker: m(rng, "onehot")))
            out.append(("ce", conv, from_logits, "onehot", {"label_smoothing": 0.2, "sample_weight": True},
                        lambda rng, m=maker: m(rng, "onehot")))
        out.append(("ce", conv, True, "index", {"ignore_index": -1, "sample_weight": True},
                    lambda rng: _ignored(ce_logit_inputs(rng, "index"), -1)))
    out.append(("ce", "keras", True, "index", {"ignore_index": -1, "class_weights": cw},
                lambda rng: _ignored(ce_logit_inputs(rng, "index"), -1)))
    out.append(("ce", "optax", True, "onehot", {"label_smoothing": 0.2, "sample_weight": True}, ce_hot))
    out.append(("ce", "optax", True, "index", {"sample_weight": True}, ce_idx))
    return out


def _ignored(yz, ignore):
    y, z = yz
    y = y.copy()
    y[[1, 4]] = ignore
    return y, z


def _hard(yz, fn, onehot=True):
    y, z = yz
    return (np.eye(z.shape[1])[y.astype(int)] if onehot else y), fn(z)


def run_crossed(loss, conv, from_logits, labels, opts, y, p, reduction, sample_weight):
    weights = None if opts.get("class_weights") is None else np.array(opts["class_weights"])
    smoothing = opts.get("label_smoothing", 0.0)
    if conv == "torch":
        return run_torch_crossed(loss, y, p, labels, reduction, smoothing, weights, opts.get("ignore_index", -100),
                                 sample_weight)
    if conv == "optax":
        return run_optax_crossed(y, p, labels, reduction, smoothing, sample_weight)
    return run_keras_crossed(conv, y, p, from_logits, labels, reduction, smoothing, weights,
                             opts.get("ignore_index"), sample_weight)


def nan_cases():
    """Where a framework itself computes NaN: focal with gamma 0 (and below 1) at 1 - p_t = 0, cosine of a zero
    vector under optax."""
    out = []
    for conv in ("keras", "tf-keras", "torch", "optax"):
        for gamma in (0.0, 0.5):
            out.append(("focal", conv, {"from_logits": True, "gamma": gamma},
                        lambda rng: focal_inputs(rng, True, True)))
            if conv in ("keras", "tf-keras"):
                out.append(("focal", conv, {"gamma": gamma}, lambda rng: focal_inputs(rng, False, True)))
    for k in (3, 5):
        out.append(("cosine", "optax", {}, lambda rng, k=k: cosine_inputs(rng, k, True)))
    return out


def add_crossed(by_loss):
    rng = np.random.default_rng(20261126)
    for loss, conv, from_logits, labels, opts, make in crossed_cases():
        y, p = make(rng)
        sw = None
        if opts.get("sample_weight"):
            sw = np.round(rng.uniform(0, 3, size=p.shape[0]), 2)
            sw[0] = 0.0
        params = {k: v for k, v in opts.items() if k != "sample_weight"}
        if sw is not None:
            params["sample_weight"] = sw.tolist()
        for reduction in REDUCTIONS:
            per, val, grad = run_crossed(loss, conv, from_logits, labels, opts, y, p, reduction, sw)
            by_loss[loss].append(golden_case(conv, from_logits, labels, params, reduction, y, p, per, val, grad))
    add_family_cases(by_loss, nan_cases(), 20261127, lambda loss, conv, p: True)


# ---------------------------------------------------------------- cases


def specs():
    """(loss, convention, from_logits, labels, input maker) for every mode each framework has."""
    out = []
    for conv in ("keras", "tf-keras", "torch"):
        out.append(("bce", conv, False, None, bce_prob_inputs))
    for conv in ("keras", "tf-keras", "torch", "optax"):
        out.append(("bce", conv, True, None, bce_logit_inputs))
        for labels in ("index", "onehot", "multihot"):
            out.append(("ce", conv, True, labels, lambda rng, labels=labels: ce_logit_inputs(rng, labels)))
        for k in (1, 3):
            out.append(("mse", conv, False, None, lambda rng, k=k: mse_inputs(rng, k)))
    for conv in ("keras", "tf-keras"):
        for labels in ("index", "onehot"):
            out.append(("ce", conv, False, labels, lambda rng, labels=labels: ce_prob_inputs(rng, labels)))
    return out


def regression_specs():
    """(loss, convention, parameter, input maker) for the regression family."""
    out = []
    for loss, convs in REGRESSION.items():
        for conv, values in convs.items():
            for value in values:
                for k in (1, 3):
                    if loss in ("hinge", "squared-hinge"):
                        for zero_one in ((False, True) if conv != "optax" else (False,)):
                            out.append((loss, conv, value, lambda rng, k=k, z=zero_one: margin_inputs(rng, k, z)))
                        continue
                    d = value if value else 1.0
                    out.append((loss, conv, value, lambda rng, k=k, d=d: regression_inputs(rng, k, d)))
    return out


def as_list(a):
    return None if a is None else np.asarray(a, dtype=np.float64).tolist()


def encode(x):
    """JSON with non-finite floats as strings, as lossgrad's own output."""
    if isinstance(x, list):
        return [encode(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return "nan" if x != x else ("inf" if x > 0 else "-inf")
    return x


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261123)
    by_loss: dict[str, list] = {}
    for loss, conv, from_logits, labels, make in specs():
        y, p = make(rng)
        if loss == "bce":
            y2, p2 = y[:, None], p[:, None]  # samples x 1 output: Keras' last-axis mean is the element itself
        else:
            y2, p2 = y, p
        for reduction in REDUCTIONS:
            per, value, grad = run(conv, loss, y2, p2, from_logits, labels, reduction)
            by_loss.setdefault(loss, []).append({
                "convention": conv,
                "from_logits": from_logits,
                "labels": labels,
                "reduction": reduction,
                "target": as_list(y2 if labels != "index" else y),
                "pred": as_list(p2),
                # Keras' per-sample losses are the mean over the last axis; comparable per element when k = 1
                "losses": encode(as_list(per)) if (loss != "mse" or p2.shape[1] == 1 or conv in ("torch", "optax"))
                else None,
                "value": encode(value),
                "grad": encode(as_list(grad)),
            })
    for loss, conv, from_logits, labels in SMOOTHING:
        if loss == "bce":
            y, p = bce_logit_inputs(rng) if from_logits else bce_prob_inputs(rng)
            y, p = y[:, None], p[:, None]
        else:
            y, p = ce_logit_inputs(rng, labels) if from_logits else ce_prob_inputs(rng, labels)
        for reduction in REDUCTIONS:
            per, val, grad = run(conv, loss, y, p, from_logits, labels, reduction, smoothing=0.1)
            by_loss[loss].append({
                "convention": conv, "from_logits": from_logits, "labels": labels,
                "params": {"label_smoothing": 0.1}, "reduction": reduction,
                "target": as_list(y), "pred": as_list(p), "losses": encode(as_list(per)),
                "value": encode(val), "grad": encode(as_list(grad)),
            })
    for reduction in REDUCTIONS:  # nll: PyTorch's, on log-probabilities with class-index targets
        y, z = ce_logit_inputs(np.random.default_rng(7), "index")
        logp = z - np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)) - z.max(axis=1,
                                                                                                       keepdims=True)
        per, val, grad = run("torch", "nll", y, logp, False, "index", reduction)
        by_loss.setdefault("nll", []).append({
            "convention": "torch", "from_logits": False, "labels": "index", "reduction": reduction,
            "target": as_list(y), "pred": as_list(logp), "losses": encode(as_list(per)), "value": encode(val),
            "grad": encode(as_list(grad)),
        })
    for loss, conv, from_logits, ignore in IGNORING:
        y, z = ce_logit_inputs(np.random.default_rng(11), "index")
        y[[1, 4]] = ignore  # two samples left out
        p = z if from_logits or loss == "nll" else np.exp(z - z.max(axis=1, keepdims=True))
        if loss == "nll":
            p = z - z.max(axis=1, keepdims=True)
            p = p - np.log(np.exp(p).sum(axis=1, keepdims=True))
        elif not from_logits:
            p = p / p.sum(axis=1, keepdims=True)
        for reduction in REDUCTIONS:
            per, val, grad = run_ignoring(conv, loss, y, p, from_logits, reduction, ignore)
            by_loss.setdefault(loss, []).append({
                "convention": conv, "from_logits": from_logits, "labels": "index",
                "params": {"ignore_index": ignore}, "reduction": reduction, "target": as_list(y), "pred": as_list(p),
                "losses": encode(as_list(per)), "value": encode(val), "grad": encode(as_list(grad)),
            })
    for w in ([2.0], [3.0, 0.5]):  # PyTorch's pos_weight, one number or one per column
        y, z = bce_logit_inputs(np.random.default_rng(17))
        y, z = y[:54].reshape(27, 2), z[:54].reshape(27, 2)
        for reduction in REDUCTIONS:
            import torch
            import torch.nn.functional as F

            zt = torch.tensor(z, requires_grad=True)
            pw = torch.tensor(w, dtype=torch.float64)
            per = F.binary_cross_entropy_with_logits(zt, torch.tensor(y), pos_weight=pw, reduction="none")
            val = (F.binary_cross_entropy_with_logits(zt, torch.tensor(y), pos_weight=pw, reduction=reduction)
                   if reduction != "none" else per.sum())
            val.backward()
            by_loss["bce"].append({
                "convention": "torch", "from_logits": True, "labels": None, "params": {"pos_weight": w},
                "reduction": reduction, "target": as_list(y), "pred": as_list(z),
                "losses": encode(as_list(per.detach())),
                "value": None if reduction == "none" else float(val.item()), "grad": encode(as_list(zt.grad)),
            })
    weights = np.array([2.0, 4.0, 6.0, 0.5])
    for loss, conv, from_logits, labels in WEIGHTED:
        y, z = ce_logit_inputs(np.random.default_rng(13), labels)
        p = z
        if loss == "nll":
            p = z - z.max(axis=1, keepdims=True)
            p = p - np.log(np.exp(p).sum(axis=1, keepdims=True))
        for reduction in REDUCTIONS:
            per, val, grad = run_weighted(conv, loss, y, p, labels, reduction, weights)
            by_loss.setdefault(loss, []).append({
                "convention": conv, "from_logits": from_logits, "labels": labels,
                "params": {"class_weights": weights.tolist()}, "reduction": reduction, "target": as_list(y),
                "pred": as_list(p), "losses": encode(as_list(per)), "value": encode(val),
                "grad": encode(as_list(grad)),
            })
    for loss, conv, value, make in regression_specs():
        y, p = make(rng)
        for reduction in REDUCTIONS:
            per, val, grad = run(conv, loss, y, p, False, None, reduction, value)
            by_loss.setdefault(loss, []).append({
                "convention": conv,
                "from_logits": False,
                "labels": None,
                "params": {} if value is None else {PARAM_NAME[loss]: value},
                "reduction": reduction,
                "target": as_list(y),
                "pred": as_list(p),
                "losses": encode(as_list(per)) if (p.shape[1] == 1 or conv in ("torch", "optax")) else None,
                "value": encode(val),
                "grad": encode(as_list(grad)),
            })
    add_family(by_loss)
    add_sample_weighted(by_loss)
    add_crossed(by_loss)
    meta = versions()
    meta["torchvision"] = torchvision_version()  # its focal loss's source (see torchvision_focal)
    for loss, cases in by_loss.items():
        path = OUT / f"{loss}.json"
        path.write_text(json.dumps({"versions": meta, "made_by": "scripts/make_golden.py", "cases": cases}, indent=1)
                        + "\n")
        print(f"{path.relative_to(OUT.parent.parent)}: {len(cases)} cases")


if __name__ == "__main__":
    main()
