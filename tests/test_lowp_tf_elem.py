"""mae, huber, logcosh, hinge, squared-hinge and cosine under keras and tf-keras in float32, float16 and bfloat16
against TensorFlow's own CPU results, recorded by scripts/golden_lowp_tf_elem.py in tests/golden/lowp_tf_elem.json:
bit for bit (losses, reduced values, gradients), from memory, a CSV batch and tensor files, and live against
TensorFlow where it is installed."""

from __future__ import annotations

import base64
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad import kernels, lowp_tf, lowp_tf_elem
from tf_records import check_record, f32, same

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_tf_elem.json"
DATA = json.loads(GOLDEN.read_text())


def _kw(rec: dict) -> dict:
    return dict(convention=rec["convention"], dtype=rec["dtype"]) | (
        {"delta": rec["delta"]} if rec["delta"] is not None else {}) | ({"eps": rec["eps"]} if "eps" in rec else {})


def _run(rec: dict, reduction: str) -> lossgrad.Result:
    return lossgrad.evaluate(rec["loss"], f32(rec["target"]).astype(np.float64),
                             f32(rec["pred"]).astype(np.float64), reduction=reduction, **_kw(rec))


def check(rec: dict) -> None:
    check_record(rec, _run)


def _id(i: int, rec: dict) -> str:
    return f"{i}-{rec['convention']}-{rec['dtype']}-{rec['loss']}-{np.shape(rec['pred'])}-{rec['note']}"


@pytest.mark.parametrize("rec", DATA["cases"], ids=[_id(i, r) for i, r in enumerate(DATA["cases"])])
def test_results_are_tensorflows_bit_for_bit(rec: dict) -> None:
    check(rec)


SIGNS = [r for r in DATA["cases"] if r["note"] == "underflow signs"]


@pytest.mark.parametrize("rec", SIGNS, ids=[f"{r['convention']}-{np.shape(r['pred'])}" for r in SIGNS])
def test_underflowing_gradients_keep_tensorflows_signs_of_zero(rec: dict) -> None:
    # RsqrtGrad's packets multiply by mul_no_nan, +0 where i·g underflows: the sign of every zero is TensorFlow's
    for reduction in ("sum", "mean"):
        got, want = _run(rec, reduction).grad.reshape(-1), f32(rec[reduction]["grad"]).reshape(-1)
        number = ~np.isnan(want)  # (a NaN's sign bit is no result)
        assert same(got, want) and np.array_equal(np.signbit(got[number]), np.signbit(want[number])), reduction


def test_the_sign_records_hold_zeros_of_both_signs() -> None:
    grads = np.concatenate([f32(r["mean"]["grad"]).reshape(-1) for r in SIGNS])
    zeros = grads[grads == 0]
    assert len(SIGNS) >= 8 and np.signbit(zeros).any() and not np.signbit(zeros).all()


def test_the_golden_file_covers_every_loss_dtype_and_the_adversarial_inputs() -> None:
    cases = DATA["cases"]
    combos = {(r["loss"], r["convention"], r["dtype"]) for r in cases}
    assert combos == {(loss, c, d) for loss in lowp_tf_elem.TAKES for c in ("keras", "tf-keras")
                      for d in ("float32", "float16", "bfloat16")}
    assert max(np.shape(r["pred"])[1] for r in cases) > 8192  # a row summed by the reducer's tree
    # the hinge's ties 1 − y·p = 0 (y = p = 1 first): TensorFlow's Maximum passes the gradient there, −y times
    # the 1/9 of Keras' mean over the 9 outputs, not 0
    tie = next(r for r in cases if r["note"] == "ties at the hinge" and r["loss"] == "hinge")
    assert f32(tie["sum"]["grad"])[0, 0] == -(np.float32(1) / np.float32(9))
    # Keras 3's cap 1/ε on a zero vector's inverse norm is infinite in float16: 0·∞ makes its loss NaN
    zero = next(r for r in cases if r["note"].startswith("zero and") and r["convention"] == "keras"
                and r["dtype"] == "float16")
    assert np.isnan(f32(zero["losses"])[0])
    check(zero)
    # --eps is Keras 3's backend epsilon: at 0.1 its cap 1/ε = 10 binds on the short rows, and the records differ
    # from what the default ε gives
    capped = [r for r in cases if "eps" in r]
    assert {r["dtype"] for r in capped} == {"float32", "float16", "bfloat16"}
    assert not same(_run({k: v for k, v in capped[0].items() if k != "eps"}, "sum").grad, capped[0]["sum"]["grad"])


