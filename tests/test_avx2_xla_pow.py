"""optax's triplet_margin_loss with an integral norm_degree q ≥ 3 under jit, on a processor with AVX2 only
(cpu="avx2"), against JAX's own results recorded on an AMD EPYC with AVX2 by scripts/golden_avx2_xla_pow.py in
tests/golden/avx2_xla_pow.json: XLA's fused row sum of the powers over rows of 2 to 8 features, whose rows LLVM's
loop vectorizer takes 4 or 8 at a time (the powers stored and added in order) for other batches than with AVX-512,
the rest contracting each power's last product into the sum (lowp_xla_pow.avx2_power_rows). Value, losses and the
three gradients bit for bit, without a warning."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from lossgrad import cpu, lowp_xla_pow

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_avx2_xla_pow import RULE_DEGREES, RULE_ROWS, SPLIT, pow_inputs  # noqa: E402
from golden_pairs64 import digest  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "avx2_xla_pow.json").read_text())
RECORDS = DATA["records"]


def _run(rec: dict, capability: str = "avx2") -> lossgrad.Result:
    y, p, neg = pow_inputs(rec["seed"], rec["q"], *rec["shape"], rec["draw"], rec["dtype"])
    return lossgrad.evaluate("triplet", y.astype(np.float64), p.astype(np.float64), negative=neg.astype(np.float64),
                             norm_degree=float(rec["q"]), margin=1.0, convention="optax", dtype=rec["dtype"],
                             reduction=rec["reduction"], jit=True, cpu=capability)


def apart(rec: dict, r: lossgrad.Result) -> list[str]:
    """What of the result differs from the record: the value, the losses, the gradients."""
    got = {"losses": r.losses, "grad": r.grad, "grad_target": r.grads["target"], "grad_negative": r.grads["negative"]}
    out = [k for k, v in got.items() if digest(np.asarray(v, dtype=np.float32).astype(np.float64)) != rec[k]]
    if rec["value"] is not None and float(np.float32(r.value)).hex() != rec["value"]:
        out.append("value")
    return out


def _id(rec: dict) -> str:
    rows, n = rec["shape"]
    return f"q={rec['q']}-{rows}x{n}-{rec['dtype']}-{rec['reduction']}-{rec['seed']}"


@pytest.mark.parametrize("rec", RECORDS, ids=[_id(r) for r in RECORDS])
def test_triplet_on_avx2_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    assert apart(rec, r) == []
    assert not any("bit for bit" in w or "AVX2" in w for w in r.warnings), r.warnings


def test_avx512s_rules_would_miss_them() -> None:
    # AVX-512's rules vectorize rows of 5 and 7 features and not those of 8: apart in float32 at every degree
    missed = {(rec["q"], tuple(rec["shape"])) for rec in RECORDS
              if rec["dtype"] == "float32" and apart(rec, _run(rec, "avx512"))}
    assert {q for q, _ in missed} >= set(RULE_DEGREES)
    assert {n for _, (rows, n) in missed} >= {5, 7, 8}


def test_the_rule_for_each_shape() -> None:
    # rows of 5 and 7 never; rows of 8 8 at a time (a batch of 4 stays scalar); 4 at a time where 4 to 7 rows are
    # over fewer groups of 8 than the table's, 8 at a time from there
    with cpu.using("avx2"):
        def vector(q: int, rows: int, n: int) -> int:
            return int(lowp_xla_pow.vector_power_rows(q, rows, n).sum())
        assert vector(3, 36, 5) == vector(200, 100, 7) == vector(3, 4, 8) == vector(3, 12, 2) == 0
        assert vector(3, 8, 8) == 8 and vector(3, 20, 8) == 16 and vector(3, 36, 8) == 32
        assert vector(3, 36, 2) == 36 and vector(3, 44, 2) == 40  # (2 products: 4 at a time below 5 groups)
        assert vector(7, 36, 3) == 32 and vector(10, 36, 3) == 36 and vector(10, 36, 2) == 32  # (4 products)
        assert vector(200, 28, 6) == 28 and vector(200, 36, 6) == 32


def test_the_records_cover_every_kind_of_degree_and_length() -> None:
    float32 = [r for r in RECORDS if r["dtype"] == "float32"]
    kinds = {(min(lowp_xla_pow.products(r["q"]), 5), r["q"] % 2 if lowp_xla_pow.products(r["q"]) == 4 else 0)
             for r in float32}
    assert kinds >= {(2, 0), (3, 0), (4, 0), (4, 1), (5, 0)}
    shapes = {(r["q"], tuple(r["shape"])) for r in float32}
    assert {(q, (rows, n)) for q in RULE_DEGREES for rows in RULE_ROWS for n in range(2, 9)} <= shapes
    assert {(q, (rows, n)) for q, rows, n in SPLIT} <= shapes
    assert any(lowp_xla_pow.row_sum_tasks(q, rows, n) > 1 for q, (rows, n) in shapes)
    assert {r["dtype"] for r in RECORDS} == {"float32", "float16", "bfloat16"}
    assert {r["draw"] for r in RECORDS} == {0, 1, 2} and {r["reduction"] for r in RECORDS} == {"sum", "mean", "none"}
    assert "avx512f" not in DATA["versions"]["cpu_flags"] and DATA["versions"]["jax"]
