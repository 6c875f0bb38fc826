"""optax's triplet_margin_loss with a norm_degree other than 2 under the optax convention (float32 op by op and under
jax.jit, float16 and bfloat16 op by op) against JAX's own CPU results, recorded by scripts/golden_lowp_xla_pow.py in
tests/golden/lowp_xla_pow.json: bit for bit, losses, reduced value and the three gradients."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import golden_script, live_rounds, lossgrad as cli
from lossgrad import lowp_xla_pow
from lossgrad.lowp_xla import ftz
from test_lowp_xla_more import _differing, _f32

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_xla_pow.json"
DATA = json.loads(GOLDEN.read_text())
RECORDS = DATA["records"]


def _run(rec: dict) -> lossgrad.Result:
    return lossgrad.evaluate("triplet", _f32(rec["target"]).astype(np.float64), _f32(rec["pred"]).astype(np.float64),
                             convention="optax", dtype=rec["dtype"], reduction=rec["reduction"], jit=rec["jit"],
                             negative=_f32(rec["negative"]).astype(np.float64), **rec["options"])


def compare(rec: dict, r: lossgrad.Result) -> dict[str, int]:
    """How many elements of each result differ from the record's."""
    pairs = {"losses": (r.losses, rec["losses"]), "grad": (r.grad, rec["grad"])}
    pairs |= {"grad_" + k: (r.grads[k], rec["grads"][k]) for k in rec["grads"]}
    if rec["value"] is not None and not any("lossgrad's float32 sum" in w for w in r.warnings):
        pairs["value"] = (np.float32(r.value), [rec["value"]])  # (not where lossgrad says it sums on its own)
    return {what: _differing(got, want) for what, (got, want) in pairs.items()}


def _id(i: int, rec: dict) -> str:
    return (f"{i}-{rec['dtype']}-q={rec['options']['norm_degree']:g}-m={rec['options']['margin']:g}-"
            f"{'jit' if rec['jit'] else 'ops'}-{rec['reduction']}-{'x'.join(map(str, np.shape(rec['pred'])))}-"
            f"{rec['name']}")


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(i, r) for i, r in enumerate(RECORDS)])
def test_jax_cpu_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    assert not any("not bit for bit" in w for w in r.warnings), r.warnings
    assert not any(compare(rec, r).values())


def test_the_golden_file_covers_each_degree_mode_reduction_and_shape() -> None:
    seen = {(r["options"]["norm_degree"], r["dtype"], r["jit"]) for r in RECORDS}
    degrees, more = (1.0, 1.5, 2.5, 3.0, 4.0), (5.0, 6.0, 10.0, 0.5, 1 / 3, 0.75)
    assert seen == ({(q, "float32", jit) for q in degrees + more for jit in (False, True)}
                    | {(q, dtype, False) for q in degrees + (5.0, 0.5, 1 / 3) for dtype in ("float16", "bfloat16")}
                    | {(q, dtype, True) for q in (1.0, 1.5, 3.0, 4.0, 5.0, 0.5, 1 / 3)
                       for dtype in ("float16", "bfloat16")}
                    | {(q, "float32", True) for q in (7.0, 9.0)}  # (the rows summed along the row)
                    | {(7.0, "float16", True), (12.0, "float16", True), (7.0, "bfloat16", True),
                       (16.0, "bfloat16", True)}  # (rows float32 sums along the row, in row order)
                    | {(float(q), "float32", True) for q in (*range(11, 26), 27, 31, 33, 47, 63, 95, 114, 127, 145,
                                                            160, 191, 200, 201, 250, 224)}
                    | {(float(q), dtype, True) for q in (11, 13, 15, 23, 31, 39, 61)
                       for dtype in ("float16", "bfloat16")}  # (YNNPACK's sums in the half dtypes)
                    | {(float(q), dtype, True) for q in (192, 256, 384, 512, 1024, 2048, 4096)
                       for dtype in ("float32", "float16", "bfloat16")}  # (d^(q−1) of 13 products or more)
                    | {(float(q), "bfloat16", True) for q in (95, 127, 47)})  # (the last products contracted)
    # under jit, rows of 2 to 8 features that LLVM vectorizes (4 or 8 rows; 16 or more, with 4 over a group of 8)
    vectorized = {r["options"]["norm_degree"] for r in RECORDS if r["jit"] and 2 <= np.shape(r["pred"])[1] <= 8
                  and (np.shape(r["pred"])[0] in (4, 8) or np.shape(r["pred"])[0] >= 16)}
    assert vectorized >= {3.0, 4.0, 5.0, 6.0, 10.0}
    assert any(np.shape(r["pred"])[0] % 8 >= 4 and np.shape(r["pred"])[0] > 32 and np.shape(r["pred"])[1] <= 8
               for r in RECORDS if r["jit"])
    assert {r["reduction"] for r in RECORDS} == {"mean", "sum", "none"}
    cols = {np.shape(r["pred"])[1] for r in RECORDS}
    assert cols >= {1, 2, 8, 32, 33, 100} and max(np.size(r["pred"]) for r in RECORDS) >= 4096
    # NaN where optax's power of a negative difference is (no |·| in optax), and zero differences
    assert any(np.isnan(_f32(r["losses"])).any() for r in RECORDS if r["options"]["norm_degree"] == 1.5)
    assert any(r["name"].startswith("adversarial") for r in RECORDS if r["jit"])
    assert DATA["versions"]["jax"] and DATA["versions"]["optax"] and DATA["versions"]["cpu_flags"]


