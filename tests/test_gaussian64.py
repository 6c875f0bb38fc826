"""gaussian-nll under the torch convention in float64: PyTorch's gaussian_nll_loss on its double kernels (its log v
MKL's vmdLn: the mkl extra, which the test extra installs), as recorded by scripts/golden_gaussian64.py in
tests/golden/gaussian64.json, bit for bit (losses or value, and the gradients for the predictions and the
variances); live on fresh inputs with PyTorch installed; without MKL, float64 stays on lossgrad's formulas,
silently, as before (sample weights: tests/test_weights64.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import mkl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_gaussian64 import inputs  # noqa: E402
from golden_pairs64 import digest, matches, reduced_matches  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "gaussian64.json").read_text())
NEEDS_MKL = pytest.mark.skipif(not mkl.available(), reason="the mkl extra is not installed (log v in double is MKL's)")


def _id(rec: dict) -> str:
    return (f"{'x'.join(map(str, rec['shape']))}-{rec['kind']}-{'sample' if rec['per_sample'] else 'each'}"
            f"{'-full' if rec['full'] else ''}-eps{rec['eps']:g}-{rec['reduction']}")


@NEEDS_MKL
@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(r) for r in DATA["records"]])
def test_torch_float64_bit_for_bit(rec: dict) -> None:
    y, p, var = inputs(rec["seed"], tuple(rec["shape"]), rec["kind"], rec["per_sample"])
    assert digest(y, p, var) == rec["inputs_sha256"]  # (the inputs torch was given, rebuilt)
    r = lossgrad.evaluate("gaussian-nll", y, p, var=var, convention="torch", full=rec["full"], var_eps=rec["eps"],
                          reduction=rec["reduction"])
    assert reduced_matches(r, rec)
    assert matches(r.grad, rec["grad"]) and matches(np.reshape(r.grads["var"], var.shape), rec["grad_var"])


def test_the_records_cover_each_kind_layout_and_reduction() -> None:
    assert {(r["kind"], r["per_sample"], r["reduction"]) for r in DATA["records"]} == {
        (k, s, red) for k in ("random", "clamped", "exact") for s in (False, True) for red in ("none", "sum", "mean")}
    assert {r["full"] for r in DATA["records"]} == {False, True}
    assert max(r["shape"][0] for r in DATA["records"]) > 32768 and max(r["shape"][1] for r in DATA["records"]) > 32768


def test_without_mkl_it_stays_on_the_formulas(monkeypatch: pytest.MonkeyPatch) -> None:
    kw = {"var": [[0.5, 2.0]], "convention": "torch"}
    monkeypatch.setattr(mkl, "available", lambda: False)
    for weights in (None, [2.0]):
        assert lossgrad.evaluate("gaussian-nll", [[1.0, 2.0]], [[1.5, 1.0]], sample_weight=weights, **kw).warnings == []


@pytest.mark.frameworks
@NEEDS_MKL
def test_live_on_fresh_inputs(live_rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    rng = live_rng
    for _ in range(40):
        b, d = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        y, p = rng.normal(size=(b, d)), rng.normal(size=(b, d)) * 10.0 ** rng.uniform(-3, 3)
        var = rng.random((b, 1) if rng.integers(2) else (b, d)) * 10.0 ** rng.uniform(-8, 3)
        full = bool(rng.integers(2))
        tp, tv = (torch.tensor(x, requires_grad=True) for x in (p, var))
        loss = torch.nn.functional.gaussian_nll_loss(tp, torch.tensor(y), tv, full=full)
        loss.backward()
        r = lossgrad.evaluate("gaussian-nll", y, p, var=var, convention="torch", full=full)
        assert r.value == loss.item() and np.array_equal(r.grad, tp.grad.numpy())
        assert np.array_equal(np.reshape(r.grads["var"], var.shape), tv.grad.numpy())
