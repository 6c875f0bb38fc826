"""optax's ctc (under jit and op by op) and ntxent (op by op) in float32 on a processor with AVX2 only (cpu="avx2"),
against JAX's own results recorded on an AMD EPYC with AVX2 by scripts/golden_avx2_xla_seq.py in
tests/golden/avx2_xla_seq.json: ctc's backward loop, which LLVM vectorizes across the sequences 4 at a time for
other batches than with AVX-512 and keeps other label states apart (lowp_xla_ctc.AVX2_FOUR, AVX2_KEPT_APART), rows
of 3 classes, whose log_softmax backward contracts every product with AVX2, and ntxent's value, jnp.sum of the N × N
matrix, whose rows LLVM splits into AVX2's lanes. Value, losses and every gradient bit for bit, without
kernels.XLA_AVX2's warning."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import cpu, kernels, lowp_xla_ctc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_avx2_xla_seq import CTC_SHAPES, ctc_inputs, ntxent_inputs  # noqa: E402
from golden_pairs64 import digest  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "avx2_xla_seq.json").read_text())
RECORDS = DATA["records"]


def _hashed(a: object) -> str:
    return digest(np.asarray(a, dtype=np.float32).astype(np.float64))


def _run(rec: dict, capability: str = "avx2") -> lossgrad.Result:
    b, k = rec["shape"]
    if rec["loss"] == "ctc":
        x, labels, il, tl = ctc_inputs(rec["seed"], b, k)
        return lossgrad.ctc(labels, x, input_lengths=il, target_lengths=tl, from_logits=True, convention="optax",
                            dtype="float32", reduction=rec["reduction"], jit=rec["jit"], cpu=capability)
    a, p = ntxent_inputs(rec["seed"], b, k)
    return lossgrad.contrastive(p.astype(np.float64), a.astype(np.float64), ntxent=True,
                                temperature=rec["temperature"], convention="optax", dtype="float32", jit=False,
                                cpu=capability)


def apart(rec: dict, r: lossgrad.Result) -> list[str]:
    """What of the result differs from the record: the value, the losses, the gradient(s)."""
    got = {"losses": r.losses, "grad": r.grad, "grad_target": r.grads.get("target")}
    out = [k for k in ("losses", "grad", "grad_target") if rec.get(k) is not None and _hashed(got[k]) != rec[k]]
    if rec["value"] is not None and float(np.float32(r.value)).hex() != rec["value"]:
        out.append("value")
    return out


def _id(rec: dict) -> str:
    b, k = rec["shape"]
    return f"{rec['loss']}-{b}x{k}-{'jit' if rec['jit'] else 'ops'}-{rec.get('reduction', 'mean')}-{rec['seed']}"


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(r) for r in RECORDS])
def test_optax_on_avx2_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    assert apart(rec, r) == []
    assert kernels.XLA_AVX2 not in r.warnings


def test_avx512s_rules_would_miss_them() -> None:
    # the same batches with AVX-512's rules: ctc's gradient apart in most of the shapes above (the other vectorized
    # blocks and 3 classes), ntxent's value in some batches of 8 to 16 pairs (AVX-512's lanes there, or none)
    missed = [(rec["loss"], tuple(rec["shape"])) for rec in RECORDS if apart(rec, _run(rec, "avx512"))]
    ctc = {shape for loss, shape in missed if loss == "ctc"}
    assert len(ctc) >= 15 and {(4, 3), (40, 1), (44, 4), (60, 6)} <= ctc
    assert any(loss == "contrastive" and 8 <= shape[0] <= 16 for loss, shape in missed)


def test_the_rule_for_each_shape() -> None:
    # 4 at a time: the last whole four left to the scalar code; 8 at a time, none kept apart
    with cpu.using("avx2"):
        blocks = {shape: lowp_xla_ctc.vectorised_block(*shape) for shape in CTC_SHAPES}
    assert blocks[(4, 3)] == (4, 2) and blocks[(4, 7)] == (4, 6) and blocks[(4, 8)] == (4, 8)
    assert blocks[(21, 4)] == (20, 4) and blocks[(44, 4)] == (40, 4) and blocks[(52, 6)] == (48, 4)
    assert blocks[(44, 3)] == blocks[(44, 5)] == blocks[(60, 6)] == blocks[(16, 4)] == blocks[(8, 8)] == (0, 0)


def test_the_records_cover_both_modes_and_every_kept_count() -> None:
    ctc = [r for r in RECORDS if r["loss"] == "ctc"]
    assert {tuple(r["shape"]) for r in ctc} >= set(CTC_SHAPES)
    modes = {(jit, red) for jit in (False, True) for red in ("none", "sum", "mean")}
    assert {(r["jit"], r["reduction"]) for r in ctc} == modes
    with cpu.using("avx2"):
        kept = {lowp_xla_ctc.vectorised_block(*r["shape"])[1] for r in ctc}
    assert kept == {0, *lowp_xla_ctc.AVX2_KEPT_APART.values()}
    assert {r["shape"][0] for r in RECORDS if r["loss"] == "contrastive"} == set(range(2, 17))
    assert "avx512f" not in DATA["versions"]["cpu_flags"] and "avx2" in DATA["versions"]["cpu_flags"]
