"""optax's losses with fused row sums in float32 on a processor with AVX2 only (cpu="avx2"): kl, triplet and cosine
under jax.jit, and ce's probability rows under jit and op by op, whose row loops LLVM's loop vectorizer splits into
other lanes, and contracts otherwise, than with AVX-512 (lossgrad.lowp_xla_kl's AVX2 tables,
lowp_xla_rows.AVX2_PAIRED and AVX2_UNPAIRED, lowp_xla_cos.AVX2_SUM_COLUMNS, lowp_xla.ce_value_lanes), against JAX's
own results recorded on an AMD EPYC with AVX2 by scripts/golden_avx2_xla_fused.py in tests/golden/avx2_xla_fused.json:
kl's and ce's lanes read from XLA's LLVM IR for every block up to 32 × 32, and batches up to 40 × 40 (value, losses
and every gradient bit for bit, without a warning)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import cpu, lowp_xla, lowp_xla_cos, lowp_xla_kl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_avx2_xla_fused import FORMS, LOSSES, STORED, inputs  # noqa: E402
from golden_pairs64 import digest  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "avx2_xla_fused.json").read_text())


def test_kls_lanes_are_the_ones_measured() -> None:
    with cpu.using("avx2"):
        value, rows = ({tuple(map(int, nk.split(","))): w for nk, w in DATA["lanes"]["kl"][kind].items()}
                       for kind in ("value", "rows"))
        assert len(value) >= 32 * 32 - 32 and len(rows) >= 32 * 32 - 32  # (every block of two rows or more)
        assert {nk: w for nk, w in value.items() if nk[0] > 1 and w != lowp_xla_kl._value_lanes(*nk)[0]} == {}
        # the rows whose products are stored: in lanes of whole rows (4 rows of 8: a vector per class instead)
        stored = {nk for nk in rows if lowp_xla.avx2_stored_rows(*nk, lowp_xla_kl.AVX2_STORED)}
        assert {nk: w for nk, w in rows.items() if nk in stored and nk[0] // w * w != lowp_xla_kl._stored_rows(*nk)} \
            == {}
        vectorized = {nk for nk, w in rows.items() if nk[1] in lowp_xla_kl.AVX2_STORED and w and nk[0] > 1}
        assert vectorized - stored == {(4, 8)}


def test_ces_lanes_are_the_ones_measured() -> None:
    """ce's probability rows: the value's lanes avx2_lanes' (none for 2 rows), its rows' loop vectorized alike
    (each product contracted either way, so the rows' sums are the scalar loop's)."""
    with cpu.using("avx2"):
        for kind in ("value", "rows"):
            measured = {tuple(map(int, nk.split(","))): w for nk, w in DATA["lanes"]["ce"][kind].items()}
            assert len(measured) >= 31 * 31
            assert {nk: w for nk, w in measured.items() if nk[0] > 1 and w != lowp_xla.ce_value_lanes(*nk)} == {}


def _hashed(a: np.ndarray) -> str:
    return digest(np.float32(a).astype(np.float64))


def _call(loss: str, x: dict[str, np.ndarray]) -> tuple[str, dict]:
    """lossgrad's loss name and options for a record's loss (kl's forms, ce-ops: ce op by op)."""
    if loss in FORMS:
        return "kl", {"log_input": loss in FORMS[1::2], "log_target": loss in FORMS[2:], "jit": True}
    if loss == "triplet":
        return loss, {"negative": x["negative"], "margin": 1.0, "jit": True}
    if loss in ("ce", "ce-ops"):
        return "ce", {"from_logits": True, "jit": loss == "ce"}
    return loss, {"jit": True}


@pytest.mark.parametrize("rec", DATA["records"], ids=[f"{r['loss']}-{'x'.join(map(str, r['shape']))}-"
                                                      f"{r['reduction']}-{r['seed']}" for r in DATA["records"]])
def test_optax_under_jit_bit_for_bit(rec: dict) -> None:
    x = {k: v.astype(np.float64) for k, v in inputs(rec["seed"], tuple(rec["shape"]), rec["loss"]).items()}
    name, options = _call(rec["loss"], x)
    r = lossgrad.evaluate(name, x["y"], x["p"], convention="optax", dtype="float32", reduction=rec["reduction"],
                          cpu="avx2", **options)
    assert not any("AVX2" in w for w in r.warnings)
    assert _hashed(r.losses) == rec["losses"]
    assert _hashed(r.grad) == rec["grad"]
    assert {k: _hashed(r.grads[k]) for k in rec["grads"]} == rec["grads"]
    if rec["value"] is not None and not any("lossgrad's float32 sum" in w for w in r.warnings):
        assert float(np.float32(r.value)) == float.fromhex(rec["value"])


def test_the_records_cover_each_loss_reduction_and_the_stored_shapes() -> None:
    assert {(r["loss"], r["reduction"]) for r in DATA["records"]} == {
        (loss, red) for loss in LOSSES for red in ("sum", "mean", "none")}
    for loss, shapes in STORED.items():
        assert {tuple(r["shape"]) for r in DATA["records"] if r["loss"].startswith(loss)} >= set(shapes)
    assert "avx512f" not in DATA["versions"]["cpu_flags"] and "avx2" in DATA["versions"]["cpu_flags"]


def test_the_avx512_tables_stay_for_avx512() -> None:
    """The same block takes AVX-512's order under --cpu avx512: kl's 2 lanes for 18 rows of 8 classes there, 8 with
    AVX2 (its products stored with AVX2 for 8 classes, contracted with AVX-512 for more than 4); cosine's sum
    contracts the other product in 8-row groups there, in 4-row groups with AVX2."""
    with cpu.using("avx512"):
        assert lowp_xla.ce_value_lanes(16, 27) == 0
        assert lowp_xla_kl._value_lanes(18, 8) == (2, False)
        assert lowp_xla_kl._value_lanes(4, 3) == (4, True)
        assert lowp_xla_cos.sum_contracted(16, 4) == (16, 4)
        assert lowp_xla_cos.sum_contracted(20, 7)[0] == 0
    with cpu.using("avx2"):
        assert lowp_xla.ce_value_lanes(16, 27) == 8  # (0 with AVX-512: 16 to 32 rows of up to 25 classes only)
        assert lowp_xla_kl._value_lanes(18, 8) == (8, False)
        assert lowp_xla_kl._value_lanes(18, 7) == (2, True)
        assert lowp_xla_kl._value_lanes(2, 5) == (0, True)
        assert lowp_xla_cos.sum_contracted(16, 4) == (0, 0)
        assert lowp_xla_cos.sum_contracted(20, 7) == (20, 6)
