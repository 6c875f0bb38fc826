"""The frameworks' float32 gradients at the edge of their flush to zero (lossgrad.flush): XLA (optax, op by op and
under jit) and TensorFlow (Keras 3, tf-keras) round a product to 24 bits before they flush it, so an exact product in
[tiny − 2⁻¹⁵⁰, tiny − 2⁻¹⁵¹) is 0 where numpy's rounding gives tiny (2⁻¹²⁶).

Each case is a batch of n predictions [x, 1, 2, …, n − 1] against targets 0, mean reduction: the first gradient is
x times a constant (2/n for mse, 1/n for Keras' huber, in the framework's own order of products), and x is the
largest float32 whose gradient the framework flushes, found by bisection over the bit patterns. That x and its two
neighbours on either side are recorded, with the value, the losses and the gradient, as the frameworks print them.
Some edges are in the band (numpy's product is tiny, the framework's 0), the others just below it (both flush).
The same for the reduced value: `mse` of [x, 0, …, 0] is x²·(1/n) (optax) or x²/n (TensorFlow), at the largest x
whose value the framework flushes. And optax's sigmoid_focal_loss under jit, whose gradient's multiply-adds take a
product of a tiny power (1 − p)^γ: the batch of logits [−7, 1, 2] against [0.25, 0.75, 0.5], γ from 61.8 to 62.3,
summed.

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


VALUE_SIZES = (8, 41, 44, 47, 57)
FOCAL = (np.array([[0.25], [0.75], [0.5]], dtype=F32), np.array([[-7.0], [1.0], [2.0]], dtype=F32))
GAMMAS = (61.8, 62.0, 62.1, 62.2, 62.3)


def batch(x: np.float32, n: int, value: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """n predictions [x, 1, 2, …] (the gradient's edge), or [x, 0, 0, …] (`value`: the value's), targets 0."""
    return np.zeros((n, 1), F32), np.array([[x]] + [[0 if value else k] for k in range(1, n)], dtype=F32)


def run(conv: str, jit: bool, loss: str, options: dict, x: np.float32, n: int, value: bool = False) -> dict:
    """The framework's value, losses and gradient (float32 arrays) for batch(x, n), as the golden scripts get them."""
    y, p = batch(x, n, value)
    return framework(conv, jit, loss, options, y, p, "mean")


def framework(conv: str, jit: bool, loss: str, options: dict, y: np.ndarray, p: np.ndarray, reduction: str) -> dict:
    if conv == "optax":
        import golden_lowp_xla as gx
        import golden_lowp_xla_more as gm

        rec = (gx._record(loss, "float32", jit, reduction, y, p) if loss == "mse"
               else gm.record(loss, options, "float32", jit, reduction, y, p))
        value, grad, losses = rec["value"], rec["grad"], rec["losses"]
    else:
        import golden_lowp_tf as gt
        import golden_lowp_tf_elem as ge

        rec = gt.record(conv, loss, y, p) if loss == "mse" else ge.record(conv, loss, y, p, delta=options.get("delta"))
        value, grad, losses = rec[reduction]["value"], rec[reduction]["grad"], rec["losses"]
    return {"value": F32(value), "grad": np.array(grad, dtype=F32).reshape(-1),
            "losses": np.array(losses, dtype=F32).reshape(-1)}


def edge(conv: str, jit: bool, loss: str, options: dict, n: int, value: bool = False) -> np.float32:
    """The largest x in [tiny, 64·tiny] whose first gradient the framework flushes to 0 (`value`: the largest in
    [2⁻⁶⁴, 2⁻⁵⁶] whose value it flushes)."""
    lo, hi = (int(F32(v).view(np.uint32)) for v in ((2.0**-64, 2.0**-56) if value else (TINY, 64 * TINY)))

    def flushed(bits: int) -> bool:
        got = run(conv, jit, loss, options, np.uint32(bits).view(F32), n, value)
        return bool((got["value"] if value else got["grad"][0]) == 0)

    assert flushed(lo) and not flushed(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if flushed(mid) else (lo, mid)
    return np.uint32(lo).view(F32)


def hexes(a: np.ndarray) -> list[str]:
    return [float(v).hex() for v in np.asarray(a, dtype=F32).reshape(-1)]


def records() -> list[dict]:
    out = []
    for (conv, jit, loss, options), n, value in [(c, n, False) for c, n in itertools.product(CASES, SIZES)] + [
            (c, n, True) for c, n in itertools.product(CASES[:4], VALUE_SIZES)]:
        x = edge(conv, jit, loss, options, n, value)
        for step in (-2, -1, 0, 1, 2):
            at = np.uint32(int(x.view(np.uint32)) + step).view(F32)
            got = run(conv, jit, loss, options, at, n, value)
            y, p = batch(at, n, value)
            out.append(_record(conv, jit, loss, options, "mean", y, p, got) | {"edge": step == 0, "of": (
                "value" if value else "grad")})
        print(conv, "jit" if jit else "ops", loss, n, "value" if value else "grad", float(x).hex(), file=sys.stderr)
    for gamma in GAMMAS:
        options = {"gamma": gamma, "alpha": None}
        got = framework("optax", True, "focal", options, *FOCAL, "sum")
        out.append(_record("optax", True, "focal", options, "sum", *FOCAL, got) | {"edge": False, "of": "grad"})
    return out


def _record(conv: str, jit: bool, loss: str, options: dict, reduction: str, y: np.ndarray, p: np.ndarray,
            got: dict) -> dict:
    return {"convention": conv, "jit": jit, "loss": loss, "options": options, "reduction": reduction,
            "target": hexes(y), "pred": hexes(p), "value": float(got["value"]).hex(), "losses": hexes(got["losses"]),
            "grad": hexes(got["grad"])}


def main() -> None:
    from make_golden import cpu_model, jax_versions

    data = {"versions": jax_versions() | {"cpu": cpu_model()}, "made_by": "scripts/golden_ftz_band.py",
            "records": records()}
    OUT.write_text(json.dumps(data, indent=0) + "\n")
    print(f"{OUT}: {len(data['records'])} records")


if __name__ == "__main__":
    main()
