"""`compare --jit/--no-jit`: optax's column is JAX's numbers under jax.jit or op by op, as `-c optax` gives them on
their own (whose kernels the golden tests hold to JAX's); elsewhere the switch is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_usage_error, lossgrad as run

NTXENT = ["contrastive", "--ntxent", "-y", "1,0;0,1;1,1", "-p", "0.9,0.1;0.2,0.8;1,0.5"]
MSE = ["mse", "-y", "1,2,3", "-p", "0.5,2.5,2"]


@pytest.fixture
def gap() -> list[str]:
    """triplet with norm degree 255 over 2 rows of 10 features in float16: under jit x^255 takes 14 products, so
    refused (op by op reproduced). The differences are 0.98 to 1.02, so that x^255 and its slope stay in float16's
    range and positive."""
    rng = np.random.default_rng(5)
    anchors = np.round(rng.normal(size=(2, 10)), 2)
    positives = anchors - np.round(rng.uniform(1.0, 1.02, size=(2, 10)), 2)
    negatives = anchors - np.round(rng.uniform(0.98, 1.0, size=(2, 10)), 2)

    def text(x: np.ndarray) -> str:
        return ";".join(",".join(f"{v:.2f}" for v in row) for row in x)
    return ["triplet", "--norm-degree", "255", "-y", text(positives), "-p", text(anchors), "--negative",
            text(negatives), "--dtype", "float16"]


def _compare(*args: str) -> dict:
    r = run("compare", *args, "-f", "json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def _alone(*args: str) -> dict:
    r = run(*args, "-c", "optax", "-f", "json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_no_jit_brings_optax_into_a_half_precision_comparison(gap: list[str]) -> None:
    under_jit = _compare(*gap)
    assert "optax" not in under_jit["conventions"] and "jit" in under_jit["unsupported"]["optax"]
    op_by_op = _compare(*gap, "--no-jit")
    alone = _alone(*gap, "--no-jit")
    optax = op_by_op["conventions"]["optax"]
    for key in ("value", "losses", "grad"):
        assert optax[key] == alone[key], key


def test_optax_under_jit_in_bfloat16_is_in_the_comparison() -> None:
    # (XLA's fused bfloat16 kernels, reproduced: the column is -c optax's own numbers, and differs from op by op's)
    comp = _compare(*NTXENT, "--dtype", "bfloat16")["conventions"]["optax"]
    alone = _alone(*NTXENT, "--dtype", "bfloat16")
    assert all(comp[key] == alone[key] for key in ("value", "grad", "grad_target"))
    assert comp["grad"] != _alone(*NTXENT, "--dtype", "bfloat16", "--no-jit")["grad"]


def test_the_switch_reaches_optax_in_float32_and_only_optax() -> None:
    for jit in ("--jit", "--no-jit"):
        comp = _compare(*MSE, "--dtype", "float32", jit)
        alone = _alone(*MSE, "--dtype", "float32", jit)
        assert comp["conventions"]["optax"]["grad"] == alone["grad"]
        assert comp["conventions"]["optax"]["value"] == alone["value"]
        assert {"torch", "keras"} <= comp["conventions"].keys()  # (the others take no such switch, and run)


def test_the_switch_is_refused_in_float64() -> None:
    assert_usage_error(run("compare", *MSE, "--no-jit"), "error: --no-jit:", "float32")


def _optax_grad(*args: str) -> str:
    grad = _alone(*args)["grad"]
    return ",".join(repr(float(v)) for row in grad for v in (row if isinstance(row, list) else [row]))


def test_check_weighs_optax_in_the_mode_asked(gap: list[str]) -> None:
    # triplet with norm degree 255 over rows of 10 features in float16: JAX's numbers op by op are reproduced, under
    # jit they are not; a gradient taken from optax op by op matches optax exactly with --no-jit, and without it check
    # says why optax was left out
    grad = _optax_grad(*gap, "--no-jit")
    r = run("check", *gap, "--no-jit", "--my-grad", grad, "-f", "json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["match"]["convention"] == "optax"
    assert any("matches optax in float16 op by op exactly" in f for f in out["findings"]), out["findings"]
    assert not any(f.startswith("optax was not weighed") for f in out["findings"])
    out = json.loads(run("check", *gap, "--my-grad", grad, "-f", "json").out)
    assert (out["match"] or {}).get("convention") != "optax"
    assert out["findings"][-1].startswith("optax was not weighed: --dtype: JAX's triplet_margin_loss with "
                                          "norm_degree 255 under jit is not reproduced (x^255 takes 14")
    assert "--no-jit" in out["findings"][-1]


def test_check_json_gives_the_mode_and_refuses_it_in_float64() -> None:
    grad = _optax_grad(*MSE, "--dtype", "float32", "--no-jit")
    r = run("check", *MSE, "--dtype", "float32", "--no-jit", "--my-grad", grad, "-c", "optax", "-f", "json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["match"]["convention"] in {"exact", "optax", "torch", "keras", "tf-keras"}
    assert_usage_error(run("check", *MSE, "--jit", "--my-grad", grad), "--jit", "float32")
