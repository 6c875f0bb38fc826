"""Record PyTorch's CPU results for tests/golden/lowp_pairs.json (read by tests/test_lowp_pairs.py):
triplet_margin_loss in float32, float16 and bfloat16 (p = 1 to 4, with and without swap), cosine_embedding_loss
and lossgrad's torch cosine (cosine_embedding_loss with target 1) in float16 and bfloat16, and the float32 square
roots that keep float32 cosine-embedding off lossgrad's reproduced kernels.

Each record: dtype, reduction, lossgrad's options, inputs already representable in the dtype (the anchor is
lossgrad's --pred, the positive its --target; cosine_embedding_loss's x1 is --pred, x2 --target), and torch's
losses (none) or reduced value, with the gradients for every input that has one (numbers as the shortest strings
that read back to the same value of the dtype). Inputs: random rows of 1 to 100 elements (sizes around the norm
kernel's 8 float32 lanes and 16 bfloat16 ones, so that every scalar tail length shows), and adversarial ones (an
anchor equal to its positive, a positive equal to its negative: ties in swap's minimum; a row of zeros; parallel
and opposite vectors). The torch version and the instruction set are recorded.

Appended (own random stream, the records before unchanged): triplet with other norm degrees (below 1, between 1
and 2, above 2, and bfloat16 degrees whose q − 1 and q − 2 the pow kernel rounds to 2 and 3), rows with a
difference of exactly 0 and batches of 70 rows (whose norms' powers fill SLEEF's registers); and torch.pow of each
dtype at the exponents its kernel treats apart and others ("pow": lossgrad.lowp_focal.power).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_lowp_more import DTYPES, REDUCTIONS, rounded, short  # noqa: E402
from make_golden import versions  # noqa: E402

F = torch.nn.functional
OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_pairs.json"
HALVES = ("float16", "bfloat16")
SHAPES = ((5, 3), (11, 7), (4, 33), (2, 100), (6, 16), (3, 21))
POWER_SHAPES = ((5, 3), (7, 1), (4, 33))  # (norms 3 and 4: one element is its absolute value, no powf taken)


def _grads(tensors: dict[str, torch.Tensor], dtype: str) -> dict:
    return {f"grad{'' if k == 'pred' else '_' + k}": short(t.grad.to(torch.float64).numpy(), dtype)
            for k, t in tensors.items()}


def _result(out: torch.Tensor, reduction: str, dtype: str) -> dict:
    value = out.detach().to(torch.float64).numpy()
    return {"losses": short(value, dtype) if reduction == "none" else None,
            "value": None if reduction == "none" else short(value, dtype)}


def triplet_record(dtype: str, reduction: str, a: np.ndarray, pos: np.ndarray, neg: np.ndarray, options: dict,
                   name: str) -> dict:
    """torch's triplet_margin_loss and the gradients of its result (of their sum, for none)."""
    kind = DTYPES[dtype]
    ts = {k: torch.tensor(v, dtype=kind, requires_grad=True) for k, v in (("pred", a), ("target", pos),
                                                                          ("negative", neg))}
    out = F.triplet_margin_loss(ts["pred"], ts["target"], ts["negative"], margin=options["margin"],
                                p=options["norm_degree"], swap=options["swap"], reduction=reduction)
    (out.sum() if reduction == "none" else out).backward()
    return {"loss": "triplet", "dtype": dtype, "reduction": reduction, "options": options, "name": name,
            "pred": short(a, dtype), "target": short(pos, dtype), "negative": short(neg, dtype),
            **_result(out, reduction, dtype), **_grads(ts, dtype)}


def triplet_inputs(rng, dtype: str, shape: tuple[int, int], name: str) -> tuple[np.ndarray, ...]:
    """Anchors, positives and negatives in the dtype, at a scale of 0.01 to 30; adversarial: rows equal."""
    s = rng.choice([0.01, 1.0, 30.0])
    a = rounded(rng.standard_normal(shape) * s, dtype)
    pos = rounded(a + rng.standard_normal(shape) * s * rng.uniform(0.1, 2), dtype)
    neg = rounded(a + rng.standard_normal(shape) * s * rng.uniform(0.1, 2), dtype)
    if name == "adversarial":
        pos[0] = a[0]  # (a distance of ε alone; under swap d(a, neg) = d(pos, neg): the minimum halves)
        neg[-1] = pos[-1]
    return a, pos, neg


def triplet_records(rng) -> list[dict]:
    out = []
    for dtype in DTYPES:
        for reduction in REDUCTIONS:
            for q in (1.0, 2.0, 3.0, 4.0):
                for swap in (False, True):
                    for i, shape in enumerate(SHAPES if q <= 2 else POWER_SHAPES):
                        name = "adversarial" if i % 3 == 0 else "random"
                        a, pos, neg = triplet_inputs(rng, dtype, shape, name)
                        margin = float(rng.choice([0.1, 1.0, 5.0]))
                        options = {"margin": margin, "norm_degree": q, "swap": swap}
                        out.append(triplet_record(dtype, reduction, a, pos, neg, options, name))
    return out


