"""Record JAX's CPU results for optax's ctc_loss in float16 and bfloat16 where batches grow, for
tests/golden/ctc_half.json (read by tests/test_lowp_xla_ctc.py).

Two things happen there that smaller records do not show. From 4,096 sequences in bfloat16 XLA hands the backward
pass's two sums of the blank's cotangent, and their sum, to one of YNNPACK's fusions, which drops the roundings
between them (below, each sum is stored first). Beyond 32 classes log_softmax's backward sums the cotangents of a
frame in XLA's windows of 32, in the dtype. Each record: the case (dtype, jit, sequences, frames, classes, labels),
the seed its inputs are drawn from (`inputs`, pure numpy: the test draws them again) and digests of them, JAX's
per-sequence losses and gradient (SHA-256 of their float64 bytes) and the mean's value. The versions and the
processor are recorded.

    python3 scripts/golden_ctc_half.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_weights_ctc import digest, hexed  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "ctc_half.json"
# (dtype, jit, sequences, frames, classes, labels): each side of 4,096 sequences and larger batches; each side of
# 32 classes and more, with few sequences and many
CASES = (("bfloat16", True, 4095, 6, 5, 2), ("bfloat16", True, 4096, 6, 5, 2), ("bfloat16", False, 4096, 6, 5, 2),
         ("bfloat16", True, 5000, 8, 12, 5), ("bfloat16", False, 6000, 4, 7, 3), ("bfloat16", True, 4500, 10, 30, 7),
         ("bfloat16", True, 100, 6, 32, 3), ("bfloat16", True, 100, 6, 33, 3), ("bfloat16", False, 60, 9, 70, 7),
         ("float16", True, 100, 6, 33, 3), ("float16", False, 80, 5, 40, 4), ("float16", True, 50, 7, 100, 6),
         ("bfloat16", True, 3000, 6, 35, 3), ("float16", True, 4100, 4, 36, 2))


def inputs(seed: int, case: tuple) -> dict[str, np.ndarray]:
    """Logits [B, T, C] as the dtype holds them, labels [B, S] (0 past each target length: the blank's place, never
    a label), input and target lengths."""
    import ml_dtypes

    dtype, _, b, t, c, s = case
    kind = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16
    rng = np.random.default_rng(seed)
    z = rng.normal(0, float(rng.choice([0.5, 2.0, 6.0])), (b, t, c)).astype(kind).astype(np.float64)
    tl = rng.integers(1, s + 1, b)
    il = rng.integers(max(1, t // 2), t + 1, b)
    labels = np.where(np.arange(s)[None, :] < tl[:, None], rng.integers(1, c, (b, s)), 0)
    return {"pred": z, "labels": labels, "il": il, "tl": tl}


def optax_run(case: tuple, d: dict[str, np.ndarray]) -> dict[str, Any]:
    """jax.value_and_grad of jnp.mean(optax.ctc_loss(...)) in the dtype, under jit or op by op."""
    import jax
    import jax.numpy as jnp
    import optax

    dtype, jit, _, t, _, s = case
    kind = jnp.bfloat16 if dtype == "bfloat16" else jnp.float16
    logit_pad = jnp.asarray((np.arange(t)[None, :] >= d["il"][:, None]), dtype=kind)
    label_pad = jnp.asarray((np.arange(s)[None, :] >= d["tl"][:, None]), dtype=kind)

    def mean(z: Any) -> Any:
        losses = optax.ctc_loss(z, logit_pad, jnp.asarray(d["labels"].astype(np.int32)), label_pad)
        return jnp.mean(losses), losses
    step = jax.value_and_grad(mean, has_aux=True)
    (value, losses), grad = (jax.jit(step) if jit else step)(jnp.asarray(d["pred"], dtype=kind))
    return {"losses": np.asarray(losses.astype(jnp.float32), np.float64), "value": float(np.float32(value)),
            "grad": np.asarray(grad.astype(jnp.float32), np.float64)}


def record(k: int, case: tuple) -> dict[str, Any]:
    seed = 20261205 + k
    d = inputs(seed, case)
    got = optax_run(case, d)
    return {"case": list(case), "seed": seed, "inputs": digest(*d.values()), "value": hexed(got["value"]),
            "losses": digest(got["losses"]), "grad": digest(got["grad"])}


def main() -> None:
    from make_golden import cpu_model, jax_versions

    recs = [record(k, case) for k, case in enumerate(CASES)]
    OUT.write_text(json.dumps({"versions": jax_versions() | {"cpu": cpu_model()}, "records": recs}, indent=1) + "\n")
    print(f"{OUT}: {len(recs)} records")


if __name__ == "__main__":
    main()
