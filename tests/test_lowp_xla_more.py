"""optax's huber_loss, hinge_loss, log_cosh, sigmoid_focal_loss, cosine_distance and triplet_margin_loss under the
optax convention in float32, float16 and bfloat16 against JAX's own CPU results (under jax.jit and op by op),
recorded by scripts/golden_lowp_xla_more.py in tests/golden/lowp_xla_more.json: bit for bit, losses, reduced value
and gradient."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import assert_recorded, live_rounds, lossgrad as cli
from lossgrad import lowp_xla, lowp_xla_more

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_xla_more.json"
DATA = json.loads(GOLDEN.read_text())
RECORDS = DATA["records"]
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _f32(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _run(rec: dict) -> lossgrad.Result:
    options = {k: v for k, v in rec["options"].items() if v is not None}
    extra = {k: _f32(rec[k]).astype(np.float64) for k in ("negative",) if k in rec}
    return lossgrad.evaluate(rec["loss"], _f32(rec["target"]).astype(np.float64), _f32(rec["pred"]).astype(np.float64),
                             convention="optax", dtype=rec["dtype"], reduction=rec["reduction"], jit=rec["jit"],
                             **({"from_logits": True} if rec["loss"] == "focal" else {}), **options, **extra)


def _id(i: int, rec: dict) -> str:
    options = ",".join(f"{k}={v}" for k, v in rec["options"].items() if v is not None)
    return (f"{i}-{rec['loss']}-{options}-{rec['dtype']}-{'jit' if rec['jit'] else 'ops'}-{rec['reduction']}-"
            f"{'x'.join(map(str, np.shape(rec['pred'])))}{'-' + rec['name'] if rec.get('name') else ''}")


def _differing(got: object, want: object) -> int:
    """Elements not equal bit for bit (NaN for NaN, −0 apart from +0)."""
    a, b = np.asarray(got, dtype=np.float32).reshape(-1), _f32(want).reshape(-1)
    return int((~((a.view(np.int32) == b.view(np.int32)) | (np.isnan(a) & np.isnan(b)))).sum())


def compare(rec: dict, r: lossgrad.Result) -> dict[str, int]:
    """How many elements of each result differ from the record's."""
    pairs = {"losses": (r.losses, rec["losses"]), "grad": (r.grad, rec["grad"])}
    pairs |= {"grad_" + k: (r.grads[k], rec["grads"][k]) for k in rec.get("grads", {})}
    if rec["value"] is not None and not any("lossgrad's float32 sum" in w for w in r.warnings):
        pairs["value"] = (np.float32(r.value), [rec["value"]])  # (not where lossgrad says it sums on its own)
    return {what: _differing(got, want) for what, (got, want) in pairs.items()}


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(i, r) for i, r in enumerate(RECORDS)])
def test_jax_cpu_bit_for_bit(rec: dict) -> None:
    assert not any(compare(rec, _run(rec)).values())


def test_the_golden_file_covers_every_loss_dtype_and_mode() -> None:
    seen = {(r["loss"], r["dtype"], r["jit"]) for r in RECORDS}
    assert seen >= {(loss, dtype, jit) for loss in ("huber", "hinge", "logcosh", "focal")
                    for dtype in ("float32", "float16", "bfloat16") for jit in (True, False)}
    assert {r["options"]["alpha"] is None for r in RECORDS if r["loss"] == "focal"} == {True, False}
    assert {(r["dtype"], r["jit"]) for r in RECORDS if r["loss"] == "cosine"} == {
        (dtype, False) for dtype in ("float32", "float16", "bfloat16")}
    assert {(r["dtype"], r["jit"]) for r in RECORDS if r["loss"] == "triplet"} == {
        (dtype, jit) for dtype in ("float32", "float16", "bfloat16") for jit in (True, False)}
    # float32 under jit: each of XLA's row sums of the squares (one feature, 2 to 8, 9 to 32, more, YNNPACK's)
    shapes = {np.shape(r["pred"]) for r in RECORDS if r["loss"] == "triplet" and r["dtype"] == "float32" and r["jit"]}
    assert {c for _, c in shapes} >= {1, 2, 5, 8, 10, 32, 33, 40} and max(n * c for n, c in shapes) >= 4096
    assert all(set(r["grads"]) == {"target", "negative"} for r in RECORDS if r["loss"] == "triplet")
    assert DATA["versions"]["jax"] and DATA["versions"]["optax"] and DATA["versions"]["jaxlib"]


