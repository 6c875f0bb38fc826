"""Record PyTorch's, TensorFlow's (Keras 3's and tf-keras') and JAX's (optax's) reduced values over batches of more
than 32,768 samples, for tests/golden/long_batches.json (read by tests/test_long_batches.py).

torch.mean and torch.sum of a loss tensor run SumKernel over all its elements: more than 32,768 of them split between
the threads, each thread's half summed in its cascade of partial sums, the halves' sums then added. lossgrad
evaluates a long batch in slices of 32,768 samples, and takes that sum over all the slices' losses as they come
(lowp.TotalSum, Parts.value_fold); these records hold it to PyTorch's value over the whole batch, for every loss whose
PyTorch convention lossgrad reproduces and whose value is such a sum (nll_loss's cascade over class indexes has
its own records, tests/golden/weighted_batches.json). Keras reduces the per-sample losses by tf.reduce_sum, whose
tree of halves depends on the whole batch's length, and optax's jnp.mean or jnp.sum adds the array in YNNPACK's
slices of whole rows: lossgrad joins the slices' losses (or what XLA's fused sum reads) first (losses.base.Joined).

Each record: the case (convention, loss, dtype, reduction, rows, outputs per sample), the seed its inputs come from
(inputs(): pure numpy, so the test rebuilds them) with the SHA-256 of the inputs as the dtype holds them, and the
framework's value in float32 (optax's with the SHA-256 of the step's losses and gradient: two batches of a slice of
32,768 rows and a rest of fewer than 4,096, which XLA computes as one batch's rows, and 10,000 rows of 300 classes,
which a tensor file holds in blocks of fewer than 4,096 rows; and Keras' of ce from logits of probability rows,
whose backprop TensorFlow forms in Eigen's blocks of about 4,507 coefficients counted over the whole batch, each
block's last elements through glibc's expf); `placed` says the seed is the first from the case's whose value under
lossgrad changes when lossgrad's own sum of the losses stands in for the framework's (a half dtype's rounding
hides the order more often), and for Keras' ce records `blocks` says the seed is the first whose gradient under
lossgrad changes both when its blocks are counted from each slice of 32,768 rows and when the batch's last block
is not ended at its last row (then `placed` is that seed's). The versions, torch's threads and CPU capability, and
the processor are recorded.

    python3 scripts/golden_long_batches.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import cpu_model, torchvision_focal, versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "long_batches.json"
# PyTorch's: (loss, dtype, reduction, rows, outputs per sample); bce-logits and bce-probs are bce from logits and on
# probabilities, ce-probs ce from logits against probability rows
TORCH = (("mse", "float32", "mean", 70000, 3), ("mse", "bfloat16", "sum", 50000, 2),
         ("mae", "float32", "sum", 40000, 5), ("mae", "float16", "mean", 66000, 1),
         ("huber", "float32", "mean", 70001, 3), ("smooth-l1", "float32", "sum", 45000, 2),
         ("bce-logits", "float32", "mean", 70000, 2), ("bce-logits", "bfloat16", "sum", 40000, 3),
         ("bce-probs", "float32", "sum", 50000, 2), ("poisson", "float16", "sum", 40000, 2),
         ("kl", "float32", "sum", 40000, 4), ("ce-probs", "float32", "mean", 40000, 5),
         ("ce-probs", "bfloat16", "sum", 37000, 4), ("gaussian-nll", "bfloat16", "sum", 40000, 2),
         ("margin-ranking", "float32", "sum", 70000, 1), ("focal", "float32", "mean", 40000, 3),
         ("triplet", "float32", "sum", 40000, 3), ("cosine-embedding", "float32", "mean", 40000, 3))
# Keras 3's and tf-keras' (TensorFlow's reduce_sum of the per-sample losses): ce-index is ce from logits over class
# indexes, kl-probs kl of probability rows
KERAS = (("keras", "mse", "float32", "mean", 70000, 3), ("tf-keras", "ce-index", "bfloat16", "mean", 50000, 5),
         ("keras", "ce-probs", "float16", "mean", 37000, 3), ("tf-keras", "bce-logits", "float32", "mean", 70000, 2),
         ("keras", "kl-probs", "float32", "sum", 40000, 3), ("keras", "huber", "bfloat16", "mean", 45000, 2),
         ("tf-keras", "mae", "float32", "sum", 40000, 3), ("keras", "ce-index", "float32", "mean", 100000, 10))
# optax's under jax.jit ("optax") and op by op ("optax-nojit"): jnp.mean or jnp.sum of the per-example losses, whose
# order depends on the whole array (YNNPACK's slices of whole rows); kl takes log-probabilities
OPTAX = (("optax", "mse", "float32", "mean", 70000, 3), ("optax-nojit", "mse", "bfloat16", "sum", 50000, 2),
         ("optax", "ce-index", "bfloat16", "mean", 60000, 5), ("optax", "ce-probs", "float32", "mean", 40000, 4),
         ("optax", "ce-probs", "bfloat16", "sum", 40000, 3), ("optax-nojit", "bce-logits", "float16", "mean", 45000, 2),
         ("optax", "kl", "float32", "sum", 40000, 3), ("optax", "huber", "float32", "mean", 50000, 2),
         ("optax", "triplet", "float32", "sum", 40000, 3), ("optax", "ce-probs", "bfloat16", "mean", 35768, 3),
         ("optax", "ce-index", "bfloat16", "mean", 36000, 2), ("optax", "ce-probs", "bfloat16", "mean", 10000, 300))
# Keras 3's and tf-keras' ce from logits of probability rows, whose backprop TensorFlow forms in Eigen's blocks of
# the whole batch (lowp_tf.tiled): their losses and gradient recorded too
KERAS_STEPS = (("keras", "ce-probs", "float32", "mean", 40001, 10),
               ("tf-keras", "ce-probs", "float32", "sum", 70001, 7),
               ("keras", "ce-probs", "float32", "sum", 50000, 77),
               ("tf-keras", "ce-probs", "float32", "mean", 100000, 5),
               ("keras", "ce-probs", "float16", "mean", 40000, 13),
               ("tf-keras", "ce-probs", "bfloat16", "sum", 40000, 3))
# (convention, loss, dtype, reduction, rows, outputs per sample)
CASES = tuple(("torch", *case) for case in TORCH) + KERAS + OPTAX + KERAS_STEPS


def inputs(seed: int, loss: str, rows: int, width: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Targets, predictions and the loss's further inputs (by lossgrad's names), float32 values."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, width)) * 2
    extra: dict[str, np.ndarray] = {}
    if loss == "ce-index":
        y, p = rng.integers(0, width, (rows, 1)).astype(np.float64), z
    elif loss in ("bce-logits", "bce-probs", "focal"):
        y = (rng.random((rows, width)) < 0.3).astype(np.float64)
        p = 1 / (1 + np.exp(-z)) if loss == "bce-probs" else z
    elif loss == "poisson":
        y, p = rng.poisson(2.0, (rows, width)).astype(np.float64), z
    elif loss in ("kl", "kl-probs", "ce-probs"):
        y = np.exp(rng.standard_normal((rows, width)))
        y /= y.sum(axis=1, keepdims=True)
        p = {"kl": np.minimum(z - np.log(np.exp(z).sum(axis=1, keepdims=True)), 0),
             "kl-probs": np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)}.get(loss, z)
    elif loss == "margin-ranking":
        y, p = np.where(rng.random((rows, width)) < 0.5, -1.0, 1.0), z
        extra["other"] = rng.standard_normal((rows, width))
    elif loss == "cosine-embedding":
        y, p = rng.standard_normal((rows, width)), z
        extra["label"] = np.where(rng.random(rows) < 0.5, -1.0, 1.0)
    else:
        y, p = rng.standard_normal((rows, width)), z
        if loss == "gaussian-nll":
            extra["var"] = np.exp(rng.standard_normal((rows, width)))
        if loss == "triplet":
            extra["negative"] = rng.standard_normal((rows, width))
    return (y.astype(np.float32).astype(np.float64), p.astype(np.float32).astype(np.float64),
            {k: v.astype(np.float32).astype(np.float64) for k, v in extra.items()})


def held(x: np.ndarray, dtype: str) -> np.ndarray:
    """x as the dtype holds it, in float64 (lossgrad's input)."""
    import ml_dtypes

    kind = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}[dtype]
    return np.asarray(x).astype(kind).astype(np.float64)


