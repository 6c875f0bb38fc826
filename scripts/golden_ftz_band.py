"""The frameworks' float32 gradients at the edge of their flush to zero (lossgrad.flush): XLA (optax, op by op and
under jit) and TensorFlow (Keras 3, tf-keras) round a product to 24 bits before they flush it, so an exact product in
[tiny − 2⁻¹⁵⁰, tiny − 2⁻¹⁵¹) is 0 where numpy's rounding gives tiny (2⁻¹²⁶).

Each case is a batch of n predictions [x, 1, 2, …, n − 1] against targets 0, mean reduction: the first gradient is
x times a constant (2/n for mse, 1/n for Keras' huber, in the framework's own order of products), and x is the
largest float32 whose gradient the framework flushes, found by bisection over the bit patterns. That x and its two
neighbours on either side are recorded, with the value, the losses and the gradient, as the frameworks print them.
Some edges are in the band (numpy's product is tiny, the framework's 0), the others just below it (both flush).

    python3 scripts/golden_ftz_band.py      # writes tests/golden/ftz_band.json
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "ftz_band.json"
F32 = np.float32
TINY = np.finfo(F32).tiny
# (optax's huber and log-cosh take no gradient linear in a tiny difference: their forms cancel it to 0)
CASES = (("optax", False, "mse", {}), ("optax", True, "mse", {}), ("keras", False, "mse", {}),
         ("tf-keras", False, "mse", {}), ("keras", False, "huber", {"delta": 1.0}),
         ("tf-keras", False, "huber", {"delta": 1.0}))
SIZES = (3, 5, 7, 11, 13)


def batch(x: np.float32, n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, 1), F32), np.array([[x]] + [[k] for k in range(1, n)], dtype=F32)


def run(conv: str, jit: bool, loss: str, options: dict, x: np.float32, n: int) -> dict:
    """The framework's value, losses and gradient (float32 arrays) for batch(x, n), as the golden scripts get them."""
    y, p = batch(x, n)
    if conv == "optax":
        import golden_lowp_xla as gx
        import golden_lowp_xla_more as gm

        rec = (gx._record(loss, "float32", jit, "mean", y, p) if loss == "mse"
               else gm.record(loss, options, "float32", jit, "mean", y, p))
        value, grad, losses = rec["value"], rec["grad"], rec["losses"]
    else:
        import golden_lowp_tf as gt
        import golden_lowp_tf_elem as ge

        rec = gt.record(conv, loss, y, p) if loss == "mse" else ge.record(conv, loss, y, p, delta=options.get("delta"))
        value, grad, losses = rec["mean"]["value"], rec["mean"]["grad"], rec["losses"]
    return {"value": F32(value), "grad": np.array(grad, dtype=F32).reshape(-1),
            "losses": np.array(losses, dtype=F32).reshape(-1)}


def edge(conv: str, jit: bool, loss: str, options: dict, n: int) -> np.float32:
    """The largest x in [tiny, 64·tiny] whose first gradient the framework flushes to 0."""
    lo, hi = int(F32(TINY).view(np.uint32)), int(F32(64 * TINY).view(np.uint32))

    def flushed(bits: int) -> bool:
        return bool(run(conv, jit, loss, options, np.uint32(bits).view(F32), n)["grad"][0] == 0)

    assert flushed(lo) and not flushed(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if flushed(mid) else (lo, mid)
    return np.uint32(lo).view(F32)


def hexes(a: np.ndarray) -> list[str]:
    return [float(v).hex() for v in np.asarray(a, dtype=F32).reshape(-1)]


def records() -> list[dict]:
    out = []
    for (conv, jit, loss, options), n in itertools.product(CASES, SIZES):
        x = edge(conv, jit, loss, options, n)
        for step in (-2, -1, 0, 1, 2):
            at = np.uint32(int(x.view(np.uint32)) + step).view(F32)
            got = run(conv, jit, loss, options, at, n)
            out.append({"convention": conv, "jit": jit, "loss": loss, "options": options, "n": n,
                        "x": float(at).hex(), "edge": step == 0, "value": float(got["value"]).hex(),
                        "losses": hexes(got["losses"]), "grad": hexes(got["grad"])})
        print(conv, "jit" if jit else "ops", loss, n, float(x).hex(), file=sys.stderr)
    return out


def main() -> None:
    from make_golden import cpu_model, jax_versions

    data = {"versions": jax_versions() | {"cpu": cpu_model()}, "made_by": "scripts/golden_ftz_band.py",
            "records": records()}
    OUT.write_text(json.dumps(data, indent=0) + "\n")
    print(f"{OUT}: {len(data['records'])} records")


if __name__ == "__main__":
    main()
