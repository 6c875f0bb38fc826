"""Keras 3 and tf-keras at the edges of the floating-point range, as scripts/golden_tf_edges.py recorded them in
tests/golden/tf_edges.json (losses, values and gradients, bit for bit).

Subnormal inputs: TensorFlow's CPU code reads a subnormal operand as zero (denormals-are-zero), so lossgrad's kernels
for TensorFlow read their input arrays and the numbers the loss takes that way (kernels.DAZ, flush.daz,
lowp_tf.Kind.number); before, a subnormal target times dice's −2/ε, or a class α subnormal in float32, gave a nonzero
gradient where Keras gives 0. Huge exponents: Eigen's pow gives 0 or ∞ outright from |γ| = 7.4e8 in float32
(lowp_tf_focal32.HUGE_EXPONENT), where lossgrad's double words overflowed to NaN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import flush, kernels, lowp_tf

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "tf_edges.json").read_text())
REDUCTIONS = {"sum": "sum", "sum_over_batch_size": "mean"}


def _id(rec: dict) -> str:
    return f"{rec['convention']}-{rec['loss']}-{rec['dtype']}-{'-'.join(f'{k}{v}' for k, v in rec['options'].items())}"


def run(rec: dict, reduction: str) -> lossgrad.Result:
    y = np.array([float.fromhex(v) for v in rec["target"]]).reshape(rec["shape"])
    p = np.array([float.fromhex(v) for v in rec["pred"]]).reshape(rec["shape"])
    return lossgrad.evaluate(rec["loss"], y, p, convention=rec["convention"], dtype=rec["dtype"],
                             reduction=reduction, cpu="avx2", **rec["options"])


def bits(a: object) -> list[str]:
    return [float(v).hex() for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def apart(rec: dict) -> list[str]:
    """What of the record lossgrad gives otherwise (the losses, and each reduction's value and gradient)."""
    out = [] if bits(run(rec, "none").losses) == rec["losses"] else ["losses"]
    for theirs, mine in REDUCTIONS.items():
        r = run(rec, mine)
        out += [f"{mine} value"] if float(r.value).hex() != rec[theirs]["value"] else []
        out += [f"{mine} grad"] if bits(r.grad) != rec[theirs]["grad"] else []
    return out


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(r) for r in DATA["records"]])
def test_the_edges_bit_for_bit(rec: dict) -> None:
    assert apart(rec) == []
    # (the kernels', not the formulas'; a warning of NaN that Keras computes too may stand)
    assert not [w for w in run(rec, "sum").warnings if "not bit for bit" in w or "not reproduced" in w]


def test_huge_exponents_without_eigens_rule_are_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eigen's pow gives 0 or ∞ outright from |γ| = max_exponent·ln 2/ε; without that rule its double words
    overflow at γ = 3e38 (the exponent times γ), and the float32 records of whole packets come out NaN."""
    from lossgrad import lowp_tf_focal32

    monkeypatch.setattr(lowp_tf_focal32, "HUGE_EXPONENT", np.float32(np.inf))
    huge = [r for r in DATA["records"] if r["dtype"] == "float32" and r["options"].get("gamma", 0) >= 1e38
            and r["shape"][1] >= 8]
    assert len(huge) == 6 and all(apart(r) for r in huge)


def test_without_denormals_are_zero_they_are_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """The records tell the rule apart: with subnormal operands read as numbers, some gradients are apart in every
    dtype, for dice, tversky and categorical-focal."""
    monkeypatch.setattr(kernels, "DAZ", ())
    monkeypatch.setattr(flush, "daz", lambda a: a)
    monkeypatch.setattr(lowp_tf, "daz", lambda a: a)
    missed = {(r["loss"], r["dtype"]) for r in DATA["records"] if r["options"].get("gamma", 0) < 1e9 and apart(r)}
    assert {loss for loss, _ in missed} == {"dice", "tversky", "categorical-focal"}
    assert {dtype for _, dtype in missed} == {"float32", "bfloat16", "float64"}


def test_the_rule_by_hand() -> None:
    """flush.daz: each subnormal element a zero of its sign, in the array's own type; normal numbers, zeros, NaN,
    infinities and non-float arrays as they are."""
    tiny32, tiny64 = np.finfo(np.float32).tiny, np.finfo(np.float64).tiny
    got = flush.daz(np.array([1e-40, -1e-40, tiny32, -0.0, np.inf, np.nan, 1.0], dtype=np.float32))
    assert bits(got[:5]) == ["0x0.0p+0", "-0x0.0p+0", float(tiny32).hex(), "-0x0.0p+0", "inf"]
    assert np.isnan(got[5]) and got[6] == 1
    assert bits(flush.daz(np.array([5e-324, -1e-310, tiny64, 1e-40]))) == [
        "0x0.0p+0", "-0x0.0p+0", float(tiny64).hex(), (1e-40).hex()]
    labels = np.array([1, 2, 3])
    assert flush.daz(labels) is labels and flush.daz(None) is None
