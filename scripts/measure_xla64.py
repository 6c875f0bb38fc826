"""Measure models of XLA's float64 arithmetic on the CPU (JAX with jax_enable_x64, as optax runs in float64) against
JAX itself: the ground that optax's float64 losses would be reproduced on. lossgrad's optax convention computes
float64 with its formulas; these are the parts measured so far, each printed with how many values differ from JAX's
(0 is the claim where one is made).

- e^x is XLA's own (xla/codegen/intrinsic/exp.cc): Cephes' rational function (Eigen's pexp_double), x clamped to
  [−708.396…, 709.782…], 0 below, ∞ above, and every multiply-add contracted into one rounding (LLVM's FMA).
- log and pow are the C library's (glibc), √ correctly rounded.
- log(1 + x) is XLA's own (xla/codegen/math/log1p.cc): for |x| < √2 − 1 Cephes' rational function, its two
  polynomials in contracted multiply-adds, x + (−½x² + x³·P(x)/Q(x)); beyond, glibc's log(x + 1)
  (lossgrad.lowp_xla64.log1p).
- expm1 and tanh are XLA's own too and differ from glibc's in some elements (printed, not modelled).
- A row sum of fewer than 4096 elements: XLA's windows of 32, each in order (as in float32). From 4096, YNNPACK's
  sum_float_k1 with 8 double lanes, a row in blocks of 1,024, each in tiles of 128 (a last tile of 65 to 127 in
  two, of 64 and the rest), the tiles' lanes added, then the blocks', before the lanes are halved
  (lossgrad.lowp_xla64.row_sum); rows of 2,048 or more go otherwise, not pinned down.

    python3 scripts/measure_xla64.py [--n 200000] [--seed 0] [--rows 300] [--sum2d 700]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util

import numpy as np

from lossgrad.lowp_xla64 import EXP_HI, EXP_LO, YNN_LONGEST, exp as xla_exp, log1p as xla_log1p, row_sum


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
    ap.add_argument("--rows", type=int, default=0, metavar="SHAPES",
                    help="also jnp.sum along the rows of SHAPES random arrays of 4,096 elements or more, rows of 65 to "
                         "2,047")
    ap.add_argument("--sum2d", type=int, default=0, metavar="SHAPES",
                    help="also jnp.sum of whole arrays: every shape up to 32 × 32 and SHAPES random larger ones")
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
    near = np.concatenate([small, rng.uniform(-0.99, 3, n // 10), np.exp(rng.uniform(-40, 5, n // 10)), [0.0, -0.0]])
    got = np.asarray(jnp.log1p(jnp.asarray(near)))
    print(f"log1p: XLA's intrinsic apart in {apart(got, xla_log1p(near))} of {near.size}")
    for name, jf, inputs in (("log", jnp.log, positive), ("log1p", jnp.log1p, near), ("expm1", jnp.expm1, small),
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
                       (5, 2000), (40, 200), (3, 1500), (2, 2047), (40, 2048), (3, 3000)):
        m = rng.normal(size=(rows, cols)) * np.exp(rng.uniform(-6, 6, size=(rows, cols)))
        got = np.asarray(jnp.sum(jnp.asarray(m), axis=-1))
        if cols >= YNN_LONGEST and m.size >= 4096:
            print(f"row sums {rows} × {cols}: not pinned down (YNNPACK's)")
            continue
        print(f"row sums {rows} × {cols}: {'windows of 32' if m.size < 4096 else 'YNNPACK, tiles'} apart in "
              f"{apart(got, row_sum(m))} of {rows} rows")
    if args.rows:
        long_rows(jnp, rng, args.rows)
    if args.sum2d:
        whole_sums(jnp, rng, args.sum2d)


def long_rows(jnp: object, rng: np.random.Generator, shapes: int) -> None:
    """Row sums of 4,096 elements or more, rows of 65 to 2,047 (YNNPACK's blocks and tiles): how many rows apart."""
    rows_apart = total = 0
    for _ in range(shapes):
        cols = int(rng.integers(65, YNN_LONGEST))
        rows = max(int(rng.integers(1, 60)), -(-4096 // cols))
        m = rng.normal(size=(rows, cols)) * np.exp(rng.uniform(-6, 6, size=(rows, cols)))
        got = np.asarray(jnp.sum(jnp.asarray(m), axis=-1))  # type: ignore[attr-defined]
        rows_apart, total = rows_apart + apart(got, row_sum(m)), total + rows
    print(f"row sums of {shapes} random shapes (rows of 65 to 2,047, 4,096 elements or more): {rows_apart} of {total} "
          "rows apart")


def whole_sums(jnp: object, rng: np.random.Generator, shapes: int) -> None:
    """jnp.sum of a whole array against lowp_xla64.sum2d (with AVX2, this machine's processor): every shape up to
    32 × 32 (block_lanes' lanes), then `shapes` random shapes up to 128 × 128 below 4,096 elements (windows of 32 ×
    32), each with values spread over 2^±29 so the order shows."""
    from lossgrad import cpu
    from lossgrad.lowp_xla64 import sum2d

    small = [(n, k) for n in range(1, 33) for k in range(1, 33)]
    large = [(n, k) for n in range(1, 129) for k in range(1, 129) if n * k < 4096 and (n > 32 or k > 32)]
    picked = [large[i] for i in rng.choice(len(large), size=min(shapes, len(large)), replace=False)]
    for name, group in (("up to 32 × 32", small), (f"{len(picked)} random shapes", picked)):
        apart_shapes = []
        with cpu.using("avx2"):
            for n, k in group:
                x = rng.normal(size=(n, k)) * np.exp(rng.uniform(-20, 20, size=(n, k)))
                if float(jnp.sum(jnp.asarray(x))) != sum2d(x):  # type: ignore[attr-defined]
                    apart_shapes.append((n, k))
        print(f"whole-array sums, {name}: {len(apart_shapes)} of {len(group)} shapes apart {apart_shapes[:10]}")


if __name__ == "__main__":
    main()
