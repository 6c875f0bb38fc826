"""lossgrad's conventions against the real frameworks' outputs recorded in tests/golden/ by scripts/make_golden.py
(the versions are in each file). Values, per-element losses and gradients agree to 1e-12 relative, zeros
(clipping) to the rounding of the terms; where a framework's own rounding makes a result that is tiny against the
terms it came from, a few ulp of those terms are allowed."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import lossgrad

GOLDEN = Path(__file__).resolve().parent / "golden"


def _load():
    for path in sorted(GOLDEN.glob("*.json")):
        data = json.loads(path.read_text())
        loss = data.get("loss", path.stem)  # (a file beside another loss's own names the loss it holds)
        if loss not in lossgrad.LOSSES:  # (other formats, read by their own tests)
            continue
        if data.get("format"):  # (a format of its own, read by its own test file)
            continue
        for i, case in enumerate(data.get("cases", ())):  # (lowp.json has its own format: test_lowp.py)
            name = f"{path.stem}-{case['convention']}-{'logits' if case['from_logits'] else 'probs'}" \
                   f"-{case['labels'] or ''}-{case['reduction']}-{i}"
            yield pytest.param(loss, case, id=name)


def _num(x):
    if isinstance(x, list):
        return np.array([_num(v) for v in x], dtype=np.float64)
    return float(x)  # float("inf") reads the strings too


def assert_close(got, want, scale, what, float32=False):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    # exact zeros (clipped elements) and infinities must match exactly; the rest to 1e-12 relative,
    # or within 8 ulp of the magnitude of the terms the framework combined; float32 results (tf-keras' huber
    # casts to float32) to 8 float32 ulp
    eps = np.finfo(np.float32 if float32 else np.float64).eps
    tol = (8 * eps if float32 else 1e-12) * np.abs(want) + 8 * eps * scale
    # (a zero is a zero up to the rounding of those terms: a clipped element's gradient is exactly 0 here, and
    # so is a cancellation that the framework's libm happens to round to 0; subnormals count as 0, as the
    # frameworks flush them)
    tol = np.where(want == 0, np.maximum(8 * eps * scale, np.finfo(np.float64).tiny),
                   np.where(np.isfinite(want), tol, 0))
    with np.errstate(invalid="ignore"):  # (NaN - NaN where both are NaN: `same` already holds those)
        ok = same | (np.abs(got - want) <= tol)
    assert ok.all(), f"{what}: got {got[~ok][:5]} want {want[~ok][:5]} at {np.argwhere(~ok)[:5].tolist()}"


@pytest.mark.parametrize("loss,case", list(_load()))
def test_convention_reproduces_framework(loss, case):
    y, p = _num(case["target"]), _num(case["pred"])
    labels = case["labels"]
    kw = dict(convention=case["convention"], from_logits=case["from_logits"], reduction=case["reduction"],
              **case.get("params", {}), **{k: _num(v) for k, v in case.get("inputs", {}).items()})
    if loss in ("ce", "nll"):
        kw["labels"] = "index" if labels == "index" else "onehot"
    for name in ("class_weights", "pos_weight", "sample_weight"):
        if name in kw:
            kw[name] = np.array(kw[name])
    r = lossgrad.evaluate(loss, y, p, **kw)
    f32 = loss in lossgrad.CONVENTIONS[case["convention"]].floatx_losses or kw.get("dtype") == "float32"
    n = r.n if case["reduction"] == "mean" else 1
    for name in ("class_weights", "pos_weight", "sample_weight"):
        if name in case.get("params", {}):
            n = n / max(case["params"][name] + [1.0])  # the weights scale the terms
    # the terms a gradient element is made of are O(1) (sigma, softmax, y) per element, divided by N
    size = [v for k, v in case.get("params", {}).items() if k in ("delta", "beta")]
    gscale = (np.abs(p - y).max() * 2 if loss == "mse" else max(size + [1.0])) / n
    assert_close(r.grad, _num(case["grad"]), gscale, "grad", f32)
    for name, g in case.get("grads", {}).items():  # (with respect to a loss's extra inputs, or its target)
        assert_close(r.grads[name], _num(g), gscale, f"grad_{name}", f32)
    if case["value"] is not None:
        want = _num(case["value"])
        assert_close(r.value, want, 0 if math.isinf(want) else abs(want), "value", f32)
    if case["losses"] is not None:
        want = _num(case["losses"]).reshape(r.losses.shape)
        scale = np.abs(p).max() if case["from_logits"] or loss == "nll" else (
            1.0 if loss in ("bce", "ce") else np.abs(p - y).max())
        assert_close(r.losses, want, scale, "losses", f32)