def test_the_rsqrtps_estimates_are_those_read_back_from_tensorflow() -> None:
    # the table lossgrad carries is the one the golden script recorded from TensorFlow's rsqrt
    assert zlib.decompress(base64.b64decode(DATA["rsqrtps"])) == zlib.decompress(
        base64.b64decode(lowp_tf_elem.RSQRTPS))
    # and a packet's rsqrt is not 1/√x correctly rounded (the estimate's last bits show through the Newton step)
    x = np.linspace(1, 4, 8000, dtype=np.float32)
    exact = (1 / np.sqrt(x.astype(np.float64))).astype(np.float32)
    ours = lowp_tf_elem.rsqrt(x, lowp_tf.FLOAT32)
    assert (ours != exact).any() and np.abs(ours.astype(np.float64) / exact - 1).max() < 2.0 ** -21


def test_softplus_cut_offs_are_eigens_per_dtype() -> None:
    # log ε + 2 with ε = 2^−23, 2^−13 (Eigen's NumTraits<half>) and 2^−7, each in its dtype (by hand: log 2^−23 + 2
    # = −13.9424, log 2^−13 + 2 = −7.0109 → float16 −7.0078125, log 2^−7 + 2 = −2.8520 → bfloat16 −2.84375)
    assert lowp_tf_elem.softplus_threshold(lowp_tf.FLOAT32) == np.float32(np.log(2.0 ** -23) + 2)
    assert lowp_tf_elem.softplus_threshold(lowp_tf.kind_of(np.float16)) == -7.0078125
    assert lowp_tf_elem.softplus_threshold(lowp_tf.kind_of(lossgrad.lowp.half_dtype("bfloat16"))) == -2.84375


def test_options_the_kernels_do_not_take_are_refused() -> None:
    assert kernels.unsupported("tf", "bfloat16", "huber", False, {"delta": 2.5}, {}, False) is None
    assert kernels.unsupported("tf", "bfloat16", "cosine", False, {"delta": 2.5}, {}, False) == "cosine with {delta}"
    # (sample weights are reproduced: tests/test_weights_tf.py)
    assert kernels.unsupported("tf", "bfloat16", "mae", False, {}, {}, True) is None


def _rec(loss: str, dtype: str, conv: str = "keras") -> dict:
    return next(r for r in DATA["cases"] if (r["loss"], r["dtype"], r["convention"]) == (loss, dtype, conv)
                and r["note"] == "random" and np.shape(r["pred"]) == (7, 5))


@pytest.mark.parametrize("loss", ["huber", "cosine", "logcosh"])
def test_a_csv_batch_gives_the_same_bits(tmp_path: Path, loss: str) -> None:
    # a CSV batch's rows under the mean (each row's gradient carrying 1/N) are TensorFlow's recorded gradients
    rec = _rec(loss, "bfloat16", "tf-keras")
    y, p = f32(rec["target"]), f32(rec["pred"])
    head = ",".join([f"t{i}" for i in range(5)] + [f"p{i}" for i in range(5)])
    (tmp_path / "b.csv").write_text(head + "\n" + "".join(",".join(repr(float(a)) for a in row) + "\n"
                                                          for row in np.hstack([y, p])))
    delta = ["--delta", str(rec["delta"])] if rec["delta"] is not None else []
    r = run(loss, "--csv", "b.csv", "--target-cols", "0:5", "--pred-cols", "5:10", "-c", "tf-keras", "--dtype",
            "bfloat16", "-r", "mean", "-f", "csv", *delta, cwd=tmp_path)
    assert r.code == 0, r.err
    rows = np.loadtxt(r.out.splitlines()[1:], delimiter=",")
    assert np.array_equal(rows[:, 0], f32(rec["losses"])) and np.array_equal(rows[:, 1:], f32(rec["mean"]["grad"]))


