"""optax's ntxent (contrastive --ntxent under the optax convention) in float32, float16 and bfloat16 against JAX's
own CPU results, recorded by scripts/golden_lowp_xla_ntxent.py in tests/golden/lowp_xla_ntxent.json: op by op bit for
bit (the value, the per-sample losses, the gradients of the anchors and of the positives); under jit in float32 bit
for bit (rows of up to 32768 features; beyond, lossgrad's float32 formulas with a warning); under jit in bfloat16 bit
for bit, and in float16 bit for bit (from 8 to 16 pairs with the partner sums as LLVM vectorizes them). Batches of
wide rows in float32 (tests/golden/lowp_xla_ntxent_wide.json) are held by digest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import assert_recorded, golden_script, live_rounds, lossgrad as cli
from lossgrad import lowp_xla as xla, lowp_xla_ntxent_jit
from lossgrad.lowp_xla_ntxent_jit import unsupported_shape as jit_unsupported

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_xla_ntxent.json"
DATA = json.loads(GOLDEN.read_text())
RECORDS = DATA["records"]
OPS = [r for r in RECORDS if not r["jit"]]
JIT = [r for r in RECORDS if r["jit"]]
JIT32 = [r for r in JIT if r["dtype"] == "float32"]


def _f32(values: object) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _fused(rec: dict) -> bool:
    """Whether lossgrad reproduces XLA's fused kernels for this record under jit."""
    from lossgrad.lowp_xla_ntxent_jit import unsupported_shape

    if rec["dtype"] in ("float16", "bfloat16"):
        return True
    return rec["dtype"] == "float32" and unsupported_shape(*np.shape(rec["pred"])) is None


FUSED = [r for r in JIT if _fused(r)]


def _run(rec: dict) -> lossgrad.Result:
    return lossgrad.contrastive(_f32(rec["target"]).astype(np.float64), _f32(rec["pred"]).astype(np.float64),
                                ntxent=True, temperature=rec["temperature"], convention="optax", dtype=rec["dtype"],
                                jit=rec["jit"])


def _id(i: int, rec: dict) -> str:
    return (f"{i}-{rec['dtype']}-{'jit' if rec['jit'] else 'ops'}-t{rec['temperature']}-"
            f"{'x'.join(map(str, np.shape(rec['pred'])))}{'-' + rec['name'] if rec.get('name') else ''}")


def _differing(got: object, want: object) -> int:
    """Elements not equal bit for bit (NaN for NaN, −0 apart from +0)."""
    a, b = np.asarray(got, dtype=np.float32).reshape(-1), _f32(want).reshape(-1)
    return int((~((a.view(np.int32) == b.view(np.int32)) | (np.isnan(a) & np.isnan(b)))).sum())


def compare(rec: dict, r: lossgrad.Result) -> dict[str, int]:
    """How many elements of each result differ from the record's."""
    pairs = {"grad": (r.grad, rec["grad"]), "grad_target": (r.grads["target"], rec["grad_target"]),
             "value": (np.float32(r.value), [rec["value"]])}
    if rec["losses"] is not None:
        pairs["losses"] = (r.losses, rec["losses"])
    return {what: _differing(got, want) for what, (got, want) in pairs.items()}


@pytest.mark.parametrize("rec", OPS, ids=[_id(i, r) for i, r in enumerate(OPS)])
def test_jax_op_by_op_bit_for_bit(rec: dict) -> None:
    assert not any(compare(rec, _run(rec)).values())


