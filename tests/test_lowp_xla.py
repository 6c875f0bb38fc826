"""The optax convention in float32, float16 and bfloat16 against JAX's own CPU results (under jax.jit and op by
op), recorded by scripts/golden_lowp_xla.py in tests/golden/lowp_xla.json: bit for bit, losses, reduced value and
gradient."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import assert_recorded, assert_usage_error, golden_script, live_rounds, lossgrad as cli, optax_run
from lossgrad import libm, lowp_xla, lowp_xla_kl

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_xla.json"
DATA = json.loads(GOLDEN.read_text())
RECORDS = DATA["records"]
# (loss, labels, jit, what, shape) -> how many elements may differ; not listed: none (bit for bit)
ALLOWED: dict[tuple, int] = {}



def _f32(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _run(rec: dict) -> lossgrad.Result:
    return optax_run(rec)


def _id(i: int, rec: dict) -> str:
    shape = np.shape(rec["pred"])
    kl = "-".join(k for k in ("log_input", "log_target") if rec.get(k))
    return (f"{i}-{rec['loss']}-{rec.get('labels') or kl}-{rec['dtype']}-{'jit' if rec['jit'] else 'ops'}-"
            f"{rec['reduction']}-{'x'.join(map(str, shape))}{'-' + rec['name'] if rec.get('name') else ''}")


def _same(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Bit for bit, NaN for NaN (and −0 apart from +0)."""
    got, want = np.asarray(got, dtype=np.float32), np.asarray(want, dtype=np.float32)
    return (got.view(np.int32) == want.view(np.int32)) | (np.isnan(got) & np.isnan(want))


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(i, r) for i, r in enumerate(RECORDS)])
def test_jax_cpu_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    if lowp_xla.AVX2_SINGLE_ROW in r.warnings:  # (a live comparison on an AVX2 processor: said not reproduced)
        return
    pairs = [("losses", r.losses, rec["losses"]), ("grad", r.grad, rec["grad"])]
    if rec["value"] is not None and not any("lossgrad's float32 sum" in w for w in r.warnings):
        pairs.append(("value", np.float32(r.value), [rec["value"]]))  # (not where lossgrad says it sums on its own)
    for what, got, want in pairs:
        got, want = np.asarray(got, dtype=np.float32).reshape(-1), _f32(want).reshape(-1)
        off = ~_same(got, want)
        key = (rec["loss"], rec["labels"], rec["jit"], what, np.shape(rec["pred"]))
        assert off.sum() <= ALLOWED.get(key, 0), what


def test_the_golden_file_covers_both_modes_and_every_loss() -> None:
    seen = {(r["loss"], r["dtype"], r["jit"]) for r in RECORDS}
    assert seen >= {(loss, dtype, jit) for loss in ("ce", "bce", "mse") for jit in (True, False)
                    for dtype in ("float32", "float16", "bfloat16")}
    assert {(r["dtype"], r["log_input"], r["log_target"]) for r in RECORDS if r["loss"] == "kl"} == {
        (dtype, li, lt) for dtype in ("float32", "float16", "bfloat16") for li in (False, True) for lt in (False, True)}
    assert DATA["versions"]["jax"] and DATA["versions"]["jaxlib"] and DATA["versions"]["optax"]
    assert any(len(r["pred"]) * len(r["pred"][0]) >= lowp_xla.YNN_FROM for r in RECORDS)  # YNNPACK's sums too


def test_subnormals_are_flushed_as_xlas_cpu_code_runs() -> None:
    # e^−87.5 ≈ 1.0e−38 is below 2^−126 ≈ 1.18e−38, the smallest normal float32: XLA gives 0; log of a
    # subnormal reads it as 0: −∞; log 1 = 0 exactly (m = ½ below √½: x = (½ − 1) + ½ = 0, e = 0; by hand)
    assert lowp_xla.xla_exp(np.array([-87.5], dtype=np.float32))[0] == 0.0
    assert lowp_xla.xla_log(np.array([1e-39], dtype=np.float32))[0] == -np.inf
    assert lowp_xla.xla_log(np.array([1.0], dtype=np.float32))[0] == 0.0


