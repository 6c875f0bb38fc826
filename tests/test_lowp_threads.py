"""PyTorch's CPU results where it splits work among its intra-op threads (operations over more than 32,768 elements,
in parts: lowp.chunks), recorded by scripts/golden_lowp_threads.py in tests/golden/lowp_threads.json: the reduced
values of mae and mse over [1, 40,000] to [3, 33,000] (torch.sum's two passes: each thread's part summed, stored in
the dtype for a sum and kept in float32 for a mean, then the parts summed), and triplet over a single row of 70,000
features (its norm's reduction in parts, the backward's powers each part ending in its own scalar loop), and
cosine-embedding over a single row of 40,000 (its row sums in two passes; float32 with the mkl extra), and bce from
logits over 50,000 to 100,000 elements (σ(z)'s scalar loop at the end of each thread's part)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import assert_recorded, golden_script
from lossgrad import lowp, mkl

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_threads.json"
DATA = json.loads(GOLDEN.read_text())


def _run(rec: dict) -> tuple[lossgrad.Result, dict[str, str]]:
    """lossgrad on the record's inputs (rebuilt from its seed, rounded to the dtype, checked by their digest), and the
    digests of its gradients."""
    golden = golden_script("golden_lowp_threads")
    kind = np.float32 if rec["dtype"] == "float32" else lowp.half_dtype(rec["dtype"])
    arrays = [x.astype(kind).astype(np.float64) for x in golden.inputs(rec["seed"], rec["loss"], tuple(rec["shape"]))]
    assert golden.digest(np.concatenate(arrays)) == rec["inputs"]
    more = {"negative": arrays[2], "norm_degree": rec["norm_degree"]} if rec["loss"] == "triplet" else {
        "label": np.ones((arrays[0].shape[0], 1))} if rec["loss"] == "cosine-embedding" else {
        "from_logits": True} if rec["loss"] == "bce" else {}
    r = lossgrad.evaluate(rec["loss"], arrays[0], arrays[1], convention="torch", dtype=rec["dtype"],
                          reduction=rec["reduction"], **more)
    grads = {"grad": r.grad} | {f"grad_{k}": v for k, v in r.grads.items()}
    return r, {k: golden.digest(v) for k, v in grads.items()}


@pytest.mark.parametrize("rec", DATA["records"], ids=[f"{r['loss']}-{r['dtype']}-{r['reduction']}-"
                                                      f"{'x'.join(map(str, r['shape']))}" for r in DATA["records"]])
def test_work_split_among_threads_bit_for_bit(rec: dict) -> None:
    if rec["loss"] == "cosine-embedding" and not mkl.available():
        pytest.skip("float32 cosine-embedding takes MKL's square root: the mkl extra is not installed")
    assert_recorded(*_run(rec), rec)


def test_the_threads_recorded_are_lossgrads_and_one_thread_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DATA["versions"]["threads"] == lowp.THREADS and DATA["versions"]["cpu_capability"] == "AVX512"
    # with one thread (no parts) some recorded values and gradients are apart
    monkeypatch.setattr(lowp, "THREADS", 1)
    apart = 0
    for rec in (r for r in DATA["records"] if r["loss"] != "cosine-embedding"):
        r, digests = _run(rec)
        apart += np.float64(r.value) != np.float64(rec["value"]) or digests != {k: rec[k] for k in digests}
    assert apart >= 2


@pytest.mark.frameworks
def test_a_single_row_of_more_than_grain_is_summed_in_the_threads_two_passes() -> None:
    # ce against one probability row and gaussian-nll with one variance for a single sample: their row sums over
    # more than 32,768 elements are torch.sum's two passes, as PyTorch's (live) gives them
    torch = pytest.importorskip("torch")
    torch.set_num_threads(lowp.THREADS)
    f = torch.nn.functional
    rng = np.random.default_rng(11)
    for _ in range(4):
        z, y = rng.standard_normal((1, 33000)).astype(np.float32), rng.random((1, 33000)).astype(np.float32)
        want = f.cross_entropy(torch.tensor(z), torch.tensor(y), reduction="none").numpy()
        r = lossgrad.evaluate("ce", y.astype(np.float64), z.astype(np.float64), from_logits=True, labels="onehot",
                              convention="torch", dtype="float32", reduction="none")
        assert np.array_equal(r.losses.astype(np.float32).reshape(-1), want)
        p, v = torch.tensor(z, requires_grad=False), torch.ones((1, 1), requires_grad=True)
        f.gaussian_nll_loss(p, torch.tensor(y), v, reduction="sum").backward()
        g = lossgrad.evaluate("gaussian-nll", y.astype(np.float64), z.astype(np.float64), var=np.ones((1, 1)),
                              convention="torch", dtype="float32", reduction="sum")
        assert g.grads["var"].reshape(-1)[0] == v.grad.numpy().reshape(-1)[0]
