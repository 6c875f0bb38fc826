"""Record TensorFlow's float32, float16 and bfloat16 CPU results under Keras 3 and tf-keras for Keras' element-wise
losses (mae, huber, logcosh, hinge, squared-hinge) and its cosine similarity, for tests/golden/lowp_tf_elem.json
(read by tests/test_lowp_tf_elem.py).

Each record: a convention, dtype, loss, delta (huber), inputs (values of the dtype) and what the framework's Loss
class gives for them (Keras 3's with dtype= the dtype, tf-keras' on tensors of it): the per-sample losses
(reduction "none"), and the value and the GradientTape gradient with respect to the predictions under "sum" and
"sum_over_batch_size" (lossgrad's mean). Inputs are random and adversarial: shapes whose sizes are not multiples
of a packet of 8 (the scalar remainder), rows of more than 8192 outputs (the reducer's tree), errors at δ and
around softplus' cut-offs, hinge ties (1 − y·p = 0), zero vectors for cosine; and (appended) float16 cosine
batches whose gradient elements underflow, where the zeros' signs are RsqrtGrad's (`underflow_rows`). The file also
keeps the processor's `rsqrtps` estimates as read back from TensorFlow's rsqrt (`rsqrt_estimates`), in the encoding
of lossgrad.lowp_tf_elem.RSQRTPS.
"""

from __future__ import annotations

