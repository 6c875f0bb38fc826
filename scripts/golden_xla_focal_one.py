"""Record JAX's CPU results for optax's sigmoid_focal_loss of a single element under jax.jit, for
tests/golden/xla_focal_one.json (read by tests/test_lowp_xla_more.py).

A target of one element is a constant of one value throughout: XLA folds it into the kernels as it folds a splat
(its 1 − y and −y appear in the fused computations as scalars), and orders their work otherwise than for targets of
several values; lossgrad warns there. Random logits and targets (0, 1 or soft), float32 and float16, the sum and the
mean, gamma 2 with and without alpha; records as scripts/golden_lowp_xla_more.py writes them (its `record`), with
the versions. A single element's kernels are scalar code, whatever the processor's vector width.

    python3 scripts/golden_xla_focal_one.py      # tests/golden/xla_focal_one.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_lowp_xla import _rounded  # noqa: E402
from golden_lowp_xla_more import record  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "xla_focal_one.json"
DRAWS = 12


def records(rng) -> list[dict]:
    out = []
    for dtype in ("float32", "float16"):
        for options in ({"gamma": 2.0, "alpha": None}, {"gamma": 2.0, "alpha": 0.25}):
            for reduction in ("sum", "mean"):
                for _ in range(DRAWS):
                    p = _rounded(np.array([[rng.standard_normal() * rng.choice([0.3, 1.0, 3.0, 10.0])]]), dtype)
                    y = _rounded(np.array([[rng.choice([0.0, 1.0, rng.random()])]]), dtype)
                    out.append(record("focal", options, dtype, True, reduction, y, p, "one"))
    return out


def main() -> None:
    from make_golden import jax_versions

    recs = records(np.random.default_rng(20261302))
    OUT.write_text(json.dumps({"versions": jax_versions(), "records": recs}) + "\n")
    print(f"{OUT}: {len(recs)} records, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
