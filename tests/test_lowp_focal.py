"""focal (torchvision.ops.sigmoid_focal_loss) under the torch convention in float32, float16 and bfloat16, and
smooth-l1 in float16 and bfloat16, against PyTorch's own CPU results recorded by scripts/golden_lowp_focal.py in
tests/golden/lowp_focal.json: losses, value and gradient bit for bit; and the two things lossgrad leaves to the
float32 formulas or refuses, with the evidence recorded from torch (float32's √ is MKL's; ctc_loss refuses
float16 and bfloat16 on the CPU)."""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, lossgrad as run
from lossgrad import kernels, libm, lowp, lowp_focal, mkl, options
from test_lowp_more import assert_torch_results, record_ids, values

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_focal.json"
DATA = json.loads(GOLDEN.read_text())


def _run(rec: dict) -> lossgrad.Result:
    more = {"from_logits": True} if rec["loss"] == "focal" else {}
    dtype = rec["dtype"]
    return lossgrad.evaluate(rec["loss"], values(rec["target"], dtype).astype(np.float64),
                             values(rec["pred"], dtype).astype(np.float64), convention="torch", dtype=dtype,
                             reduction=rec["reduction"], **rec["options"], **more)



@pytest.mark.parametrize("rec", DATA["records"], ids=record_ids(DATA["records"]))
def test_torch_kernels_bit_for_bit(rec: dict) -> None:
    if rec.get("mkl") and not mkl.available():
        pytest.skip("float32 focal at γ = ½ or 1.5 takes MKL's √: the mkl extra is not installed")
    more = {"from_logits": True} if rec["loss"] == "focal" else {}
    assert options.setup(rec["loss"], convention="torch", dtype=rec["dtype"], **rec["options"], **more).lowp
    r = _run(rec)
    assert_torch_results({"grad": r.grad, "losses": r.losses, "value": r.value}, rec)


def test_golden_records_torch_and_the_instruction_set() -> None:
    assert DATA["versions"]["torch"].startswith("2.13.0") and DATA["versions"]["torchvision"]
    assert DATA["versions"]["cpu_capability"] == "AVX512" and lowp.lanes() == 16
    focal = [r for r in DATA["records"] if r["loss"] == "focal"]
    # every dtype meets every exponent of torch.pow's own cases (γ and γ − 1: 0, ±½, 1, 2, 3) and others
    assert {(r["dtype"], r["options"]["gamma"]) for r in focal} >= {(d, g) for d in ("float16", "bfloat16")
                                                                  for g in (0, 0.5, 1, 1.5, 2, 2.5, 3, 0.3)}
    # saturated logits: 1 − p_t = 0, where pow's derivative meets 0·∞ (NaN) for γ < 1
    nan = [r for r in focal if r["name"] == "saturated" and np.isnan(values(r["grad"], r["dtype"])).any()]
    assert nan and all(r["options"]["gamma"] in (0.5, 0.3) for r in nan)
    # the scalar loops: sizes that are not whole pairs of registers
    assert {np.size(r["pred"]) % 64 for r in focal} >= {39, 58, 55, 48}


def test_float32_square_root_is_mkls() -> None:
    # torch's float32 √x (MKL's vmsSqrt) is not the correctly rounded root on the recorded inputs: float32 focal with
    # γ = ½ (its forward) or 1.5 (its backward's m^½) is reproduced with MKL's own √ where the mkl extra is
    # installed, and stays on its formulas where it is not; the half dtypes take SLEEF's powf (float16) or √ in
    # float32 rounded to bfloat16
    rec = DATA["float32_sqrt"]
    x, want = values(rec["x"], "float32"), values(rec["sqrt"], "float32")
    assert len(x) and rec["differ_from_rounded"] > 0 and not np.array_equal(np.sqrt(x), want)
    for gamma in (0.5, 1.5):
        setup = options.setup("focal", convention="torch", dtype="float32", from_logits=True, gamma=gamma)
        assert setup.lowp == mkl.available()
        assert options.setup("focal", convention="torch", dtype="bfloat16", from_logits=True, gamma=gamma).lowp
    assert options.setup("focal", convention="torch", dtype="float32", from_logits=True, gamma=2.5).lowp
    assert any(r.get("mkl") for r in DATA["records"])
    if mkl.available():
        assert np.array_equal(mkl.sqrt(x), want)


def test_ctc_in_half_dtypes_is_refused_with_pytorchs_own_reason() -> None:
    for dtype, said in DATA["ctc"].items():
        assert said is not None and said.startswith("NotImplementedError")
        message = said.split(": ", 1)[1]  # ('"ctc_loss_cpu" not implemented for 'Half'')
        r = run("ctc", "--target", "1,2", "--pred", "-1.1,-1.2,-1.3; -1.3,-1.1,-1.2; -1.5,-1.2,-1.1", "-c",
                "torch", "--dtype", dtype)
        assert_usage_error(r, "--dtype", "PyTorch refuses ctc", message, "NotImplementedError")
        assert kernels.refused("torch", dtype, "ctc") is not None
    assert kernels.refused("torch", "float32", "ctc") is None


def test_the_bare_refusal_is_gone_for_focal() -> None:
    r = run("focal", "--from-logits", "-y", "1,0,1", "-p", "0.3,-2,4", "-c", "torch", "--dtype", "bfloat16",
            "-f", "json")
    assert r.code == 0, r.err
    rec = next(r for r in DATA["records"] if r["loss"] == "focal" and r["dtype"] == "bfloat16")
    assert rec  # (the recorded bfloat16 runs are the kernels' bit for bit: test_torch_kernels_bit_for_bit)
    assert r.json()["dtype"] == "bfloat16"


