"""Record PyTorch's float32, float16 and bfloat16 CPU results for tests/golden/lowp.json (read by tests/test_lowp.py).

Each record: a loss, dtype, reduction and inputs (already representable in the dtype), and torch's per-element or
per-sample losses, reduced value and gradient, every number a float64 that holds the dtype's value exactly. The
instruction set the kernels ran with (torch.backends.cpu.get_cpu_capability()) is recorded: the row sums of
log_softmax follow the SIMD width, so float32 results of wide rows depend on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

F = torch.nn.functional
OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp.json"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _rounded(a: np.ndarray, dtype: str) -> np.ndarray:
    return torch.tensor(a, dtype=torch.float64).to(DTYPES[dtype]).to(torch.float64).numpy()


def _short(a) -> list:
    """Numbers as the shortest decimal strings that read back to the same float32 (every value here is one)."""
    flat = np.asarray(a, dtype=np.float32)
    return np.vectorize(lambda v: str(np.float32(v)), otypes=[object])(flat).tolist()


def _record(loss: str, dtype: str, reduction: str, y: np.ndarray, p: np.ndarray, run, **extra) -> dict:
    pt = torch.tensor(p, dtype=DTYPES[dtype], requires_grad=True)
    out = run(pt)
    (out.sum() if reduction == "none" else out).backward()
    value = out.detach().to(torch.float64)
    return {"loss": loss, "dtype": dtype, "reduction": reduction, "target": _short(y), "pred": _short(p),
            "losses": _short(value.numpy()) if reduction == "none" else None,
            "value": None if reduction == "none" else str(np.float32(value)),
            "grad": _short(pt.grad.to(torch.float64).numpy()), **extra}


def _ce(rng, dtype: str, reduction: str, classes: int, rows: int, soft: bool) -> dict:
    scale = rng.choice([0.1, 1.0, 5.0, 20.0], (rows, 1))
    z = _rounded(rng.standard_normal((rows, classes)) * scale, dtype)
    if soft:
        y = rng.random((rows, classes))
        y = _rounded(y / y.sum(axis=1, keepdims=True), dtype)
        target = torch.tensor(y, dtype=DTYPES[dtype])
    else:
        y = rng.integers(0, classes, rows).astype(np.float64)[:, None]
        target = torch.tensor(y[:, 0], dtype=torch.long)
    return _record("ce", dtype, reduction, y, z, lambda t: F.cross_entropy(t, target, reduction=reduction),
                   labels="onehot" if soft else "index")


def _elementwise(rng, dtype: str, reduction: str) -> list[dict]:
    n = 256
    z = _rounded(rng.standard_normal(n) * rng.choice([0.1, 1.0, 5.0, 30.0], n), dtype)[:, None]
    y = rng.random(n)
    y[: n // 4] = np.round(y[: n // 4])
    y = _rounded(y, dtype)[:, None]
    yt = torch.tensor(y, dtype=DTYPES[dtype])
    out = [_record("bce", dtype, reduction, y, z, lambda t: F.binary_cross_entropy_with_logits(t, yt,
                                                                                               reduction=reduction)),
           _record("mse", dtype, reduction, y, z, lambda t: F.mse_loss(t, yt, reduction=reduction))]
    for log_target in (False, True):
        q = rng.random((16, 10))
        logq = _rounded(np.log(q / q.sum(axis=1, keepdims=True)), dtype)
        t = rng.random((16, 10))
        t = t / t.sum(axis=1, keepdims=True)
        t[:, 0] = 0
        tt = _rounded(np.log(np.where(t == 0, 1e-9, t)) if log_target else t, dtype)
        tgt = torch.tensor(tt, dtype=DTYPES[dtype])
        out.append(_record("kl", dtype, reduction, tt, logq,
                           lambda x, t=tgt, lt=log_target: F.kl_div(x, t, reduction=reduction, log_target=lt),
                           log_target=log_target))
    return out


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    rng = np.random.default_rng(20261201)
    records = []
    for dtype in DTYPES:
        for reduction in ("none", "sum", "mean"):
            for classes, rows in ((3, 16), (8, 16), (17, 8), (100, 4), (1000, 2)):
                for soft in (False, True):
                    records.append(_ce(rng, dtype, reduction, classes, rows, soft))
            records += _elementwise(rng, dtype, reduction)
    # z = (1, 0, 0) with label 0 in bfloat16: the row the log-sum's rounding shows on (tests read it by name)
    z = np.array([[1.0, 0.0, 0.0]])
    records.append(_record("ce", "bfloat16", "none", np.array([[0.0]]), z,
                           lambda t: F.cross_entropy(t, torch.tensor([0]), reduction="none"), labels="index",
                           name="one-zero-zero"))
    meta = {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    OUT.write_text(json.dumps({"versions": meta, "records": records}) + "\n")
    print(f"{OUT}: {len(records)} records, {meta}")


if __name__ == "__main__":
    main()
