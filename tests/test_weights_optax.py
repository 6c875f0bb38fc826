"""The optax convention under per-sample weights against JAX's own CPU results, jnp.mean(loss · w) (jnp.sum; the
weighted losses for reduction none) and jax.grad of it, under jax.jit and op by op, in float32, float16 and
bfloat16: recorded by scripts/golden_weights_optax.py in tests/golden/weights_optax.json, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, golden_script, live_rounds, optax_run
from lossgrad import errors, lowp, lowp_xla, reduction

GOLDEN = Path(__file__).resolve().parent / "golden" / "weights_optax.json"
DATA = json.loads(GOLDEN.read_text())
RECORDS, LONG = DATA["records"], DATA["long"]
# the one place lossgrad gives its own float32 sum of the weighted losses (with a warning): under jit in float32
# XLA fuses the products of up to 32 × 32 losses of more than one output into its sum, in an order not pinned down
OWN_SUM = "the reduced value is lossgrad's float32 sum"
ZERO_SIGN = lowp_xla.ZERO_SIGN


def _f32(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _own_sum(rec: dict) -> bool:
    rows, width = np.shape(rec["pred"])
    if rec["dtype"] != "float32" or not rec["jit"]:
        return False
    if rec["loss"] == "ce":  # (probability rows: their products fused into the value, weighed, not pinned down)
        return rec["labels"] == "onehot"
    return width > 1 and rows <= 32 and width <= 32


def _zero_weights(rec: dict) -> np.ndarray:
    """The samples of weight 0 as XLA holds the weights (subnormal float32s read as 0)."""
    half = None if rec["dtype"] == "float32" else lowp.half_dtype(rec["dtype"])
    held = lowp_xla.held_weights(_f32(rec["weights"]).astype(np.float64), half, False)
    return np.asarray(held == 0)


def _zero_sign(rec: dict) -> bool:
    """Whether lossgrad says the sign of a zero gradient of a sample of weight 0 may differ from JAX's."""
    return (rec["loss"] == "ce" and rec["labels"] == "onehot" and rec["jit"] and rec["dtype"] != "bfloat16"
            and bool(_zero_weights(rec).any()))


def _run(rec: dict) -> lossgrad.Result:
    return optax_run(rec, sample_weight=_f32(rec["weights"]))


def _same(got: object, want: object) -> np.ndarray:
    """Bit for bit, NaN for NaN (and −0 apart from +0)."""
    a, b = np.asarray(got, dtype=np.float32).reshape(-1), np.asarray(want, dtype=np.float32).reshape(-1)
    return np.asarray((a.view(np.int32) == b.view(np.int32)) | (np.isnan(a) & np.isnan(b)))


def _id(i: int, rec: dict) -> str:
    return (f"{i}-{rec['loss']}-{rec['dtype']}-{'jit' if rec['jit'] else 'ops'}-{rec['reduction']}-"
            f"{'x'.join(map(str, np.shape(rec['pred'])))}{'-' + rec['name'] if rec.get('name') else ''}")


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(i, r) for i, r in enumerate(RECORDS)])
def test_jax_cpu_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    assert _same(r.losses, rec["losses"]).all(), "losses"
    same = _same(r.grad, rec["grad"]).reshape(r.grad.shape)
    notes = [w for w in r.warnings if "lossgrad" in w or "XLA" in w]  # (the kernels', not the results' own)
    if _zero_sign(rec):  # (there the zeros of the samples of weight 0 as values: +0 or −0)
        zero = _zero_weights(rec)
        same[zero] = r.grad[zero] == _f32(rec["grad"])[zero]
        assert ZERO_SIGN in notes
        notes.remove(ZERO_SIGN)
    assert same.all(), "grad"  # (live on AVX2 too)
    if _own_sum(rec):  # (as unweighted: said under reduction none too)
        assert len(notes) == 1 and OWN_SUM in notes[0], r.warnings
        return
    if rec["value"] is not None:
        assert _same(r.value, rec["value"]).all(), "value"
    assert notes == []


def _long_run(rec: dict) -> tuple[lossgrad.Result, str, str]:
    golden = golden_script("golden_weights_optax")
    labels, z, w = golden.long_inputs(rec["seed"], rec["rows"], rec["classes"], rec["dtype"])
    assert golden.digest(labels, z, w) == rec["inputs"]
    r = lossgrad.evaluate("ce", labels[:, None], z, sample_weight=w, convention="optax", dtype=rec["dtype"],
                          reduction=rec["reduction"], jit=rec["jit"], from_logits=True, labels="index")
    return r, golden.digest(r.losses), golden.digest(r.grad)


