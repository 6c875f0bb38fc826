"""triplet (any --norm-degree), cosine-embedding and cosine under the torch convention in float64: PyTorch's
triplet_margin_loss and cosine_embedding_loss on its double kernels, as recorded by scripts/golden_pairs64.py in
tests/golden/pairs64.json (norms 1 and 2) and pairs64_pow.json (the other norms, whose powers are the C library's pow
and SLEEF's powd by the recording processor's registers), bit for bit (losses or value, and every input's gradient),
in memory and from tensor files; live on fresh inputs with PyTorch installed. The cosine losses, and the norms ½,
1.5 and 2.5 (a backward power of ½), need MKL's double root (the mkl extra, which the test extra installs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad import mkl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_pairs64 import cosine_inputs, digest, inputs, matches, reduced_matches  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "pairs64.json").read_text())
POW = json.loads((Path(__file__).resolve().parent / "golden" / "pairs64_pow.json").read_text())
CAPABILITY = POW["versions"]["cpu_capability"].lower()  # (the registers whose pairs SLEEF's powd took)
TRIPLET = [r for r in DATA["records"] if r["loss"] == "triplet"]
COSINE = [r for r in DATA["records"] if r["loss"] != "triplet"]
GRADS = (("grad", lambda r: r.grad), ("grad_target", lambda r: r.grads["target"]),
         ("grad_negative", lambda r: r.grads["negative"]))


def _id(rec: dict) -> str:
    if rec["loss"] != "triplet":
        return f"{rec['loss']}-{'x'.join(map(str, rec['shape']))}-{rec['kind']}-m{rec['margin']:g}-{rec['reduction']}"
    return (f"{'x'.join(map(str, rec['shape']))}-{rec['kind']}-p{rec['p']:g}-m{rec['margin']:g}"
            f"{'-swap' if rec['swap'] else ''}-{rec['reduction']}")


def _evaluate(rec: dict, capability: str | None = None) -> lossgrad.Result:
    a, pos, neg = inputs(rec["seed"], tuple(rec["shape"]), rec["kind"])
    assert digest(a, pos, neg) == rec["inputs_sha256"]  # (the inputs torch was given, rebuilt)
    return lossgrad.triplet(pos, a, negative=neg, convention="torch", norm_degree=rec["p"], margin=rec["margin"],
                            swap=rec["swap"], reduction=rec["reduction"], cpu=capability)


def _apart(rec: dict, r: lossgrad.Result) -> list[str]:
    out = [] if reduced_matches(r, rec) else ["losses" if rec["reduction"] == "none" else "value"]
    return out + [name for name, of in GRADS if not matches(of(r), rec[name])]


@pytest.mark.parametrize("rec", TRIPLET, ids=[_id(r) for r in TRIPLET])
def test_torch_float64_bit_for_bit(rec: dict) -> None:
    assert _apart(rec, _evaluate(rec)) == []


@pytest.mark.skipif(not mkl.available(), reason="the mkl extra is not installed (PyTorch's double root is MKL's)")
@pytest.mark.parametrize("rec", POW["records"], ids=[_id(r) for r in POW["records"]])
def test_other_norms_float64_bit_for_bit(rec: dict) -> None:
    r = _evaluate(rec, CAPABILITY)
    assert _apart(rec, r) == [] and r.warnings == []


def test_the_other_norms_take_sleefs_powers_and_the_c_librarys() -> None:
    # with the C library's pow in every element instead of SLEEF's powd in whole registers, or SLEEF's in the
    # scalar loop too, records are apart (their backward powers; the forward's Σ|u|^q is the C library's alone)
    from lossgrad import lowp, sleef64

    recs = [r for r in POW["records"] if r["p"] in (3.5, 0.75, 1 / 3, 7.0, 1.2) and r["shape"][0] * r["shape"][1] >= 8]
    libm_only = pytest.MonkeyPatch()
    libm_only.setattr(sleef64, "pow", lambda x, y: np.power(x, y))
    try:
        assert sum(bool(_apart(r, _evaluate(r, CAPABILITY))) for r in recs) >= len(recs) // 4
    finally:
        libm_only.undo()
    sleef_only = pytest.MonkeyPatch()
    sleef_only.setattr(lowp, "tails", lambda shape, width, place=None: np.zeros(shape, dtype=bool))
    try:
        assert any(_apart(r, _evaluate(r, CAPABILITY)) for r in recs)
    finally:
        sleef_only.undo()


@pytest.mark.skipif(not mkl.available(), reason="the mkl extra is not installed (PyTorch's double root is MKL's)")
@pytest.mark.parametrize("rec", COSINE, ids=[_id(r) for r in COSINE])
def test_cosine_float64_bit_for_bit(rec: dict) -> None:
    x1, x2, labels = cosine_inputs(rec["seed"], tuple(rec["shape"]), rec["kind"])
    assert digest(x1, x2, labels) == rec["inputs_sha256"]
    if rec["loss"] == "cosine":
        r = lossgrad.cosine(x2, x1, convention="torch", reduction=rec["reduction"])
    else:
        r = lossgrad.evaluate("cosine-embedding", x2, x1, label=labels, convention="torch", margin=rec["margin"],
                              reduction=rec["reduction"])
        assert matches(r.grads["target"], rec["grad_target"])
    assert reduced_matches(r, rec)
    assert matches(r.grad, rec["grad"])


def test_without_mkl_cosine_stays_on_the_formulas_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mkl, "available", lambda: False)
    r = lossgrad.cosine([[1.0, 2.0], [0.5, 0.1]], [[0.9, 2.2], [0.4, 0.3]], convention="torch")
    assert r.warnings == [] and np.isfinite(r.value)


def test_the_records_cover_each_norm_swap_reduction_and_kind() -> None:
    assert {(r["loss"], r["kind"], r["reduction"]) for r in COSINE} == {
        (loss, k, red) for loss in ("cosine-embedding", "cosine") for k in ("random", "parallel", "zero")
        for red in ("none", "sum", "mean")}
    seen = {(r["p"], r["swap"], r["reduction"], r["kind"]) for r in TRIPLET}
    assert seen == {(p, s, red, k) for p in (1.0, 2.0) for s in (False, True) for red in ("none", "sum", "mean")
                    for k in ("random", "near", "equal", "tie")}
    assert {r["shape"][1] % 4 for r in DATA["records"]} == {0, 1, 2, 3}
    assert max(r["shape"][0] for r in DATA["records"]) > 32768 and max(r["shape"][1] for r in DATA["records"]) > 32768


def test_tensor_files(tmp_path: Path) -> None:
    rec = next(r for r in TRIPLET if r["shape"] == [16, 8] and r["p"] == 2.0 and r["reduction"] == "mean"
               and r["kind"] == "random")
    a, pos, neg = inputs(rec["seed"], (16, 8), "random")
    for name, x in (("a", a), ("pos", pos), ("neg", neg)):
        np.save(tmp_path / f"{name}.npy", x)
    out = tmp_path / "out.npz"
    r = run("triplet", "-p", tmp_path / "a.npy", "-y", tmp_path / "pos.npy", "--negative", tmp_path / "neg.npy",
            "-c", "torch", "--margin", repr(rec["margin"]), "-o", out)
    assert r.code == 0, r.err
    with np.load(out) as d:
        assert matches(d["grad"], rec["grad"]) and matches(d["grad_target"], rec["grad_target"])
        assert matches(d["grad_negative"], rec["grad_negative"])


def test_without_mkl_a_root_norm_stays_on_the_formulas_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    # (as cosine does: the float64 formulas are within a few ulp; a norm of ½, 1.5 or 2.5 takes MKL's double √)
    rec = next(r for r in POW["records"] if r["p"] == 1.5 and r["shape"] == [16, 8] and r["reduction"] == "mean")
    assert _apart(rec, _evaluate(rec, CAPABILITY)) == []
    monkeypatch.setattr(mkl, "available", lambda: False)
    r = _evaluate(rec, CAPABILITY)
    assert r.warnings == [] and _apart(rec, r) != []


@pytest.mark.frameworks
def test_sleefs_powd_is_torch_pow_live(live_rng: np.random.Generator) -> None:
    # torch.pow of whole pairs of registers (a multiple of 16 doubles: no scalar loop) at exponents its kernel sends
    # to SLEEF, over doubles from subnormals to 1e304, with 0, ∞, 1 and the smallest normal
    torch = pytest.importorskip("torch")
    from lossgrad import sleef64

    rng = live_rng
    for y in (1.5, 2.5, 0.75, -0.75, 1 / 3, -2 / 3, 3.5, 4.2, -1.5, 0.3, 7.0, 5.0, -3.0, 2.0000001, 100.5, -0.1):
        x = np.concatenate([rng.random(4000) * 10, np.exp(rng.uniform(-700, 700, 4000)), rng.random(80) * 1e-310,
                            [0.0, np.inf, 1.0, 5e-324, 2.2250738585072014e-308]])[:8080]
        got, want = sleef64.pow(x, y), torch.from_numpy(x).pow(y).numpy()
        assert np.array_equal(got.view(np.int64), want.view(np.int64)), y


@pytest.mark.frameworks
def test_live_on_fresh_inputs(live_rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    rng = live_rng
    for _ in range(40):
        b, d = int(rng.integers(1, 40)), int(rng.integers(1, 70))
        a, pos, neg = (rng.normal(size=(b, d)) * 10.0 ** rng.uniform(-3, 3) for _ in range(3))
        p = float(rng.choice([1.0, 2.0, 3.0, 0.75, 3.5, 1.2] + ([1.5, 0.5, 2.5] if mkl.available() else [])))
        swap, margin = bool(rng.integers(2)), float(rng.choice([1.0, 0.3, 4.0]))
        ta, tp, tn = (torch.tensor(x, requires_grad=True) for x in (a, pos, neg))
        loss = torch.nn.functional.triplet_margin_loss(ta, tp, tn, margin=margin, p=p, swap=swap)
        loss.backward()
        r = lossgrad.triplet(pos, a, negative=neg, convention="torch", norm_degree=p, margin=margin, swap=swap)
        assert r.value == loss.item()
        for got, want in ((r.grad, ta.grad), (r.grads["target"], tp.grad), (r.grads["negative"], tn.grad)):
            assert np.array_equal(got, want.numpy())


@pytest.mark.frameworks
@pytest.mark.skipif(not mkl.available(), reason="the mkl extra is not installed (PyTorch's double root is MKL's)")
def test_live_cosine_on_fresh_inputs(live_rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    rng = live_rng
    for _ in range(40):
        b, d = int(rng.integers(1, 40)), int(rng.integers(1, 70))
        x1, x2 = (rng.normal(size=(b, d)) * 10.0 ** rng.uniform(-3, 3) for _ in range(2))
        labels, margin = np.where(rng.random(b) < 0.5, 1.0, -1.0), float(rng.choice([0.0, 0.4]))
        t1, t2 = (torch.tensor(x, requires_grad=True) for x in (x1, x2))
        loss = torch.nn.functional.cosine_embedding_loss(t1, t2, torch.tensor(labels), margin=margin)
        loss.backward()
        r = lossgrad.evaluate("cosine-embedding", x2, x1, label=labels, convention="torch", margin=margin)
        assert r.value == loss.item()
        assert np.array_equal(r.grad, t1.grad.numpy()) and np.array_equal(r.grads["target"], t2.grad.numpy())


def test_distances_past_the_float_range_as_pytorch_has_them() -> None:
    import math

    # one feature: torch's norm over a dimension of 1 is |u|, nothing squared. a = 1e200, positive −1e200,
    # negative 5e199: d(a, p) = 2e200, d(a, n) = 5e199 (ε = 1e−6 far below their ulp), ℓ = (1 + 2e200) − 5e199;
    # each gradient is the sign of its difference: anchor 1 − 1 = 0, positive −1, negative 1
    r = lossgrad.triplet([[-1e200]], [[1e200]], negative=[[5e199]], convention="torch", reduction="sum")
    assert r.value == (1.0 + 2e200) - 5e199
    assert (r.grad.tolist(), r.grads["target"].tolist(), r.grads["negative"].tolist()) == ([[0.0]], [[-1.0]], [[1.0]])
    # two features: a = (1e154, 2e154), positive −a: the squares of u = 2a overflow, d(a, p) = ∞ and ℓ = ∞; the
    # anchor's gradient is then −(a − n)/d(a, n) alone, n = (5e153, 1e154): −(1, 2)/√5
    r = lossgrad.triplet([[-1e154, -2e154]], [[1e154, 2e154]], negative=[[5e153, 1e154]], convention="torch",
                         reduction="sum")
    assert r.value == math.inf
    assert np.allclose(r.grad, [[-1 / math.sqrt(5), -2 / math.sqrt(5)]], rtol=1e-15, atol=0)


def test_optax_formula_takes_a_fractional_norm_degree_as_it_is() -> None:
    # by hand, optax's (Σ(a − v)^q + ε)^(1/q) with no |·|: q = ½ on differences of 1 and 4 (anchor 5, positive 4,
    # negative 1): d(a, pos) = (1 + ε)², d(a, neg) = (2 + ε)², so the loss is max(0, (1 + ε)² − (2 + ε)² + 1) = 0
    # and for a margin of 4, 4 + (1 + ε)² − (2 + ε)²; the formulas once took q as int(q) = 0
    eps = 1e-6
    for margin, want in ((1.0, 0.0), (4.0, 4 + (1 + eps) ** 2 - (2 + eps) ** 2)):
        r = lossgrad.evaluate("triplet", [[4.0]], [[5.0]], negative=[[1.0]], convention="optax", norm_degree=0.5,
                              margin=margin, reduction="none")
        assert r.losses[0] == pytest.approx(want, rel=1e-15, abs=0)