def held_inputs(seed: int, case: tuple) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """inputs() with the predictions, the targets and the further inputs rounded to the dtype (class indexes and
    the ±1 labels are exact)."""
    _, loss, dtype, _, rows, width = case
    y, p, extra = inputs(seed, loss, rows, width)
    return held(y, dtype), held(p, dtype), {k: held(v, dtype) for k, v in extra.items()}


def digest(*arrays: np.ndarray) -> str:
    """SHA-256 of the arrays' float32 bytes, in C order, one after another."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.float32)).tobytes())
    return h.hexdigest()


def lossgrad_call(case: tuple, y: np.ndarray, p: np.ndarray, extra: dict[str, np.ndarray]) -> tuple[str, dict]:
    """lossgrad's loss name and evaluate() options for a case."""
    conv, loss, dtype, reduction, _, _ = case
    options: dict[str, Any] = {"convention": "optax" if conv.startswith("optax") else conv, "dtype": dtype,
                               "reduction": reduction, **extra}
    if conv.startswith("optax"):
        options["jit"] = conv == "optax"
    name = {"bce-logits": "bce", "bce-probs": "bce", "ce-probs": "ce", "ce-index": "ce",
            "kl-probs": "kl"}.get(loss, loss)
    options |= {"huber": {"delta": 0.7}, "smooth-l1": {"beta": 0.6}, "poisson": {"from_logits": True, "full": True},
                "kl": {"log_input": True}, "ce-probs": {"from_logits": True, "labels": "onehot"},
                "ce-index": {"from_logits": True, "labels": "index"},
                "bce-logits": {"from_logits": True}, "margin-ranking": {"margin": 0.2},
                "focal": {"from_logits": True, "gamma": 2.0, "alpha": 0.25}, "triplet": {"margin": 1.0},
                "cosine-embedding": {"margin": 0.1}}.get(loss, {})
    return name, options


