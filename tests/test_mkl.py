"""lossgrad.mkl: Intel MKL's vector math, where PyTorch's float32 kernels take e^x, log x and √x (the mkl extra).
With it, PyTorch's float32 poisson, gaussian-nll, kl --log-target, cosine-embedding and focal at γ = ½ and 1.5 are
its kernels (tests/test_newer_float32.py, test_lowp_focal.py and test_lowp_newer.py hold them to recorded bits;
here, live on fresh inputs where torch is installed); without it (or under LOSSGRAD_MKL=0) those losses take
lossgrad's float32 formulas, and the kernels' reason names the extra."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as cli
from lossgrad import mkl

POISSON = ["poisson", "-c", "torch", "--dtype", "float32", "-y", "0,2,3", "-p", "0.5,1.5,2", "--full", "-f", "json"]


def _python(code: str, **env: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_without_mkl_the_float32_kernels_name_the_extra_and_the_formulas_answer() -> None:
    said = _python("from lossgrad import kernels, mkl; print(mkl.available()); "
                   "print(kernels.unsupported('torch', 'float32', 'poisson', True, {}, {}, False))", LOSSGRAD_MKL="0")
    assert said.splitlines()[0] == "False"
    assert "e^x and log x are MKL's" in said and "lossgrad[mkl]" in said
    r = cli(*POISSON, env={"LOSSGRAD_MKL": "0"})
    assert r.code == 0, r.err
    # the formulas' float32 numbers: the loss of y = 0 is p itself, 0.5 (by hand)
    assert r.json()["losses"][0] == 0.5


def test_the_library_loads_on_first_use_only() -> None:
    assert _python("import lossgrad, lossgrad.mkl as m; print(m._library.cache_info().currsize)") == "0"
    # asked for a root without it, the module says what to install (the kernels ask available() first)
    proc = subprocess.run([sys.executable, "-c", "import numpy, lossgrad.mkl as m; m.sqrt(numpy.ones(3, 'f4'))"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "LOSSGRAD_MKL": "0"})
    assert proc.returncode != 0 and "RuntimeError: MKL is not installed: pip install 'lossgrad[mkl]'" in proc.stderr


@pytest.mark.skipif(not mkl.available(), reason="the mkl extra is not installed")
def test_vml_follows_ieee_at_the_edges() -> None:
    # log 0 = −∞, log −1 = NaN, log ∞ = ∞, log 1 = 0, √4 = 2, e^0 = 1, e^−∞ = 0; the shape is kept
    logs = mkl.log(np.array([0.0, -1.0, np.inf, 1.0], dtype=np.float32))
    assert logs[0] == -np.inf and np.isnan(logs[1]) and logs[2] == np.inf and logs[3] == 0
    assert mkl.sqrt(np.array([[4.0]], dtype=np.float32)).tolist() == [[2.0]]
    assert mkl.exp(np.array([0.0, -np.inf], dtype=np.float32)).tolist() == [1.0, 0.0]
    # and in double: e^710 overflows to ∞ (e^709.78 is the largest), e^−746 underflows to 0, log 0 = −∞
    assert mkl.exp64(np.array([0.0, -np.inf, 710.0, -746.0])).tolist() == [1.0, 0.0, np.inf, 0.0]
    assert mkl.log64(np.array([[0.0, 1.0]])).tolist() == [[-np.inf, 0.0]] and mkl.sqrt64([4.0]).tolist() == [2.0]


def test_without_mkl_float64_poisson_names_what_it_takes_from_mkl() -> None:
    said = _python("from lossgrad import kernels; "
                   "print(kernels.unsupported('torch', 'float64', 'poisson', False, {}, {}, False))", LOSSGRAD_MKL="0")
    assert said == ("poisson in float64 (its e^x and log x in double are MKL's: pip install 'lossgrad[mkl]' for "
                    "PyTorch's bits)")


@pytest.mark.frameworks
@pytest.mark.skipif(not mkl.available(), reason="the mkl extra is not installed")
def test_live_torch_float64_functions_are_mkls(live_rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    x = live_rng.uniform(-700, 700, 200_000)
    assert np.array_equal(mkl.exp64(x), torch.exp(torch.tensor(x)).numpy())
    assert np.array_equal(mkl.log64(np.abs(x)), torch.log(torch.tensor(np.abs(x))).numpy())
    assert np.array_equal(mkl.sqrt64(np.abs(x)), torch.sqrt(torch.tensor(np.abs(x))).numpy())


def _differing(got: object, want: object) -> int:
    a, b = np.asarray(got, np.float32).reshape(-1), np.asarray(want, np.float32).reshape(-1)
    return int(np.sum(~((a.view(np.int32) == b.view(np.int32)) | (np.isnan(a) & np.isnan(b)))))


@pytest.mark.frameworks
@pytest.mark.skipif(not mkl.available(), reason="the mkl extra is not installed")
def test_live_torch_float32_through_mkl(live_rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = live_rng
    for _ in range(3):
        n = int(rng.integers(1, 3000))
        for log_input in (True, False):
            y = np.round(rng.exponential(3, n)).astype(np.float32)
            p = (rng.normal(0, 2, n) if log_input else rng.exponential(2, n)).astype(np.float32)
            pt = torch.tensor(p, requires_grad=True)
            want = F.poisson_nll_loss(pt, torch.tensor(y), log_input=log_input, full=True, reduction="mean")
            want.backward()
            r = lossgrad.evaluate("poisson", y, p, convention="torch", dtype="float32", from_logits=log_input,
                                  full=True)
            assert _differing(r.grad, pt.grad.numpy()) == 0 and _differing([r.value], [want.item()]) == 0
        v = rng.exponential(1, n).astype(np.float32)
        pt, vt = torch.tensor(p, requires_grad=True), torch.tensor(v, requires_grad=True)
        want = F.gaussian_nll_loss(pt, torch.tensor(y), vt, full=True, reduction="sum")
        want.backward()
        r = lossgrad.evaluate("gaussian-nll", y, p, var=v, convention="torch", dtype="float32", full=True,
                              reduction="sum")
        assert _differing([r.value], [want.item()]) == 0 and _differing(r.grads["var"], vt.grad.numpy()) == 0
        rows, c = int(rng.integers(1, 40)), int(rng.integers(2, 30))
        ly, lq = (np.log(rng.dirichlet(np.ones(c), rows)).astype(np.float32) for _ in range(2))
        qt = torch.tensor(lq, requires_grad=True)
        F.kl_div(qt, torch.tensor(ly), reduction="sum", log_target=True).backward()
        r = lossgrad.evaluate("kl", ly, lq, convention="torch", dtype="float32", log_input=True, log_target=True,
                              reduction="sum")
        assert _differing(r.grad, qt.grad.numpy()) == 0
        a, b = rng.normal(size=(rows, c)).astype(np.float32), rng.normal(size=(rows, c)).astype(np.float32)
        label = rng.choice([-1.0, 1.0], rows).astype(np.float32)
        at = torch.tensor(a, requires_grad=True)
        want = F.cosine_embedding_loss(at, torch.tensor(b), torch.tensor(label), margin=0.1, reduction="sum")
        want.backward()
        r = lossgrad.evaluate("cosine-embedding", b, a, label=label, convention="torch", dtype="float32",
                              margin=0.1, reduction="sum")
        assert _differing(r.grad, at.grad.numpy()) == 0 and _differing([r.value], [want.item()]) == 0


def test_without_mkl_a_float32_run_says_it_is_the_formulas() -> None:
    r = cli(*POISSON[:-2], env={"LOSSGRAD_MKL": "0"})
    assert r.code == 0, r.err
    assert ("warning: computed by lossgrad's float32 formulas, not bit for bit: poisson in float32 (its e^x and log "
            "x are MKL's: pip install 'lossgrad[mkl]' for PyTorch's bits") in r.err
    if mkl.available():
        assert "warning" not in cli(*POISSON[:-2]).err
