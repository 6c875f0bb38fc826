"""Record optax's ctc_loss and ntxent on a processor with AVX2 only, for tests/golden/avx2_xla_seq.json
(read by tests/test_avx2_xla_seq.py):
- ctc from logits under jit and op by op: batches of the shapes whose backward loop LLVM vectorizes across the
  sequences 4 at a time with AVX2 (lossgrad.lowp_xla_ctc.AVX2_FOUR, AVX2_KEPT_APART), their neighbours that go 8 at
  a time or not at all, rows of 3 classes (log_softmax's backward contracts the last class's product with AVX2), and
  random batches of 1 to 64 sequences of 1 to 10 label columns;
- ntxent op by op: 2 to 16 pairs (N = 4 to 32 rows, whose jnp.sum of the N × N matrix LLVM splits into AVX2's lanes)
  of 1 to 30 features;
- ntxent under jit: in float32 the shapes whose gradient's final loops LLVM vectorizes 4 rows at a time
  (lowp_xla_ntxent_jit.AVX2_FOUR, AVX2_SCALE_FUSED) and their neighbours, and in float32 and float16 sums over 16 to
  32 partner rows with every count of lanes, accumulators and blocks (AVX2_LANES, AVX2_ONE_ACCUMULATOR,
  AVX2_TWO_OVER_PARTNERS), then random batches of 2 to 40 pairs of 1 to 39 features in the three dtypes;
- ctc's labels' dot ("ctc-dot"): the shapes whose YNNPACK kernel adds the label columns in 2 lanes (lossgrad.ynn_dot)
  and those beside them, labels of two classes, and random batches of 50 to 250 frames; and batches from 4,096
  rows of frames, whose backward is YNNPACK's fusion (CTC_FRAMES).
Each record keeps its inputs by seed (ctc_inputs, ntxent_inputs), the value as float.hex, the losses and gradients
by SHA-256. The versions and the processor's flags are recorded; run it on an AVX2 processor without AVX-512.

    python3 scripts/golden_avx2_xla_seq.py
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "avx2_xla_seq.json"
# (sequences, label columns): 4 at a time with each count of states kept apart, and the eights on each side of
# AVX2_FOUR's ranges; a batch of 4 and of 8; rows of 3 classes (one label column)
CTC_SHAPES = ((4, 3), (4, 4), (4, 5), (4, 6), (4, 7), (4, 8), (8, 7), (8, 8), (12, 4), (16, 4), (20, 3), (21, 4),
              (22, 5), (23, 6), (28, 6), (31, 6), (36, 5), (39, 3), (44, 3), (44, 4), (44, 5), (45, 6), (52, 6),
              (55, 4), (60, 6), (68, 3), (5, 1), (17, 1), (40, 1))
RANDOM_CTC = 24
NTXENT_PAIRS = tuple(range(2, 17))
# (pairs, features) under jit: the final loops 4 rows at a time, and beside them; the sums over 16 to 32 partner rows
NTXENT_BLOCKS = ((4, 3), (4, 4), (4, 5), (4, 6), (4, 7), (4, 8), (4, 2), (4, 9), (8, 5), (12, 4), (20, 3), (21, 4),
                 (22, 5), (23, 7), (20, 8), (28, 6), (31, 3), (36, 4), (39, 6), (36, 3), (37, 5), (44, 4), (46, 6))
NTXENT_PARTNERS = ((8, 1), (8, 5), (8, 12), (9, 1), (9, 4), (9, 11), (10, 1), (10, 2), (10, 5), (10, 7), (10, 9),
                   (10, 10), (11, 1), (11, 3), (11, 8), (12, 1), (12, 6), (13, 2), (13, 6), (14, 1), (14, 2), (14, 4),
                   (15, 1), (15, 3), (16, 1), (16, 3))
NTXENT_HALF = ((10, 1), (10, 5), (10, 10), (10, 17), (11, 1), (11, 6), (14, 2), (14, 3), (14, 9), (15, 4), (15, 21),
               (16, 25), (9, 9), (12, 7))
RANDOM_NTXENT = 8
TEMPERATURES = (0.07, 0.5, 1.0)
# ctc's labels' dot, [B, T, K] × [B, K, C] (sequences, frames, classes, label columns): YNNPACK's 2-lane kernel
# (17 to 24 classes from 61 frames, 2 or more label columns but 3) and the shapes beside it that go in order
CTC_DOT = ((3, 64, 20, 4), (3, 60, 20, 4), (3, 61, 20, 4), (3, 64, 20, 3), (3, 64, 16, 4), (3, 64, 17, 4),
           (3, 64, 24, 5), (3, 64, 25, 4), (2, 200, 20, 7), (2, 130, 17, 9), (4, 70, 18, 6), (2, 64, 8, 6))
RANDOM_CTC_DOT = 8
# float32 from 4,096 rows of frames (B·T), where XLA fuses the labels' dot and log_softmax's backward into YNNPACK's
# product and sum, and a batch of 4,095 beside them
CTC_FRAMES = ((410, 10, 7, 2), (409, 10, 7, 2), (41, 100, 3, 2), (52, 80, 12, 3))


def ctc_inputs(seed: int, b: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Logits [b, T, C] (float32), labels [b, n], input and target lengths: 6 to 16 frames, 3 classes for one label
    column, else n + 3 to n + 7, labels that may repeat."""
    from golden_lowp_xla_ctc import _rounded

    rng = np.random.default_rng(seed)
    t = int(rng.integers(6, 17))
    c = 3 if n == 1 else int(rng.integers(n + 3, n + 8))
    x = _rounded(rng.standard_normal((b, t, c)) * rng.choice([1.0, 4.0]), "float32")
    return x, rng.integers(1, c, (b, n)), rng.integers(t // 2, t + 1, b), rng.integers(0, n + 1, b)


def ntxent_inputs(seed: int, b: int, d: int, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """Anchors and positives [b, d] (in the dtype) at scales 0.01 to 30, the positives near the anchors or their
    opposites."""
    from golden_lowp_xla_ntxent import _rounded

    rng = np.random.default_rng(seed)
    a = _rounded(rng.standard_normal((b, d)) * rng.choice([0.01, 1.0, 30.0]), dtype)
    p = _rounded(a * rng.choice([1.0, -1.0]) + rng.standard_normal((b, d)) * rng.choice([1e-3, 1.0]), dtype)
    return a, p


def ctc_dot_inputs(seed: int, b: int, t: int, c: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                      np.ndarray]:
    """Logits [b, t, c] (float32) and labels [b, n] from the classes 1 and 2 (repeated, so that a class's shares of
    several label columns meet in the dot), input lengths from t/2 to t and target lengths."""
    from golden_lowp_xla_ctc import _rounded

    rng = np.random.default_rng(seed)
    x = _rounded(rng.standard_normal((b, t, c)) * rng.choice([1.0, 4.0]), "float32")
    return x, rng.integers(1, 3, (b, n)), rng.integers(t // 2, t + 1, b), rng.integers(0, n + 1, b)


def _kept(rec: dict, keys: tuple[str, ...]) -> dict:
    from golden_pairs64 import digest

    out = {k: None if rec[k] is None else digest(np.array(rec[k], dtype=np.float32)) for k in keys}
    return out | {"value": None if rec["value"] is None else float(np.float32(rec["value"])).hex()}


def ctc_record(seed: int, b: int, n: int, jit: bool, reduction: str) -> dict:
    import golden_lowp_xla_ctc as g

    x, labels, il, tl = ctc_inputs(seed, b, n)
    rec = g.record("avx2", x, labels, il, tl, 0, "float32", jit, reduction)
    return {"loss": "ctc", "seed": seed, "shape": [b, n], "jit": jit, "reduction": reduction,
            **_kept(rec, ("losses", "grad"))}


def ctc_dot_record(seed: int, b: int, t: int, c: int, n: int, jit: bool, reduction: str) -> dict:
    import golden_lowp_xla_ctc as g

    rec = g.record("avx2", *ctc_dot_inputs(seed, b, t, c, n), 0, "float32", jit, reduction)
    return {"loss": "ctc-dot", "seed": seed, "shape": [b, t, c, n], "jit": jit, "reduction": reduction,
            **_kept(rec, ("losses", "grad"))}


def ntxent_record(seed: int, b: int, d: int, tau: float, jit: bool = False, dtype: str = "float32") -> dict:
    import golden_lowp_xla_ntxent as g

    a, p = ntxent_inputs(seed, b, d, dtype)
    rec = g.record(a, p, tau, dtype, jit)
    return {"loss": "contrastive", "seed": seed, "shape": [b, d], "jit": jit, "temperature": tau, "dtype": dtype,
            **_kept(rec, ("losses", "grad", "grad_target"))}


def records(seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for b, n in CTC_SHAPES:
        out.append(ctc_record(int(rng.integers(2**31)), b, n, True, "mean"))
        out.append(ctc_record(int(rng.integers(2**31)), b, n, False, ("none", "sum")[len(out) % 4 == 1]))
    for i in range(RANDOM_CTC):
        b, n = int(rng.integers(1, 65)), int(rng.integers(1, 11))
        out.append(ctc_record(int(rng.integers(2**31)), b, n, i % 2 == 0, ("mean", "sum", "none")[i % 3]))
    for b in NTXENT_PAIRS:
        for d in (int(rng.integers(1, 8)), int(rng.integers(8, 31))):
            out.append(ntxent_record(int(rng.integers(2**31)), b, d, float(rng.choice(TEMPERATURES))))
    return out + ntxent_jit_records(rng) + ctc_dot_records(rng) + [
        ctc_dot_record(int(rng.integers(2**31)), *shape, jit, ("sum", "mean")[jit])
        for shape in CTC_FRAMES for jit in (True, False)]


def ctc_dot_records(rng: np.random.Generator) -> list[dict]:
    """ctc's labels' dot (drawn after the rest): CTC_DOT in both modes, then random batches of up to 250 frames."""
    shapes = [(*shape, jit) for shape in CTC_DOT for jit in (True, False)]
    shapes += [(int(rng.integers(1, 6)), int(rng.integers(50, 251)), int(rng.integers(12, 30)),
                int(rng.integers(2, 11)), i % 2 == 0) for i in range(RANDOM_CTC_DOT)]
    return [ctc_dot_record(int(rng.integers(2**31)), b, t, c, n, jit, ("mean", "sum", "none")[i % 3])
            for i, (b, t, c, n, jit) in enumerate(shapes)]


def ntxent_jit_records(rng: np.random.Generator) -> list[dict]:
    """ntxent under jit (drawn after the rest, whose draws stay as they were)."""
    shapes = [(*shape, "float32") for shape in NTXENT_BLOCKS + NTXENT_PARTNERS]
    shapes += [(*shape, "float16") for shape in NTXENT_HALF]
    shapes += [(int(rng.integers(2, 41)), int(rng.integers(1, 40)), dtype)
               for dtype in ("float32", "float16", "bfloat16") for _ in range(RANDOM_NTXENT)]
    return [ntxent_record(int(rng.integers(2**31)), b, d, float(rng.choice(TEMPERATURES)), True, dtype)
            for b, d, dtype in shapes]


def write_avx2(out: Path, records_of: Callable[[int], list[dict]], seed: int, made_by: str) -> None:
    """Write the records JAX gives on this processor, which must have AVX2 and not AVX-512, with the versions."""
    import jax

    from make_golden import jax_versions

    meta = jax_versions()
    if "avx512f" in meta["cpu_flags"]:
        sys.exit("run it on a processor with AVX2 only: this one has AVX-512")
    with jax.enable_x64(False):
        recs = records_of(seed)
    data = {"versions": meta, "made_by": made_by, "records": recs}
    out.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"{out}: {len(recs)} records, {out.stat().st_size} bytes")


def main() -> None:
    write_avx2(OUT, records, 20261206, "scripts/golden_avx2_xla_seq.py")


if __name__ == "__main__":
    main()
