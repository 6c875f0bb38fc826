"""poisson under the torch convention in float64: PyTorch's poisson_nll_loss on its double kernels (its e^x and
log x MKL's vmdExp and vmdLn: the mkl extra, which the test extra installs), as recorded by
scripts/golden_poisson64.py in tests/golden/poisson64.json, bit for bit (losses or value, and the gradient); live on
fresh inputs with PyTorch installed; without MKL, float64 stays on lossgrad's formulas, silently, as before
(sample weights: tests/test_weights64.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import mkl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_pairs64 import digest, matches, reduced_matches  # noqa: E402
from golden_poisson64 import inputs  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "poisson64.json").read_text())
NEEDS_MKL = pytest.mark.skipif(not mkl.available(),
                               reason="the mkl extra is not installed (e^x and log x in double are MKL's)")


def _id(rec: dict) -> str:
    return (f"{'x'.join(map(str, rec['shape']))}-{rec['kind']}-{'log' if rec['log_input'] else 'rate'}"
            f"{'-full' if rec['full'] else ''}-{rec['reduction']}")


@NEEDS_MKL
@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(r) for r in DATA["records"]])
def test_torch_float64_bit_for_bit(rec: dict) -> None:
    y, p = inputs(rec["seed"], tuple(rec["shape"]), rec["kind"], rec["log_input"])
    assert digest(y, p) == rec["inputs_sha256"]  # (the inputs torch was given, rebuilt)
    r = lossgrad.evaluate("poisson", y, p, convention="torch", from_logits=rec["log_input"], full=rec["full"],
                          reduction=rec["reduction"])
    assert reduced_matches(r, rec)
    assert matches(r.grad, rec["grad"])


def test_the_records_cover_each_kind_mode_and_reduction() -> None:
    assert {(r["kind"], r["log_input"], r["full"], r["reduction"]) for r in DATA["records"]} == {
        (k, li, f, red) for k in ("random", "edges") for li in (False, True) for f in (False, True)
        for red in ("none", "sum", "mean")}
    assert max(r["shape"][0] for r in DATA["records"]) > 32768 and max(r["shape"][1] for r in DATA["records"]) > 32768


def test_the_formulas_differ_where_the_kernels_are_not_correctly_rounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without MKL, torch's float64 poisson is lossgrad's formulas, and some recorded bits are not theirs (so the
    records tell the kernels from the formulas)."""
    monkeypatch.setattr(mkl, "available", lambda: False)
    apart = 0
    for rec in DATA["records"]:
        if rec["reduction"] == "none" and isinstance(rec["grad"], list):
            y, p = inputs(rec["seed"], tuple(rec["shape"]), rec["kind"], rec["log_input"])
            r = lossgrad.evaluate("poisson", y, p, convention="torch", from_logits=rec["log_input"], full=rec["full"],
                                  reduction="none")
            apart += not (matches(r.losses, rec["losses"]) and matches(r.grad, rec["grad"]))
    assert apart > 0


def test_without_mkl_it_stays_on_the_formulas(monkeypatch: pytest.MonkeyPatch) -> None:
    kw = {"convention": "torch", "full": True}
    monkeypatch.setattr(mkl, "available", lambda: False)
    assert lossgrad.evaluate("poisson", [[3.0, 0.0]], [[1.5, 1.0]], sample_weight=[2.0], **kw).warnings == []
    r = lossgrad.evaluate("poisson", [[3.0, 0.0]], [[1.5, 1.0]], **kw)
    assert r.warnings == []
    # worked by hand: 1.5 − 3·log(1.5 + 1e−8) + 3·log 3 − 3 + ½·log(6π), and 1 − 0·log(1 + 1e−8)
    assert r.losses[0, 0] == pytest.approx(1.5 - 3 * np.log(1.5) + 3 * np.log(3) - 3 + 0.5 * np.log(6 * np.pi))
    assert r.losses[0, 1] == 1.0


@pytest.mark.frameworks
@NEEDS_MKL
def test_live_on_fresh_inputs(live_rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    rng = live_rng
    for _ in range(40):
        b, d = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        rate = rng.random((b, d)) * 10.0 ** rng.uniform(-3, 4)
        y, log_input, full = rng.poisson(rate).astype(float), bool(rng.integers(2)), bool(rng.integers(2))
        p = np.log(rate + 1e-12) if log_input else rate
        tp = torch.tensor(p, requires_grad=True)
        loss = torch.nn.functional.poisson_nll_loss(tp, torch.tensor(y), log_input=log_input, full=full)
        loss.backward()
        r = lossgrad.evaluate("poisson", y, p, convention="torch", from_logits=log_input, full=full)
        assert r.value == loss.item() and np.array_equal(r.grad, tp.grad.numpy())
