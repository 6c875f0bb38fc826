"""ctc under keras and tf-keras in float32, float16 and bfloat16, against TensorFlow's own CPU results (Keras 3's
ctc_loss in its loss wrapper; tf-keras' ctc_batch_cost), recorded by scripts/golden_lowp_tf_ctc.py in
tests/golden/lowp_tf_ctc.json: bit for bit (losses, reduced values, gradients), from memory, the command line and
tensor files, and live against TensorFlow where it is installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad import conventions, kernels
from lossgrad.losses import ctc
from tf_records import check_record, f32, same

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_tf_ctc.json"
DATA = json.loads(GOLDEN.read_text())


def _run(rec: dict, reduction: str) -> lossgrad.Result:
    keras = rec["convention"] == "keras"
    return lossgrad.ctc(np.array(rec["labels"]), f32(rec["pred"]).astype(np.float64),
                        input_lengths=rec["input_lengths"], target_lengths=rec["target_lengths"], from_logits=keras,
                        reduction=reduction, convention=rec["convention"], dtype=rec["dtype"], blank=rec["blank"])


def check(rec: dict) -> None:
    check_record(rec, _run)


def _id(i: int, rec: dict) -> str:
    return f"{i}-{rec['convention']}-{rec['dtype']}-{np.shape(rec['pred'])}-{rec['note']}"


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(i, r) for i, r in enumerate(DATA["records"])])
def test_results_are_tensorflows_bit_for_bit(rec: dict) -> None:
    check(rec)


def test_the_golden_file_covers_every_dtype_and_the_adversarial_inputs() -> None:
    cases = [r for r in DATA["records"] if r["convention"] == "keras"]
    assert {r["dtype"] for r in cases} == {"float32", "float16", "bfloat16"}
    assert {r["dtype"] for r in DATA["records"] if r["convention"] == "tf-keras"} == {"float32", "float16",
                                                                                      "bfloat16"}
    assert any(r["convention"] == "tf-keras" and r["blank"] not in (0, np.shape(r["pred"])[2] - 1)
               for r in DATA["records"])
    assert max(np.shape(r["labels"])[1] for r in cases) >= 16  # four accumulators along the label axis
    assert {r["blank"] for r in cases} != {0}
    assert any(len(r["labels"]) == 301 for r in cases)
    # a sequence with no alignment (two equal labels in two frames) gets a large finite loss: log 0 is log 1e−307
    rec = next(r for r in cases if r["note"].startswith("repeats") and r["dtype"] == "float32")
    assert 500 < f32(rec["losses"])[3] < np.inf and ctc.needed_frames(np.array([1, 1, 2])) > 2
    # the float32 formulas (numpy's log-sum-exps) differ from TensorFlow's losses or gradients somewhere: the
    # kernels are what make these agree
    wanted = [r for r in cases if r["dtype"] == "float32" and r["note"] == "random"]
    formulas = [ctc.ctc_compute(*_packed(r), True, conventions.KERAS, blank=r["blank"]) for r in wanted]
    assert not all(same(f.losses, w["losses"]) and same(f.grad.reshape(-1), f32(w["sum"]["grad"]).reshape(-1))
                   for f, w in zip(formulas, wanted, strict=True))


def _packed(rec: dict) -> tuple[np.ndarray, np.ndarray]:
    y, p = ctc.pack(np.array(rec["labels"]), f32(rec["pred"]), np.array(rec["input_lengths"]),
                    np.array(rec["target_lengths"]))
    return y, p.astype(np.float32)


def test_float64_is_the_float32_result_as_keras_casts() -> None:
    # keras.ops.ctc_loss casts float64 logits to float32: the losses and gradients are the float32 ones, widened
    rec = _rec("float32", "batch 7")
    r = _run(rec | {"dtype": "float64"}, "mean")
    assert r.grad.dtype == np.float64 and np.array_equal(r.grad, f32(rec["mean"]["grad"]).astype(np.float64))
    assert same(_run(rec | {"dtype": "float64"}, "none").losses, f32(rec["losses"]))


def test_bfloat16_moves_labels_above_256_as_keras_converts_them() -> None:
    # 257 is no bfloat16 (its neighbours 256 and 258, ties to even: 256); the recorded results are those of the
    # moved labels, and a warning says so
    rec = _rec("bfloat16", "300 classes")
    r = _run(rec, "sum")
    assert any("257 became 256" in w for w in r.warnings) and same(r.grad, f32(rec["sum"]["grad"]))
    assert not _run(_rec("float32", "300 classes"), "sum").warnings


def test_ctc_is_no_longer_refused_under_keras_in_half_dtypes() -> None:
    assert kernels.unsupported("tf", "bfloat16", "ctc", True, {"blank": 3}, {}, False) is None
    assert "zero_infinity" in str(kernels.unsupported("tf", "float16", "ctc", True, {"zero_infinity": True}, {},
                                                      False))
    assert kernels.unsupported("tf", "float32", "ctc", True, {}, {}, True) is None  # (sample weights: reproduced)
    assert kernels.unsupported("tf-keras", "float32", "ctc", False, {"eps": 0.01}, {}, False) is None


def test_what_tf_keras_op_refuses_is_refused() -> None:
    lp = np.log(np.full((3, 3), 1 / 3))
    with pytest.raises(lossgrad.InputError, match=r"Not enough time for target transition sequence \(required: 3, "
                                                  r"available: 2\)"):
        lossgrad.ctc([1, 2, 1], lp[:2], convention="tf-keras", dtype="bfloat16")


def test_tf_keras_means_in_bfloat16_round_the_sum_then_the_quotient() -> None:
    # Keras' fit sums the losses (bfloat16 summed in float32, stored once) and divides by N in bfloat16: in these
    # records that differs from one rounding of the float32 mean, as tf.reduce_mean would give it
    for shape in [(5, 59, 9), (10, 3, 6)]:
        rec = next(r for r in DATA["records"] if r["convention"] == "tf-keras" and r["dtype"] == "bfloat16"
                   and np.shape(r["pred"]) == shape)
        losses = f32(rec["losses"])
        once = np.float32(ml_dtypes.bfloat16(np.sum(losses, dtype=np.float32) / np.float32(len(losses))))
        assert np.float32(rec["mean"]["value"]) != once
        assert np.float32(_run(rec, "mean").value) == np.float32(rec["mean"]["value"])


def _rec(dtype: str, note: str, convention: str = "keras") -> dict:
    return next(r for r in DATA["records"] if (r["dtype"], r["note"], r["convention"]) == (dtype, note, convention))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("convention", ["keras", "tf-keras"])
def test_the_command_line_gives_the_same_bits(dtype: str, convention: str) -> None:
    rec = _rec(dtype, "hand", convention)
    pred = "; ".join(",".join(repr(float(v)) for v in frame) for frame in f32(rec["pred"])[0])
    logits = ["--from-logits"] if convention == "keras" else []
    r = run("ctc", *logits, "--target", "1,2", "--pred", pred, "-c", convention, "--dtype", dtype, "-r", "sum",
            "-f", "json")
    assert r.code == 0, r.err
    out = r.json()
    assert np.float32(out["value"]) == np.float32(rec["sum"]["value"])
    assert same(np.array(out["grad"], dtype=np.float64).reshape(-1), f32(rec["sum"]["grad"]).reshape(-1))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_tensor_files_give_the_same_bits(tmp_path: Path, dtype: str) -> None:
    # [B, T, C] logits, padded labels and both lengths as .npy files: the mean's gradient written to -o and its
    # value are TensorFlow's
    rec = _rec(dtype, "batch 9")
    np.save(tmp_path / "z.npy", f32(rec["pred"]))
    np.save(tmp_path / "tgt.npy", np.array(rec["labels"]))
    np.save(tmp_path / "il.npy", np.array(rec["input_lengths"]))
    np.save(tmp_path / "tl.npy", np.array(rec["target_lengths"]))
    r = run("ctc", "--from-logits", "--pred", "z.npy", "--target", "tgt.npy", "--input-lengths", "il.npy",
            "--target-lengths", "tl.npy", "-c", "keras", "--dtype", dtype, "-r", "mean", "-o", "out.npz", "-f",
            "json", cwd=tmp_path)
    assert r.code == 0, r.err
    out = np.load(tmp_path / "out.npz")
    assert same(out["grad"], f32(rec["mean"]["grad"])) and same(out["losses"], f32(rec["losses"]))
    assert np.float32(r.json()["value"]) == np.float32(rec["mean"]["value"])


@pytest.mark.frameworks
def test_live_tensorflow_matches_on_fresh_random_inputs(live_rng: np.random.Generator) -> None:
    pytest.importorskip("tensorflow")
    pytest.importorskip("keras")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import golden_lowp_tf_ctc

    rng = live_rng
    for z, lab, il, tl, blank, note in golden_lowp_tf_ctc.random_cases(rng, 3):
        for dtype in ("float32", "float16", "bfloat16"):
            check(golden_lowp_tf_ctc.record(z, lab, il, tl, blank, note, dtype))
    for case in golden_lowp_tf_ctc.tfkeras_cases(rng, 3)[:3]:
        for dtype in ("float32", "float16", "bfloat16"):
            check(golden_lowp_tf_ctc.tfkeras_record(*case, dtype))
