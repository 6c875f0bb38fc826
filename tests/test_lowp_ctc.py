"""ctc under the torch convention in float32 and float64, against PyTorch's own F.ctc_loss on the CPU recorded by
scripts/golden_lowp_ctc.py in tests/golden/lowp_ctc.json: the per-sequence losses, the reduced value and the
gradient bit for bit, in memory, from tensor files and typed on the command line; the C library's expf and logf
as lossgrad computes them against the C library itself; and a live comparison on fresh random batches where torch
is installed."""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad import lowp_ctc, options

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_ctc.json"
DATA = json.loads(GOLDEN.read_text())
KIND = {"float32": np.float32, "float64": np.float64}
BITS = {"float32": np.uint32, "float64": np.uint64}


def array(field: dict, dtype: str) -> np.ndarray:
    """A recorded array: the dtype's little-endian bytes in base64."""
    raw = base64.b64decode(field["packed"])
    return np.frombuffer(raw, dtype="<f4" if dtype == "float32" else "<f8").astype(KIND[dtype]).reshape(
        field["shape"])


def same_bits(got: object, want: np.ndarray, dtype: str, what: str) -> None:
    """Equal bit patterns (NaNs' signs and payloads, zeros' signs included)."""
    g, w = np.array(got, dtype=KIND[dtype]), np.array(want, dtype=KIND[dtype])
    assert g.shape == w.shape, what
    np.testing.assert_array_equal(g.reshape(-1).view(BITS[dtype]), w.reshape(-1).view(BITS[dtype]), err_msg=what)


def _api(rec: dict, reduction: str) -> lossgrad.Result:
    dtype = rec["dtype"]
    return lossgrad.ctc(np.array(rec["labels"]), array(rec["pred"], dtype).astype(np.float64),
                        input_lengths=rec["input_lengths"], target_lengths=rec["target_lengths"],
                        convention="torch", reduction=reduction, dtype=dtype, blank=rec["blank"],
                        zero_infinity=rec["zero_infinity"])


def _losses(rec: dict, reduction: str) -> np.ndarray:
    """The losses lossgrad shows: ctc_loss's, and for the mean each divided by its target length as PyTorch
    divides it."""
    return array(rec["none"]["divided" if reduction == "mean" else "losses"], rec["dtype"])


def _id(rec: dict) -> str:
    return f"{rec['name']}-{rec['dtype']}"


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("rec", DATA["records"], ids=_id)
def test_torch_ctc_bit_for_bit(rec: dict, reduction: str) -> None:
    dtype = rec["dtype"]
    assert options.setup("ctc", convention="torch", dtype=dtype, reduction=reduction).lowp
    r = _api(rec, reduction)
    same_bits(r.losses, _losses(rec, reduction), dtype, "losses")
    same_bits(r.grad, array(rec[reduction]["grad"], dtype), dtype, "grad")
    if reduction != "none":
        same_bits(r.value, array(rec[reduction]["value"], dtype)[0], dtype, "value")


def test_golden_records_torch_the_machine_and_the_cases() -> None:
    meta = DATA["versions"]
    assert meta["torch"].startswith("2.13.0") and meta["cpu_capability"] == "AVX512"
    assert meta["libc"].startswith("glibc")
    recs = DATA["records"]
    assert {r["dtype"] for r in recs} == {"float32", "float64"}
    assert {r["zero_infinity"] for r in recs} == {False, True} and {r["blank"] for r in recs} > {0}
    for dtype in KIND:
        mine = [r for r in recs if r["dtype"] == dtype]
        losses = np.concatenate([array(r["none"]["losses"], dtype) for r in mine])
        grads = [array(r["sum"]["grad"], dtype) for r in mine]
        # impossible alignments (∞, NaN gradient), a sequence without frames or labels (−0), 200 frames
        assert np.isinf(losses).any() and any(np.isnan(g).any() for g in grads)
        assert any((x == 0) & np.signbit(x) for x in losses)
        assert max(g.shape[1] for g in grads) >= 200 and max(g.shape[0] for g in grads) > 16


def _files(tmp_path: Path, rec: dict) -> None:
    np.save(tmp_path / "lp.npy", array(rec["pred"], rec["dtype"]))
    np.save(tmp_path / "tgt.npy", np.array(rec["labels"]))
    np.save(tmp_path / "il.npy", np.array(rec["input_lengths"]))
    np.save(tmp_path / "tl.npy", np.array(rec["target_lengths"]))