def lossgrads_value(case: tuple, y: np.ndarray, p: np.ndarray, extra: dict[str, np.ndarray]) -> float:
    import lossgrad

    name, options = lossgrad_call(case, y, p, extra)
    return float(lossgrad.evaluate(name, y, p, **options).value)


def placed_seed(first: int, case: tuple) -> tuple[int, bool]:
    """The first seed from `first` whose value under lossgrad changes when lossgrad's own sum stands in for the
    kernel's (the slices' fold undone), and True; else `first` and False."""
    for seed in range(first, first + 40):
        if own_sum_apart(seed, case):
            return seed, True
    return first, False


def own_sum_apart(seed: int, case: tuple) -> bool:
    """Whether the seed's value under lossgrad changes when lossgrad's own sum stands in for the kernel's."""
    from lossgrad import reduction

    folded = reduction.Slices.folded
    y, p, extra = held_inputs(seed, case)
    kernels = lossgrads_value(case, y, p, extra)
    reduction.Slices.folded = lambda self: None  # type: ignore[method-assign]
    try:
        own = lossgrads_value(case, y, p, extra)
    finally:
        reduction.Slices.folded = folded  # type: ignore[method-assign]
    return bool(np.float32(kernels) != np.float32(own))


@contextmanager
def blocks_undone(how: str) -> Iterator[None]:
    """lossgrad with TensorFlow's blocks of ce's backprop laid out otherwise than over the whole batch: counted
    from each slice's first row, as if the slice were the batch ("slices"), or with the batch's length unknown, its
    last block not ended at its last row ("end")."""
    from lossgrad import lowp_tf

    real = lowp_tf.remainders

    def remainders(shape: tuple[int, int], target: int, place: Any, lanes: int = lowp_tf.PACKET) -> np.ndarray:
        first, _ = place or (0, shape[0])
        return real(shape, target, None if how == "slices" else (first, None), lanes)

    lowp_tf.remainders = remainders
    try:
        yield
    finally:
        lowp_tf.remainders = real


def lossgrads_grad(case: tuple, y: np.ndarray, p: np.ndarray) -> str:
    """The digest of lossgrad's gradient of the case."""
    import lossgrad

    name, options = lossgrad_call(case, y, p, {})
    return digest(lossgrad.evaluate(name, y, p, **options).grad)


def blocks_seed(first: int, case: tuple) -> tuple[int, bool]:
    """The first seed from `first` whose gradient under lossgrad changes both when the blocks are counted from each
    slice and when the batch's last block is not ended at its last row (blocks_undone), and True; else `first`
    and False (a half dtype's rounding hides the scalar remainders' e^x nearly always)."""
    for seed in range(first, first + 40):
        y, p, _ = held_inputs(seed, case)
        whole = lossgrads_grad(case, y, p)
        apart = []
        for how in ("slices", "end"):
            with blocks_undone(how):
                apart.append(lossgrads_grad(case, y, p) != whole)
        if all(apart):
            return seed, True
    return first, False


