"""Start-up: a small inline call against `python -c "import numpy"` in the same environment, and the
alternatives people reach for. The fastest of N runs of each (shared machines are noisy).

    python benchmarks/startup.py [--runs 15]

Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time

from _installed import compile_lossgrad, lossgrad_from

PY = sys.executable
LG = [shutil.which("lossgrad")] if shutil.which("lossgrad") else [PY, "-m", "lossgrad"]
ARGS = ["--target", "0,1,0,0", "--pred", "-18.6,0.51,2.94,-12.8"]

CASES = {
    'python -c "import numpy"': [PY, "-c", "import numpy"],
    "lossgrad mse ... --format json": [*LG, "mse", "--target", "0.11,0.01,0.59", "--pred", "0.12,0.35,0.61",
                                       "--format", "json"],
    "lossgrad bce --from-logits ... --format json": [*LG, "bce", "--from-logits", *ARGS, "--format", "json"],
    "lossgrad bce --from-logits ... --format table": [*LG, "bce", "--from-logits", *ARGS, "--format", "table"],
    "lossgrad compare bce ... --format table": [*LG, "compare", "bce", "--from-logits", *ARGS, "--format", "table"],
    'python -c "import torch"': [PY, "-c", "import torch"],
    'python -c "import tensorflow"': [PY, "-c", "import tensorflow"],
}


def best_of(cmd, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        times.append(time.perf_counter() - t)
        if p.returncode != 0:
            return None
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--baseline", help="a source tree of another lossgrad version, timed beside this one")
    args = ap.parse_args()
    compile_lossgrad()
    cases = dict(CASES)
    if args.baseline:  # two versions side by side: each run the same way, from its own source tree
        compile_lossgrad(args.baseline)
        here = lossgrad_from(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PY)
        old = lossgrad_from(args.baseline, PY)
        cases = {"python -c \"import numpy\"": CASES['python -c "import numpy"']}
        for name, cmd in CASES.items():
            if name.startswith("lossgrad"):
                cases[name] = [*here, *cmd[len(LG):]]
                cases[name + " (baseline)"] = [*old, *cmd[len(LG):]]
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; fastest of "
          f"{args.runs} runs.\n")
    base = None
    print("| command | seconds | × import numpy |")
    print("|---|---|---|")
    for name, cmd in cases.items():
        runs = args.runs if "torch" not in name and "tensorflow" not in name else 3
        t = best_of(cmd, runs)
        if t is None:
            continue  # not installed here
        base = base or t
        print(f"| `{name}` | {t:.3f} | {t / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
