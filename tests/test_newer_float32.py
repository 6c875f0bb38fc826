"""The newer losses' framework conventions in float32 against the frameworks' own float32 results: MONAI's dice
and tversky with --smooth (tests/golden/newer_float32.json, scripts/golden_newer_f32.py), and the results that
lossgrad reproduces bit for bit across every float32 case the golden files hold (scripts/golden_losses_a.py,
scripts/golden_losses_b.py). The rest agree as tests/test_golden.py checks them (8 float32 ulp of the terms)."""

import functools
import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import mkl
from test_golden import _num, assert_close

GOLDEN = Path(__file__).resolve().parent / "golden"
NEWER = json.loads((GOLDEN / "newer_float32.json").read_text())

# (loss, convention, reductions, quantity, which cases): bit for bit in float32 on every recorded case
BIT_FOR_BIT = [
    ("margin-ranking", "torch", ("none", "sum", "mean"), "losses", "all"),
    ("margin-ranking", "torch", ("none", "sum", "mean"), "value", "all"),
    ("margin-ranking", "torch", ("none", "sum", "mean"), "grad", "all"),
    ("margin-ranking", "torch", ("none", "sum", "mean"), "grad_other", "all"),
    ("gaussian-nll", "torch", ("none", "sum"), "grad", "all"),  # (the mean brings its 1/N in first: 1 ulp)
    ("gaussian-nll", "torch", ("none", "sum", "mean"), "losses", "a variance per prediction"),
    ("gaussian-nll", "torch", ("none", "sum"), "grad_var", "a variance per prediction"),
    ("cosine-embedding", "torch", ("none", "sum", "mean"), "losses", "all"),
    ("cosine-embedding", "torch", ("sum", "mean"), "value", "all"),
    ("triplet", "optax", ("none", "sum", "mean"), "losses", "all"),
    ("dice", "keras", ("none", "sum", "mean"), "losses", "all"),
    ("tversky", "keras", ("none", "sum", "mean"), "losses", "all"),
    ("dice", "keras", ("sum", "mean"), "value", "all"),
    ("tversky", "keras", ("sum", "mean"), "value", "all"),
    ("dice", "keras", ("none", "sum", "mean"), "grad", "all"),
    ("tversky", "keras", ("none", "sum", "mean"), "grad", "all"),
]
# and with MKL's vector math (the mkl extra: lossgrad.mkl), PyTorch's float32 log and √ themselves
WITH_MKL = [
    ("gaussian-nll", "torch", ("none", "sum", "mean"), quantity, "all") for quantity in
    ("losses", "value", "grad", "grad_var")] + [
    ("poisson", "torch", ("none", "sum", "mean"), quantity, "all") for quantity in ("losses", "value", "grad")] + [
    ("cosine-embedding", "torch", ("none", "sum", "mean"), "grad", "all")]


@functools.cache
def _float32_cases() -> list:
    """Every golden file's float32 cases (read once: the files hold 170 MB of JSON)."""
    found = []
    for path in sorted(GOLDEN.glob("*.json")):
        data = json.loads(path.read_text())
        for case in data.get("cases", ()):
            if isinstance(case, dict) and (case.get("params") or {}).get("dtype", case.get("dtype")) == "float32":
                found.append((case.get("loss", data.get("loss", path.stem)), case))
    return found


def _result(loss, case, dtype=None):
    kw = dict(convention=case["convention"], from_logits=case["from_logits"], reduction=case["reduction"],
              **case.get("params", {}), **{k: _num(v) for k, v in case.get("inputs", {}).items()})
    if dtype:
        kw["dtype"] = dtype
    return lossgrad.evaluate(loss, _num(case["target"]), _num(case["pred"]), **kw)


def _quantity(r, name):
    return {"losses": r.losses, "value": r.value, "grad": r.grad}.get(name, r.grads.get(name[5:]))


def _wanted(case, name):
    if name.startswith("grad_"):
        return case.get("grads", {}).get(name[5:])
    return case.get(name)


@pytest.mark.parametrize("loss, conv, reductions, name, which", BIT_FOR_BIT + WITH_MKL,
                         ids=[f"{r[0]}-{r[1]}-{r[3]}-{r[4][:5]}{'-mkl' if r in WITH_MKL else ''}"
                              for r in BIT_FOR_BIT + WITH_MKL])
def test_bit_for_bit(loss, conv, reductions, name, which):
    if (loss, conv, reductions, name, which) in WITH_MKL and not mkl.available():
        pytest.skip("PyTorch's float32 log and √ are MKL's: the mkl extra is not installed")
    seen = 0
    for case_loss, case in _float32_cases():
        if case_loss != loss or case["convention"] != conv or case["reduction"] not in reductions:
            continue
        if which != "all" and _num(case["inputs"]["var"]).shape != _num(case["pred"]).shape:
            continue
        want = _wanted(case, name)
        if want is None:
            continue
        r = _result(loss, case, "float32")
        got = np.asarray(_quantity(r, name), dtype=np.float64).reshape(np.shape(_num(want)))
        assert np.array_equal(got, _num(want), equal_nan=True), f"{loss} {conv} {case['reduction']} {name}"
        seen += 1
    assert seen  # (the golden files hold such cases)


@pytest.mark.parametrize("case", NEWER["cases"], ids=[
    f"{c['loss']}-{'logits' if c['from_logits'] else 'probs'}-{c['params'].get('dtype', 'float64')}-"
    f"s{c['params']['smooth']}-{c['reduction']}-{i}" for i, c in enumerate(NEWER["cases"])])
def test_monai_smoothing(case):
    r = _result(case["loss"], case)
    f32 = case["params"].get("dtype") == "float32"
    n = r.n if case["reduction"] == "mean" else 1
    # the terms of a gradient element are O(1) per pixel, over N (test_golden's measure)
    assert_close(r.grad, _num(case["grad"]), 1.0 / n, "grad", f32)
    if case["losses"] is not None:
        assert_close(r.losses, _num(case["losses"]), 1.0, "losses", f32)
    if case["value"] is not None:
        assert_close(r.value, case["value"], 1.0, "value", f32)
