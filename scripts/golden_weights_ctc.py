"""Record ctc weighed by sequence, as each framework's users weigh it, for tests/golden/weights_ctc.json (read by
tests/test_weights_ctc.py).

PyTorch: `(F.ctc_loss(lp, t, il, tl, reduction="none") * w).mean()` (or `.sum()`), w in the log-probabilities'
dtype (float32, float64): the plain form, whose mean divides by the batch size, not by the target lengths as
reduction="mean" does. Keras 3: keras.ops.ctc_loss inside Keras' loss wrapper (dtype= the dtype, as keras.losses.CTC)
called with sample_weight=w, what model.fit(sample_weight=...) passes to it (reduce_weighted_values). tf-keras:
tf_keras.backend.ctc_batch_cost on the probabilities e^x, reduced by compute_weighted_loss with sample_weight=w, as
fit reduces a loss function's [B, 1] losses. optax: jnp.mean(optax.ctc_loss(...) * w) (jnp.sum), w in the logits'
dtype, under jax.jit or op by op. The weights are float64 numbers each framework converts as it does (w here:
what the user gives).

Each record: the case (convention, dtype, jit, reduction, sequences, frames, classes, label columns, blank), the seed
its inputs come from (inputs(): pure numpy, so the test rebuilds them) with the SHA-256 of the inputs as the
framework is given them, and the framework's weighted per-sequence losses, reduced value and gradient, every number
as float.hex (a zero's sign kept); long batches (more than 32,768 sequences, which lossgrad evaluates in slices)
keep the losses and the gradient by SHA-256. Versions and the processor are recorded.

    python3 scripts/golden_weights_ctc.py
    python3 scripts/golden_weights_ctc.py --only torch,tf-keras   # those conventions' records again, the rest kept
    python3 scripts/golden_weights_ctc.py --sweep 300 [SEED]   # random batches live against lossgrad: how many apart
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

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "weights_ctc.json"
# each convention's dtypes (PyTorch's ctc_loss refuses the half dtypes on the CPU) and optax's modes
DTYPES = {"torch": ("float32", "float64"), "keras": ("float32", "float16", "bfloat16"),
          "tf-keras": ("float32", "float16", "bfloat16"), "optax": ("float32", "float16", "bfloat16")}
REDUCTIONS = ("none", "sum", "mean")
# weights of every kind: 0, 1, tiny (a float32 subnormal, and 1e-30), large (1e4, 3e4, and 7e4 beyond float16),
# and fractions whose products round
PICKS = np.array([0.0, 1.0, 0.1, 1 / 3, 0.3333, 1e-3, 1e-30, 1e-40, 25.0, 1e4, 3e4, 7e4, 2.0, 3.7])
# one of each kind, in every batch of 9 sequences or more
EVERY = np.array([0.0, 1e-40, 1e-3, 0.1, 1 / 3, 3e4, 7e4])
# (convention, dtype, jit, reduction, sequences, frames, classes, label columns, blank): evaluated in slices
LONG = (("torch", "float32", None, "mean", 40000, 4, 3, 2, 0), ("torch", "float64", None, "sum", 36001, 4, 4, 2, 0),
        ("keras", "float32", None, "mean", 40000, 4, 3, 2, 0), ("tf-keras", "float16", None, "mean", 36000, 4, 3, 2, 0),
        ("optax", "float32", True, "mean", 40000, 4, 3, 2, 0), ("optax", "bfloat16", False, "sum", 38000, 4, 4, 2, 0))


def kinds(dtype: str) -> Any:
    import ml_dtypes

    return {"float64": np.float64, "float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}[dtype]


def log_softmax(z: np.ndarray) -> np.ndarray:
    """z − max − log Σ e^(z − max) in long double, rounded to float64: the C library's expl and logl on any x86-64
    (numpy's float64 exp and log are its AVX-512 code where the processor has it, the C library's elsewhere, so a
    record's inputs rebuilt from its seed would differ between machines in their last bits)."""
    s = np.asarray(z, np.longdouble) - z.max(axis=-1, keepdims=True)
    out: np.ndarray = (s - np.log(np.exp(s).sum(axis=-1, keepdims=True))).astype(np.float64)
    return out


def inputs(seed: int, case: tuple) -> dict[str, np.ndarray]:
    """Logits [B, T, C] (log-probabilities for torch and tf-keras), padded labels [B, L] (no blank; padding 0 past
    each target length, or the blank's neighbour for Keras 3, whose mask_index is the blank), the input and target
    lengths (some sequences without an alignment for the frameworks that give one a finite loss or refuse nothing)
    and the weights."""
    conv, dtype, _, _, b, t, c, n, blank = case
    rng = np.random.default_rng(seed)
    z = rng.normal(0, float(rng.choice([0.5, 2.0, 6.0])), (b, t, c))
    tl = rng.integers(1, n + 1, b)
    if conv == "tf-keras":  # (its op refuses a sequence with more labels than frames)
        tl = np.minimum(tl, t)
    lab = rng.integers(0, c - 1, (b, n))
    lab = np.where(lab >= blank, lab + 1, lab)
    lab = np.where(np.arange(n)[None, :] < tl[:, None], lab, blank if conv == "keras" else 0)
    il = rng.integers(max(1, t // 2), t + 1, b)
    if conv == "tf-keras":
        il = np.maximum(il, tl)
    w = rng.uniform(0, 2, b)
    some = rng.random(b) < 0.5
    w[some] = rng.choice(PICKS, int(some.sum()))
    if b >= len(EVERY):  # (each kind of weight, in places of the seed's)
        w[rng.permutation(b)[:len(EVERY)]] = EVERY
    x = log_softmax(z) if conv in ("torch", "tf-keras") else z
    return {"pred": x.astype(kinds(dtype)).astype(np.float64), "labels": lab, "il": il, "tl": tl, "w": w}


def digest(*arrays: np.ndarray) -> str:
    """SHA-256 of the arrays' float64 bytes, in C order, one after another."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes())
    return h.hexdigest()


def lossgrads(case: tuple, d: dict[str, np.ndarray]) -> dict[str, Any]:
    """lossgrad's weighted losses, value and gradient ([B, T, C]) for the case."""
    import lossgrad

    conv, dtype, jit, reduction, _, _, _, _, blank = case
    r = lossgrad.ctc(d["labels"], d["pred"], input_lengths=d["il"], target_lengths=d["tl"], sample_weight=d["w"],
                     from_logits=conv in ("keras", "optax"), convention=conv, dtype=dtype, reduction=reduction,
                     blank=blank, **({} if jit is None else {"jit": jit}))
    return {"losses": np.asarray(r.losses, np.float64), "value": r.value, "grad": np.asarray(r.grad, np.float64),
            "warnings": r.warnings}


def torch_run(case: tuple, d: dict[str, np.ndarray]) -> dict[str, Any]:
    """(F.ctc_loss(reduction="none") * w).mean() / .sum(); none: the products, and the gradient of their sum."""
    import torch

    _, dtype, _, reduction, _, _, _, _, blank = case
    kind = getattr(torch, dtype)
    lp = torch.tensor(d["pred"], dtype=kind).permute(1, 0, 2).detach().requires_grad_()
    losses = torch.nn.functional.ctc_loss(lp, torch.tensor(d["labels"]), torch.tensor(d["il"]),
                                          torch.tensor(d["tl"]), blank=blank, reduction="none")
    weighted = losses * torch.tensor(d["w"], dtype=kind)
    value = weighted.mean() if reduction == "mean" else weighted.sum()
    value.backward()
    return {"losses": weighted.detach().numpy().astype(np.float64), "value": None if reduction == "none" else
            float(value.detach()), "grad": lp.grad.permute(1, 0, 2).numpy().astype(np.float64)}


def keras_run(case: tuple, d: dict[str, np.ndarray]) -> dict[str, Any]:
    """keras.ops.ctc_loss in Keras' loss wrapper (as keras.losses.CTC), called with sample_weight."""
    import keras
    import tensorflow as tf
    from keras.src.losses.losses import LossFunctionWrapper

    _, dtype, _, reduction, _, _, _, _, blank = case

    def fn(y_true: Any, y_pred: Any) -> Any:
        return keras.ops.ctc_loss(y_true, y_pred, tf.constant(d["tl"], tf.int32), tf.constant(d["il"], tf.int32),
                                  mask_index=blank)
    kind = getattr(tf, dtype)
    lab = tf.constant(d["labels"], kind)
    per = LossFunctionWrapper(fn, reduction=None, dtype=dtype)(lab, tf.constant(d["pred"], kind), sample_weight=d["w"])
    zv = tf.Variable(tf.constant(d["pred"], kind))
    with tf.GradientTape() as tape:
        how = "sum_over_batch_size" if reduction == "mean" else "sum"
        value = LossFunctionWrapper(fn, reduction=how, dtype=dtype)(lab, zv, sample_weight=d["w"])
    return {"losses": tf.cast(per, tf.float64).numpy(), "value": None if reduction == "none" else
            float(tf.cast(value, tf.float64).numpy()), "grad": tf.cast(tape.gradient(value, zv), tf.float64).numpy()}


def tfkeras_run(case: tuple, d: dict[str, np.ndarray]) -> dict[str, Any]:
    """tf_keras.backend.ctc_batch_cost on the probabilities e^x (the blank moved last), compute_weighted_loss with
    sample_weight as fit reduces it; the gradient with respect to the probabilities, in the case's class order."""
    import tensorflow as tf
    import tf_keras
    from tf_keras.src.utils import losses_utils

    _, dtype, _, reduction, _, _, c, _, blank = case
    order = [k for k in range(c) if k != blank] + [blank]
    where = np.argsort(order)
    lab = np.where(np.arange(d["labels"].shape[1])[None, :] < d["tl"][:, None], where[d["labels"]], 0)
    yv = tf.Variable(tf.gather(tf.exp(tf.constant(d["pred"], getattr(tf, dtype))), order, axis=2))
    with tf.GradientTape() as tape:
        losses = tf_keras.backend.ctc_batch_cost(tf.constant(lab), yv, tf.constant(d["il"][:, None]),
                                                 tf.constant(d["tl"][:, None]))
        how = "sum_over_batch_size" if reduction == "mean" else "sum"
        value = losses_utils.compute_weighted_loss(losses, sample_weight=d["w"], reduction=how)
    per = losses_utils.compute_weighted_loss(losses, sample_weight=d["w"], reduction="none")
    return {"losses": tf.cast(per, tf.float64).numpy()[:, 0], "value": None if reduction == "none" else
            float(tf.cast(value, tf.float64).numpy()),
            "grad": tf.cast(tape.gradient(value, yv), tf.float64).numpy()[..., where]}


def optax_run(case: tuple, d: dict[str, np.ndarray]) -> dict[str, Any]:
    """jax.value_and_grad of jnp.mean (jnp.sum) of optax.ctc_loss times w (in the dtype), under jit or op by op;
    the paddings in the dtype."""
    import jax
    import jax.numpy as jnp
    import optax

    _, dtype, jit, reduction, b, t, _, n, blank = case
    kind = kinds(dtype)
    logit_pad = jnp.asarray((np.arange(t)[None, :] >= d["il"][:, None]).astype(kind))
    label_pad = jnp.asarray((np.arange(n)[None, :] >= d["tl"][:, None]).astype(kind))
    w = jnp.asarray(d["w"].astype(kind))

    def reduced(z: Any) -> Any:
        losses = optax.ctc_loss(z, logit_pad, jnp.asarray(d["labels"]), label_pad, blank_id=blank) * w
        return (jnp.mean(losses) if reduction == "mean" else jnp.sum(losses)), losses
    step = jax.value_and_grad(reduced, has_aux=True)
    (value, losses), grad = (jax.jit(step) if jit else step)(jnp.asarray(d["pred"].astype(kind)))
    return {"losses": np.asarray(losses, np.float64), "value": None if reduction == "none" else
            float(np.float32(value)), "grad": np.asarray(grad.astype(jnp.float32), np.float64)}


RUNS = {"torch": torch_run, "keras": keras_run, "tf-keras": tfkeras_run, "optax": optax_run}


def same_bits(a: Any, b: Any) -> bool:
    """The same numbers, a zero's sign included (any NaN is a NaN: its sign and payload are the processor's)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.all((a.view(np.uint64) == b.view(np.uint64)) | (np.isnan(a) & np.isnan(b))))


def apart(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """What of lossgrad's differs from the framework's, bit by bit (a zero's sign counts)."""
    out = [k for k in ("losses", "grad") if not same_bits(ours[k], theirs[k])]
    value = theirs["value"]
    if value is not None and not (ours["value"] == value or (np.isnan(ours["value"]) and np.isnan(value))):
        out.append("value")
    return out


def random_case(rng: np.random.Generator, conv: str | None = None) -> tuple:
    """A case of up to 12 sequences of up to 24 frames, 2 to 8 classes, up to 5 label columns, any blank."""
    conv = conv or str(rng.choice(list(DTYPES)))
    dtype = str(rng.choice(DTYPES[conv]))
    jit = bool(rng.integers(2)) if conv == "optax" else None
    c = int(rng.integers(2, 9))
    return (conv, dtype, jit, str(rng.choice(REDUCTIONS)), int(rng.integers(1, 13)), int(rng.integers(2, 25)), c,
            int(rng.integers(1, 6)), int(rng.integers(c)))


def cases() -> list[tuple]:
    """Every convention, dtype, reduction (and optax's modes) on a batch of 9 sequences; then 40 random cases."""
    out = [(conv, dtype, jit, reduction, 9, 11, 5, 4, blank)
           for conv, dtypes in DTYPES.items() for dtype in dtypes for reduction in REDUCTIONS
           for jit, blank in (((True, 0), (False, 2)) if conv == "optax" else ((None, 0), (None, 4)))]
    rng = np.random.default_rng(20261206)
    # optax under jit: weighted losses of up to 32 sequences summed one after another (their order shows in the
    # last bit of some of these values)
    order = [("optax", dtype, True, reduction, b, 7, 3, n, 0) for b, n in ((8, 1), (17, 4), (20, 2), (24, 3), (31, 1))
             for dtype, reduction in (("float32", "mean"), ("bfloat16", "sum"))]
    return out + [random_case(rng) for _ in range(40)] + order


def hexed(a: Any) -> list[str] | str | None:
    return None if a is None else float(a).hex() if np.ndim(a) == 0 else [float(v).hex() for v in np.ravel(a)]


def record(k: int, case: tuple) -> dict[str, Any]:
    seed = 20261206 + k
    d = inputs(seed, case)
    got = RUNS[case[0]](case, d)
    rec = {"case": list(case), "seed": seed, "inputs": digest(*d.values()), "weights": hexed(d["w"]),
           "value": hexed(got["value"])}
    if case[4] > 32768:
        return rec | {"losses_digest": digest(got["losses"]), "grad_digest": digest(got["grad"])}
    return rec | {"losses": hexed(got["losses"]), "grad": hexed(got["grad"])}


def meta() -> dict[str, Any]:
    from make_golden import jax_versions, torch_meta

    return {**torch_meta(), **jax_versions()}


def sweep(rounds: int, seed: int) -> None:
    """`rounds` random cases live: how many of each convention have losses, value or gradient apart from the
    framework's."""
    rng = np.random.default_rng(seed)
    seen: dict[str, int] = {}
    off: dict[str, list] = {}
    for i in range(rounds):
        case = random_case(rng)
        d = inputs(int(rng.integers(2 ** 31)), case)
        diff = apart(lossgrads(case, d), RUNS[case[0]](case, d))
        seen[case[0]] = seen.get(case[0], 0) + 1
        if diff:
            off.setdefault(case[0], []).append((i, case, diff))
    for conv in DTYPES:
        print(f"{conv}: {len(off.get(conv, []))} of {seen.get(conv, 0)} apart", off.get(conv, [])[:5])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--sweep":
        return sweep(int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    every = cases() + list(LONG)
    if len(sys.argv) > 2 and sys.argv[1] == "--only":  # (those conventions' records again; the others kept)
        old = json.loads(OUT.read_text())
        kept = old["records"]
        assert [r["case"] for r in kept] == [list(c) for c in every]
        recs = [record(k, case) if case[0] in sys.argv[2].split(",") else kept[k] for k, case in enumerate(every)]
        versions = {**old["versions"], "records_of " + sys.argv[2]: meta()}  # (where these were made again)
    else:
        recs = [record(k, case) for k, case in enumerate(every)]
        versions = meta()
    OUT.write_text(json.dumps({"versions": versions, "records": recs}, indent=1) + "\n")
    print(f"{OUT}: {len(recs)} records")


if __name__ == "__main__":
    main()
