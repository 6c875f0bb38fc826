"""gaussian-nll under the torch convention in float16 and bfloat16, and margin-ranking in float32 too, against
PyTorch's own CPU results recorded by scripts/golden_lowp_newer.py in tests/golden/lowp_newer.json: losses, value
and both gradients bit for bit; and why float32 gaussian-nll stays on its formulas (torch's float32 log x is
MKL's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad import kernels, lowp, mkl, options
from test_lowp_more import assert_torch_results, values

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_newer.json"
DATA = json.loads(GOLDEN.read_text())


FURTHER = {"gaussian-nll": "var", "margin-ranking": "other"}  # (each loss's further input)


def _run(rec: dict, **more: object) -> lossgrad.Result:
    dtype, name = rec["dtype"], FURTHER[rec["loss"]]
    return lossgrad.evaluate(rec["loss"], values(rec["target"], dtype).astype(np.float64),
                             values(rec["pred"], dtype).astype(np.float64), convention="torch", dtype=dtype,
                             reduction=rec["reduction"], **{name: values(rec[name], dtype).astype(np.float64)},
                             **rec["options"], **more)


def _id(i: int, rec: dict) -> str:
    opts = "-".join(f"{k}{v}" for k, v in rec["options"].items())
    name = FURTHER[rec["loss"]]
    shape = "x".join(map(str, np.shape(rec[name])))
    return f"{rec['loss']}-{rec['dtype']}-{rec['reduction']}-{opts}-{name}{shape}-{rec['name']}-{i}"


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(i, r) for i, r in enumerate(DATA["records"])])
def test_torch_kernels_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    name = FURTHER[rec["loss"]]
    assert options.setup(rec["loss"], convention="torch", dtype=rec["dtype"]).lowp
    assert_torch_results({"grad": r.grad, "losses": r.losses, "value": r.value, f"grad_{name}": r.grads[name]}, rec)


def test_golden_records_torch_and_the_instruction_set() -> None:
    assert DATA["versions"]["torch"].startswith("2.13.0")
    assert DATA["versions"]["cpu_capability"] == "AVX512" and lowp.lanes() == 16
    # the records reach the clamp, an overflowing square and both shapes of the variances
    adversarial = [r for r in DATA["records"] if r["name"] == "adversarial" and r["reduction"] == "none"]
    assert adversarial and any(np.isinf(values(r["losses"], r["dtype"])).any() for r in adversarial)
    gaussian = [r for r in DATA["records"] if r["loss"] == "gaussian-nll" and np.shape(r["pred"])[1] > 1]
    assert {np.shape(r["var"])[1] == 1 for r in gaussian} == {True, False}
    # margin-ranking's records hold ties at the hinge, where clamp_min passes the gradient
    ties = [r for r in DATA["records"] if r["loss"] == "margin-ranking" and r["reduction"] == "none"
            and ((values(r["losses"], r["dtype"]) == 0) & (values(r["grad"], r["dtype"]) != 0)).any()]
    assert ties


def test_float32_log_is_mkls() -> None:
    # torch's float32 log x (MKL's vmsLn) is neither SLEEF's logf nor the correctly rounded log on the recorded
    # inputs: float32 gaussian-nll and poisson are reproduced with MKL's own log where the mkl extra is installed,
    # and stay on their formulas where it is not
    rec = DATA["float32_log"]
    x, want = values(rec["x"], "float32"), values(rec["log"], "float32")
    assert len(x) and not np.array_equal(lowp.logf(x), want) and not np.array_equal(lowp.libm_logf(x), want)
    assert not np.array_equal(np.log(x.astype(np.float64)).astype(np.float32), want)
    assert bool(kernels.unsupported("torch", "float32", "gaussian-nll", True, {"full": False}, {"full": False},
                                    False)) != mkl.available()
    assert options.setup("gaussian-nll", convention="torch", dtype="float32").lowp == mkl.available()
    assert options.setup("gaussian-nll", convention="torch", dtype="bfloat16").lowp
    if mkl.available():
        assert np.array_equal(mkl.log(x), want)


def test_sample_weights_stay_refused_in_half_dtypes_where_not_reproduced() -> None:
    # (gaussian-nll's are reproduced now: tests/test_weights_torch.py; ce's with class weights, which change the
    # mean's N, are not)
    lossgrad.evaluate("gaussian-nll", [[0.0]], [[0.5]], var=[[1.0]], convention="torch", dtype="float16",
                      sample_weight=[2.0])
    with pytest.raises(lossgrad.OptionError, match="sample_weight"):
        lossgrad.evaluate("ce", [0], [[0.5, 1.0]], from_logits=True, class_weights=[1.0, 2.0], convention="torch",
                          dtype="float16", sample_weight=[2.0])


def test_csv_batch_mean_writes_the_kernels_gradients(tmp_path: Path) -> None:
    # a CSV batch's rows (mean: the 1/N brought in first) are the in-memory kernels' gradients for the
    # predictions and the variances, which the golden records hold to torch's
    rec = next(r for r in DATA["records"] if r["reduction"] == "mean" and r["dtype"] == "bfloat16"
               and np.shape(r["var"]) == np.shape(r["pred"]) == (7, 33) and not r["options"]["full"]
               and "var_eps" not in r["options"])
    y, p, v = (values(rec[k], "bfloat16") for k in ("target", "pred", "var"))
    head = ",".join([f"t{i}" for i in range(33)] + [f"p{i}" for i in range(33)] + [f"v{i}" for i in range(33)])
    (tmp_path / "b.csv").write_text(head + "\n" + "".join(",".join(repr(float(a)) for a in row) + "\n"
                                                          for row in np.hstack([y, p, v])))
    r = run("gaussian-nll", "--csv", "b.csv", "--target-cols", "0:33", "--pred-cols", "33:66", "--var",
            "66:99", "-c", "torch", "--dtype", "bfloat16", "-r", "mean", "-f", "csv", cwd=tmp_path)
    assert r.code == 0, r.err
    rows = np.loadtxt(r.out.splitlines()[1:], delimiter=",")
    want = _run(rec)
    assert np.array_equal(rows[:, -66:-33], want.grad) and np.array_equal(rows[:, -33:], want.grads["var"])
    assert np.array_equal(want.grads["var"], values(rec["grad_var"], "bfloat16"))


def test_tensor_files_mean_writes_the_kernels_gradients(tmp_path: Path) -> None:
    # tensor files (a variance per sample) written with -o: the mean's gradients for the predictions and the
    # variances are the in-memory kernels', which the golden records hold to torch's
    rec = next(r for r in DATA["records"] if r["reduction"] == "mean" and r["dtype"] == "float16"
               and np.shape(r["var"]) == (7, 1) and not r["options"]["full"] and "var_eps" not in r["options"])
    for k in ("target", "pred", "var"):  # (a file's variance per sample: shape [N])
        a = values(rec[k], "float16").astype(np.float16)
        np.save(tmp_path / f"{k}.npy", a.reshape(-1) if k == "var" else a)
    r = run("gaussian-nll", "--target", "target.npy", "--pred", "pred.npy", "--var", "var.npy", "-c", "torch",
            "--dtype", "float16", "-r", "mean", "-o", "out.npz", "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    out, want = np.load(tmp_path / "out.npz"), _run(rec)
    assert np.array_equal(out["grad"].astype(np.float32), values(rec["grad"], "float16"))
    assert np.array_equal(out["grad_var"].astype(np.float32), values(rec["grad_var"], "float16").reshape(-1))
    assert float(r.json()["value"]) == want.value == float(values(rec["value"], "float16"))  # (JSON: "inf")
