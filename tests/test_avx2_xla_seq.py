"""optax's ctc and ntxent, under jit and op by op, on a processor with AVX2 only (cpu="avx2"), against JAX's own
results recorded on an AMD EPYC with AVX2 by scripts/golden_avx2_xla_seq.py in tests/golden/avx2_xla_seq.json:
ctc's backward loop, which LLVM vectorizes across the sequences 4 at a time for other batches than with AVX-512 and
keeps other label states apart (lowp_xla_ctc.AVX2_FOUR, AVX2_KEPT_APART), rows of 3 classes, whose log_softmax
backward contracts every product with AVX2; ntxent's value op by op, jnp.sum of the N × N matrix, whose rows LLVM
splits into AVX2's lanes; and ntxent under jit, whose final loops go 4 rows at a time for other batches, and whose
sums over 16 to 32 partner rows take other lanes and accumulators (lowp_xla_ntxent_jit.AVX2_FOUR, AVX2_SCALE_FUSED,
avx2_blocks), in float32, float16 and bfloat16. Value, losses and every gradient bit for bit, without a warning."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import cpu, lowp_xla_ctc, lowp_xla_ntxent_jit as ntj, ynn_dot

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_avx2_xla_seq import (  # noqa: E402
    CTC_DOT,
    CTC_FRAMES,
    CTC_SHAPES,
    NTXENT_BLOCKS,
    NTXENT_HALF,
    NTXENT_PARTNERS,
    ctc_dot_inputs,
    ctc_inputs,
    ntxent_inputs,
)
from golden_pairs64 import digest  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "avx2_xla_seq.json").read_text())
RECORDS = DATA["records"]


def _hashed(a: object) -> str:
    return digest(np.asarray(a, dtype=np.float32).astype(np.float64))


def _run(rec: dict, capability: str = "avx2") -> lossgrad.Result:
    if rec["loss"] == "ctc-dot":
        x, labels, il, tl = ctc_dot_inputs(rec["seed"], *rec["shape"])
        return lossgrad.ctc(labels, x, input_lengths=il, target_lengths=tl, from_logits=True, convention="optax",
                            dtype="float32", reduction=rec["reduction"], jit=rec["jit"], cpu=capability)
    b, k = rec["shape"]
    if rec["loss"] == "ctc":
        x, labels, il, tl = ctc_inputs(rec["seed"], b, k)
        return lossgrad.ctc(labels, x, input_lengths=il, target_lengths=tl, from_logits=True, convention="optax",
                            dtype="float32", reduction=rec["reduction"], jit=rec["jit"], cpu=capability)
    a, p = ntxent_inputs(rec["seed"], b, k, rec["dtype"])
    return lossgrad.contrastive(p.astype(np.float64), a.astype(np.float64), ntxent=True,
                                temperature=rec["temperature"], convention="optax", dtype=rec["dtype"],
                                jit=rec["jit"], cpu=capability)


def apart(rec: dict, r: lossgrad.Result) -> list[str]:
    """What of the result differs from the record: the value, the losses, the gradient(s)."""
    got = {"losses": r.losses, "grad": r.grad, "grad_target": r.grads.get("target")}
    out = [k for k in ("losses", "grad", "grad_target") if rec.get(k) is not None and _hashed(got[k]) != rec[k]]
    if rec["value"] is not None and float(np.float32(r.value)).hex() != rec["value"]:
        out.append("value")
    return out


def _id(rec: dict) -> str:
    return (f"{rec['loss']}-{'x'.join(map(str, rec['shape']))}-{rec.get('dtype', 'float32')}-"
            f"{'jit' if rec['jit'] else 'ops'}-{rec.get('reduction', 'mean')}-{rec['seed']}")


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(r) for r in RECORDS])
def test_optax_on_avx2_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    assert apart(rec, r) == []
    assert not any("AVX2" in w for w in r.warnings) and lowp_xla_ctc.F32_GRADIENT not in r.warnings


def test_ctcs_labels_dot_takes_ynnpacks_kernel() -> None:
    # 2 lanes for 17 to 24 classes from 61 frames (but 3 label columns: YNNPACK reads B as it is); in order
    # beside them, and for a dot XLA keeps (under 8 each way)
    with cpu.using("avx2"):
        lanes = {shape: lowp_xla_ctc._label_lanes(t, c, n) for shape in CTC_DOT for _, t, c, n in [shape]}
        assert {shape for shape, w in lanes.items() if w == 2} == {
            (3, 64, 20, 4), (3, 61, 20, 4), (3, 64, 17, 4), (3, 64, 24, 5), (2, 200, 20, 7), (2, 130, 17, 9),
            (4, 70, 18, 6)}
        assert set(lanes.values()) == {1, 2} and lowp_xla_ctc._label_lanes(7, 7, 4) == 1
    # in order where the kernel takes 2 lanes, the records of the 2-lane shapes are apart
    two = [r for r in RECORDS if r["loss"] == "ctc-dot" and lanes.get(tuple(r["shape"])) == 2]
    with pytest.MonkeyPatch.context() as m:
        m.setattr(lowp_xla_ctc, "_label_lanes", lambda t, c, k: 1)
        assert sum(bool(apart(r, _run(r))) for r in two) >= len(two) // 3
    # (with AVX-512 the same choice takes 4 lanes for most of them: another order)
    assert [ynn_dot.lanes("avx512", t, c, n) for _, t, c, n in CTC_DOT[:3]] == [4, 4, 4]


def test_from_4096_rows_of_frames_the_backward_is_ynnpacks_product_and_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    # float32: XLA fuses the labels' dot and log_softmax's backward into one YNNPACK fusion, whose ct + q·e is a
    # product and a sum; with XLA's multiply-add every such record is apart (the batch of 4,095 rows is not)
    frames = [r for r in RECORDS if r["loss"] == "ctc-dot" and tuple(r["shape"]) in CTC_FRAMES]
    large = [r for r in frames if r["shape"][0] * r["shape"][1] >= lowp_xla_ctc.YNN_FROM]
    assert len(large) == 6 and len(frames) == 8 and {r["jit"] for r in large} == {True, False}
    monkeypatch.setattr(lowp_xla_ctc, "YNN_FROM", 10**9)
    assert all(apart(r, _run(r)) for r in large)
    assert not any(apart(r, _run(r)) for r in frames if r not in large)


def test_avx512s_rules_would_miss_them() -> None:
    # the same batches with AVX-512's rules: ctc's gradient apart in most of the shapes above (the other vectorized
    # blocks and 3 classes), ntxent's value in some batches of 8 to 16 pairs (AVX-512's lanes there, or none)
    missed = [(rec["loss"], tuple(rec["shape"])) for rec in RECORDS
              if rec["loss"] != "ctc-dot" and apart(rec, _run(rec, "avx512"))]
    ctc = {shape for loss, shape in missed if loss == "ctc"}
    assert len(ctc) >= 15 and {(4, 3), (40, 1), (44, 4), (60, 6)} <= ctc
    assert any(loss == "contrastive" and 8 <= shape[0] <= 16 for loss, shape in missed)
    # under jit: the final loops' 4-row blocks, and the sums over 20, 22, 28 and 30 partner rows (4 lanes), float32
    # and float16
    jit = {(rec["dtype"], tuple(rec["shape"])) for rec in RECORDS
           if rec["loss"] == "contrastive" and rec["jit"] and apart(rec, _run(rec, "avx512"))}
    assert {("float32", (4, n)) for n in range(3, 9)} <= jit
    assert {("float32", shape) for shape in ((21, 4), (39, 6), (10, 2), (11, 3), (14, 4), (15, 1))} <= jit
    assert {("float16", shape) for shape in ((10, 5), (10, 10), (11, 1), (14, 2))} <= jit


def test_the_rule_for_each_shape() -> None:
    # 4 at a time: the last whole four left to the scalar code; 8 at a time, none kept apart
    with cpu.using("avx2"):
        blocks = {shape: lowp_xla_ctc.vectorised_block(*shape) for shape in CTC_SHAPES}
    assert blocks[(4, 3)] == (4, 2) and blocks[(4, 7)] == (4, 6) and blocks[(4, 8)] == (4, 8)
    assert blocks[(21, 4)] == (20, 4) and blocks[(44, 4)] == (40, 4) and blocks[(52, 6)] == (48, 4)
    assert blocks[(44, 3)] == blocks[(44, 5)] == blocks[(60, 6)] == blocks[(16, 4)] == blocks[(8, 8)] == (0, 0)


def test_ntxents_rules_for_each_shape() -> None:
    # the final loops: 4 pairs, or 4 to 7 over 2 or 3 eights (4 and 6 features: to 4 eights), the first columns
    # fused; 8 at a time, as the scalar code
    with cpu.using("avx2"):
        blocks = {shape: ntj.vector_block(*shape, positives) for shape in NTXENT_BLOCKS for positives in (0, 1)}
        assert blocks[(4, 3)] == (4, 2) and blocks[(4, 7)] == (4, 6) and blocks[(4, 8)] == (4, 8)
        assert blocks[(21, 4)] == (20, 4) and blocks[(31, 3)] == (28, 2) and blocks[(39, 6)] == (36, 4)
        assert blocks[(4, 2)] == blocks[(4, 9)] == blocks[(8, 5)] == blocks[(12, 4)] == blocks[(20, 8)] == (0, 0)
        assert blocks[(36, 3)] == blocks[(37, 5)] == blocks[(44, 4)] == blocks[(46, 6)] == (0, 0)
    # the sums over the partner rows: two accumulators over the rows i where the lanes are 4, joined into one chain;
    # rows of 2 to 8 features leave a row to the scalar loop
    assert ntj.avx2_plan(20, 3, True) == (4, (0, 2, 3, 1), 0) and ntj.avx2_plan(20, 3, False) == (4, (0, 1, 2, 3), 0)
    assert ntj.avx2_plan(20, 1, False) == ntj.avx2_plan(20, 9, False) == (4, (0, 1, 2, 3, 4), 0)
    assert ntj.avx2_plan(28, 2, True) == (4, (0, 2, 4, 3, 1, 5), 0) and ntj.avx2_plan(20, 5, True)[1] == (0, 1, 2, 3)
    assert ntj.avx2_plan(16, 5, True) == (8, (0,), 0) and ntj.avx2_plan(18, 12, False) == (8, (0, 1), 0)
    assert ntj.avx2_blocks(20, 10, True, "float16") == (4, 1, 5) and ntj.avx2_blocks(28, 3, False, "float16")[1] == 2


def test_the_records_cover_both_modes_and_every_kept_count() -> None:
    ctc = [r for r in RECORDS if r["loss"] == "ctc"]
    assert {tuple(r["shape"]) for r in ctc} >= set(CTC_SHAPES)
    modes = {(jit, red) for jit in (False, True) for red in ("none", "sum", "mean")}
    assert {(r["jit"], r["reduction"]) for r in ctc} == modes
    with cpu.using("avx2"):
        kept = {lowp_xla_ctc.vectorised_block(*r["shape"])[1] for r in ctc}
    assert kept == {0, *lowp_xla_ctc.AVX2_KEPT_APART.values()}
    ops = [r for r in RECORDS if r["loss"] == "contrastive" and not r["jit"]]
    assert {r["shape"][0] for r in ops} == set(range(2, 17))
    jit = {(r["dtype"], tuple(r["shape"])) for r in RECORDS if r["loss"] == "contrastive" and r["jit"]}
    assert {("float32", s) for s in NTXENT_BLOCKS + NTXENT_PARTNERS} | {("float16", s) for s in NTXENT_HALF} <= jit
    assert {dtype for dtype, _ in jit} == {"float32", "float16", "bfloat16"}
    with cpu.using("avx2"):
        fused = {ntj.vector_block(*shape, False)[1] for dtype, shape in jit if dtype == "float32"}
    assert fused == {0, *ntj.AVX2_SCALE_FUSED.values()}
    partners = {2 * b for dtype, (b, d) in jit if dtype == "float32" and not ntj.stored(2 * b, d)}
    assert set(ntj.AVX2_LANES) <= partners
    exceptions = {(2 * b, d) for dtype, (b, d) in jit if dtype == "float16"}
    assert exceptions & ntj.AVX2_ONE_ACCUMULATOR["float16"] and exceptions & ntj.AVX2_TWO_OVER_PARTNERS["float16"]
    assert ("float32", (10, 5)) in jit
    assert "avx512f" not in DATA["versions"]["cpu_flags"] and "avx2" in DATA["versions"]["cpu_flags"]
