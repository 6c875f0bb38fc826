"""Record MONAI's Jaccard loss, DiceLoss(jaccard=True) (lossgrad's dice --jaccard under the torch convention), on
PyTorch's CPU kernels in float64, float32, float16 and bfloat16, for tests/golden/seg_jaccard.json (read by
tests/test_seg_jaccard.py).

Each record: the dtype, reduction, lossgrad's options (squared, smooth, from_logits; jaccard always), inputs already
representable in the dtype (as float64 reprs), one channel of pixels per sample, and MONAI's losses (reduction none)
or reduced value with the gradient for the predictions (of the losses' sum for none), as float64 reprs of the
dtype's values. Inputs: golden_lowp_seg.py's random masks (hard and soft) against probabilities or logits at several
scales, and its adversarial rows. The versions of torch and MONAI, the instruction set and the threads are recorded
(σ(z)'s scalar tail depends on the instruction set: the test reproduces the recorded one).

    python3 scripts/golden_seg_jaccard.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_losses_a import run_monai  # noqa: E402
from golden_lowp_seg import SHAPES, inputs  # noqa: E402
from make_golden import versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "seg_jaccard.json"
DTYPES = ("float64", "float32", "float16", "bfloat16")
OPTIONS = ({}, {"squared": True}, {"smooth": 1.0}, {"squared": True, "smooth": 1e-3})


def held(a: np.ndarray, dtype: str) -> np.ndarray:
    """The values of the dtype nearest to a (float64 already is one)."""
    if dtype == "float64":
        return np.asarray(a, dtype=np.float64)
    return torch.tensor(np.asarray(a, dtype=np.float64)).to(getattr(torch, dtype)).to(torch.float64).numpy()


def reprs(a: object) -> list:
    return [repr(float(v)) for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def record(dtype: str, reduction: str, y: np.ndarray, p: np.ndarray, options: dict, name: str) -> dict:
    per, value, grad = run_monai("dice", y, p, bool(options.get("from_logits")), reduction, dtype,
                                 bool(options.get("squared")), 0.5, 0.5, smooth=options.get("smooth", 1e-5),
                                 jaccard=True)
    return {"dtype": dtype, "reduction": reduction, "options": options | {"jaccard": True}, "name": name,
            "shape": list(p.shape), "target": reprs(y), "pred": reprs(p),
            "losses": reprs(per) if reduction == "none" else None,
            "value": None if value is None else repr(float(value)), "grad": reprs(grad)}


def records(rng) -> list[dict]:
    out = []
    for dtype in DTYPES:
        for k, shape in enumerate(SHAPES):
            for from_logits in (False, True):
                name = "adversarial" if shape == (8, 6) else "random"
                y, p = inputs(rng, "float32", shape, from_logits, name)
                y, p = held(y, dtype), held(p, dtype)
                for options in (OPTIONS[(k + from_logits) % 4], OPTIONS[(k + from_logits + 2) % 4]):
                    options = options | ({"from_logits": True} if from_logits else {})
                    for reduction in ("none", "sum", "mean"):
                        out.append(record(dtype, reduction, y, p, options, name))
    return out


def main() -> None:
    import monai as monai_package

    rng = np.random.default_rng(20261205)
    recs = records(rng)
    meta = {**versions(), "monai": monai_package.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}
    OUT.write_text(json.dumps({"versions": meta, "made_by": "scripts/golden_seg_jaccard.py", "records": recs},
                              separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(recs)} records, {OUT.stat().st_size} bytes, {meta}")


if __name__ == "__main__":
    main()
