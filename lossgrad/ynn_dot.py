"""Which of YNNPACK's float32 dot kernels XLA's CPU backend runs for a batched matrix product [B, M, K] × [B, K, N]
(jaxlib 0.10.2 on x86-64), and so in what order the K products of each output are added.

Read from YNNPACK's source (google/XNNPACK `ynnpack/kernels/dot/dot.cc`, `kernels.inc`, `generator/x86_fp32*.py`,
`ynnpack/subgraph/dot.cc`, as of mid-2026, the version jaxlib 0.10.2 carries): YNNPACK knows the processor only by
its instruction sets, and picks the kernel of least estimated cost (`estimate_dot_cost`; an exact tie keeps the one
listed first) twice. When XLA defines the graph, M is unknown (taken as 2048): that choice fixes how B is packed, k
rows at a time (its tile_k), or whether the kernels read B as it is. At each run the real M and N pick a kernel of
that tile_k. A kernel of tile_k 1 adds the products k = 0, 1, … in order into one accumulator from +0; one of
tile_k t (2, or 4 with AVX-512) keeps product k in lane k mod t and adds the lanes pairwise at the end, and the last
K mod t products, which YNNPACK runs as a second call on zero-padded copies, are summed the same way and added to
the rest. Measured against JAX on an AMD EPYC with AVX2: optax's ctc, whose einsum's transpose is such a product
(lowp_xla_ctc._label_dot).
"""

from __future__ import annotations

import math

import numpy as np

UNALIGNED_B = 1  # (dot_flag::unaligned_b: the kernel reads B's rows where they are, unpacked)
# (instruction set, blocks (m, n, k), tile (m, n, k), flags) in kernels.inc's order
Kernel = tuple[str, tuple[int, int, int], tuple[int, int, int], int]
_K2 = ((1, 16, 2), (2, 16, 2), (1, 8, 2), (3, 8, 2), (4, 8, 2), (5, 8, 2), (6, 8, 2), (4, 4, 2), (5, 4, 2),
       (6, 4, 2), (8, 4, 2))
_TABLE: tuple[tuple[str, tuple[tuple[int, int, int], ...], tuple[int, int, int], int], ...] = (
    ("avx512", ((1, 64, 1), (2, 64, 1), (3, 64, 1), (4, 64, 1), (5, 64, 1), (1, 32, 1), (2, 32, 1), (3, 32, 1),
                (4, 32, 1), (5, 32, 1), (5, 16, 1)), (1, 16, 1), UNALIGNED_B),
    ("avx512", ((1, 32, 2), (2, 32, 2), (3, 32, 2), (4, 32, 2), (5, 32, 2), (1, 16, 2), (4, 16, 2), (4, 8, 2),
                (8, 8, 2)), (1, 8, 2), 0),
    ("avx512", ((1, 32, 4), (2, 32, 4), (1, 16, 4), (3, 16, 4), (4, 16, 4), (5, 16, 4), (2, 8, 4), (4, 8, 4),
                (6, 8, 4), (4, 4, 4), (8, 4, 4)), (1, 4, 4), 0),
    ("fma3", ((1, 32, 1), (2, 32, 1), (1, 16, 1), (2, 16, 1), (3, 16, 1), (4, 16, 1), (5, 16, 1), (6, 16, 1),
              (8, 8, 1)), (1, 8, 1), UNALIGNED_B),
    ("avx2", _K2, (1, 4, 2), 0),  # (avx2_fma3's; avx2's own, later in the list, never costs less)
    ("avx", ((1, 32, 1), (2, 32, 1), (1, 16, 1), (2, 16, 1), (3, 16, 1), (4, 16, 1), (4, 8, 1), (6, 8, 1),
             (8, 8, 1)), (1, 8, 1), UNALIGNED_B),
    ("sse2", ((1, 16, 1), (2, 16, 1), (3, 16, 1), (1, 8, 1), (2, 8, 1), (3, 8, 1), (4, 8, 1), (4, 4, 1), (6, 4, 1),
              (8, 4, 1)), (1, 4, 1), 0),
)
KERNELS: tuple[Kernel, ...] = tuple((isa, block, tile, flags) for isa, blocks, tile, flags in _TABLE
                                    for block in blocks)
SETS = {"avx2": ("sse2", "avx", "fma3", "avx2"), "avx512": ("sse2", "avx", "fma3", "avx2", "avx512")}
DEFINED_M = 2048  # (M as the graph's definition takes it, before the batch is known)


def cost(m: int, n: int, k: int, kernel: Kernel) -> float:
    """estimate_dot_cost, in float32: per block, loads of A and of B by tiles, an overhead and the tile's size."""
    _, (bm, bn, bk), (tm, tn, tk), _ = kernel
    f = np.float32
    blocks = f(math.ceil(m / bm)) * f(math.ceil(n / bn)) * f(math.ceil(k / bk))
    return float(blocks * (f(bm * bk // (tm * tk) * 5 + bn * bk // (tn * tk) * 11 + 9) + f(tm * tn * tk) * f(1e-4)))


def cheapest(capability: str, m: int, n: int, k: int, tile_k: int = 0, block_n: int = 0,
             unaligned: bool = False) -> tuple[Kernel, float]:
    """get_dot_kernel: the first kernel of least cost among those of the capability's instruction sets (of that
    tile_k, whose tile divides block_n unless it reads B unpacked; reading B unpacked, if asked)."""
    best: tuple[Kernel, float] | None = None
    for kernel in KERNELS:
        isa, _, (_, tn, tk), flags = kernel
        if isa not in SETS[capability] or (unaligned and not flags & UNALIGNED_B):
            continue
        if (tile_k and tk != tile_k) or (not flags & UNALIGNED_B and block_n % tn):
            continue
        c = cost(m, n, k, kernel)
        if best is None or c < best[1]:
            best = (kernel, c)
    assert best is not None
    return best


def lanes(capability: str, m: int, n: int, k: int) -> int:
    """The lanes (tile_k) over which the kernel XLA runs for [B, m, k] × [B, k, n] (both operands batched, B computed
    at run time, not transposed) adds each output's k products."""
    kernel, c = cheapest(capability, DEFINED_M, n, k)
    tile_k = kernel[2][2]
    unpacked = kernel if tile_k == 1 else cheapest(capability, DEFINED_M, n, k, 1, 0, True)[0]
    if unpacked[3] & UNALIGNED_B and cost(DEFINED_M, n, k, unpacked) <= 2 * c and math.ceil(m / unpacked[1][0]) <= 10:
        return 1  # (B read as it is: a kernel of tile_k 1)
    return tile_k
