"""margin-ranking under the torch convention in float64: PyTorch's margin_ranking_loss on its double kernels, as
recorded by scripts/golden_margin64.py in tests/golden/margin64.json, bit for bit and with the sign of every zero
(losses or value, and the gradients for x1 and x2); live on fresh inputs with PyTorch installed. Before, float64 ran
lossgrad's formulas: numpy's sum for the value (an ulp apart where torch.sum's 4 lanes round otherwise) and +0 for a
clamped pair's gradient where autograd gives −0."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lossgrad
from lossgrad import lowp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_margin64 import KINDS, MARGINS, inputs  # noqa: E402
from golden_pairs64 import digest  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "margin64.json").read_text())


def _id(rec: dict) -> str:
    return (f"{'x'.join(map(str, rec['shape']))}-{rec['kind']}-m{rec['margin']:g}"
            f"{'-weighted' if rec['weighted'] else ''}-{rec['reduction']}")


def same_bits(got: Any, kept: Any) -> bool:
    """Whether `got` has the bits recorded, a zero's sign included (the SHA-256 of larger arrays hashes them)."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    if isinstance(kept, dict):
        return digest(got) == kept["sha256"]
    return [float(v).hex() for v in got] == kept


def run(rec: dict) -> lossgrad.Result:
    y, x1, x2, w = inputs(rec["seed"], tuple(rec["shape"]), rec["kind"], rec["margin"], rec["weighted"])
    assert digest(y, x1, x2, *(() if w is None else (w,))) == rec["inputs_sha256"]  # (torch's inputs, rebuilt)
    return lossgrad.evaluate("margin-ranking", y, x1, other=x2, convention="torch", margin=rec["margin"],
                             reduction=rec["reduction"], sample_weight=w)


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(r) for r in DATA["records"]])
def test_torch_float64_bit_for_bit(rec: dict) -> None:
    r = run(rec)
    assert r.warnings == []
    if rec["reduction"] == "none":
        assert same_bits(r.losses, rec["losses"])
    else:
        assert float(r.value).hex() == rec["value"]
    assert same_bits(r.grad, rec["grad"]) and same_bits(r.grads["other"], rec["grad_other"])


def test_the_records_cover_each_kind_margin_weighing_and_reduction() -> None:
    assert {(r["kind"], repr(r["margin"]), r["weighted"], r["reduction"]) for r in DATA["records"]} == {
        (k, repr(m), w, red) for k in KINDS for m in MARGINS for w in (False, True) for red in ("none", "sum", "mean")}
    # (a tie under a margin of −0 is a loss of −0: clamp_min keeps it)
    assert any(v == "-0x0.0p+0" for r in DATA["records"] if repr(r["margin"]) == "-0.0" and r["kind"] == "tie"
               and isinstance(r["losses"], list) for v in r["losses"])
    assert max(r["shape"][0] for r in DATA["records"]) > 32768 and max(r["shape"][1] for r in DATA["records"]) > 4096
    # (clamped pairs' zero gradients of both signs, and values whose last bit is torch.sum's)
    grads = [float.fromhex(v) for r in DATA["records"] if r["kind"] == "clamped" and isinstance(r["grad"], list)
             for v in r["grad"]]
    assert {np.copysign(1.0, g) for g in grads if g == 0} == {1.0, -1.0}


def test_numpy_sums_and_the_formulas_zeros_are_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """The records tell the kernels from lossgrad's float64 formulas: without float64 kernels for margin-ranking,
    some values (numpy's sum) and the clamped pairs' zeros are apart."""
    monkeypatch.setitem(lowp.FLOAT64, "margin-ranking", "nothing")
    monkeypatch.setattr(lowp.mkl, "available", lambda: False)
    apart = {"value": 0, "grad": 0}
    for rec in DATA["records"]:
        if rec["reduction"] != "none" and not rec["weighted"] and rec["margin"] >= 0:
            r = run(rec)
            apart["value"] += float(r.value).hex() != rec["value"]
            apart["grad"] += not same_bits(r.grad, rec["grad"])
    assert apart["value"] > 0 and apart["grad"] > 0, apart


@pytest.mark.frameworks
def test_live_on_fresh_inputs(live_rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    rng = live_rng
    for _ in range(60):
        shape = (int(rng.integers(1, 60)), int(rng.integers(1, 9)))
        y = np.where(rng.random(shape) < 0.5, 1.0, -1.0)
        x1, x2 = (rng.normal(size=shape) * 10.0 ** rng.uniform(-3, 3) for _ in range(2))
        margin, reduction = float(rng.choice([0.0, 0.3, 2.0])), str(rng.choice(["sum", "mean"]))
        t1, t2 = (torch.tensor(x, requires_grad=True) for x in (x1, x2))
        loss = torch.nn.functional.margin_ranking_loss(t1, t2, torch.tensor(y), margin=margin, reduction=reduction)
        loss.backward()
        r = lossgrad.evaluate("margin-ranking", y, x1, other=x2, convention="torch", margin=margin,
                              reduction=reduction)
        assert float(r.value).hex() == float(loss.item()).hex()
        assert same_bits(r.grad, [float(v).hex() for v in t1.grad.numpy().reshape(-1)])
        assert same_bits(r.grads["other"], [float(v).hex() for v in t2.grad.numpy().reshape(-1)])


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_a_margin_of_minus_zero_keeps_a_ties_minus_zero(dtype: str) -> None:
    """By hand: y = 1, x1 = x2 = 1, margin −0: −1·(1 − 1) = −0, −0 + −0 = −0, and clamp_min(−0, 0) keeps x, which is
    not below 0; its gradient passes (x ≥ 0): −1 for x1. The pair x1 = 2 is clamped: +0, and a gradient of −0."""
    r = lossgrad.evaluate("margin-ranking", [1.0, 1.0], [1.0, 2.0], other=[1.0, 1.0], margin=-0.0, convention="torch",
                          reduction="none", dtype=dtype)
    assert [float(v).hex() for v in r.losses] == ["-0x0.0p+0", "0x0.0p+0"]
    assert [float(v).hex() for v in r.grad] == ["-0x1.0000000000000p+0", "-0x0.0p+0"]


def test_negative_margins_are_taken_as_pytorch_takes_them() -> None:
    """By hand: x1 = (0.75, 0.25), x2 = (0.5, 2), y = (1, −1), margin −0.5: −(0.25) − 0.5 < 0 and −(1.75) − 0.5 < 0,
    both 0; x1 = (0.25, 0.5), x2 = (0.5, 0.25), margin −0.125: 0.25 − 0.125 = 0.125 and 0.25 − 0.125 = 0.125, mean
    0.125, gradients ∓½ (−y/N)."""
    for conv in ("exact", "torch"):
        r = lossgrad.evaluate("margin-ranking", [1.0, -1.0], [0.75, 0.25], other=[0.5, 2.0], margin=-0.5,
                              convention=conv)
        assert r.value == 0.0
        r = lossgrad.evaluate("margin-ranking", [1.0, -1.0], [0.25, 0.5], other=[0.5, 0.25], margin=-0.125,
                              convention=conv)
        assert r.value == 0.125 and list(r.grad) == [-0.5, 0.5] and list(r.grads["other"]) == [0.5, -0.5]
