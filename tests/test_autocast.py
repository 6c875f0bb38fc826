"""--autocast against the frameworks' own mixed-precision results on CPU, recorded by scripts/golden_autocast.py in
tests/golden/autocast.json: torch.autocast("cpu") and Keras 3's and tf-keras' mixed policies bit for bit (every
record goes through the reproduced float32 kernels: lossgrad.lowp, lossgrad.lowp_tf*); the policies themselves as
the frameworks showed them; and the switch's options, output and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error
from lossgrad import autocast, lowp
from lossgrad.errors import OptionError
from lossgrad.options import setup

GOLDEN = Path(__file__).resolve().parent / "golden" / "autocast.json"
DATA = json.loads(GOLDEN.read_text())
RECORDS = DATA["records"]
# every other loss Keras' and tf-keras' policies run (their options, two shapes each), recorded on another processor
KERAS_RECORDS = DATA["keras_records"]
KERAS_CPU = DATA["keras_machine"]["cpu"]

# where the float32 kernels underneath were not reproduced bit for bit (lossgrad's float32 formulas: none of the
# golden records now, fresh inputs of the live test may reach one): the float32 value within 2 ulps of float32, the
# gradient within 1 ulp of the half dtype (a float32 difference of an ulp can land on the other side of a half
# rounding)
TOLERANCE = {"value": 2, "grad": 1}
EXAMPLE = ("-y", "2,0", "-p", "0.3,-1.2,2.0;1.5,0.2,-0.4", "--from-logits", "--dtype", "bfloat16", "--autocast")


def _f32(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32).astype(np.float64)


def _run(rec: dict, **extra: object) -> lossgrad.Result:
    kw: dict = dict(convention=rec["convention"], dtype=rec["dtype"], reduction=rec["reduction"], autocast=True,
                    from_logits=rec["from_logits"], **rec.get("params", {}), **extra)
    if rec["labels"]:
        kw["labels"] = rec["labels"]
    if rec.get("log_input"):
        kw["log_input"] = True
    if rec.get("ignore_index") is not None:
        kw["ignore_index"] = rec["ignore_index"]
    return lossgrad.evaluate(rec["loss"], _f32(rec["target"]), _f32(rec["pred"]), **kw)


def _bit_for_bit(rec: dict) -> bool:
    """The convention's float32 path is a reproduction of the framework's kernels."""
    s = setup(rec["loss"], convention=rec["convention"], from_logits=rec["from_logits"], dtype=rec["dtype"],
              autocast=True, log_input=bool(rec["log_input"]), ignore_index=rec["ignore_index"])
    return s.float32.lowp


def _id(rec: dict) -> str:
    return "-".join(str(rec[k]) for k in ("convention", "dtype", "loss", "labels", "ignore_index", "reduction")
                    if rec[k]) + (
        "-logits" if rec["from_logits"] else "")


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(r) for r in RECORDS])
def test_golden(rec):
    r = _run(rec)
    want_grad = _f32(rec["grad"])
    assert rec["value_dtype"] == "float32" and rec["grad_dtype"] == rec["dtype"]
    if _bit_for_bit(rec):
        assert r.value == float(np.float32(rec["value"]))
        np.testing.assert_array_equal(r.grad.reshape(want_grad.shape), want_grad)
    else:
        assert lowp.ulps(np.array(r.value), np.array(float(np.float32(rec["value"]))), "float32") <= TOLERANCE["value"]
        assert lowp.ulps(r.grad.reshape(want_grad.shape), want_grad, rec["dtype"]).max() <= TOLERANCE["grad"]


def _keras_id(rec: dict) -> str:
    params = "-".join(f"{k}={v}" for k, v in rec["params"].items() if not isinstance(v, list)) or None
    return "-".join(str(v) for v in (rec["convention"], rec["dtype"], rec["loss"], rec["labels"], params,
                                     rec["reduction"], len(rec["pred"]), "logits" if rec["from_logits"] else None)
                    if v)


@pytest.mark.parametrize("rec", KERAS_RECORDS, ids=[_keras_id(r) for r in KERAS_RECORDS])
def test_golden_keras(rec):
    # Keras 3's mixed policy and tf-keras' float32 output layer: TensorFlow's float32 kernels on the rounded
    # predictions, the gradient rounded on its way back, bit for bit (the processor they were recorded on)
    r = _run(rec, cpu=KERAS_CPU)
    want_grad = _f32(rec["grad"])
    assert rec["value_dtype"] == "float32" and rec["grad_dtype"] == rec["dtype"]
    assert r.value == float(np.float32(rec["value"]))
    np.testing.assert_array_equal(r.grad.reshape(want_grad.shape), want_grad)


def test_golden_keras_covers_every_loss():
    # every loss --autocast takes under keras and tf-keras, in both half dtypes and both reductions
    seen = {(r["convention"], r["loss"], r["from_logits"], r["dtype"], r["reduction"])
            for r in KERAS_RECORDS + RECORDS if r["convention"] != "torch"}
    for conv in ("keras", "tf-keras"):
        for name, loss in lossgrad.LOSSES.items():
            for logits in {False, loss.has_logits}:
                try:
                    setup(name, convention=conv, from_logits=logits, dtype="bfloat16", autocast=True)
                except OptionError:
                    continue
                for dtype in ("bfloat16", "float16"):
                    for reduction in ("mean", "sum"):
                        assert (conv, name, logits, dtype, reduction) in seen, (conv, name, logits, dtype)


def test_golden_keras_not_plain_float32():
    # the records are the policy's, not the half dtype's own computation nor float32 on unrounded gradients: a
    # bfloat16 gradient the float32 one would not round to is told apart
    rec = next(r for r in KERAS_RECORDS if r["loss"] == "focal" and r["from_logits"] and r["dtype"] == "bfloat16")
    plain = lossgrad.evaluate("focal", _f32(rec["target"]), _f32(rec["pred"]), convention=rec["convention"],
                              dtype="float32", from_logits=True, reduction=rec["reduction"], **rec["params"],
                              cpu=KERAS_CPU)
    want = _f32(rec["grad"]).reshape(plain.grad.shape)
    assert not np.array_equal(plain.grad, want)
    np.testing.assert_array_equal(plain.grad.astype(lowp.half_dtype("bfloat16")).astype(np.float32), want)


def test_golden_covers_bit_for_bit_torch():
    # every PyTorch record (bce on probabilities and ce's ignore_index included) goes through lossgrad.lowp's float32
    # kernels and is PyTorch's own, bit for bit
    torch = [r for r in RECORDS if r["convention"] == "torch"]
    assert len(torch) >= 28 and all(_bit_for_bit(r) for r in torch)


def test_golden_keras_records_are_all_bit_for_bit():
    # Keras' and tf-keras' first records too (ce's ignore_index among them: TensorFlow's kernels weigh the kept
    # samples N/K), so test_golden holds them to the bit
    keras = [r for r in RECORDS if r["convention"] != "torch"]
    assert len(keras) == 56 and all(_bit_for_bit(r) for r in keras)
    assert any(r["ignore_index"] is not None for r in keras)


def test_gradient_is_rounded_float32_gradient():
    # the policy in one identity: the float32 gradient on the rounded predictions, rounded to the half dtype
    rec = next(r for r in RECORDS if r["convention"] == "torch" and r["loss"] == "ce" and r["dtype"] == "bfloat16")
    r = _run(rec)
    plain = lossgrad.evaluate("ce", _f32(rec["target"]), _f32(rec["pred"]), convention="torch", dtype="float32",
                              from_logits=True, labels=rec["labels"], reduction=rec["reduction"])
    assert r.value == plain.value
    np.testing.assert_array_equal(r.grad, plain.grad.astype(lowp.half_dtype("bfloat16")).astype(np.float32))
    half = lossgrad.evaluate("ce", _f32(rec["target"]), _f32(rec["pred"]), convention="torch", dtype="bfloat16",
                             from_logits=True, labels=rec["labels"], reduction=rec["reduction"])
    assert not np.array_equal(r.grad, half.grad)  # (all in bfloat16 is another computation)
    assert r.autocast and r.dtype == "bfloat16" and r.losses.dtype == np.float32


def test_torch_policy_facts():
    facts = DATA["facts"]
    ops = facts["torch_op_dtypes"]
    for op in autocast.TORCH_CPU_LOW:  # not in AutocastCPU's lists: they keep the input's dtype
        assert ops[op] == "bfloat16", op
    for name in ("cross_entropy", "nll_loss", "binary_cross_entropy_with_logits", "mse_loss", "kl_div"):
        assert ops[name] == "float32", name
    assert set(autocast.TORCH_FP32.values()) >= {"nll_loss", "binary_cross_entropy_with_logits", "mse_loss",
                                                 "kl_div", "cross_entropy_loss"}
    # on CPU binary_cross_entropy is in the fp32 list and runs; only CUDA's (and XPU's) autocast ban it
    assert facts["torch_bce_probs"] == {"raises": None, "dtype": "float32"}
    assert autocast.refused("torch", "bce", "elementwise", False) is None
    assert autocast.torch_op("bce", False) == "binary_cross_entropy"


def test_keras_policy_facts():
    facts = DATA["facts"]
    assert facts["keras_loss_dtype_under_mixed_policy"] == "float32"
    # tf-keras computes in y_pred's dtype: without the float32 output layer the loss would be bfloat16
    assert facts["tf_keras_loss_dtype_without_float32_layer"] == "bfloat16"


@pytest.mark.parametrize("loss, kw, fragment", [
    ("ce", dict(convention="torch", dtype="float32", from_logits=True), "needs {dtype} float16 or bfloat16"),
    ("ce", dict(convention="exact", dtype="bfloat16"), "the exact convention is the mathematics"),
    ("ce", dict(convention="optax", dtype="bfloat16", from_logits=True), "JAX has no autocast"),
    ("gaussian-nll", dict(convention="torch", dtype="bfloat16"), "further inputs"),
    ("focal", dict(convention="torch", dtype="float16", from_logits=True), "not in PyTorch's CPU autocast lists"),
])
def test_refusals(loss, kw, fragment):
    with pytest.raises(OptionError) as e:
        setup(loss, autocast=True, **kw)
    assert e.value.where == "autocast" and fragment in e.value.what


def test_switch_takes_a_bool():
    with pytest.raises(OptionError, match="takes True or False"):
        setup("mse", convention="torch", dtype="bfloat16", autocast="yes")


def test_cli_table_and_json(cli):
    r = cli("ce", *EXAMPLE, "-c", "torch", "-f", "table")
    assert r.code == 0, r.err
    assert "[bfloat16, autocast]" in r.out.splitlines()[0]
    j = cli("ce", *EXAMPLE, "-c", "keras", "-f", "json").json()
    assert j["autocast"] is True and j["dtype"] == "bfloat16"
    plain = cli("ce", *EXAMPLE[:-1], "-c", "torch", "-f", "json").json()
    assert "autocast" not in plain


def test_cli_errors(cli):
    assert_usage_error(cli("ce", *EXAMPLE, "-c", "optax"), "--autocast", "JAX has no autocast")
    assert_usage_error(cli("mse", "-y", "1", "-p", "2", "-c", "torch", "--autocast"), "--autocast", "--dtype")


def test_compare_each_under_its_policy(cli):
    j = cli("compare", "ce", *EXAMPLE, "-f", "json").json()
    assert set(j["conventions"]) == {"float64", "torch", "keras", "tf-keras"}
    assert [n for n, c in j["conventions"].items() if c.get("autocast")] == ["keras", "tf-keras", "torch"]
    assert "no autocast changes" in j["unsupported"]["exact"] and "JAX" in j["unsupported"]["optax"]
    assert cli("compare", "ce", *EXAMPLE, "-f", "table").code == 0


def _inline(rows: list) -> str:
    return ";".join(",".join(map(str, row)) for row in rows)


def test_check_names_the_policy(cli):
    # PyTorch's own gradient under torch.autocast("cpu", dtype=torch.bfloat16), from the golden file
    rec = next(r for r in RECORDS if r["convention"] == "torch" and r["loss"] == "ce" and r["labels"] == "index"
               and r["dtype"] == "bfloat16" and r["reduction"] == "mean")
    grad = ",".join(repr(float(np.float32(v))) for row in rec["grad"] for v in row)  # (each bfloat16 exactly)
    r = cli("check", "ce", "-y", _inline(rec["target"]), "-p", _inline(rec["pred"]), "--labels", "index",
            "--from-logits", "--dtype", "bfloat16", "--autocast", "--my-grad", grad, "--my-loss", rec["value"],
            "-f", "json")
    assert r.code == 0, r.err
    j = r.json()
    # (Keras' mixed policies give the same numbers here: the first of the conventions that match is named)
    matched = [j["match"]["convention"]] + [c["convention"] for c in j["also"]]
    assert "torch" in matched and "exact" not in matched
    assert j["findings"][0].startswith(f"your gradient matches {matched[0]} under bfloat16 autocast exactly")


def test_tensor_files(cli, tmp_path):
    # PyTorch's float16 autocast result for the golden ce record, from .npy files of the model's float16 logits
    rec = next(r for r in RECORDS if r["convention"] == "torch" and r["loss"] == "ce" and r["labels"] == "index"
               and r["dtype"] == "float16" and r["reduction"] == "mean" and r["ignore_index"] is None)
    np.save(tmp_path / "z.npy", np.array(rec["pred"], dtype=np.float32).astype(np.float16))
    np.save(tmp_path / "y.npy", np.array(rec["target"], dtype=np.float64)[:, 0].astype(np.int64))
    r = cli("ce", "--from-logits", "--pred", tmp_path / "z.npy", "--target", tmp_path / "y.npy", "-c", "torch",
            "--autocast", "-o", tmp_path / "g.npz", "-f", "json")
    assert r.code == 0, r.err
    j = r.json()
    assert j["autocast"] is True and j["dtype"] == "float16" and j["value"] == float(np.float32(rec["value"]))
    np.testing.assert_array_equal(np.load(tmp_path / "g.npz")["grad"], _f32(rec["grad"]).astype(np.float32))
    assert_usage_error(cli("ce", "--from-logits", "--pred", tmp_path / "z.npy", "--target", tmp_path / "y.npy",
                           "--autocast"), "--autocast", "the exact convention")


def test_explain_names_the_policy():
    for conv, fragment in (("torch", "runs cross_entropy_loss in float32"), ("keras", "keras/src/losses/loss.py"),
                           ("tf-keras", "Activation('linear', dtype='float32')")):
        line = autocast.note(conv, "ce", True)
        assert fragment in line and line.endswith("on its way back through the cast")
    assert "unsafe to autocast" in autocast.note("torch", "bce", False)
    assert "unsafe" not in autocast.note("torch", "bce", True)


def test_cli_explain(cli):
    j = cli("ce", *EXAMPLE, "-c", "torch", "-f", "json", "--explain").json()
    assert j["formulas"][-1] == "autocast: " + autocast.note("torch", "ce", True)


@pytest.mark.frameworks
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_live_torch_autocast(dtype):
    # fresh inputs, PyTorch itself under torch.autocast("cpu"): bit for bit where lowp's kernels carry the policy
    pytest.importorskip("torch")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import golden_autocast

    for case in golden_autocast.cases(np.random.default_rng(7), dtype):
        if case["loss"] == "kl" and not case["log_input"]:
            continue
        for reduction in ("mean", "sum"):
            want = golden_autocast.run_torch(case, dtype, reduction)
            rec = {"convention": "torch", "dtype": dtype, "reduction": reduction, "loss": case["loss"],
                   "from_logits": case["from_logits"], "labels": case.get("labels"),
                   "log_input": case.get("log_input"), "ignore_index": case.get("ignore_index"),
                   "target": np.asarray(case["target"], dtype=np.float32), "pred": case["pred"]}
            r = _run(rec)
            grad = _f32(want["grad"])
            tol = (0, 0) if _bit_for_bit(rec) else (TOLERANCE["value"], TOLERANCE["grad"])
            assert lowp.ulps(np.array(r.value), np.array(float(np.float32(want["value"]))), "float32") <= tol[0]
            assert lowp.ulps(r.grad.reshape(grad.shape), grad, dtype).max() <= tol[1]
