"""What `contrastive --ntxent --convention optax` costs: lossgrad's value and both gradients of optax's ntxent, bit
for bit (op by op and under jit, float32 and float64), against the exact convention, and against what a user would
run instead where it is installed: optax itself (jax.value_and_grad of optax.losses.ntxent, op by op and jitted,
timed after a first call that compiles), in a fresh process, the import included.

    python benchmarks/contrastive.py [--pairs 128] [--features 64] [--repeat 3]

Prints a Markdown table for the README: the best of --repeat runs of each, in seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys

import numpy as np

from kernels import best


def batch(pairs: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((pairs, features))
    return a, a + 0.3 * rng.standard_normal((pairs, features))


def lossgrad_row(a: np.ndarray, p: np.ndarray, conv: str, dtype: str, jit: bool, repeat: int) -> float:
    import lossgrad

    kw = {"ntxent": True, "jit": jit} if conv == "optax" else {}
    return best(lambda: lossgrad.contrastive(p, a, temperature=0.5, convention=conv, dtype=dtype, **kw), repeat)


OPTAX = """
import sys, time
import numpy as np
t = time.perf_counter()
import jax
jax.config.update("jax_enable_x64", {x64})
import jax.numpy as jnp, optax
rng = np.random.default_rng(0)
a = rng.standard_normal(({pairs}, {features})); p = a + 0.3 * rng.standard_normal(({pairs}, {features}))
labels = jnp.concatenate([jnp.arange({pairs}), jnp.arange({pairs})])
def loss(x, y):
    return optax.losses.ntxent(jnp.concatenate([x, y]), labels, 0.5)
f = jax.value_and_grad(loss, argnums=(0, 1))
f = jax.jit(f) if {jit} else f
x, y = jnp.asarray(p.astype("{dtype}")), jnp.asarray(a.astype("{dtype}"))
jax.block_until_ready(f(x, y))
first = time.perf_counter() - t
runs = []
for _ in range({repeat}):
    t = time.perf_counter(); jax.block_until_ready(f(x, y)); runs.append(time.perf_counter() - t)
print(first, min(runs))
"""


def optax_row(pairs: int, features: int, dtype: str, jit: bool, repeat: int) -> tuple[float, float]:
    """optax's own (the first call with the import and compilation, then the best of the calls after it)."""
    code = OPTAX.format(x64=dtype == "float64", pairs=pairs, features=features, jit=jit, dtype=dtype, repeat=repeat)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=os.environ | {"JAX_PLATFORMS": "cpu"})
    first, again = out.stdout.split()
    return float(first), float(again)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=128)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    a, p = batch(args.pairs, args.features)
    have_optax = all(importlib.util.find_spec(m) for m in ("jax", "optax"))
    print(f"{args.pairs} pairs of {args.features} features, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| dtype | mode | lossgrad exact | lossgrad optax (bit for bit) | optax: first call (import, compile) "
          "| optax: later calls |")
    print("|---|---|---|---|---|---|")
    exact = {dtype: lossgrad_row(a, p, "exact", dtype, False, args.repeat) for dtype in ("float32", "float64")}
    for dtype in ("float32", "float64"):
        for jit in (False, True):
            ours = lossgrad_row(a, p, "optax", dtype, jit, args.repeat)
            first, again = optax_row(args.pairs, args.features, dtype, jit, args.repeat) if have_optax else (None, None)
            theirs = f"{first:.3f} | {again:.4f}" if first is not None else "— | —"
            print(f"| {dtype} | {'jit' if jit else 'op by op'} | {exact[dtype]:.3f} | {ours:.3f} | {theirs} |")


if __name__ == "__main__":
    main()
