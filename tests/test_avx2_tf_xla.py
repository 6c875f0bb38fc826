"""TensorFlow's and JAX's results on a processor with AVX2 only, recorded by scripts/golden_avx2_tf_xla.py in
tests/golden/avx2_tf_xla.json, reproduced bit for bit with cpu="avx2" on any machine: Eigen's softmax (TensorFlow
leaves oneDNN off there) behind categorical-focal from logits, YNNPACK's one-lane dot, and the row sums that are
the same as AVX-512's. The kernels of AVX-512 (the golden files' other capability) do not give them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import golden_script, optax_run
from lossgrad import cpu, lowp_tf_focal32, lowp_tf_log, lowp_xla

GOLDEN = Path(__file__).resolve().parent / "golden" / "avx2_tf_xla.json"
DATA = json.loads(GOLDEN.read_text())
RECORDS = DATA["records"]


def _f32(encoded: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(np.float32)


def _same(got: object, want: np.ndarray) -> bool:
    got = np.asarray(got, dtype=np.float32).reshape(-1)
    return got.shape == want.shape and bool(((got.view(np.int32) == want.view(np.int32))
                                             | (np.isnan(got) & np.isnan(want))).all())


def _softmax_apart(rec: dict, capability: str) -> list[str]:
    """What of a softmax record lossgrad does not give under `capability` (none: all of it, bit for bit)."""
    shape = tuple(rec["shape"])
    y, z = (_f32(rec[k]).reshape(shape).astype(np.float64) for k in ("target", "pred"))
    apart = []
    for reduction, key in (("none", None), ("sum", "sum"), ("mean", "mean")):
        r = lossgrad.evaluate("categorical-focal", y, z, convention=rec["convention"], dtype=rec["dtype"],
                              reduction=reduction, from_logits=True, gamma=2.0, cpu=capability)
        assert not [w for w in r.warnings if "NaN gradient" not in w], r.warnings  # (float16's overflows: noted)
        if key is None:
            apart += [] if _same(r.losses, _f32(rec["losses"])) else ["losses"]
            continue
        apart += [] if _same(np.float32(r.value), _f32(rec[key]["value"])) else [f"{key} value"]
        apart += [] if _same(r.grad, _f32(rec[key]["grad"])) else [f"{key} grad"]
    return apart


def _xla(rec: dict) -> np.ndarray:
    """lossgrad's model of an XLA record's sums, under the capability in force."""
    script = golden_script("golden_ynn_sums")
    shape = tuple(rec["shape"])
    if rec["kind"] == "dot":
        return lowp_xla.product_sum(script.values(shape), script.values(shape, 1))
    if rec["kind"] == "broadcast-dot":
        g, w, e = script.inputs("dot", shape)
        return lowp_xla.dot_lanes(lowp_xla.ftz(g * w[:, None]), e)
    x = script.inputs("bfloat16" if rec["dtype"] == "bfloat16" else "whole", shape)[0]
    return lowp_xla.xla_sum(x, bf16=rec["dtype"] == "bfloat16")


SOFTMAX = [r for r in RECORDS if r["kind"] == "softmax"]
SUMS = [r for r in RECORDS if r["kind"] in ("dot", "broadcast-dot", "sums")]
CE_ROWS = [r["record"] for r in RECORDS if r["kind"] == "ce-rows"]


@pytest.mark.parametrize("rec", SOFTMAX, ids=[f"{r['convention']}-{r['dtype']}-{'x'.join(map(str, r['shape']))}"
                                              for r in SOFTMAX])
def test_categorical_focal_from_logits_is_avx2_tensorflows(rec: dict) -> None:
    assert _softmax_apart(rec, "avx2") == []


@pytest.mark.parametrize("rec", SUMS, ids=[f"{r['kind']}-{r.get('dtype', 'float32')}-{'x'.join(map(str, r['shape']))}"
                                           for r in SUMS])
def test_xla_sums_are_avx2_jaxs(rec: dict) -> None:
    with cpu.using("avx2"):
        assert _same(_xla(rec), _f32(rec["sum"]))


@pytest.mark.parametrize("rec", CE_ROWS, ids=[r["reduction"] for r in CE_ROWS])
def test_an_optax_single_probability_row_is_warned_under_avx2(rec: dict) -> None:
    # XLA's fusion of a single probability row of 5000 classes under jit on AVX2 is not pinned down: lossgrad says
    # so there (its losses are indeed apart from JAX's), and not under avx512, whose fusion it reproduces
    r = optax_run(rec, cpu="avx2")
    assert lowp_xla.AVX2_SINGLE_ROW in r.warnings
    assert not _same(r.losses, np.array(rec["losses"], dtype=np.float32).reshape(-1))
    assert lowp_xla.AVX2_SINGLE_ROW not in optax_run(rec, cpu="avx512").warnings


def test_avx512s_kernels_do_not_give_the_avx2_records() -> None:
    # float32 and bfloat16 softmax records: oneDNN's AVX-512 kernel (16 lanes, a true division) gives other bits
    # than Eigen's; YNNPACK's four-lane dot other sums than the one-lane; float16 (Eigen's on both) and the plain
    # row sums (16 lanes on both) are the same
    softmax = {(r["dtype"], bool(_softmax_apart(r, "avx512"))) for r in SOFTMAX}
    assert ("float32", True) in softmax and ("bfloat16", True) in softmax and ("float16", True) not in softmax
    with cpu.using("avx512"):
        apart = {r["kind"] for r in SUMS if not _same(_xla(r), _f32(r["sum"]))}
    assert apart == {"dot", "broadcast-dot"}


def test_the_records_are_of_an_avx2_processor_and_reach_each_part() -> None:
    meta = DATA["meta"]
    assert meta["cpu_capability"] == "AVX2" and "avx2" in meta["cpu_flags"]
    assert not any(f.startswith("avx512") for f in meta["cpu_flags"]) and ",softmax," not in meta["onednn_softmax"]
    sizes = [r["shape"][0] * r["shape"][1] for r in SOFTMAX if r["dtype"] == "float32"]
    assert max(sizes) > lowp_tf_log.SOFTMAX_BLOCK and any(r["shape"][0] % 8 for r in SOFTMAX)  # (blocks; rcp tails)
    assert any(r["shape"][1] > lowp_tf_focal32.LANES for r in SOFTMAX)
    assert max(r["shape"][1] for r in SUMS if r["kind"] == "dot") > lowp_xla.SLAB  # (the one-lane dot's blocks)


def test_the_softmax_follows_the_capability_read_when_it_runs() -> None:
    # the same logits: under avx2 Eigen's softmax, whose row of one class is rcpps' 1/1 refined, 1 − 2⁻²⁴ over
    # whole packets of 8 rows (by hand: rcpps(1) = 0.99975586 = 1 − 2⁻¹², and e + e(1 − e) = 1 − 2⁻²⁴), and 1/1 = 1
    # for the rows after them; under avx512 oneDNN's true division, 1 in every row
    z = np.zeros((9, 1), dtype=np.float32)
    kind = lowp_tf_log.kind_of(None)
    with cpu.using("avx2"):
        q = lowp_tf_log.softmax(z, kind)
    assert (q[:8] == np.float32(1 - 2.0**-24)).all() and q[8, 0] == 1
    with cpu.using("avx512"):
        assert (lowp_tf_log.softmax(z, kind) == 1).all()
