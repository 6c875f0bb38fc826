"""Records what MONAI's DiceLoss and TverskyLoss (lossgrad's torch convention for dice and tversky) return with
their smoothing set, smooth_nr = smooth_dr = s (lossgrad's --smooth), the one option of the newer losses that the
other golden files leave out, in float64 and float32. Inputs are scripts/golden_losses_a.py's masks; gradients are
autograd's of the reduced value (of the sum for reduction none).

    python3 scripts/golden_newer_f32.py

writes tests/golden/newer_float32.json ("format": "newer_float32", read by tests/test_newer_float32.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import golden_losses_a  # noqa: E402
from golden_losses_a import segmentation_inputs  # noqa: E402
from make_golden import OUT, REDUCTIONS, golden_case, versions  # noqa: E402

SEED = 20261202
SMOOTHS = (1.0, 1e-3)


def run_monai(loss: str, y, p, from_logits: bool, reduction: str, dtype: str, smooth: float, opts: dict):
    return golden_losses_a.run_monai(loss, y, p, from_logits, reduction, dtype, opts.get("squared", False),
                                     opts.get("alpha"), opts.get("beta"), smooth=smooth)


def cases(rng) -> list[dict]:
    out = []
    for loss, options in (("dice", [{}, {"squared": True}]), ("tversky", [{"alpha": 0.3, "beta": 0.7}])):
        for from_logits in (False, True):
            y, p = segmentation_inputs(rng, from_logits)
            for dtype in ("float64", "float32"):
                yy, pp = y.astype(dtype).astype(np.float64), p.astype(dtype).astype(np.float64)
                for opts in options:
                    for smooth in SMOOTHS:
                        params = opts | {"smooth": smooth} | ({"dtype": "float32"} if dtype == "float32" else {})
                        for reduction in REDUCTIONS:
                            rec = run_monai(loss, yy, pp, from_logits, reduction, dtype, smooth, opts)
                            out.append({"loss": loss} | golden_case("torch", from_logits, None, params, reduction,
                                                                   yy, pp, *rec))
    return out


def main() -> None:
    import monai

    meta = versions() | {"monai": monai.__version__}
    doc = {"format": "newer_float32", "versions": meta, "made_by": "scripts/golden_newer_f32.py",
           "cases": cases(np.random.default_rng(SEED))}
    path = OUT / "newer_float32.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{path.name}: {len(doc['cases'])} cases")


if __name__ == "__main__":
    main()