import base64
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from make_golden import versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_tf_elem.json"
REDUCTIONS = {"sum": "sum", "mean": "sum_over_batch_size"}
DTYPES = {"float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}
CLASSES = {"mae": "MeanAbsoluteError", "huber": "Huber", "logcosh": "LogCosh", "hinge": "Hinge",
           "squared-hinge": "SquaredHinge", "cosine": "CosineSimilarity"}
LOSSES = tuple(CLASSES)


def _short(a) -> list:
    """Numbers as the shortest decimal strings that read back to the same float32 (every value here is one)."""
    flat = np.asarray(a, dtype=np.float32)
    return np.vectorize(lambda v: str(np.float32(v)), otypes=[object])(flat).tolist()


def _loss(module, loss: str, reduction: str, dtype: str, delta: float | None):
    kw = {"reduction": reduction} | ({"dtype": dtype} if module.__name__ == "keras" else {})
    kw |= {"delta": delta} if loss == "huber" else {}
    return getattr(module.losses, CLASSES[loss])(**kw)


def in_dtype(a: np.ndarray, dtype: str) -> np.ndarray:
    return tf.cast(tf.constant(a, dtype=DTYPES[dtype]), tf.float32).numpy()


def record(conv: str, loss: str, y: np.ndarray, p: np.ndarray, note: str = "", dtype: str = "float32",
           delta: float | None = None, eps: float | None = None) -> dict:
    """The framework's results; `eps`: Keras 3's backend epsilon for the run (lossgrad's --eps)."""
    module = __import__("keras" if conv == "keras" else "tf_keras")
    if eps is None:
        return _record(module, conv, loss, y, p, note, dtype, delta)
    set_epsilon = module.config.set_epsilon if conv == "keras" else module.backend.set_epsilon
    set_epsilon(eps)
    try:
        return _record(module, conv, loss, y, p, note, dtype, delta) | {"eps": eps}
    finally:
        set_epsilon(1e-7)


def _record(module, conv: str, loss: str, y: np.ndarray, p: np.ndarray, note: str, dtype: str,
            delta: float | None) -> dict:
    y, p = in_dtype(y, dtype), in_dtype(p, dtype)
    per = _loss(module, loss, "none", dtype, delta)(tf.constant(y, DTYPES[dtype]), tf.constant(p, DTYPES[dtype]))
    rec = {"convention": conv, "dtype": dtype, "loss": loss, "delta": delta, "note": note, "target": _short(y),
           "pred": _short(p), "losses": _short(tf.cast(per, tf.float32).numpy())}
    for name, reduction in REDUCTIONS.items():
        pv = tf.Variable(tf.constant(p, dtype=DTYPES[dtype]))
        with tf.GradientTape() as tape:
            value = _loss(module, loss, reduction, dtype, delta)(tf.constant(y, DTYPES[dtype]), pv)
        rec[name] = {"value": str(np.float32(tf.cast(value, tf.float32).numpy())),
                     "grad": _short(tf.cast(tape.gradient(value, pv), tf.float32).numpy())}
    return rec


SHAPES = [(1, 1), (7, 5), (13, 1), (3, 3), (20, 9), (3, 40), (1, 33), (16, 24), (9, 8), (11, 3)]


def random_cases(rng, loss: str, shapes=SHAPES) -> list[tuple]:
    """(loss, y, p, note, delta) on each shape: differences scaled from 1e−3 to 100 per row."""
    out = []
    for rows, cols in shapes:
        scale = rng.choice([1e-3, 0.1, 1.0, 5.0, 100.0], (rows, 1))
        if loss in ("hinge", "squared-hinge"):
            y = rng.choice([-1.0, 1.0] if rng.random() < 0.5 else [0.0, 1.0], (rows, cols))
            p = rng.standard_normal((rows, cols)) * scale
        else:
            y = rng.standard_normal((rows, cols)) * scale
            p = y + rng.standard_normal((rows, cols)) * scale
        delta = float(rng.choice([0.3, 1.0, 2.7])) if loss == "huber" else None
        out.append((loss, y.astype(np.float32), p.astype(np.float32), "random", delta))
    return out


def adversarial_cases(rng) -> list[tuple]:
    out = []
    # errors exactly at δ and either side of it (the branch, the tie going to the quadratic side)
    e = np.array([[-1.0, -0.999, 1.0, 1.001, 0.0, 2.7, -2.7, 3.0, 0.3]], np.float32)
    for delta in (1.0, 2.7, 0.3):
        out.append(("huber", np.zeros_like(e), e, "errors at delta", delta))
    out.append(("mae", np.zeros_like(e), e, "zero errors", None))
    # logcosh around softplus' cut-offs (−2x near ±13.94, ±7.0 and ±2.84) and far out, 20 values per row
    x = np.concatenate([np.linspace(-8, 8, 41), [-7.0, 6.97, 3.5, -3.5, 1.42, -1.42, 50.0, -50.0, 0.0, 1e-4]])
    out.append(("logcosh", np.zeros((1, x.size), np.float32), x.astype(np.float32)[None, :], "softplus' cut-offs",
                None))
    out.append(("logcosh", np.zeros((3, 17), np.float32), x[:51].astype(np.float32).reshape(3, 17),
                "cut-offs, scalar remainder", None))
    # hinge ties: 1 − y·p = 0 exactly (Maximum passes the gradient there)
    y = np.array([[1, -1, 1, -1, 1, 1, -1, -1, 1]], np.float32)
    p = np.array([[1, -1, 0.5, 2, -3, 1, -1, 0, 1]], np.float32)
    out += [("hinge", y, p, "ties at the hinge", None), ("squared-hinge", y, p, "ties at the hinge", None)]
    out += [("hinge", (y > 0).astype(np.float32), p, "0/1 labels", None)]
    # cosine: zero vectors (Keras 3's cap 1/ε, tf-keras' floor 1e−12), a tiny one, parallel and opposite rows
    y = np.array([[0, 0, 0], [1, 2, 3], [1e-8, 0, 0], [1, 1, 1], [3, 0, 4]], np.float32)
    p = np.array([[1, 2, 3], [0, 0, 0], [1, 1, 1], [-2, -2, -2], [3, 0, 4]], np.float32)
    out.append(("cosine", y, p, "zero and parallel vectors", None))
    # rows of more than 8192 outputs: the reducer's tree (a mean of softplus' results, and cosine's sums)
    for loss in ("logcosh", "cosine"):
        y = rng.standard_normal((1, 8197)).astype(np.float32)
        y = np.sign(y) if loss in ("hinge", "squared-hinge") else y
        out.append((loss, y, rng.standard_normal((1, 8197)).astype(np.float32), "a row of 8197", 1.0 if loss ==
                    "huber" else None))
    return out


def all_cases(rng) -> list[tuple]:
    return [c for loss in LOSSES for c in random_cases(rng, loss)] + adversarial_cases(rng)


def meta() -> dict:
    flags = sorted({f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                    for f in line.split(":")[1].split() if f.startswith(("avx", "fma", "sse4"))})
    model = next((line.split(":")[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "")
    return {"versions": versions(), "build": {k: str(v) for k, v in tf.sysconfig.get_build_info().items()},
            "compile_flags": tf.sysconfig.get_compile_flags(), "cpu_flags": flags, "cpu": model,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}


def main() -> None:
    rng = np.random.default_rng(20261202)
    cases = all_cases(rng)
    # (the widest rows under Keras 3 in float32 only: tf-keras calls the same kernels, and the file stays small)
    fits = [p.size <= 1100 and np.isfinite(p.astype(np.float16)).all() and np.isfinite(y.astype(np.float16)).all()
            for _, y, p, _, _ in cases]
    records = [record(conv, loss, y, p, note, dtype, delta) for dtype in DTYPES for conv in ("keras", "tf-keras")
               for (loss, y, p, note, delta), small in zip(cases, fits, strict=True)
               if small or (conv, dtype) == ("keras", "float32")]
    # Keras 3's cosine caps 1/‖x‖ at 1/ε, its backend epsilon (--eps): rows whose norms are beyond it at ε = 0.1
    y = (rng.standard_normal((20, 3)) * rng.choice([1e-3, 0.05, 1], (20, 1))).astype(np.float32)
    p = (rng.standard_normal((20, 3)) * rng.choice([1e-3, 0.05, 1], (20, 1))).astype(np.float32)
    records += [record("keras", "cosine", y, p, "epsilon 0.1", dtype, eps=0.1) for dtype in DTYPES]
    records += [record(conv, "cosine", y, p, "underflow signs", "float16") for conv in ("keras", "tf-keras")
                for y, p in underflow_rows(np.random.default_rng(20261205))]
    steps = rsqrt_estimates().reshape(-1) + 8
    table = base64.b64encode(zlib.compress(bytes(steps.astype(np.uint8)), 9)).decode()
    OUT.write_text(json.dumps({"meta": meta(), "rsqrtps": table, "cases": records}, indent=None) + "\n")
    print(f"{len(records)} records -> {OUT} ({OUT.stat().st_size} bytes)")


def underflow_rows(rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """float16 batches for cosine whose gradient elements underflow, so that their zeros' signs show: a row of
    8 (RsqrtGrad's packets) and of 9 (its scalar loop) where i·Σp·ŷ underflows, and nearly orthogonal rows (the
    target's large part where the prediction holds only tiny values, and the other way round), ±0 among them."""
    row_y, row_p = [1.0, 0.0, 2.0 ** -20], [-(2.0 ** -21), 4.0, -(2.0 ** -20)]
    out = [(np.array([row_y] * b), np.array([row_p] * b)) for b in (8, 9)]
    for b, k in ((8, 3), (12, 5), (17, 2), (24, 7)):
        y, p = (rng.choice([-1, 1], (b, k)) * np.exp2(rng.uniform(-24, -10, (b, k))) for _ in range(2))
        for row in range(b):
            big = rng.permutation(k)[:int(rng.integers(1, k))] if k > 1 else np.array([0])
            y[row, big] = rng.standard_normal(len(big)) * 2.0 ** rng.integers(-3, 4)
            rest = np.setdiff1d(np.arange(k), big)
            p[row, rest] = rng.standard_normal(len(rest)) * 2.0 ** rng.integers(-3, 4)
            y[row, rng.random(k) < 0.1], p[row, rng.random(k) < 0.1] = -0.0, 0.0
        y[:, 0] = np.where((y != 0).any(axis=1), y[:, 0], 1.0)
        p[:, 0] = np.where((p != 0).any(axis=1), p[:, 0], 1.0)
        out.append((y, p))
    return out


def rsqrt_estimates() -> np.ndarray:
    """The processor's `rsqrtps` estimates, read back from TensorFlow's float32 rsqrt (whole packets): for each of
    the 2 × 4096 buckets (exponent parity, top 12 mantissa bits: the estimate depends on nothing else) the one
    12-bit estimate, among the 1/√x rounded to 12 bits and its neighbours, whose Newton step as lossgrad emulates
    it gives TensorFlow's result at every probe in the bucket; as steps of 2^−12 from that rounding."""
    from lossgrad import lowp_tf_elem

    rng = np.random.default_rng(4096)
    top = np.arange(4096)
    steps = np.arange(-3, 4)
    fits = np.ones((2, 4096, steps.size), dtype=bool)

    def probe(parity: int, buckets: np.ndarray, low: np.ndarray) -> None:
        x = (((127 + parity) << 23) | (buckets << 11) | low).astype(np.uint32).view(np.float32)
        got = tf.math.rsqrt(tf.constant(x)).numpy()
        near = lowp_tf_elem.rsqrt_rounded(parity)[buckets]
        for j, d in enumerate(steps):
            est = ((near + d) << 11).astype(np.uint32).view(np.float32)
            fits[parity, buckets, j] &= lowp_tf_elem.newton(x, est) == got

    for parity in (0, 1):
        for low in [0, 2047, *rng.integers(0, 2048, 30)]:
            probe(parity, top, np.full(4096, low))
        # the buckets left undecided: every x in them (8 at a time, so that all go through packets)
        left = top[fits[parity].sum(axis=1) > 1]
        if left.size:
            probe(parity, np.repeat(left, 2048), np.tile(np.arange(2048), left.size))
    assert (fits.sum(axis=2) >= 1).all(), "no estimate reproduces TensorFlow's rsqrt in some bucket"
    # (estimates whose Newton steps agree at every x of the bucket are the same to TensorFlow: the nearest is kept)
    fits &= np.abs(steps) == np.where(fits, np.abs(steps), 9).min(axis=2, keepdims=True)
    return steps[fits.argmax(axis=2)]


if __name__ == "__main__":
    main()
