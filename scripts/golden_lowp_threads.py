"""Record PyTorch's CPU results where it splits work among its intra-op threads, for tests/golden/lowp_threads.json
(read by tests/test_lowp_threads.py): operations over more than 32,768 elements, which TensorIterator hands to
at::parallel_for in parts, one per thread (two on the machine recorded).

Each record: a loss, dtype, reduction and shape, the seed its inputs come from (inputs(): pure numpy, so the test
rebuilds them) with the SHA-256 of the inputs as the dtype holds them, torch's reduced value, and the SHA-256 of its
gradient(s) in float32. Cases: mae and mse reduced over [1, 40,000] to [3, 33,000] (torch.sum's and torch.mean's two
passes), triplet over a single row of 70,000 features with norms 3 and 7 (the norm's reduction in parts, and
the backward's powers each part ending in its own scalar loop), and cosine_embedding_loss over a single row of
40,000 (its row sums in two passes; float32, MKL's square root), and binary_cross_entropy_with_logits in float32 over
50,000 to 100,000 elements (σ(z)'s scalar loop at the end of each part). The torch version, the instruction set
and the threads are recorded.

    python3 scripts/golden_lowp_threads.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_threads.json"
CASES = (("mae", "float32", "mean", (1, 100000)), ("mae", "float32", "sum", (2, 70000)),
         ("mse", "float32", "mean", (3, 33000)), ("mae", "bfloat16", "sum", (1, 40000)),
         ("mae", "float16", "mean", (2, 50001)), ("mse", "bfloat16", "mean", (1, 65537)),
         ("triplet", "float32", "sum", (1, 70000)), ("triplet", "bfloat16", "mean", (1, 70000)),
         ("cosine-embedding", "float32", "sum", (1, 40000)),
         ("bce", "float32", "mean", (4, 25000)), ("bce", "float32", "sum", (1, 70001)),
         ("bce", "float32", "sum", (3, 33333)), ("bce", "float32", "mean", (2, 50000)))


def inputs(seed: int, loss: str, shape: tuple[int, int]) -> list[np.ndarray]:
    """Targets and predictions (triplet: positives, anchors and negatives), float32 values (so that rounding them to a
    half dtype is one rounding, torch's or numpy's alike)."""
    rng = np.random.default_rng(seed)
    if loss == "triplet":  # (the positive as far as the negative: d(a, pos) near d(a, neg), the loss above 0)
        a = rng.standard_normal(shape)
        out = [a + rng.standard_normal(shape), a, a + rng.standard_normal(shape)]
    elif loss == "bce":  # (targets in [0, 1], logits)
        out = [rng.random(shape), rng.standard_normal(shape) * 4]
    else:
        out = [rng.standard_normal(shape), rng.standard_normal(shape) * 2]
    return [x.astype(np.float32).astype(np.float64) for x in out]


def digest(x) -> str:
    """SHA-256 of an array's float32 bytes, in C order."""
    return hashlib.sha256(np.ascontiguousarray(np.asarray(x, dtype=np.float32)).tobytes()).hexdigest()


def record(k: int, loss: str, dtype: str, reduction: str, shape: tuple[int, int]) -> dict:
    import torch

    kind = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    ts = [torch.tensor(x).to(kind) for x in inputs(20261204 + k, loss, shape)]
    leaves = [t.clone().requires_grad_() for t in ts]
    f = torch.nn.functional
    if loss == "cosine-embedding":
        out = f.cosine_embedding_loss(leaves[1], leaves[0], torch.ones(shape[0], dtype=kind), reduction=reduction)
    elif loss == "triplet":
        out = f.triplet_margin_loss(leaves[1], leaves[0], leaves[2], margin=1.0, p=3.0 if dtype == "float32" else 7.0,
                                    reduction=reduction)
    elif loss == "bce":
        out = f.binary_cross_entropy_with_logits(leaves[1], leaves[0], reduction=reduction)
    else:
        out = (f.l1_loss if loss == "mae" else f.mse_loss)(leaves[1], leaves[0], reduction=reduction)
    out.backward()
    grads = {"grad": leaves[1].grad} | ({"grad_target": leaves[0].grad} if loss in ("triplet", "cosine-embedding")
                                        else {}) | ({"grad_negative": leaves[2].grad} if loss == "triplet" else {})
    return {"loss": loss, "dtype": dtype, "reduction": reduction, "shape": list(shape), "seed": 20261204 + k,
            "norm_degree": (3.0 if dtype == "float32" else 7.0) if loss == "triplet" else None,
            "inputs": digest(np.concatenate([t.float().numpy() for t in ts])), "value": str(out.float().item()),
            **{name: digest(g.float().numpy()) for name, g in grads.items()}}


def main() -> None:
    import torch

    recs = [record(k, *case) for k, case in enumerate(CASES)]
    meta = {**versions(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}
    OUT.write_text(json.dumps({"versions": meta, "records": recs}) + "\n")
    print(f"{OUT}: {len(recs)} records, {meta}")


if __name__ == "__main__":
    main()
