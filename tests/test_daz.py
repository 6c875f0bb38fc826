"""Subnormal inputs under Keras 3 and tf-keras: TensorFlow's CPU code reads a subnormal operand as zero
(denormals-are-zero), so lossgrad's kernels for TensorFlow read their input arrays and the numbers the loss takes
that way (kernels.DAZ, flush.daz, lowp_tf.Kind.number). The records of
scripts/golden_daz.py (tests/golden/daz.json) hold the frameworks' losses, values and gradients, bit for bit; before,
a subnormal target times dice's −2/ε, or a class α subnormal in float32, gave a nonzero gradient where Keras gives 0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import flush, kernels, lowp_tf

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "daz.json").read_text())
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
def test_subnormal_inputs_bit_for_bit(rec: dict) -> None:
    assert apart(rec) == []
    assert run(rec, "sum").warnings == []


def test_without_denormals_are_zero_they_are_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """The records tell the rule apart: with subnormal operands read as numbers, some gradients are apart in every
    dtype, for dice, tversky and categorical-focal."""
    monkeypatch.setattr(kernels, "DAZ", ())
    monkeypatch.setattr(flush, "daz", lambda a: a)
    monkeypatch.setattr(lowp_tf, "daz", lambda a: a)
    missed = {(r["loss"], r["dtype"]) for r in DATA["records"] if apart(r)}
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
