"""contrastive where a row of the anchors or the positives is all zeros: the exact convention refuses it (the cosine
of a zero vector is undefined) and says which conventions have it; optax's ntxent clips the squared norm at ε, and
lossgrad gives JAX's results there bit for bit (tests/golden/ntxent_zero.json, recorded with AVX2 by
scripts/golden_ntxent_zero.py), in float32, float16 and bfloat16 op by op and under jit, and in float64 op by op and
under jit for rows of more than 32 features; under jit with fewer its formulas, as it says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, golden_script, live_rounds, lossgrad as run
from lossgrad.errors import InputError

DATA = json.loads((Path(__file__).resolve().parent / "golden" / "ntxent_zero.json").read_text())
RECORDS = DATA["records"]
zero_inputs = golden_script("golden_ntxent_zero").zero_inputs


def _inputs(rec: dict) -> tuple[np.ndarray, np.ndarray]:
    b, d = rec["shape"]
    return zero_inputs(rec["seed"], b, d, tuple(rec["zero_a"]), tuple(rec["zero_p"]), rec["dtype"])


def _run(rec: dict, reduction: str = "mean", cpu: str | None = "avx2") -> lossgrad.Result:
    a, p = _inputs(rec)
    return lossgrad.contrastive(p, a, ntxent=True, temperature=rec["temperature"], convention="optax",
                                dtype=rec["dtype"], jit=rec["jit"], reduction=reduction, cpu=cpu)


def _id(rec: dict) -> str:
    return (f"{rec['seed']}-{rec['dtype']}-{'jit' if rec['jit'] else 'ops'}-{'x'.join(map(str, rec['shape']))}"
            f"-a{rec['zero_a']}-p{rec['zero_p']}".replace(" ", ""))


def _f32(values: list) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _f64(values: list) -> np.ndarray:
    return np.array([float.fromhex(v) for v in values])


def _same(got: object, want: np.ndarray) -> bool:
    """Bit for bit, in the record's width (float32 for the dtypes of 32 bits and less)."""
    a = np.asarray(got, dtype=want.dtype).reshape(-1)
    return bool(np.array_equal(a.view(f"i{a.itemsize}"), want.reshape(-1).view(f"i{a.itemsize}")))


LOW = [r for r in RECORDS if r["dtype"] != "float64"]
EAGER64 = [r for r in RECORDS if r["dtype"] == "float64" and not r["jit"]]
FUSED64 = [r for r in RECORDS if r["dtype"] == "float64" and r["jit"] and r["shape"][1] > 32]
JIT64 = [r for r in RECORDS if r["dtype"] == "float64" and r["jit"] and r["shape"][1] <= 32]


@pytest.mark.parametrize("rec", LOW, ids=[_id(r) for r in LOW])
def test_float32_and_halves_are_jaxs_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    assert not r.warnings, r.warnings
    assert _same(r.grad, _f32(rec["grad"])) and _same(r.grads["target"], _f32(rec["grad_target"]))
    assert np.float32(r.value) == np.float32(rec["value"])
    if rec["losses"] is not None:
        assert _same(_run(rec, "none").losses, _f32(rec["losses"]))


@pytest.mark.parametrize("rec", EAGER64 + FUSED64, ids=[_id(r) for r in EAGER64 + FUSED64])
def test_float64_op_by_op_and_rows_of_more_than_32_under_jit_are_jaxs_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    assert not r.warnings, r.warnings
    assert _same(r.grad, _f64(rec["grad"])) and _same(r.grads["target"], _f64(rec["grad_target"]))
    assert _same(r.value, _f64([rec["value"]]))
    assert rec["losses"] is None or _same(_run(rec, "none").losses, _f64(rec["losses"]))  # (jit: the value alone)


@pytest.mark.parametrize("rec", JIT64, ids=[_id(r) for r in JIT64])
def test_float64_under_jit_with_32_features_or_fewer_gives_the_formulas_and_says_so(rec: dict) -> None:
    r = _run(rec)
    assert any("--no-jit" in w for w in r.warnings)
    assert np.isclose(r.value, float.fromhex(rec["value"]), rtol=1e-13, atol=0)
    for got, want in ((r.grad, rec["grad"]), (r.grads["target"], rec["grad_target"])):
        assert np.allclose(np.ravel(got), _f64(want), rtol=1e-10, atol=0)


def test_a_zero_rows_gradient_is_the_gradient_over_root_epsilon() -> None:
    # a zero row's norm is clipped to √ε, a constant: its cosines are all 0 and its gradient is Σⱼ gⱼ·ûⱼ/(τ√ε), so
    # its size is that of a unit row's gradient times 1/√ε (2^26 in float64)
    rec = next(r for r in EAGER64 if r["shape"] == [3, 4] and r["zero_a"] == [0])
    grad = _f64(rec["grad"]).reshape(3, 4)
    assert 2.0**20 < np.abs(grad[0]).max() < 2.0**30 and np.abs(grad[1:]).max() < 2.0**6
    losses = _f64(rec["losses"])
    assert np.all(np.isfinite(losses))


