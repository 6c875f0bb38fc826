"""PyTorch's float32 e^x, log x and √x against lossgrad.mkl (Intel MKL's vmsExp, vmsLn, vmsSqrt) and against the
correctly rounded values, bit by bit, on the same inputs: positive floats over 60 decades, values near 1, every
37th float in [1, 4) and subnormals (log and √); exponents over [−104, 89] and small signed ones (e^x). Needs torch
(the frameworks extra) and the mkl extra.

    python3 benchmarks/mkl_vs_torch.py [MILLIONS]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lossgrad import mkl  # noqa: E402


def inputs(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    grid = np.arange(np.float32(1).view(np.int32), np.float32(4).view(np.int32), 37, dtype=np.int32).view(np.float32)
    positive = np.concatenate([(10.0 ** rng.uniform(-30, 30, n)), 1 + rng.uniform(-1e-2, 1e-2, n // 10), grid,
                               rng.uniform(0, 1, n // 40) * 1.1754944e-38]).astype(np.float32)
    signed = np.concatenate([rng.uniform(-104, 89, n), np.sign(rng.uniform(-1, 1, n // 4)) * 10.0 ** rng.uniform(
        -30, 2, n // 4), grid - 2.5]).astype(np.float32)
    return {"exp": signed, "log": positive, "sqrt": positive}


def differing(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.sum((a.view(np.int32) != b.view(np.int32)) & ~(np.isnan(a) & np.isnan(b))))


def main() -> None:
    if not mkl.available():
        sys.exit(f"MKL is not installed: {mkl.INSTALL}")
    n = int(float(sys.argv[1]) * 1e6) if len(sys.argv) > 1 else 2_000_000
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}")
    for name, x in inputs(np.random.default_rng(1234), n).items():
        theirs = getattr(torch, name)(torch.from_numpy(x)).numpy()
        with np.errstate(all="ignore"):
            rounded = getattr(np, name)(x.astype(np.float64)).astype(np.float32)
        ours = getattr(mkl, name)(x)
        print(f"{name}: {x.size:,} inputs; lossgrad.mkl differs from torch on {differing(ours, theirs)}, the "
              f"correctly rounded value on {differing(rounded, theirs):,}")


if __name__ == "__main__":
    main()
