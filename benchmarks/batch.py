"""Batch mode against the obvious alternatives, in turns on the same files: end to end (parse -> loss and gradient
-> per-row CSV out), wall time (the median of --repeat runs, the tools taking turns) and peak memory (the
largest RSS of those runs, from GNU time).

    python benchmarks/batch.py [--sizes 1,2,6,10] [--repeat 3] [--losses bce,ce]

- lossgrad: `lossgrad bce --from-logits --csv FILE -f csv -o OUT` (ce: `lossgrad ce --from-logits ...`)
- numpy script: np.loadtxt, the stable formulas, np.savetxt('%.17g')
- pandas + torch (when both are installed): pd.read_csv, torch autograd of the mean, DataFrame.to_csv
- polars script: pl.read_csv, the stable formulas in numpy, write_csv, all in memory

Inputs go to benchmarks/data/ (not committed): `target,logit` for bce, `label,z0..z9` for ce with 10 classes.
Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _installed import compile_lossgrad, lossgrad_command, lossgrad_from, script_files

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

NUMPY_SCRIPT = r"""
import sys, numpy as np
loss, src, dst = sys.argv[1:4]
a = np.loadtxt(src, delimiter=",", skiprows=1, ndmin=2)
if loss == "bce":
    y, z = a[:, 0], a[:, 1]
    l = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    g = (1 / (1 + np.exp(-z)) - y) / len(z)
    out = np.column_stack([l, g])
else:
    lab, z = a[:, 0].astype(int), a[:, 1:]
    s = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(s).sum(axis=1))
    l = lse - s[np.arange(len(lab)), lab]
    g = np.exp(s - lse[:, None])
    g[np.arange(len(lab)), lab] -= 1
    out = np.column_stack([l, g / len(lab)])
np.savetxt(dst, out, delimiter=",", fmt="%.17g")
"""

PANDAS_TORCH_SCRIPT = r"""
import sys, pandas as pd, torch, torch.nn.functional as F
loss, src, dst = sys.argv[1:4]
df = pd.read_csv(src)
a = torch.tensor(df.to_numpy(), dtype=torch.float64)
if loss == "bce":
    z = a[:, 1].clone().requires_grad_(True)
    per = F.binary_cross_entropy_with_logits(z, a[:, 0], reduction="none")
else:
    z = a[:, 1:].clone().requires_grad_(True)
    per = F.cross_entropy(z, a[:, 0].long(), reduction="none")
per.mean().backward()
g = z.grad.reshape(len(per), -1).numpy()
out = pd.DataFrame(g, columns=[f"grad_{i}" for i in range(g.shape[1])])
out.insert(0, "loss", per.detach().numpy())
out.to_csv(dst, index=False, float_format="%.17g")
"""

POLARS_SCRIPT = r"""
import sys, numpy as np, polars as pl
loss, src, dst = sys.argv[1:4]
a = pl.read_csv(src).to_numpy()
if loss == "bce":
    y, z = a[:, 0], a[:, 1]
    l = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    g = (1 / (1 + np.exp(-z)) - y) / len(z)
    cols = {"loss": l, "grad": g}
else:
    lab, z = a[:, 0].astype(int), a[:, 1:]
    s = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(s).sum(axis=1))
    l = lse - s[np.arange(len(lab)), lab]
    g = np.exp(s - lse[:, None])
    g[np.arange(len(lab)), lab] -= 1
    g /= len(lab)
    cols = {"loss": l, **{f"grad_{i}": g[:, i] for i in range(g.shape[1])}}
