"""The same comparison as test_golden, live: runs the real frameworks when they are installed (the `frameworks`
extra) on fresh random inputs. Skipped cleanly when they are not."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from test_golden import assert_close

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

NEEDS = {"keras": ["tensorflow", "keras"], "tf-keras": ["tensorflow", "tf_keras"], "torch": ["torch"],
         "optax": ["jax", "optax"]}


def _have(conv):
    return all(importlib.util.find_spec(m) is not None for m in NEEDS[conv])


def _specs():
    if importlib.util.find_spec("numpy") is None:
        return []
    import make_golden

    return [pytest.param(*s, id=f"{s[0]}-{s[1]}-{'logits' if s[2] else 'probs'}-{s[3] or ''}-{i}")
            for i, s in enumerate(make_golden.specs())]


@pytest.mark.frameworks
@pytest.mark.parametrize("loss,conv,from_logits,labels,make", _specs())
def test_live_framework_agrees(loss, conv, from_logits, labels, make):
    if not _have(conv):
        pytest.skip(f"{conv}: {', '.join(NEEDS[conv])} not installed")
    import make_golden

    rng = np.random.default_rng(12345)
    y, p = make(rng)
    if loss == "bce":
        y, p = y[:, None], p[:, None]
    for reduction in ("mean", "sum", "none"):
        per, value, grad = make_golden.run(conv, loss, y, p, from_logits, labels, reduction)
        kw = dict(convention=conv, from_logits=from_logits, reduction=reduction)
        if loss == "ce":
            kw["labels"] = "index" if labels == "index" else "onehot"
        r = lossgrad.evaluate(loss, y, p, **kw)
        n = r.n if reduction == "mean" else 1
        assert_close(r.grad, grad, (1.0 if loss != "mse" else np.abs(p - y).max() * 2) / n, "grad")
        if value is not None:
            assert_close(r.value, value, abs(value) if np.isfinite(value) else 0, "value")


def _regression_specs():
    import make_golden

    return [pytest.param(*s, id=f"{s[0]}-{s[1]}-{s[2]}-{i}") for i, s in enumerate(make_golden.regression_specs())]


@pytest.mark.frameworks
@pytest.mark.parametrize("loss,conv,param,make", _regression_specs())
def test_live_regression_agrees(loss, conv, param, make):
    if not _have(conv):
        pytest.skip(f"{conv}: {', '.join(NEEDS[conv])} not installed")
    import make_golden

    rng = np.random.default_rng(54321)
    y, p = make(rng)
    params = {} if param is None else {make_golden.PARAM_NAME[loss]: param}
    f32 = loss in lossgrad.CONVENTIONS[conv].floatx_losses
    for reduction in ("mean", "sum", "none"):
        per, value, grad = make_golden.run(conv, loss, y, p, False, None, reduction, param)
        r = lossgrad.evaluate(loss, y, p, convention=conv, reduction=reduction, **params)
        n = r.n if reduction == "mean" else 1
        assert_close(r.grad, grad, max(param or 1.0, 1.0) / n, "grad", f32)
        if value is not None:
            assert_close(r.value, value, abs(value), "value", f32)


def _family_specs():
    import make_golden

    return [pytest.param(*s, id=f"{s[0]}-{s[1]}-{i}") for i, s in enumerate(make_golden.family_cases())]


@pytest.mark.frameworks
@pytest.mark.parametrize("loss,conv,opts,make", _family_specs())
def test_live_family_agrees(loss, conv, opts, make):
    if not _have(conv):
        pytest.skip(f"{conv}: {', '.join(NEEDS[conv])} not installed")
    if loss == "focal" and conv == "torch" and importlib.util.find_spec("torchvision") is None:
        pytest.skip("torch focal: torchvision not installed")
    import make_golden

    rng = np.random.default_rng(777)
    y, p = make(rng)
    params = {k: v for k, v in opts.items() if v is not None}
    for reduction in ("mean", "sum", "none"):
        per, value, grad = make_golden.run_family(conv, loss, y, p, reduction, **opts)
        r = lossgrad.evaluate(loss, y, p, convention=conv, reduction=reduction, **params)
        n = r.n if reduction == "mean" else 1
        assert_close(r.grad, grad, 1.0 / n, "grad")
        if value is not None:
            assert_close(r.value, value, abs(value) if np.isfinite(value) else 0, "value")
