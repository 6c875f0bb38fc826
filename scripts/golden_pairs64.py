"""Record PyTorch's triplet_margin_loss and cosine_embedding_loss in float64 on the CPU, for
tests/golden/pairs64.json (read by tests/test_pairs64.py): lossgrad's triplet (--norm-degree 1 and 2),
cosine-embedding and cosine under the torch convention in float64; with --pow, triplet with the other norms
(POW_NORMS) in tests/golden/pairs64_pow.json, whose powers are the C library's pow and SLEEF's powd by the registers
of the processor it runs on (recorded: the tests take its capability).

Each triplet record: the case (batch, features, p, margin, swap, reduction, kind), the seed its inputs come from
(inputs(): pure numpy draws, sums and products, so the test rebuilds them on any machine) with the SHA-256 of the
anchors, positives and negatives, and torch's losses (reduction none) or value, and the gradients for the anchor, the
positive and the negative (of the losses' sum for none), every number as float.hex; gradients of more than 4,096
elements by SHA-256. Kinds: random rows at scales from 1e-3 to 1e3; a positive 1e-7 from its anchor (distances
far below the rows); an anchor equal to its positive (a zero difference: ε = 1e-6 alone); ties (the positive the
negative's mirror image through the anchor: with a margin of 1e-12 the hinge at 0, to rounding); rows of every
length mod 4 (the 2-norm's lanes of 4 doubles and its fused tail); a batch of 40,000 samples (lossgrad's slices
of 32,768) and a single sample of 50,001 features (the 1-norm's reduction split among the threads).
cosine_embedding_loss's records (loss "cosine-embedding", labels ±1 and a margin; "cosine", its target 1 as
lossgrad's torch cosine) keep x1, x2 (and the labels) the same way, with the gradients for both: random rows,
nearly parallel rows (x2 = 2·x1 + 1e-9 noise), a zero row, and the long shapes. The versions, the processor and
whether MKL ran (PyTorch's double √ is its vmdSqrt) are recorded.

    python3 scripts/golden_pairs64.py
    python3 scripts/golden_pairs64.py --pow    # triplet's other norms (POW_NORMS), tests/golden/pairs64_pow.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "pairs64.json"
HASHED = 4096
KINDS = ("random", "near", "equal", "tie")
SHAPES = ((1, 1), (3, 2), (7, 3), (5, 4), (9, 5), (16, 8), (4, 17), (33, 31), (2, 100), (6, 1000))
LONG = ((40000, 3), (1, 50001))
# the other norms (--pow, tests/golden/pairs64_pow.json): each power's kind of torch.pow (SLEEF's powd and the C
# library's pow, √ at ½ and 1/√ at −½, products at 2, 3 and −2) in the forward's Σ|u|^q and the backward's |u|^(q−1),
# |u|^(q−2) and d^(q−1) or d^(1−q)
POW_NORMS = (0.5, 1.5, 2.5, 3.0, 4.0, 1 / 3, 0.75, 3.5, 7.0, 1.2)
POW_OUT = OUT.with_name("pairs64_pow.json")


def inputs(seed: int, shape: tuple[int, int], kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anchors, positives and negatives for the kind."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** float(rng.choice([-3.0, 0.0, 3.0]))
    a, pos, neg = (rng.normal(size=shape) * scale for _ in range(3))
    if kind == "near":
        pos = a + rng.normal(size=shape) * 1e-7 * scale
    elif kind == "equal":
        pos = a.copy()
    elif kind == "tie":  # (the positive the negative's mirror image through the anchor: as far, to rounding)
        pos = a + (a - neg)
    return a, pos, neg


def cosine_inputs(seed: int, shape: tuple[int, int], kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x1, x2 and labels ±1 for the kind ("random", "parallel", "zero")."""
    rng = np.random.default_rng(seed)
    x1, x2 = (rng.normal(size=shape) * 10.0 ** float(rng.choice([-3.0, 0.0, 3.0])) for _ in range(2))
    if kind == "parallel":
        x2 = 2 * x1 + rng.normal(size=shape) * 1e-9
    elif kind == "zero":
        x1[0] = 0.0
    return x1, x2, np.where(rng.random(shape[0]) < 0.5, 1.0, -1.0)


def digest(*arrays: np.ndarray) -> str:
    """SHA-256 of the arrays' float64 bytes, in C order, one after another, every NaN as numpy's."""
    h = hashlib.sha256()
    for x in arrays:
        x = np.asarray(x, dtype=np.float64)
        h.update(np.ascontiguousarray(np.where(np.isnan(x), np.nan, x)).tobytes())
    return h.hexdigest()


def _kept(g: np.ndarray) -> Any:
    return {"sha256": digest(g)} if g.size > HASHED else [float(v).hex() for v in g.reshape(-1)]


def matches(got: np.ndarray, kept: Any) -> bool:
    """Whether `got` has the bits an array _kept recorded (its SHA-256 past HASHED elements; NaN for NaN)."""
    if isinstance(kept, dict):
        return digest(got) == kept["sha256"]
    return bool(np.array_equal(np.asarray(got, dtype=np.float64).reshape(-1),
                               np.array([float.fromhex(v) for v in kept]), equal_nan=True))