@pytest.mark.parametrize("rec", LONG, ids=[f"{r['dtype']}-{'jit' if r['jit'] else 'ops'}-{r['reduction']}-"
                                           f"{r['rows']}x{r['classes']}" for r in LONG])
def test_batches_beyond_a_slice_bit_for_bit(rec: dict) -> None:
    # lossgrad evaluates them in slices of 32,768 samples; jnp.mean adds the weighted losses of the whole batch
    r, losses, grad = _long_run(rec)
    assert (losses, grad) == (rec["losses"], rec["grad"])
    assert r.warnings == []
    assert _same(r.value, rec["value"]).all()


def test_the_long_batches_value_is_the_slices_terms_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    # without the slices' weighted terms joined, lossgrad gives its own sum with a warning, and the values of the
    # records placed there (float32) part from JAX's
    monkeypatch.setattr(reduction.Slices, "folded", lambda self: None)
    runs = [_long_run(rec)[0] for rec in LONG]
    assert all(any("own sum" in w for w in r.warnings) for r in runs)
    apart = [not _same(r.value, rec["value"]).all() for r, rec in zip(runs, LONG, strict=True)]
    assert apart == [rec["placed"] for rec in LONG] and sum(apart) >= 1, apart


def test_the_golden_file_covers_every_loss_dtype_mode_and_reduction() -> None:
    seen = {(r["loss"], r["dtype"], r["jit"], r["reduction"]) for r in RECORDS}
    assert seen >= {(loss, dtype, jit, red) for loss in ("ce", "mse", "bce")
                    for dtype in ("float32", "float16", "bfloat16") for jit in (True, False)
                    for red in ("none", "sum", "mean")}
    rows = {(r["dtype"], r["jit"], r["reduction"]) for r in RECORDS if r["labels"] == "onehot"}
    assert len(rows) == 18  # (probability rows too, in every dtype, mode and reduction)
    kl = {(r["dtype"], r["jit"], r["reduction"], r["log_input"], r["log_target"]) for r in RECORDS if r["loss"] == "kl"}
    assert len(kl) == 5 * 3 * 4  # (kl's four forms but under jit in float32)
    assert {r.get("name") for r in RECORDS} >= {"zeros", "overflow", "subnormal", "rounding"}
    assert all(r["rows"] > 32768 + 4096 for r in LONG)  # (evaluated in two slices or more)
    assert DATA["versions"]["jax"] and DATA["versions"]["jaxlib"] and DATA["versions"]["optax"]


def test_weights_change_the_results() -> None:
    # (the records are weighed: without the weights most of them part from JAX's)
    apart = 0
    for rec in RECORDS[::10]:
        unweighted = dict(rec, weights=np.ones(len(rec["pred"])).tolist())
        apart += not _same(_run(unweighted).grad, rec["grad"]).all()
    assert apart > len(RECORDS[::10]) * 0.9


def test_the_cli_takes_sample_weights_under_optax_without_a_fallback(cli) -> None:
    rec = next(r for r in RECORDS if r["loss"] == "ce" and r["dtype"] == "bfloat16" and r["jit"]
               and r["reduction"] == "mean" and r.get("name") == "rounding")
    y = ",".join(str(int(float(v[0]))) for v in rec["target"])
    p = ";".join(",".join(row) for row in rec["pred"])
    r = cli("ce", "--from-logits", "-c", "optax", "--dtype", "bfloat16", "-y", y, "-p", p, "--sample-weight",
            ",".join(rec["weights"]), "--format", "json")
    assert r.code == 0 and "warning" not in r.err, r.err
    out = r.json()
    assert _same(out["value"], rec["value"]).all()
    assert _same(out["grad"], rec["grad"]).all()