def cosine_record(loss: str, dtype: str, reduction: str, x1: np.ndarray, x2: np.ndarray, label: np.ndarray,
                  margin: float, name: str) -> dict:
    """torch's cosine_embedding_loss (x1 the predictions, x2 the targets) and its gradients; lossgrad's cosine is
    the same with every label 1 and the gradient for the predictions alone."""
    kind = DTYPES[dtype]
    ts = {"pred": torch.tensor(x1, dtype=kind, requires_grad=True),
          "target": torch.tensor(x2, dtype=kind, requires_grad=loss == "cosine-embedding")}
    out = F.cosine_embedding_loss(ts["pred"], ts["target"], torch.tensor(label[:, 0], dtype=kind), margin=margin,
                                  reduction=reduction)
    (out.sum() if reduction == "none" else out).backward()
    grads = _grads(ts if loss == "cosine-embedding" else {"pred": ts["pred"]}, dtype)
    rec = {"loss": loss, "dtype": dtype, "reduction": reduction, "name": name,
           "options": {"margin": margin} if loss == "cosine-embedding" else {},
           "pred": short(x1, dtype), "target": short(x2, dtype), **_result(out, reduction, dtype), **grads}
    if loss == "cosine-embedding":
        rec["label"] = short(label, dtype)
    return rec


def cosine_inputs(rng, dtype: str, shape: tuple[int, int], name: str) -> tuple[np.ndarray, ...]:
    """Pairs of vectors at a scale of 0.01 to 30, from nearly parallel to unrelated, labels ±1; adversarial: a
    row of zeros (float16 rounds ε to 0: 0/0), parallel and opposite rows."""
    s = rng.choice([0.01, 1.0, 30.0])
    x1 = rounded(rng.standard_normal(shape) * s, dtype)
    x2 = rounded(x1 * rng.uniform(-1, 1) + rng.standard_normal(shape) * s * rng.uniform(0.01, 2), dtype)
    label = np.where(rng.random((shape[0], 1)) < 0.5, 1.0, -1.0)
    if name == "adversarial":
        x1[0] = 0.0
        x2[1] = x1[1]
        x2[-1] = -x1[-1]
    return x1, x2, label


def cosine_records(rng) -> list[dict]:
    out = []
    for dtype in HALVES:
        for reduction in REDUCTIONS:
            for i, shape in enumerate(SHAPES):
                name = "adversarial" if i % 3 == 0 else "random"
                x1, x2, label = cosine_inputs(rng, dtype, shape, name)
                for margin in (0.0, float(rng.choice([0.2, 0.5, 0.9]))):
                    out.append(cosine_record("cosine-embedding", dtype, reduction, x1, x2, label, margin, name))
                out.append(cosine_record("cosine", dtype, reduction, x1, x2, np.ones_like(label), 0.0, name))
    return out


def float32_sqrt(rng) -> dict:
    """float32 square roots as torch forms them (MKL's vsSqrt in its builds): inputs where it is not the correctly
    rounded root, the reason lossgrad leaves float32 cosine-embedding and cosine on their formulas."""
    x = np.exp(rng.uniform(-20, 20, 20000)).astype(np.float32)
    got = torch.sqrt(torch.from_numpy(x)).numpy()
    differ = np.nonzero(got != np.sqrt(x))[0]
    return {"x": short(x[differ[:40]]), "sqrt": short(got[differ[:40]]), "differ_from_rounded": int(differ.size),
            "of": int(x.size)}


NORM_DEGREES = (0.3, 0.5, 1.25, 1.5, 2.5, 2.75, 3.5, 5.0, 7.0, 10.0, 3.004, 4.005)
NORM_SHAPES = ((5, 3), (7, 1), (4, 33), (3, 70), (70, 3))
EXPONENTS = (0.0, 1.0, 2.0, 3.0, -2.0, -1.0, 0.5, -0.5, 2.004, 3.005, -2.005, -1.002, 0.5001, -0.5001, 1.001,
             0.7, -0.3, 2.5, 7.3, 1.5)


def norm_records(rng) -> list[dict]:
    """triplet_margin_loss with the other norm degrees; "zero difference": an anchor element equal to the
    positive's less ε (u = 0 exactly, which q < 1's backward masks)."""
    out = []
    for dtype in DTYPES:
        for q in NORM_DEGREES:
            for swap in (False, True):
                for name in ("adversarial", "zero difference", "random"):
                    shape = NORM_SHAPES[int(rng.integers(len(NORM_SHAPES)))]
                    a, pos, neg = triplet_inputs(rng, dtype, shape, name)
                    if name == "zero difference":
                        a[-1, 0] = 0.0
                        pos[-1, 0] = float(rounded(np.array([1e-6]), dtype)[0])
                    options = {"margin": float(rng.choice([0.1, 1.0, 5.0])), "norm_degree": q, "swap": swap}
                    reduction = REDUCTIONS[int(rng.integers(len(REDUCTIONS)))]
                    out.append(triplet_record(dtype, reduction, a, pos, neg, options, name))
    return out


def pow_records(rng) -> list[dict]:
    """torch.pow(x, e) of a tensor of 100 elements (two registers of halves and a tail of 36; three of float32s
    and a tail of 4): 0, 1, e^−6 to e^6."""
    out = []
    for dtype in DTYPES:
        x = rounded(np.concatenate([[0.0, 1.0], np.exp(rng.uniform(-6, 6, 98))]), dtype)
        for e in EXPONENTS:
            got = torch.tensor(x, dtype=DTYPES[dtype]).pow(e).to(torch.float64).numpy()
            out.append({"dtype": dtype, "exponent": e, "x": short(x, dtype), "pow": short(got, dtype)})
    return out


def main() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(20261202)
    records = triplet_records(rng) + cosine_records(rng)
    sqrt = float32_sqrt(rng)
    more = np.random.default_rng(20261204)
    records += norm_records(more)
    meta = {**versions(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    OUT.write_text(json.dumps({"versions": meta, "records": records, "float32_sqrt": sqrt, "pow": pow_records(more)},
                              separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(records)} records, {OUT.stat().st_size} bytes, {meta}")


if __name__ == "__main__":
    main()
