"""ctc weighed by sequence (`--sample-weight`, one weight per sequence), recorded by scripts/golden_weights_ctc.py in
tests/golden/weights_ctc.json: PyTorch's (ctc_loss(reduction="none") * w).mean() or .sum(), Keras 3's and tf-keras'
loss reductions with sample_weight (what model.fit passes), and optax's jnp.mean(ctc_loss * w), under jit and op
by op: the weighted losses, the value and the gradient bit for bit (a zero's sign too), in memory, in slices and
from tensor files; exact's weighted mean worked by hand; the errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, golden_script, live_rounds
from lossgrad import lowp

GOLDEN = Path(__file__).resolve().parent / "golden" / "weights_ctc.json"
DATA = json.loads(GOLDEN.read_text())
SMALL = [r for r in DATA["records"] if "grad" in r]
LONG = [r for r in DATA["records"] if "grad_digest" in r]


def _id(rec: dict) -> str:
    conv, dtype, jit, reduction, b = rec["case"][:5]
    return f"{conv}-{dtype}{'' if jit is None else '-jit' if jit else '-ops'}-{reduction}-{b}"


def _unhex(values: Any) -> np.ndarray:
    return np.array([float.fromhex(v) for v in values])


def _inputs(rec: dict) -> dict[str, np.ndarray]:
    """The record's inputs, rebuilt from its seed and checked by their digest."""
    golden = golden_script("golden_weights_ctc")
    d = golden.inputs(rec["seed"], tuple(rec["case"]))
    assert golden.digest(*d.values()) == rec["inputs"]
    return d


def _same(got: Any, want: Any) -> bool:
    return bool(golden_script("golden_weights_ctc").same_bits(np.ravel(got), np.ravel(want)))


def _same_value(got: float | None, want: str | None) -> bool:
    return want is None or _same([got], [float.fromhex(want)])


@pytest.mark.parametrize("rec", SMALL, ids=[_id(r) for r in SMALL])
def test_weighted_losses_value_and_gradient_are_the_frameworks(rec: dict) -> None:
    out = golden_script("golden_weights_ctc").lossgrads(tuple(rec["case"]), _inputs(rec))
    assert _same(out["losses"], _unhex(rec["losses"]))
    assert _same(out["grad"], _unhex(rec["grad"]))
    assert _same_value(out["value"], rec["value"]), (out["value"], rec["value"])


def test_the_records_hold_every_kind_of_weight() -> None:
    weights = np.concatenate([_unhex(r["weights"]) for r in SMALL])
    for w in (0.0, 1e-40, 1e-3, 0.1, 1 / 3, 3e4, 7e4):  # (7e4: ∞ in float16)
        assert (weights == w).any(), w
    assert {tuple(r["case"][:3]) for r in SMALL} >= {("torch", "float64", None), ("keras", "bfloat16", None),
                                                      ("tf-keras", "float16", None), ("optax", "bfloat16", False)}


def test_weighted_values_under_jit_are_summed_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # up to 32 weighted sequences under jit: JAX adds the weighted losses one after another; in the order of the
    # fused final states' sum (unweighted ctc's under jit) some records' values are apart
    from lossgrad import lowp_xla_ctc

    golden = golden_script("golden_weights_ctc")
    recs = [r for r in SMALL if r["case"][0] == "optax" and r["case"][2] and r["case"][3] != "none"]
    monkeypatch.setattr(lowp_xla_ctc, "WEIGHED_IN_ORDER", 0)
    apart = [not _same_value(golden.lossgrads(tuple(r["case"]), _inputs(r))["value"], r["value"]) for r in recs]
    assert sum(apart) >= 2, apart


@pytest.mark.parametrize("rec", LONG, ids=[_id(r) for r in LONG])
def test_a_long_batch_evaluated_in_slices_is_the_frameworks(rec: dict) -> None:
    golden = golden_script("golden_weights_ctc")
    assert DATA["versions"]["threads"] == lowp.THREADS
    out = golden.lossgrads(tuple(rec["case"]), _inputs(rec))
    assert golden.digest(out["losses"]) == rec["losses_digest"]
    assert _same_value(out["value"], rec["value"])
    # (optax's float32 gradient: the labels' dot, not pinned down for every shape, as lossgrad warns; bfloat16's
    # from 4,096 sequences is YNNPACK's sums of the blank, tests/test_lowp_xla_ctc.py)
    if rec["case"][:2] != ["optax", "float32"]:
        assert golden.digest(out["grad"]) == rec["grad_digest"]
    else:
        assert any("optax's ctc gradient in float32 may differ" in w for w in out["warnings"])