def framework_value(case: tuple, y: np.ndarray, p: np.ndarray, extra: dict[str, np.ndarray]) -> float:
    """The framework's reduced value of the case, its inputs in the dtype."""
    frameworks = {"torch": torch_value, "optax": optax_value, "optax-nojit": optax_value}
    return frameworks.get(case[0], keras_value)(case, y, p, extra)


def optax_value(case: tuple, y: np.ndarray, p: np.ndarray, extra: dict[str, np.ndarray]) -> float:
    """optax's per-example losses reduced by jnp.mean or jnp.sum: the value of jax.value_and_grad (has_aux: the losses
    too) under jax.jit or op by op; class indexes as int32."""
    import jax
    import jax.numpy as jnp
    import ml_dtypes
    import optax

    conv, loss, dtype, reduction, _, _ = case
    kind = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}[dtype]
    t = jnp.asarray(y.astype(np.int32)[:, 0] if loss == "ce-index" else y.astype(kind))
    more = {k: jnp.asarray(v.astype(kind)) for k, v in extra.items()}
    losses = optax.losses
    per = {"mse": lambda z: losses.squared_error(z, t),
           "ce-index": lambda z: losses.softmax_cross_entropy_with_integer_labels(z, t),
           "ce-probs": lambda z: losses.softmax_cross_entropy(z, t),
           "bce-logits": lambda z: losses.sigmoid_binary_cross_entropy(z, t),
           "kl": lambda z: losses.kl_divergence(z, t), "huber": lambda z: losses.huber_loss(z, t, delta=0.7),
           "triplet": lambda z: losses.triplet_margin_loss(z, t, more["negative"], margin=1.0)}[loss]

    def reduced(z):
        losses = per(z)
        return (jnp.mean(losses) if reduction == "mean" else jnp.sum(losses)), losses
    # (the value as a training step has it, beside its gradient and the per-example losses: jit compiles them
    # together, as the golden files of lowp_xla record them)
    step = jax.value_and_grad(reduced, has_aux=True)
    (value, losses), grad = (jax.jit(step) if conv == "optax" else step)(jnp.asarray(p.astype(kind)))
    STEP["losses"], STEP["grad"] = np.asarray(losses, dtype=np.float32), np.asarray(grad, dtype=np.float32)
    return float(np.float32(value))


# the per-example losses and the gradient of optax_value's last step
STEP: dict[str, np.ndarray] = {}


def keras_value(case: tuple, y: np.ndarray, p: np.ndarray, extra: dict[str, np.ndarray]) -> float:
    """Keras 3's (on TensorFlow, dtype= the dtype) or tf-keras' (on tensors of the dtype) reduced value of the case;
    class indexes as float32 numbers (Keras 3 casts them to the loss's dtype)."""
    import tensorflow as tf

    made, target, kind = keras_loss(case, y, KERAS_REDUCTIONS[case[3]])
    return float(tf.cast(made(target, tf.constant(p, dtype=kind)), tf.float32).numpy())


KERAS_REDUCTIONS = {"sum": "sum", "mean": "sum_over_batch_size", "none": "none"}


def keras_step(case: tuple, y: np.ndarray, p: np.ndarray) -> dict[str, str]:
    """The digests of Keras' per-sample losses of the case (reduction none) and of its gradient with respect to the
    predictions (GradientTape, under the case's reduction)."""
    import tensorflow as tf

    made, target, kind = keras_loss(case, y, KERAS_REDUCTIONS[case[3]])
    pv = tf.Variable(tf.constant(p, dtype=kind))
    with tf.GradientTape() as tape:
        value = made(target, pv)
    grad = tf.cast(tape.gradient(value, pv), tf.float32).numpy()
    each, _, _ = keras_loss(case, y, "none")
    losses = tf.cast(each(target, tf.constant(p, dtype=kind)), tf.float32).numpy()
    return {"losses": digest(losses), "grad": digest(grad)}


