"""ctc under tf-keras in float64 (lossgrad's default dtype): ctc_batch_cost on TensorFlow's double kernels (Exp and
Log by Eigen's double packets, lossgrad.eigen64; the C++ CTCLoss op in double, whose LogSumExp and negative term
call the float functions expf and log1pf: lowp_tf_ctc.DOUBLE), against the results scripts/golden_tf_ctc64.py
recorded in tests/golden/tf_ctc64.json, bit for bit (losses, values, gradients), in memory and from tensor files;
live against TensorFlow where it is installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import lossgrad as run
from lossgrad import kernels, lowp_tf_ctc
from tf_records import written_mean_matches

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_pairs64 import digest, matches  # noqa: E402
from golden_tf_ctc64 import Case, evaluate, inputs, unwarned  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "tf_ctc64.json").read_text())


def _case(rec: dict) -> Case:
    case = inputs(rec["seed"], rec["kind"])
    x, lab, il, tl, _, w = case
    assert digest(x, lab, il, tl, *([] if w is None else [w])) == rec["inputs_sha256"]  # (tf-keras' inputs)
    return case


def check(rec: dict, case: Case) -> None:
    r = evaluate(case, "none")
    assert matches(np.ravel(r.losses), rec["losses"]) and unwarned(r), r.warnings
    for reduction in ("sum", "mean"):
        r = evaluate(case, reduction)
        assert r.value == float.fromhex(rec[reduction]["value"]), (reduction, r.value)
        assert matches(r.grad, rec[reduction]["grad"]) and unwarned(r), reduction


@pytest.mark.parametrize("rec", DATA["records"], ids=[f"{i}-{r['kind']}-{'x'.join(map(str, r['shape']))}"
                                                      for i, r in enumerate(DATA["records"])])
def test_results_are_tensorflows_double_kernels_bit_for_bit(rec: dict) -> None:
    check(rec, _case(rec))


def test_the_records_cover_the_hand_case_no_alignment_blanks_and_weights() -> None:
    recs = DATA["records"]
    assert {r["kind"] for r in recs} == {"hand", "no alignment", "random", "weights"}
    assert len({r["blank"] == r["shape"][2] - 1 for r in recs}) == 2  # (the blank last, as tf-keras has it, or moved)
    assert any(r["shape"][0] * r["shape"][1] * r["shape"][2] % 4 for r in recs)  # (Exp's and Log's scalar tails)


def test_the_hand_case_is_five_sixteenths() -> None:
    # p(l|x) = 5/16 (the README's worked alignment sum) for labels 1, 2 over 3 frames: the loss is −log(5/16) up to
    # tf-keras' ε in log(y + ε) and its float LogSumExp
    rec = next(r for r in DATA["records"] if r["kind"] == "hand")
    loss = evaluate(_case(rec), "none").losses.item()
    assert loss == float.fromhex(rec["losses"][0]) and abs(loss + np.log(5 / 16)) < 1e-6


def test_the_double_op_adds_by_float_functions() -> None:
    # LogSumExp of two equal log-probabilities: a + log1pf(expf(0)) = a + float(log 2), not a + log 2 in double
    a = np.array([-1.5])
    assert lowp_tf_ctc.lse(a, a, lowp_tf_ctc.DOUBLE)[0] == -1.5 + float(np.float32(np.log(2)))
    assert lowp_tf_ctc.lse(a, a, lowp_tf_ctc.DOUBLE)[0] != -1.5 + np.log(2)


def test_float64_is_reproduced_under_tf_keras() -> None:
    assert kernels.unsupported("tf-keras", "float64", "ctc", True, {}, {}, True) is None


def test_tensor_files_give_the_same_bits(tmp_path: Path) -> None:
    rec = next(r for r in DATA["records"] if r["kind"] == "random" and r["shape"][0] > 3
               and np.isfinite(float.fromhex(r["mean"]["value"])))
    x, lab, il, tl, blank, _ = _case(rec)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "labels.npy", lab)
    np.save(tmp_path / "il.npy", il)
    np.save(tmp_path / "tl.npy", tl)
    r = run("ctc", "--pred", "x.npy", "--target", "labels.npy", "--input-lengths", "il.npy", "--target-lengths",
            "tl.npy", "--blank", str(blank), "-c", "tf-keras", "-r", "mean", "-o", "out.npz", "-f", "json",
            cwd=tmp_path)
    written_mean_matches(r, tmp_path / "out.npz", rec)


@pytest.mark.frameworks
def test_live_tensorflow_matches_on_fresh_random_inputs(live_rng: np.random.Generator) -> None:
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    import golden_tf_ctc64

    for _ in range(6):
        kind = str(live_rng.choice(["random", "weights"]))
        rec = golden_tf_ctc64.record(int(live_rng.integers(2**31)), kind)
        check(rec, inputs(rec["seed"], kind))
