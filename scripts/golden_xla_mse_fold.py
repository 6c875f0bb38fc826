"""Record JAX's CPU results for optax's squared_error where 2·(p − y) overflows, for tests/golden/xla_mse_fold.json
(read by tests/test_lowp_xla.py).

jax.grad of jnp.mean(squared_error) is (1/n)·(2·(p − y)). Under jax.jit in float32 and float16 XLA's algebraic
simplifier folds the constants 2 and 1/n into one, 2·(1/n) in the dtype, and multiplies p − y by it: where 2·(p − y)
overflows, JAX's gradient is finite under jit and infinite op by op (and under jnp.sum, whose 1/n is 1; bfloat16
under jit doubles p − y in float32, infinite beyond its range too). Each batch holds a few differences past half
the dtype's largest value among ordinary ones, so its losses hold ∞ and its reduced value is ∞ in whatever order
the sum runs; the losses and the gradient are elementwise. The records are JAX's on any x86-64 processor with FMA
(these were taken on one with AVX2 and without AVX-512; see the recorded flags).

Records are written as scripts/golden_lowp_xla.py writes them (its _record: jax.value_and_grad with the losses as
the aux, the targets closed over as constants, under jax.jit or op by op), with the versions.

    python3 scripts/golden_xla_mse_fold.py      # tests/golden/xla_mse_fold.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_lowp_xla import DTYPES, _record, _rounded  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "xla_mse_fold.json"
# one output per sample, more of them (a block, XLA's windows); and, for the mean, YNNPACK's sums from 4096 elements
SHAPES = ((3, 1), (16, 1), (2, 3), (16, 10), (40, 33))
LONG = (4096, 1)
# past half the largest value: float16's 65504, float32's and bfloat16's about 3.4e38
BIG = {"float16": (40000.0, 60000.0, -33000.0), "float32": (2e38, 3e38, -1.8e38),
       "bfloat16": (2e38, 3e38, -1.8e38)}


def inputs(rng, dtype: str, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Targets near 0 and predictions around them, a few of them (at least one) past half the dtype's range."""
    y = rng.standard_normal(shape) * rng.choice([0.1, 1.0, 3.0], shape)
    p = y + rng.standard_normal(shape) * rng.choice([0.01, 1.0, 100.0], shape)
    big = rng.random(shape) < 0.1
    big.flat[rng.integers(big.size)] = True
    p[big] = rng.choice(BIG[dtype], int(big.sum()))
    return _rounded(y, dtype), _rounded(p, dtype)


def records(rng) -> list[dict]:
    return [_record("mse", dtype, jit, reduction, *inputs(rng, dtype, shape), name="overflow")
            for dtype in DTYPES for jit in (True, False) for reduction in ("mean", "sum")
            for shape in SHAPES + ((LONG,) if reduction == "mean" else ())]


def main() -> None:
    from make_golden import jax_versions

    recs = records(np.random.default_rng(20261301))
    OUT.write_text(json.dumps({"versions": jax_versions(), "records": recs}) + "\n")
    print(f"{OUT}: {len(recs)} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