@pytest.mark.parametrize("conv", ["torch", "keras", "tf-keras", "optax"])
def test_tensor_files_with_a_weight_file_give_the_records_numbers(cli: Any, tmp_path: Path, conv: str) -> None:
    # [T, B, C] predictions, padded labels and the weights [B] as .npy files: the losses and the gradient written
    # to -o, and the value, are the record's
    rec = next(r for r in SMALL if r["case"][0] == conv and r["case"][3] == "mean" and r["case"][1] != "float64")
    case, d = tuple(rec["case"]), _inputs(rec)
    dtype, jit, blank = case[1], case[2], case[8]
    np.save(tmp_path / "pred.npy", d["pred"].transpose(1, 0, 2).astype(np.float32))  # (values of the dtype)
    np.save(tmp_path / "labels.npy", d["labels"])
    np.save(tmp_path / "w.npy", d["w"])
    args = ["ctc", "--pred", tmp_path / "pred.npy", "--target", tmp_path / "labels.npy", "-c", conv, "--dtype",
            dtype, "--blank", blank, "--sample-weight", tmp_path / "w.npy", "--input-lengths",
            ",".join(map(str, d["il"])), "--target-lengths", ",".join(map(str, d["tl"])), "-o", tmp_path / "out.npz",
            "-f", "json"]
    args += ["--from-logits"] if conv in ("keras", "optax") else []
    args += [] if jit is None else ["--jit" if jit else "--no-jit"]
    r = cli(*args)
    assert r.code == 0, r.err
    out = np.load(tmp_path / "out.npz")
    assert _same(out["losses"], _unhex(rec["losses"]))
    assert _same(out["grad"].transpose(1, 0, 2), _unhex(rec["grad"]))
    assert _same_value(r.json()["value"], rec["value"])


# ---------------------------------------------------------------- worked by hand

# the README's sequence: frames (¼, ½, ¼), (½, ¼, ¼), (¼, ¼, ½), labels 1 2; five alignments, p = 5/16, ℓ = log 3.2,
# and the gradient from logits softmax − γ
LOGITS = np.log([[0.25, 0.5, 0.25], [0.5, 0.25, 0.25], [0.25, 0.25, 0.5]])
GRAD = np.array([[0.15, -0.4, 0.25], [0.1, -0.05, -0.05], [0.15, 0.25, -0.4]])
LOSS = math.log(3.2)


def test_exacts_weighted_mean_divides_by_the_sum_of_the_weights() -> None:
    # two copies of the sequence weighing 1 and 3: (1·ℓ + 3·ℓ)/(1 + 3) = ℓ, N = 4, and sequence i's gradient
    # wᵢ(softmax − γ)/4; the sum is 4ℓ
    z, labels = np.stack([LOGITS, LOGITS]), [[1, 2], [1, 2]]
    r = lossgrad.ctc(labels, z, from_logits=True, sample_weight=[1, 3])
    assert r.n == 4 and r.value == pytest.approx(LOSS, rel=1e-15)
    assert r.losses == pytest.approx([LOSS, 3 * LOSS], rel=1e-15)
    assert r.grad == pytest.approx(np.stack([GRAD / 4, 3 * GRAD / 4]), rel=1e-14, abs=1e-16)
    s = lossgrad.ctc(labels, z, from_logits=True, sample_weight=[1, 3], reduction="sum")
    assert s.value == pytest.approx(4 * LOSS, rel=1e-15)
    zero = lossgrad.ctc(labels, z, from_logits=True, sample_weight=[0, 2])  # (a weight of 0: no loss, no gradient)
    assert zero.n == 2 and zero.value == pytest.approx(LOSS, rel=1e-15) and not zero.grad[0].any()


def test_torchs_weighted_mean_divides_by_the_batch_size_not_the_target_lengths() -> None:
    # (ctc_loss(reduction="none") * w).mean() of the same two sequences (2 labels each): (1·ℓ + 3·ℓ)/2 = 2ℓ, where
    # reduction="mean"'s target-length mean would give ℓ (and unweighted gives ℓ/2)
    lp, labels = np.stack([LOGITS, LOGITS]), [[1, 2], [1, 2]]
    r = lossgrad.ctc(labels, lp, convention="torch", sample_weight=[1, 3])
    assert r.n == 2 and r.value == pytest.approx(2 * LOSS, rel=1e-15)
    plain = lossgrad.ctc(labels, lp, convention="torch")
    assert plain.value == pytest.approx(LOSS / 2, rel=1e-15)
    # the gradient with respect to the log-probabilities as PyTorch returns it, e^x − γ, times wᵢ/B
    assert r.grad == pytest.approx(np.stack([GRAD / 2, 3 * GRAD / 2]), rel=1e-14, abs=1e-16)
    explained = "\n".join(lossgrad.LOSSES["ctc"].formulas(False, r_conv("torch")))
    assert "target length" not in explained


