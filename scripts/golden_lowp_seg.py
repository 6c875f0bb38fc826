"""Record MONAI's DiceLoss and TverskyLoss (lossgrad's torch convention for dice and tversky) on PyTorch's CPU
kernels in float32, float16 and bfloat16, for tests/golden/lowp_seg.json (read by tests/test_lowp_seg.py).

Each record: the loss, dtype, reduction, lossgrad's options (squared, smooth, alpha, beta, from_logits), inputs
already representable in the dtype, one channel of pixels per sample, and MONAI's losses (reduction none) or
reduced value with the gradient for the predictions (of the losses' sum for none), as the shortest strings that
read back to the same value of the dtype. Inputs: random masks (hard and soft) against probabilities or logits
at several scales, and adversarial rows (all zeros without smoothing: 0/0; a perfect prediction; probabilities of
10⁻⁶, whose products float16 holds as subnormals; saturated logits). Single samples of more than 32,768 pixels,
which PyTorch splits among its threads, are stored as the dtype's raw bytes in base64 ("packed"). The versions of
torch and MONAI, the instruction set and the threads are recorded.

    python3 scripts/golden_lowp_seg.py
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_losses_a import run_monai  # noqa: E402
from golden_lowp_more import DTYPES, REDUCTIONS, rounded, short  # noqa: E402
from make_golden import versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_seg.json"
SHAPES = ((8, 6), (5, 33), (2, 100), (17, 7), (2, 1), (1, 129))
OPTIONS = {"dice": ({}, {"squared": True}, {"smooth": 1.0}, {"squared": True, "smooth": 1e-3}),
           "tversky": ({}, {"alpha": 0.3, "beta": 0.7}, {"alpha": 0.7, "beta": 0.3, "smooth": 1.0},
                       {"alpha": 1.0, "beta": 0.1, "smooth": 0.0})}


def monai(loss: str, dtype: str, reduction: str, y: np.ndarray, p: np.ndarray, options: dict) -> tuple:
    """MONAI's losses, reduced value (None for none) and gradient, on inputs of the dtype."""
    return run_monai(loss, y, p, bool(options.get("from_logits")), reduction, dtype, bool(options.get("squared")),
                     options.get("alpha", 0.5), options.get("beta", 0.5), smooth=options.get("smooth", 1e-5))


def record(loss: str, dtype: str, reduction: str, y: np.ndarray, p: np.ndarray, options: dict, name: str) -> dict:
    per, value, grad = monai(loss, dtype, reduction, y, p, options)
    return {"loss": loss, "dtype": dtype, "reduction": reduction, "options": options, "name": name,
            "target": short(y, dtype), "pred": short(p, dtype),
            "losses": short(per, dtype) if reduction == "none" else None,
            "value": None if value is None else short(np.array(value), dtype), "grad": short(grad, dtype)}


def inputs(rng, dtype: str, shape: tuple[int, int], from_logits: bool, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Masks and predictions in the dtype: random, or a batch of adversarial rows."""
    y = (rng.random(shape) < rng.uniform(0.1, 0.8)).astype(float)
    if rng.random() < 0.4:
        y = np.round(rng.uniform(0, 1, shape), 3)  # (soft masks)
    if from_logits:
        p = rng.normal(scale=rng.choice([0.3, 3.0, 12.0]), size=shape)
    else:
        p = rng.uniform(0, 1, shape) * rng.choice([1.0, 1e-3])
    if name == "adversarial" and shape[0] >= 4:
        y[0], p[0] = 0.0, (-30.0 if from_logits else 0.0)  # (0/0 without smoothing)
        p[1] = (y[1] * 60 - 30) if from_logits else y[1]  # (a perfect prediction, or nearly)
        p[2] = rng.choice([-100.0, -16.0, 0.0, 16.0, 100.0], shape[1]) if from_logits else 1e-6
        y[3] = 1.0
    return rounded(y, dtype), rounded(p, dtype)


def small_records(rng) -> list[dict]:
    out = []
    for dtype in DTYPES:
        for loss, choices in OPTIONS.items():
            for k, shape in enumerate(SHAPES):
                for from_logits in (False, True):
                    name = "adversarial" if shape == (8, 6) else "random"
                    y, p = inputs(rng, dtype, shape, from_logits, name)
                    for options in (choices[(k + from_logits) % 4], choices[(k + from_logits + 2) % 4]):
                        options = options | ({"from_logits": True} if from_logits else {})
                        for reduction in REDUCTIONS:
                            out.append(record(loss, dtype, reduction, y, p, options, name))
    return out


def packed(a: np.ndarray, dtype: str) -> dict:
    """An array as the dtype's raw little-endian bytes in base64."""
    raw = torch.tensor(np.asarray(a, dtype=np.float64)).to(DTYPES[dtype]).contiguous()
    bits = raw.view(torch.int32 if dtype == "float32" else torch.int16).numpy().astype("<i4" if dtype == "float32"
                                                                                        else "<i2")
    return {"packed": base64.b64encode(bits.tobytes()).decode(), "shape": list(a.shape)}


def large_records(rng) -> list[dict]:
    """One sample of more than 32,768 pixels (torch.sum's two passes, float16's split vector_norm, σ(z) in chunks)."""
    out = []
    for dtype, loss, options in (("float32", "dice", {"from_logits": True}),
                                 ("float16", "dice", {"squared": True}),
                                 ("bfloat16", "tversky", {"alpha": 0.3, "beta": 0.7, "from_logits": True})):
        y, p = inputs(rng, dtype, (1, 33003), bool(options.get("from_logits")), "large")
        for reduction in ("mean",):
            per, value, grad = monai(loss, dtype, reduction, y, p, options)
            out.append({"loss": loss, "dtype": dtype, "reduction": reduction, "options": options, "name": "large",
                        "target": packed(y, dtype), "pred": packed(p, dtype),
                        "losses": short(per, dtype) if reduction == "none" else None,
                        "value": None if value is None else short(np.array(value), dtype),
                        "grad": packed(grad, dtype)})
    return out


def save(out: Path, records: list[dict], made_by: str) -> None:
    """The records with the versions of the frameworks and MONAI, the instruction set and the threads."""
    import monai as monai_package

    meta = {**versions(), "monai": monai_package.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}
    out.write_text(json.dumps({"versions": meta, "made_by": made_by, "records": records}, separators=(",", ":")) + "\n")
    print(f"{out}: {len(records)} records, {out.stat().st_size} bytes, {meta}")


def main() -> None:
    rng = np.random.default_rng(20261204)
    save(OUT, small_records(rng) + large_records(rng), "scripts/golden_lowp_seg.py")


if __name__ == "__main__":
    main()
