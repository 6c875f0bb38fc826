"""optax in float32 on a processor with AVX2 only (cpu="avx2"): XLA's float32 sums over [N, K] arrays, whose rows
LLVM's loop vectorizer splits into other lanes than with AVX-512 (lossgrad.lowp_xla.avx2_lanes), against JAX's own
results recorded on an AMD EPYC with AVX2 by scripts/golden_avx2_xla_sums.py in tests/golden/avx2_xla_sums.json:
the lanes read from XLA's LLVM IR for every block up to 32 × 32, jnp.sum of 120 arrays op by op and under jit, and
384 batches of mse, bce, huber, hinge, logcosh, focal and ce with class indexes (value, losses and gradient bit for
bit, without the warning that the losses left to it carry)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import cpu, lowp_xla

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_avx2_xla_sums import inputs, sum_input  # noqa: E402
from golden_pairs64 import digest  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "avx2_xla_sums.json").read_text())


def test_the_lanes_are_the_ones_measured() -> None:
    with cpu.using("avx2"):
        for what, rule in (("sum", lowp_xla.row_lanes), ("squared_error", lowp_xla.fused_lanes)):
            measured = {tuple(map(int, nk.split(","))): w for nk, w in DATA["lanes"][what].items()}
            assert len(measured) == 32 * 32 - 1  # (every block but a single element)
            assert {nk: w for nk, w in measured.items() if nk[0] > 1 and rule(*nk) != w} == {}


def test_jnp_sum_op_by_op_and_under_jit() -> None:
    with cpu.using("avx2"):
        for rec in DATA["sums"]:
            got = float(lowp_xla.xla_sum2d(sum_input(rec["seed"])))
            assert got == float.fromhex(rec["jit"]) == float.fromhex(rec["ops"]), rec["seed"]


@pytest.mark.parametrize("rec", DATA["records"], ids=[f"{r['loss']}-{'jit' if r['jit'] else 'ops'}-{r['reduction']}-"
                                                      f"{r['seed']}" for r in DATA["records"]])
def test_optax_float32_bit_for_bit(rec: dict) -> None:
    y, p = inputs(rec["seed"], rec["loss"])
    more = {"labels": "index"} if rec["loss"] == "ce" else {}
    r = lossgrad.evaluate(rec["loss"], y.astype(np.float64), p.astype(np.float64), convention="optax",
                          dtype="float32", jit=rec["jit"], reduction=rec["reduction"], cpu="avx2",
                          from_logits=rec["loss"] in ("bce", "ce", "focal"), **rec["options"], **more)
    assert not any("AVX2" in w for w in r.warnings)
    assert digest(np.float32(r.losses).astype(np.float64)) == rec["losses"]
    assert digest(np.float32(r.grad).astype(np.float64)) == rec["grad"]
    if not any("lossgrad's float32 sum" in w for w in r.warnings):  # (where lossgrad says it sums on its own)
        assert float(np.float32(r.value)) == float.fromhex(rec["value"])


def test_the_records_cover_each_loss_mode_and_reduction() -> None:
    assert {(r["loss"], r["jit"], r["reduction"]) for r in DATA["records"]} == {
        (loss, jit, red) for loss in ("mse", "bce", "ce", "huber", "hinge", "logcosh", "focal")
        for jit in (False, True) for red in ("mean", "sum")}
    assert "avx512f" not in DATA["versions"]["cpu_flags"] and "avx2" in DATA["versions"]["cpu_flags"]


def test_no_loss_over_several_rows_is_warned_about() -> None:
    # every optax loss over several rows is reproduced on AVX2: contrastive under jit and op by op and ctc
    # (tests/test_avx2_xla_seq.py), mse, ce's probability rows and cosine (tests/test_avx2_xla_fused.py)
    y, p = np.eye(3)[[0, 1, 2, 0]], np.linspace(-2, 2, 12).reshape(4, 3)
    for jit in (False, True):
        r = lossgrad.contrastive(y, p, convention="optax", dtype="float32", cpu="avx2", jit=jit, ntxent=True)
        assert r.warnings == [], jit
    r = lossgrad.ctc([[1, 2]] * 4, np.linspace(-2, 2, 48).reshape(4, 4, 3), from_logits=True, convention="optax",
                     dtype="float32", cpu="avx2")
    assert not any("AVX2" in w for w in r.warnings)  # (ctc's own warning on YNNPACK's kernel is the processor's)
    for loss, kw in (("mse", {}), ("cosine", {}), ("ce", {"from_logits": True})):
        for jit in (False, True):
            r = lossgrad.evaluate(loss, y, p, convention="optax", dtype="float32", cpu="avx2", jit=jit, **kw)
            assert not any("AVX2" in w for w in r.warnings), (loss, jit)
