"""Measure lossgrad's rules for how LLVM vectorizes XLA's fused loops in JAX's float32 ntxent under jit against JAX's
own gradients, shape by shape: the blocks of the gradient's two final loops (the anchors' rows, the positives':
lossgrad.lowp_xla_ntxent_jit.vector_block) and, below 4096 products, the sums over the partner rows (NARROW and
WIDE from 16 to 32 rows, or with AVX2 avx2_blocks; XLA's windows from 34). It measures the rules of the processor
lossgrad reproduces (LOSSGRAD_CPU): run it with LOSSGRAD_CPU set to the processor it runs on.

For each batch of b pairs and d features: random anchors, and positives near them. Prints, per shape, the final
loops' blocks (anchors', positives'), how many gradient elements differ from JAX's with the rules (0 is the claim)
and without them, as the scalar code would add (0 where nothing is vectorized, or where the vector code rounds as
the scalar code does on these inputs). Shapes lossgrad refuses (one feature from 8 pairs) are skipped. Needs jax
and optax.

    python3 scripts/measure_ntxent_block.py 8-72 2-9      # pairs, features (ranges or lists: 64,128)
    LOSSGRAD_CPU=avx2 python3 scripts/measure_ntxent_block.py 2-72 1-12    # on a processor with AVX2 only
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure_ctc_block import numbers, sweep  # noqa: E402


def differing(b: int, d: int, seed: int = 0) -> tuple[int, int]:
    """Gradient elements apart from JAX's, with lossgrad's rules and without them."""
    import jax

    import lossgrad.lowp_xla_ntxent_jit as ntxent
    from golden_lowp_xla_ntxent import record

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((b, d)).astype(np.float32)
    p = (a + 0.3 * rng.standard_normal((b, d))).astype(np.float32)
    with jax.enable_x64(False):
        rec = record(a, p, 0.5, "float32", True)
    want = np.concatenate([np.array(rec["grad"], dtype=np.float32), np.array(rec["grad_target"], dtype=np.float32)])

    def apart() -> int:
        got = ntxent.Fused(a, p, 0.5).grads(2 * b)
        return int((got.view(np.int32) != want.view(np.int32)).sum())
    rules = ntxent.vector_block, ntxent.NARROW, ntxent.STORED_ROWS_FROM
    with_rules = apart()
    ntxent.vector_block, ntxent.NARROW, ntxent.STORED_ROWS_FROM = (lambda *_: (0, 0)), {}, 2**31
    try:
        without = apart()
    finally:
        ntxent.vector_block, ntxent.NARROW, ntxent.STORED_ROWS_FROM = rules
    return with_rules, without


def main() -> None:
    from lossgrad.lowp_xla_ntxent_jit import unsupported_shape, vector_block

    pairs, features = (numbers(a) for a in sys.argv[1:3])
    sweep(((b, d) for b in pairs for d in features if not unsupported_shape(b, d)), differing,
          lambda b, d: f"{b:4d} pairs {d:3d} features  blocks {vector_block(b, d, False)} {vector_block(b, d, True)}")


if __name__ == "__main__":
    main()