def test_what_is_not_reproduced_under_weights_falls_back_or_refuses(cli) -> None:
    # kl under jit in float32 (the weighted losses' loop depends on the reduction, which the kernels are not told):
    # lossgrad's float32 formulas with a warning; huber in a half dtype, refused
    rows = ("-y", "0.5,0.5;0.2,0.8", "-p", "0.3,0.7;0.5,0.5", "--sample-weight", "2,0.5")
    r = cli("kl", "-c", "optax", "--dtype", "float32", *rows)
    assert r.code == 0 and "lossgrad's float32 formulas, not bit for bit" in r.err
    assert "warning" not in cli("kl", "-c", "optax", "--dtype", "float32", "--no-jit", *rows).err
    assert_usage_error(cli("huber", "-c", "optax", "--dtype", "bfloat16", *rows), "--dtype:",
                       "huber with --sample-weight")
    # probability rows of 4096 elements or more (YNNPACK's): likewise
    y = np.full((2048, 2), 0.5)
    z = np.random.default_rng(0).normal(size=(2048, 2))
    options = dict(convention="optax", from_logits=True, labels="onehot", sample_weight=np.ones(2048))
    r32 = lossgrad.evaluate("ce", y, z, dtype="float32", **options)
    assert any("lossgrad's float32 formulas, not bit for bit" in w for w in r32.warnings)
    with pytest.raises(errors.NotReproduced, match="softmax_cross_entropy of this shape under sample weights"):
        lossgrad.evaluate("ce", y, z, dtype="float16", **options)


@pytest.mark.frameworks
def test_fresh_weighted_batches_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    golden = golden_script("golden_weights_optax", "jax", "optax", "ml_dtypes")
    rng = live_rng
    for i in range(live_rounds(30, 1000)):
        loss = ("ce", "mse", "bce", "ce-rows", "kl")[i % 5]
        dtype = ("float32", "float16", "bfloat16")[i // 5 % 3]
        jit, reduction = bool(i // 15 % 2), str(rng.choice(["none", "sum", "mean"]))
        rows = int(rng.choice([rng.integers(1, 40), rng.integers(40, 700)]))
        width = int(rng.integers(1, 12)) if loss.startswith("ce") or rng.random() < 0.6 else 1
        if loss == "ce":
            rec = golden.ce_index(rng, dtype, jit, reduction, rows, width)
        elif loss == "ce-rows":  # (below 4096 elements; two classes or more, targets of more than one value)
            rec = golden.ce_rows(rng, dtype, jit, reduction, min(rows, 4095 // (width + 1)), width + 1)
        elif loss == "kl":  # (but under jit in float32: there lossgrad falls back)
            form = str(rng.choice(["kl", "kl-log-input", "kl-log-target", "kl-log-both"]))
            rec = golden.kl(rng, dtype, jit and dtype != "float32", reduction, rows, width + 1, form)
        else:
            rec = golden.elementwise(rng, loss, dtype, jit, reduction, rows, width)
        test_jax_cpu_bit_for_bit(rec)


def test_the_half_dtypes_hold_the_weights_as_jax_does() -> None:
    # a weight too small for float16's normal numbers is kept as its subnormal (float32 holds it normal)
    assert lowp.half_dtype("float16") is np.float16
    from lossgrad.lowp_xla import held_weights

    w = held_weights(np.array([1e-7, 3e38]), np.float16, True)
    assert w.shape == (2, 1) and w[0, 0] == np.float32(np.float16(1e-7)) and np.isinf(w[1, 0])


@pytest.mark.parametrize("loss", ["ce", "kl"])
def test_a_fallback_from_the_kernels_still_weighs_the_samples(loss: str) -> None:
    """Where the kernels find at run time that a shape is not reproduced (probability rows of 4,096 elements or
    more under weights; kl under jit in float32), lossgrad's float32 formulas weigh the samples as float64's do:
    the value within float32's rounding of the float64 one (before, the weights were dropped)."""
    rng = np.random.default_rng(5)
    y, w = rng.dirichlet(np.ones(50), 100), rng.random(100)
    p = rng.standard_normal((100, 50)) if loss == "ce" else np.log(rng.dirichlet(np.ones(50), 100))
    options = dict(convention="optax", sample_weight=w,
                   **({"from_logits": True, "labels": "onehot"} if loss == "ce" else {"log_input": True}))
    r32 = lossgrad.evaluate(loss, y, p, dtype="float32", **options)
    r64 = lossgrad.evaluate(loss, y, p, dtype="float64", **options)
    assert any("lossgrad's float32 formulas, not bit for bit" in m for m in r32.warnings)
    assert r32.value == pytest.approx(r64.value, rel=1e-5)
    assert np.allclose(r32.grad, r64.grad, rtol=1e-4, atol=1e-9)