pl.DataFrame(cols).write_csv(dst)
"""


def make_input(loss: str, millions: float) -> Path:
    DATA.mkdir(exist_ok=True)
    path = DATA / f"{loss}_{millions:g}M.csv"
    if path.exists():
        return path
    import polars as pl

    n = int(millions * 1_000_000)
    rng = np.random.default_rng(int(millions * 10) + (0 if loss == "bce" else 1))
    if loss == "bce":
        df = pl.DataFrame({"target": rng.integers(0, 2, n), "logit": rng.normal(scale=3, size=n)})
    else:
        cols = {"label": rng.integers(0, 10, n)}
        z = rng.normal(scale=2, size=(n, 10))
        cols.update({f"z{i}": z[:, i] for i in range(10)})
        df = pl.DataFrame(cols)
    df.write_csv(path)
    return path


def measure(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one run, from GNU time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", t.name, *cmd], capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {proc.stderr[-500:]}")
        return wall, int(t.read().strip().splitlines()[-1]) / 1024


def tools(loss: str, have_torch: bool, baseline: str | None = None):
    py = sys.executable
    scripts = script_files({"numpy": NUMPY_SCRIPT, "pandas+torch": PANDAS_TORCH_SCRIPT, "polars": POLARS_SCRIPT})
    lg = lossgrad_command(py)
    if baseline:  # two versions side by side: each run the same way, from its own source tree
        lg = lossgrad_from(str(Path(__file__).resolve().parent.parent), py)
    out = {
        "lossgrad": lambda src, dst: [*lg, loss, "--from-logits", "--csv", str(src), "-f", "csv", "-o", dst],
        "numpy script": lambda src, dst: [py, scripts["numpy"], loss, str(src), dst],
        "polars script": lambda src, dst: [py, scripts["polars"], loss, str(src), dst],
    }
    if baseline:
        old = lossgrad_from(baseline, py)
        out["lossgrad (baseline)"] = lambda src, dst: [*old, loss, "--from-logits", "--csv", str(src), "-f", "csv",
                                                       "-o", dst]
    if have_torch:
        out["pandas + torch"] = lambda src, dst: [py, scripts["pandas+torch"], loss, str(src), dst]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,2,6,10", help="millions of rows")
    ap.add_argument("--losses", default="bce,ce")
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell, the tools in turns; the median is shown")
    ap.add_argument("--skip-slow-above", type=float, default=2,
                    help="run the numpy and pandas+torch scripts only up to this many millions of rows")
    ap.add_argument("--baseline", help="a source tree of another lossgrad version, timed beside this one")
    ap.add_argument("--tools", help="only these tools, comma separated (e.g. 'lossgrad,lossgrad (baseline)')")
    args = ap.parse_args()
    compile_lossgrad()
    if args.baseline:
        compile_lossgrad(args.baseline)
    try:
        import pandas  # noqa: F401
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.platform()}\n")
    for loss in args.losses.split(","):
        print(f"### {loss} from logits ({'target,logit' if loss == 'bce' else 'label + 10 logits'})\n")
        names = [n for n in tools(loss, have_torch, args.baseline)
                 if not args.tools or n in args.tools.split(",")]
        print("| rows | " + " | ".join(f"{n} s / MB" for n in names) + " |")
        print("|---|" + "---|" * len(names))
        for m in (float(s) for s in args.sizes.split(",")):
            src = make_input(loss, m)
            cmds = {name: cmd for name, cmd in tools(loss, have_torch, args.baseline).items()
                    if name in names and not (name in ("numpy script", "pandas + torch") and m > args.skip_slow_above)}
            runs = {name: [] for name in cmds}
            for _ in range(args.repeat):  # in turns, so that a slow spell of the machine hits every tool
                for name, cmd in cmds.items():
                    with tempfile.TemporaryDirectory() as d:
                        runs[name].append(measure(cmd(src, os.path.join(d, "out.csv"))))
            cells = []
            for name in names:
                if name not in runs:
                    cells.append("—")
                    continue
                wall = statistics.median(r[0] for r in runs[name])
                cells.append(f"{wall:.2f} s / {max(r[1] for r in runs[name]):.0f} MB")
            print(f"| {m:g} M | " + " | ".join(cells) + " |", flush=True)
        print()


if __name__ == "__main__":
    main()
