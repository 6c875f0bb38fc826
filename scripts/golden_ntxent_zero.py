"""Record optax's ntxent where a row of the anchors or the positives is all zeros, for tests/golden/ntxent_zero.json
(read by tests/test_ntxent_zero.py), on a processor with AVX2 only.

The cosine of a row of zeros is undefined, and lossgrad's exact convention refuses it; optax's cosine_similarity
clips the squared norm at the dtype's ε, so optax has a loss and a gradient there (a zero row's cosines are all 0,
and its gradient is g/√ε). Each record keeps its inputs by seed and the rows made zero (zero_inputs), and what JAX
gives: in float32, float16 and bfloat16 op by op and under jax.jit (golden_lowp_xla_ntxent.record, every number as a
float32 string), and in float64 with jax_enable_x64 op by op and under jit (golden_xla64_ntxent.optax_results,
every number as float.hex).

    python3 scripts/golden_ntxent_zero.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "ntxent_zero.json"
# (pairs, features, zero anchor rows, zero positive rows): one row, a pair whose anchor and positive are both zero,
# every row zero, one pair of one feature, and batches whose partner sums LLVM vectorizes (16 to 32 rows)
CASES = ((3, 4, (0,), ()), (3, 4, (), (2,)), (4, 7, (1,), (1,)), (2, 3, (0, 1), (0, 1)), (1, 1, (0,), ()),
         (5, 33, (4,), (0,)), (8, 7, (2, 5), ()), (10, 12, (), (9,)), (16, 3, (0,), (15,)))
DTYPES = ("float32", "float16", "bfloat16")
TEMPERATURES = (0.07, 0.5, 1.0)


def zero_inputs(seed: int, b: int, d: int, zero_a: tuple[int, ...], zero_p: tuple[int, ...],
                dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Normal anchors and positives [b, d] in the dtype, the rows zero_a of the anchors and zero_p of the
    positives set to zeros."""
    from golden_lowp_xla_ntxent import _rounded

    rng = np.random.default_rng(seed)
    a, p = rng.standard_normal((b, d)), rng.standard_normal((b, d))
    a[list(zero_a)], p[list(zero_p)] = 0.0, 0.0
    return (_rounded(a, dtype), _rounded(p, dtype)) if dtype != "float64" else (a, p)


def records() -> list[dict]:
    import jax

    import golden_lowp_xla_ntxent as low
    from golden_xla64_ntxent import optax_results

    out = []
    for i, (b, d, zero_a, zero_p) in enumerate(CASES):
        tau = TEMPERATURES[i % len(TEMPERATURES)]
        case = {"seed": 4000 + i, "shape": [b, d], "zero_a": list(zero_a), "zero_p": list(zero_p),
                "temperature": tau}
        with jax.enable_x64(False):
            for dtype in DTYPES:
                for jit in (False, True):
                    rec = low.record(*zero_inputs(4000 + i, b, d, zero_a, zero_p, dtype), tau, dtype, jit)
                    out.append(case | {k: rec[k] for k in ("dtype", "jit", "value", "losses", "grad", "grad_target")})
        with jax.enable_x64(True):
            for jit in (False, True):
                a, p = zero_inputs(4000 + i, b, d, zero_a, zero_p, "float64")
                out.append(case | {"dtype": "float64", "jit": jit, **optax_results(a, p, tau, jit)})
    return out


def main() -> None:
    from golden_avx2_xla_seq import write_avx2

    write_avx2(OUT, lambda _: records(), 0, "scripts/golden_ntxent_zero.py")


if __name__ == "__main__":
    main()
