"""Record JAX's CPU results for optax's losses with more than one output per sample (mse, and bce from logits, on
[N, K] arrays) in float32, float16 and bfloat16, under jax.jit and op by op, the value of jnp.mean and jnp.sum,
for tests/golden/lowp_xla_sum2d.json (read by tests/test_lowp_xla_sum2d.py).

The shapes are those whose whole-array sum lossgrad reproduces (one row, one column, odd N up to 15 with K up to
32) and a few beyond, where lossgrad refuses; records are written as scripts/golden_lowp_xla.py writes them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_lowp_xla import DTYPES, _record, _rounded  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_xla_sum2d.json"
SHAPES = ((1, 4), (1, 100), (3, 5), (5, 3), (7, 9), (9, 32), (11, 17), (13, 2), (15, 31), (2, 4), (16, 3))


def main() -> None:
    from make_golden import jax_versions

    rng = np.random.default_rng(20261203)
    records = []
    for dtype in DTYPES:
        for jit in (True, False):
            for reduction in ("mean", "sum"):
                for rows, cols in SHAPES:
                    z = _rounded(rng.standard_normal((rows, cols)) * rng.choice([0.1, 1.0, 5.0, 30.0], (rows, cols)),
                                 dtype)
                    y = _rounded(rng.random((rows, cols)), dtype)
                    records.append(_record("bce", dtype, jit, reduction, y, z))
                    records.append(_record("mse", dtype, jit, reduction, _rounded(y * 4, dtype), z))
    meta = jax_versions()
    OUT.write_text(json.dumps({"versions": meta, "records": records}) + "\n")
    print(f"{OUT}: {len(records)} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