def test_integer_pow_is_products_and_the_root_glibcs_powf() -> None:
    # by hand: (x·x)·x and (x·x)·(x·x) for 3 and 4 as jax's binary exponentiation; the root's slope for q = 1 is 1
    x = _f32([1.1, -2.3, 3.0e-20])
    assert _differing(lowp_xla_pow.int_pow(x, 3, ftz), ftz(ftz(x * x) * x)) == 0
    assert _differing(lowp_xla_pow.int_pow(x, 4, ftz), ftz(ftz(x * x) * ftz(x * x))) == 0
    # binary exponentiation's last product, the one XLA's loop contracts into its sum: x·x⁴ for 5, x²·x⁴ for 6
    sq = ftz(x * x)
    fourth = ftz(sq * sq)
    for n, (u, v) in {3: (x, sq), 4: (sq, sq), 5: (x, fourth), 6: (sq, fourth)}.items():
        got = lowp_xla_pow.last_factors(x, n, ftz)
        assert _differing(got[0], u) == 0 and _differing(got[1], v) == 0, n
    # under jit XLA writes h^2 and h^3 as products, h^1 as h; LLVM writes h^½ as a square root
    h = _f32([1.7, 0.3, 2.0])
    assert _differing(lowp_xla_pow.jit_powf(h, 3.0), ftz(h * ftz(h * h))) == 0
    assert _differing(lowp_xla_pow.jit_powf(h, 1.0), h) == 0
    assert _differing(lowp_xla_pow.jit_powf(h, 0.5), np.sqrt(h)) == 0
    assert lowp_xla_pow.root_slope(_f32([5.0, 0.0]), 1.0, ftz).tolist() == [1.0, 1.0]
    # (5·5·5 + 0)^(1/3) hits 5 within one float32 step; a negative base is NaN for a fractional power
    assert abs(float(lowp_xla_pow.power(_f32([125.0]), 1 / 3, ftz)[0]) - 5) < 1e-6
    with np.errstate(invalid="ignore"):
        assert np.isnan(lowp_xla_pow.power(_f32([-1.0]), 1.5, ftz)[0])