FILE_RECORDS = [r for r in DATA["records"] if r["name"] in ("random-5x30x8", "impossible-zi0", "long-200")]


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("rec", FILE_RECORDS, ids=_id)
def test_tensor_files_bit_for_bit(tmp_path: Path, rec: dict, reduction: str) -> None:
    """`lossgrad ctc --pred lp.npy --target tgt.npy --input-lengths il.npy --target-lengths tl.npy -c torch`
    writes PyTorch's losses and gradient."""
    dtype = rec["dtype"]
    _files(tmp_path, rec)
    r = run("ctc", "--pred", "lp.npy", "--target", "tgt.npy", "--input-lengths", "il.npy", "--target-lengths",
            "tl.npy", "--batch-first", "-c", "torch", "--dtype", dtype, "-r", reduction, "-f", "json",
            "--blank", rec["blank"], "-o", "out.npz", cwd=tmp_path)
    assert r.code == 0, r.err
    out = np.load(tmp_path / "out.npz")
    same_bits(out["losses"], _losses(rec, reduction), dtype, "losses")
    same_bits(out["grad"], array(rec[reduction]["grad"], dtype), dtype, "grad")
    if reduction == "mean":
        same_bits(json.loads(r.out)["value"], array(rec["mean"]["value"], dtype)[0], dtype, "value")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_sequence_typed_on_the_command_line(dtype: str) -> None:
    rec = next(r for r in DATA["records"] if r["name"] == "random-1x12x4" and r["dtype"] == dtype)
    lp = array(rec["pred"], dtype)[0]
    labels = rec["labels"][0][:rec["target_lengths"][0]]
    pred = "; ".join(",".join(repr(float(v)) for v in row) for row in lp)
    r = run("ctc", "--target", ",".join(map(str, labels)), "--pred", pred, "-c", "torch", "--dtype", dtype,
            "--blank", rec["blank"], *(["--zero-infinity"] if rec["zero_infinity"] else []), "-f", "json")
    assert r.code == 0, r.err
    out = r.json()
    same_bits(out["value"], array(rec["mean"]["value"], dtype)[0], dtype, "value")
    same_bits(np.array(out["grad"]), array(rec["mean"]["grad"], dtype)[0], dtype, "grad")


def _libm() -> ctypes.CDLL:
    name = ctypes.util.find_library("m")
    if name is None or "libm.so.6" not in name:
        pytest.skip("glibc's libm is not this machine's C library")
    return ctypes.CDLL(name)


@pytest.mark.parametrize("fn", ["expf", "logf"])
def test_c_library_float_functions(fn: str) -> None:
    """lossgrad's expf and logf against glibc's own, on the arguments the recursions give them: differences of
    log-probabilities (≤ 0, and any number in the gradient's e^(c + nll − x)), sums of one to three
    exponentials (0, and [1, 3])."""
    lib = _libm()
    f = getattr(lib, fn)
    f.restype, f.argtypes = ctypes.c_float, [ctypes.c_float]
    rng = np.random.default_rng(7)
    if fn == "expf":
        x = np.concatenate([-rng.exponential(5, 40000), rng.uniform(-110, 95, 20000), [0, -np.inf, np.inf]])
        mine = lowp_ctc.libm(np.float32)[0](x.astype(np.float32))
    else:
        x = np.concatenate([rng.uniform(1, 3, 40000), np.exp(rng.uniform(-100, 80, 20000)), [0, 1, 2, 3]])
        mine = lowp_ctc.libm(np.float32)[1](x.astype(np.float32))
    x = x.astype(np.float32)
    theirs = np.array([f(float(v)) for v in x], dtype=np.float32)
    same_bits(mine, theirs, "float32", fn)


@pytest.mark.frameworks
def test_torch_ctc_live_random(live_rng: np.random.Generator) -> None:
    """Fresh random batches (lengths, blank, repeats, zero_infinity, impossible sequences) against torch."""
    torch = pytest.importorskip("torch")
    rng = live_rng
    for _ in range(12):
        b, t, c, lmax = (int(v) for v in (rng.integers(1, 10), rng.integers(1, 40), rng.integers(2, 9),
                                          rng.integers(0, 9)))
        blank, zi = int(rng.integers(0, c)), bool(rng.integers(0, 2))
        lab = rng.integers(0, c - 1, (b, max(lmax, 1)))
        lab = np.where(lab >= blank, lab + 1, lab)
        il, tl = rng.integers(0, t + 1, b), rng.integers(0, lmax + 1, b)
        z = rng.normal(0, float(rng.choice([1, 5, 40])), (b, t, c))
        for dtype, kind in (("float32", torch.float32), ("float64", torch.float64)):
            lp = torch.log_softmax(torch.tensor(z), -1).to(kind)
            for reduction in ("none", "sum", "mean"):
                x = lp.permute(1, 0, 2).detach().clone().requires_grad_(True)
                v = torch.nn.functional.ctc_loss(x, torch.tensor(lab), torch.tensor(il), torch.tensor(tl),
                                                 blank=blank, reduction=reduction, zero_infinity=zi)
                (v.sum() if reduction == "none" else v).backward()
                r = lossgrad.ctc(lab, lp.double().numpy(), input_lengths=il, target_lengths=tl, convention="torch",
                                 reduction=reduction, dtype=dtype, blank=blank, zero_infinity=zi)
                same_bits(r.grad, x.grad.permute(1, 0, 2).numpy(), dtype, "grad")
                if reduction == "none":
                    same_bits(r.losses, v.detach().numpy(), dtype, "losses")
                else:
                    same_bits(r.value, v.detach().numpy(), dtype, "value")
