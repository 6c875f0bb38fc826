"""ctc: the frameworks' numbers recorded by scripts/golden_ctc.py (tests/golden/ctc.json), a case worked by hand,
finite differences, and the mpmath oracle."""

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad

GOLDEN = json.loads((Path(__file__).resolve().parent / "golden" / "ctc.json").read_text())


def _num(x):
    return np.array(x, dtype=object).astype(np.float64) if isinstance(x, list) else float(x)


def _close(got, want, rtol, atol, what):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    with np.errstate(invalid="ignore"):
        ok = (got == want) | (np.isnan(got) & np.isnan(want)) | (np.abs(got - want) <= rtol * np.abs(want) + atol)
    assert ok.all(), f"{what}: got {got[~ok][:4]} want {want[~ok][:4]} at {np.argwhere(~ok)[:4].tolist()}"


def _golden_id(case):
    return f"{case['name']}-{case['convention']}-{case['dtype']}-{case['reduction']}" + (
        "-zero_infinity" if case["zero_infinity"] else "")


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=_golden_id)
def test_convention_reproduces_framework(case):
    kw = {"zero_infinity": True} if case["zero_infinity"] else {}
    r = lossgrad.ctc(np.array(case["labels"]), _num(case["pred"]), input_lengths=case["input_lengths"],
                     target_lengths=case["target_lengths"], from_logits=case["from_logits"],
                     convention=case["convention"], reduction=case["reduction"], dtype=case["dtype"],
                     blank=case["blank"], **kw)
    f32 = case["dtype"] == "float32" or case["convention"] == "keras"  # (Keras computes ctc in float32)
    # the recursions add T log-probabilities and take exponentials of their sums: each framework rounds those sums
    # at the size of the largest log-probability or of the loss (optax's 1e5 for an impossible alignment), T times
    pred, losses = _num(case["pred"]), _num(case["losses"])
    eps = np.finfo(np.float32 if f32 else np.float64).eps
    atol = 8 * eps * pred.shape[1] * (1 + np.abs(pred).max() + np.abs(losses[np.isfinite(losses)]).max())
    rtol = 8 * eps if f32 else 1e-12
    _close(r.grad, _num(case["grad"]), rtol, atol, "grad")
    want_losses = losses / (np.maximum(case["target_lengths"], 1) if case["convention"] == "torch"
                            and case["reduction"] == "mean" else 1)
    _close(r.losses, want_losses, rtol, atol, "losses")
    if case["value"] is not None:
        _close(r.value, _num(case["value"]), rtol, atol, "value")
