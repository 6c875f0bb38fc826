"""Keras' focal losses under the keras and tf-keras conventions in float32 (and categorical focal from logits in
bfloat16) against TensorFlow's own CPU results, recorded by scripts/golden_lowp_tf_focal32.py in
tests/golden/lowp_tf_focal32.json (and the float32 focal records of tests/golden/lowp_tf_log.json): losses, reduced
values and gradients bit for bit, in memory, on the command line, from a CSV batch and from tensor files, and live
on fresh random inputs where TensorFlow is installed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad import lowp_tf_focal32
from tf_records import check_record, f32, same

GOLDEN = Path(__file__).resolve().parent / "golden"
DATA = json.loads((GOLDEN / "lowp_tf_focal32.json").read_text())
EARLIER = [r for r in json.loads((GOLDEN / "lowp_tf_log.json").read_text())["cases"]
           if r["dtype"] == "float32" and "focal" in r["loss"]]
RECORDS = DATA["cases"] + EARLIER


def _id(i: int, rec: dict) -> str:
    return (f"{i}-{rec['convention']}-{rec['dtype']}-{rec['loss']}{'-logits' if rec['from_logits'] else ''}-"
            f"{np.shape(rec['pred'])}-{rec['note']}")


def _params(rec: dict) -> dict:
    return {k: v for k, v in rec["params"].items() if v is not None}


def _evaluate(rec: dict, reduction: str) -> lossgrad.Result:
    return lossgrad.evaluate(rec["loss"], f32(rec["target"]).astype(np.float64), f32(rec["pred"]).astype(np.float64),
                             convention=rec["convention"], dtype=rec["dtype"], reduction=reduction,
                             from_logits=rec["from_logits"], **_params(rec))


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(i, r) for i, r in enumerate(RECORDS)])
def test_focal_losses_are_tensorflows_bit_for_bit(rec: dict) -> None:
    check_record(rec, _evaluate)


def test_the_golden_file_covers_the_adversarial_inputs() -> None:
    cases = DATA["cases"]
    assert {(r["convention"], r["loss"], r["from_logits"]) for r in cases if r["dtype"] == "float32"} == {
        (c, loss, logits) for c in ("keras", "tf-keras") for loss in ("focal", "categorical-focal")
        for logits in (False, True)}
    assert {(r["convention"], r["loss"], r["from_logits"]) for r in cases if r["dtype"] == "bfloat16"} >= {
        ("keras", "categorical-focal", True), ("tf-keras", "categorical-focal", True)}
    # (soft targets reach p by two paths, which the tape adds before the clip's; 0/0 of a single class is NaN)
    halves = [r for r in cases if r["dtype"] == "float16" and r["loss"] == "focal"]
    assert any((f32(r["target"]) % 1 != 0).any() for r in halves)
    assert any(np.isnan(f32(r["losses"])).any() for r in cases if "single" in r["note"] and r["dtype"] == "float16")
    assert any(len(r["params"].get("class_alpha") or ()) > 1 for r in cases)  # (Keras' float32 tensor of them)
    gammas = {r["params"]["gamma"] for r in cases}
    assert {0.0, 0.5, 1.0, 2.0, 2.5} <= gammas
    assert {r["params"].get("alpha") is None for r in cases if r["loss"] == "focal"} == {True, False}
    widths = {np.shape(r["pred"])[1] for r in cases}
    assert {1, 5, 15, 16, 17, 31, 33, 64, 65} <= widths and max(widths) > 8192  # (packets, registers, the tree)
    assert max(f32(r["pred"]).size for r in cases) > 32768  # (the thread pool's blocks)
    preds = np.concatenate([f32(r["pred"]).reshape(-1) for r in cases if r["from_logits"]])
    assert set(f32([16.6355324, -104, 100, -100]).tolist()) <= set(preds.tolist())
    probs = np.concatenate([f32(r["pred"]).reshape(-1) for r in cases if not r["from_logits"]])
    assert set(f32([0, 1, 1e-7, 1 - 1e-7]).tolist()) <= set(probs.tolist())
    # (a focal loss of −0: TensorFlow's mean over one output copies it)
    assert any(np.signbit(f32(r["losses"])).any() and (f32(r["losses"]) == 0).any() for r in cases)
    assert "avx512f" in DATA["meta"]["cpu_flags"] and "softmax" in DATA["meta"]["onednn"]


def test_class_indexes_are_the_one_hot_rows() -> None:
    # categorical focal takes class indexes as the one-hot rows Keras is given: the recorded one-hot rows' results
    for rec in [r for r in DATA["cases"] if r["note"].startswith("one-hot") and np.shape(r["pred"])[1] > 1][:6]:
        labels = f32(rec["target"]).argmax(axis=1)[:, None].astype(np.float64)
        for reduction in ("sum", "mean"):
            r = lossgrad.evaluate(rec["loss"], labels, f32(rec["pred"]).astype(np.float64), labels="index",
                                  convention=rec["convention"], dtype=rec["dtype"], reduction=reduction,
                                  **_params(rec))
            assert same(r.value, rec[reduction]["value"]) and same(r.grad, f32(rec[reduction]["grad"]))


def _options(rec: dict) -> list[str]:
    p = _params(rec)
    out = ["--gamma", repr(p["gamma"])]
    if "alpha" in p:
        out += ["--alpha", repr(p["alpha"])]
    if "class_alpha" in p:
        out += ["--class-alpha", ",".join(map(repr, p["class_alpha"]))]
    return out + (["--from-logits"] if rec["from_logits"] else [])


def _matrix(values: object) -> str:
    return ";".join(",".join(repr(float(v)) for v in row) for row in f32(values))


def _pick(loss: str, logits: bool, shape: tuple[int, int], convention: str = "keras",
          dtype: str = "float32") -> dict:
    return next(r for r in DATA["cases"] if r["loss"] == loss and r["from_logits"] == logits and r["dtype"] == dtype
                and np.shape(r["pred"]) == shape and r["convention"] == convention)


CLI_PICKS = [("focal", False, (7, 5), "keras"), ("focal", True, (9, 17), "tf-keras"),
             ("categorical-focal", False, (13, 3), "tf-keras"), ("categorical-focal", True, (4, 16), "keras")]


@pytest.mark.parametrize("loss,logits,shape,convention", CLI_PICKS)
def test_the_command_line_gives_the_kernels_results(loss: str, logits: bool, shape: tuple[int, int],
                                                    convention: str) -> None:
    rec = _pick(loss, logits, shape, convention)
    for reduction in ("sum", "mean"):
        r = run(loss, "-y", _matrix(rec["target"]), "-p", _matrix(rec["pred"]), "-c", convention, "--dtype",
                "float32", "-r", reduction, "-f", "json", *_options(rec))
        assert r.code == 0, r.err
        out = r.json()
        assert same(out["value"], rec[reduction]["value"]) and same(out["grad"], f32(rec[reduction]["grad"]))
        assert same(np.ravel(out["losses"]), f32(rec["losses"]).reshape(-1))


@pytest.mark.parametrize("loss,logits,shape,convention,dtype",
                         [(*pick, "float32") for pick in CLI_PICKS] + [("categorical-focal", True, (5, 32), "tf-keras",
                                                                       "bfloat16")])
def test_a_csv_batch_gives_the_kernels_results(tmp_path: Path, loss: str, logits: bool, shape: tuple[int, int],
                                               convention: str, dtype: str) -> None:
    rec = _pick(loss, logits, shape, convention, dtype)
    y, p = f32(rec["target"]), f32(rec["pred"])
    k = y.shape[1]
    head = ",".join([f"t{i}" for i in range(k)] + [f"p{i}" for i in range(k)])
    (tmp_path / "b.csv").write_text(head + "\n" + "".join(",".join(repr(float(a)) for a in row) + "\n"
                                                          for row in np.hstack([y, p])))
    r = run(loss, "--csv", "b.csv", "--target-cols", f"0:{k}", "--pred-cols", f"{k}:{2 * k}", "-c", convention,
            "--dtype", dtype, "-r", "mean", "-f", "csv", *_options(rec), cwd=tmp_path)
    assert r.code == 0, r.err
    rows = np.loadtxt(r.out.splitlines()[1:], delimiter=",", ndmin=2)
    assert same(rows[:, -k:].astype(np.float32), f32(rec["mean"]["grad"]))
    losses = f32(rec["losses"]).reshape(-1)
    assert same(rows[:, :rows.shape[1] - k].astype(np.float32).reshape(-1)[:losses.size], losses)


def test_tensor_files_give_the_kernels_results(tmp_path: Path) -> None:
    rec = _pick("focal", True, (6, 31), "keras")
    for k in ("target", "pred"):
        np.save(tmp_path / f"{k}.npy", f32(rec[k]))
    r = run("focal", "--target", "target.npy", "--pred", "pred.npy", "-c", "keras", "--dtype", "float32", "-r",
            "mean", "-o", "out.npz", "-f", "json", *_options(rec), cwd=tmp_path)
    assert r.code == 0, r.err
    assert same(np.load(tmp_path / "out.npz")["grad"], f32(rec["mean"]["grad"]))
    assert same(r.json()["value"], rec["mean"]["value"])


def test_the_pow_kernel_keeps_cs_special_values() -> None:
    # x^0 = 1 (0^0 too), 0^y = 0 for y > 0 and ∞ for y < 0, x^1 = x, 1^y = 1 (C's pow, which Eigen follows)
    x = np.array([0, 1, 0.5, 2, 0, 1, 0.25, 3], np.float32)
    assert same(lowp_tf_focal32.power(x, np.float32(0)), np.ones(8))
    assert same(lowp_tf_focal32.power(x, np.float32(1)), x)
    assert same(lowp_tf_focal32.power(x, np.float32(-1))[[0, 1, 4]], [np.inf, 1, np.inf])
    assert same(lowp_tf_focal32.power(x, np.float32(2.5))[[0, 1, 4]], [0, 1, 0])
    # 0.25^0.5 = 0.5 and 2^2 = 4 (by hand), which the double-word log2 and exp2 return exactly
    assert same(lowp_tf_focal32.power(x, np.float32(0.5))[6], 0.5)
    assert same(lowp_tf_focal32.power(x, np.float32(2))[3], 4)


@pytest.mark.frameworks
def test_live_tensorflow_matches_on_fresh_random_inputs(live_rng: np.random.Generator) -> None:
    pytest.importorskip("tensorflow")
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import golden_lowp_tf_focal32 as golden
    from golden_lowp_tf_log import record

    rng = live_rng
    picked = golden.focal_cases(rng) + golden.categorical_cases(rng)
    for i, (loss, y, p, logits, note, labels, params) in enumerate(picked):
        conv = ("keras", "tf-keras")[i % 2]
        check_record(record(conv, loss, y, p, note, "float32", logits, labels, params), _evaluate)
        if loss == "categorical-focal" and logits and len(params["class_alpha"] or ()) <= 1:
            check_record(record(conv, loss, y, p, note, "bfloat16", logits, labels, params), _evaluate)