def test_the_order_of_a_sum_follows_xla() -> None:
    # 2^24 + 1 rounds (to even) to 2^24, so a 1 added to 2^24 alone is lost and two 1s added together first are
    # not (by hand). 33 elements: windows of 17 and 16, each summed in order, then the two sums
    x = np.zeros((1, 33), dtype=np.float32)
    x[0, 0], x[0, 8], x[0, 24] = 2.0 ** 24, 1.0, 1.0
    assert lowp_xla.xla_sum(x)[0] == 2.0 ** 24  # (each 1 meets 2^24 alone)
    x[0, 25] = 1.0
    assert lowp_xla.xla_sum(x)[0] == 2.0 ** 24 + 2  # (the second window's 1 + 1 = 2 first)
    # from 4096 elements YNNPACK's 16 lanes: elements 8 and 24 share lane 8 (1 + 1 = 2), which meets lane 0's 2^24
    wide = np.zeros((125, 33), dtype=np.float32)
    wide[:, 0], wide[:, 8], wide[:, 24] = 2.0 ** 24, 1.0, 1.0
    assert (lowp_xla.xla_sum(wide) == 2.0 ** 24 + 2).all()


def test_a_backward_sum_in_a_half_dtype_starts_from_plus_zero() -> None:
    # XLA's reduce starts from its init value +0, and IEEE gives +0 + (−0) = +0: a row of −0s sums to +0, in a window
    # of 32 and beyond it; a reduce over one element is dropped, so its −0 stays −0 (by hand)
    r = lowp_xla.rounder(np.float16)
    for n in (2, 19, 40):
        out = lowp_xla._rows_in_dtype(np.full((1, n), -0.0, dtype=np.float32), r)
        assert out[0] == 0 and not np.signbit(out[0]), n
    assert np.signbit(lowp_xla._rows_in_dtype(np.full((1, 1), -0.0, dtype=np.float32), r)[0])
    # a nonzero sum is unchanged: −2⁻²⁴ (float16's smallest subnormal) twice is −2⁻²³
    assert lowp_xla._rows_in_dtype(np.full((1, 2), -(2.0**-24), dtype=np.float32), r)[0] == -(2.0**-23)


def test_the_jit_switch_is_for_optax_in_low_precision_only() -> None:
    with pytest.raises(lossgrad.OptionError, match="jit"):
        lossgrad.evaluate("mse", [1.0], [0.5], convention="torch", dtype="float32", jit=False)
    with pytest.raises(lossgrad.OptionError, match="jit"):
        lossgrad.evaluate("mse", [1.0], [0.5], convention="optax", jit=True)
    r = lossgrad.evaluate("mse", [1.0], [0.5], convention="optax", dtype="float32", jit=False)
    assert r.jit is False and r.value == 0.25


ANCHORS = np.linspace(4, 5, 60).reshape(2, 30)
NOT_REPRODUCED = [  # (loss, target, pred, options, the reason's words, whether bfloat16 is refused too)
    ("mse", [[1.0, 2.0]], [[0.5, 0.5]], {}, None, True),  # (the value: lossgrad's sum, the losses JAX's)
    # triplet with norm_degree 255 under jit (x^255 takes 14 products); the anchor 0.9 to 1.1 above the positive
    # and the negative (optax takes the differences' 255th power, no |·|)
    ("triplet", ANCHORS - np.linspace(0.9, 1.1, 60).reshape(2, 30), ANCHORS,
     {"negative": ANCHORS - np.linspace(1.05, 0.95, 60).reshape(2, 30), "norm_degree": 255},
     "norm_degree 255 under jit", True),
]


@pytest.mark.parametrize("loss, y, p, options, why, half", NOT_REPRODUCED)
def test_what_is_not_reproduced_falls_back_in_float32_and_is_refused_in_half(loss, y, p, options, why, half) -> None:
    # float32: lossgrad's float32 formulas, said in a warning, within float32 rounding of the float64 result (each
    # element to 1e−5 of the largest: a 255th power's small elements lose more of their own digits)
    r = lossgrad.evaluate(loss, y, p, convention="optax", dtype="float32", **options)
    wide = lossgrad.evaluate(loss, y, p, convention="optax", **options)
    np.testing.assert_allclose(r.grad, wide.grad, rtol=1e-5, atol=1e-5 * np.abs(wide.grad).max())
    assert np.isclose(r.value, wide.value, rtol=1e-5)
    if why is not None:
        assert any(why in w and "float32 formulas" in w for w in r.warnings)
    if half:
        with pytest.raises(lossgrad.OptionError, match=why or "is not reproduced"):
            lossgrad.evaluate(loss, y, p, convention="optax", dtype="bfloat16", **options)
    else:
        assert lossgrad.evaluate(loss, y, p, convention="optax", dtype="bfloat16", **options).grad.shape == np.shape(p)