def keras_loss(case: tuple, y: np.ndarray, reduction: str) -> tuple[Any, Any, Any]:
    """The case's Loss of Keras 3 (dtype= the dtype) or tf-keras under `reduction` (Keras' name), the targets as a
    tensor, and the predictions' dtype."""
    import tensorflow as tf

    conv, loss, dtype, _, _, _ = case
    module = __import__("keras" if conv == "keras" else "tf_keras")
    kind = {"float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}[dtype]
    kw = {"reduction": reduction} | ({"dtype": dtype} if conv == "keras" else {})
    losses = module.losses
    made = {"mse": lambda: losses.MeanSquaredError(**kw), "mae": lambda: losses.MeanAbsoluteError(**kw),
            "huber": lambda: losses.Huber(delta=0.7, **kw),
            "ce-index": lambda: losses.SparseCategoricalCrossentropy(from_logits=True, **kw),
            "ce-probs": lambda: losses.CategoricalCrossentropy(from_logits=True, **kw),
            "bce-logits": lambda: losses.BinaryCrossentropy(from_logits=True, **kw),
            "kl-probs": lambda: losses.KLDivergence(**kw)}[loss]()
    target = tf.constant(y[:, 0], dtype=tf.float32) if loss == "ce-index" else tf.constant(y, dtype=kind)
    return made, target, kind


def torch_value(case: tuple, y: np.ndarray, p: np.ndarray, extra: dict[str, np.ndarray]) -> float:
    """PyTorch's reduced value of the case, its inputs in the dtype."""
    import torch

    _, loss, dtype, reduction, _, _ = case
    kind = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    f = torch.nn.functional
    ty, tp = torch.tensor(y).to(kind), torch.tensor(p).to(kind)
    more = {k: torch.tensor(v).to(kind) for k, v in extra.items()}
    r = {"reduction": reduction}
    calls = {
        "mse": lambda: f.mse_loss(tp, ty, **r), "mae": lambda: f.l1_loss(tp, ty, **r),
        "huber": lambda: f.huber_loss(tp, ty, delta=0.7, **r),
        "smooth-l1": lambda: f.smooth_l1_loss(tp, ty, beta=0.6, **r),
        "bce-logits": lambda: f.binary_cross_entropy_with_logits(tp, ty, **r),
        "bce-probs": lambda: f.binary_cross_entropy(tp, ty, **r),
        "poisson": lambda: f.poisson_nll_loss(tp, ty, log_input=True, full=True, **r),
        "kl": lambda: f.kl_div(tp, ty, **r), "ce-probs": lambda: f.cross_entropy(tp, ty, **r),
        "gaussian-nll": lambda: f.gaussian_nll_loss(tp, ty, more["var"], **r),
        "margin-ranking": lambda: f.margin_ranking_loss(tp, more["other"], ty, margin=0.2, **r),
        "focal": lambda: torchvision_focal()(tp, ty, alpha=0.25, gamma=2.0, **r),
        "triplet": lambda: f.triplet_margin_loss(tp, ty, more["negative"], margin=1.0, **r),
        "cosine-embedding": lambda: f.cosine_embedding_loss(tp, ty, more["label"], margin=0.1, **r)}
    return float(calls[loss]().float().item())


def record(k: int, case: tuple) -> dict:
    if case in KERAS_STEPS:  # (a seed whose gradient shows the blocks: is its value placed as well?)
        seed, blocks = blocks_seed(20261205 + 100 * k, case)
        placed = own_sum_apart(seed, case)
    else:
        seed, placed = placed_seed(20261205 + 100 * k, case)
    y, p, extra = held_inputs(seed, case)
    conv, loss, dtype, reduction, rows, width = case
    rec = {"convention": conv, "loss": loss, "dtype": dtype, "reduction": reduction, "shape": [rows, width],
           "seed": seed, "placed": placed, "inputs": digest(y, p, *extra.values()),
           "value": str(framework_value(case, y, p, extra))}
    if conv.startswith("optax"):  # (and the step's losses and gradient, by digest)
        rec |= {"losses": digest(STEP["losses"]), "grad": digest(STEP["grad"])}
    if case in KERAS_STEPS:
        rec |= {"blocks": blocks, **keras_step(case, y, p)}
    return rec


def main() -> None:
    import torch

    recs = [record(k, case) for k, case in enumerate(CASES)]
    meta = {**versions(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "cpu": cpu_model()}
    OUT.write_text(json.dumps({"versions": meta, "records": recs}, indent=1) + "\n")
    print(f"{OUT}: {len(recs)} records, {sum(r['placed'] for r in recs)} placed, {meta}")


if __name__ == "__main__":
    main()
