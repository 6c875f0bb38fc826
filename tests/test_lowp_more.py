"""The torch convention's further kernels (cross_entropy and nll_loss with ignore_index, class weights and label
smoothing, and the losses beyond tests/test_lowp.py's) in float32, float16 and bfloat16, against PyTorch's own CPU
results recorded by scripts/golden_lowp_more.py in tests/golden/lowp_more.json: bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad import lowp

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_more.json"
DATA = json.loads(GOLDEN.read_text())
IGNORE = -100


def values(strings: object, dtype: str) -> np.ndarray:
    """The recorded numbers as float32 arrays, each read (through float64) as a value of `dtype`."""
    a = np.array(strings, dtype=np.float64)
    return a.astype(np.float32) if dtype == "float32" else a.astype(lowp.half_dtype(dtype)).astype(np.float32)


def ulps(got: np.ndarray, want: np.ndarray, dtype: str) -> int:
    """The largest distance between got and want in places of `dtype`'s ordered numbers (two NaNs: 0)."""
    kind = lowp.half_dtype(dtype) if dtype != "float32" else np.float32
    bits, ints = (32, np.int32) if dtype == "float32" else (16, np.int16)
    both = np.isnan(got) & np.isnan(want)
    got, want = np.where(both, 0, got), np.where(both, 0, want)

    def ordered(a: np.ndarray) -> np.ndarray:
        i = np.asarray(a, dtype=np.float32).astype(kind).view(ints).astype(np.int64)
        return np.where(i < 0, -(i & ((1 << (bits - 1)) - 1)), i)
    return int(np.abs(ordered(got) - ordered(want)).max()) if got.size else 0


def _run(rec: dict) -> lossgrad.Result:
    options = dict(rec["options"])
    if rec["loss"] in ("ce", "bce"):
        options.setdefault("from_logits", True)
    dtype = rec["dtype"]
    kind = "float32" if options.get("labels") == "index" else dtype  # (class indexes: integers, kept whole)
    return lossgrad.evaluate(rec["loss"], values(rec["target"], kind).astype(np.float64),
                             values(rec["pred"], dtype).astype(np.float64), convention="torch", dtype=dtype,
                             reduction=rec["reduction"], **options)


def _id(i: int, rec: dict) -> str:
    opts = "-".join(k for k in rec["options"] if k != "labels")
    return f"{rec['dtype']}-{rec['loss']}-{opts}-{rec['reduction']}-{'x'.join(map(str, np.shape(rec['pred'])))}-{i}"


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(i, r) for i, r in enumerate(DATA["records"])])
def test_torch_kernels_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    assert_torch_results({"grad": r.grad, "losses": r.losses, "value": r.value, "grad_logits": r.grad_logits}, rec)


def record_ids(records: list[dict]) -> list[str]:
    """A test id per golden record: loss, dtype, reduction, options, shape, name and index."""
    def one(i: int, rec: dict) -> str:
        opts = "-".join(f"{k}{v}" for k, v in rec["options"].items())
        shape = "x".join(map(str, np.shape(rec["pred"])))
        return f"{rec['loss']}-{rec['dtype']}-{rec['reduction']}-{opts}-{shape}-{rec['name']}-{i}"
    return [one(i, r) for i, r in enumerate(records)]


def assert_torch_results(got: dict, rec: dict) -> None:
    """Each result the record holds is PyTorch's, bit for bit, and a value of the record's dtype."""
    for what, result in got.items():
        if rec.get(what) is None:
            continue
        want = values(rec[what], rec["dtype"])
        have = np.asarray(result, dtype=np.float64).reshape(want.shape)
        finite = np.isfinite(have)
        assert (have[finite] == have[finite].astype(np.float32)).all(), f"{what}: not a {rec['dtype']} value"
        assert ulps(have, want, rec["dtype"]) == 0, f"{what}: {ulps(have, want, rec['dtype'])} ulp from torch"


def test_golden_records_torch_and_the_instruction_set() -> None:
    assert DATA["versions"]["torch"].startswith("2.13.0")
    assert DATA["versions"]["cpu_capability"] == "AVX512" and lowp.lanes() == 16


