"""dice and tversky under the torch convention (MONAI's DiceLoss and TverskyLoss) in float32, float16 and
bfloat16, against MONAI's own results on PyTorch's CPU kernels recorded by scripts/golden_lowp_seg.py in
tests/golden/lowp_seg.json: losses, reduced value and gradient bit for bit, in memory, from a CSV batch and from
tensor files; and a live comparison on fresh random inputs where torch and MONAI are installed."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad import kernels, lowp, options
from test_lowp_more import assert_torch_results, values

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_seg.json"
DATA = json.loads(GOLDEN.read_text())


def array(field: object, dtype: str) -> np.ndarray:
    """A recorded array: the shortest strings, or the dtype's raw bytes in base64 (the large records)."""
    if isinstance(field, dict):
        raw = base64.b64decode(field["packed"])
        if dtype == "float32":
            return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(field["shape"])
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
        if dtype == "bfloat16":
            return (bits << 16).view(np.float32).reshape(field["shape"])
        return bits.astype(np.uint16).view(np.float16).astype(np.float32).reshape(field["shape"])
    return values(field, dtype)


def _run(rec: dict) -> lossgrad.Result:
    dtype = rec["dtype"]
    return lossgrad.evaluate(rec["loss"], array(rec["target"], dtype).astype(np.float64),
                             array(rec["pred"], dtype).astype(np.float64), convention="torch", dtype=dtype,
                             reduction=rec["reduction"], **rec["options"])


def _id(i: int, rec: dict) -> str:
    opts = "-".join(f"{k}{v}" for k, v in rec["options"].items())
    shape = "x".join(map(str, array(rec["pred"], rec["dtype"]).shape))
    return f"{rec['loss']}-{rec['dtype']}-{rec['reduction']}-{opts}-{shape}-{rec['name']}-{i}"


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(i, r) for i, r in enumerate(DATA["records"])])
def test_monai_on_torch_kernels_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    assert options.setup(rec["loss"], convention="torch", dtype=rec["dtype"]).lowp
    got = {"losses": r.losses, "value": r.value}
    if isinstance(rec["grad"], dict):
        want = array(rec["grad"], rec["dtype"])
        assert np.array_equal(np.asarray(r.grad, dtype=np.float32), want, equal_nan=True), "grad differs"
    else:
        got["grad"] = r.grad
    assert_torch_results(got, rec)


def test_golden_records_torch_monai_and_the_machine() -> None:
    meta = DATA["versions"]
    assert meta["torch"].startswith("2.13.0") and meta["monai"] == "1.6.1"
    assert meta["cpu_capability"] == "AVX512" and meta["threads"] == lowp.THREADS
    recs = DATA["records"]
    # every dtype, loss, option and reduction is held, with 0/0 rows (no smoothing) where MONAI gives NaN
    assert {(r["dtype"], r["loss"], r["reduction"]) for r in recs} >= {
        (d, loss, red) for d in ("float32", "float16", "bfloat16") for loss in ("dice", "tversky")
        for red in ("none", "sum", "mean")}
    assert {k for r in recs for k in r["options"]} == {"squared", "smooth", "alpha", "beta", "from_logits"}
    nan = [r for r in recs if r["reduction"] == "none" and np.isnan(values(r["losses"], r["dtype"])).any()]
    assert nan and all(r["options"].get("smooth") == 0.0 for r in nan)
    # single samples beyond 32,768 pixels, which PyTorch splits among its threads
    assert {r["dtype"] for r in recs if array(r["pred"], r["dtype"]).shape[1] > lowp.GRAIN} == {
        "float32", "float16", "bfloat16"}


def test_float16_products_of_tiny_probabilities_are_subnormal() -> None:
    # probabilities of 1e-6 (by hand: float16's smallest normal is 2^-14 ≈ 6.1e-5) give subnormal float16
    # products; the records hold MONAI's results for them
    tiny = [r for r in DATA["records"] if r["dtype"] == "float16" and r["name"] == "adversarial"
            and not r["options"].get("from_logits")]
    assert tiny
    p = values(tiny[0]["pred"], "float16")
    assert ((p[2] > 0) & (p[2] < 2.0 ** -14)).all()


def test_half_dtypes_are_taken_with_or_without_sample_weights() -> None:
    # (the weighted losses are MONAI's times the weights: tests/test_weights_torch_more.py)
    for dtype in ("float16", "bfloat16"):
        for weighed in (False, True):
            assert kernels.unsupported("torch", dtype, "dice", False, {"squared": True, "smooth": 1.0}, {},
                                       weighed) is None
            assert kernels.unsupported("torch", dtype, "tversky", True, {"alpha": 0.3, "beta": 0.7}, {},
                                       weighed) is None
    assert "tversky" in kernels.supported("torch") and "dice" in kernels.supported("torch")


