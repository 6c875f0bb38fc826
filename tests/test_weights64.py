"""Sample weights in float64 under the torch convention: `(loss(reduction="none") * w).mean()` (or `.sum()`) on
PyTorch's double kernels for poisson, gaussian-nll, triplet (norms 1 and 2), cosine-embedding, cosine and MONAI's
dice and tversky, as recorded by scripts/golden_weights64.py in tests/golden/weights64.json, bit for bit (weighted
losses or value, the gradient and each further input's); live on fresh inputs with PyTorch and MONAI installed.
poisson, gaussian-nll and the cosine losses take MKL's double e^x, log x and √ (the mkl extra, which the test extra
installs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lossgrad
from lossgrad import kernels, mkl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_pairs64 import digest, matches, reduced_matches  # noqa: E402
from golden_weights64 import EXTRA, MODES, inputs, pytorchs  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "weights64.json").read_text())
CPU = {"AVX2": "avx2", "AVX512": "avx512"}[DATA["versions"]["cpu_capability"]]  # (σ(z)'s scalar tail)
ON_MKL = ("poisson", "gaussian-nll", "cosine-embedding", "cosine")  # (their e^x, log x or √ in double are MKL's)


def _id(rec: dict) -> str:
    mode = "-".join(f"{k}={v}" for k, v in rec["mode"].items())
    return f"{rec['loss']}-{mode}-{'x'.join(map(str, rec['shape']))}-{rec['reduction']}"


def _evaluate(loss: str, mode: dict[str, Any], x: dict[str, np.ndarray], reduction: str) -> lossgrad.Result:
    """lossgrad's run of a record's case: its mode as keyword arguments (per_sample is only the variance's shape)."""
    kw = {k: v for k, v in mode.items() if k != "per_sample"}
    more = {k: x[k] for k in ("var", "negative", "label") if k in x}
    return lossgrad.evaluate(loss, x["y"], x["p"], sample_weight=x["w"], convention="torch", reduction=reduction,
                             cpu=CPU, **more, **kw)


def _bits_kept(r: lossgrad.Result, rec: dict) -> bool:
    """Whether a run has every bit a record kept: weighted losses or value, the gradient, each further input's."""
    return (reduced_matches(r, rec) and matches(r.grad, rec["grad"])
            and all(matches(r.grads[k], kept) for k, kept in rec["extra"].items()))


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(r) for r in DATA["records"]])
def test_torch_float64_weighted_bit_for_bit(rec: dict) -> None:
    if rec["loss"] in ON_MKL and not mkl.available():
        pytest.skip("the mkl extra is not installed (PyTorch's double e^x, log x and √ are MKL's)")
    x = inputs(rec["seed"], rec["loss"], rec["mode"], tuple(rec["shape"]))
    assert digest(*x.values()) == rec["inputs_sha256"]  # (the inputs torch was given, rebuilt)
    r = _evaluate(rec["loss"], rec["mode"], x, rec["reduction"])
    assert r.warnings == []
    assert _bits_kept(r, rec)


def test_the_records_cover_each_loss_mode_reduction_and_a_long_batch() -> None:
    assert {(r["loss"], json.dumps(r["mode"], sort_keys=True), r["reduction"]) for r in DATA["records"]} == {
        (loss, json.dumps(m, sort_keys=True), red) for loss, modes in MODES.items() for m in modes
        for red in ("none", "sum", "mean")}
    assert {r["loss"] for r in DATA["records"] if r["shape"][0] > 32768} == set(MODES)  # (lossgrad's slices)
    assert all(set(r["extra"]) == set(EXTRA.get(r["loss"], ())) for r in DATA["records"])


def test_lossgrads_formulas_miss_recorded_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the kernels refused (float64's formulas, as lossgrad ran weighted float64 before), some records' bits
    are not kept, for each loss: the records tell the kernels from the formulas."""
    monkeypatch.setattr(kernels, "unsupported", lambda *a, **k: "refused here")
    apart = set()
    for rec in DATA["records"]:
        if rec["shape"][0] < 100 and rec["reduction"] != "sum" and rec["loss"] not in apart:
            x = inputs(rec["seed"], rec["loss"], rec["mode"], tuple(rec["shape"]))
            if not _bits_kept(_evaluate(rec["loss"], rec["mode"], x, rec["reduction"]), rec):
                apart.add(rec["loss"])
    assert apart == set(MODES)


@pytest.mark.frameworks
def test_live_on_fresh_inputs(live_rng: np.random.Generator) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    for loss, modes in MODES.items():
        if loss in ON_MKL and not mkl.available():
            continue
        for mode in modes:
            rows, cols = int(live_rng.integers(1, 60)), int(live_rng.integers(1, 12))
            reduction = str(live_rng.choice(["none", "sum", "mean"]))
            x = inputs(int(live_rng.integers(2**31)), loss, mode, (rows, cols))
            want = pytorchs(loss, mode, x, reduction)
            r = lossgrad.evaluate(loss, x["y"], x["p"], sample_weight=x["w"], convention="torch",
                                  reduction=reduction, **{k: x[k] for k in ("var", "negative", "label") if k in x},
                                  **{k: v for k, v in mode.items() if k != "per_sample"})
            if reduction == "none":  # (a loss per sample: (N,) here, torch's weighted (N, 1))
                assert np.array_equal(r.losses.reshape(-1), want["losses"].reshape(-1)), (loss, mode)
            else:
                assert r.value == want["value"], (loss, mode)
            assert np.array_equal(r.grad, want["grad"]), (loss, mode)
            assert all(np.array_equal(r.grads[k], g) for k, g in want["extra"].items()), (loss, mode)
