"""Record JAX's CPU results for optax's losses with more than one output per sample (mse, and bce from logits, on
[N, K] arrays) in float32, float16 and bfloat16, under jax.jit and op by op, the value of jnp.mean and jnp.sum,
for tests/golden/lowp_xla_sum2d.json (read by tests/test_lowp_xla_sum2d.py).

The records' shapes take each of XLA's orders for the whole-array sum (in order, LLVM's lanes over 2, 4 and 8 rows
with and without a tail, windows of 32 rows with and without padding); records are written as
scripts/golden_lowp_xla.py writes them. "sums" holds jax.jit(jnp.sum) of random float32 arrays of further shapes
below 4096 elements (each order's edge: the row and column loops split at a padding of one, two levels of windows)
and one beyond (YNNPACK's).

`--lanes` measures instead how many lanes LLVM's loop vectorizer gives the rows of each [N, K] block up to 32 × 32,
reading the vector width of each compiled kernel's reduction from XLA's dump of its LLVM IR, for jnp.sum and for
squared_error's fused sum under jit, and prints where lossgrad.lowp_xla.row_lanes and fused_lanes differ (none).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_lowp_xla import DTYPES, _record, _rounded, _short  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_xla_sum2d.json"
SHAPES = ((1, 4), (1, 100), (3, 5), (5, 3), (7, 9), (13, 2), (15, 31), (2, 4), (16, 3), (4, 8), (8, 3), (17, 4),
          (20, 2), (22, 5), (30, 7), (40, 5), (64, 6), (100, 3))
SUMS = ((2, 2), (4, 7), (8, 8), (16, 8), (19, 6), (21, 2), (28, 2), (29, 5), (31, 7), (32, 32), (33, 2), (33, 33),
        (63, 63), (96, 4), (127, 7), (575, 3), (640, 6), (2000, 2), (2, 351), (3, 383), (4, 319), (33, 64), (64, 33),
        (100, 40), (50, 81), (1, 3000), (3000, 1), (64, 64))


def sums(rng) -> list[dict]:
    """jax.jit(jnp.sum) of float32 arrays of SUMS' shapes, their magnitudes spread over 2⁻¹² to 2¹² so that every
    change of order shows."""
    import jax
    import jax.numpy as jnp

    out = []
    for rows, cols in SUMS:
        x = (rng.standard_normal((rows, cols)) * np.exp2(rng.integers(-12, 13, (rows, cols)))).astype(np.float32)
        out.append({"x": _short(x), "shape": [rows, cols], "value": str(np.float32(jax.jit(jnp.sum)(x)))})
    return out


def compile_blocks(what: str) -> None:
    """Compile each [N, K] block up to 32 × 32: jnp.sum, or a training step's mean of squared_error (under
    XLA_FLAGS=--xla_dump_to, set by `lanes`)."""
    import jax
    import jax.numpy as jnp
    import optax

    for n in range(1, 33):
        for k in range(1, 33):
            y = np.ones((n, k), np.float32)
            if what == "sum":
                jax.jit(jnp.sum)(y)
                continue
            mean = jax.value_and_grad(lambda z, y=y: (jnp.mean(losses := optax.squared_error(z, y)), losses),
                                      has_aux=True)
            jax.jit(mean)(y)


def lanes(what: str) -> dict[tuple[int, int], int]:
    """The vector width of the reduction in each [N, K] block's compiled kernel (0: scalar), from XLA's LLVM IR."""
    import os
    import re
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as dump:
        subprocess.run([sys.executable, __file__, "--compile", what], check=True,
                       env={**os.environ, "XLA_FLAGS": f"--xla_dump_to={dump}"})
        kernel = "wrapped_reduce" if what == "sum" else "reduce_multiply_fusion"
        found = {}
        for hlo in Path(dump).glob("module_*.cpu_after_optimizations.txt"):
            shape = re.search(r"entry_computation_layout=\{\(f32\[(\d+),(\d+)\]", hlo.read_text())
            ir = hlo.parent / hlo.name.replace("cpu_after_optimizations.txt", f"{kernel}_kernel_module.ir-with-opt.ll")
            if shape and ir.exists():
                width = re.findall(r"vector\.reduce\.fadd\.v(\d+)f32", ir.read_text())
                found[(int(shape[1]), int(shape[2]))] = int(width[0]) if width else 0
        return found


def check_lanes() -> None:
    from lossgrad.lowp_xla import fused_lanes, row_lanes

    for what, rule in (("sum", row_lanes), ("squared_error", fused_lanes)):
        measured = lanes(what)
        differ = {nk: w for nk, w in measured.items() if w != rule(*nk) and nk[0] > 1}
        print(f"{what}: {len(measured)} blocks measured, {len(differ)} differing from the rule: {sorted(differ)}")


def main() -> None:
    if "--compile" in sys.argv:
        compile_blocks(sys.argv[-1])
        return
    if "--lanes" in sys.argv:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        check_lanes()
        return
    from make_golden import jax_versions

    rng = np.random.default_rng(20261203)
    records = []
    for dtype in DTYPES:
        for jit in (True, False):
            for reduction in ("mean", "sum"):
                for rows, cols in SHAPES if reduction == "mean" else [s for s in SHAPES if s[0] * s[1] <= 100]:
                    z = _rounded(rng.standard_normal((rows, cols)) * rng.choice([0.1, 1.0, 5.0, 30.0], (rows, cols)),
                                 dtype)
                    y = _rounded(rng.random((rows, cols)), dtype)
                    records.append(_record("bce", dtype, jit, reduction, y, z))
                    records.append(_record("mse", dtype, jit, reduction, _rounded(y * 4, dtype), z))
    meta = jax_versions()
    OUT.write_text(json.dumps({"versions": meta, "records": records, "sums": sums(rng)}) + "\n")
    print(f"{OUT}: {len(records)} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
