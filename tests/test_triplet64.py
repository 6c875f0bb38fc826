"""triplet under the torch convention in float64 with --norm-degree 1 and 2: PyTorch's triplet_margin_loss on its
double kernels, as recorded by scripts/golden_triplet64.py in tests/golden/triplet64.json, bit for bit (losses or
value, and the gradients for the anchor, the positive and the negative), in memory and from tensor files; live on
fresh inputs with PyTorch installed; the norms whose float64 powers are not reproduced stay on lossgrad's formulas,
silently, as before."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_triplet64 import digest, inputs  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "triplet64.json").read_text())
GRADS = (("grad", lambda r: r.grad), ("grad_target", lambda r: r.grads["target"]),
         ("grad_negative", lambda r: r.grads["negative"]))


def _id(rec: dict) -> str:
    return (f"{'x'.join(map(str, rec['shape']))}-{rec['kind']}-p{rec['p']:g}-m{rec['margin']:g}"
            f"{'-swap' if rec['swap'] else ''}-{rec['reduction']}")


def _held(got: np.ndarray, want: object) -> bool:
    if isinstance(want, dict):
        return digest(got) == want["sha256"]
    return bool(np.array_equal(np.asarray(got, dtype=np.float64).reshape(-1),
                               np.array([float.fromhex(v) for v in want]), equal_nan=True))


def _evaluate(rec: dict) -> lossgrad.Result:
    a, pos, neg = inputs(rec["seed"], tuple(rec["shape"]), rec["kind"])
    assert digest(a, pos, neg) == rec["inputs_sha256"]  # (the inputs torch was given, rebuilt)
    return lossgrad.triplet(pos, a, negative=neg, convention="torch", norm_degree=rec["p"], margin=rec["margin"],
                            swap=rec["swap"], reduction=rec["reduction"])


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(r) for r in DATA["records"]])
def test_torch_float64_bit_for_bit(rec: dict) -> None:
    r = _evaluate(rec)
    if rec["reduction"] == "none":
        assert _held(r.losses, rec["losses"])
    else:
        assert r.value == float.fromhex(rec["value"])
    for name, of in GRADS:
        assert _held(of(r), rec[name]), name


def test_the_records_cover_each_norm_swap_reduction_and_kind() -> None:
    seen = {(r["p"], r["swap"], r["reduction"], r["kind"]) for r in DATA["records"]}
    assert seen == {(p, s, red, k) for p in (1.0, 2.0) for s in (False, True) for red in ("none", "sum", "mean")
                    for k in ("random", "near", "equal", "tie")}
    assert {r["shape"][1] % 4 for r in DATA["records"]} == {0, 1, 2, 3}
    assert max(r["shape"][0] for r in DATA["records"]) > 32768 and max(r["shape"][1] for r in DATA["records"]) > 32768


def test_tensor_files(tmp_path: Path) -> None:
    rec = next(r for r in DATA["records"] if r["shape"] == [16, 8] and r["p"] == 2.0 and r["reduction"] == "mean"
               and r["kind"] == "random")
    a, pos, neg = inputs(rec["seed"], (16, 8), "random")
    for name, x in (("a", a), ("pos", pos), ("neg", neg)):
        np.save(tmp_path / f"{name}.npy", x)
    out = tmp_path / "out.npz"
    r = run("triplet", "-p", tmp_path / "a.npy", "-y", tmp_path / "pos.npy", "--negative", tmp_path / "neg.npy",
            "-c", "torch", "--margin", repr(rec["margin"]), "-o", out)
    assert r.code == 0, r.err
    with np.load(out) as d:
        assert _held(d["grad"], rec["grad"]) and _held(d["grad_target"], rec["grad_target"])
        assert _held(d["grad_negative"], rec["grad_negative"])


def test_other_norms_stay_on_the_formulas_without_a_warning() -> None:
    r = lossgrad.triplet([[1.0, 2.0]], [[0.5, 1.0]], negative=[[0.0, 3.0]], convention="torch", norm_degree=3)
    assert r.warnings == [] and np.isfinite(r.value)


@pytest.mark.frameworks
def test_live_on_fresh_inputs(live_rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    rng = live_rng
    for _ in range(40):
        b, d = int(rng.integers(1, 40)), int(rng.integers(1, 70))
        a, pos, neg = (rng.normal(size=(b, d)) * 10.0 ** rng.uniform(-3, 3) for _ in range(3))
        p, swap, margin = float(rng.choice([1.0, 2.0])), bool(rng.integers(2)), float(rng.choice([1.0, 0.3, 4.0]))
        ta, tp, tn = (torch.tensor(x, requires_grad=True) for x in (a, pos, neg))
        loss = torch.nn.functional.triplet_margin_loss(ta, tp, tn, margin=margin, p=p, swap=swap)
        loss.backward()
        r = lossgrad.triplet(pos, a, negative=neg, convention="torch", norm_degree=p, margin=margin, swap=swap)
        assert r.value == loss.item()
        for got, want in ((r.grad, ta.grad), (r.grads["target"], tp.grad), (r.grads["negative"], tn.grad)):
            assert np.array_equal(got, want.numpy())
