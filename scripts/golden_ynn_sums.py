"""Record JAX's CPU sums of long float32 rows (YNNPACK's, from 4096 elements) for tests/golden/ynn_sums.json (read
by tests/test_ynn_sums.py).

Each record: a shape [rows, n] (or [n], a 1-D array), and jax.jit(jnp.sum) along the last axis of the array that
`values(shape)` builds, as float32 strings. The values come from integer arithmetic alone (no random generator),
so the test rebuilds them exactly: mantissas from a multiplicative hash, exponents from −12 to 11 and both signs,
where the order of the additions shows in the last bits. The shapes reach each part of YNNPACK's sum: the groups
of 4 and 16 vectors, the Kahan level every 1024 elements and its final flush, a part-filled last vector, and the
runs of 32768 that a batch of fewer than 4 rows is split into.

    python3 scripts/golden_ynn_sums.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "ynn_sums.json"
SHAPES = ((8, 513), (4, 1025), (4, 1100), (8, 2047), (4, 2048), (2, 2049), (3, 5000), (1, 4096), (1, 8191),
          (1, 32768), (1, 32769), (2, 40000), (3, 65537), (1, 100000), (4, 40000), (5, 70001), (1, 1000000),
          (4097,), (40000,), (89653,))


def values(shape: tuple[int, ...]) -> np.ndarray:
    """float32 values of every magnitude from 2⁻¹² to 2¹¹, both signs, from integer arithmetic only."""
    i = np.arange(int(np.prod(shape)), dtype=np.uint64)
    h = (i * np.uint64(2654435761) + np.uint64(12345)) % np.uint64(2**32)
    mantissa = 1.0 + (h >> np.uint64(8)).astype(np.float64) / 2.0**24
    exponent = (h % np.uint64(24)).astype(np.int64) - 12
    sign = np.where((h >> np.uint64(5)) % np.uint64(2) == 0, 1.0, -1.0)
    return (sign * mantissa * 2.0**exponent).astype(np.float32).reshape(shape)


def main() -> None:
    import jax
    import jax.numpy as jnp

    from make_golden import jax_versions

    total = jax.jit(lambda a: jnp.sum(a, axis=-1))
    recs = [{"shape": list(shape), "sums": [str(v) for v in np.atleast_1d(np.asarray(total(values(shape))))]}
            for shape in SHAPES]
    OUT.write_text(json.dumps({"versions": jax_versions(), "records": recs}) + "\n")
    print(f"{OUT}: {len(recs)} records")


if __name__ == "__main__":
    main()