def test_bfloat16_mean_over_259_tokens_divides_by_260() -> None:
    # nll_loss stores its count of tokens kept in the dtype: 259 needs 9 significant bits, bfloat16 has 8, and
    # 259 lies nearer 260 than 258 (by hand); the value recorded from torch is the sum over 260 so rounded
    rec = next(r for r in DATA["records"] if r["name"] == "tokens")
    labels = values(rec["target"], "float32")[:, 0]
    assert int((labels != IGNORE).sum()) == 259
    r = _run(rec)
    sums = lossgrad.evaluate("ce", labels, values(rec["pred"], "bfloat16"), from_logits=True, convention="torch",
                             dtype="bfloat16", ignore_index=IGNORE, reduction="sum")
    assert r.value == float(lowp.half_dtype("bfloat16")(np.float32(sums.value) / np.float32(260)))
    assert r.value == values(rec["value"], "bfloat16")[()]


def test_every_token_left_out_gives_nan_as_torch_does() -> None:
    rec = next(r for r in DATA["records"] if r["name"] == "all-ignored" and r["reduction"] == "mean")
    assert np.isnan(values(rec["value"], rec["dtype"])) and np.isnan(_run(rec).value)


def test_tensor_files_with_ignore_index_in_bfloat16_match_the_in_memory_result(tmp_path: Path) -> None:
    # a [B, T, V] logits file with −100 labels: the file's gradient and value are the in-memory kernels', bit for
    # bit (which the golden records check against torch)
    import ml_dtypes

    rng = np.random.default_rng(11)
    z = rng.normal(scale=3.0, size=(3, 40, 7)).astype(ml_dtypes.bfloat16).astype(np.float32)
    y = rng.integers(0, 7, size=(3, 40))
    y.reshape(-1)[::4] = IGNORE
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    r = run("ce", "--from-logits", "--pred", "z.npy", "--target", "y.npy", "-c", "torch", "--dtype", "bfloat16",
            "--ignore-index", IGNORE, "-o", "out.npz", "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    want = lossgrad.ce(y.reshape(-1), z.reshape(-1, 7).astype(np.float64), from_logits=True, convention="torch",
                       dtype="bfloat16", ignore_index=IGNORE)
    got = np.load(tmp_path / "out.npz")["grad"].reshape(-1, 7)
    assert np.array_equal(got, np.asarray(want.grad, dtype=np.float32)) and r.json()["value"] == want.value


def test_csv_batch_with_ignore_index_in_bfloat16_writes_the_kernels_gradient(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    z = rng.normal(scale=2.0, size=(50, 3))
    y = rng.integers(0, 3, size=50)
    y[::5] = IGNORE
    (tmp_path / "b.csv").write_text("target,a,b,c\n" + "".join(
        f"{t},{','.join(repr(v) for v in row)}\n" for t, row in zip(y.tolist(), z.tolist(), strict=True)))
    r = run("ce", "--from-logits", "--csv", "b.csv", "-c", "torch", "--dtype", "bfloat16", "--ignore-index", IGNORE,
            "-f", "csv", cwd=tmp_path)
    assert r.code == 0, r.err
    want = lossgrad.ce(y, z, from_logits=True, convention="torch", dtype="bfloat16", ignore_index=IGNORE)
    rows = np.loadtxt(r.out.splitlines()[1:], delimiter=",")
    assert np.array_equal(rows[:, -3:], want.grad)


def test_options_beyond_the_kernels_are_refused_in_half_dtypes() -> None:
    with pytest.raises(lossgrad.OptionError, match="sample_weight"):
        lossgrad.evaluate("nll", [0], [-0.5, -1.0], convention="torch", dtype="float16", sample_weight=[2.0],
                          class_weights=[1.0, 2.0])


def test_poisson_in_float32_needs_mkl() -> None:
    # float32 tensors take e^x and log x from MKL's vector library: reproduced with MKL's own functions where the
    # mkl extra is installed (tests/test_mkl.py), the float32 formulas where it is not; the half dtypes' kernels
    # (which widen to SLEEF's float32 functions) are the golden records' subject
    from lossgrad import kernels, mkl, options

    assert bool(kernels.unsupported("torch", "float32", "poisson", True, {"full": False}, {"full": False},
                                    False)) != mkl.available()
    assert options.setup("poisson", from_logits=True, convention="torch", dtype="float32").lowp == mkl.available()
    assert options.setup("poisson", from_logits=True, convention="torch", dtype="bfloat16").lowp


def test_smooth_l1_in_half_dtypes_is_reproduced() -> None:
    # its float16 and bfloat16 kernels are reproduced (tests/test_lowp_focal.py holds them to torch's records)
    r = lossgrad.evaluate("smooth-l1", [0.0], [0.5], convention="torch", dtype="bfloat16", beta=0.3)
    # z − β/2 from β on: 0.5 − 0.15 = 0.35, which bfloat16 (steps of 2^-9 in [0.25, 0.5)) holds as 179/512 (by hand)
    assert float(r.value) == 179 / 512