def reduced_matches(result: Any, rec: dict) -> bool:
    """Whether a run's losses (reduction none) or value have the bits a record kept (NaN for NaN)."""
    if rec["reduction"] == "none":
        return matches(result.losses, rec["losses"])
    return bool(np.array_equal(result.value, float.fromhex(rec["value"]), equal_nan=True))


def record(seed: int, shape: tuple[int, int], kind: str, p: float, margin: float, swap: bool,
           reduction: str) -> dict:
    import torch

    a, pos, neg = inputs(seed, shape, kind)
    ta, tp, tn = (torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (a, pos, neg))
    loss = torch.nn.functional.triplet_margin_loss(ta, tp, tn, margin=margin, p=p, swap=swap, reduction=reduction)
    (loss.sum() if reduction == "none" else loss).backward()
    assert ta.grad is not None and tp.grad is not None and tn.grad is not None
    out = loss.detach().numpy()
    return {"loss": "triplet", "shape": list(shape), "kind": kind, "p": p, "margin": margin, "swap": swap,
            "reduction": reduction, "seed": seed, "inputs_sha256": digest(a, pos, neg),
            "losses": _kept(out) if reduction == "none" else None,
            "value": None if reduction == "none" else float(out).hex(),
            "grad": _kept(ta.grad.numpy()), "grad_target": _kept(tp.grad.numpy()),
            "grad_negative": _kept(tn.grad.numpy())}


def cosine_record(seed: int, shape: tuple[int, int], kind: str, loss: str, margin: float, reduction: str) -> dict:
    import torch

    x1, x2, labels = cosine_inputs(seed, shape, kind)
    target = torch.tensor(labels if loss == "cosine-embedding" else np.ones(shape[0]), dtype=torch.float64)
    t1, t2 = (torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (x1, x2))
    out = torch.nn.functional.cosine_embedding_loss(t1, t2, target, margin=margin, reduction=reduction)
    (out.sum() if reduction == "none" else out).backward()
    assert t1.grad is not None and t2.grad is not None
    value = out.detach().numpy()
    return {"loss": loss, "shape": list(shape), "kind": kind, "margin": margin, "reduction": reduction, "seed": seed,
            "inputs_sha256": digest(x1, x2, labels), "losses": _kept(value) if reduction == "none" else None,
            "value": None if reduction == "none" else float(value).hex(), "grad": _kept(t1.grad.numpy()),
            "grad_target": _kept(t2.grad.numpy())}


def pow_records() -> list[dict]:
    """triplet with POW_NORMS: every shape with the kinds in turn, swap every other one, the three reductions; and
    the long shapes (a single row split among the threads, each part's scalar loop its own) for two norms."""
    rng = np.random.default_rng(20261208)
    records, seed = [], 20261208
    for i, (p, shape) in enumerate((p, shape) for p in POW_NORMS for shape in SHAPES):
        margin = float(rng.choice([1.0, 1e-12, 0.3, 5.0]))
        for reduction in ("none", "sum", "mean"):
            records.append(record(seed, shape, KINDS[i % 4], p, margin, i % 2 == 1, reduction))
        seed += 1
    for p, shape in ((3.5, (1, 50001)), (0.75, (1, 50001)), (3.0, (40000, 3))):
        records.append(record(seed, shape, "random", p, 1.0, False, "mean"))
        seed += 1
    return records


def main() -> None:
    if "--pow" in sys.argv:
        save(POW_OUT, pow_records(), "scripts/golden_pairs64.py --pow")
        return
    rng = np.random.default_rng(20261205)
    records, seed = [], 20261205
    cases = [(shape, kind) for shape in SHAPES for kind in KINDS] + [(shape, "random") for shape in LONG]
    for shape, kind in cases:
        for p in (1.0, 2.0):
            for swap in (False, True):
                margin = float(rng.choice([1.0, 1e-12, 0.3, 5.0]))
                for reduction in ("none", "sum", "mean"):
                    records.append(record(seed, shape, kind, p, margin, swap, reduction))
                seed += 1
    cases = [(shape, kind) for shape in SHAPES for kind in ("random", "parallel", "zero")]
    for shape, kind in cases + [(shape, "random") for shape in LONG]:
        for loss in ("cosine-embedding", "cosine"):
            margin = float(rng.choice([0.0, 0.3, 0.9])) if loss == "cosine-embedding" else 0.0
            for reduction in ("none", "sum", "mean"):
                records.append(cosine_record(seed, shape, kind, loss, margin, reduction))
            seed += 1
    save(OUT, records, "scripts/golden_pairs64.py")


def save(out: Path, records: list[dict], made_by: str, more: dict[str, str] | None = None) -> None:
    """The records with the versions (and `more` of them), the processor, PyTorch's instruction set and threads,
    and whether it has MKL."""
    import torch

    from make_golden import cpu_model, versions

    meta = {**versions(), **(more or {}), "cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "mkl": torch.backends.mkl.is_available()}
    out.write_text(json.dumps({"versions": meta, "made_by": made_by, "records": records}, separators=(",", ":"))
                   + "\n")
    print(f"{out}: {len(records)} records, {out.stat().st_size} bytes, {meta}")


if __name__ == "__main__":
    main()
