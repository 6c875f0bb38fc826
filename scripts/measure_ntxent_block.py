"""Measure lossgrad's rule for the blocks of the gradient's two final loops (the anchors' rows, the positives') that
LLVM vectorizes in JAX's float32 ntxent under jit (lossgrad.lowp_xla_ntxent_jit.vector_block) against JAX's own
gradients, shape by shape.

For each batch of b pairs and d features (where YNNPACK sums the N × N × d products, so only the final loops are in
question): random anchors, and positives near them. Prints, per shape, the rule's blocks (anchors', positives'),
how many gradient elements differ from JAX's with them (0 is the claim) and without them (0 where nothing is
vectorized, or where the vector code fuses as the scalar code does). Needs jax and optax.

    python3 scripts/measure_ntxent_block.py 8-72 2-9      # pairs, features (ranges or lists: 64,128)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _numbers(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def differing(b: int, d: int, seed: int = 0) -> tuple[int, int]:
    """Gradient elements apart from JAX's, with lossgrad's blocks and with none."""
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
    rule = ntxent.vector_block
    with_blocks = apart()
    ntxent.vector_block = lambda *_: (0, 0)
    try:
        without = apart()
    finally:
        ntxent.vector_block = rule
    return with_blocks, without


def main() -> None:
    from lossgrad.lowp_xla_ntxent_jit import unsupported_shape, vector_block

    pairs, features = (_numbers(a) for a in sys.argv[1:3])
    wrong = measured = 0
    for b in pairs:
        for d in features:
            if unsupported_shape(b, d):
                continue
            with_blocks, without = differing(b, d)
            measured += 1
            wrong += with_blocks > 0
            print(f"{b:4d} pairs {d:3d} features  blocks {vector_block(b, d, False)} {vector_block(b, d, True)}  "
                  f"apart: {with_blocks} with them, {without} without", flush=True)
    print(f"{measured} shapes measured; {wrong} where the rule does not give JAX's gradient")


if __name__ == "__main__":
    main()