def test_probability_rows_in_half_dtypes_in_both_modes() -> None:
    # recorded: soft and one-hot rows in both half dtypes, op by op and under jit, rows of more than 32 classes among
    # them (the backward's row sums in windows of 32), checked bit for bit above
    half = [r for r in RECORDS if r["loss"] == "ce" and r["labels"] == "onehot" and r["dtype"] != "float32"]
    assert {(r["dtype"], r["jit"], r["reduction"]) for r in half} == {
        (d, jit, red) for d in ("float16", "bfloat16") for jit in (False, True) for red in ("none", "sum", "mean")}
    assert any(len(r["pred"][0]) > 32 for r in half)
    # by hand, bfloat16: z = (0, 0), y = (½, ½): s = 0, Σe^s = 2, log 2 = 0.69314718 stored as 0.69140625 (steps of
    # 2^−8 in [½, 1)); the loss −(½·−0.69140625 + ½·−0.69140625) = 0.69140625; the gradient
    # v + (Σ−v / 2)·e^s = −½ + (1/2)·1 = 0
    for jit in (False, True):
        r = lossgrad.evaluate("ce", [[0.5, 0.5]], [[0.0, 0.0]], from_logits=True, convention="optax",
                              dtype="bfloat16", jit=jit)
        assert r.losses.tolist() == [0.69140625] and r.grad.tolist() == [[0.0, 0.0]] and not r.warnings


