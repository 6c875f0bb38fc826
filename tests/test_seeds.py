"""The worked examples of seeds.json (copied from the project's shared cases): numbers printed by the frameworks
named in each case (TensorFlow 2.21 / tf-keras 2.21 / Keras 3.15, PyTorch) or worked from the formula."""

import json

import pytest

from conftest import DATA, lossgrad

CASES = json.loads((DATA / "seeds.json").read_text())["cases"]


def _fmt(a):
    if a and isinstance(a[0], list):
        return ";".join(_fmt(r) for r in a)
    return ",".join(repr(v) for v in a)


def _close(a, b):
    if isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _close(x, y)
    else:
        assert abs(float(a) - float(b)) <= 1e-7 * abs(float(b)) + 1e-12, (a, b)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_seed_case(case):
    r = lossgrad(*case["args"], "--format", "json", "--target=" + _fmt(case["target"]), "--pred=" + _fmt(case["pred"]))
    assert r.code == 0, r.err
    out = r.json()
    for key in ("value", "grad", "losses"):
        if case.get(key) is not None:
            _close(out[key], case[key])
