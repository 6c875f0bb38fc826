"""The emulated SLEEF kernels of the torch convention (lossgrad.lowp: expf, logf, log1pf, each a few dozen numpy
operations with fused multiply-adds emulated in float64), and the fused multiply-add itself (lowp.fma, as
log_softmax's backward runs it over a whole gradient), over the same float32 arrays: in cache-sized blocks
(lowp.CACHE_BLOCK elements at a time, as lossgrad runs them), over the whole array at once (the function
unwrapped), and, for scale, numpy's own float32 functions and PyTorch's (where installed), which are not bit for
bit what PyTorch's vectorised kernels give. The best of --repeat runs of each.

    python benchmarks/kernels.py [--elements 4000000] [--repeat 5]

Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np

from lossgrad import lowp


def best(f: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def inputs(n: int) -> dict[str, tuple[np.ndarray, ...]]:
    """Arguments as the losses pass them: log-softmax shifts z − max (≤ 0), their exponentials, and sums; fma's
    −e^out, Σg and g of log_softmax's backward."""
    rng = np.random.default_rng(0)
    shifts = -np.abs(rng.normal(scale=4.0, size=n)).astype(np.float32)
    e = np.exp(shifts)
    return {"expf": (shifts,), "logf": (np.float32(1) + e * np.float32(100),), "log1pf": (e,),
            "fma": (-e, np.full(n, -0.001, dtype=np.float32), (rng.random(n) < 0.001).astype(np.float32))}


# each kernel over the whole array at once, numpy's own function, PyTorch's (by name)
WHOLE = {"fma": lowp.fma_block}
PLAIN: dict[str, Callable[..., np.ndarray]] = {"expf": np.exp, "logf": np.log, "log1pf": np.log1p,
                                               "fma": lambda a, b, c: a * b + c}
TORCH = {"expf": "exp", "logf": "log", "log1pf": "log1p", "fma": "addcmul"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--elements", type=int, default=4_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
    rows = []
    for name, x in inputs(args.elements).items():
        f = getattr(lowp, name)
        whole = WHOLE.get(name) or f.__wrapped__
        assert np.array_equal(f(*x).view(np.int32), whole(*x).view(np.int32))
        row = [best(lambda: f(*x), args.repeat), best(lambda: whole(*x), args.repeat),  # noqa: B023
               best(lambda: PLAIN[name](*x), args.repeat)]  # noqa: B023
        if torch is not None:
            t = [torch.from_numpy(a) for a in x]
            ordered = [t[2], t[0], t[1]] if name == "fma" else t  # (addcmul(c, a, b) = c + a·b)
            row.append(best(lambda: getattr(torch, TORCH[name])(*ordered), args.repeat))  # noqa: B023
        rows.append((name, row))
    print(f"{args.elements:,} float32 elements; best of {args.repeat}; {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}"
          + (f", torch {torch.__version__}" if torch is not None else ""))
    print()
    head = ["kernel", f"lossgrad, blocks of {lowp.CACHE_BLOCK:,} s", "lossgrad, whole array s", "numpy s"]
    head += ["PyTorch s"] if torch is not None else []
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, row in rows:
        print(f"| {name} | " + " | ".join(f"{t:.3f}" for t in row) + " |")


if __name__ == "__main__":
    main()
