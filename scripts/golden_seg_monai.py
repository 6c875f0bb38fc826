"""Record MONAI's options beyond tests/golden/lowp_seg.json's, on PyTorch's CPU kernels in float64, float32, float16
and bfloat16, for tests/golden/seg_monai.json (read by tests/test_seg_monai.py): the Jaccard loss,
DiceLoss(jaccard=True) (lossgrad's dice --jaccard under the torch convention), and smooth_nr apart from smooth_dr
(--smooth and --smooth-dr) for DiceLoss, with and without jaccard, and TverskyLoss.

Each record: the loss, dtype, reduction, lossgrad's options (squared, jaccard, smooth, smooth_dr, alpha, beta,
from_logits), inputs already
representable in the dtype (as float64 reprs), one channel of pixels per sample, and MONAI's losses (reduction none)
or reduced value with the gradient for the predictions (of the losses' sum for none), as float64 reprs of the
dtype's values. Inputs: golden_lowp_seg.py's random masks (hard and soft) against probabilities or logits at several
scales, and its adversarial rows. The versions of torch and MONAI, the instruction set and the threads are recorded
(σ(z)'s scalar tail depends on the instruction set: the test reproduces the recorded one).

    python3 scripts/golden_seg_monai.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_losses_a import run_monai  # noqa: E402
from golden_lowp_seg import SHAPES, inputs, save  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "seg_monai.json"
DTYPES = ("float64", "float32", "float16", "bfloat16")
OPTIONS = ({}, {"squared": True}, {"smooth": 1.0}, {"squared": True, "smooth": 1e-3})
# smooth_nr apart from smooth_dr (MONAI's default 1e-5 where --smooth is not given)
APART = ({"smooth": 1.0, "smooth_dr": 0.5}, {"smooth_dr": 0.0}, {"smooth": 0.0, "smooth_dr": 1.0},
         {"smooth": 1e-3, "smooth_dr": 2.0})
SHAPES_APART = ((8, 6), (5, 33), (17, 7), (1, 129))


def held(a: np.ndarray, dtype: str) -> np.ndarray:
    """The values of the dtype nearest to a (float64 already is one)."""
    if dtype == "float64":
        return np.asarray(a, dtype=np.float64)
    return torch.tensor(np.asarray(a, dtype=np.float64)).to(getattr(torch, dtype)).to(torch.float64).numpy()


def reprs(a: object) -> list:
    return [repr(float(v)) for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def record(loss: str, dtype: str, reduction: str, y: np.ndarray, p: np.ndarray, options: dict, name: str) -> dict:
    per, value, grad = run_monai(loss, y, p, bool(options.get("from_logits")), reduction, dtype,
                                 bool(options.get("squared")), options.get("alpha", 0.5), options.get("beta", 0.5),
                                 smooth=options.get("smooth", 1e-5), jaccard=bool(options.get("jaccard")),
                                 smooth_dr=options.get("smooth_dr"))
    return {"loss": loss, "dtype": dtype, "reduction": reduction, "options": options, "name": name,
            "shape": list(p.shape), "target": reprs(y), "pred": reprs(p),
            "losses": reprs(per) if reduction == "none" else None,
            "value": None if value is None else repr(float(value)), "grad": reprs(grad)}


def _inputs(rng, dtype: str, shape: tuple[int, int], from_logits: bool) -> tuple[np.ndarray, np.ndarray, str]:
    name = "adversarial" if shape == (8, 6) else "random"
    y, p = inputs(rng, "float32", shape, from_logits, name)
    return held(y, dtype), held(p, dtype), name


def jaccard_records(rng) -> list[dict]:
    out = []
    for dtype in DTYPES:
        for k, shape in enumerate(SHAPES):
            for from_logits in (False, True):
                y, p, name = _inputs(rng, dtype, shape, from_logits)
                for options in (OPTIONS[(k + from_logits) % 4], OPTIONS[(k + from_logits + 2) % 4]):
                    options = options | ({"from_logits": True} if from_logits else {}) | {"jaccard": True}
                    for reduction in ("none", "sum", "mean"):
                        out.append(record("dice", dtype, reduction, y, p, options, name))
    return out


def apart_records(rng) -> list[dict]:
    """smooth_nr apart from smooth_dr: dice (plain, squared, jaccard) and tversky (two weightings)."""
    out = []
    kinds = (("dice", {}), ("dice", {"squared": True}), ("dice", {"jaccard": True}),
             ("tversky", {"alpha": 0.3, "beta": 0.7}), ("tversky", {"alpha": 1.0, "beta": 0.1}))
    for dtype in DTYPES:
        for k, shape in enumerate(SHAPES_APART):
            from_logits = bool(k % 2)
            y, p, name = _inputs(rng, dtype, shape, from_logits)
            for j, (loss, kind) in enumerate(kinds):
                options = kind | APART[(j + k) % 4] | ({"from_logits": True} if from_logits else {})
                for reduction in ("none", "mean"):
                    out.append(record(loss, dtype, reduction, y, p, options, name))
    return out


def main() -> None:
    rng = np.random.default_rng(20261205)
    save(OUT, jaccard_records(rng) + apart_records(rng), "scripts/golden_seg_monai.py")


if __name__ == "__main__":
    main()
