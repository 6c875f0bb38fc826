"""Record optax's losses with fused row sums under jax.jit in float32 on a processor with AVX2 only, for
tests/golden/avx2_xla_fused.json (read by tests/test_avx2_xla_fused.py): kl_divergence and
kl_divergence_with_log_targets, triplet_margin_loss, cosine_distance and softmax_cross_entropy on probability rows,
whose row loops LLVM's loop vectorizer splits into other lanes, and contracts otherwise, than with AVX-512
(lossgrad.lowp_xla_kl's AVX2 tables, lowp_xla_rows.AVX2_PAIRED and AVX2_UNPAIRED, lowp_xla_cos.AVX2_SUM_COLUMNS,
lowp_xla.ce_value_lanes and the 3-class gradient).

It keeps:
- "lanes": the vector lanes of kl's and ce's fused product sums for each [n, k] block up to 32 × 32, read from
  XLA's dump of their LLVM IR ("value": the whole array's sum, "rows": each row's loss): the widest `<W x float>`
  in the kernel, W/k lanes where W interleaves k classes (W a multiple of k, at least 2k), else W;
- "records": kl's four forms (log-probabilities or probabilities, log targets or not), triplet (margin 1, the
  gradients of the anchors, positives and negatives), cosine and ce's probability rows (under jit, and op by op:
  "ce-ops"), each with jnp.sum, jnp.mean and the losses alone, as scripts/golden_lowp_xla.py and
  golden_lowp_xla_more.py record them: the inputs by seed (inputs()), the value as float.hex, the losses and
  gradients by SHA-256. The shapes are random up to 40 × 40, and for each loss the row lengths whose lanes store
  their products or squares, or contract them otherwise, at every lane count (none, 2, 4 and 8 rows, 4 and 8 with
  rows over).
The versions and the processor's flags are recorded; run it on an AVX2 processor without AVX-512.

    python3 scripts/golden_avx2_xla_fused.py [--lanes-from AVX2_XLA_FUSED.json]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import golden_lowp_xla as gx  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "avx2_xla_fused.json"
FORMS = ("kl", "kl-log-input", "kl-log-target", "kl-log-both")
LOSSES = (*FORMS, "triplet", "cosine", "ce", "ce-ops")  # (ce-ops: probability rows op by op)
LANES = (2, 3, 4, 8, 9, 16, 20, 23, 29, 32)  # (rows: no lanes, 2, 4 and 8, and 4 or 8 with rows over)
# kl: rows of 6 and 8 classes at each lane count, and the 2-lane blocks; triplet: the lengths whose squares are
# stored (paired under jnp.mean, unpaired under jnp.sum) and one that contracts them, and more pairs of rows of 6 (an
# unpaired pair adds its squares in order, which shows in a gradient now and then); cosine: the lengths whose sum's
# gradient contracts its other product in the first columns, and one beyond; ce (probability rows): 3 classes (the
# last class's gradient), 6 and 8 (kl's stored lengths) and rows beyond AVX-512's value lanes
STORED = {"kl": tuple((n, k) for k in (6, 8) for n in LANES) + ((18, 7), (22, 5), (31, 7)),
          "triplet": tuple((n, k) for k in (3, 6, 7, 8) for n in LANES) + ((2, 6),) * 6,
          "cosine": tuple((n, k) for k in (3, 5, 7, 8, 9) for n in LANES),
          "ce": tuple((n, k) for k in (3, 6, 8, 27, 32) for n in LANES)}


def inputs(seed: int, shape: tuple[int, int], loss: str) -> dict[str, np.ndarray]:
    """A record's float32 inputs. kl: targets y and predictions p, rows of probabilities (log-probabilities for the
    log forms), the first class's target 0 (a log target's −20.7, e^y's 10⁻⁹); triplet: anchors p, positives y and
    negatives at scales 0.1 to 10; cosine: targets y and predictions p nearly parallel or not."""
    rng = np.random.default_rng(seed)
    if loss == "triplet":
        a = rng.standard_normal(shape) * rng.choice([0.1, 1.0, 10.0], (shape[0], 1))
        pos, neg = (a + rng.standard_normal(shape) * rng.choice([1e-3, 0.5, 2.0], (shape[0], 1)) for _ in range(2))
        return {"y": pos.astype(np.float32), "p": a.astype(np.float32), "negative": neg.astype(np.float32)}
    if loss in ("ce", "ce-ops"):
        z = rng.standard_normal(shape) * rng.choice([0.1, 1.0, 5.0, 20.0], (shape[0], 1))
        soft = rng.random(shape) ** rng.choice([1.0, 8.0])
        soft[: shape[0] // 2] = np.eye(shape[1])[rng.integers(0, shape[1], shape[0] // 2)]
        return {"y": (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32), "p": z.astype(np.float32)}
    if loss == "cosine":
        y = rng.standard_normal(shape)
        p = y * rng.choice([1.0, -1.0, 0.5], (shape[0], 1)) + rng.standard_normal(shape) * rng.choice(
            [1e-3, 0.3, 3.0], (shape[0], 1))
        return {"y": y.astype(np.float32), "p": p.astype(np.float32)}
    q, t = rng.random(shape), rng.random(shape)
    q /= q.sum(axis=1, keepdims=True)
    t /= t.sum(axis=1, keepdims=True)
    if shape[1] > 1:
        t[:, 0] = 0.0
    pred = np.log(q) if loss in ("kl-log-input", "kl-log-both") else q
    target = np.log(np.where(t == 0, 1e-9, t)) if loss in ("kl-log-target", "kl-log-both") else t
    return {"y": target.astype(np.float32), "p": pred.astype(np.float32)}


def compile_blocks(loss: str) -> None:
    """Compile kl's or ce's (probability rows) training step (jnp.sum) for each [n, k] block up to 32 × 32 (under
    XLA_FLAGS=--xla_dump_to)."""
    for n in range(1, 33):
        for k in range(1 if loss == "kl" else 2, 33):
            x = inputs(n * 100 + k, (n, k), loss)
            gx._record(loss, "float32", True, "sum", x["y"], x["p"], None if loss == "kl" else "onehot")


def lanes(loss: str) -> dict[str, dict[str, int]]:
    """The lanes of each block's value and rows kernels (the fused product sums: kl's multiply_reduce_fusion, ce's
    reduce_negate_fusion), from XLA's LLVM IR (the module's docstring)."""
    found: dict[str, dict[str, int]] = {"value": {}, "rows": {}}
    with tempfile.TemporaryDirectory() as dump:
        subprocess.run([sys.executable, __file__, "--compile", loss], check=True,
                       env={**os.environ, "XLA_FLAGS": f"--xla_dump_to={dump}"})
        for hlo in Path(dump).glob("module_*.cpu_after_optimizations.txt"):
            text = hlo.read_text()
            shape = re.search(r"entry_computation_layout=\{\(f32\[(\d+),(\d+)\]", text)
            if not shape:
                continue
            n, k = int(shape[1]), int(shape[2])
            for fusion in re.finditer(r"%((?:multiply_reduce|reduce_negate)_fusion\S*) = f32\[(\d*)\]\S* fusion\(",
                                      text):
                ir = hlo.parent / hlo.name.replace("cpu_after_optimizations.txt",
                                                   f"{fusion[1]}_kernel_module.ir-with-opt.ll")
                if ir.exists():
                    w = max((int(v) for v in re.findall(r"<(\d+) x float>", ir.read_text())), default=0)
                    kind = "value" if fusion[2] == "" else "rows"
                    found[kind][f"{n},{k}"] = w // k if w % k == 0 and w >= 2 * k else w
    return found


def record(seed: int, shape: tuple[int, int], loss: str, reduction: str) -> dict:
    """JAX's results, the inputs by seed, the value as float.hex and the losses and gradients by SHA-256
    (golden_pairs64.digest of their float32 values)."""
    import golden_lowp_xla_more as gm
    from golden_pairs64 import digest

    x = inputs(seed, shape, loss)
    if loss in ("ce", "ce-ops"):  # (probability rows, under jit and op by op)
        rec = gx._record("ce", "float32", loss == "ce", reduction, x["y"], x["p"], "onehot")
    elif loss in FORMS:
        rec = gx._record(loss, "float32", True, reduction, x["y"], x["p"])
    else:
        options = {"margin": 1.0} if loss == "triplet" else {}
        rec = gm.record(loss, options, "float32", True, reduction, x["y"], x["p"], negative=x.get("negative"))

    def hashed(v: list) -> str:
        return digest(np.array(v, dtype=np.float32).astype(np.float64))
    return {"loss": loss, "shape": list(shape), "reduction": reduction, "seed": seed,
            "value": None if rec["value"] is None else float(np.float32(rec["value"])).hex(),
            "losses": hashed(rec["losses"]), "grad": hashed(rec["grad"]),
            "grads": {k: hashed(g) for k, g in rec.get("grads", {}).items()}}


def records(seed: int) -> list[dict]:
    """Each loss's STORED shapes (kl's in two forms, triplet's with jnp.mean and jnp.sum, cosine's with jnp.sum),
    then 60 random shapes for kl and 40 for each other loss, the forms and reductions in turn."""
    rng = np.random.default_rng(seed)
    out = []
    for loss, kinds in (("kl", [("kl", "sum"), ("kl-log-both", "mean")]),
                        ("triplet", [("triplet", "mean"), ("triplet", "sum")]), ("cosine", [("cosine", "sum")])):
        out += [record(seed + len(out), shape, form, red) for shape in STORED[loss] for form, red in kinds]
    for loss, count in (("kl", 60), ("triplet", 40), ("cosine", 40)):
        for i in range(count):
            shape = (int(rng.integers(1, 41)), int(rng.integers(1, 41)))
            form = FORMS[i % 4] if loss == "kl" else loss
            out.append(record(seed + len(out), shape, form, ("sum", "mean", "none")[i % 3]))
    out += [record(seed + len(out), shape, form, red) for shape in STORED["ce"]
            for form, red in (("ce", "sum"), ("ce-ops", "mean"))]
    for i in range(60):
        shape = (int(rng.integers(1, 41)), int(rng.integers(2, 41)))
        out.append(record(seed + len(out), shape, ("ce", "ce-ops")[i % 2], ("sum", "mean", "none")[i % 3]))
    return out


def main() -> None:
    if "--compile" in sys.argv:
        compile_blocks(sys.argv[-1])
        return
    from make_golden import jax_versions

    meta = jax_versions()
    if "avx512f" in meta["cpu_flags"]:
        sys.exit("run it on a processor with AVX2 only: this one has AVX-512")
    # (--lanes-from: the lanes of an earlier run, which take minutes to measure for each loss)
    earlier = json.loads(Path(sys.argv[-1]).read_text())["lanes"] if "--lanes-from" in sys.argv else {}
    found = {loss: earlier[loss] if loss in earlier else lanes(loss) for loss in ("kl", "ce")}
    data = {"versions": meta, "made_by": "scripts/golden_avx2_xla_fused.py", "lanes": found,
            "records": records(20261206)}
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(data['records'])} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
