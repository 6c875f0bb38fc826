"""Record JAX's CPU results for more of optax's losses (huber_loss, hinge_loss, log_cosh, sigmoid_focal_loss,
cosine_distance, triplet_margin_loss) in float32, float16 and bfloat16 for tests/golden/lowp_xla_more.json (read by
tests/test_lowp_xla_more.py).

Each record is taken as scripts/golden_lowp_xla.py takes its own: a loss and its options, dtype, jit (jax.jit
around jax.value_and_grad, or each operation on its own), reduction (jnp.mean, jnp.sum; none: the per-example losses
and the gradient of their sum), inputs already representable in the dtype (the targets, and triplet's negatives,
closed over as the loss's constants), and JAX's per-example losses, reduced value and gradient (triplet: also with
respect to the positives and the negatives), as the shortest decimals that read back to the same float32.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_lowp_xla import DTYPES, _np_dtype, _rounded, _short  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_xla_more.json"
# each loss's options as recorded (lossgrad's names), the first the defaults
OPTIONS = {"huber": ({"delta": 1.0}, {"delta": 0.7}), "hinge": ({},), "logcosh": ({},),
           "focal": ({"gamma": 2.0, "alpha": None}, {"gamma": 2.0, "alpha": 0.25}, {"gamma": 1.5, "alpha": 0.3},
                     {"gamma": 0.0, "alpha": None})}


def per_example(loss: str, options: dict, y, extra: dict):
    """optax's per-example losses of the predictions, the targets (and extra inputs) fixed."""
    import optax

    losses = optax.losses
    if loss == "huber":
        return lambda z: losses.huber_loss(z, y, delta=options["delta"])
    if loss == "hinge":
        return lambda z: losses.hinge_loss(z, y)
    if loss == "logcosh":
        return lambda z: losses.log_cosh(z, y)
    if loss == "focal":
        return lambda z: losses.sigmoid_focal_loss(z, y, alpha=options["alpha"], gamma=options["gamma"])
    if loss == "cosine":
        return lambda z: losses.cosine_distance(z, y)
    raise ValueError(loss)


def record(loss: str, options: dict, dtype: str, jit: bool, reduction: str, y: np.ndarray, p: np.ndarray,
           name: str | None = None) -> dict:
    import jax
    import jax.numpy as jnp

    kind = _np_dtype(dtype)
    per = per_example(loss, options, jnp.asarray(y.astype(kind)), {})

    def reduced(z):
        out = per(z)
        return (jnp.mean(out) if reduction == "mean" else jnp.sum(out)), out
    both = jax.value_and_grad(reduced, has_aux=True)
    if jit:
        both = jax.jit(both)
    (value, losses), grad = both(jnp.asarray(p.astype(kind)))
    out = {"loss": loss, "options": options, "dtype": dtype, "jit": jit, "reduction": reduction,
           "target": _short(y), "pred": _short(p), "losses": _short(np.asarray(losses, dtype=np.float32)),
           "value": None if reduction == "none" else str(np.float32(value)),
           "grad": _short(np.asarray(grad, dtype=np.float32))}
    return out | ({"name": name} if name else {})


def _errors(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.standard_normal(n) * rng.choice([0.1, 1.0, 3.0, 50.0], n)
    return y, y + rng.standard_normal(n) * rng.choice([0.01, 0.5, 1.0, 2.0, 100.0], n)


def inputs(rng, loss: str, dtype: str, n: int) -> list[tuple[np.ndarray, np.ndarray, str | None]]:
    """Random inputs of n samples (one output each), and the loss's adversarial ones (its kinks, saturations)."""
    if loss in ("huber", "logcosh"):
        y, p = _errors(rng, n)
        ty = np.array([0.0, 1.0, 1.0, -2.0, 3.0, 0.0, 5.0, 1e4, -7.0, 0.25])
        tp = ty + np.array([0.0, 1.0, -1.0, 0.7, -0.7, 1e4, -90.0, -1e4, 1e-3, 2.0])
    elif loss == "hinge":
        y, p = rng.choice([-1.0, 1.0], n), rng.standard_normal(n) * rng.choice([0.5, 2.0, 100.0], n)
        ty, tp = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]), np.array([1.0, -1.0, 0.0, 0.0, -1.0, 1e4])
    else:  # focal: logits, hard and soft labels
        p = rng.standard_normal(n) * rng.choice([0.1, 1.0, 3.0, 10.0, 40.0], n)
        y = rng.random(n)
        y[: n // 2] = np.round(y[: n // 2])
        ty = np.array([1.0, 0.0, 1.0, 0.0, 0.5, 1.0, 0.0, 0.25])
        tp = np.array([0.0, 20.0, -20.0, 100.0, -100.0, 1e-3, -1e4, 17.0])
    return [(_rounded(y, dtype)[:, None], _rounded(p, dtype)[:, None], None),
            (_rounded(ty, dtype)[:, None], _rounded(tp, dtype)[:, None], "adversarial")]


def records(rng) -> list[dict]:
    out = []
    for loss, choices in OPTIONS.items():
        for options in choices:
            for dtype in DTYPES:
                for jit in (True, False):
                    for reduction in ("none", "sum", "mean"):
                        for y, p, name in inputs(rng, loss, dtype, 200 if reduction == "mean" else 60):
                            out.append(record(loss, options, dtype, jit, reduction, y, p, name))
    return out


def main() -> None:
    import jax
    import jaxlib

    from make_golden import versions

    recs = records(np.random.default_rng(20261203))
    flags = sorted({f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                    for f in line.split(":")[1].split() if f.startswith(("avx", "fma", "sse4"))})
    meta = versions() | {"jaxlib": jaxlib.__version__, "jax_devices": str(jax.devices()), "cpu_flags": flags}
    OUT.write_text(json.dumps({"versions": meta, "records": recs}) + "\n")
    print(f"{OUT}: {len(recs)} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