@pytest.mark.frameworks
def test_fresh_probability_rows_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    golden = golden_script("golden_lowp_xla", "jax", "optax", "ml_dtypes")
    rng = live_rng
    for i in range(live_rounds(9, 200)):
        dtype = ("float16", "bfloat16", "float32")[i % 3]
        jit = dtype == "float32" or bool(i // 3 % 2)  # (float32 op by op: the first golden records)
        rows = int(rng.integers(1, 60))
        classes = int(rng.integers(1, min(300, 9000 // rows) + 1))
        if i % 4 == 3:  # (beyond 1024 classes XLA folds the rows' sums in one go after windows of 32)
            rows, classes = int(rng.integers(1, 5)), int(rng.integers(1025, 6000))
        y = rng.random((rows, classes)) ** rng.choice([1.0, 8.0])
        y[: rows // 2] = np.eye(classes)[rng.integers(0, classes, rows // 2)]
        y = golden._rounded(y / y.sum(1, keepdims=True), dtype)
        z = golden._logits(rng, rows, classes, dtype)
        rec = golden._record("ce", dtype, jit, str(rng.choice(["mean", "sum", "none"])), y, z, "onehot")
        test_jax_cpu_bit_for_bit(rec)


@pytest.mark.frameworks
def test_fresh_kl_in_half_dtypes_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    golden = golden_script("golden_lowp_xla", "jax", "optax", "ml_dtypes")
    rng = live_rng
    for i in range(live_rounds(2, 50)):  # (each round: the four forms)
        dtype, jit = ("float16", "bfloat16")[i % 2], bool(i // 2 % 2)
        rows = int(rng.integers(1, 60))
        classes = int(rng.integers(1, min(120, 9000 // rows) + 1))
        for rec in golden._kl(rng, dtype, jit, str(rng.choice(["mean", "sum", "none"])), rows, classes):
            test_jax_cpu_bit_for_bit(rec)


@pytest.mark.frameworks
def test_fresh_large_bfloat16_batches_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    # where YNNPACK takes bfloat16 work from 4096 elements: probability rows op by op from 4096 rows, kl's four
    # forms op by op and under jit (targets near the predictions, where log y − log q cancels), mse's one output per
    # sample under jit
    golden = golden_script("golden_lowp_xla", "jax", "optax", "ml_dtypes")
    rng = live_rng
    for i in range(live_rounds(4, 40)):
        reduction = str(rng.choice(["mean", "sum", "none"]))
        if i % 4 == 0:
            rows = int(rng.integers(4096, 6000))
            test_jax_cpu_bit_for_bit(golden._soft_record(rng, "bfloat16", False, reduction, rows,
                                                         int(rng.integers(2, 41))))
        elif i % 4 in (1, 2):
            classes = int(rng.integers(2, 41))
            rows = int(rng.integers(-(-4096 // classes), -(-12000 // classes)))
            for rec in golden._kl(rng, "bfloat16", i % 4 == 2, reduction, rows, classes):
                test_jax_cpu_bit_for_bit(rec)
        else:
            rows = int(rng.choice([rng.integers(2, 100), rng.integers(4000, 9000)]))
            y, p = (golden._rounded(rng.standard_normal((rows, 1)) * s, "bfloat16") for s in (1.0, 3.0))
            test_jax_cpu_bit_for_bit(golden._record("mse", "bfloat16", True, reduction, y, p))


@pytest.mark.frameworks
def test_fresh_kl_in_float32_under_jit_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    # the shapes whose fused sums differ lie below 33 rows of 2 to 8 classes: most rounds draw from there
    golden = golden_script("golden_lowp_xla", "jax", "optax", "ml_dtypes")
    rng = live_rng
    for i in range(live_rounds(3, 60)):  # (each round: the four forms)
        small = i % 3 != 2
        rows = int(rng.integers(1, 33 if small else 80))
        classes = int(rng.integers(1, 9 if small else min(300, 9000 // rows) + 1))
        for rec in golden._kl(rng, "float32", True, str(rng.choice(["mean", "sum", "none"])), rows, classes):
            test_jax_cpu_bit_for_bit(rec)


@pytest.mark.frameworks
def test_fresh_single_rows_in_float32_under_jit_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    # a single row of 4096 classes or more: YNNPACK's dot (with its own log q inside for kl on probabilities), q
    # spread over many binades in some rounds (raised to the 8th power), and a probability row of ce
    golden = golden_script("golden_lowp_xla", "jax", "optax", "ml_dtypes")
    rng = live_rng
    for _ in range(live_rounds(1, 20)):
        classes = int(rng.integers(4096, 40000))
        q = rng.random((1, classes)) ** rng.choice([1.0, 8.0])
        t = rng.random((1, classes))
        q, t = golden._rounded(q / q.sum(), "float32"), golden._rounded(t / t.sum(), "float32")
        reduction = str(rng.choice(["mean", "sum", "none"]))
        test_jax_cpu_bit_for_bit(golden._record("kl", "float32", True, reduction, t, q))
        test_jax_cpu_bit_for_bit(golden._record("kl-log-target", "float32", True, reduction,
                                                golden._rounded(np.log(t), "float32"), q))
        test_jax_cpu_bit_for_bit(golden._soft_record(rng, "float32", True, reduction, 1, classes))


def test_a_long_bfloat16_batch_under_jit_sums_probability_rows_as_ynnpack() -> None:
    # bfloat16 under jit from 4096 elements on: YNNPACK adds the float32 products of the targets and log_softmax,
    # which the loop feeding it keeps in float32 (the golden records above, for kl and ce)
    for loss in ("kl", "ce"):
        assert any(r["loss"] == loss and r["dtype"] == "bfloat16" and r["jit"] and np.size(r["pred"]) >= 4096
                   and (loss == "kl" or r["labels"] == "onehot") for r in RECORDS), loss
    # by hand: 64 equal logits and targets 1/64: log 64 = 4.158883 is 4.15625 in bfloat16 (steps of 1/32 in [4, 8)),
    # and (1/64)·4.15625 = 133/2048 added 64 times is exact in float32 whatever the order: 4.15625, jit or not
    wide_y, wide_p = np.full((64, 64), 1 / 64), np.zeros((64, 64))
    for jit in (True, False):
        r = lossgrad.evaluate("ce", wide_y, wide_p, from_logits=True, convention="optax", dtype="bfloat16", jit=jit)
        assert set(r.losses.tolist()) == {4.15625} and not r.warnings, (jit, r.warnings)


def test_the_switch_on_the_command_line() -> None:
    # 115 equal logits: log 115 = 4.7449 (by hand), which bfloat16 (steps of 1/32 in [4, 8)) holds as 4.75
    rec = next(r for r in RECORDS if r.get("name") == "equal-115" and r["dtype"] == "bfloat16" and not r["jit"])
    logits = ";".join([",".join(["0"] * 115)] * 2)
    r = cli("ce", "--from-logits", "-c", "optax", "--dtype", "bfloat16", "--no-jit", "-y", "0,7", "-p", logits,
            "-f", "json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["jit"] is False and out["losses"] == [float(v) for v in rec["losses"]] == [4.75, 4.75]
    assert_usage_error(cli("mse", "-c", "torch", "--dtype", "float32", "--no-jit", "-y", "1", "-p", "0.5"), "--no-jit:")


def test_float32_fallback_writes_the_in_memory_gradient(tmp_path: Path) -> None:
    # triplet with norm_degree 255 under jit over 16 rows of 3 features is left to the float32 formulas: a tensor
    # run and a CSV batch write the gradients of the mean that the in-memory run gives (each block divided by N once,
    # not as a kernel's mean); the differences 0.9 to 1.1, whose 255th powers stay finite
    rng = np.random.default_rng(1)
    p = (rng.random((16, 3)) + 3).astype(np.float32)
    y, n = ((p - 0.9 - rng.random((16, 3)) / 5).astype(np.float32) for _ in range(2))
    for name, a in (("y", y), ("p", p), ("n", n)):
        np.save(tmp_path / f"{name}.npy", a)
    args = ["triplet", "-c", "optax", "--dtype", "float32", "--norm-degree", "255"]
    mem = lossgrad.evaluate("triplet", y.astype(float), p.astype(float), convention="optax", dtype="float32",
                            negative=n.astype(float), norm_degree=255)
    assert any("float32 formulas" in w for w in mem.warnings)
    r = cli(*args, "--pred", tmp_path / "p.npy", "--target", tmp_path / "y.npy", "--negative", tmp_path / "n.npy",
            "-o", tmp_path / "out.npz", "-f", "json")
    assert r.code == 0, r.err
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(out["grad"], mem.grad)
    np.testing.assert_array_equal(out["grad_negative"], mem.grads["negative"])
    csv = "".join(",".join(map(repr, [*a.tolist(), *b.tolist(), *c.tolist()])) + "\n"
                  for a, b, c in zip(y, p, n, strict=True))
    r = cli(*args, "--format", "csv", "--target-cols", "0:3", "--pred-cols", "3:6", "--negative", "6:9", input=csv)
    assert r.code == 0, r.err
    rows = np.array([[float(v) for v in line.split(",")] for line in r.out.splitlines()[1:]])
    np.testing.assert_array_equal(rows[:, 1:4], mem.grad)
    np.testing.assert_array_equal(rows[:, -3:], mem.grads["negative"])




def _apart(recs: list[dict], name: str, value: object, what: str = "losses") -> list[int]:
    """How many elements of `what` (losses, grad, or the reduced value) each record has apart from JAX's with
    lowp_xla's `name` set to `value`."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(lowp_xla, name, value)
        got = [_run(r) for r in recs]
    pick = {"losses": lambda r, g: (g.losses, r["losses"]), "grad": lambda r, g: (g.grad, r["grad"]),
            "value": lambda r, g: ([np.float32(g.value)], [r["value"]])}[what]
    return [int((~_same(np.reshape(a, -1), _f32(b).reshape(-1))).sum()) for a, b in (pick(r, g) for r, g in
                                                                                    zip(recs, got, strict=True))]


def test_bfloat16_sums_are_ynnpacks_pairs() -> None:
    # the records "bf16 pairs" (JAX's bit for bit above): op by op in bfloat16, jnp.sum of a bfloat16 array from
    # 4096 elements is YNNPACK's bfloat16 kernel, which adds each vector's 32 elements in pairs into 16 lanes
    # (tests/test_ynn_sums.py); summed as float32's kernel adds, one element a lane, each record differs: kl's rows
    # with log targets (refused before), probability rows' products, and the mean of stored losses (_mean_on_a_tie)
    recs = [r for r in RECORDS if r.get("name") == "bf16 pairs"]
    assert len(recs) == 6 and {(r["dtype"], r["jit"]) for r in recs} == {("bfloat16", False)}
    own = lowp_xla._row_lanes
    singles = _apart(recs, "_row_lanes", lambda x, bf16=False: own(x))
    values = _apart(recs, "_row_lanes", lambda x, bf16=False: own(x), "value")
    assert all(a or b for a, b in zip(singles, values, strict=True)), (singles, values)


def test_probability_rows_op_by_op_keep_the_shift_in_float32() -> None:
    # the records "ynn shift": op by op in bfloat16 from 4096 rows, log_softmax (jitted on its own) hands z − max to
    # YNNPACK, which keeps it in float32 (before: refused); rounded to bfloat16 as 4,095 rows store it, the three
    # batches of 4096 rows or more differ, and the batch of 4,095 rows is alike
    recs = [r for r in RECORDS if r.get("name") == "ynn shift"]
    assert [np.shape(r["pred"])[0] for r in recs] == [4096, 4100, 4500, 4095]
    apart = _apart(recs, "ynn_shift_rows", lambda shape, half, jit: False)
    assert all(apart[:3]) and apart[3] == 0, apart
    assert not lossgrad.ce(_f32(recs[0]["target"]), _f32(recs[0]["pred"]), convention="optax", dtype="bfloat16",
                           from_logits=True, jit=False).warnings


def test_kl_under_jit_takes_ynnpacks_log_of_q() -> None:
    # the records "ynn log": under jit in bfloat16 from 4096 elements YNNPACK takes log q with its own log (before:
    # XLA's, an ulp of bfloat16 apart where log y − log q cancels, and allowed so); with XLA's log, each differs
    recs = [r for r in RECORDS if r.get("name") == "ynn log"]
    assert len(recs) == 3 and all(r["jit"] and np.size(r["pred"]) >= 4096 for r in recs)
    assert all(_apart(recs, "ynn_log", lowp_xla.xla_log))


def test_mse_under_jit_in_bfloat16_means_the_float32_squares() -> None:
    # the records "float32 squares": under jit in bfloat16 the mean (or sum) of one output per sample reads the
    # squares in float32, as for more outputs (fused_mse_value); over the squares stored in bfloat16, each differs
    recs = [r for r in RECORDS if r.get("name") == "float32 squares"]
    assert [np.shape(r["pred"]) for r in recs] == [(5, 1), (50, 1), (4100, 1)]
    stored = lambda d, r: lowp_xla.mean_value(r(d * d), r, True)  # noqa: E731
    assert all(_apart(recs, "fused_mse_value", stored, "value"))


def test_probability_rows_of_4096_or_more_in_bfloat16_as_ynnpack_fuses_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records "ynn rows" (JAX's bit for bit above): under jit in bfloat16 from 4096 rows XLA hands z − max, the
    # sums of e^(z − max), their log (YNNPACK's own) and the products' row sums to YNNPACK, which keeps them all in
    # float32; computed as the smaller batches are instead, all three records differ
    recs = [r for r in RECORDS if r.get("name") == "ynn rows"]
    assert len(recs) == 4 and all(np.shape(r["pred"])[0] >= 4096 for r in recs)

    def apart(name: str, value: object, dtype: str) -> list[int]:
        with monkeypatch.context() as m:
            m.setattr(lowp_xla, name, value)
            return [int((~_same(_run(r).grad.reshape(-1), _f32(r["grad"]).reshape(-1))).sum()) for r in recs
                    if r["dtype"] == dtype]
    assert all(apart("ynn_probability_rows", lambda shape, fused: False, "bfloat16"))
    # op by op in float32 (the fourth): YNNPACK's product and sum; as XLA's FMA instead, the gradient differs
    assert all(apart("ynn_gradient_rows", lambda shape, jit: False, "float32"))


def test_kl_rows_that_llvm_sums_along_the_row_in_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records "along the row" (JAX's bit for bit above): kl under jit in bfloat16 over rows of 16 to 32 classes
    # (of log-probabilities from 19 in a batch, 20 alone), chosen where the sums in class order and in LLVM's lanes
    # round apart; added in class order instead, all differ but the single row of 19 log-probabilities, which JAX
    # too adds in class order
    recs = [r for r in RECORDS if r.get("name") == "along the row"]
    assert len(recs) == 9 and {r["dtype"] for r in recs} == {"bfloat16"}
    with monkeypatch.context() as m:
        m.setattr(lowp_xla, "ALONG_ROW_CLASSES", {"kl": (33, 33), "kl-log-input": (33, 33)})
        apart = {(r.get("log_input"), r.get("log_target"), np.shape(r["pred"])):
                 int((~_same(_run(r).losses.reshape(-1), _f32(r["losses"]).reshape(-1))).sum()) for r in recs}
    assert [shape for shape, n in apart.items() if not n] == [(True, True, (1, 19))], apart



def test_probability_rows_that_llvm_sums_along_the_row_in_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records "ce along the row" (JAX's bit for bit above): probability rows' ce under jit in bfloat16 over
    # batches of 20 to 32 classes and rows alone of 21 and 22, chosen where the sums in class order and in LLVM's
    # lanes round apart in a batch (about one row in 30,000); added in class order instead, every loss differs but
    # the row of 21 alone, which JAX too adds in class order
    recs = [r for r in RECORDS if r.get("name") == "ce along the row"]
    assert len(recs) == 9 and {len(r["pred"][0]) for r in recs} == {20, 21, 22, 23, 24, 25, 28, 31, 32}
    with monkeypatch.context() as m:
        m.setattr(lowp_xla, "ALONG_ROW_CLASSES", {**lowp_xla.ALONG_ROW_CLASSES, "ce": (33, 33)})
        apart = [int((~_same(_run(r).losses.reshape(-1), _f32(r["losses"]).reshape(-1))).sum()) for r in recs]
    assert apart == [0 if np.shape(r["pred"]) == (1, 21) else len(r["pred"]) for r in recs], apart


def test_float16_kl_rows_that_llvm_sums_along_the_row(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records "half along the row" (JAX's bit for bit above): float16 kl on probabilities under jit, batches of
    # rows of 30 to 32 classes, each row placed where its products' sum in LLVM's lanes and in class order round
    # apart; added in class order instead, every row of a batch differs, and the two rows alone, which XLA adds in
    # class order, do not
    recs = [r for r in RECORDS if r.get("name") == "half along the row"]
    assert len(recs) == 8 and {r["dtype"] for r in recs} == {"float16"} and not any(r["log_input"] for r in recs)
    with monkeypatch.context() as m:
        m.setattr(lowp_xla, "HALF_ALONG_ROW", {})
        apart = [int((~_same(_run(r).losses, _f32(r["losses"]))).sum()) for r in recs]
    assert apart == [len(r["pred"]) if len(r["pred"]) > 1 else 0 for r in recs], apart


def test_kl_targets_log_as_xla_folds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records "folded log" (JAX's bit for bit above): under jit XLA folds log y of the constant targets, the
    # log rounded once where every target is positive, glibc's logf where one is 0; each rule undone (glibc's
    # always, or the rounded log always), the records it governs differ (of the first kind, the mean's losses
    # happen to round alike)
    recs = [r for r in RECORDS if r.get("name") == "folded log"]
    assert [(r["dtype"], 0.0 in np.array(r["target"], dtype=np.float32)) for r in recs] == [
        ("float32", False), ("float32", True), ("float32", False), ("float16", False)]

    def apart(fold: object) -> list[bool]:
        with monkeypatch.context() as m:
            m.setattr(lowp_xla, "folded_log", fold)
            m.setattr(lowp_xla_kl, "folded_log", fold)
            return [bool((~_same(_run(r).losses.reshape(-1), _f32(r["losses"]).reshape(-1))).sum()) for r in recs]

    def glibc(x: np.ndarray, half: object = None) -> np.ndarray:
        return libm.logf(np.asarray(x, dtype=np.float32)).astype(half or np.float32).astype(np.float32)

    def rounded(x: np.ndarray, half: object = None) -> np.ndarray:
        return np.log(np.asarray(x, dtype=np.float64)).astype(half or np.float32).astype(np.float32)
    assert apart(glibc)[:2] == [True, False] and apart(glibc)[3]  # (the mean's losses round alike either way)
    assert apart(rounded) == [False, True, False, False]

def test_subnormal_targets_stay_in_the_folded_gradient_alone() -> None:
    # the records "subnormal targets" (JAX's bit for bit above): the gradient's −t·c is a folded constant that keeps
    # a subnormal t, the gradient itself with log-probabilities; the division by q and the losses' loops read it as 0
    recs = [r for r in RECORDS if r.get("name") == "subnormal targets"]
    assert len(recs) == 8 and all(r["dtype"] == "float32" and r["jit"] for r in recs)
    for rec in recs:
        g = np.abs(_f32(rec["grad"]))
        assert bool(((g > 0) & (g < np.finfo(np.float32).tiny)).any()) == rec["log_input"]


WIDE = json.loads((GOLDEN.parent / "lowp_xla_wide.json").read_text())


def _wide(rec: dict) -> tuple[lossgrad.Result, dict[str, str]]:
    """lossgrad on a wide record's inputs (regenerated from its seed, checked by their digest), and the digests of
    its losses and gradient."""
    golden = golden_script("golden_lowp_xla")
    y, p = golden.wide_inputs(rec["seed"], rec["loss"], rec["dtype"], rec["rows"], rec["outputs"])
    assert golden.digest(np.concatenate([y, p])) == rec["inputs"]
    loss = rec["loss"].split("-")[0]
    kw = {"from_logits": True} if loss in ("ce", "bce") else {"log_input": rec["loss"] == "kl-log-input"} \
        if loss == "kl" else {}
    r = lossgrad.evaluate(loss, y, p, convention="optax", dtype=rec["dtype"], reduction=rec["reduction"],
                          jit=rec["jit"], **kw)
    return r, {"losses": golden.digest(r.losses), "grad": golden.digest(r.grad)}


@pytest.mark.parametrize("rec", WIDE["records"], ids=[f"{r['loss']}-{r['dtype']}-{'jit' if r['jit'] else 'ops'}-"
                                                      f"{r['rows']}x{r['outputs']}" for r in WIDE["records"]])
def test_reduced_values_over_rows_of_more_than_32768_outputs(rec: dict) -> None:
    # 2 or 3 rows: YNNPACK's runs of 32,768 of each row, all the runs' sums then summed as a row (before: lossgrad's
    # own sum, with a warning); the losses and gradient as before
    assert_recorded(*_wide(rec), rec)


def test_wide_values_undone_and_four_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    # summing each row's runs first (as xla_sum does a row) puts recorded values apart; from 4 rows the order is not
    # pinned down, and lossgrad says it sums on its own
    golden = golden_script("golden_lowp_xla")
    monkeypatch.setattr(lowp_xla, "_wide_runs", lambda x, bf16=False: lowp_xla._lanes(
        lowp_xla._ynn_sum(x, split=True, bf16=bf16).reshape(1, -1))[0] + np.float32(0))
    apart = sum(np.float32(_wide(rec)[0].value) != np.float32(rec["value"]) for rec in WIDE["records"])
    assert apart >= 1
    monkeypatch.undo()
    y, p = golden.wide_inputs(1, "mse", "float32", 4, 33000)
    r = lossgrad.evaluate("mse", y, p, convention="optax", dtype="float32", jit=False)
    assert any("lossgrad's float32 sum" in w for w in r.warnings)


def test_label_smoothing_is_reproduced_as_optax_smooth_labels_before_the_loss() -> None:
    # optax has no label smoothing of its own: optax.smooth_labels before the loss, which lossgrad reproduces
    # (tests/test_smoothing_optax.py); class indexes made one-hot under jit: the value over up to 32 × 32 is
    # lossgrad's own float32 sum, said in a warning, the losses and the gradient JAX's
    y, p = [0, 1], [[1.0, 2.0, 3.0], [0.5, 0.1, 0.2]]
    ops = lossgrad.ce(y, p, from_logits=True, convention="optax", label_smoothing=0.1, dtype="float32", jit=False)
    assert ops.warnings == []
    jit = lossgrad.ce(y, p, from_logits=True, convention="optax", label_smoothing=0.1, dtype="float32")
    assert [w[:37] for w in jit.warnings] == ["the reduced value is lossgrad's float"]
    plain = lossgrad.ce(y, p, from_logits=True, convention="optax", dtype="float32")
    assert plain.warnings == []


def test_mse_over_a_single_column_under_jit_in_float32_says_its_value_is_lossgrads_sum() -> None:
    # XLA fuses the squares of a column of up to 32 samples into its sum as it does a single row's, in an order not
    # pinned down (JAX's value for 5 samples is 48.8541 where the squares summed in order give 48.854095): the
    # value is lossgrad's own sum, said in a warning; the losses and the gradient stay JAX's
    y = [[-0.06302303], [0.9226142], [-1.436973], [-1.0027474], [1.1539494]]
    p = [[0.81372213], [-4.709887], [-1.3224131], [-0.8659129], [-2.8869047]]
    r = lossgrad.mse(y, p, convention="optax", dtype="float32", reduction="sum", jit=True)
    assert any("lossgrad's float32 sum" in w for w in r.warnings)
    assert not lossgrad.mse(y[:1], p[:1], convention="optax", dtype="float32", jit=True).warnings
    assert not lossgrad.mse(y, p, convention="optax", dtype="float32", jit=False).warnings


FOLD = json.loads((GOLDEN.parent / "xla_mse_fold.json").read_text())["records"]


@pytest.mark.parametrize("rec", FOLD, ids=[_id(i, r) for i, r in enumerate(FOLD)])
def test_mse_gradient_past_half_the_range_is_jaxs(rec: dict) -> None:
    # scripts/golden_xla_mse_fold.py: differences p − y past half the dtype's largest value, whose 2·(p − y)
    # overflows; under jit in float32 and float16 XLA multiplies p − y by the folded constant 2·(1/n) instead
    r = _run(rec)
    for got, want in ((r.losses, rec["losses"]), (r.grad, rec["grad"]), (np.float32(r.value), [rec["value"]])):
        assert _same(np.asarray(got, dtype=np.float32).reshape(-1), _f32(want).reshape(-1)).all()


def test_the_fold_records_hold_finite_gradients_where_twice_the_difference_overflows() -> None:
    # the records that tell the fold apart: under jit a mean over more than one element, float32 or float16
    for rec in FOLD:
        d = _f32(rec["pred"]) - _f32(rec["target"])
        big = np.abs(d) > {"float16": 32768.0}.get(rec["dtype"], 1.75e38)
        finite = np.isfinite(_f32(rec["grad"]))[big]
        assert big.any() and rec["value"] == "inf"
        folded = rec["jit"] and rec["reduction"] == "mean" and rec["dtype"] != "bfloat16"
        assert finite.all() if folded else not finite.any(), _id(0, rec)