def _record(dtype: str, reduction: str, shape: tuple[int, int], loss: str = "dice") -> dict:
    return next(r for r in DATA["records"] if r["dtype"] == dtype and r["reduction"] == reduction
                and r["loss"] == loss and array(r["pred"], dtype).shape == shape)


def test_csv_batch_mean_writes_the_kernels_gradients(tmp_path: Path) -> None:
    rec = _record("bfloat16", "mean", (5, 33), "tversky")
    y, p = values(rec["target"], "bfloat16"), values(rec["pred"], "bfloat16")
    head = ",".join([f"t{i}" for i in range(33)] + [f"p{i}" for i in range(33)])
    (tmp_path / "b.csv").write_text(head + "\n" + "".join(",".join(repr(float(a)) for a in row) + "\n"
                                                          for row in np.hstack([y, p])))
    flags = [f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}") for k, v in rec["options"].items()]
    r = run("tversky", "--csv", "b.csv", "--target-cols", "0:33", "--pred-cols", "33:66", "-c", "torch",
            "--dtype", "bfloat16", "-r", "mean", "-f", "csv", *flags, cwd=tmp_path)
    assert r.code == 0, r.err
    rows = np.loadtxt(r.out.splitlines()[1:], delimiter=",")
    assert np.array_equal(rows[:, -33:], values(rec["grad"], "bfloat16"))


def test_tensor_files_mean_writes_the_kernels_gradients(tmp_path: Path) -> None:
    rec = _record("float16", "mean", (17, 7))
    for k in ("target", "pred"):
        np.save(tmp_path / f"{k}.npy", values(rec[k], "float16").astype(np.float16))
    flags = [f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}") for k, v in rec["options"].items()]
    r = run("dice", "--target", "target.npy", "--pred", "pred.npy", "-c", "torch", "--dtype", "float16",
            "-r", "mean", "-o", "out.npz", "-f", "json", *flags, cwd=tmp_path)
    assert r.code == 0, r.err
    out = np.load(tmp_path / "out.npz")
    assert np.array_equal(out["grad"].astype(np.float32), values(rec["grad"], "float16"))
    assert float(r.json()["value"]) == float(values(rec["value"], "float16"))


@pytest.mark.frameworks
def test_live_monai_matches_on_fresh_random_inputs(live_rng: np.random.Generator) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import golden_lowp_seg

    rng = live_rng
    for dtype in ("float32", "float16", "bfloat16"):
        for loss, choices in golden_lowp_seg.OPTIONS.items():
            shape = (int(rng.integers(1, 12)), int(rng.integers(1, 70)))
            from_logits = bool(rng.integers(2))
            y, p = golden_lowp_seg.inputs(rng, dtype, shape, from_logits, "random")
            extra = {"from_logits": True} if from_logits else {}
            for reduction in ("none", "sum", "mean"):
                opts = choices[int(rng.integers(len(choices)))] | extra
                test_monai_on_torch_kernels_bit_for_bit(golden_lowp_seg.record(loss, dtype, reduction, y, p, opts,
                                                                               "live"))


def _apart_logits() -> np.ndarray:
    """Logits whose σ differs between SLEEF's e^x (PyTorch's registers) and glibc's (its scalar loop)."""
    z = np.linspace(-8, 8, 4001, dtype=np.float32)
    one = np.float32(1)
    apart = one / (one + lowp.expf(-z)) != one / (one + lowp.libm_expf(-z))
    return z[apart]


@pytest.mark.parametrize("loss", ["dice", "tversky"])
def test_a_batch_of_logits_in_slices_is_the_whole_batchs(loss: str) -> None:
    # σ(z) over more than 32,768 elements: each of PyTorch's threads ends its part of the whole batch in a scalar
    # loop (glibc's e^x); lossgrad evaluates 32,768 samples at a time, each slice told where it lies. 40,031 rows of
    # 2 pixels: each thread's part 40,031 elements, its last 31 in the scalar loop (a slice alone would end in 30)
    from lossgrad import lowp_seg

    z = _apart_logits()
    assert z.size > 31
    rng = np.random.default_rng(5)
    p = rng.choice(z, (40031, 2)).astype(np.float64)
    y = (rng.random((40031, 2)) < 0.5).astype(np.float64)
    r = lossgrad.evaluate(loss, y, p, from_logits=True, convention="torch", dtype="float32", reduction="sum")
    whole = lowp_seg.compute(loss, y.astype(np.float32), p.astype(np.float32), None, None, {}, params={},
                             from_logits=True)
    assert not r.warnings
    assert np.array_equal(np.asarray(r.grad, dtype=np.float32), whole.grad)
