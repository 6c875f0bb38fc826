"""Record optax.ctc_loss where the logits' gap overflows the dtype: log_softmax's x − max is −∞ for a class, and
optax's einsum of the log-probabilities with a one-hot row (−∞·0) makes the labels' log-probabilities NaN, and so
the sequence's loss and gradient, whichever label the row picks. For tests/golden/ctc_overflow.json (read by
tests/test_ctc_overflow.py): float32 and bfloat16 (logits ±3·10³⁸), float16 (±40,000: a gap of 80,000 is beyond
its 65,504) and float64 (±1.7·10³⁰⁸, jax_enable_x64), op by op and under jax.jit, the mean and the sum; every
number as float.hex. And the same batches for Keras 3 (TensorFlow's ctc_loss_dense, whose one-hot product is the
same −∞·0) and tf-keras (ctc_batch_cost of e^x: the CTCLoss op's softmax of an infinite input is NaN) in float32,
float16 and bfloat16, as scripts/golden_lowp_tf_ctc.py records them ("tf_records").

    python3 scripts/golden_ctc_overflow.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "ctc_overflow.json"
BIG = {"float32": 3e38, "bfloat16": 3e38, "float16": 40000.0, "float64": 1.7e308}


def cases(big: float) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, logits [B, T, C], labels [B, L]): blank 0, every frame and label counted."""
    gap = [0.0, -big, big]
    return [("other-class", np.array([[gap, [0.5, 0.1, -0.2]]]), np.array([[2, 1]])),
            ("own-class", np.array([[gap, [0.5, 0.1, -0.2]]]), np.array([[1, 2]])),
            ("one-of-two", np.array([[[0.3, 0.2, 0.1], [0.0, big, -big]], [[0.1, 0.2, 0.3], [0.0, 1.0, 2.0]]]),
             np.array([[1, 1], [2, 1]]))]


def hexes(a: Any) -> list[str]:
    return [float(v).hex() for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def record(name: str, x: np.ndarray, labels: np.ndarray, dtype: str, jit: bool) -> dict:
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")
    import jax.numpy as jnp
    import optax

    kind = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "bfloat16": jnp.bfloat16}[dtype]
    b, t, _ = x.shape
    logit_pad, label_pad = jnp.zeros((b, t), kind), jnp.zeros(labels.shape, kind)
    out: dict[str, Any] = {"name": name, "dtype": dtype, "jit": jit, "logits": hexes(x.astype(kind)),
                           "shape": list(x.shape), "labels": labels.tolist()}
    for reduction in ("mean", "sum"):
        def reduced(z: Any, reduction: str = reduction) -> Any:
            losses = optax.ctc_loss(z, logit_pad, jnp.asarray(labels), label_pad, blank_id=0)
            return (jnp.mean(losses) if reduction == "mean" else jnp.sum(losses)), losses
        step = jax.value_and_grad(reduced, has_aux=True)
        (value, losses), grad = (jax.jit(step) if jit else step)(jnp.asarray(x.astype(kind)))
        out["losses"] = hexes(losses)
        out[reduction] = {"value": float(value).hex(), "grad": hexes(grad)}
    return out


def tf_records() -> list[dict]:
    import golden_lowp_tf_ctc as gt

    out = []
    for dtype in ("float32", "float16", "bfloat16"):
        for name, x, labels in cases(BIG[dtype]):
            b, t, _ = x.shape
            frames, lengths = [t] * b, [labels.shape[1]] * b
            out.append(gt.record(x, labels, frames, lengths, 0, name, dtype))
            out.append(gt.tfkeras_record(x, labels, frames, lengths, 0, name, dtype))
    return out


def main() -> None:
    from make_golden import cpu_model, jax_versions

    recs = [record(name, x, labels, dtype, jit) for dtype in ("float32", "float16", "bfloat16", "float64")
            for name, x, labels in cases(BIG[dtype]) for jit in (False, True)]
    data = {"versions": jax_versions() | {"cpu": cpu_model()}, "made_by": "scripts/golden_ctc_overflow.py",
            "records": recs, "tf_records": tf_records()}
    OUT.write_text(json.dumps(data, indent=0) + "\n")
    print(f"{OUT}: {len(recs)} records, {len(data['tf_records'])} of TensorFlow's")


if __name__ == "__main__":
    main()
