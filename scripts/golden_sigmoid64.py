"""Record PyTorch's torch.sigmoid of float64 tensors on the CPU, for tests/golden/sigmoid64.json (read by
tests/test_sigmoid64.py): lossgrad.lowp.sigmoid64, the σ(z) of MONAI's losses from logits in float64, whose e^x is
SLEEF's expd_u10 in the registers (lossgrad.sleef64) and the C library's exp in the scalar loop after them.

Each record: the kind, the length, the seed its inputs come from (inputs(): pure numpy draws, so the test rebuilds
them on any machine) with their SHA-256, and torch's σ(z), every number as float.hex (by SHA-256 past 4,096
elements). Kinds: random at scales from 1e-3 to 800 for every length from 1 to 40 (every tail of the vectorized
loop); the edges of e^x (0, −0, subnormals, ±709.78, ±745, ±1000, ±∞, NaN) in the registers and in the tail; long
tensors of 32,768 to 250,000 elements, which two threads share. The versions and the processor are recorded.

    python3 scripts/golden_sigmoid64.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_pairs64 import _kept, digest, save  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "sigmoid64.json"
SCALES = (1e-3, 1.0, 30.0, 800.0)
EDGES = (0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300, 1.0, -1.0, 36.7, -36.7, 37.5, -37.5, 700.0, -700.0,
         708.39, -708.39, 709.78, -709.78, 709.79, -709.79, 745.1, -745.1, 746.0, -746.0, 999.9, -999.9, 1000.5,
         -1000.5, np.inf, -np.inf, np.nan)
LONG = (32768, 32769, 65537, 100003, 250000)


def inputs(seed: int, kind: str, length: int) -> np.ndarray:
    """The logits of a record: random at one of SCALES, or EDGES shuffled into `length` random ones."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=length) * SCALES[seed % len(SCALES)]
    if kind == "edges":
        at = rng.permutation(length)[:len(EDGES)]
        z[at] = rng.permutation(np.array(EDGES))
    return z


def record(seed: int, kind: str, length: int) -> dict:
    import torch

    z = inputs(seed, kind, length)
    q = torch.sigmoid(torch.tensor(z, dtype=torch.float64)).numpy()
    return {"kind": kind, "length": length, "seed": seed, "inputs_sha256": digest(z), "sigmoid": _kept(q)}


def main() -> None:
    records, seed = [], 20261205
    cases = [("random", n) for n in range(1, 41) for _ in SCALES] + [("edges", n) for n in (31, 32, 33, 40, 64)]
    for kind, length in cases + [("random", n) for n in LONG] + [("edges", n) for n in LONG[:2]]:
        records.append(record(seed, kind, length))
        seed += 1
    save(OUT, records, "scripts/golden_sigmoid64.py")


if __name__ == "__main__":
    main()