def r_conv(name: str) -> Any:
    from lossgrad.options import setup

    return setup("ctc", convention=name, sample_weight=True).conv


# ---------------------------------------------------------------- errors


def test_a_weight_per_sequence_or_one_error_line(cli: Any, tmp_path: Path) -> None:
    pred = "; ".join(",".join(map(str, row)) for row in LOGITS)
    assert_usage_error(cli("ctc", "--from-logits", "--target", "1,2", "--pred", pred, "--sample-weight", "1,2"),
                       "--sample-weight", "has 2 weights but there is 1 sequence; give one per sequence")
    assert_usage_error(cli("ctc", "--from-logits", "--target", "1,2", "--pred", pred, "--sample-weight", "-1"),
                       "--sample-weight: value 1: -1.0 is not a sample weight")
    np.save(tmp_path / "z.npy", np.stack([LOGITS, LOGITS, LOGITS]))
    np.save(tmp_path / "t.npy", np.array([[1, 2], [1, 2], [2, 1]]))
    np.save(tmp_path / "w.npy", np.array([1.0, 2.0]))
    np.save(tmp_path / "bad.npy", np.array([1.0, np.inf, 2.0]))
    files = ("ctc", "--from-logits", "--pred", tmp_path / "z.npy", "--target", tmp_path / "t.npy")
    assert_usage_error(cli(*files, "--sample-weight", tmp_path / "w.npy"),
                       "w.npy has 2 weights for the 3 sequences of --target; give one per sequence")
    assert_usage_error(cli(*files, "--sample-weight", tmp_path / "bad.npy"),
                       "bad.npy[1]: inf is not a sample weight")
    assert_usage_error(cli(*files, "--sample-weight", "1,2,3,4"), "has 4 weights for the 3 sequences")
    with pytest.raises(lossgrad.InputError, match="give one per sequence"):
        lossgrad.ctc([[1, 2], [1, 2]], np.stack([LOGITS, LOGITS]), from_logits=True, sample_weight=[1, 2, 3])


def test_compare_and_check_take_the_weights(cli: Any, tmp_path: Path) -> None:
    lp = np.stack([LOGITS, LOGITS, LOGITS])
    labels, w = np.array([[1, 2], [1, 2], [2, 1]]), [0.5, 0.0, 2.0]
    np.save(tmp_path / "lp.npy", lp.transpose(1, 0, 2))
    np.save(tmp_path / "t.npy", labels)
    np.save(tmp_path / "w.npy", np.array(w))
    files = ("--pred", tmp_path / "lp.npy", "--target", tmp_path / "t.npy", "--sample-weight", tmp_path / "w.npy")
    r = cli("compare", "ctc", *files, "-f", "json")
    assert r.code == 0, r.err
    got = r.json()["conventions"]
    for conv in ("exact", "torch"):
        want = lossgrad.ctc(labels, lp, convention=conv, sample_weight=w)
        assert got[conv]["value"] == want.value and got[conv]["n"] == want.n
    torch = lossgrad.ctc(labels, lp, convention="torch", sample_weight=w)
    mine = ",".join(repr(float(v)) for v in torch.grad.transpose(1, 0, 2).ravel())  # (in the file's layout)
    c = cli("check", "ctc", *files, "--my-grad", mine, "--my-loss", repr(torch.value), "-f", "json")
    assert c.code == 0, c.err
    assert (c.json()["match"]["convention"], c.json()["match"]["reduction"]) == ("torch", "mean")
    # (weighed, torch's mean is the plain mean of the weighted losses: no hint of reduction="mean"'s target lengths)
    assert "target length" not in c.out


# ---------------------------------------------------------------- live


FRAMEWORKS = {"torch": ("torch",), "tensorflow": ("keras", "tf-keras"), "jax": ("optax",)}


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_random_batches_against_live_frameworks(framework: str, live_rng: np.random.Generator,
                                                jax_x32: None) -> None:
    golden = golden_script("golden_weights_ctc", framework)
    for i in range(live_rounds(4, 60)):
        conv = FRAMEWORKS[framework][i % len(FRAMEWORKS[framework])]
        case = golden.random_case(live_rng, conv)
        d = golden.inputs(int(live_rng.integers(2 ** 31)), case)
        ours, theirs = golden.lossgrads(case, d), golden.RUNS[conv](case, d)
        apart = golden.apart(ours, theirs)
        if conv == "optax" and case[1] == "float32" and apart == ["grad"]:  # (the labels' dot: lowp_xla_ctc)
            top = float(np.max(np.abs(theirs["grad"]), initial=2.0 ** -126))
            assert np.max(np.abs(ours["grad"] - theirs["grad"])) <= 2.0 ** (np.floor(np.log2(top)) - 23), case
            continue
        assert not apart, (i, case, apart)
