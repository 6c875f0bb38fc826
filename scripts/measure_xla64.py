"""Measure models of XLA's float64 arithmetic on the CPU (JAX with jax_enable_x64, as optax runs in float64) against
JAX itself: the ground that optax's float64 losses would be reproduced on. lossgrad's optax convention computes
float64 with its formulas; these are the parts measured so far, each printed with how many values differ from JAX's
(0 is the claim where one is made).

- e^x is XLA's own (xla/codegen/intrinsic/exp.cc): Cephes' rational function (Eigen's pexp_double), x clamped to
  [−708.396…, 709.782…], 0 below, ∞ above, and every multiply-add contracted into one rounding (LLVM's FMA).
- log and pow are the C library's (glibc), √ correctly rounded; log1p, expm1 and tanh are XLA's own and differ
  from glibc's in some elements (printed, not modelled).
- A row sum of fewer than 4096 elements: XLA's windows of 32, each in order (as in float32). From 4096, YNNPACK's
  sum_float_k1 with 8 double lanes; a batch of rows of more than 64 is split into tiles whose lanes are added before
  the lanes are halved (tiles of 64 measured on 50 × 100 and 41 × 101; longer rows not pinned down).

    python3 scripts/measure_xla64.py [--n 200000] [--seed 0]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util

import numpy as np

from lossgrad.lowp_xla64 import EXP_HI, EXP_LO, exp as xla_exp, halved, windows, ynn_lanes


def tiled(x: np.ndarray, tile: int = 64) -> np.ndarray:
    """YNNPACK's float64 row sum over tiles of `tile` elements (lossgrad.lowp_xla64.row_sum's, up to two tiles): the
    tiles' lanes added, then halved. Rows of 65 to 127 follow it (120 random shapes, and squares of 64 to 126); rows
    of 128 or more do not."""
    return halved(sum(ynn_lanes(x[:, lo:lo + tile]) for lo in range(0, x.shape[1], tile))) + 0.0


def libm() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    for name in ("exp", "log", "log1p", "expm1", "tanh"):
        getattr(lib, name).restype, getattr(lib, name).argtypes = ctypes.c_double, [ctypes.c_double]
    lib.pow.restype, lib.pow.argtypes = ctypes.c_double, [ctypes.c_double, ctypes.c_double]
    return lib


def apart(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.sum(~((a == b) | (np.isnan(a) & np.isnan(b)))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    rng = np.random.default_rng(args.seed)
    n = args.n
    x = np.concatenate([rng.normal(size=n) * 10, rng.uniform(-745, 710, n), rng.normal(size=n) * 1e-3,
                        [EXP_LO, np.nextafter(EXP_LO, 0), EXP_HI, np.nextafter(EXP_HI, np.inf), 0.0, -0.0, np.nan,
                         np.inf, -np.inf, 5e-324]])
    print(f"jax {jax.__version__}, {x.size} values")
    lib = libm()
    glibc = np.array([lib.exp(float(v)) for v in x])
    for mode, run in (("op by op", lambda f, a: f(a)), ("jit", lambda f, a: jax.jit(f)(a))):
        got = np.asarray(run(jnp.exp, jnp.asarray(x)))
        print(f"e^x ({mode}): XLA's intrinsic apart in {apart(got, xla_exp(x))}, glibc's exp in {apart(got, glibc)}")
    positive = np.abs(rng.normal(size=n // 10)) * np.exp(rng.uniform(-30, 30, n // 10))
    small = np.abs(rng.normal(size=n // 10))
    for name, jf, inputs in (("log", jnp.log, positive), ("log1p", jnp.log1p, small), ("expm1", jnp.expm1, small),
                             ("tanh", jnp.tanh, small)):
        got = np.asarray(jf(jnp.asarray(inputs)))
        want = np.array([getattr(lib, name)(float(v)) for v in inputs])
        print(f"{name}: glibc's apart in {apart(got, want)} of {inputs.size}")
    base = positive[:5000]
    power = rng.normal(size=base.size)
    got = np.asarray(jnp.power(jnp.asarray(base), jnp.asarray(power)))
    want = np.array([lib.pow(float(a), float(b)) for a, b in zip(base, power, strict=True)])
    root = np.asarray(jnp.sqrt(jnp.asarray(positive)))
    print(f"pow: glibc's apart in {apart(got, want)} of {base.size}; √: correctly rounded apart in "
          f"{apart(root, np.sqrt(positive))}")
    for rows, cols in ((50, 60), (7, 500), (100, 40), (50, 100), (41, 101), (126, 126), (40, 127), (10, 1000),
                       (5, 2000)):
        m = rng.normal(size=(rows, cols))
        got = np.asarray(jnp.sum(jnp.asarray(m), axis=-1))
        model = windows(m) if m.size < 4096 else tiled(m)
        print(f"row sums {rows} × {cols}: {'windows of 32' if m.size < 4096 else 'YNNPACK, tiles of 64'} apart in "
              f"{apart(got, model)} of {rows} rows")


if __name__ == "__main__":
    main()
