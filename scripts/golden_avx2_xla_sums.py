"""Record JAX's float32 sums over [N, K] arrays on a processor with AVX2 only, for tests/golden/avx2_xla_sums.json
(read by tests/test_avx2_xla_sums.py): where LLVM's loop vectorizer splits the rows of XLA's reduce loop into other
lanes than with AVX-512 (lossgrad.lowp_xla.avx2_lanes).

It keeps:
- "lanes": the vector width of the reduction in each [n, k] block's compiled kernel up to 32 × 32, for jnp.sum and
  for squared_error's fused sum under jit, read from XLA's LLVM IR (golden_lowp_xla_sum2d.lanes);
- "sums": jax.jit(jnp.sum) and jnp.sum op by op of random float32 arrays of 2 to 64 rows of 2 to 40 columns, their
  magnitudes spread over 2⁻¹² to 2¹² so that every change of order shows (sum_input: rebuilt from a seed);
- "records": optax's mse, bce from logits, huber, hinge, logcosh, sigmoid focal and softmax cross-entropy with class
  indexes, mean and sum, op by op and under jit, on random batches of 2 to 64 rows of 2 to 32 columns, as
  scripts/golden_lowp_xla.py and golden_lowp_xla_more.py record them: the inputs by seed (inputs()), the value as
  float.hex, the losses and the gradient by SHA-256.
The versions and the processor's flags are recorded; run it on an AVX2 processor without AVX-512.

    python3 scripts/golden_avx2_xla_sums.py [--lanes-from LANES.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import golden_lowp_xla as gx  # noqa: E402
import golden_lowp_xla_more as gm  # noqa: E402
from golden_lowp_xla_sum2d import lanes  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "avx2_xla_sums.json"
ELEMENTWISE = (("huber", {"delta": 1.0}), ("hinge", {}), ("logcosh", {}), ("focal", {"alpha": 0.25, "gamma": 2.0}))


def sum_input(seed: int) -> np.ndarray:
    """A random float32 array of 2 to 64 rows of 2 to 40 columns, its magnitudes spread over 2⁻¹² to 2¹²."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(2, 65)), int(rng.integers(2, 41)))
    return (rng.standard_normal(shape) * np.exp2(rng.integers(-12, 13, shape))).astype(np.float32)


def inputs(seed: int, loss: str) -> tuple[np.ndarray, np.ndarray]:
    """A record's float32 targets (class indexes for ce, ±1 for hinge, 0 or 1 for focal) and predictions."""
    rng = np.random.default_rng(seed)
    rows, cols = int(rng.integers(2, 65)), int(rng.integers(2, 33))
    y, p = rng.random((rows, cols)), rng.normal(size=(rows, cols)) * 3
    y = {"mse": y * 4, "hinge": np.sign(y - 0.5), "focal": np.round(y),
         "ce": rng.integers(0, cols, (rows, 1)).astype(np.float64)}.get(loss, y)
    return y.astype(np.float32), p.astype(np.float32)


def sums(seed: int) -> list[dict]:
    import jax
    import jax.numpy as jnp

    out = []
    for s in range(seed, seed + 120):
        x = sum_input(s)
        out.append({"seed": s, "jit": float(jax.jit(jnp.sum)(x)).hex(), "ops": float(jnp.sum(jnp.asarray(x))).hex()})
    return out


def record(seed: int, loss: str, jit: bool, reduction: str) -> dict:
    """JAX's results as the golden scripts record them, the inputs by seed, the value as float.hex and the losses
    and gradient by SHA-256 (golden_pairs64.digest of their float32 values)."""
    from golden_pairs64 import digest

    y, p = inputs(seed, loss)
    options = dict(ELEMENTWISE).get(loss, {})
    if loss in ("mse", "bce", "ce"):
        rec = gx._record(loss, "float32", jit, reduction, y, p, "index" if loss == "ce" else None)
    else:
        rec = gm.record(loss, options, "float32", jit, reduction, y, p)

    def hashed(v: list) -> str:
        return digest(np.array(v, dtype=np.float32).astype(np.float64))
    return {"loss": loss, "options": options, "jit": jit, "reduction": reduction, "seed": seed,
            "value": float(np.float32(rec["value"])).hex(), "losses": hashed(rec["losses"]),
            "grad": hashed(rec["grad"])}


def records(seed: int) -> list[dict]:
    out = []
    for t in range(96):
        jit, reduction = bool(t % 2), ("mean", "sum")[t // 2 % 2]
        for loss in ("mse", "bce", "ce", ELEMENTWISE[t // 4 % len(ELEMENTWISE)][0]):
            out.append(record(seed + t, loss, jit, reduction))
    return out


def main() -> None:
    from make_golden import jax_versions

    meta = jax_versions()
    if "avx512f" in meta["cpu_flags"]:
        sys.exit("run it on a processor with AVX2 only: this one has AVX-512")
    if "--lanes-from" in sys.argv:  # (the lanes of an earlier run, which take minutes to measure)
        found = json.loads(Path(sys.argv[-1]).read_text())
    else:
        found = {what: {f"{n},{k}": w for (n, k), w in sorted(lanes(what).items())}
                 for what in ("sum", "squared_error")}
    data = {"versions": meta, "made_by": "scripts/golden_avx2_xla_sums.py", "lanes": found, "sums": sums(20261205),
            "records": records(20261305)}
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(data['records'])} records, {len(data['sums'])} sums, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