def test_focal_csv_batch_mean_writes_the_kernels_gradients(tmp_path: Path) -> None:
    # a CSV batch's rows (mean: the 1/N brought in first) are the in-memory kernels' gradients, which the
    # golden records hold to torch's
    rec = next(r for r in DATA["records"] if r["loss"] == "focal" and r["reduction"] == "mean"
               and r["dtype"] == "float16" and np.shape(r["pred"]) == (7, 33) and r["options"]["gamma"] == 2.0)
    y, z = values(rec["target"], "float16"), values(rec["pred"], "float16")
    head = ",".join([f"t{i}" for i in range(33)] + [f"p{i}" for i in range(33)])
    (tmp_path / "b.csv").write_text(head + "\n" + "".join(",".join(repr(float(a)) for a in row) + "\n"
                                                          for row in np.hstack([y, z])))
    gamma_alpha = [f"--{k}={v}" for k, v in rec["options"].items()]
    r = run("focal", "--csv", "b.csv", "--target-cols", "0:33", "--pred-cols", "33:66", "--from-logits",
            *gamma_alpha, "-c", "torch", "--dtype", "float16", "-r", "mean", "-f", "csv", cwd=tmp_path)
    assert r.code == 0, r.err
    rows = np.loadtxt(r.out.splitlines()[1:], delimiter=",")
    assert np.array_equal(rows[:, -33:], values(rec["grad"], "float16"))


def test_focal_tensor_files_mean_writes_the_kernels_gradients(tmp_path: Path) -> None:
    rec = next(r for r in DATA["records"] if r["loss"] == "focal" and r["reduction"] == "mean"
               and r["dtype"] == "float32" and np.shape(r["pred"]) == (3, 61) and r["name"] == "random")
    for k in ("target", "pred"):
        np.save(tmp_path / f"{k}.npy", values(rec[k], "float32"))
    gamma_alpha = [f"--{k}={v}" for k, v in rec["options"].items()]
    r = run("focal", "--target", "target.npy", "--pred", "pred.npy", "--from-logits", *gamma_alpha, "-c",
            "torch", "--dtype", "float32", "-r", "mean", "-o", "out.npz", "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    out = np.load(tmp_path / "out.npz")
    assert np.array_equal(out["grad"], values(rec["grad"], "float32"))
    assert float(r.json()["value"]) == float(values(rec["value"], "float32"))


def test_smooth_l1_half_dtypes_are_reproduced_now() -> None:
    for dtype in ("float16", "bfloat16"):
        assert kernels.unsupported("torch", dtype, "smooth-l1", True, {"beta": 0.5}, {}, False) is None
        assert options.setup("smooth-l1", convention="torch", dtype=dtype, beta=0.5).lowp


def test_glibc_expf_and_sleef_powf_on_hand_worked_points() -> None:
    # e^0 = 1, e^(ln 2) rounds to 2, x^1 = x, 0^γ = 0, 1^γ = 1, 4^½ = 2, 2^3 = 8 (by hand); all exact in float32
    f32 = np.float32
    assert np.array_equal(lowp.libm_expf(np.array([0.0, np.log(2)], dtype=f32)), np.array([1, 2], dtype=f32))
    x = np.array([0.0, 1.0, 4.0, 2.0, 0.75], dtype=f32)
    assert np.array_equal(lowp_focal.powf(x, f32(0.5))[:3], np.array([0, 1, 2], dtype=f32))
    assert lowp_focal.powf(x, f32(3.0))[3] == 8 and lowp_focal.powf(x, f32(1.0))[4] == f32(0.75)



def test_glibc_expf_as_the_c_library_computes_it_where_it_is_not_correctly_rounded() -> None:
    # lowp.libm_expf against this machine's C library (glibc's expf through ctypes) on random floats: the same
    # bits, including e^3.7404397, which glibc rounds to 42.116505 where the correctly rounded value is 42.1165;
    # torch.sigmoid's scalar loop (lowp.sigmoid, the elements after the last 32) takes its e^−z from there
    if libm._libm() is None or platform.libc_ver()[0] != "glibc":
        pytest.skip("not the GNU C library")
    f32 = np.float32
    x = np.concatenate([np.random.default_rng(5).uniform(-104, 89, 20_000), [3.7404397, -3.7404397]]).astype(f32)
    assert np.array_equal(lowp.libm_expf(x), libm.expf(x))
    assert lowp.libm_expf(np.array([3.7404397], dtype=f32))[0] != f32(np.exp(np.float64(f32(3.7404397))))
    z = np.full(33, -3.7404397, dtype=f32)  # (32 in the registers, the last in the scalar loop)
    tail = f32(1) / (f32(1) + libm.expf(-z[-1:])[0])
    assert lowp.sigmoid(z, lambda a: a)[-1] == tail != lowp.sigmoid(z, lambda a: a)[0]

@pytest.mark.frameworks
def test_live_torch_matches_on_fresh_random_inputs(live_rng: np.random.Generator) -> None:
    pytest.importorskip("torch")
    if importlib.util.find_spec("torchvision") is None:  # (read from its source file: its ops need not load)
        pytest.skip("torchvision is not installed")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import golden_lowp_focal

    rng = live_rng
    records = golden_lowp_focal.focal_records(rng)[::5] + golden_lowp_focal.smooth_records(rng)[::7]
    for rec in records:
        test_torch_kernels_bit_for_bit(rec)