def test_the_kinks_split_the_gradient_as_jax_does() -> None:
    # hinge at 1 − y·p = 0 and huber at |e| = δ: jax.grad of a maximum or minimum of two equal operands gives each
    # half (by hand: ∂/∂p max(0, 1 − p) at p = 1 is −½; huber's δ·sign(e)·½ + e·½ at e = δ = 1 is 1, its mean 1/2)
    r = lossgrad.evaluate("hinge", [1.0], [1.0], convention="optax", dtype="bfloat16", reduction="sum")
    assert r.grad.tolist() == [-0.5]
    r = lossgrad.evaluate("huber", [0.0, 0.0], [1.0, 0.0], convention="optax", dtype="float16", delta=1.0)
    assert r.grad.tolist() == [0.5, 0.0]


def test_the_command_line_and_a_csv_batch_give_the_records_numbers() -> None:
    rec = next(r for r in RECORDS if r["loss"] == "focal" and r["dtype"] == "bfloat16" and not r["jit"]
               and r["reduction"] == "mean" and r["options"]["alpha"] is not None)
    y, p = _f32(rec["target"]).ravel(), _f32(rec["pred"]).ravel()
    flags = ["focal", "--from-logits", "-c", "optax", "--dtype", "bfloat16", "--no-jit", "--gamma",
             str(rec["options"]["gamma"]), "--alpha", str(rec["options"]["alpha"])]
    r = cli(*flags, "-y", ",".join(map(str, y)), "-p", ",".join(map(str, p)), "-f", "json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert _differing(out["losses"], rec["losses"]) == 0 and _differing(out["grad"], rec["grad"]) == 0
    assert np.float32(out["value"]) == np.float32(rec["value"])
    csv = "".join(f"{a!r},{b!r}\n" for a, b in zip(y.tolist(), p.tolist(), strict=True))
    r = cli(*flags, "--format", "csv", input=csv)
    assert r.code == 0, r.err
    rows = np.array([[float(v) for v in line.split(",")] for line in r.out.splitlines()[1:]])
    assert _differing(rows[:, 0], rec["losses"]) == 0 and _differing(rows[:, 1], rec["grad"]) == 0


def test_what_the_kernels_do_not_take_is_refused_in_half_dtypes() -> None:
    with pytest.raises(lossgrad.OptionError, match="logcosh with sample_weight"):
        lossgrad.evaluate("logcosh", [1.0, 2.0], [0.5, 0.5], sample_weight=[1.0, 2.0], convention="optax",
                          dtype="bfloat16")
    # cosine under jit: rows of one feature in float16 (1 − 1·1 = 0 by hand) and float32 are JAX's (lowp_xla_cos),
    # without a warning
    y, p = [[1.0, 2.0, 3.0]], [[3.0, 2.0, 1.0]]
    one = lossgrad.evaluate("cosine", [[1.0]], [[3.0]], convention="optax", dtype="float16")
    assert one.losses.tolist() == [0.0] and not one.warnings
    r = lossgrad.evaluate("cosine", y, p, convention="optax", dtype="float32")
    assert not r.warnings
    # 1 − 10/14 = 2/7 (by hand), within float32 rounding
    assert abs(r.value - 2 / 7) < 1e-6
    # rows of more than 1024 features in a batch of 4096 elements or more are JAX's too (YNNPACK's sums, with their
    # Kahan levels), and so are rows of more than 32768 (YNNPACK's runs of 32768 for the products' sums, in a batch
    # of any size): by hand 1 − 24/25 = 0.04 per row
    for cols in (1025, 32769):
        a, b = np.zeros((4, cols)), np.zeros((4, cols))
        a[:, :2], b[:, :2] = [3.0, 4.0], [4.0, 3.0]
        r = lossgrad.evaluate("cosine", a, b, convention="optax", dtype="float32")
        assert not r.warnings and np.abs(r.losses - 0.04).max() < 1e-6
    # batches of 4096 rows or more are JAX's too (YNNPACK fuses the whole gradient: the golden file's "long"
    # records): by hand 1 − 0 = 1 for orthogonal rows, and the gradient −ŷ/(4096‖p‖) = −e/4096 exactly
    y, p = np.eye(2)[np.arange(4096) % 2], np.eye(2)[1 - np.arange(4096) % 2]
    r = lossgrad.evaluate("cosine", y, p, convention="optax", dtype="float32")
    assert not r.warnings and r.value == 1 and (r.grad == -y / 4096).all()


@pytest.mark.frameworks
def test_random_rounds_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    sys.path.insert(0, str(SCRIPTS))
    import golden_lowp_xla_more as golden

    rng = live_rng
    dtypes = ("float32", "float16", "bfloat16")
    for loss, choices in golden.OPTIONS.items():
        # (one dtype per loss on every run, each under LOSSGRAD_EXPLORE=1: JAX compiles each shape anew)
        for dtype in dtypes if live_rounds(1, 3) > 1 else [dtypes[rng.integers(3)]]:
            for jit in golden.reproduced_modes(loss, dtype):
                options = choices[rng.integers(len(choices))]
                n = int(rng.integers(1, 400))
                cases = (golden.triplets(rng, dtype, n) if loss == "triplet"
                         else [(y, p, None, name) for y, p, name in golden.inputs(rng, loss, dtype, n)])
                for y, p, neg, name in cases:
                    rec = golden.record(loss, options, dtype, jit, "mean", y, p, name, neg)
                    assert not any(compare(rec, _run(rec)).values()), (loss, options, dtype, jit, name)


def test_float32_triplet_rows_of_more_than_1024_features_under_jit_are_jaxs() -> None:
    # YNNPACK's sums of such rows (in a batch of 4096 elements or more) are reproduced, Kahan levels and all: no
    # warning; by hand d(a, p) = √(9 + 16 + 1e-6) ≈ 5, d(a, n) = √1e-6 = 0.001, each loss 5 − 0.001 + 1 = 5.999
    # (within float32 rounding)
    a = np.zeros((4, 1025))
    a[:, :2] = [3.0, 4.0]
    for rows, cols in ((4, 1025), (1, 1025), (4, 1024)):
        r = lossgrad.evaluate("triplet", np.zeros((rows, cols)), a[:rows, :cols], negative=a[:rows, :cols],
                              convention="optax", dtype="float32")
        assert not r.warnings and np.abs(r.losses - 5.999).max() < 1e-5


def test_bfloat16_triplets_of_4096_rows_keep_ynnpacks_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records "ynn rows": from 4096 rows XLA fuses the addition of eps over the rows into YNNPACK's row sums,
    # which drop bfloat16's roundings between them (JAX's bit for bit above); rounded to bfloat16 there instead, the
    # bfloat16 records differ, the float16 one (which keeps its roundings) not
    recs = [r for r in RECORDS if r.get("name") == "ynn rows"]
    assert len(recs) == 3 and all(np.shape(r["pred"])[0] >= 4096 for r in recs)
    with monkeypatch.context() as m:
        m.setattr(lowp_xla_more, "ynn_kept", lambda shape, r, k: r)
        apart = {r["dtype"] + str(np.shape(r["pred"])): sum(compare(r, _run(r)).values()) for r in recs}
    assert [bool(v) for v in apart.values()] == [True, True, False], apart


def test_bfloat16_row_sums_op_by_op_are_ynnpacks_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records "bf16 pairs" (JAX's bit for bit above): op by op in bfloat16, cosine's and triplet's row sums of
    # stored products from 4096 elements are YNNPACK's bfloat16 kernel, which adds each vector's elements in pairs;
    # summed in float32's order (one element a lane) both differ (triplet: anchors whose sum lies on a tie in pairs)
    recs = [r for r in RECORDS if r.get("name") == "bf16 pairs"]
    assert [r["loss"] for r in recs] == ["cosine", "triplet"] and all(not r["jit"] for r in recs)
    own = lowp_xla._row_lanes
    with monkeypatch.context() as m:
        m.setattr(lowp_xla, "_row_lanes", lambda x, bf16=False: own(x))
        assert all(sum(compare(r, _run(r)).values()) for r in recs)


def test_log_cosh_sums_of_22_to_32_under_jit_in_float32_are_lossgrads_own() -> None:
    # XLA adds them in 8 lanes of its own there: the value is lossgrad's float32 sum, said in a warning, within
    # float32 rounding of the float64 mean
    rng = np.random.default_rng(5)
    y, p = rng.normal(size=25), rng.normal(size=25)
    r = lossgrad.evaluate("logcosh", y, p, convention="optax", dtype="float32")
    assert any("22 to 32 log_cosh losses" in w for w in r.warnings)
    assert abs(r.value - lossgrad.evaluate("logcosh", y, p, convention="optax").value) < 1e-6
    assert not lossgrad.evaluate("logcosh", y, p, convention="optax", dtype="float32", jit=False).warnings


def test_focal_says_where_its_float32_jit_gradient_is_not_pinned_down() -> None:
    # a batch of 9 under jit in float32: XLA's scalar rest after a vector of 8 rounds the 9th gradient element its
    # own way (up to 4 ulp, measured over batches of 1 to 40): said in a warning, and only there
    y, p = [1.0, 0.0] * 4 + [1.0], [0.1 * i for i in range(1, 10)]
    r = lossgrad.evaluate("focal", y, p, from_logits=True, convention="optax", dtype="float32")
    assert any("9th gradient element" in w for w in r.warnings)
    for kw in ({"dtype": "float32", "jit": False}, {"dtype": "bfloat16"}):
        assert not any("9th" in w for w in lossgrad.evaluate("focal", y, p, from_logits=True, convention="optax",
                                                             **kw).warnings)
    assert not any("9th" in w for w in lossgrad.evaluate("focal", y[:8], p[:8], from_logits=True,
                                                         convention="optax", dtype="float32").warnings)


def test_several_outputs_per_sample_take_jnp_sums_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # [N, K] losses: the value is jnp.sum's of the losses over the whole array (lowp_xla.xla_sum2d) op by op, and
    # under jit but for float32 within 32 × 32 (where lossgrad says it sums on its own); before, float32 gave
    # lossgrad's own sum with a warning and the half dtypes were refused
    several = [r for r in RECORDS if r.get("name") == "several outputs"]
    assert {(r["loss"], r["dtype"], r["jit"]) for r in several} == {
        (loss, dtype, jit) for loss in ("huber", "hinge", "logcosh", "focal")
        for dtype in ("float32", "float16", "bfloat16") for jit in (False, True)}
    for rec in several:
        r = _run(rec)
        assert not r.warnings and np.float32(r.value) == np.float32(rec["value"]), _id(0, rec)
    # the sum correctly rounded instead puts float32 values apart
    monkeypatch.setattr(lowp_xla, "xla_sum2d", lambda x, bf16=False: np.float32(np.sum(x, dtype=np.float64)))
    f32 = [r for r in several if r["dtype"] == "float32"]
    assert sum(np.float32(_run(r).value) != np.float32(r["value"]) for r in f32) >= 1
    monkeypatch.undo()
    y = np.arange(12.0).reshape(3, 4)
    r = lossgrad.evaluate("huber", y, y + 0.5, convention="optax", dtype="float32", jit=True)
    assert any("up to 32 × 32" in w for w in r.warnings)



def test_focal_from_2048_elements_takes_ynnpacks_weighted_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records "ynn weighted sum" (JAX's bit for bit above): under jit in float32, from 2048 elements of two
    # columns or more XLA hands (1 − y)·e₀ + y·e₁ inside the logsumexp to YNNPACK, which rounds both products; taken
    # as the multiply-add XLA's own loop makes of it, every record of 2048 elements or more differs, 1,023 × 2 not
    recs = [r for r in RECORDS if r.get("name") == "ynn weighted sum"]
    assert [np.shape(r["pred"]) for r in recs] == [(1023, 2), (1024, 2), (683, 3), (7, 300), (40, 60)]
    assert not lowp_xla_more.ynn_weighted_sum((4096, 1)) and lowp_xla_more.ynn_weighted_sum((2, 1024))
    monkeypatch.setattr(lowp_xla_more, "ynn_weighted_sum", lambda shape: False)
    apart = [sum(compare(r, _run(r)).values()) for r in recs]
    assert [bool(n) for n in apart] == [False, True, True, True, True], apart

WIDE = json.loads((GOLDEN.parent / "lowp_xla_more_wide.json").read_text())


def _wide(rec: dict) -> tuple[lossgrad.Result, dict[str, str]]:
    """lossgrad on a wide record's single row (rebuilt from its seed, checked by its digest), and its gradients'
    digests."""
    sys.path.insert(0, str(SCRIPTS))
    import golden_lowp_xla
    import golden_lowp_xla_more

    y, p, neg = golden_lowp_xla_more.wide_inputs(rec["seed"], rec["features"])
    assert golden_lowp_xla.digest(np.concatenate([y, p, neg])) == rec["inputs"]
    r = lossgrad.evaluate("triplet", y, p, negative=neg, convention="optax", dtype="float32", jit=True, margin=1.0)
    grads = {"grad": r.grad, "grad_target": r.grads["target"], "grad_negative": r.grads["negative"]}
    return r, {k: golden_lowp_xla.digest(v) for k, v in grads.items()}


def test_a_single_wide_row_split_into_unequal_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    # float32 triplet under jit over one row: from 43,691 features XLA splits the anchor gradient's kernel into 2
    # tasks, and for an odd count the unequal tasks' scalar code contracts the positive's product, not the negative's
    assert [r["features"] for r in WIDE["records"]] == [43689, 43690, 43691, 100001]
    for rec in WIDE["records"]:
        assert_recorded(*_wide(rec), rec)
    monkeypatch.setattr(lowp_xla_more, "split_row", lambda shape: False)
    apart = [rec["features"] for rec in WIDE["records"] if _wide(rec)[1]["grad"] != rec["grad"]]
    assert apart == [43691, 100001]


def test_targets_of_one_value_under_jit_carry_a_warning() -> None:
    # XLA folds a constant of one value throughout (a splat) into its kernels and orders their work otherwise: a
    # warning says the numbers may differ; targets of two values, one sample, and op by op take none
    same, two = np.full((8, 1), 0.0), np.array([[0.0]] * 7 + [[1.0]])
    z = np.linspace(-3.0, 3.0, 8)[:, None]
    for dtype in ("float32", "float16"):
        focal = [lossgrad.focal(y, z, from_logits=True, convention="optax", dtype=dtype, jit=jit)
                 for y, jit in ((same, True), (two, True), (same, False))]
        assert [any("one value throughout" in w for w in r.warnings) for r in focal] == [True, False, False]
    rows = lossgrad.ce(np.full((2, 4), 0.25), np.array([[1.0, 2.0, 0.5, -1.0], [0.0, 0.3, 0.2, 0.1]]),
                       from_logits=True, convention="optax", dtype="float32", jit=True)
    assert any("one value throughout" in w for w in rows.warnings)
    one = lossgrad.cosine([[0.5, 0.5]], [[0.2, 0.9]], convention="optax", dtype="float32", jit=True)
    assert any("one value throughout" in w for w in one.warnings)


def test_focal_of_a_single_element_under_jit_carries_the_warning() -> None:
    # scripts/golden_xla_focal_one.py: a target of one element is a splat constant that XLA folds into the kernels;
    # some of JAX's single-element results there differ from lossgrad's, so every one carries the splat warning
    one = json.loads((GOLDEN.parent / "xla_focal_one.json").read_text())["records"]
    results = [_run(rec) for rec in one]
    assert all(lowp_xla_more.SPLAT in r.warnings for r in results)
    apart = {rec["dtype"] for rec, r in zip(one, results, strict=True) if any(compare(rec, r).values())}
    assert apart == {"float32", "float16"}
    assert not lossgrad.focal([[1.0]], [[0.5]], from_logits=True, convention="optax", dtype="float32",
                              jit=False).warnings
