"""categorical-focal under keras and tf-keras in float64 (lossgrad's default dtype): TensorFlow's double kernels as
Keras 3's and tf-keras' CategoricalFocalCrossentropy run them (Eigen's packet log, pow and exp of doubles,
lossgrad.eigen64, with the C library's for the scalar remainders; the softmax in blocks; the reducer in packets of
4), against the results scripts/golden_tf_focal64.py recorded in tests/golden/tf_focal64.json, bit for bit (losses,
values, gradients), from memory, a CSV batch and a tensor file; Eigen's functions against values worked out here;
live against TensorFlow where it is installed."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad import eigen64, kernels, libm, lowp_tf_focal32
from lossgrad.conventions import KERAS
from lossgrad.losses import focal
from tf_records import written_mean_matches

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_pairs64 import digest, matches  # noqa: E402
from golden_tf_focal64 import inputs  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "tf_focal64.json").read_text())


def _inputs(rec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    y, p, w = inputs(rec["seed"], tuple(rec["shape"]), rec["kind"])
    assert digest(y, p, *([] if w is None else [w])) == rec["inputs_sha256"]  # (the inputs Keras was given)
    return y, p, w


def _kw(rec: dict) -> dict:
    a = rec["class_alpha"]
    return {"convention": rec["convention"], "from_logits": rec["from_logits"], "gamma": rec["gamma"],
            "class_alpha": a if isinstance(a, list) else [a]}


def check(rec: dict, y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> None:
    r = lossgrad.evaluate("categorical-focal", y, p, reduction="none", sample_weight=w, **_kw(rec))
    assert matches(r.losses, rec["losses"]) and not r.warnings, r.warnings
    for reduction in ("sum", "mean"):
        r = lossgrad.evaluate("categorical-focal", y, p, reduction=reduction, sample_weight=w, **_kw(rec))
        assert np.array_equal(r.value, float.fromhex(rec[reduction]["value"])), (reduction, r.value)
        assert matches(np.reshape(r.grad, y.shape), rec[reduction]["grad"]), reduction
        assert not r.warnings, r.warnings


def _id(i: int, rec: dict) -> str:
    return f"{i}-{rec['convention']}-{'x'.join(map(str, rec['shape']))}-{rec['kind']}-g{rec['gamma']:g}"


@pytest.mark.parametrize("rec", DATA["records"], ids=[_id(i, r) for i, r in enumerate(DATA["records"])])
def test_results_are_tensorflows_double_kernels_bit_for_bit(rec: dict) -> None:
    check(rec, *_inputs(rec))


def test_the_records_cover_both_conventions_modes_and_blocks() -> None:
    recs = DATA["records"]
    for conv in ("keras", "tf-keras"):
        mine = [r for r in recs if r["convention"] == conv]
        assert {r["kind"] for r in mine} == {"probabilities", "logits", "weights", "weights-logits"}
        assert {r["gamma"] for r in mine} >= {0.0, 0.5, 1.5, 2.0, 3.0}
        assert any(isinstance(r["class_alpha"], list) for r in mine)
        # the softmax of a batch of more than SOFTMAX_BLOCK64 values runs in several blocks
        assert any(r["from_logits"] and r["shape"][0] * r["shape"][1] > 2 * 2539 for r in mine)


def test_eigens_double_functions_against_values_worked_out_here() -> None:
    # log 1 = 0, log 2 = ln 2 as a double (e = 1, m = 0: only the exponent's term), e^0 = 1, 2^10 = 1024 exactly,
    # x^1 = x, 0^γ = 0 and 1^γ = 1 (C's special values), x^2 and x^0.5 at powers of 2 exactly
    assert eigen64.plog(np.array([1.0, 2.0, 0.5]))[:2].tolist() == [0.0, math.log(2)]
    assert eigen64.pexp(np.array([0.0, -800.0]))[:2].tolist() == [1.0, 0.0]
    x = np.array([0.25, 0.5, 0.0, 1.0, 1024.0, 4.0, 0.0625, 3.0])
    assert eigen64.power(x, 2.0)[:7].tolist() == [0.0625, 0.25, 0.0, 1.0, 1048576.0, 16.0, 0.00390625]
    assert eigen64.power(x, 0.5)[:7].tolist() == [0.5, 0.7071067811865476, 0.0, 1.0, 32.0, 2.0, 0.25]


def test_eigens_special_values_with_denormals_read_as_zero() -> None:
    # C's pow and log at their edges, as generic_pow and plog_impl_double select them, a subnormal read as 0
    # (TensorFlow's denormals-are-zero) but passed on by x^1
    x = np.array([-0.25, -0.5, -0.0, np.inf, 1e-310, -1.0, 0.0, 1.0])
    assert eigen64.power(x, 2.0).tolist() == [0.0625, 0.25, 0.0, np.inf, 0.0, 1.0, 0.0, 1.0]
    cube = eigen64.power(x, 3.0)
    assert cube.tolist() == [-0.015625, -0.125, 0.0, np.inf, 0.0, -1.0, 0.0, 1.0] and np.signbit(cube[2])
    assert np.isnan(eigen64.power(x, 0.5)[:2]).all() and eigen64.power(x, -1.0)[2:5].tolist() == [-np.inf, 0.0, np.inf]
    assert eigen64.power(x, 1.0)[4] == 1e-310
    logs = eigen64.log(np.array([0.0, 1e-310, -1.0, np.inf, 1.0, -np.inf, np.nan, 4.0]))
    assert logs[[0, 1, 3, 4]].tolist() == [-np.inf, -np.inf, np.inf, 0.0] and np.isnan(logs[[2, 5, 6]]).all()
    # the last n mod 4 elements are the C library's: e^x's packet polynomial and glibc's differ on some
    v = -np.linspace(0.5, 5.0, 4001)
    packet, scalar = eigen64.pexp(v), libm.exp(v)
    assert (packet != scalar).any() and np.max(np.abs(packet - scalar) / scalar) < 4e-16


def test_lossgrads_float64_formulas_miss_the_kernels_bits() -> None:
    # the formulas (what float64 ran before) differ from TensorFlow's in most records
    apart = 0
    for rec in DATA["records"]:
        if rec["from_logits"] or rec["kind"] != "probabilities" or rec["convention"] != "keras":
            continue
        y, p, _ = _inputs(rec)
        alpha = np.ravel(np.asarray(rec["class_alpha"], dtype=float))
        parts = focal.categorical_focal_compute(y, p, False, KERAS, gamma=rec["gamma"], class_alpha=alpha)
        apart += not matches(parts.losses, rec["losses"])
    assert apart >= 4


def test_float64_is_reproduced_for_categorical_focal_alone() -> None:
    assert kernels.unsupported("tf", "float64", "categorical-focal", True, {"class_alpha": [0.1, 0.2]}, {}, True) \
        is None
    assert kernels.unsupported("tf-keras", "float64", "categorical-focal", False, {}, {}, False) is None
    assert kernels.unsupported("tf", "float64", "bce", False, {}, {}, False) == "bce in float64"


def test_without_the_c_library_float64_falls_back_to_the_formulas_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # the last n mod 4 elements take the C library's log and pow: without it the formulas answer, with a warning
    monkeypatch.setattr(libm, "_libm", lambda: None)
    r = lossgrad.evaluate("categorical-focal", [[0.0, 1.0, 0.0]], [[0.2, 0.5, 0.3]], convention="keras")
    assert len(r.warnings) == 1 and "lossgrad's float64 formulas, not bit for bit" in r.warnings[0]
    assert "C library's log, which could not be loaded" in r.warnings[0] and "JAX" not in r.warnings[0]


def test_the_softmax_takes_its_place_in_the_batch_where_eigen_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Eigen's softmax blocks are the batch's (a CSV stream tells each block its place); oneDNN's, which TensorFlow
    # runs in float32 and bfloat16 on a processor with AVX512_VNNI, compute each row alone; it has no double one
    monkeypatch.setattr(lowp_tf_focal32, "onednn", lambda: True)
    assert [kernels.placed("tf", "categorical-focal", True, True, d) for d in ("float64", "float16", "float32",
                                                                              "bfloat16")] == [True, True, False, False]
    monkeypatch.setattr(lowp_tf_focal32, "onednn", lambda: False)
    assert kernels.placed("tf-keras", "categorical-focal", True, True, "float32")
    assert not kernels.placed("tf", "categorical-focal", False, True, "float64")  # (probabilities: no softmax)


def _rec(conv: str, shape: tuple[int, int], kind: str) -> dict:
    return next(r for r in DATA["records"] if (r["convention"], tuple(r["shape"]), r["kind"]) == (conv, shape, kind))


@pytest.mark.parametrize("conv", ["keras", "tf-keras"])
def test_a_csv_batch_gives_the_same_bits(tmp_path: Path, conv: str) -> None:
    rec = _rec(conv, (700, 9), "logits")
    y, p, _ = _inputs(rec)
    k = y.shape[1]
    head = ",".join([f"t{i}" for i in range(k)] + [f"p{i}" for i in range(k)])
    (tmp_path / "b.csv").write_text(head + "\n" + "".join(",".join(repr(float(a)) for a in row) + "\n"
                                                          for row in np.hstack([y, p])))
    a = rec["class_alpha"]
    r = run("categorical-focal", "--csv", "b.csv", "--target-cols", f"0:{k}", "--pred-cols", f"{k}:{2 * k}",
            "--from-logits", "-c", conv, "--gamma", str(rec["gamma"]), "--class-alpha",
            ",".join(map(str, a if isinstance(a, list) else [a])), "-r", "mean", "-f", "csv", cwd=tmp_path)
    assert r.code == 0, r.err
    rows = np.loadtxt(r.out.splitlines()[1:], delimiter=",")
    assert matches(rows[:, 0], rec["losses"]) and matches(rows[:, 1:], rec["mean"]["grad"])


def test_a_tensor_file_gives_the_same_bits(tmp_path: Path) -> None:
    rec = _rec("keras", (2000, 3), "logits")
    y, p, _ = _inputs(rec)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "p.npy", p)
    a = rec["class_alpha"]
    r = run("categorical-focal", "--target", "y.npy", "--pred", "p.npy", "--from-logits", "-c", "keras", "--gamma",
            str(rec["gamma"]), "--class-alpha", ",".join(map(str, a if isinstance(a, list) else [a])), "-r", "mean",
            "-o", "out.npz", "-f", "json", cwd=tmp_path)
    written_mean_matches(r, tmp_path / "out.npz", rec)


@pytest.mark.frameworks
def test_live_tensorflow_matches_on_fresh_random_inputs(live_rng: np.random.Generator) -> None:
    pytest.importorskip("tensorflow")
    pytest.importorskip("keras")
    pytest.importorskip("tf_keras")
    import golden_tf_focal64

    rng = live_rng
    for _ in range(6):
        conv = str(rng.choice(["keras", "tf-keras"]))
        rows = rng.integers(1, 40) if rng.random() < 0.7 else rng.integers(1000, 3000)  # (the softmax's blocks)
        shape = (int(rows), int(rng.integers(2, 200)))
        kind = str(rng.choice(["probabilities", "logits", "weights", "weights-logits"]))
        rec = golden_tf_focal64.record(conv, int(rng.integers(2**31)), shape, kind, float(rng.choice([0.5, 2.0, 3.0])),
                                       golden_tf_focal64._alpha(rng, shape[1]))
        check(rec, *_inputs(rec))
