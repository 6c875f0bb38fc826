"""The torch convention reproducing PyTorch's kernels as a processor with AVX2 only runs them (cpu="avx2"), against
PyTorch's own results on such a processor, recorded by scripts/golden_avx2_torch.py in tests/golden/avx2_torch.json:
every loss the convention reproduces, in float32, float16 and bfloat16 and under autocast, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import cpu, lowp

GOLDEN = Path(__file__).resolve().parent / "golden" / "avx2_torch.json"
DATA = json.loads(GOLDEN.read_text())
RECORDS = DATA["records"]
FURTHER = {"gaussian-nll": ("var",), "margin-ranking": ("other",), "triplet": ("target", "negative"),
           "cosine-embedding": ("target",)}  # (the further inputs whose gradients are recorded)


def _f64(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _run(rec: dict, capability: str) -> lossgrad.Result:
    w = rec["sample_weight"]
    return lossgrad.evaluate(rec["loss"], _f64(rec["target"]), _f64(rec["pred"]),
                             sample_weight=None if w is None else _f64(w), cpu=capability, convention="torch",
                             dtype=rec["dtype"], reduction=rec["reduction"], autocast=rec["autocast"],
                             **{k: _f64(v) for k, v in rec["extra"].items()}, **rec["options"])


def _apart(rec: dict, r: lossgrad.Result) -> list[str]:
    """The results whose bits differ from PyTorch's (two NaNs alike; −0 and +0 apart)."""
    got = {"losses": r.losses, "value": r.value, "grad": r.grad}
    got |= {f"grad_{k}": r.grads[k] for k in FURTHER.get(rec["loss"], ())}
    want = {"losses": rec["losses"], "value": rec["value"], "grad": rec["grad"]}
    want |= {f"grad_{k}": rec["grads"][k] for k in FURTHER.get(rec["loss"], ())}
    out = []
    for what, expected in want.items():
        if expected is None:
            continue
        b = np.asarray(_f64(expected), dtype=np.float32).reshape(-1)
        a = np.asarray(np.asarray(got[what], dtype=np.float64), dtype=np.float32).reshape(-1)
        differ = (a.view(np.int32) != b.view(np.int32)) & ~(np.isnan(a) & np.isnan(b))
        if a.shape != b.shape or differ.any():
            out.append(f"{what}: {int(differ.sum()) if a.shape == b.shape else 'shape'} of {b.size} apart")
    return out


def _id(i: int, rec: dict) -> str:
    opts = "-".join(k for k, v in rec["options"].items() if v is not False and k != "labels")
    kind = "autocast" if rec["autocast"] else ""
    return f"{rec['loss']}-{rec['dtype']}{kind}-{rec['reduction']}-{'x'.join(map(str, rec['shape']))}-{opts}-{i}"


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(i, r) for i, r in enumerate(RECORDS)])
def test_avx2_kernels_bit_for_bit(rec: dict) -> None:
    r = _run(rec, "avx2")
    assert not any("not bit for bit" in w for w in r.warnings), r.warnings
    assert _apart(rec, r) == []


def test_golden_records_pytorch_on_avx2() -> None:
    assert DATA["versions"]["torch"].startswith("2.13.0")
    assert DATA["versions"]["cpu_capability"] == "AVX2"
    losses = {r["loss"] for r in RECORDS}
    assert losses >= {"ce", "nll", "bce", "mse", "mae", "huber", "smooth-l1", "poisson", "kl", "gaussian-nll",
                      "margin-ranking", "triplet", "cosine", "cosine-embedding", "focal", "dice", "tversky"}
    assert {(r["dtype"], r["autocast"]) for r in RECORDS} == {("float32", False), ("float16", False),
                                                              ("bfloat16", False), ("float16", True),
                                                              ("bfloat16", True)}
    # poisson's float32 e^x and log x (MKL's), without Stirling's term too
    assert any(r["loss"] == "poisson" and r["dtype"] == "float32" and not r["options"].get("full") for r in RECORDS)


def test_the_records_tell_avx2_from_avx512() -> None:
    # AVX-512's 16 lanes and its wider registers' scalar remainders are not AVX2's: reproduced as AVX-512 runs
    # them, log_softmax's row sums (float32 and autocast ce) and σ's and pow's tails differ from these records
    apart = {(r["loss"], r["dtype"], r["autocast"]) for r in RECORDS if _apart(r, _run(r, "avx512"))}
    assert {("ce", "float32", False), ("ce", "float16", True), ("ce", "bfloat16", True), ("bce", "float32", False),
            ("focal", "float32", False)} <= apart


def test_the_capability_is_read_as_a_batch_starts() -> None:
    # the mean's gradient, formed after the call, keeps the lanes read when the batch started: 8 under avx2
    z = np.random.default_rng(3).standard_normal((4, 24)).astype(np.float32)
    with cpu.using("avx2"):
        _, grad, _, _ = lowp.ce(np.zeros_like(z), z, np.arange(4) % 24, lowp.rounder(None))
    with cpu.using("avx512"):
        later = grad(4)
        wide = lowp.ce(np.zeros_like(z), z, np.arange(4) % 24, lowp.rounder(None))[1](4)
    with cpu.using("avx2"):
        again = lowp.ce(np.zeros_like(z), z, np.arange(4) % 24, lowp.rounder(None))[1](4)
    assert np.array_equal(later, again) and not np.array_equal(later, wide)
    assert lowp.LANES == {"avx512": 16, "avx2": 8}