def test_rows_summed_along_the_row(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records named "along the row" (q = 7, 9, 10 on 30 to 32 features, ½ on 28 to 32): JAX's bit for bit with
    # LLVM's lanes along the row (above, in test_jax_cpu_bit_for_bit); added as the scalar loop adds them instead,
    # 12 of the 18 differ, in 2,186 elements (and values)
    recs = [r for r in RECORDS if (r.get("name") or "").startswith("along the row")]
    assert len(recs) == 18 and {r["options"]["norm_degree"] for r in recs} == {7.0, 9.0, 10.0, 0.5}
    assert {np.shape(r["pred"])[1] for r in recs} == {28, 30, 31, 32}
    monkeypatch.setattr(lowp_xla_pow, "ALONG_ROW_FROM", {m: (33, 33) for m in lowp_xla_pow.ALONG_ROW_FROM})
    monkeypatch.setattr(lowp_xla_pow, "ROOTS_ALONG_FROM", (33, 33))
    apart = [sum(compare(r, _run(r)).values()) for r in recs]
    assert (sum(a > 0 for a in apart), sum(apart)) == (12, 2186)


def _apart(recs: list[dict], monkeypatch: pytest.MonkeyPatch, name: str, value: object) -> tuple[int, int]:
    """How many of the records, and how many elements, differ from JAX's with lowp_xla_pow's `name` set to value."""
    with monkeypatch.context() as m:
        m.setattr(lowp_xla_pow, name, value)
        apart = [sum(compare(r, _run(r)).values()) for r in recs]
    return sum(a > 0 for a in apart), sum(apart)


def test_powers_summed_by_the_products_they_take(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records named "products" (q = 7 to 24 alone and in batches; 11 to 16 on rows of 2 to 8 features either
    # side of POWER_ROWS's numbers, whose keys take 4 products or more) are JAX's bit for bit
    # (test_jax_cpu_bit_for_bit); each rule is needed:
    recs = [r for r in RECORDS if (r.get("name") or "").startswith("products")]
    assert len(recs) == 96 and lowp_xla_pow.products(15) == 6 and lowp_xla_pow.products(16) == 4
    alone = [r for r in recs if np.shape(r["pred"])[0] == 1]
    as_batches = {m: (b, b) for m, (b, _) in lowp_xla_pow.ALONG_ROW_FROM.items()}
    assert _apart(alone, monkeypatch, "ALONG_ROW_FROM", as_batches) == (7, 416)  # (a single row as a batch's)
    wide = [r for r in recs if np.shape(r["pred"])[1] >= 9 and np.shape(r["pred"])[0] > 1]
    scalar = {m: (33, 33) for m in lowp_xla_pow.ALONG_ROW_FROM}
    assert _apart(wide, monkeypatch, "ALONG_ROW_FROM", scalar) == (19, 2804)  # (batches in the scalar loop)
    narrow = [r for r in recs if np.shape(r["pred"])[1] <= 8]
    for fixed, apart in ((4096, (21, 359)), (0, (16, 255))):  # (the rows 4 at a time, or 8, whatever the number)
        table = {k: {n: fixed for n in v} if k[0] >= 4 else v for k, v in lowp_xla_pow.POWER_ROWS.items()}
        assert _apart(narrow, monkeypatch, "POWER_ROWS", table) == apart


def test_powers_of_7_to_10_products_along_the_row(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records named "more products" (q = 23 to 63 on 18 to 32 features, in batches and alone, either side of
    # ALONG_ROW_FROM's thresholds) are JAX's bit for bit (test_jax_cpu_bit_for_bit); in the scalar loop instead,
    # 22 of the 36 differ (1,781 elements); below 24 features without the epilogue's vectors, 11 (627)
    recs = [r for r in RECORDS if (r.get("name") or "").startswith("more products")]
    assert len(recs) == 36 and {lowp_xla_pow.products(int(r["options"]["norm_degree"])) for r in recs} == {7, 8, 9, 10}
    scalar = {**lowp_xla_pow.ALONG_ROW_FROM, **{m: (33, 33) for m in (7, 8, 9, 10)}}
    assert _apart(recs, monkeypatch, "ALONG_ROW_FROM", scalar) == (22, 1781)
    plans = {k: (lanes, order, 0) if k < 24 else (lanes, order, e)
             for k, (lanes, order, e) in lowp_xla_pow.ROW_PLANS.items()}
    assert _apart(recs, monkeypatch, "ROW_PLANS", plans) == (11, 627)


def test_a_single_row_of_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    # q = ½ on a single row of 27 to 32 features: the scalar loop below 30, 8 lanes along the row from there (the
    # records "single root row", JAX's bit for bit above); summed as a batch's from 28, or never along the row alone
    recs = [r for r in RECORDS if (r.get("name") or "").startswith("single root row")]
    assert len(recs) == 24
    assert _apart(recs, monkeypatch, "ROOTS_ALONG_FROM", (28, 28)) == (2, 151)
    assert _apart(recs, monkeypatch, "ROOTS_ALONG_FROM", (28, 33)) == (6, 382)


def test_the_fused_sum_of_the_losses(monkeypatch: pytest.MonkeyPatch) -> None:
    # q = 1, ½ and ⅓ under jit: XLA fuses the losses into their sum, which LLVM adds in 8 lanes for some batches
    # (the records "fused losses" and "fused roots", their values JAX's above); added in XLA's windows instead, 9 of
    # the 26 values of q = 1 differ and 7 of the 24 of ½ and ⅓
    no_lanes = {e: (range(0), range(0)) for e in lowp_xla_pow.LOSS_LANES}
    for name, count, apart in (("fused losses", 26, (9, 9)), ("fused roots", 24, (7, 7))):
        recs = [r for r in RECORDS if (r.get("name") or "").startswith(name)]
        assert len(recs) == count and all(r["value"] is not None for r in recs)
        assert not any(any("lossgrad's float32 sum" in w for w in _run(r).warnings) for r in recs)
        assert _apart(recs, monkeypatch, "LOSS_LANES", no_lanes) == apart
    # 23 rows of one feature under q = 1, and 22 or 23 rows under ⅓ (the records "paired losses"): 4 lanes over the
    # first 16 losses, then 2; added in XLA's windows instead, 6 of the 20 values differ
    recs = [r for r in RECORDS if (r.get("name") or "").startswith("paired losses")]
    assert len(recs) == 20 and not any(any("float32 sum" in w for w in _run(r).warnings) for r in recs)
    assert _apart(recs, monkeypatch, "LOSSES_PAIRED", {}) == (6, 6)


def test_what_is_not_reproduced_falls_back_or_is_refused_with_the_reason() -> None:
    a, y, n = [[1.0, 2.0, 3.0]], [[0.5, 2.0, 1.0]], [[3.0, 0.0, 1.0]]
    for q in (3.0, 5.0, 11.0, 0.5, 1 / 3, 95.0, 192.0, 250.0, 300.0, 512.0, 4096.0, 4097.0):  # (under jit)
        r = lossgrad.evaluate("triplet", y, a, convention="optax", dtype="float32", negative=n, norm_degree=q)
        assert not any("float32 formulas" in w or "not bit for bit" in w for w in r.warnings), (q, r.warnings)
    # x^255 takes 14 products (7 squarings, 7 products into the result): from there LLVM vectorizes rows of 9 to 15
    # features along the row; x^4098 takes 13 and d^4097 13 (rows of 11 and 12 features measured apart for 254)
    near = np.array([[1.0, 1.01, 0.99]])
    for q, why in ((255.0, "x^255 takes 14 products"), (4098.0, "x^4098 takes 13 products and d^4097 13")):
        r = lossgrad.evaluate("triplet", [[0.0, 0.0, 0.0]], near, convention="optax", dtype="float32",
                              negative=near - 1.005, norm_degree=q)
        assert any(f"norm_degree {q:g} under jit" in w and why in w.replace("\n", " ") and "float32 formulas" in w
                   for w in r.warnings), r.warnings
        for dtype in ("float16", "bfloat16"):
            with pytest.raises(lossgrad.OptionError, match=f"norm_degree {q:g} under jit"):
                lossgrad.evaluate("triplet", [[0.0, 0.0, 0.0]], near, convention="optax", dtype=dtype,
                                  negative=near - 1.005, norm_degree=q)
        assert lossgrad.evaluate("triplet", [[0.0, 0.0, 0.0]], near, convention="optax", dtype="bfloat16",
                                 negative=near - 1.005, norm_degree=q, jit=False).jit is False
    # a single long row in float16 and bfloat16 is JAX's for any q (YNNPACK's dot keeps the products into each
    # power's result in float32 in bfloat16: the records "half long rows")
    long = np.linspace(1.0, 1.1, 4100).reshape(1, -1)
    for dtype in ("float16", "bfloat16"):
        assert lossgrad.evaluate("triplet", long * 0, long, convention="optax", dtype=dtype, negative=long - 1.02,
                                 norm_degree=15.0).jit


def test_the_command_line_gives_the_records_numbers() -> None:
    rec = next(r for r in RECORDS if r["options"]["norm_degree"] == 1.5 and r["jit"] and r["reduction"] == "sum"
               and np.isfinite(np.float32(r["value"])))
    rows = lambda k: ";".join(",".join(map(str, row)) for row in _f32(rec[k]).tolist())  # noqa: E731
    r = cli("triplet", "-c", "optax", "--dtype", "float32", "--reduction", "sum", "--norm-degree", "1.5",
            "--margin", str(rec["options"]["margin"]), "-y", rows("target"), "-p", rows("pred"),
            "--negative", rows("negative"), "-f", "json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert _differing(out["losses"], rec["losses"]) == 0 and _differing(out["grad"], rec["grad"]) == 0
    assert np.float32(out["value"]) == np.float32(rec["value"])


@pytest.mark.frameworks
def test_random_rounds_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    golden = golden_script("golden_lowp_xla_pow", "jax", "optax")
    rng = live_rng
    for _ in range(live_rounds(1, 8)):
        for q in golden.DEGREES + golden.MORE_DEGREES + (7.0, 11.0, 15.0, 23.0, 31.0, 47.0, 95.0, 192.0, 200.0,
                                                                   256.0, 4096.0):
            rows, cols = int(rng.integers(1, 60)), int(rng.choice([1, 3, 7, 9, 17, 19, 22, 23, 25, 28, 30, 31, 32,
                                                                   40]))
            if rng.integers(4) == 0:  # (rows of 2 to 8 features in a batch XLA may split between its threads)
                cols = int(rng.integers(2, 9))
                rows = int(rng.integers(16, 4096 // cols))
            if rng.integers(6) == 0:  # (a single long row: split along the row, or YNNPACK's dot from 4096)
                rows, cols = 1, int(rng.integers(1100, 9000))
            dtype = str(rng.choice(["float32", "float32", "float16", "bfloat16"]))
            jit = bool(rng.integers(2))
            reduction = str(rng.choice(["mean", "sum", "none"]))
            drawn = golden.triplets(rng, q, rows, cols)[:2] + [golden.similar(rng, rows, cols)]
            y, p, neg, name = drawn[int(rng.integers(3))]
            rec = golden.record(q, float(rng.choice(golden.MARGINS)), jit, reduction, y, p, neg, name, dtype)
            assert not any(compare(rec, _run(rec)).values()), (q, dtype, jit, reduction, rows, cols)


def test_a_single_row_split_unevenly_is_a_scalar_loop() -> None:
    # a single row whose anchor-gradient kernel XLA splits between its 2 threads: on an odd length the parts differ
    # in size, the loop is guarded and scalar, and LLVM forms the multiply-add from the positive's product (measured:
    # q = 23 is split from 1130 features, q = 15 from 4097, where the differences come stored; 17 never below 9000)
    decide = lowp_xla_pow.scalar_gradient
    assert [decide(23.0, (1, n)) for n in (1129, 1130, 1131, 3001, 3002)] == [False, False, True, True, False]
    assert [decide(15.0, (1, n)) for n in (3001, 4097, 4098)] == [False, True, False]
    assert not decide(17.0, (1, 8999)) and not decide(23.0, (3, 1131)) and not decide(2.5, (1, 5001))
    # the records "split row" are JAX's bit for bit above; with the negative's product throughout instead, the four
    # split unevenly differ
    recs = [r for r in RECORDS if (r.get("name") or "").startswith("split row,")]
    assert len(recs) == 8 and sum(decide(r["options"]["norm_degree"], np.shape(r["pred"])) for r in recs) == 4
    assert _apart(recs, pytest.MonkeyPatch(), "scalar_gradient", lambda q, shape: False)[0] == 4
    # the records "split rows": batches of 3 to 8 features whose fused row sum XLA splits between its threads, each
    # half vectorized by POWER_ROWS, or an odd batch left scalar; as one task instead, all 8 differ
    recs = [r for r in RECORDS if (r.get("name") or "").startswith("split rows,")]
    assert len(recs) == 8 and {lowp_xla_pow.row_sum_tasks(int(r["options"]["norm_degree"]), *np.shape(r["pred"]))
                               for r in recs} == {2}
    assert _apart(recs, pytest.MonkeyPatch(), "row_sum_tasks", lambda q, rows, n, threads=2: 1) == (8, 5460)


def test_high_degrees_and_the_half_dtypes_ynnpack_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records "half ynn": float16 and bfloat16 under jit from 4096 elements (batches, and single rows, which
    # were refused from q = 15), JAX's bit for bit above; with the products into each power's result rounded to
    # bfloat16 as XLA's fusion says (YNNPACK drops that rounding), bfloat16's differ, float16's (which keeps it) not
    recs = [r for r in RECORDS if (r.get("name") or "").startswith("half ynn,")]
    assert len(recs) == 16 and {r["dtype"] for r in recs} == {"float16", "bfloat16"}
    assert all(np.size(r["pred"]) >= 4096 for r in recs)
    half = [r for r in recs if r["dtype"] == "float16"]
    assert _apart(half, monkeypatch, "ynn_into", lambda shape, k: None) == (0, 0)
    bf16 = [r for r in recs if r["dtype"] == "bfloat16"]
    assert _apart(bf16, monkeypatch, "ynn_into", lambda shape, k: None) == (6, 15635)
    # the records "ninth feature": float32 batches of 9 features where d^(q−1) takes 13 products or more (q = 192 to
    # 4096), whose ninth column's gradient LLVM's scalar remainder forms from the positive's product; with the
    # negative's throughout, the five of 9 features differ, the control of 10 features not
    recs = [r for r in RECORDS if (r.get("name") or "").startswith("ninth feature,")]
    assert len(recs) == 6 and all(lowp_xla_pow.products(int(r["options"]["norm_degree"]) - 1) >= 13 for r in recs)
    negatives = lambda q, shape: np.full(shape, lowp_xla_pow.scalar_gradient(q, shape))  # noqa: E731
    assert _apart(recs, monkeypatch, "contracts_positive", negatives)[0] == 5
    # the records "high degree" (q = 192 to 4096, whose d^(q−1) takes 13 to 22 products), in all three dtypes
    recs = [r for r in RECORDS if (r.get("name") or "").startswith("high degree,")]
    assert len(recs) == 21 and {r["dtype"] for r in recs} == {"float32", "float16", "bfloat16"}
    assert all(lowp_xla_pow.products(int(r["options"]["norm_degree"]) - 1) >= 13 for r in recs)


def test_batches_of_4096_rows_as_ynnpack_sums_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records "ynn rows" (JAX's bit for bit above): in bfloat16 from 4096 rows YNNPACK's row sums take in the
    # addition of eps (for q = 1 the hinge's difference and margin too) and drop bfloat16's roundings between them;
    # rounded there instead, the two bfloat16 records differ, the float16 one not
    recs = [r for r in RECORDS if (r.get("name") or "").startswith("ynn rows,")]
    assert len(recs) == 4
    half = [r for r in recs if r["dtype"] != "float32"]
    assert _apart(half, monkeypatch, "ynn_kept", lambda shape, r, k: r)[0] == 2
    assert _apart([r for r in half if r["dtype"] == "float16"], monkeypatch, "ynn_kept", lambda shape, r, k: r)[0] == 0
    # float32, q = ½ from 4096 elements: YNNPACK's powf inside its sum; with LLVM's √ instead, the record differs
    f32 = [r for r in recs if r["dtype"] == "float32"]
    assert _apart(f32, monkeypatch, "ynn_powers", lowp_xla_pow.jit_power)[0] == 1


def test_a_split_that_more_cores_would_change_is_warned_of() -> None:
    # lossgrad follows XLA's 2 threads; a machine of more cores splits a costly kernel in more parts: where that
    # shows (a single row whose parts would be equal on one count and not on the other; a row sum over 2 to 8
    # features split in more parts), a warning says so
    note = lowp_xla_pow.more_threads
    assert note(23.0, (1, 3001)) is None and note(23.0, (1, 3000)) is None  # (prime: uneven at any count; even)
    assert "among as many as 5 threads" in (note(23.0, (1, 3003)) or "")  # (3003 = 3 · 7 · 11 · 13)
    assert note(23.0, (300, 8)) is None and "as many as 3" in (note(23.0, (500, 8)) or "")
    assert note(5.0, (1, 3001)) is None and note(23.0, (20, 30)) is None and note(2.5, (500, 8)) is None
    near = np.linspace(1.0, 1.1, 3003).reshape(1, -1)
    r = lossgrad.evaluate("triplet", near * 0, near, convention="optax", dtype="float32", negative=near - 1.02,
                          norm_degree=23.0, reduction="none")
    assert sum("lossgrad follows 2" in w for w in r.warnings) == 1 and r.jit


def test_bfloat16_under_jit_contracts_each_powers_last_product_into_the_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records "half fused" (JAX's bit for bit above): bfloat16 under jit, q = 3 to 127 over 8 to 32 features,
    # in a batch and alone, each drawn where lossgrad's result changes with each power rounded to float32 and the
    # rows added in order: so undone, every one of them differs (NaN where JAX's fused sum keeps ±inf, or inf where
    # its multiply-add keeps a finite sum)
    recs = [r for r in RECORDS if (r.get("name") or "").startswith("half fused")]
    assert len(recs) == 12 and {r["dtype"] for r in recs} == {"bfloat16"} and all(r["jit"] for r in recs)
    monkeypatch.setattr(lowp_xla_pow, "half_fused", lambda *_: False)
    assert all(sum(compare(r, _run(r)).values()) for r in recs)


def test_nan_losses_from_4096_rows_say_what_a_program_without_the_gradient_gives() -> None:
    # JAX under jit (jax 0.10.2, measured live): a − pos = −1 makes (−1)^½ NaN in every row. The training step
    # (jax.jit of jax.value_and_grad, what lossgrad reproduces) keeps them NaN at any size; a jitted program without
    # the gradient hands the hinge max(·, 0) to YNNPACK from 4096 rows, whose maximum gives 0 for NaN (jnp.mean of
    # the losses alone: 0; the losses alone: 0 for rows of two features or more, 1/q ≠ 3): a warning says so
    def run(rows: int, cols: int, q: float, dtype: str = "float32", **kw: object) -> lossgrad.Result:
        a, pos = np.zeros((rows, cols)), np.ones((rows, cols))
        return lossgrad.evaluate("triplet", pos, a, negative=-pos, convention="optax", dtype=dtype, norm_degree=q,
                                 **kw)
    for rows, cols, q, dtype, alone in ((4096, 2, 0.5, "float32", True), (4096, 3, 1.5, "bfloat16", True),
                                        (4096, 1, 0.5, "float32", False), (4096, 2, 1 / 3, "float32", False),
                                        (4095, 2, 0.5, "float32", None), (4096, 2, 0.5, "float16", None)):
        r = run(rows, cols, q, dtype)
        assert np.isnan(r.value) and np.all(np.isnan(r.losses)) and np.all(np.isnan(r.grad))  # (the step's, kept)
        notes = [w for w in r.warnings if "a jitted program without the gradient" in w]
        assert len(notes) == (alone is not None) and all(("the losses alone are 0" in w) == alone for w in notes)
        assert any("jnp.power of the differences without |·|" in w for w in r.warnings)
    assert not any("without the gradient" in w for w in run(4096, 2, 0.5, jit=False).warnings)
