"""Measure lossgrad's rule for the block of optax's ctc backward loop that LLVM vectorises across the sequences
(lossgrad.lowp_xla_ctc.vectorised_block) against JAX's own float32 gradient, shape by shape.

For each batch of b sequences and n label columns: random logits of 16 frames and n + 2 classes (n + 2 + k: the
optional third argument k), every sequence
taking all its frames and all its labels, the labels of a sequence distinct (so the labels' dot adds one term per
class, the same in any order, and only the loop's roundings show). Prints, per shape, the rule's block, how many
gradient elements differ from JAX's with it (0 is the claim) and without it (0 where nothing is vectorised, or
where the vector code happens to round as the scalar code on these inputs). Needs jax and optax.

    python3 scripts/measure_ctc_block.py 1-72 3-8      # sequences, label columns (ranges or lists: 4,8,16)
    LOSSGRAD_CPU=avx2 python3 scripts/measure_ctc_block.py 1-72 1-10 5     # AVX2's rule, 5 classes more
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def numbers(spec: str) -> list[int]:
    """The integers of a command-line spec: ranges and lists, as 1-40 or 4,8,16."""
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def differing(b: int, n: int, seed: int = 0, more: int = 0) -> tuple[int, int]:
    """Gradient elements apart from JAX's, with lossgrad's block and with none."""
    import jax

    import lossgrad
    import lossgrad.lowp_xla_ctc as ctc
    from golden_lowp_xla_ctc import record

    rng = np.random.default_rng(seed)
    t, c = 16, n + 2 + more
    x = rng.standard_normal((b, t, c)).astype(np.float32).astype(np.float64)
    labels = np.stack([rng.permutation(np.arange(1, c))[:n] for _ in range(b)])
    with jax.enable_x64(False):
        rec = record("block", x, labels, [t] * b, [n] * b, 0, "float32", True, "mean")
    want = np.array(rec["grad"], dtype=np.float32).view(np.int32)

    def apart() -> int:
        r = lossgrad.ctc(labels, x, input_lengths=[t] * b, target_lengths=[n] * b, from_logits=True,
                         convention="optax", dtype="float32", jit=True)
        return int((np.asarray(r.grad, dtype=np.float32).view(np.int32) != want).sum())
    rule = ctc.vectorised_block
    with_block = apart()
    ctc.vectorised_block = lambda b, n: (0, 0)
    try:
        without = apart()
    finally:
        ctc.vectorised_block = rule
    return with_block, without


def sweep(shapes: Iterable[tuple[int, int]], differing: Callable[[int, int], tuple[int, int]],
          label: Callable[[int, int], str]) -> None:
    """Print, shape by shape, label(shape) and how many gradient elements are apart from JAX's with lossgrad's rule
    and without it (differing), then how many shapes the rule misses."""
    wrong = measured = 0
    for shape in shapes:
        with_rule, without = differing(*shape)
        measured += 1
        wrong += with_rule > 0
        print(f"{label(*shape)}  apart: {with_rule} with the rule, {without} without", flush=True)
    print(f"{measured} shapes measured; {wrong} where the rule does not give JAX's gradient")


def main() -> None:
    from lossgrad.lowp_xla_ctc import vectorised_block

    sequences, columns = (numbers(a) for a in sys.argv[1:3])
    more = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    sweep(((b, n) for b in sequences for n in columns), lambda b, n: differing(b, n, more=more),
          lambda b, n: f"{b:4d} sequences {n:3d} columns  block {vectorised_block(b, n)}")


if __name__ == "__main__":
    main()
