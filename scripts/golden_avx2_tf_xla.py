"""Record TensorFlow's and JAX's CPU results on a processor with AVX2 and no AVX-512 for tests/golden/avx2_tf_xla.json
(read by tests/test_avx2_tf_xla.py, which replays them with cpu="avx2").

What the processor changes, and so what is recorded:
- "softmax": Keras' and tf-keras' categorical-focal from logits (tf.nn.softmax), per-sample losses and the value and
  GradientTape gradient of "sum" and "sum_over_batch_size". TensorFlow's x86 build turns oneDNN on by default only
  where the processor has AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX; without them TensorFlow runs Eigen's softmax:
  e^(z − max) in blocks of 6956 (each ending in the C library's expf), Eigen's reducer, `rcpps` and a Newton step
  over whole packets of rows. Rows of 9 to 8200 classes, batches whose blocks and packets of rows end part-filled;
  float32 and bfloat16 (oneDNN's on AVX-512) and float16 (Eigen's on either: needed no change).
- "dot": jax.jit(jnp.sum(a * b, axis=-1)) over single rows of 4096 elements or more, and the product with a
  broadcast factor of scripts/golden_ynn_sums.py (its kind "dot"): YNNPACK's dot kernel, which with AVX2 takes
  the row's elements one at a time (one chain of multiply-adds per block of 32768) where AVX-512's takes four.
- "ce-rows": optax.losses.softmax_cross_entropy of a single probability row of 5000 classes under jit in float32
  (the dot above inside a loss).
- "sums": YNNPACK's float32 and bfloat16 row sums (golden_ynn_sums.values), which are the same with AVX2 as with
  AVX-512: 16 lanes either way (needed no change).

Results are kept as base64 of their float32 bits. The meta names the versions, the processor's flags and the
capability the results are of ("AVX2"), and oneDNN's verbose lines for a softmax (none: TensorFlow did not call it).

    python3 scripts/golden_avx2_tf_xla.py
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "avx2_tf_xla.json"
SOFTMAX_SHAPES = {"float32": ((5, 9), (13, 600), (9, 1025), (1, 8200), (2100, 4)),
                  "bfloat16": ((5, 9), (13, 600), (9, 1025)),
                  "float16": ((5, 9), (13, 600))}
DOT_ROWS = (4096, 4097, 9001, 32769, 70001)
SUMS = (("float32", (4, 1100)), ("float32", (1, 40000)), ("bfloat16", (3, 5000)), ("bfloat16", (1, 32769)))


def bits(x) -> str:
    return base64.b64encode(np.ascontiguousarray(np.asarray(x, dtype=np.float32), dtype="<f4").tobytes()).decode()


def softmax_records(rng) -> list[dict]:
    import tensorflow as tf

    from golden_lowp_tf_focal32 import _logits
    from golden_lowp_tf_log import DTYPES, REDUCTIONS, _loss

    out = []
    for dtype, shapes in SOFTMAX_SHAPES.items():
        for shape in shapes:
            y = np.eye(shape[1], dtype=np.float32)[rng.integers(0, shape[1], shape[0])]
            z = tf.cast(tf.constant(_logits(rng, shape), dtype=DTYPES[dtype]), tf.float32).numpy()
            for conv in ("keras", "tf-keras"):
                module = __import__("keras" if conv == "keras" else "tf_keras")
                params = {"gamma": 2.0, "class_alpha": None}
                yt, zt = tf.constant(y, dtype=DTYPES[dtype]), tf.constant(z, dtype=DTYPES[dtype])
                per = _loss(module, "categorical-focal", True, "none", dtype, None, params)(yt, zt)
                rec = {"kind": "softmax", "convention": conv, "dtype": dtype, "shape": list(shape),
                       "target": bits(y), "pred": bits(z), "losses": bits(tf.cast(per, tf.float32))}
                for name, reduction in REDUCTIONS.items():
                    pv = tf.Variable(zt)
                    with tf.GradientTape() as tape:
                        value = _loss(module, "categorical-focal", True, reduction, dtype, None, params)(yt, pv)
                    rec[name] = {"value": bits(tf.cast(value, tf.float32)),
                                 "grad": bits(tf.cast(tape.gradient(value, pv), tf.float32))}
                out.append(rec)
    return out


def xla_records(rng) -> list[dict]:
    import jax
    import jax.numpy as jnp

    import golden_ynn_sums
    from golden_lowp_xla import _soft_record

    total = jax.jit(lambda a, b: jnp.sum(a * b, axis=-1))
    out = []
    for k in DOT_ROWS:
        a, b = golden_ynn_sums.values((1, k)), golden_ynn_sums.values((1, k), 1)
        out.append({"kind": "dot", "shape": [1, k], "sum": bits(total(a, b))})
    for shape in golden_ynn_sums.KINDS["dot"]:
        arrays = golden_ynn_sums.arguments("dot", shape)
        out.append({"kind": "broadcast-dot", "shape": list(shape),
                    "sum": bits(golden_ynn_sums.function("dot")(*arrays))})
    with jax.enable_x64(False):
        for reduction in ("none", "mean"):
            out.append({"kind": "ce-rows", "record": _soft_record(rng, "float32", True, reduction, 1, 5000)})
    for dtype, shape in SUMS:
        x = golden_ynn_sums.inputs("bfloat16" if dtype == "bfloat16" else "whole", shape)[0]
        arg = golden_ynn_sums.arguments("bfloat16", shape)[0] if dtype == "bfloat16" else x
        s = jax.jit(lambda v: jnp.sum(v, axis=-1, dtype=jnp.float32))(arg)
        out.append({"kind": "sums", "dtype": dtype, "shape": list(shape), "sum": bits(s)})
    return out


def main() -> None:
    from golden_lowp_tf_focal32 import _onednn
    from make_golden import jax_versions

    flags = jax_versions()["cpu_flags"]
    if any(f.startswith("avx512") for f in flags):
        sys.exit("error: this processor has AVX-512; the records are of one with AVX2 only")
    rng = np.random.default_rng(20261205)
    records = softmax_records(rng) + xla_records(rng)
    cpu = Path("/proc/cpuinfo").read_text().splitlines()
    meta = {"versions": jax_versions(), "cpu_capability": "AVX2", "cpu_flags": flags, "onednn_softmax": _onednn(),
            "cpu": next((line.split(":")[1].strip() for line in cpu if line.startswith("model name")), "")}
    OUT.write_text(json.dumps({"meta": meta, "records": records}) + "\n")
    print(f"{len(records)} records -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
