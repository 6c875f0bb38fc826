"""Tensor files at language-model scale, against what a user would run instead, in turns on the same files: end to
end (load the .npy files -> per-token losses and the gradient -> an .npz), wall time (the median of --repeat runs,
the tools taking turns) and peak memory (the largest RSS of those runs, from GNU time).

    python benchmarks/tensors.py [--repeat 3] [--cases ce,bce] [--tokens 4096] [--vocab 32000] [--elements 50]

- ce: token-level cross entropy from logits, [tokens, vocab] float32 logits, int64 labels with 10% of them -100
  (ignore_index); the mean over the counted tokens
- bce: bce from logits on a vector of --elements million float32 logits, 0/1 targets; the mean

Tools:
- lossgrad, the torch convention in float32: `lossgrad ce --from-logits --pred Z.npy --target Y.npy
  --ignore-index -100 -c torch --dtype float32 -o OUT.npz`
- lossgrad, exact (float32 inputs, computed exactly and rounded once to float32)
- PyTorch: np.load, torch.from_numpy, F.cross_entropy (or binary_cross_entropy_with_logits) with reduction none,
  the mean's backward(), np.savez of the losses and the gradient
- numpy script: the stable formulas in float32, np.savez

Inputs go to benchmarks/data/ (not committed). Prints Markdown tables for the README.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from _installed import compile_lossgrad, lossgrad_command, script_files
from batch import measure

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

TORCH_SCRIPT = r"""
import sys, numpy as np, torch, torch.nn.functional as F
loss, zf, yf, dst = sys.argv[1:5]
z = torch.from_numpy(np.load(zf)).requires_grad_(True)
y = torch.from_numpy(np.load(yf))
if loss == "ce":
    per = F.cross_entropy(z, y, ignore_index=-100, reduction="none")
    (per.sum() / (y != -100).sum()).backward()
else:
    per = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    per.mean().backward()
np.savez(dst, losses=per.detach().numpy(), grad=z.grad.numpy())
"""

NUMPY_SCRIPT = r"""
import sys, numpy as np
loss, zf, yf, dst = sys.argv[1:5]
z, y = np.load(zf), np.load(yf)
if loss == "ce":
    keep = y != -100
    s = z - z.max(axis=1, keepdims=True)
    e = np.exp(s)
    total = e.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    per = np.where(keep, np.log(total[:, 0]) - s[rows, np.where(keep, y, 0)], 0).astype(z.dtype)
    g = e / total
    g[rows[keep], y[keep]] -= 1
    g[~keep] = 0
    g /= keep.sum()
else:
    per = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    g = (1 / (1 + np.exp(-z)) - y) / z.size
np.savez(dst, losses=per, grad=g)
"""


def make_inputs(case: str, tokens: int, vocab: int, millions: float) -> tuple[Path, Path]:
    DATA.mkdir(exist_ok=True)
    tag = f"{tokens}x{vocab}" if case == "ce" else f"{millions:g}M"
    zf, yf = DATA / f"{case}_{tag}_logits.npy", DATA / f"{case}_{tag}_targets.npy"
    if zf.exists() and yf.exists():
        return zf, yf
    rng = np.random.default_rng(15)
    if case == "ce":
        z = rng.standard_normal((tokens, vocab), dtype=np.float32) * np.float32(3)
        y = rng.integers(0, vocab, tokens)
        y[rng.random(tokens) < 0.1] = -100
    else:
        n = int(millions * 1_000_000)
        z = rng.standard_normal(n, dtype=np.float32) * np.float32(3)
        y = rng.integers(0, 2, n).astype(np.float32)
    np.save(zf, z)
    np.save(yf, y)
    return zf, yf


def tools(case: str, have_torch: bool) -> dict:
    py = sys.executable
    scripts = script_files({"torch": TORCH_SCRIPT, "numpy": NUMPY_SCRIPT})
    lg = lossgrad_command(py)
    extra = ["--ignore-index", "-100"] if case == "ce" else []

    def lossgrad(conv: str):
        return lambda zf, yf, dst: [*lg, case, "--from-logits", "--pred", str(zf), "--target", str(yf), *extra,
                                    "-c", conv, "--dtype", "float32", "-o", dst]

    out = {"lossgrad torch": lossgrad("torch"), "lossgrad exact": lossgrad("exact")}
    if have_torch:
        out["PyTorch"] = lambda zf, yf, dst: [py, scripts["torch"], case, str(zf), str(yf), dst]
    out["numpy script"] = lambda zf, yf, dst: [py, scripts["numpy"], case, str(zf), str(yf), dst]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="ce,bce")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool, the tools in turns; the median is shown")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--elements", type=float, default=50, help="millions of bce logits")
    ap.add_argument("--tools", help="only these tools, comma separated")
    args = ap.parse_args()
    compile_lossgrad()
    try:
        import torch

        have_torch, torch_version = True, torch.__version__
    except ImportError:
        have_torch, torch_version = False, "not installed"
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, torch {torch_version}, {platform.platform()}\n")
    for case in args.cases.split(","):
        zf, yf = make_inputs(case, args.tokens, args.vocab, args.elements)
        shape = f"[{args.tokens}, {args.vocab}] logits" if case == "ce" else f"{args.elements:g} M logits"
        print(f"### {case} from logits, float32, {shape} ({zf.stat().st_size / 2**20:.0f} MB)\n")
        cmds = {n: c for n, c in tools(case, have_torch).items() if not args.tools or n in args.tools.split(",")}
        runs: dict[str, list] = {n: [] for n in cmds}
        for _ in range(args.repeat):  # in turns, so that a slow spell of the machine hits every tool
            for name, cmd in cmds.items():
                with tempfile.TemporaryDirectory() as d:
                    runs[name].append(measure(cmd(zf, yf, os.path.join(d, "out.npz"))))
        base = statistics.median(r[0] for r in runs["PyTorch"]) if "PyTorch" in runs else None
        base_mb = max(r[1] for r in runs["PyTorch"]) if "PyTorch" in runs else None
        print("| tool | time s | × PyTorch's time | peak RSS MB | × PyTorch's memory |")
        print("|---|---|---|---|---|")
        for name, rs in runs.items():
            wall, mb = statistics.median(r[0] for r in rs), max(r[1] for r in rs)
            ratio = f"{wall / base:.2f}" if base else "—"
            mem = f"{mb / base_mb:.2f}" if base_mb else "—"
            print(f"| {name} | {wall:.2f} | {ratio} | {mb:.0f} | {mem} |", flush=True)
        print()


if __name__ == "__main__":
    main()
