"""optax's ntxent (contrastive --ntxent under the optax convention) in float32, float16 and bfloat16 against JAX's
own CPU results, recorded by scripts/golden_lowp_xla_ntxent.py in tests/golden/lowp_xla_ntxent.json: op by op bit for
bit (the value, the per-sample losses, the gradients of the anchors and of the positives); under jit in float32 bit
for bit where XLA's fused kernels are reproduced (up to 7 pairs; from 8 pairs with 2 features or more), elsewhere
computed by lossgrad's float32 formulas with a warning; under jit in bfloat16 bit for
bit, and in float16 bit for bit (from 8 to 16 pairs with the partner sums as LLVM vectorizes them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import golden_script, live_rounds, lossgrad as cli

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
    """How many elements of each result differ from the record's (the value where lossgrad gives JAX's)."""
    pairs = {"grad": (r.grad, rec["grad"]), "grad_target": (r.grads["target"], rec["grad_target"])}
    if rec["losses"] is not None:
        pairs["losses"] = (r.losses, rec["losses"])
    if not any("lossgrad's float32 sum" in w for w in r.warnings):
        pairs["value"] = (np.float32(r.value), [rec["value"]])
    return {what: _differing(got, want) for what, (got, want) in pairs.items()}


@pytest.mark.parametrize("rec", OPS, ids=[_id(i, r) for i, r in enumerate(OPS)])
def test_jax_op_by_op_bit_for_bit(rec: dict) -> None:
    assert not any(compare(rec, _run(rec)).values())


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
    # float32: reproduced bit for bit (values where known: up to 14 rows, 16, 32, and from 64), or lossgrad's float32
    # formulas with a warning (16 rows or more of one feature); float16 and bfloat16: reproduced
    left = [r for r in JIT32 if not _fused(r)]
    assert sorted({tuple(np.shape(r["pred"])) for r in left}) == [(64, 1)]
    # (records, gradient elements, values: float32's where jnp.sum's order is known, the half dtypes' all)
    from lossgrad.lowp_xla_ntxent_jit import value_known

    counts = {dtype: (len(recs), sum(2 * np.size(r["pred"]) for r in recs),
                      sum(dtype != "float32" or value_known(2 * len(r["pred"])) for r in recs))
              for dtype in ("float32", "float16", "bfloat16") for recs in [[r for r in FUSED if r["dtype"] == dtype]]}
    assert counts == {"float32": (72, 68164, 53), "float16": (49, 13240, 49), "bfloat16": (36, 11160, 36)}
    runs = [(r, _run(r)) for r in left]
    assert all(any("ntxent under jit" in w and "float32 formulas" in w for w in res.warnings) for _, res in runs)
    assert sum(sum(compare(r, res).values()) for r, res in runs) == 128


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


def test_under_jit_the_fallback_says_why() -> None:
    rec = next(r for r in JIT32 if np.shape(r["pred"]) == (64, 1))
    r = _run(rec)
    assert any("64 pairs of 1 feature is not reproduced" in w and "one feature" in w for w in r.warnings)
    # the formulas in float32, not JAX's fused kernels: within 2⁻¹⁸ of the recorded float32 value
    assert abs(r.value - float(rec["value"])) <= 2**-18 * abs(float(rec["value"]))
    rec = next(r for r in JIT32 if np.shape(r["pred"]) == (17, 31))
    r = _run(rec)
    assert any("lossgrad's float32 sum" in w and "34 rows in lanes" in w for w in r.warnings)
    assert compare(rec, r) == {"grad": 0, "grad_target": 0}


def test_large_float32_batches_take_ynnpacks_slices() -> None:
    # the golden file's batches whose sums YNNPACK takes in several slices of rows, or fuses with their products
    # (lowp_xla_partner, lowp_xla.dot_lanes, lowp_xla.xla_sum2d): JAX's losses, gradients and value, with no warning
    large = [r for r in RECORDS if r.get("name") == "large"]
    assert {(np.shape(r["pred"]), r["jit"]) for r in large} >= {((40, 30), False), ((100, 16), False),
                                                                 ((64, 32), True), ((33, 70), True), ((8, 2049), True)}
    for rec in large:
        r = _run(rec)
        assert not r.warnings and not any(compare(rec, r).values()), np.shape(rec["pred"])


def test_float32_rows_beyond_ynnpacks_slice_fall_back_with_the_reason() -> None:
    rng = np.random.default_rng(2)
    y, p = rng.normal(size=(2, 32769)), rng.normal(size=(2, 32769))
    for jit in (False, True):
        r = lossgrad.contrastive(y, p, ntxent=True, convention="optax", dtype="float32", jit=jit)
        assert any("more than 32768 features" in w for w in r.warnings)
    assert not lossgrad.contrastive(y, p, ntxent=True, convention="optax", dtype="bfloat16", jit=False).warnings


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
    from lossgrad.lowp_xla_ntxent import fits

    rng = live_rng
    for dtype in ("float32", "float16", "bfloat16"):
        for _ in range(live_rounds(1, 3)):
            b, d = int(rng.integers(2, 40)), int(rng.integers(1, 40))
            if dtype == "float32" and not fits(2 * b, d):
                continue
            a = golden._rounded(rng.standard_normal((b, d)) * rng.choice([0.01, 1.0, 30.0]), dtype)
            p = golden._rounded(a * rng.choice([1.0, -1.0]) + rng.standard_normal((b, d)) * rng.choice([1e-3, 1.0]),
                                dtype)
            rec = golden.record(a, p, float(rng.choice(golden.TEMPERATURES)), dtype, False)
            assert not any(compare(rec, _run(rec)).values()), (dtype, b, d)


@pytest.mark.frameworks
def test_random_rounds_under_jit_against_live_jax(live_rng: np.random.Generator, jax_x32: None) -> None:
    golden = golden_script("golden_lowp_xla_ntxent", "jax", "optax")
    from lossgrad.lowp_xla_ntxent_jit import MAX_PAIRS, unsupported_shape

    rng = live_rng
    for k in range(live_rounds(8, 40)):
        # float32 every other round a batch of up to 7 pairs, else one of 8 to 39 pairs (every other such round up to
        # 159) of 1 to 39 features (LLVM's vectors, XLA's windows or YNNPACK's sums for the partner rows, the final
        # loops' vector blocks; one feature falls back with its reason); float16 every fourth round, 2 to 39 pairs
        # (8 to 16 every other such round: LLVM's vectors); bfloat16 every fourth, 2 to 69 pairs (from 32, YNNPACK's
        # N × N kernels)
        dtype = {2: "float16", 3: "bfloat16"}.get(k % 4, "float32")
        if dtype == "float16":
            b = int(rng.integers(8, 17) if k % 8 == 2 else rng.integers(2, 40))
            d = int(rng.integers(2 if 8 <= b <= 16 else 1, 40))  # (one feature refused at 8 to 16 pairs)
        elif dtype == "bfloat16":
            b, d = int(rng.integers(2, 70)), int(rng.integers(1, 70))
        elif k % 2 == 0:
            b, d = int(rng.integers(2, MAX_PAIRS + 1)), int(rng.integers(1, 40))
        else:
            b, d = int(rng.integers(MAX_PAIRS + 1, 40 if k % 4 == 1 else 160)), int(rng.integers(1, 40))
        a = golden._rounded(rng.standard_normal((b, d)) * rng.choice([0.01, 1.0, 30.0]), dtype)
        p = golden._rounded(a * rng.choice([1.0, -1.0]) + rng.standard_normal((b, d)) * rng.choice([1e-3, 1.0]), dtype)
        rec = golden.record(a, p, float(rng.choice(golden.TEMPERATURES)), dtype, True)
        r = _run(rec)
        why = unsupported_shape(b, d) if dtype == "float32" else None
        if why:
            assert any(why in w for w in r.warnings), (b, d)
        else:
            assert not any(compare(rec, r).values()), (dtype, b, d)
