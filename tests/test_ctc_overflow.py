"""optax's ctc where the logits' gap overflows the dtype (tests/golden/ctc_overflow.json, written by
scripts/golden_ctc_overflow.py): its einsum of the log-probabilities with one-hot rows makes −∞·0 a NaN, so the
sequence's loss and gradient are NaN whichever class is −∞; lossgrad's pick of each label gives the same, bit for
bit, and the other sequences' numbers stay as they are. The same for Keras 3 (TensorFlow's one-hot product) and
tf-keras (the CTCLoss op's softmax of an infinite input, NaN: glibc's and Eigen's log of NaN and ∞ as the libraries
give them)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import lossgrad

DATA = json.loads((Path(__file__).parent / "golden" / "ctc_overflow.json").read_text())


def _bits(values: list[str], dtype: type) -> list[int]:
    a = np.array([float.fromhex(v) for v in values], dtype=dtype)
    return a.view(np.uint32 if dtype is np.float32 else np.uint64).tolist()


def _nan_or_bits(values: list[str], dtype: type) -> list:
    """NaNs as "nan" (their payloads are the processor's), other numbers by their bits."""
    return ["nan" if v == "nan" else b for v, b in zip(values, _bits(values, dtype), strict=True)]


@pytest.mark.parametrize("rec", DATA["records"], ids=[f"{r['name']}-{r['dtype']}-{'jit' if r['jit'] else 'ops'}"
                                                      for r in DATA["records"]])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_nan_as_optax_gives_it(rec: dict, reduction: str) -> None:
    kind = np.float64 if rec["dtype"] == "float64" else np.float32  # (a half dtype's numbers as float32 holds them)
    x = np.array([float.fromhex(v) for v in rec["logits"]]).reshape(rec["shape"])
    r = lossgrad.ctc(rec["labels"], x, from_logits=True, convention="optax", dtype=rec["dtype"], jit=rec["jit"],
                     reduction=reduction, cpu="avx2")

    def mine(a: np.ndarray) -> list[str]:
        return [float(v).hex() for v in np.asarray(a, dtype=kind).reshape(-1)]
    assert _nan_or_bits(mine(r.losses), kind) == _nan_or_bits(rec["losses"], kind)
    assert _nan_or_bits(mine(r.grad), kind) == _nan_or_bits(rec[reduction]["grad"], kind)
    assert np.isnan(r.value) and rec[reduction]["value"] == "nan"
    assert any("NaN" in w for w in r.warnings)


def test_the_cases_are_nan_because_of_the_einsum() -> None:
    """Without the overflow the same sequences are finite: the NaN comes from the gap alone."""
    for rec in DATA["records"][:2]:
        x = np.array([float.fromhex(v) for v in rec["logits"]]).reshape(rec["shape"])
        x[np.abs(x) > 1e30] = np.sign(x[np.abs(x) > 1e30]) * 50.0
        r = lossgrad.ctc(rec["labels"], x, from_logits=True, convention="optax", dtype=rec["dtype"], cpu="avx2")
        assert np.isfinite(r.losses).all() and np.isfinite(r.grad).all()


TF = DATA["tf_records"]


@pytest.mark.parametrize("rec", TF, ids=[f"{r['convention']}-{r['note']}-{r['dtype']}" for r in TF])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_tensorflow_as_it_gives_it(rec: dict, reduction: str) -> None:
    x = np.array(rec["pred"], dtype=np.float64)
    more = {"from_logits": True} if rec["convention"] == "keras" else {}
    r = lossgrad.ctc(rec["labels"], x, input_lengths=rec["input_lengths"], target_lengths=rec["target_lengths"],
                     convention=rec["convention"], dtype=rec["dtype"], reduction=reduction, cpu="avx2", **more)

    def shown(a: np.ndarray) -> list[str]:
        return [str(np.float32(v)) for v in np.asarray(a, dtype=np.float32).reshape(-1)]
    assert shown(r.losses) == [str(np.float32(v)) for v in np.array(rec["losses"], dtype=np.float32).reshape(-1)]
    assert shown(r.grad) == [str(np.float32(v)) for v in np.array(rec[reduction]["grad"], dtype=np.float32).reshape(-1)]
    assert str(np.float32(r.value)) == rec[reduction]["value"]


def test_tensorflows_records_hold_nan_where_the_gap_overflows() -> None:
    nan = {(r["convention"], r["dtype"]) for r in TF if "nan" in r["losses"]}
    # (Keras 3 computes in float32, so float16's ±40,000 does not overflow there; tf-keras' e^40000 does)
    assert nan == {("keras", "float32"), ("keras", "bfloat16"), ("tf-keras", "float32"), ("tf-keras", "float16"),
                   ("tf-keras", "bfloat16")}


def test_exact_holds_e_to_the_minus_ten_million() -> None:
    """Frame 0's logits [0, −10⁷, 0]: softmax (½, 0, ½) (e^−10⁷ is 10^−4342945, below decimal's default range); the
    only alignment of labels [2, 1] in 2 frames takes ½ and frame 1's softmax of class 1, by hand."""
    x = np.array([[[0.0, -1e7, 0.0], [0.5, 0.1, -0.2]]])
    r = lossgrad.ctc([[2, 1]], x, from_logits=True)
    soft1 = np.exp([0.5, 0.1, -0.2]) / np.exp([0.5, 0.1, -0.2]).sum()
    assert r.value == pytest.approx(math.log(2) - math.log(soft1[1]), rel=1e-15)
    assert r.grad[0, 0].tolist() == [0.5, 0.0, -0.5]
    assert r.grad[0, 1] == pytest.approx(soft1 - [0, 1, 0], rel=1e-14, abs=1e-16)


@pytest.mark.parametrize("command", ["ctc", "compare"])
def test_the_command_line_takes_the_overflow(command: str) -> None:
    from conftest import lossgrad as run

    r = run(*([command, "ctc"] if command == "compare" else ["ctc"]), "--from-logits", "--target", "2,1", "--pred",
            "0,-3e38,3e38;0.5,0.1,-0.2", "-f", "json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert "conventions" in out if command == "compare" else "value" in json.dumps(out)


def test_the_emulated_logs_give_the_libraries_answers_outside_their_domain() -> None:
    """NaN, ±0, ±∞ and below the domain, as glibc's logf and log1pf, PyTorch's log1p and TensorFlow's log give them
    (IEEE 754's log: NaN below 0, −∞ at ±0, ∞ at ∞; log1p the same shifted by 1)."""
    from lossgrad import lowp, lowp_tf

    x = np.array([np.nan, np.inf, -1.0, 0.0, -np.inf, 1.0, -0.0, -2.0], dtype=np.float32)
    log = ["nan", "inf", "nan", "-inf", "nan", "0.0", "-inf", "nan"]
    log1p = ["nan", "inf", "-inf", "0.0", "nan", "0.6931472", "-0.0", "nan"]
    for f, want in ((lowp.libm_logf, log), (lowp_tf.plog, log), (lowp.libm_log1pf, log1p), (lowp.log1pf, log1p)):
        with np.errstate(all="ignore"):
            assert [str(v) for v in np.asarray(f(x.copy()), dtype=np.float32)] == want, f.__name__