def test_every_row_zero_is_log_of_the_other_rows() -> None:
    # every cosine 0: each row's loss is log(Σ over its 2B − 1 partners of e⁰) = log(2B − 1), worked by hand
    rec = next(r for r in EAGER64 if r["zero_a"] == [0, 1] and r["zero_p"] == [0, 1])
    assert rec["shape"] == [2, 3]
    assert np.allclose(_f64(rec["losses"]), np.log(3.0), rtol=1e-15, atol=0)
    assert np.all(_f64(rec["grad"]) == 0) and np.all(_f64(rec["grad_target"]) == 0)


def test_the_records_cover_each_dtype_mode_and_edge() -> None:
    assert {(r["dtype"], r["jit"]) for r in RECORDS} == {(d, j) for d in ("float32", "float16", "bfloat16",
                                                                          "float64") for j in (False, True)}
    assert any(r["zero_a"] and r["zero_a"] == r["zero_p"] for r in RECORDS)  # a pair both zero
    assert any(2 * r["shape"][0] >= 16 for r in RECORDS)  # LLVM's vectorized partner sums
    assert FUSED64 and JIT64
    assert DATA["versions"]["jax"] and "avx512f" not in DATA["versions"]["cpu_flags"]


@pytest.mark.parametrize("variant", [[], ["--symmetric"], ["--ntxent"], ["--decoupled"]])
@pytest.mark.parametrize("which", ["--pred", "--target"])
def test_the_exact_convention_refuses_a_zero_row(variant: list[str], which: str) -> None:
    given = {"--pred": "1,2;3,1;2,2", "--target": "1,0;3,1;1,1"}
    given[which] = given[which].replace("3,1", "0,0")
    r = run("contrastive", "--pred", given["--pred"], "--target", given["--target"], *variant)
    assert_usage_error(r, f"error: {which}: row 2", "starts a row of zeros", "--dot",
                       "--convention optax --ntxent")


def test_dot_products_take_a_zero_row() -> None:
    r = lossgrad.contrastive(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 0.0], [1.0, 2.0]]), dot=True)
    # row 0's similarities are all 0: its loss is log 2, worked by hand
    assert np.isclose(r.losses[0], np.log(2.0), rtol=1e-15)


def test_the_api_raises_an_input_error_where_the_row_is() -> None:
    with pytest.raises(InputError) as e:
        lossgrad.contrastive(np.ones((3, 2)), np.array([[1.0, 2.0], [1.0, 1.0], [0.0, 0.0]]), ntxent=True)
    assert e.value.where == "{pred}[2, 0]" and "starts a row of zeros" in e.value.what


def test_the_command_line_gives_optax_there() -> None:
    rec = next(r for r in LOW if r["dtype"] == "float32" and not r["jit"] and r["shape"] == [3, 4])
    a, p = _inputs(rec)
    text = [";".join(",".join(repr(float(v)) for v in row) for row in x) for x in (a, p)]
    r = run("contrastive", "--ntxent", "--convention", "optax", "--dtype", "float32", "--no-jit", "--cpu", "avx2",
            "--temperature", str(rec["temperature"]), "--pred", text[0], "--target", text[1], "--format", "json")
    assert r.code == 0, r.err
    assert np.float32(json.loads(r.out)["value"]) == np.float32(rec["value"])


@pytest.mark.frameworks
def test_random_zero_rows_against_live_jax(live_rng: np.random.Generator) -> None:
    import jax

    golden = golden_script("golden_lowp_xla_ntxent", "jax", "optax")
    for _ in range(live_rounds(4, 40)):
        b, d = int(live_rng.integers(1, 17)), int(live_rng.integers(1, 40))
        a, p = live_rng.standard_normal((b, d)), live_rng.standard_normal((b, d))
        a[live_rng.integers(0, b)] = 0.0
        if live_rng.random() < 0.5:
            p[live_rng.integers(0, b)] = 0.0
        dtype, jit = str(live_rng.choice(["float32", "float16", "bfloat16"])), bool(live_rng.random() < 0.5)
        with jax.enable_x64(False):
            rec = golden.record(golden._rounded(a, dtype), golden._rounded(p, dtype), 0.5, dtype, jit)
        r = lossgrad.contrastive(golden._rounded(p, dtype), golden._rounded(a, dtype), ntxent=True, temperature=0.5,
                                 convention="optax", dtype=dtype, jit=jit)
        if not r.warnings:
            assert _same(r.grad, _f32(rec["grad"])) and _same(r.grads["target"], _f32(rec["grad_target"])), (b, d)
            assert np.float32(r.value) == np.float32(rec["value"])
