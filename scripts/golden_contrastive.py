"""Record what optax.ntxent returns for a batch of anchors and their positives: the loss over the 2B rows
[anchors; positives] with labels [0..B−1, 0..B−1] (each row's positive its pair), and jax.grad of it with respect to
the embeddings, split back into the anchors' and the positives' halves. float64 (jax x64) and float32.

    python3 scripts/golden_contrastive.py

writes tests/golden/contrastive.json ("format": "contrastive", read by tests/test_contrastive.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "contrastive.json"

CASES = [
    # (name, anchors, positives, temperature)
    ("two-pairs", [[1.0, 0.5], [-0.3, 2.0]], [[0.8, 0.7], [0.1, 1.5]], 0.5),
    ("three-pairs-3d", [[0.2, -1.0, 0.4], [1.5, 0.3, -0.2], [-0.7, 0.9, 1.1]],
     [[0.1, -0.9, 0.6], [1.2, -0.1, 0.3], [-0.5, 1.3, 0.8]], 0.07),
    ("nearly-parallel", [[1.0, 1e-4, 0.0], [0.0, 1.0, 2e-4], [3.0, 3.0001, 0.5]],
     [[1.0, 0.0, 1e-4], [1e-4, 1.0, 0.0], [3.0, 3.0, 0.5]], 0.1),
]


def record(anchors: list, positives: list, tau: float, dtype: str) -> dict:
    import jax.numpy as jnp
    import optax
    from jax import grad

    b = len(anchors)
    e = jnp.asarray(np.concatenate([anchors, positives]), dtype=dtype)
    labels = jnp.concatenate([jnp.arange(b), jnp.arange(b)])
    value = optax.ntxent(e, labels, temperature=tau)
    g = np.asarray(grad(lambda x: optax.ntxent(x, labels, temperature=tau))(e), dtype=np.float64)
    return {"value": float(value), "grad": g[:b].tolist(), "grad_target": g[b:].tolist()}


def main() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    import optax

    cases = []
    for name, a, p, tau in CASES:
        cases.append({"name": name, "pred": a, "target": p, "temperature": tau,
                      "float64": record(a, p, tau, "float64"), "float32": record(a, p, tau, "float32")})
    doc = {"format": "contrastive", "loss": "contrastive", "convention": "optax", "function": "optax.ntxent",
           "versions": {"jax": jax.__version__, "optax": optax.__version__, "numpy": np.__version__,
                        "python": sys.version.split()[0]},
           "cases": cases}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