def test_bfloat16_sums_op_by_op_are_ynnpacks_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records "bf16 pairs" (JAX's bit for bit above): op by op in bfloat16 the sums of stored values from 4096
    # elements are YNNPACK's bfloat16 kernel, in pairs; summed in float32's order (one element a lane), both differ
    recs = [r for r in OPS if r.get("name") == "bf16 pairs"]
    assert len(recs) == 2 and {r["dtype"] for r in recs} == {"bfloat16"}
    own = xla._row_lanes
    monkeypatch.setattr(xla, "_row_lanes", lambda x, bf16=False: own(x))
    assert all(sum(compare(r, _run(r)).values()) for r in recs)


def test_the_golden_file_covers_every_dtype_mode_and_edge() -> None:
    assert {(r["dtype"], r["jit"]) for r in RECORDS} == {(d, j) for d in ("float32", "float16", "bfloat16")
                                                        for j in (True, False)}
    assert {r["temperature"] for r in RECORDS} == {0.07, 0.5, 1.0}
    pairs = {len(r["pred"]) for r in OPS}
    assert min(pairs) == 2 and max(pairs) >= 64 and any(b % 2 for b in pairs)
    assert {r.get("name") for r in OPS} >= {"equal-opposite", "near-parallel", "at-eps-clip", "one-feature",
                                            "equal-rows-underflow"}
    assert DATA["versions"]["jax"] and DATA["versions"]["optax"] and DATA["versions"]["jaxlib"]


@pytest.mark.parametrize("rec", FUSED, ids=[_id(i, r) for i, r in enumerate(FUSED)])
def test_jax_under_jit_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    assert not any("float32 formulas" in w for w in r.warnings)
    assert not any(compare(rec, r).values())


def test_what_is_left_under_jit() -> None:
    # every record reproduced bit for bit in every dtype, the value included (jnp.sum over the N × N matrix in row
    # order, LLVM's lanes, XLA's windows from 34 rows or YNNPACK's from 64)
    assert JIT == FUSED
    counts = {dtype: (len(recs), sum(2 * np.size(r["pred"]) for r in recs), len({2 * len(r["pred"]) for r in recs}))
              for dtype in ("float32", "float16", "bfloat16") for recs in [[r for r in FUSED if r["dtype"] == dtype]]}
    assert counts == {"float32": (88, 70934, 36), "float16": (59, 13490, 23), "bfloat16": (36, 11160, 17)}


def test_the_value_of_every_row_count_under_jit(monkeypatch: pytest.MonkeyPatch) -> None:
    # the 31 float32 records of 18 to 62 rows, whose value LLVM adds into a running scalar sum row by row (up to 32)
    # or XLA in windows of 32 × 32 (from 34): JAX's; summed in row order instead, 5 of the 11 from 34 rows differ
    import lossgrad.lowp_xla_ntxent_jit as jit

    recs = [r for r in JIT32 if 18 <= 2 * len(r["pred"]) <= 62]
    assert {2 * len(r["pred"]) for r in recs} >= {*range(18, 35, 2), 40, 44, 46, 50, 54, 58, 62}
    assert not any(compare(r, _run(r))["value"] for r in recs)
    monkeypatch.setattr(jit, "xla_sum2d", lambda m: np.float32(xla._in_order(m.reshape(1, -1))[0] + np.float32(0)))
    assert sum(compare(r, _run(r))["value"] for r in recs if 2 * len(r["pred"]) >= 34) == 5


def test_the_final_loops_vector_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records named vector-block (few features, YNNPACK summing the products): JAX's gradients bit for bit with
    # the blocks of the two final loops that LLVM vectorizes; without them 8 of the 13 differ, in 1,788 elements (the
    # other 5 are loops it leaves to 4 rows at a time or to the scalar code)
    import lossgrad.lowp_xla_ntxent_jit as jit

    assert [jit.vector_block(b, d, positives) for b, d, positives in
            ((44, 3, False), (36, 3, False), (32, 4, False), (32, 4, True), (124, 7, False), (124, 7, True),
             (64, 8, False), (64, 8, True), (40, 2, True))] == [(40, 2), (0, 0), (32, 4), (24, 4), (0, 0), (120, 6),
                                                                 (0, 0), (56, 8), (0, 0)]
    block = [r for r in JIT32 if r.get("name") == "vector-block"]
    assert len(block) == 13 and all(_fused(r) and not any(compare(r, _run(r)).values()) for r in block)
    monkeypatch.setattr(jit, "vector_block", lambda *_: (0, 0))
    apart = [compare(r, _run(r)) for r in block]
    assert (sum(a["grad"] + a["grad_target"] > 0 for a in apart), sum(a["grad"] + a["grad_target"] for a in apart)) \
        == (8, 1788)


def test_the_partner_sums_vectors_and_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records named partner-vectors (8 to 22 pairs below 4096 products): JAX's gradients bit for bit with the
    # sums over the partner rows as LLVM vectorizes them from 16 to 32 rows (NARROW, WIDE) and as XLA's windows add
    # the stored products from 34; summed in row order instead, as the scalar code would, all 13 differ, in 1,046
    # elements
    import lossgrad.lowp_xla_ntxent_jit as jit

    recs = [r for r in JIT32 if r.get("name") == "partner-vectors"]
    rows = {2 * len(r["pred"]) for r in recs}
    assert len(recs) == 13 and rows == set(jit.NARROW) - {28} | {34, 44} and all(_fused(r) for r in recs)
    assert {(2 * len(r["pred"]), len(r["pred"][0]) > 8) for r in recs} >= {(n, True) for n in jit.WIDE}
    assert not any(any(compare(r, _run(r)).values()) for r in recs)
    monkeypatch.setattr(jit, "NARROW", {})
    monkeypatch.setattr(jit, "STORED_ROWS_FROM", 2**31)
    apart = [compare(r, _run(r)) for r in recs]
    assert (sum(a["grad"] + a["grad_target"] > 0 for a in apart), sum(a["grad"] + a["grad_target"] for a in apart)) \
        == (13, 1046)


def test_float16_partner_sums_in_llvms_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    # the float16 records named half-partner-vectors (8 to 16 pairs): JAX's under jit bit for bit with the partner
    # sums as LLVM vectorizes them in float16 (HALF_NARROW, HALF_WIDE); added in XLA's windows instead, as from 17
    # pairs, all 13 differ, in 1,252 elements
    import lossgrad.lowp_xla_ntxent as ops

    recs = [r for r in JIT if r.get("name") == "half-partner-vectors"]
    assert {r["dtype"] for r in recs} == {"float16"} and len(recs) == 13
    assert {2 * len(r["pred"]) for r in recs} == set(ops.HALF_NARROW) - {28}
    assert {(2 * len(r["pred"]), len(r["pred"][0]) > 8) for r in recs} >= {(n, True) for n in ops.HALF_WIDE}
    assert not any(any(compare(r, _run(r)).values()) for r in recs)
    monkeypatch.setattr(ops, "HALF_NARROW", {})
    apart = [compare(r, _run(r)) for r in recs]
    assert (sum(a["grad"] + a["grad_target"] > 0 for a in apart), sum(a["grad"] + a["grad_target"] for a in apart)) \
        == (13, 1252)


def test_rows_of_one_feature_under_jit(monkeypatch: pytest.MonkeyPatch) -> None:
    # the records named one-feature-rows (float32, 8 to 1000 pairs) and half-one-feature-rows (float16, 8 to 17
    # pairs): JAX's gradients bit for bit, with the partner sums of one feature as LLVM vectorizes them from 16 to 32
    # rows (ONE_FEATURE, HALF_ONE_FEATURE) and, in float32 from 64 rows, as YNNPACK's dot of each row of the scores
    import lossgrad.lowp_xla as xla
    import lossgrad.lowp_xla_ntxent as ops
    import lossgrad.lowp_xla_ntxent_jit as jit

    f32 = [r for r in JIT32 if r.get("name") == "one-feature-rows"]
    f16 = [r for r in JIT if r.get("name") == "half-one-feature-rows"]
    assert {2 * len(r["pred"]) for r in f32} >= set(jit.ONE_FEATURE) - {28, 30} | {34, 64, 2000}
    assert {2 * len(r["pred"]) for r in f16} >= set(ops.HALF_ONE_FEATURE) - {28, 30}
    # (each is JAX's bit for bit in test_jax_under_jit_bit_for_bit)
    assert all(np.shape(r["pred"])[1] == 1 and _fused(r) for r in f32 + f16)

    def apart(recs: list[dict]) -> tuple[int, int]:
        counts = [compare(r, _run(r)) for r in recs]
        return sum(c["grad"] + c["grad_target"] > 0 for c in counts), sum(c["grad"] + c["grad_target"] for c in counts)
    # with the plans of rows of 2 to 8 features instead, 5 of the 15 float32 records differ and 4 of the 10 float16
    with monkeypatch.context() as m:
        m.setattr(jit, "ONE_FEATURE", {n: jit.NARROW[n] for n in jit.ONE_FEATURE})
        m.setattr(ops, "HALF_ONE_FEATURE", {n: (ops.HALF_NARROW[n],) * 2 for n in ops.HALF_ONE_FEATURE})
        assert (apart(f32), apart(f16)) == ((5, 90), (4, 44))
    # with the products stored and summed as jnp.sum adds them instead of YNNPACK's dot, all 4 from 64 rows differ
    monkeypatch.setattr(jit, "dot_rows", lambda a, b: xla.xla_sum(xla.ftz(a * b)))
    assert apart(f32) == (4, 2320)


def test_under_jit_the_fallback_says_why() -> None:
    assert jit_unsupported(8, 32769) is not None and "32768 features" in jit_unsupported(8, 32769)


def test_large_float32_batches_take_ynnpacks_slices() -> None:
    # the golden file's batches whose sums YNNPACK takes in several slices of rows, or fuses with their products
    # (lowp_xla_partner, lowp_xla.dot_lanes, lowp_xla.xla_sum2d): JAX's losses, gradients and value, with no warning
    large = [r for r in RECORDS if r.get("name") == "large"]
    assert {(np.shape(r["pred"]), r["jit"]) for r in large} >= {((40, 30), False), ((100, 16), False),
                                                                 ((64, 32), True), ((33, 70), True), ((8, 2049), True)}
    for rec in large:
        r = _run(rec)
        assert not r.warnings and not any(compare(rec, r).values()), np.shape(rec["pred"])


def test_float32_rows_beyond_ynnpacks_slice_fall_back_with_the_reason_under_jit_only() -> None:
    rng = np.random.default_rng(2)
    y, p = rng.normal(size=(2, 32769)), rng.normal(size=(2, 32769))
    r = lossgrad.contrastive(y, p, ntxent=True, convention="optax", dtype="float32", jit=True)
    assert any("more than 32768 features" in w for w in r.warnings)
    for dtype in ("float32", "bfloat16"):
        assert not lossgrad.contrastive(y, p, ntxent=True, convention="optax", dtype=dtype, jit=False).warnings


WIDE = json.loads((GOLDEN.parent / "lowp_xla_ntxent_wide.json").read_text())


def _digest(x: object) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(np.asarray(x, dtype=np.float32)).tobytes()).hexdigest()


