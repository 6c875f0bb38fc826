"""Fuzz the real command line: generated inline values, CSV bytes (files and stdin) and options (every loss, with
`compare` and `check`, each dtype under each convention), each run as `python -m lossgrad` in a subprocess. Every run
must end with exit status 0, 2 or 74, and no traceback or internal failure on stderr (`check` may also end with 1: no
convention explains the numbers); an exit status 2 must be one `error:` line with nothing on stdout.

    python scripts/fuzz_cli.py --runs 2000 --seed 1 [--jobs 2]

Prints the count of runs per exit status, and every failing command (its arguments and input saved under
--keep, default fuzz-failures/)."""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIECES = ["0", "1", "2", "7", "0.5", "0.25", "1e-7", "-3", "+2", ".5", "5.", "1e308", "1e999", "-0", ".", "-", "e",
          "_", "1_000", "nan", "inf", "-inf", '"0.5"', "'1'", "\u00a0", "\u3000", "\f", "\v", "\ufeff", "\u0661",
          "x", " ", "\t", ",", ",,", ";", "\r"]
LOSSES = ["mse", "mae", "huber", "bce", "focal", "ce", "nll", "kl", "cosine", "poisson", "hinge", "logcosh",
          "smooth-l1", "squared-hinge", "categorical-focal", "dice", "tversky", "gaussian-nll", "margin-ranking",
          "triplet", "cosine-embedding", "contrastive", "ctc"]
CONVENTIONS = ["exact", "keras", "tf-keras", "torch", "optax"]
# a dtype under a convention, as people run half precision (and the framework's own refusals)
PRECISION = [["--dtype", d, "-c", c] for d in ("float32", "float16", "bfloat16") for c in CONVENTIONS] + [
    ["--dtype", "bfloat16", "-c", "torch", "--autocast"], ["--dtype", "float16", "-c", "keras", "--autocast"],
    ["--dtype", "bfloat16", "-c", "optax", "--no-jit"], ["--dtype", "float16", "-c", "optax", "--jit"]]
OPTIONS = [[], ["--from-logits"], ["-r", "sum"], ["-r", "none"], ["-c", "keras"], ["-c", "torch"], ["-c", "optax"],
           ["--dtype", "float32"], ["--sample-weight", "0,0"], ["--sample-weight", "1e308,1e308"],
           ["--class-weights", "0,0"], ["--ignore-index", "0"], ["--label-smoothing", "0.1"], ["--eps", "0.1"],
           ["--labels", "onehot"], ["--explain"]]
# options each loss takes, so that most runs get past the set-up to the numbers
FITTING = {
    "bce": [["--from-logits"], ["-c", "keras"], ["--sample-weight", "0,0"], ["--sample-weight", "1e308,1e308"],
            ["--from-logits", "-c", "torch"], ["--label-smoothing", "0.1"]],
    "ce": [["--from-logits"], ["-c", "keras"], ["--class-weights", "0,0"], ["--ignore-index", "0"],
           ["--labels", "onehot"], ["--from-logits", "-c", "optax"]],
    "mse": [["--sample-weight", "0,0"], ["-c", "torch"], ["--sample-weight", "1e308,1e308"]],
    "kl": [["--log-input"], ["-c", "keras"]],
    "focal": [["--from-logits"], ["--from-logits", "--gamma", "0"]],
    "categorical-focal": [["--from-logits"], ["--gamma", "0.5"], ["--class-alpha", "0.25"]],
    "gaussian-nll": [["--var", "0.5,1"], ["--var", "1", "--full"], ["--var", "0,1e-9", "--var-eps", "0.1"]],
    "margin-ranking": [["--other", "0.5,1", "--margin", "0.1"], ["--other", "1"]],
    "triplet": [["--negative", "0.5,1"], ["--negative", "1,2", "--swap", "--norm-degree", "1"]],
    "cosine-embedding": [["--label", "1"], ["--label", "-1", "--margin", "0.2"]],
    "contrastive": [["--ntxent"], ["--symmetric"], ["--dot", "--temperature", "0.5"]],
    "ctc": [["--from-logits"], ["--blank", "1"], ["--zero-infinity"]],
    "dice": [["--squared"], ["--from-logits"], ["--smooth", "1"]],
    "tversky": [["--alpha", "0.3", "--beta", "0.7"], ["--from-logits"]],
}
OK_CODES = {0, 2, 74}


