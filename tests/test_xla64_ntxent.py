"""contrastive --ntxent under optax in float64 (JAX with jax_enable_x64), op by op: XLA's double arithmetic
(lowp_xla64_ntxent) against the results scripts/golden_xla64_ntxent.py recorded in tests/golden/xla64_ntxent.json,
bit for bit (the per-sample losses, the value, the gradients for the anchors and the positives); under jit, and
where a sum's order is not pinned down, lossgrad says so and gives its formulas; live against JAX where it is
installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad import cpu, lowp_xla64, lowp_xla64_ntxent

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_pairs64 import digest  # noqa: E402
from golden_xla64_ntxent import agrees, inputs, lossgrad_results  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "xla64_ntxent.json").read_text())
RECORDS = DATA["records"]
RECORDED_ON = "avx512" if DATA["versions"]["avx512"] else "avx2"  # (LLVM's lanes in the value's sum)


def _inputs(rec: dict) -> tuple[np.ndarray, np.ndarray]:
    a, p = inputs(rec["seed"], tuple(rec["shape"]), rec["kind"])
    assert digest(a, p) == rec["inputs_sha256"]  # (the inputs optax was given)
    return a, p


def _id(rec: dict) -> str:
    return f"{rec['seed']}-{'jit' if rec['jit'] else 'eager'}-{'x'.join(map(str, rec['shape']))}-{rec['kind']}"


KEPT = [r for r in RECORDS if r["reproduced"] is not False]
REFUSED = [r for r in RECORDS if r["reproduced"] is False]


@pytest.mark.parametrize("rec", KEPT, ids=[_id(r) for r in KEPT])
def test_results_are_jaxs_float64_bit_for_bit(rec: dict) -> None:
    assert agrees(rec, lossgrad_results(rec, *_inputs(rec), RECORDED_ON), value=rec["reproduced"] is True)


@pytest.mark.parametrize("rec", REFUSED, ids=[_id(r) for r in REFUSED])
def test_jit_and_orders_not_pinned_down_say_so_and_give_the_formulas(rec: dict) -> None:
    a, p = _inputs(rec)
    r = lossgrad_results(rec, a, p)["mean"]
    assert any("computed by lossgrad's float64 formulas, not bit for bit" in w for w in r.warnings)
    assert not rec["jit"] or any("--no-jit" in w for w in r.warnings)
    assert np.isclose(r.value, float.fromhex(rec["value"]), rtol=1e-12, atol=0)  # (optax's formula in float64)
    if isinstance(rec["grad"], list):
        jax_grad = np.array([float.fromhex(v) for v in rec["grad"]]).reshape(a.shape)
        assert np.allclose(r.grad, jax_grad, rtol=1e-9, atol=1e-15)


def test_the_records_cover_the_sums_orders_and_the_edges() -> None:
    shapes = [(2 * r["shape"][0], r["shape"][1]) for r in KEPT]  # (N = 2B rows of d features)
    assert any(d == 1 for _, d in shapes)  # (x/‖x‖ as a quotient)
    assert any(n * n * d >= 4096 for n, d in shapes)  # (YNNPACK's row sums and its sums over the partner rows)
    assert any(n * n * d >= 4096 and 64 < d < 128 for n, d in shapes) and any(64 < n < 128 for n, _ in shapes)
    assert any(d >= 1025 for _, d in shapes) and any(n >= 128 for n, _ in shapes)  # (YNNPACK's tiles and blocks)
    assert any(d > 32 and n * n * d < 4096 for n, d in shapes)  # (XLA's windows of 32)
    assert any(32 < n < 64 for n, _ in shapes)  # (the value's matrix in windows of 32 × 32)
    assert {r["kind"] for r in KEPT} >= {"random", "near", "opposite", "scaled", "tiny", "subnormal", "equal",
                                         "spread"}
    assert any(r["reproduced"] is None for r in KEPT) and any(r["jit"] for r in REFUSED)


def test_on_avx512_the_value_is_lossgrads_own_sum_and_says_so_but_the_rest_stays_jaxs() -> None:
    rec = next(r for r in KEPT if r["reproduced"] is True and r["shape"][0] >= 2)
    results = lossgrad_results(rec, *_inputs(rec), "avx512" if RECORDED_ON == "avx2" else "avx2")
    r = results["mean"]
    assert r.warnings == [w for w in r.warnings if w.startswith("the reduced value is lossgrad's own sum")] != []
    assert agrees(rec, results, value=False)
    one = next(r for r in KEPT if r["shape"][0] == 1)  # (one pair: two non-zero elements, in any order the same)
    assert agrees(one, lossgrad_results(one, *_inputs(one), "avx512"))


JIT_KEPT = [r for r in KEPT if r["jit"]]


def test_the_jit_records_cover_the_fused_kernels_rules() -> None:
    shapes = [(2 * r["shape"][0], r["shape"][1]) for r in JIT_KEPT]
    assert all(d > lowp_xla64_ntxent.FUSED_UP_TO for _, d in shapes)
    assert any(n * n * d < 4096 for n, d in shapes)  # (the partner sums as FMA chains)
    assert any(n > 16384 // d for n, d in shapes)  # (the sum over the partners j in slices of 16384 // d rows)
    assert any(18 <= n <= 32 for n, _ in shapes) and any(n < 18 for n, _ in shapes)  # (the value's two orders)
    assert any(r["reproduced"] is None for r in JIT_KEPT)  # (a 2B × 2B matrix of 4,096 or more: the value warned)


@pytest.mark.parametrize("rule", ["value", "runs", "positive", "norm"])
def test_without_each_jit_rule_records_are_apart(rule: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fused = lowp_xla64_ntxent.Fused64
    if rule == "value":  # (op by op's sum2d from 18 to 32 rows)
        monkeypatch.setattr(fused, "value", lowp_xla64_ntxent.Ntxent64.value)
    elif rule == "runs":  # (the sum over the partners j in one run, as op by op)
        chains = fused.partner_sums
        monkeypatch.setattr(fused, "partner_sums", lambda self, g: lowp_xla64_ntxent.Ntxent64.partner_sums(self, g)
                            if g.size * self.e.shape[1] >= 4096 else chains(self, g))
    elif rule == "positive":  # (G·eˣ − c rounded twice)
        monkeypatch.setattr(fused, "at_positive", lowp_xla64_ntxent.Ntxent64.at_positive)
    else:  # (the norm's backward pass as op by op)
        monkeypatch.setattr(fused, "through_norm", lowp_xla64_ntxent.Ntxent64.through_norm)
    assert not all(agrees(r, lossgrad_results(r, *_inputs(r), RECORDED_ON), value=r["reproduced"] is True)
                   for r in JIT_KEPT)


def test_sum2d_by_hand() -> None:
    with cpu.using("avx2"):
        # 4 rows of 2 in 4 lanes (row i in lane i mod 4), halved (0+2, 1+3): 1 and −1 meet before 2^-53 does
        x = np.array([[1.0, 0.0], [2.0 ** -53, 0.0], [-1.0, 0.0], [2.0 ** -53, 0.0]])
        assert lowp_xla64.sum2d(x) == 2.0 ** -52
        # 3 rows: no lanes, in order: 1 + 2^-53 rounds to 1 (a tie to even), then − 1
        assert lowp_xla64.sum2d(x[:3]) == 0.0
        # 63 columns, padded at the end to two windows of 32: each window's first 31 columns, then its 32nd, in
        # order, 1 + 2^-53 + 2^-53 stays 1 (summed pairwise first, the two 2^-53 would make 1 + 2^-52)
        row = np.zeros((1, 63))
        row[0, 0], row[0, 30], row[0, 31] = 1.0, 2.0 ** -53, 2.0 ** -53
        assert lowp_xla64.sum2d(row) == 1.0
    with cpu.using("avx512"), pytest.raises(lossgrad.errors.NotReproduced, match="AVX2"):
        lowp_xla64.sum2d(x)


def test_exp_by_hand() -> None:
    lo, hi = lowp_xla64.EXP_LO, lowp_xla64.EXP_HI
    got = lowp_xla64.exp(np.array([0.0, -0.0, np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf), -np.inf, np.inf,
                                   np.nan, 1e-20]))
    assert np.array_equal(got, [1.0, 1.0, 0.0, np.inf, 0.0, np.inf, np.nan, 1.0], equal_nan=True)


def test_the_command_line_is_jaxs_op_by_op_and_says_why_not_under_jit() -> None:
    args = ["-y", "1,2;3,1;0.5,0.5", "-p", "1,1;2,1;-1,0.3", "-c", "optax", "--ntxent", "--cpu", "avx2"]
    eager = run("contrastive", *args, "--no-jit", "-f", "json")
    assert eager.code == 0 and '"jit": false' in eager.out and "warning" not in eager.err
    fused = run("contrastive", *args)
    assert fused.code == 0 and "--no-jit" in fused.err and "under jit" in fused.err and "32 features" in fused.err
    wide = [";".join(",".join(str(v) for v in row) for row in np.eye(3, 40) * k) for k in (1, 2)]
    jit = run("contrastive", "-y", wide[0], "-p", wide[1], "-c", "optax", "--ntxent", "--cpu", "avx2", "-f", "json")
    assert jit.code == 0 and '"jit": true' in jit.out and "warning" not in jit.err


def test_live_against_jax(live_rng: np.random.Generator) -> None:
    jax = pytest.importorskip("jax")
    pytest.importorskip("optax")
    from golden_xla64_ntxent import measure

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("LOSSGRAD_CPU", cpu.detected())  # (this machine's processor, as JAX runs on it)
            assert measure(6, seed=int(live_rng.integers(1 << 31))).endswith("; 0 rounds apart")
    finally:
        jax.config.update("jax_enable_x64", False)  # (as a user has JAX; measure turns x64 on for the process)