def _wide(rec: dict) -> tuple[lossgrad.Result, dict[str, str]]:
    """lossgrad on a wide record's inputs (regenerated from its seed, checked by their digest), and the digests of
    its gradients."""
    golden = golden_script("golden_lowp_xla_ntxent")
    a, p = golden.wide_inputs(rec["seed"], rec["pairs"], rec["features"])
    assert _digest(np.concatenate([a, p])) == rec["inputs"]
    r = lossgrad.contrastive(p, a, ntxent=True, temperature=rec["temperature"], convention="optax",
                             dtype="float32", jit=rec["jit"])
    return r, {"grad": _digest(r.grad), "grad_target": _digest(r.grads["target"])}


@pytest.mark.parametrize("rec", WIDE["records"], ids=[f"{r['pairs']}x{r['features']}-{r['jit']}"
                                                      for r in WIDE["records"]])
def test_wide_float32_rows_bit_for_bit(rec: dict) -> None:
    # under jit rows of 8,193 to 32,768 features, whose norm's backward YNNPACK adds in dot blocks of 8192; op by
    # op rows of more than 32,768 (18 rows: past a join of YNNPACK's tree over the partner rows)
    r, digests = _wide(rec)
    assert_recorded(r, digests, rec)
    if rec["losses"] is not None:
        assert np.array_equal(np.asarray(r.losses, dtype=np.float32), _f32(rec["losses"]))


