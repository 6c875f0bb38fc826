"""σ(z) of doubles as PyTorch's CPU kernel forms it (lossgrad.lowp.sigmoid64, MONAI's dice and tversky from logits in
float64): SLEEF's e^x in the registers (lossgrad.sleef64, its fused multiply-adds formed exactly) and the C library's
exp in the scalar loop after them. Against torch.sigmoid's results recorded by scripts/golden_sigmoid64.py in
tests/golden/sigmoid64.json, bit for bit, and live on fresh inputs with PyTorch installed; the fused multiply-add
against exact rational arithmetic."""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from lossgrad import cpu, libm, lowp, sleef64

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_pairs64 import digest, matches  # noqa: E402
from golden_sigmoid64 import inputs  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "sigmoid64.json").read_text())
CPU = {"AVX2": "avx2", "AVX512": "avx512"}[DATA["versions"]["cpu_capability"]]


def _id(rec: dict) -> str:
    return f"{rec['kind']}-{rec['length']}-{rec['seed']}"


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(r) for r in DATA["records"]])
def test_torch_sigmoid_float64_bit_for_bit(rec: dict) -> None:
    z = inputs(rec["seed"], rec["kind"], rec["length"])
    assert digest(z) == rec["inputs_sha256"]  # (the inputs torch was given, rebuilt)
    with cpu.using(CPU):
        assert matches(lowp.sigmoid64(z[None, :]), rec["sigmoid"])


def test_the_records_tell_sleefs_exp_from_the_c_librarys() -> None:
    """In the registers SLEEF's e^x, in the tail the C library's: either alone misses some recorded bits."""
    short = [r for r in DATA["records"] if isinstance(r["sigmoid"], list)]
    zs = [inputs(r["seed"], r["kind"], r["length"]) for r in short]
    with np.errstate(over="ignore"):
        assert not all(matches(1 / (1 + sleef64.exp(-z)), r["sigmoid"]) for z, r in zip(zs, short, strict=True))
        assert not all(matches(1 / (1 + libm.exp(-z)), r["sigmoid"]) for z, r in zip(zs, short, strict=True))


def test_a_block_of_a_long_batch_keeps_its_tails() -> None:
    """A block of rows, placed where it lies in the batch, gives the whole batch's σ for those rows."""
    z = np.random.default_rng(1).normal(size=(40000, 3)) * 30
    whole = lowp.sigmoid64(z)
    assert np.array_equal(np.concatenate([lowp.sigmoid64(z[:16390], (0, 40000)),
                                          lowp.sigmoid64(z[16390:], (16390, 40000))]), whole)


def test_exp_at_its_edges() -> None:
    # e^0 = 1, e^−∞ = 0, e^∞ = ∞, NaN stays NaN, ∞ above 0x1.62e42fefa39efp+9, 0 below −1000, e^1 within an ulp
    x = np.array([0.0, -np.inf, np.inf, np.nan, 709.79, -1000.5, 1.0])
    e = sleef64.exp(x)
    assert e[:3].tolist() == [1.0, 0.0, np.inf] and np.isnan(e[3]) and e[4] == np.inf and e[5] == 0.0
    assert abs(e[6] - np.e) <= np.spacing(np.e)


def _exact_fma(a: float, b: float, c: float) -> float:
    return float(Fraction(a) * Fraction(b) + Fraction(c))


def test_fma_is_rounded_once() -> None:
    rng = np.random.default_rng(7)
    n = 4000
    a, b = (rng.normal(size=n) * 10.0 ** rng.integers(-8, 8, n) for _ in range(2))
    near = -(a * b) * (1 + rng.normal(size=n) * 1e-15)  # (c cancelling a·b: the error term decides)
    ties = np.ldexp(rng.integers(-2**20, 2**20, n).astype(float), -30)  # (a·b + c on or near a midpoint)
    ai, bi = rng.integers(1, 2**26, n).astype(float), rng.integers(1, 2**27, n).astype(float)
    for x, y, c in ((a, b, near), (a, b, rng.normal(size=n)), (ai, bi, ties)):
        got = sleef64.fma(x, y, c)
        assert np.array_equal(got, [_exact_fma(*t) for t in zip(x, y, c, strict=True)])
    # by hand: (1 + 2⁻³⁰)² − 1 = 2⁻²⁹ + 2⁻⁶⁰ exactly, which a product rounded first loses
    u = 1 + 2.0**-30
    assert sleef64.fma(np.array([u]), np.array([u]), -1.0)[0] == 2.0**-29 + 2.0**-60


def test_fma_signs_an_exact_zero_as_the_processor_does() -> None:
    # IEEE 754 in round to nearest: x + y = 0 exactly is −0 only where both are −0; a product below the subnormals
    # rounds to a zero of its own sign
    a = np.array([1.0, -1.0, 1.0, 0.0, 2.0, 1e-300, -1e-300])
    b = np.array([-0.0, -0.0, 0.0, -1.0, 3.0, 1e-300, 1e-300])
    c = np.array([-0.0, -0.0, -0.0, -0.0, -6.0, -0.0, -0.0])
    got = sleef64.fma(a, b, c)
    assert np.all(got == 0) and list(np.signbit(got)) == [True, False, False, True, False, False, True]


@pytest.mark.frameworks
def test_live_on_fresh_inputs(live_rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    for _ in range(20):
        n = int(live_rng.choice([live_rng.integers(1, 100), live_rng.integers(30000, 120000)]))
        z = live_rng.normal(size=n) * 10.0 ** live_rng.uniform(-3, 3)
        assert np.array_equal(lowp.sigmoid64(z[None, :])[0], torch.sigmoid(torch.tensor(z)).numpy())