def test_tensor_files_give_the_same_bits(tmp_path: Path) -> None:
    rec = _rec("mae", "float16")
    for k in ("target", "pred"):
        np.save(tmp_path / f"{k}.npy", f32(rec[k]).astype(np.float16))
    r = run("mae", "--target", "target.npy", "--pred", "pred.npy", "-c", "keras", "--dtype", "float16", "-r", "mean",
            "-o", "out.npz", "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    out = np.load(tmp_path / "out.npz")
    assert np.array_equal(out["grad"].astype(np.float32), f32(rec["mean"]["grad"]))
    assert float(r.json()["value"]) == float(rec["mean"]["value"])


def test_half_results_are_not_the_truth_rounded_once() -> None:
    # bfloat16 stores each step: somewhere in the golden file a loss or gradient differs from the exact
    # convention's (the float64 truth rounded once), so agreeing with the file is not agreeing with the truth
    differs = 0
    for rec in (r for r in DATA["cases"] if r["dtype"] == "bfloat16" and r["loss"] == "logcosh"):
        exact = lossgrad.evaluate("logcosh", f32(rec["target"]).astype(np.float64),
                                  f32(rec["pred"]).astype(np.float64), convention="exact", dtype="bfloat16",
                                  reduction="sum")
        differs += int((exact.grad != f32(rec["sum"]["grad"])).sum())
    assert differs > 0


@pytest.mark.frameworks
def test_live_tensorflow_matches_on_fresh_random_inputs(live_rng: np.random.Generator) -> None:
    pytest.importorskip("tensorflow")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import golden_lowp_tf_elem

    rng = live_rng
    shapes = [(int(rng.integers(1, 30)), int(rng.integers(1, 40))) for _ in range(3)]
    for loss in lowp_tf_elem.TAKES:
        for _, y, p, note, delta in golden_lowp_tf_elem.random_cases(rng, loss, shapes):
            for conv in ("keras", "tf-keras"):
                for dtype in ("float32", "float16", "bfloat16"):
                    if np.isfinite(p.astype(np.float16)).all() and np.isfinite(y.astype(np.float16)).all():
                        check(golden_lowp_tf_elem.record(conv, loss, y, p, note, dtype, delta))


ONE = json.loads((GOLDEN.parent / "tf_one_output.json").read_text())["records"]


def _one_golden():  # type: ignore[no-untyped-def]
    """scripts/golden_tf_one_output.py as a module (its inputs and digests are pure numpy)."""
    from conftest import golden_script

    return golden_script("golden_tf_one_output")


def _one_run(rec: dict, reduction: str) -> tuple[lossgrad.Result, str]:
    """A record of tests/golden/tf_one_output.json by lossgrad, and its inputs' digest."""
    golden = _one_golden()
    d = golden.inputs(rec["seed"], tuple(rec["case"]))
    r = lossgrad.evaluate("cosine", d["y"], d["p"], sample_weight=d["w"] if d["w"].size else None,
                          convention=rec["case"][0], dtype=rec["case"][1], reduction=reduction)
    return r, golden.digest(*d.values())


def _one_apart(rec: dict) -> list[str]:
    digest = _one_golden().digest
    r, inputs = _one_run(rec, "none")
    assert inputs == rec["inputs"]
    out = [] if digest(np.asarray(r.losses, np.float64)) == rec["losses"] else ["losses"]
    for reduction in ("sum", "mean"):
        r = _one_run(rec, reduction)[0]
        out += [] if float(np.float32(r.value)).hex() == rec[reduction]["value"] else [f"{reduction} value"]
        out += [] if digest(np.asarray(r.grad, np.float64)) == rec[reduction]["grad"] else [f"{reduction} grad"]
    return out


@pytest.mark.parametrize("rec", ONE, ids=["-".join(map(str, r["case"])) for r in ONE])
def test_a_sample_of_one_output_keeps_tensorflows_signed_zeros(rec: dict) -> None:
    """TensorFlow copies a reduction over an axis of one: a cosine whose p² overflows is ±0 by the signs of y and
    p, and lossgrad's losses, values and gradients are TensorFlow's bits."""
    assert _one_apart(rec) == []


def test_the_one_output_records_are_apart_when_the_sum_starts_from_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, lossgrad summed a row of one from +0, so every such loss was −0: each record with a loss of +0 (the
    18 but the 5 single samples of ±1 or −0) was apart in its losses."""
    monkeypatch.setattr(lowp_tf_elem, "rsum", lambda v, kind: kind.rnd(lowp_tf.row_sums(v)) if kind.leaf == 128
                        else lowp_tf.row_sums(v, kind=kind))
    apart = ["losses" in _one_apart(rec) for rec in ONE]
    assert apart == [rec["zeros"] > rec["negative_zeros"] for rec in ONE]
    assert sum(apart) == 13


@pytest.mark.frameworks
def test_live_one_output_cosine_matches_tensorflow(live_rng: np.random.Generator) -> None:
    from conftest import golden_script

    golden = golden_script("golden_tf_one_output", "tensorflow")
    digest = golden.digest
    for case in golden.CASES[::2]:
        d = golden.inputs(int(live_rng.integers(1 << 30)), case)
        got = golden.keras_run(case, d)
        r = lossgrad.evaluate("cosine", d["y"], d["p"], sample_weight=d["w"] if d["w"].size else None,
                              convention=case[0], dtype=case[1], reduction="none")
        assert digest(np.asarray(r.losses, np.float64)) == digest(got["losses"]), case
