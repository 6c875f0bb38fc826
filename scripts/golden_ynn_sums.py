"""Record JAX's CPU sums of long float32 rows (YNNPACK's, from 4096 elements) for tests/golden/ynn_sums.json (read
by tests/test_ynn_sums.py).

Each record: a shape [rows, n] (or [n], a 1-D array), and jax.jit(jnp.sum) along the last axis of the array that
`values(shape)` builds, as float32 strings. The values come from integer arithmetic alone (no random generator),
so the test rebuilds them exactly: mantissas from a multiplicative hash, exponents from −12 to 11 and both signs,
where the order of the additions shows in the last bits. The shapes reach each part of YNNPACK's sum: the groups
of 4 and 16 vectors, the Kahan level every 1024 elements and its final flush, a part-filled last vector, and the
runs of 32768 that a batch of fewer than 4 rows is split into. Records with a "kind" hold YNNPACK's other sums
(KINDS), their results as base64 float32 bits, among them its bfloat16 kernel's ("bfloat16": the same values rounded
to bfloat16 and passed as bfloat16, summed into float32 as jnp.sum(x, dtype=float32) asks, which reads them in
pairs).

    python3 scripts/golden_ynn_sums.py
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "ynn_sums.json"
SHAPES = ((8, 513), (4, 1025), (4, 1100), (8, 2047), (4, 2048), (2, 2049), (3, 5000), (1, 4096), (1, 8191),
          (1, 32768), (1, 32769), (2, 40000), (3, 65537), (1, 100000), (4, 40000), (5, 70001), (1, 1000000),
          (4097,), (40000,), (89653,))


# YNNPACK's other sums, each a kind of record: the sum of a whole 2-D array (slices of 32768 // C rows), the sum
# over axis 0 of a stored [R, C] array (its reduction over a non-contiguous axis: the tree with Kahan's step every
# 256 rows, slices of 32768 // C rows, the rows in order beyond 32768 columns), the sum over axis 1 of a stored
# [N, N, D] array (one slice), the same sum of a product computed inside the fusion under jit (slices of
# 32768 // D rows), the sum of a product with a broadcast factor (4 lanes of multiply-adds), and the row sum of a
# bfloat16 array (its kernel's 32 elements a vector in pairs; the shapes reach the same parts as SHAPES)
KINDS = {"whole": ((64, 64), (300, 120), (40, 1000), (20, 4000), (3, 12000), (1100, 31)),
         "columns": ((600, 20), (300, 400), (2000, 30), (100, 3000), (3, 2000), (2, 32769)),
         "partners": ((300, 300, 2), (70, 70, 9)),
         "fused-partners": ((12, 12, 3000), (40, 40, 30)),
         "dot": ((128, 32), (200, 35), (400, 50), (1, 5000), (600, 7)),
         "bfloat16": ((4096, 2), (5000, 3), (2000, 7), (300, 40), (8, 513), (4, 1025), (4, 2100), (2, 2049), (3, 5000),
                      (1, 4096), (1, 8191), (1, 32769), (2, 40000), (3, 65537), (4, 40000), (1, 100000), (4097,))}


def values(shape: tuple[int, ...], salt: int = 0) -> np.ndarray:
    """float32 values of every magnitude from 2⁻¹² to 2¹¹, both signs, from integer arithmetic only (`salt` draws
    another array of the same shape)."""
    i = np.arange(int(np.prod(shape)), dtype=np.uint64)
    h = (i * np.uint64(2654435761) + np.uint64(12345 + 7919 * salt)) % np.uint64(2**32)
    mantissa = 1.0 + (h >> np.uint64(8)).astype(np.float64) / 2.0**24
    exponent = (h % np.uint64(24)).astype(np.int64) - 12
    sign = np.where((h >> np.uint64(5)) % np.uint64(2) == 0, 1.0, -1.0)
    return (sign * mantissa * 2.0**exponent).astype(np.float32).reshape(shape)


def inputs(kind: str, shape: tuple[int, ...]) -> list[np.ndarray]:
    """The arrays a record of this kind sums: one array, a product's two factors, or (dot) g [R, C], w [R] and
    e [R, C] for Σ g·w·e along each row."""
    if kind == "fused-partners":
        return [values(shape), values(shape, 1)]
    if kind == "dot":
        return [values(shape, 1), np.abs(values(shape[:1], 2)), values(shape)]
    if kind == "bfloat16":
        import ml_dtypes

        return [values(shape).astype(ml_dtypes.bfloat16).astype(np.float32)]
    return [values(shape)]


def function(kind: str):
    import jax
    import jax.numpy as jnp

    return jax.jit({"whole": jnp.sum, "columns": lambda x: jnp.sum(x, axis=0),
                    "partners": lambda x: jnp.sum(x, axis=1),
                    "fused-partners": lambda a, b: jnp.sum(a * b, axis=1),
                    "dot": lambda g, w, e: jnp.sum(g[:, None, :] * w[:, None, None] * e[:, None, :], axis=2),
                    "bfloat16": lambda x: jnp.sum(x, axis=-1, dtype=jnp.float32)}[kind])


def arguments(kind: str, shape: tuple[int, ...]) -> list[np.ndarray]:
    """inputs() as JAX is handed them: bfloat16 arrays for the kind "bfloat16" (a conversion inside the jit would be
    a fusion of its own, whose float32 YNNPACK sums)."""
    arrays = inputs(kind, shape)
    if kind == "bfloat16":
        import ml_dtypes

        return [a.astype(ml_dtypes.bfloat16) for a in arrays]
    return arrays


def bits(x: np.ndarray) -> str:
    """float32 results as base64 of their little-endian bytes (tens of thousands of them stay small)."""
    return base64.b64encode(np.ascontiguousarray(x, dtype="<f4").tobytes()).decode()


def main() -> None:
    import jax
    import jax.numpy as jnp

    from make_golden import jax_versions

    total = jax.jit(lambda a: jnp.sum(a, axis=-1))
    recs = [{"shape": list(shape), "sums": [str(v) for v in np.atleast_1d(np.asarray(total(values(shape))))]}
            for shape in SHAPES]
    recs += [{"kind": kind, "shape": list(shape), "bits": bits(np.asarray(function(kind)(*arguments(kind, shape))))}
             for kind, shapes in KINDS.items() for shape in shapes]
    OUT.write_text(json.dumps({"versions": jax_versions(), "records": recs}) + "\n")
    print(f"{OUT}: {len(recs)} records")


if __name__ == "__main__":
    main()