def test_wide_rows_under_jit_take_ynnpacks_dot_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # the norm's backward as one dot of 4 lanes over the whole row (no blocks of 8192) puts both records apart
    jit = [r for r in WIDE["records"] if r["jit"]]
    assert {r["features"] for r in jit} >= {10000, 20000}
    monkeypatch.setattr(lowp_xla_ntxent_jit, "dot_rows", xla.dot_lanes)
    for rec in jit:
        _, digests = _wide(rec)
        assert digests["grad"] != rec["grad"] and digests["grad_target"] != rec["grad_target"]


def test_the_command_line_and_tensor_files_give_the_records_numbers(tmp_path: Path) -> None:
    rec = next(r for r in OPS if r["dtype"] == "bfloat16" and r.get("name") == "near-parallel"
               and r["temperature"] == 0.07)
    a, p = _f32(rec["pred"]), _f32(rec["target"])
    flags = ["contrastive", "--ntxent", "-c", "optax", "--dtype", "bfloat16", "--no-jit", "--temperature", "0.07"]
    text = [";".join(",".join(map(repr, row.tolist())) for row in x) for x in (a, p)]
    r = cli(*flags, "-p", text[0], "-y", text[1], "-f", "json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert np.float32(out["value"]) == np.float32(rec["value"])
    assert not any(_differing(out[k], rec[k]) for k in ("losses", "grad", "grad_target"))
    np.save(tmp_path / "a.npy", a.astype(np.float64))
    np.save(tmp_path / "p.npy", p.astype(np.float64))
    r = cli(*flags, "-p", tmp_path / "a.npy", "-y", tmp_path / "p.npy", "-o", tmp_path / "out.npz", "-f", "json")
    assert r.code == 0, r.err
    saved = np.load(tmp_path / "out.npz")
    assert not any(_differing(saved[k], rec[k]) for k in ("losses", "grad", "grad_target"))


@pytest.mark.frameworks
def test_random_rounds_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    golden = golden_script("golden_lowp_xla_ntxent", "jax", "optax")
    rng = live_rng
    for dtype in ("float32", "float16", "bfloat16"):
        for _ in range(live_rounds(1, 3)):
            b, d = int(rng.integers(2, 40)), int(rng.integers(1, 40))
            a = golden._rounded(rng.standard_normal((b, d)) * rng.choice([0.01, 1.0, 30.0]), dtype)
            p = golden._rounded(a * rng.choice([1.0, -1.0]) + rng.standard_normal((b, d)) * rng.choice([1e-3, 1.0]),
                                dtype)
            rec = golden.record(a, p, float(rng.choice(golden.TEMPERATURES)), dtype, False)
            r = _run(rec)
            assert not any(compare(rec, r).values()), (dtype, b, d)


@pytest.mark.frameworks
def test_random_rounds_under_jit_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    golden = golden_script("golden_lowp_xla_ntxent", "jax", "optax")
    from lossgrad.lowp_xla_ntxent_jit import unsupported_shape

    rng = live_rng
    for k in range(live_rounds(8, 40)):
        # float32 every other round a batch of up to 7 pairs, else one of 8 to 39 pairs (every other such round up to
        # 159) of 1 to 39 features (LLVM's vectors, XLA's windows or YNNPACK's sums for the partner rows, the final
        # loops' vector blocks; one feature in rounds 5 and 9 of every 16); float16 every fourth round, 2 to 39 pairs
        # (8 to 16 every other such round: LLVM's vectors; one feature in round 2 of every 16); bfloat16 every fourth,
        # 2 to 69 pairs (from 32, YNNPACK's N × N kernels)
        dtype = {2: "float16", 3: "bfloat16"}.get(k % 4, "float32")
        if dtype == "float16":
            b = int(rng.integers(8, 17) if k % 8 == 2 else rng.integers(2, 40))
            d = 1 if k % 16 == 2 else int(rng.integers(1, 40))
        elif dtype == "bfloat16":
            b, d = int(rng.integers(2, 70)), int(rng.integers(1, 70))
        elif k % 2 == 0:
            b, d = int(rng.integers(2, 8)), int(rng.integers(1, 40))
        else:
            b = int(rng.integers(8, 40 if k % 8 == 1 else 160))
            d = 1 if k % 16 in (5, 9) else int(rng.integers(1, 40))
        a = golden._rounded(rng.standard_normal((b, d)) * rng.choice([0.01, 1.0, 30.0]), dtype)
        p = golden._rounded(a * rng.choice([1.0, -1.0]) + rng.standard_normal((b, d)) * rng.choice([1e-3, 1.0]), dtype)
        rec = golden.record(a, p, float(rng.choice(golden.TEMPERATURES)), dtype, True)
        r = _run(rec)
        why = unsupported_shape(b, d) if dtype == "float32" else None
        if why:
            assert any(why in w for w in r.warnings), (b, d)
        else:
            assert not any(compare(rec, r).values()), (dtype, b, d)


def test_a_batch_whose_pair_products_would_not_fit_is_not_reproduced(monkeypatch):
    # the kernels' model holds the [2B, 2B, d] products of every two rows: 1,000 pairs of 1,000 features would
    # take 16 GB a copy. Beyond HELD_PRODUCTS, float32 takes the formulas (with a warning) and a half dtype refuses
    from lossgrad import errors, lowp_xla_ntxent

    monkeypatch.setattr(lowp_xla_ntxent, "HELD_PRODUCTS", 6 * 6 * 4 - 1)
    rng = np.random.default_rng(2)
    y, p = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    for jit in (True, False):
        r = lossgrad.evaluate("contrastive", y, p, ntxent=True, convention="optax", dtype="float32", jit=jit)
        exact = lossgrad.evaluate("contrastive", y, p, ntxent=True, convention="exact", dtype="float32")
        assert any("[2B, 2B, d]: 144 values here" in w for w in r.warnings), r.warnings
        assert abs(r.value - exact.value) <= 1e-5 * abs(exact.value)
        with pytest.raises(errors.NotReproduced, match="beyond the 143"):
            lossgrad.evaluate("contrastive", y, p, ntxent=True, convention="optax", dtype="bfloat16", jit=jit)
    fits = lossgrad.evaluate("contrastive", y[:2], p[:2], ntxent=True, convention="optax", dtype="float32")
    assert not any("[2B, 2B, d]" in w for w in fits.warnings)
