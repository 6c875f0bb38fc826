"""Label smoothing under the optax convention: optax.smooth_labels(rows, s) before softmax_cross_entropy (class
indexes made one-hot inside the loss function first), recorded by scripts/golden_smoothing_optax.py in
tests/golden/smoothing_optax.json: the losses, the values and the gradients bit for bit in float32, float16 and
bfloat16, under jit and op by op, with and without sample weights; live against JAX where installed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import golden_script, live_rounds, optax_run
from lossgrad import lowp_xla

GOLDEN = Path(__file__).resolve().parent / "golden" / "smoothing_optax.json"
RECORDS = json.loads(GOLDEN.read_text())["records"]
OWN_SUM = "the reduced value is lossgrad's float32 sum"


def _f32(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _same(got: object, want: object) -> bool:
    """Bit for bit, NaN for NaN (and −0 apart from +0)."""
    a, b = _f32(got).reshape(-1), _f32(want).reshape(-1)
    return bool(np.all((a.view(np.int32) == b.view(np.int32)) | (np.isnan(a) & np.isnan(b))))


def _own_sum(rec: dict) -> bool:
    """Where lossgrad gives its own float32 sum (with a warning), under jit in float32: one-hot rows made from class
    indexes inside the function, 2 to 32 rows of up to 32 classes (LLVM's lanes over that loop not pinned down);
    probability rows under weights (their products fused into the value, as tests/test_weights_optax.py says)."""
    rows, classes = np.shape(rec["pred"])
    if rec["dtype"] != "float32" or not rec["jit"]:
        return False
    if rec["labels"] == "onehot":
        return rec["weights"] is not None
    return 1 < rows <= 32 and classes <= 32


def _zero_sign(rec: dict) -> bool:
    """Whether lossgrad says the sign of a zero gradient of a sample of weight 0 may differ from JAX's (probability
    rows under jit, but in bfloat16: tests/test_weights_optax.py)."""
    return (rec["labels"] == "onehot" and rec["jit"] and rec["dtype"] != "bfloat16" and rec["weights"] is not None
            and bool(np.any(_f32(rec["weights"]) == 0)))


def _run(rec: dict) -> lossgrad.Result:
    weights = None if rec["weights"] is None else _f32(rec["weights"])
    return optax_run(rec | {"loss": "ce"}, label_smoothing=rec["smoothing"], sample_weight=weights)


def _id(i: int, rec: dict) -> str:
    return (f"{i}-{rec['dtype']}-{'jit' if rec['jit'] else 'ops'}-{rec['reduction']}-{rec['labels']}-"
            f"{'x'.join(map(str, np.shape(rec['pred'])))}{'-w' if rec['weights'] else ''}")


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(i, r) for i, r in enumerate(RECORDS)])
def test_jax_cpu_bit_for_bit(rec: dict) -> None:
    res = _run(rec)
    assert _same(np.reshape(res.losses, -1), rec["losses"])
    if _zero_sign(rec):  # (the warning says so; the zeros' signs aside, bit for bit)
        assert any(lowp_xla.ZERO_SIGN in w for w in res.warnings)
        assert _same(np.asarray(res.grad) + np.float32(0), _f32(rec["grad"]) + np.float32(0))
    else:
        assert _same(res.grad, rec["grad"])
    if rec["value"] is not None:
        if _own_sum(rec):
            assert any(OWN_SUM in w for w in res.warnings)
        else:
            assert _same(res.value, float(rec["value"]))
    assert all(OWN_SUM in w or lowp_xla.ZERO_SIGN in w for w in res.warnings)


def test_records_are_apart_without_optax_smoothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The golden records tell: with the targets smoothed as the formulas smooth them (in float64, rounded once),
    or Σ−v of one-hot rows made under jit folded as for constant rows, records are apart."""
    def rounded_once(y: np.ndarray, s: float, half: object) -> np.ndarray:
        exact = (1 - s) * y.astype(np.float64) + s / y.shape[1]
        return exact.astype(half or np.float32).astype(np.float32)  # type: ignore[call-overload]
    monkeypatch.setattr(lowp_xla, "smooth_labels", rounded_once)
    apart = sum(not _same(_run(r).grad, r["grad"]) for r in RECORDS if r["dtype"] != "float32")
    assert apart > 20
    monkeypatch.undo()
    real = lowp_xla.ce_rows
    monkeypatch.setattr(lowp_xla, "ce_rows", lambda y, z, r, half, jit, w=None, traced=False:
                        real(y, z, r, half, jit, w, False))
    traced = [r for r in RECORDS if r["jit"] and r["labels"] == "index" and r["dtype"] == "float16"]
    assert sum(not _same(_run(r).grad, r["grad"]) for r in traced) > 5


def test_the_smoothed_targets_in_float16_worked_by_hand() -> None:
    """s = 0.1 over 3 classes in float16: 1 − s = 0.9 is held as 1843/2048 (0.89990234), s/3 = 0.0333… as
    1092/32768 (0.033325195); the label's target 1843/2048 + 1092/32768 = 30580/32768 = 0.93322754 is a float16
    (1911.25/2048: ties to even at 2048ths, 1911/2048), and the others 1092/32768."""
    y = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    got = lowp_xla.smooth_labels(y, 0.1, np.float16)
    assert got[0, 0] == np.float32(1911 / 2048)
    assert got[0, 1] == got[0, 2] == np.float32(1092 / 32768)


def test_class_indexes_under_jit_in_float32_with_weights_fall_back_weighed() -> None:
    """Smoothed one-hot rows of class indexes under sample weights under jit in float32 are not reproduced:
    lossgrad's float32 formulas, with the warning, weighing the samples (jnp.mean(loss · w))."""
    y, z, w = np.array([0.0, 2, 1]), np.array([[1.0, 2, 3], [0.5, -1, 2], [0, 0, 1]]), np.array([0.5, 2, 0.0])
    options = dict(convention="optax", from_logits=True, labels="index", label_smoothing=0.3, sample_weight=w)
    r32 = lossgrad.evaluate("ce", y, z, dtype="float32", jit=True, **options)
    r64 = lossgrad.evaluate("ce", y, z, dtype="float64", **options)
    assert any("lossgrad's float32 formulas, not bit for bit" in m for m in r32.warnings)
    assert r32.value == pytest.approx(r64.value, rel=1e-6)
    assert np.reshape(r32.losses, -1)[2] == 0


@pytest.mark.frameworks
def test_fresh_smoothed_batches_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    golden = golden_script("golden_smoothing_optax", "jax", "optax", "ml_dtypes")
    rng = live_rng
    for i in range(live_rounds(24, 600)):
        dtype = ("float32", "float16", "bfloat16")[i % 3]
        jit, form = bool(i // 3 % 2), ("index", "onehot", "soft")[i // 6 % 3]
        rows = int(rng.choice([rng.integers(1, 40), rng.integers(40, 200)]))
        classes = int(rng.integers(2, 60))
        reduction = str(rng.choice(["none", "sum", "mean"]))
        test_jax_cpu_bit_for_bit(golden.record(rng, dtype, jit, reduction, form, rows, classes))
