"""Record PyTorch's, Keras 3's and JAX's (optax's) ctc values over batches of more than 32,768 sequences, for
tests/golden/long_ctc.json (read by tests/test_long_ctc.py).

ctc_loss's mean divides each sequence's loss by its target length and then takes torch.mean of them: SumKernel over
all the sequences, more than 32,768 of them split between the threads; Keras 3's CTC sums the losses with
tf.reduce_sum's tree of halves and divides by the batch size; optax's jnp.mean or jnp.sum adds them (under jit, the
final states' matrix XLA fuses the pick into) in an order that depends on the whole array. lossgrad evaluates a long
batch in slices of 32,768 sequences (and a tensor file in blocks), and forms those sums over all the slices (the
streamed torch.sum, lowp.Summed; the joined losses, losses.base.Joined); these records hold it to the frameworks'.

Each record: the case (convention, dtype, reduction, sequences, classes, jit), the seed its inputs come from
(inputs(): pure numpy, so the test rebuilds them) with the SHA-256 of the logits as the dtype holds them, and the
framework's value; `placed` says the seed is the first from the case's whose value under lossgrad changes when
lossgrad's own sum of the losses stands in for the framework's. Versions and the processor are recorded.

    python3 scripts/golden_long_ctc.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_long_batches import digest, held  # noqa: E402
from make_golden import cpu_model, versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "long_ctc.json"
FRAMES, LABELS = 4, 2
# (convention, dtype, reduction, sequences, classes, jit): torch takes log-probabilities, the others logits
CASES = (("torch", "float32", "mean", 70001, 3, None), ("torch", "float64", "mean", 53917, 4, None),
         ("torch", "float32", "sum", 40000, 5, None), ("torch", "float64", "sum", 66818, 3, None),
         ("keras", "float32", "mean", 70001, 3, None), ("keras", "float32", "sum", 45000, 4, None),
         ("optax", "float32", "mean", 70001, 3, True), ("optax", "float32", "sum", 52812, 4, False),
         ("optax", "bfloat16", "mean", 55239, 3, True), ("optax", "bfloat16", "sum", 77410, 4, False),
         ("optax", "float16", "mean", 66818, 5, True), ("optax", "float16", "sum", 39288, 3, False))


def inputs(seed: int, sequences: int, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits [B, T, C], padded labels [B, L] (no blank, class 0) and the target lengths (1 or 2: every sequence's
    labels fit its FRAMES frames)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, (sequences, FRAMES, classes))
    return z, rng.integers(1, classes, (sequences, LABELS)), rng.integers(1, LABELS + 1, sequences)


def log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def held_inputs(seed: int, case: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The predictions lossgrad is given (log-probabilities for torch, logits otherwise, as the dtype holds them),
    labels and target lengths."""
    conv, dtype, _, sequences, classes, _ = case
    z, labels, lengths = inputs(seed, sequences, classes)
    x = log_softmax(z) if conv == "torch" else z
    return (x if dtype == "float64" else held(x, dtype)), labels, lengths


def lossgrads_value(case: tuple, x: np.ndarray, labels: np.ndarray, lengths: np.ndarray) -> float:
    import lossgrad

    conv, dtype, reduction, sequences, _, jit = case
    return float(lossgrad.ctc(labels, x, input_lengths=np.full(sequences, FRAMES), target_lengths=lengths,
                              from_logits=conv != "torch", convention=conv, dtype=dtype, reduction=reduction,
                              **({} if jit is None else {"jit": jit})).value)


def placed_seed(first: int, case: tuple) -> tuple[int, bool]:
    """The first seed from `first` whose value under lossgrad changes when lossgrad's own sum stands in for the
    kernel's (the slices' fold undone), and True; else `first` and False."""
    from lossgrad import reduction

    folded = reduction.Slices.folded
    for seed in range(first, first + 40):
        args = held_inputs(seed, case)
        kernels = lossgrads_value(case, *args)
        reduction.Slices.folded = lambda self: None  # type: ignore[method-assign]
        try:
            own = lossgrads_value(case, *args)
        finally:
            reduction.Slices.folded = folded  # type: ignore[method-assign]
        if kernels != own:
            return seed, True
    return first, False


def torch_value(case: tuple, x: np.ndarray, labels: np.ndarray, lengths: np.ndarray) -> float:
    import torch

    _, dtype, reduction, sequences, _, _ = case
    lp = torch.tensor(x, dtype=getattr(torch, dtype)).permute(1, 0, 2)
    return float(torch.nn.functional.ctc_loss(lp, torch.tensor(labels), torch.full((sequences,), FRAMES),
                                              torch.tensor(lengths), reduction=reduction))


def keras_value(case: tuple, x: np.ndarray, labels: np.ndarray, lengths: np.ndarray) -> float:
    """keras.losses.CTC's reduction: tf.reduce_sum of keras.ops.ctc_loss's losses, over the batch size for the mean."""
    import keras
    import tensorflow as tf

    _, dtype, reduction, sequences, _, _ = case
    losses = keras.ops.ctc_loss(tf.constant(labels), tf.constant(x, dtype=dtype), tf.constant(lengths),
                                tf.constant(np.full(sequences, FRAMES)), mask_index=0)
    total = tf.reduce_sum(losses)
    return float(total / sequences if reduction == "mean" else total)


def optax_value(case: tuple, x: np.ndarray, labels: np.ndarray, lengths: np.ndarray) -> float:
    """The training step lossgrad reproduces: jax.value_and_grad of jnp.mean (or jnp.sum) of optax.ctc_loss, under
    jax.jit or op by op, with the paddings in the dtype."""
    import jax
    import jax.numpy as jnp
    import ml_dtypes
    import optax

    _, dtype, reduction, sequences, _, jit = case
    kind = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}[dtype]
    logit_pad = jnp.asarray(np.zeros((sequences, FRAMES)).astype(kind))
    label_pad = jnp.asarray((np.arange(LABELS)[None, :] >= lengths[:, None]).astype(kind))

    def reduced(z):
        losses = optax.ctc_loss(z, logit_pad, jnp.asarray(labels), label_pad, blank_id=0)
        return (jnp.mean(losses) if reduction == "mean" else jnp.sum(losses)), losses
    step = jax.value_and_grad(reduced, has_aux=True)
    (value, _), _ = (jax.jit(step) if jit else step)(jnp.asarray(x.astype(kind)))
    return float(np.float32(value))


def record(k: int, case: tuple) -> dict:
    seed, placed = placed_seed(20261205 + 100 * k, case)
    x, labels, lengths = held_inputs(seed, case)
    conv, dtype, reduction, sequences, classes, jit = case
    value = {"torch": torch_value, "keras": keras_value, "optax": optax_value}[conv](case, x, labels, lengths)
    return {"convention": conv, "dtype": dtype, "reduction": reduction, "shape": [sequences, FRAMES, classes],
            "jit": jit, "seed": seed, "placed": placed, "inputs": digest(x, labels, lengths), "value": repr(value)}


def main() -> None:
    import torch

    recs = [record(k, case) for k, case in enumerate(CASES)]
    meta = {**versions(), "threads": torch.get_num_threads(), "cpu": cpu_model()}
    OUT.write_text(json.dumps({"versions": meta, "records": recs}, indent=1) + "\n")
    print(f"{OUT}: {len(recs)} records, {sum(r['placed'] for r in recs)} placed, {meta}")


if __name__ == "__main__":
    main()