def value_text(rng: random.Random, n: int, pool: list[str]) -> str:
    numbers = [rng.choice(pool) for _ in range(n)]
    if rng.random() < 0.3:  # mostly numbers, sometimes a stray piece among them
        numbers[rng.randrange(n)] = rng.choice(PIECES)
    sep = rng.choice([",", " ", ", "] + ([";"] if rng.random() < 0.2 else []))
    return sep.join(numbers)


def csv_bytes(rng: random.Random) -> bytes:
    width = rng.choice([1, 2, 2, 2, 3, 4])
    lines = [",".join(rng.choice(["target", "pred", "w", "a"]) for _ in range(width))] if rng.random() < 0.5 else []
    for _ in range(rng.randint(0, 8)):
        fields = [rng.choice(["0", "1", "0.5", "0.25", "1e-7", "-2"]) for _ in range(width + (rng.random() < 0.05))]
        if rng.random() < 0.1:
            fields[rng.randrange(len(fields))] = rng.choice(PIECES)
        lines.append(",".join(fields) if rng.random() < 0.95 else rng.choice(PIECES))
    text = rng.choice(["\n", "\r\n"]).join(lines) + ("\n" if rng.random() < 0.8 else "")
    data = text.encode()
    if rng.random() < 0.2:
        data = b"\xef\xbb\xbf" + data
    if rng.random() < 0.05:
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return data


def case(rng: random.Random, tmp: Path, i: int) -> tuple[list[str], bytes | None]:
    """One command line (arguments after `lossgrad`) and what goes to its stdin."""
    loss = rng.choice(LOSSES)
    fitting = FITTING.get(loss, []) + [[], ["-r", "sum"], ["-r", "none"], ["--dtype", "float32"], ["--explain"]]
    options = rng.choice(OPTIONS if rng.random() < 0.2 else fitting)
    if rng.random() < 0.3:
        options = options + rng.choice(PRECISION)
    check = ["check", loss, "--my-grad", value_text(rng, 2, ["1", "-0.5"])]
    command = rng.choice([[loss]] * 6 + [["compare", loss], check])
    fmt = ["-f", rng.choice(["json", "csv", "table"])]
    kind = rng.random()
    if kind < 0.45:
        n = rng.randint(1, 5)
        labels = ["0", "1", "2"] if loss in ("ce", "nll") else ["0", "1", "0.5", "0.25"]
        y = value_text(rng, n if loss not in ("ce", "nll") else rng.randint(1, 2), labels)
        return [*command, "-y", y, "-p", value_text(rng, n, ["0.5", "0.25", "0.1", "0.9", "1e-7", "0", "1", "-3",
                                                             "2"]), *fmt, *options], None
    data = csv_bytes(rng)
    if kind < 0.75:
        path = tmp / f"in{i}.csv"
        path.write_bytes(data)
        return [*command, "--csv", str(path), *fmt, *options], None
    return [*command, *fmt, *options], data


def run(args: list[str], stdin: bytes | None) -> tuple[int, str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "lossgrad", *args], input=stdin or b"", capture_output=True,
                          env=env, timeout=120)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def problem(args: list[str], code: int, out: str, err: str) -> str | None:
    if code not in OK_CODES and not (code == 1 and args[0] == "check"):  # (check: 1 when no convention explains)
        return f"exit status {code}"
    if "Traceback" in err or "internal failure" in err:
        return "traceback or internal failure"
    if code == 2:
        lines = err.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("error: "):
            return "exit 2 without exactly one error line"
        # (batch mode, csv, may have written whole rows before a bad one: the README says so)
        if out and "csv" not in args:
            return "exit 2 with output"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", default="fuzz-failures")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    codes: Counter[int] = Counter()
    failures = []
    with tempfile.TemporaryDirectory() as d:
        cases = [case(rng, Path(d), i) for i in range(a.runs)]
        with ThreadPoolExecutor(a.jobs) as pool:
            for (args, stdin), (code, out, err) in zip(cases, pool.map(lambda c: run(*c), cases), strict=True):
                codes[code] += 1
                why = problem(args, code, out, err)
                if why:
                    failures.append((why, args, stdin, err))
    for why, args, stdin, err in failures[:20]:
        print(f"FAIL ({why}): lossgrad {' '.join(map(repr, args))} stdin={stdin!r}\n  {err.strip()[-300:]}")
    if failures:
        keep = Path(a.keep)
        keep.mkdir(exist_ok=True)
        for i, (why, args, stdin, err) in enumerate(failures):
            (keep / f"{i}.txt").write_text(f"{why}\n{args!r}\n{stdin!r}\n{err}")
    print(f"{a.runs} runs (seed {a.seed}): exit statuses {dict(sorted(codes.items()))}; {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
