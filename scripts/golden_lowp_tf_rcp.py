"""Record the processor's `rcpps` estimates as TensorFlow's float32 reciprocal reveals them, for
tests/golden/lowp_tf_rcp.json (read by tests/test_lowp_tf_rcp.py), in the encoding of lossgrad.lowp_tf_rcp.RCPPS.

Eigen's float32 reciprocal over whole packets is `rcpps`'s estimate refined by one Newton step, e + e·(1 − x·e)
without FMA. The estimate depends on the exponent and the top 12 bits of the mantissa only: for each of the 4096
buckets of x in [1, 2) the one 12-bit estimate, among 1/x at the bucket's middle rounded to 12 bits and its
neighbours, whose Newton step gives TensorFlow's result at every probe of the bucket (32 values each, then every
value of the buckets still undecided). The file also keeps TensorFlow's reciprocals of probes the table was not
read from (other exponents, signs, zeros, subnormals, infinities, a scalar remainder), with the versions, the build
and the processor's flags.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from golden_lowp_tf_elem import meta  # noqa: E402
from lossgrad import lowp_tf_rcp  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_tf_rcp.json"
STEPS = np.arange(-3, 4)


def reciprocal(x: np.ndarray) -> np.ndarray:
    return tf.math.reciprocal(tf.constant(x.astype(np.float32))).numpy()


def estimates() -> np.ndarray:
    """Each bucket's estimate as steps of 2^−12 from 1/x at its middle rounded to 12 bits (see the docstring)."""
    rng = np.random.default_rng(4096)
    top = np.arange(4096)
    near = lowp_tf_rcp.rcp_rounded()
    fits = np.ones((4096, STEPS.size), dtype=bool)

    def probe(buckets: np.ndarray, low: np.ndarray) -> None:
        x = ((127 << 23) | (buckets << 11) | low).astype(np.uint32).view(np.float32)
        got = reciprocal(x)
        for j, d in enumerate(STEPS):
            est = ((near[buckets] + d) << 11).astype(np.uint32).view(np.float32)
            fits[buckets, j] &= lowp_tf_rcp.newton(x, est) == got

    for low in [0, 2047, *rng.integers(0, 2048, 30)]:
        probe(top, np.full(4096, low))
    left = top[fits.sum(axis=1) > 1]
    if left.size:  # (every x of them, 8 at a time, so that all go through packets)
        probe(np.repeat(left, 2048), np.tile(np.arange(2048), left.size))
    assert (fits.sum(axis=1) >= 1).all(), "no estimate reproduces TensorFlow's reciprocal in some bucket"
    # (estimates whose Newton steps agree at every x of the bucket are the same to TensorFlow: the nearest is kept)
    fits &= np.abs(STEPS) == np.where(fits, np.abs(STEPS), 9).min(axis=1, keepdims=True)
    return STEPS[fits.argmax(axis=1)]


def checks(rng) -> list[dict]:
    """TensorFlow's reciprocals of probes beyond those the table was read from."""
    bits = rng.integers(0, 2 ** 32, 2048, dtype=np.uint64).astype(np.uint32)
    wide = bits.view(np.float32)
    wide = wide[np.isfinite(wide)]
    special = np.array([0.0, -0.0, np.inf, -np.inf, 1e-40, -1e-40, 2.0 ** -126, 2.0 ** 126, 2.0 ** 127,
                        3e38, -3e38, 1.0, -1.0, 2.0, 0.5, 1e-7, 1 - 1e-7, 1e-38, 1.5e-38, 8.5e37], dtype=np.float32)
    sets = {"random bits": wide[: wide.size - wide.size % 8], "specials": special,
            "scalar remainder": rng.standard_normal(13).astype(np.float32),
            "probabilities": rng.random(1027).astype(np.float32)}
    return [{"note": k, "x": v.view(np.uint32).tolist(), "got": reciprocal(v).view(np.uint32).tolist()}
            for k, v in sets.items()]


def main() -> None:
    steps = estimates()
    table = lowp_tf_rcp.encode(steps)
    cases = checks(np.random.default_rng(20261202))
    OUT.write_text(json.dumps({"meta": meta(), "rcpps": table, "cases": cases}, indent=None) + "\n")
    print(f"{np.unique(steps, return_counts=True)} -> {OUT} ({OUT.stat().st_size} bytes)\n{table}")


if __name__ == "__main__":
    main()
