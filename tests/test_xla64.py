"""triplet under optax in float64 (JAX with jax_enable_x64): XLA's double arithmetic, op by op and under jit
(lowp_xla64), against the results scripts/golden_xla64.py recorded in tests/golden/xla64.json, bit for bit (losses,
values, the three gradients), from memory and a tensor file; the shapes whose order is not pinned down say so and
give lossgrad's formulas; live against JAX where it is installed."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, lossgrad as run
from lossgrad import lowp_xla64

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from golden_pairs64 import digest  # noqa: E402
from golden_xla64 import agrees, inputs, lossgrad_results  # noqa: E402

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "xla64.json").read_text())
RECORDS = DATA["records"]


def _inputs(rec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, p, n = inputs(rec["seed"], tuple(rec["shape"]), rec["kind"])
    assert digest(a, p, n) == rec["inputs_sha256"]  # (the inputs optax was given)
    return a, p, n


def _id(rec: dict) -> str:
    return f"{rec['seed']}-{'jit' if rec['jit'] else 'eager'}-{'x'.join(map(str, rec['shape']))}-q{rec['q']:.3g}" \
           f"-{rec['kind']}"


@pytest.mark.parametrize("rec", [r for r in RECORDS if r["reproduced"] is not False],
                         ids=[_id(r) for r in RECORDS if r["reproduced"] is not False])
def test_results_are_jaxs_float64_bit_for_bit(rec: dict) -> None:
    assert agrees(rec, lossgrad_results(rec, *_inputs(rec)), value=rec["reproduced"] is True)


@pytest.mark.parametrize("rec", [r for r in RECORDS if r["reproduced"] is False],
                         ids=[_id(r) for r in RECORDS if r["reproduced"] is False])
def test_an_order_not_pinned_down_says_so_and_gives_the_formulas(rec: dict) -> None:
    a, p, n = _inputs(rec)
    r = lossgrad_results(rec, a, p, n)["mean"]
    assert any("computed by lossgrad's float64 formulas, not bit for bit" in w for w in r.warnings)
    want = float.fromhex(rec["mean"]["value"])  # (optax's formula in float64: within 1e-12 of JAX's numbers)
    assert np.isclose(r.value, want, rtol=1e-12, atol=0, equal_nan=True)
    if isinstance(rec["mean"]["grad"], list):
        jax_grad = np.array([float.fromhex(v) for v in rec["mean"]["grad"]]).reshape(a.shape)
        assert np.allclose(r.grad, jax_grad, rtol=1e-10, atol=1e-15, equal_nan=True)


def test_the_records_cover_both_modes_every_degree_and_the_sums_orders() -> None:
    for jit in (False, True):
        mine = [r for r in RECORDS if r["jit"] is jit and r["reproduced"] is not False]
        assert {r["q"] for r in mine} >= {2.0, 1.0, 3.0, 1.5, 0.5, 4.0, 2.5}
        assert any(r["shape"][0] * r["shape"][1] >= 4096 for r in mine)  # (YNNPACK's 8 lanes)
        assert any(r["shape"][0] * r["shape"][1] >= 4096 and 64 < r["shape"][1] < 128 for r in mine)  # (two tiles)
        assert any(r["shape"][0] * r["shape"][1] >= 4096 and r["shape"][1] >= 128 for r in mine)  # (tiles of 128)
        assert any(r["shape"][1] > 32 and r["shape"][0] * r["shape"][1] < 4096 for r in mine)  # (windows of 32)
        assert {r["kind"] for r in mine} == {"random", "positive", "equal", "tiny", "subnormal"}
    assert any(r["reproduced"] is None for r in RECORDS)  # (under jit, the fused sum of 2 to 32 losses)
    assert any(r["shape"][1] > 1024 and not r["jit"] for r in RECORDS if r["reproduced"])  # (blocks of 1,024)


def test_the_value_under_jit_over_a_few_losses_is_lossgrads_own_sum_and_says_so() -> None:
    rec = next(r for r in RECORDS if r["reproduced"] is None)
    r = lossgrad_results(rec, *_inputs(rec))["mean"]
    said = "the reduced value is lossgrad's own sum: JAX's float64 sum of"
    assert r.warnings and all(w.startswith(said) for w in r.warnings)


def test_row_sums_by_hand() -> None:
    # windows of 32 in order: 1 + 2^-53 + 2^-53 + ... stays 1 in order, where a pairwise sum would not
    row = np.array([[1.0] + [2.0 ** -53] * 40])
    # (padded to 64, the padding split 11 + 12: the first window is 1 and 20 small ones, added to 1 one at a time;
    # the second holds the other 20, exactly 20·2^-53; then 1 + 20·2^-53)
    assert lowp_xla64.row_sum(row)[0] == 1.0 + 20 * 2.0 ** -53
    # YNNPACK's 8 lanes: element i in lane i mod 8, lanes halved (0+4, 1+5, ...): the 1 and −1 meet before 2^-53 does
    x = np.zeros((64, 64))
    x[:, 0], x[:, 4], x[:, 1] = 1.0, -1.0, 2.0 ** -53
    assert np.all(lowp_xla64.row_sum(x) == 2.0 ** -53)
    # rows of 65 to 127 in two tiles of 64, the second's lanes added onto the first's before the halving: element 64
    # (lane 0 of the second tile) meets element 0 first, so 1 + 2^-53 + 2^-53 in lane 0 stays 1, then −1 from lane 4
    x = np.zeros((64, 100))
    x[:, 0], x[:, 64], x[:, 8], x[:, 4] = 1.0, 2.0 ** -53, 2.0 ** -53, -1.0
    assert np.all(lowp_xla64.row_sum(x) == 0.0)
    # from 128, tiles of 128, each tile's lanes from 0, added tile after tile: elements 128 and 160 (lane 0 of the
    # second tile) make 2^-52 there before they meet the 1 of element 0, which then stays 1 + 2^-52 (added to the
    # running lanes one at a time, each 2^-53 would vanish against the 1)
    assert lowp_xla64.tiles(100) == [64, 36] and lowp_xla64.tiles(200) == [128, 64, 8]
    x = np.zeros((32, 256))
    x[:, 0], x[:, 128], x[:, 160], x[:, 4] = 1.0, 2.0 ** -53, 2.0 ** -53, -1.0
    assert np.all(lowp_xla64.row_sum(x) == 2.0 ** -52)
    # from 1,025, blocks of 1,024: the second block (tiles of 64 and 12) sums its lanes before they meet the first's
    x = np.zeros((4, 1100))
    x[:, 0], x[:, 1024], x[:, 1088], x[:, 4] = 1.0, 2.0 ** -53, 2.0 ** -53, -1.0
    assert np.all(lowp_xla64.row_sum(x) == 2.0 ** -52)
    with pytest.raises(lossgrad.errors.NotReproduced, match="2048 or more"):
        lowp_xla64.row_sum(np.zeros((2, 2048)))
    # a subnormal operand reads as zero (DAZ), below 4,096 elements and from 4,096: 1e−300 + 1e−310 is 1e−300, and
    # 3e−308 − 2e−308 is 3e−308 (2e−308 is below the normal range), where the plain sums give 1e−300 + 1e−310 and 1e−308
    for rows in (2, 64):
        x = np.zeros((rows, 100))
        x[:, 0], x[:, 5], x[:, 7], x[:, 9] = 1e-300, 1e-310, 3e-308, -2e-308
        assert np.all(lowp_xla64.row_sum(x) == 1e-300 + 3e-308)
    assert lowp_xla64.sum2d(np.array([[3e-308, -2e-308], [0.0, 0.0]])) == 3e-308
    assert lowp_xla64.row_sum(np.array([[-0.0], [-0.0]]))[0] == 0 and np.signbit(lowp_xla64.row_sum(
        np.array([[-0.0]]))[0])  # (a reduce over one element is dropped: −0 stays −0)


def test_jit_rewrites_roots_by_hand() -> None:
    h = np.array([4.0, 2.0, -np.inf, 0.0])
    assert np.array_equal(lowp_xla64.jit_pow(h, 0.5), [2.0, np.sqrt(2.0), np.inf, 0.0])
    assert np.array_equal(lowp_xla64.jit_pow(h[:2], 3), [64.0, 8.0])
    assert np.array_equal(lowp_xla64.jit_pow(h[:2], 1), h[:2])


def test_the_command_line_takes_no_jit_in_float64_for_triplet_alone() -> None:
    args = ["-y", "1,0;0.2,0.3", "-p", "0,0;0.5,0.5", "--negative", "0,0.5;1,1", "-c", "optax"]
    eager = run("triplet", *args, "--no-jit", "-f", "json")
    assert eager.code == 0 and '"jit": false' in eager.out and "warning" not in eager.err
    fused = run("triplet", *args)
    assert fused.code == 0 and "--no-jit" in fused.err  # (rows of 2 features under jit: the formulas, and why)
    assert_usage_error(run("mse", "-y", "1", "-p", "0.5", "-c", "optax", "--no-jit"), "error: --no-jit:", "float32")


def test_a_tensor_file_in_blocks_gives_the_batchs_results(tmp_path) -> None:
    rng = np.random.default_rng(9)
    a, p, n = (rng.normal(size=(3000, 40)) for _ in range(3))
    for name, x in (("a", a), ("p", p), ("n", n)):
        np.save(tmp_path / f"{name}.npy", x)
    done = run("triplet", "--pred", str(tmp_path / "a.npy"), "--target", str(tmp_path / "p.npy"), "--negative",
               str(tmp_path / "n.npy"), "-c", "optax", "--no-jit", "-o", str(tmp_path / "out.npz"))
    assert done.code == 0, done.err
    held = lossgrad.evaluate("triplet", p, a, negative=n, convention="optax", jit=False)
    out = np.load(tmp_path / "out.npz")
    assert np.array_equal(out["losses"], held.losses) and np.array_equal(out["grad"], held.grad)
    assert np.array_equal(out["grad_negative"], held.grads["negative"]) and not held.warnings


def test_live_against_jax(live_rng: np.random.Generator) -> None:
    jax = pytest.importorskip("jax")
    pytest.importorskip("optax")
    from golden_xla64 import measure

    try:
        assert measure(12, seed=int(live_rng.integers(1 << 31))).endswith("; 0 rounds apart")
    finally:
        jax.config.update("jax_enable_x64", False)  # (as a user has JAX; measure turns x64 on for the process)


def test_micro_batches_say_where_their_mean_is_lossgrads_own_sum() -> None:
    # 6 samples of 40 features in 3 micro-batches of 2: under jit JAX's mean of each is a fused loop lossgrad does not
    # reproduce (the whole batch's mean of 6 too)
    rng = np.random.default_rng(12)
    a, p, n = (";".join(",".join(f"{v:.6f}" for v in row) for row in rng.normal(size=(6, 40))) for _ in range(3))
    args = ["-p", a, "-y", p, "--negative", n, "-c", "optax", "--micro-batches", "3", "-f", "json"]
    fused, eager = run("triplet", *args), run("triplet", *args, "--no-jit")
    assert fused.code == 0 and "micro-batches 1, 2, 3: the reduced value is lossgrad's own sum" in fused.err
    assert eager.code == 0 and "own sum" not in eager.err


def test_the_multiply_add_is_exact_at_the_edges_of_the_range() -> None:
    """XLA's float64 multiply-adds are the processor's FMA, a·b + c rounded once. SLEEF's error-free steps give it
    but where the product's error term falls below the normal range or a split overflows; lowp_xla64.fused redoes
    those from the exact rationals (float(Fraction) is correctly rounded). Before, gradients of optax's float64 ctc
    near 2^−1022 were an ulp apart, and weights of 1e308 gave NaN gradients."""
    from fractions import Fraction

    from lossgrad.sleef64 import fma as sleef_fma

    rng = np.random.default_rng(20261206)
    a = rng.normal(size=3000) * 2.0 ** rng.integers(-540, -470, 3000)
    b = rng.normal(size=3000) * 2.0 ** rng.integers(-540, -470, 3000)
    c = rng.normal(size=3000) * 2.0 ** rng.integers(-1022, -1000, 3000)
    big = np.array([1e305, 1e308, -1e300]), np.array([0.5, 1.5, 3.0]), np.array([0.0, -1e308, 1.0])
    def processor(u: float, v: float, w: float) -> float:
        # rounded to 53 bits first, and below 2^−1022 then a zero (FTZ); beyond the range infinite
        exact = Fraction(u) * Fraction(v) + Fraction(w)
        if abs(exact) < Fraction(2) ** -1022 - Fraction(2) ** -1076:
            return math.copysign(0.0, exact)
        return float(exact) if abs(exact) < Fraction(2) ** 1024 else math.copysign(math.inf, exact)

    for x, y, z in ((a, b, c), big):
        exact = [processor(u, v, w) for u, v, w in zip(x, y, z, strict=True)]
        assert np.array_equal(lowp_xla64.fused(x, y, z), exact)
        assert np.array_equal(np.signbit(lowp_xla64.fused(x, y, z)), np.signbit(exact))
    assert not np.array_equal(sleef_fma(a, b, c), lowp_xla64.fused(a, b, c))  # (SLEEF's alone misses some)
    assert lowp_xla64.fused(-0.0, 1.0, -0.0) == 0 and np.signbit(lowp_xla64.fused(-0.0, 1.0, -0.0))


def test_a_product_just_below_the_normal_range_is_flushed_as_the_processor_flushes_it() -> None:
    # 2⁻⁵¹¹ · (2⁻⁵¹¹ − 2⁻⁵⁶⁴) = 2⁻¹⁰²²(1 − 2⁻⁵³) exactly: rounded to 53 bits it stays below 2⁻¹⁰²², so the processor
    # (FTZ) gives 0; numpy rounds it onto the subnormal grid, a tie that goes to 2⁻¹⁰²² (worked by hand)
    x, y = 2.0**-511, np.nextafter(2.0**-511, 0)
    tiny = 2.0**-1022
    assert x * y == tiny  # (numpy's rounding)
    assert lowp_xla64.mul(x, y) == 0 and np.signbit(lowp_xla64.mul(-x, y))
    assert lowp_xla64.fused(x, y, 0.0) == 0 and lowp_xla64.fused(x, -y, 0.0) == 0
    # (1 − 2⁻⁵³)/2¹⁰²² is the same number as a quotient
    assert (1 - 2.0**-53) / 2.0**1022 == tiny and lowp_xla64.div(1 - 2.0**-53, 2.0**1022) == 0
    # from 2⁻¹⁰²² − 2⁻¹⁰⁷⁶ up, 53 bits round to 2⁻¹⁰²² itself (a tie goes to the even 2⁻¹⁰²²): kept
    assert lowp_xla64.mul(np.array([x, 2.0**-511]), np.array([2.0**-511, y])).tolist() == [tiny, 0.0]
    assert lowp_xla64.mul(2.0**-500, 2.0**-522) == tiny and lowp_xla64.mul(3.0, 2.0) == 6.0


@pytest.mark.parametrize("jit", [False, True])
def test_sample_weights_are_the_formulas_and_say_so(jit: bool) -> None:
    # JAX's weighted triplet (loss · w, its sum and gradient) is not modelled in float64: the formulas, with a warning
    rng = np.random.default_rng(3)
    a, p, n = (rng.normal(size=(3, 40)) for _ in range(3))
    r = lossgrad.evaluate("triplet", p, a, reduction="sum", convention="optax", dtype="float64", jit=jit,
                          negative=n, sample_weight=np.array([0.5, 2.0, 3.0]))
    assert any("float64 formulas, not bit for bit" in w and "sample_weight" in w for w in r.warnings), r.warnings
