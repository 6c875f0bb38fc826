"""Record JAX's CPU results for optax.ctc_loss on logits in float32, float16 and bfloat16 for
tests/golden/lowp_xla_ctc.json (read by tests/test_lowp_xla_ctc.py).

Each record: logits [B, T, C] already representable in the dtype, padded labels [B, L] (the padding value kept, as
optax reads it), each sequence's frames and labels (as optax's paddings: 1 from a sequence's length on, in the
logits' dtype), the blank, jit (jax.jit around jax.value_and_grad, or each operation on its own), the reduction
(jnp.mean, jnp.sum; none: the losses and the gradient of their sum), and JAX's per-sequence losses, reduced value
and gradient with respect to the logits, as the shortest decimals that read back to the same float32. Cases: random
batches whose sizes leave lane remainders, repeated labels, padded labels, sequences with no alignment, large
logits, up to 100 frames; in float32, batches of 4 to 108 sequences of 3 to 8 label columns, where LLVM vectorises
the backward loop across the sequences; values under jit that XLA fuses with the pick of each sequence's last
state; and bfloat16 batches from 4096 rows of frames, where YNNPACK takes log_softmax's work.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_lowp_xla import DTYPES, _np_dtype, _rounded, _short  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_xla_ctc.json"


def record(name, x, labels, il, tl, blank, dtype, jit, reduction):
    import jax
    import jax.numpy as jnp
    import optax

    kind = _np_dtype(dtype)
    t, n = x.shape[1], labels.shape[1]
    logit_pad = jnp.asarray((np.arange(t)[None, :] >= np.asarray(il)[:, None]).astype(np.float32).astype(kind))
    label_pad = jnp.asarray((np.arange(n)[None, :] >= np.asarray(tl)[:, None]).astype(np.float32).astype(kind))

    def reduced(z):
        losses = optax.ctc_loss(z, logit_pad, jnp.asarray(labels), label_pad, blank_id=blank)
        return (jnp.mean(losses) if reduction == "mean" else jnp.sum(losses)), losses
    both = jax.value_and_grad(reduced, has_aux=True)
    if jit:
        both = jax.jit(both)
    (value, losses), grad = both(jnp.asarray(x.astype(kind)))
    return {"name": name, "dtype": dtype, "jit": jit, "reduction": reduction, "pred": _short(x),
            "labels": np.asarray(labels).tolist(), "input_lengths": list(map(int, il)),
            "target_lengths": list(map(int, tl)), "blank": blank,
            "losses": _short(np.asarray(losses, dtype=np.float32)),
            "value": None if reduction == "none" else str(np.float32(value)),
            "grad": _short(np.asarray(grad, dtype=np.float32))}


def cases(rng):
    """(name, logits [B, T, C], padded labels [B, L], input lengths, target lengths, blank)."""
    def batch(b, t, c, n, scale=1.0, low=1):
        x = rng.standard_normal((b, t, c)) * scale
        labels = rng.integers(low, c, (b, n))
        return x, labels, rng.integers(max(1, t // 2), t + 1, b), rng.integers(0, n + 1, b)
    yield ("random", *batch(3, 6, 5, 3), 0)
    yield ("lanes", *batch(5, 13, 7, 4), 0)
    yield ("repeats", *batch(4, 20, 3, 5), 0)
    yield ("large", *batch(3, 9, 6, 3, scale=40.0), 0)
    x, labels, il, tl = batch(2, 100, 5, 12)
    yield ("long", x, labels, il, tl, 0)
    x = rng.standard_normal((3, 4, 4))
    yield ("impossible", x, np.array([[1, 1, 1], [2, 3, 2], [1, 2, 0]]), [4, 2, 4], [3, 3, 2], 0)
    x = rng.standard_normal((2, 7, 5))
    yield ("padded", x, np.array([[2, 2, 4, 4], [3, 1, 3, 3]]), [7, 6], [2, 3], 0)
    x = rng.standard_normal((2, 8, 4))
    yield ("blank-last", x, np.array([[0, 1, 2], [2, 2, 1]]), [8, 7], [3, 2], 3)


# (sequences, label columns) whose backward loop LLVM vectorises across the sequences (lossgrad's
# lowp_xla_ctc.vectorised_block), and neighbours it leaves alone
WIDE = ((4, 6), (4, 8), (8, 7), (8, 8), (12, 8), (16, 3), (16, 4), (16, 5), (16, 7), (17, 8), (20, 5), (21, 5),
        (24, 4), (36, 5), (36, 6), (40, 7), (52, 4), (68, 3), (92, 6), (108, 6))


def wide_cases(rng, shapes=WIDE):
    """Batches of the shapes above: random logits, labels and lengths, a few frames and classes."""
    for b, n in shapes:
        t, c = int(rng.integers(4, 9)), int(rng.integers(n + 1, n + 6))
        x = rng.standard_normal((b, t, c)) * rng.choice([1.0, 4.0])
        labels = rng.integers(1, c, (b, n))
        yield f"wide-{b}x{n}", x, labels, rng.integers(max(1, t // 2), t + 1, b), rng.integers(0, n + 1, b), 0


def wide_records(rng):
    """float32, where the vectorised block's roundings show: both modes, the mean and the losses' sum."""
    return [record(name, _rounded(x, "float32"), labels, il, tl, blank, "float32", jit, reduction)
            for name, x, labels, il, tl, blank in wide_cases(rng) for jit in (True, False)
            for reduction in ("none", "mean")]


def records(rng):
    out = []
    for name, x, labels, il, tl, blank in cases(rng):
        for dtype in DTYPES:
            xd = _rounded(x, dtype)
            for jit in (True, False):
                for reduction in ("none", "sum", "mean"):
                    out.append(record(name, xd, labels, il, tl, blank, dtype, jit, reduction))
    return out


def final_state_records(rng):
    """Under jit ("final states"): XLA fuses the mean with optax's pick of each sequence's last state, a sum over
    the [B, L + 1] matrix holding each loss at its target length (lossgrad.lowp_xla_ctc.final_states). Batches
    placed where the losses' sum in order differs (golden_lowp_xla._apart)."""
    import lossgrad
    from golden_lowp_xla import _apart, undone
    from lossgrad import lowp_xla_ctc

    def in_order():
        return undone(lowp_xla_ctc, "final_states", lambda losses, lengths, columns: losses)

    def draw(g, b: int, dtype: str):
        t, c, n = int(g.integers(5, 20)), int(g.integers(4, 12)), int(g.integers(2, 6))
        x = _rounded(g.standard_normal((b, t, c)) * 2, dtype)
        return x, g.integers(1, c, (b, n)), g.integers(max(1, t // 2), t + 1, b), g.integers(0, n + 1, b)

    def value(dtype: str):
        def run(x, labels, il, tl):
            r = lossgrad.ctc(labels, x.astype(np.float64), input_lengths=list(il), target_lengths=list(tl),
                             from_logits=True, convention="optax", dtype=dtype, reduction="mean", jit=True)
            return (np.array([r.value]),)
        return run
    out = []
    for dtype, b in (("float32", 8), ("bfloat16", 16), ("float16", 32)):
        x, labels, il, tl = _apart(rng, lambda g, b=b, d=dtype: draw(g, b, d), value(dtype), in_order)
        out.append(record("final states", x, labels, il, tl, 0, dtype, True, "mean"))
    return out


# bfloat16 batches (B, T, C, L, jit, reduction) from 4096 rows of frames B·T, where YNNPACK keeps log_softmax's
# z − max in float32 (and under jit Σe^s, its log YNNPACK's), and of 4,095 rows, XLA's own loops
YNN_FRAMES = ((819, 5, 6, 2, False, "mean"), (1024, 4, 6, 2, False, "sum"), (700, 6, 5, 2, False, "none"),
              (819, 5, 6, 2, True, "mean"), (420, 10, 10, 4, True, "sum"), (300, 14, 8, 3, True, "none"))


def ynn_records(rng):
    """YNN_FRAMES' records ("ynn frames")."""
    out = []
    for b, t, c, n, jit, reduction in YNN_FRAMES:
        x = _rounded(rng.standard_normal((b, t, c)) * 2, "bfloat16")
        labels = rng.integers(1, c, (b, n))
        il, tl = rng.integers(max(1, t // 2), t + 1, b), rng.integers(0, n + 1, b)
        out.append(record("ynn frames", x, labels, il, tl, 0, "bfloat16", jit, reduction))
    return out


def main() -> None:
    from make_golden import jax_versions

    recs = records(np.random.default_rng(20261202)) + wide_records(np.random.default_rng(20261203))
    recs += final_state_records(np.random.default_rng(20261204)) + ynn_records(np.random.default_rng(20261205))
    meta = jax_versions()
    OUT.write_text(json.dumps({"versions": meta, "records": recs}) + "\n")
    print(f"{OUT}: {len(recs)} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
