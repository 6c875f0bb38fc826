"""Record optax's triplet_margin_loss with an integral norm_degree q ≥ 3 under jax.jit on a processor with AVX2 only,
for tests/golden/avx2_xla_pow.json (read by tests/test_avx2_xla_pow.py): XLA's fused row sum of the powers d^q over
rows of 2 to 8 features, whose rows LLVM's loop vectorizer takes 4 or 8 at a time for other row lengths and
batches than with AVX-512 (lossgrad.lowp_xla_pow.avx2_power_rows: never rows of 5 or 7, rows of 8 from 8 rows).

It keeps:
- RULES: for a degree of each kind of the table (2 or 3 products, 4 with an even q, 4 with an odd one, 5 or more),
  every row length of 2 to 8 in batches of 4, 8 and 12 rows and of 8g + 4 on each side of the thresholds;
- SPLIT: batches XLA splits between its two threads (lowp_xla_pow.row_sum_tasks), evenly or not;
- RANDOM_POW random batches of 2 to 8 features, up to 4095 elements, q from DRAWN, in float32, float16 and bfloat16.
Each record keeps its inputs by seed (pow_inputs), the value as float.hex, the losses and the three gradients by
SHA-256. The versions and the processor's flags are recorded; run it on an AVX2 processor without AVX-512.

    python3 scripts/golden_avx2_xla_pow.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "avx2_xla_pow.json"
RULE_DEGREES = (3, 6, 7, 10, 24, 200)
RULE_ROWS = (4, 8, 12, 28, 36, 44, 100)
SPLIT = ((23, 404, 6), (23, 405, 6), (23, 300, 8), (31, 600, 4), (31, 601, 4), (47, 900, 3), (31, 500, 5))
DRAWN = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 16, 17, 23, 31, 47, 64, 95, 127, 160, 200, 256)
RANDOM_POW = 16
DRAWS = ("random", "random, some differences negative", "alike differences")


def pow_inputs(seed: int, q: int, rows: int, n: int, draw: int, dtype: str = "float32"
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positives, anchors, negatives) [rows, n] as golden_lowp_xla_pow draws them: DRAWS[draw], rounded to the
    dtype."""
    from golden_lowp_xla import _rounded
    from golden_lowp_xla_pow import similar, triplets

    rng = np.random.default_rng(seed)
    drawn = similar(rng, rows, n) if draw == 2 else triplets(rng, float(q), rows, n)[draw]
    y, p, neg = (_rounded(x, dtype) for x in drawn[:3])
    return y, p, neg


def pow_record(seed: int, q: int, rows: int, n: int, reduction: str, draw: int, dtype: str = "float32") -> dict:
    from golden_avx2_xla_seq import _kept
    from golden_lowp_xla_pow import record

    rec = record(float(q), 1.0, True, reduction, *pow_inputs(seed, q, rows, n, draw, dtype), dtype=dtype)
    rec |= {"grad_target": rec["grads"]["target"], "grad_negative": rec["grads"]["negative"]}
    return {"q": q, "seed": seed, "shape": [rows, n], "reduction": reduction, "draw": draw, "dtype": dtype,
            **_kept(rec, ("losses", "grad", "grad_target", "grad_negative"))}


def records(seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    shapes = [(q, rows, n) for q in RULE_DEGREES for n in range(2, 9) for rows in RULE_ROWS] + list(SPLIT)
    out = [pow_record(int(rng.integers(2**31)), q, rows, n, ("sum", "mean", "none")[i % 3], i % 3)
           for i, (q, rows, n) in enumerate(shapes)]
    for dtype in ("float32", "float16", "bfloat16"):
        for i in range(RANDOM_POW):
            n = int(rng.integers(2, 9))
            rows = int(rng.integers(2, 4096 // n)) if i % 2 else int(rng.integers(2, 80))
            out.append(pow_record(int(rng.integers(2**31)), int(rng.choice(DRAWN)), rows, n,
                                  ("sum", "mean", "none")[i % 3], int(rng.integers(3)), dtype))
    return out


def main() -> None:
    from golden_avx2_xla_seq import write_avx2

    write_avx2(OUT, records, 20261207, "scripts/golden_avx2_xla_pow.py")


if __name__ == "__main__":
    main()
