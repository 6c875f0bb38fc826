"""The contrastive loss: a batch worked by hand, its gradients against finite differences and mpmath, optax's
ntxent as recorded in tests/golden/contrastive.json (scripts/golden_contrastive.py), and the CLI's errors."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from reference import contrastive, ulps

GOLDEN = json.loads((Path(__file__).resolve().parent / "golden" / "contrastive.json").read_text())
VARIANTS = [{}, {"symmetric": True}, {"ntxent": True}, {"dot": True}, {"dot": True, "ntxent": True},
            {"decoupled": True}, {"decoupled": True, "symmetric": True}, {"decoupled": True, "ntxent": True},
            {"decoupled": True, "dot": True}]


def test_two_orthogonal_pairs_by_hand():
    # a = p = [[1, 0], [0, 1]], τ = 1: s = I, so row 0's softmax over (s₀₀, s₀₁) = (1, 0) gives the negative
    # q = 1/(1 + e) and ℓ₀ = −log(e/(e + 1)) = log(1 + e⁻¹) = 0.31326168751822286; likewise ℓ₁.
    # ∂Σℓ/∂s₀₀ = −q, ∂Σℓ/∂s₀₁ = q, so ∂/∂â₀ = −q p̂₀ + q p̂₁ = (−q, q); the normalisation removes the part along
    # â₀ = (1, 0): (0, q); the mean over 2 halves it: q/2 = 0.13447071068499755. The positives' by symmetry.
    r = lossgrad.contrastive([[1, 0], [0, 1]], [[1, 0], [0, 1]], temperature=1.0)
    q = 1 / (1 + math.e)
    assert np.allclose(r.losses, [math.log1p(math.exp(-1))] * 2, rtol=1e-15, atol=0)
    assert np.allclose(r.grad, [[0, q / 2], [q / 2, 0]], rtol=1e-15, atol=1e-300)
    assert np.allclose(r.grads["target"], [[0, q / 2], [q / 2, 0]], rtol=1e-15, atol=1e-300)
    # symmetric: the backward direction sees sᵀ = s, the same numbers; ntxent over [a; p] = 4 rows, each with its
    # pair at cosine 1 and two negatives at cosine 0 (the other sample, both copies): ℓ = log(1 + 2e⁻¹)
    assert np.allclose(lossgrad.contrastive([[1, 0], [0, 1]], [[1, 0], [0, 1]], temperature=1.0,
                                            symmetric=True).losses, [math.log1p(math.exp(-1))] * 2, rtol=1e-15)
    assert np.allclose(lossgrad.contrastive([[1, 0], [0, 1]], [[1, 0], [0, 1]], temperature=1.0,
                                            ntxent=True).losses, [math.log1p(2 * math.exp(-1))] * 2, rtol=1e-15)


def test_decoupled_by_hand():
    # DCL on the batch above (a = p = [[1, 0], [0, 1]], τ = 1, s = I): row 0's denominator holds its one negative
    # alone, exp(s₀₁) = 1, so ℓ₀ = −s₀₀ + log 1 = −1. ∂ℓ₀/∂s₀₀ = −1 and ∂ℓ₀/∂s₀₁ = 1 (the negatives' softmax), so
    # ∂/∂â₀ = −p̂₀ + p̂₁ = (−1, 1); less its part along â₀ = (1, 0): (0, 1); the mean over 2 halves it. The
    # positives' by symmetry (p̂₀ sees −1 from s₀₀ and 1 from s₁₀). NT-Xent: each of the 4 rows has its pair at
    # s = 1 and two negatives at s = 0, ℓ = −1 + log 2, and the gradient is the same.
    r = lossgrad.contrastive([[1, 0], [0, 1]], [[1, 0], [0, 1]], temperature=1.0, decoupled=True)
    assert r.losses.tolist() == [-1.0, -1.0] and r.value == -1.0
    assert r.grad.tolist() == [[0, 0.5], [0.5, 0]] and r.grads["target"].tolist() == [[0, 0.5], [0.5, 0]]
    nt = lossgrad.contrastive([[1, 0], [0, 1]], [[1, 0], [0, 1]], temperature=1.0, decoupled=True, ntxent=True)
    assert np.allclose(nt.losses, [math.log(2) - 1] * 2, rtol=1e-15, atol=0)
    assert np.allclose(nt.grad, [[0, 0.5], [0.5, 0]], rtol=1e-15, atol=1e-300)


@pytest.mark.parametrize("kw", VARIANTS)
def test_gradients_match_finite_differences(kw):
    rng = np.random.default_rng(7)
    y, p = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    r = lossgrad.contrastive(y, p, temperature=0.5, reduction="sum", **kw)

    def total(yy, pp):
        return lossgrad.contrastive(yy, pp, temperature=0.5, reduction="sum", **kw).value

    h = 1e-6
    for which, grad in (("p", r.grad), ("y", r.grads["target"])):
        fd = np.zeros_like(grad)
        for idx in np.ndindex(*grad.shape):
            step = np.zeros_like(grad)
            step[idx] = h
            up = total(y + step, p) if which == "y" else total(y, p + step)
            down = total(y - step, p) if which == "y" else total(y, p - step)
            fd[idx] = (up - down) / (2 * h)
        assert np.allclose(grad, fd, rtol=1e-6, atol=1e-8), which


ADVERSARIAL = [
    # nearly parallel anchors and positives (cosines 1 − 1e−9 apart) at a large 1/τ
    ([[1.0, 1e-5, 0.0], [1.0, 0.0, 1e-5]], [[1.0, 1.1e-5, 0.0], [1.0, 0.0, 0.9e-5]], 0.01),
    ([[3.0, 4.0], [4.0, 3.0], [-1.0, 2.0]], [[3.0, 4.000001], [4.0, 2.999999], [-1.0, 2.1]], 0.002),
    ([[0.3, -1.2, 2.5], [1e-3, 2.0, -0.5]], [[0.31, -1.2, 2.5], [1e-3, 2.0, -0.49]], 0.07),
    # each positive 1e−12 from its anchor's direction, every anchor 1e−5 from one direction (the softmax flat, the
    # gradient a small difference of large terms), and an anti-parallel pair at a large τ
    ([[1.0, 2.0, 3.0], [1.00001, 2.0, 3.0], [1.0, 2.00001, 3.0]],
     [[2.0, 4.0, 6.000000000012], [0.5000050000000001, 1.0, 1.5], [3.0, 6.00003, 9.00000000001]], 0.05),
    ([[1.0, -2.0], [0.5, 0.25], [-3.0, 1.0]], [[-1.0, 2.0000000001], [0.5, 0.25], [1.0, 1.0]], 100.0),
]


def _strict(got, truth):
    return max(ulps(g, t) for gr, tr in zip(got, truth, strict=True) for g, t in zip(gr, tr, strict=True))


@pytest.mark.parametrize("a, p, tau", ADVERSARIAL)
@pytest.mark.parametrize("variant", ["infonce", "clip", "ntxent"])
@pytest.mark.parametrize("decoupled", [False, True])
def test_exact_within_4_ulp_of_mpmath(a, p, tau, variant, decoupled):
    losses, ga, gp = contrastive(a, p, tau, variant, decoupled=decoupled)
    r = lossgrad.contrastive(p, a, temperature=tau, reduction="sum", ntxent=variant == "ntxent",
                             symmetric=variant == "clip", decoupled=decoupled)
    assert max(ulps(got, truth) for got, truth in zip(r.losses, losses, strict=True)) <= 4
    # every cell, however far below its row's size (benchmarks/accuracy.py measures the same on random batches)
    assert _strict(r.grad, ga) <= 4
    assert _strict(r.grads["target"], gp) <= 4


# the decoupled loss where it cancels: a positive a cosine 1.5e−16 ahead of its one negative; and in dot products, two
# negatives each log 2 behind the positive (as near as doubles come), so the row's loss is log(1 + a rounding)
NEAR_ZERO = [
    ([[1.0, 0.0], [0.0, 1.0]], [[1.0, 1e-8], [1.0, 2e-8]], 0.07, False),
    ([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], [[1.0, 0.0], [1 - math.log(2), 5.0], [1 - math.log(2), -5.0]], 1.0, True),
]


@pytest.mark.parametrize("a, p, tau, dot", NEAR_ZERO)
@pytest.mark.parametrize("variant", ["infonce", "clip", "ntxent"])
def test_decoupled_near_zero_within_4_ulp_of_mpmath(a, p, tau, dot, variant):
    losses, ga, gp = contrastive(a, p, tau, variant, dot=dot, decoupled=True)
    r = lossgrad.contrastive(p, a, temperature=tau, reduction="sum", ntxent=variant == "ntxent",
                             symmetric=variant == "clip", decoupled=True, dot=dot)
    assert max(ulps(got, truth) for got, truth in zip(r.losses, losses, strict=True)) <= 4
    assert _strict(r.grad, ga) <= 4 and _strict(r.grads["target"], gp) <= 4


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=[c["name"] for c in GOLDEN["cases"]])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_optax_ntxent_golden(case, dtype):
    want = case[dtype]
    r = lossgrad.contrastive(case["target"], case["pred"], convention="optax", ntxent=True, dtype=dtype,
                             temperature=case["temperature"])
    # optax's own order of operations, in the dtype; the gradient is softmax − one-hot formed in the dtype, where
    # jax differentiates optax's steps, so it agrees to the dtype's rounding rather than bit for bit
    vtol, rtol, atol = (2e-15, 1e-12, 1e-16) if dtype == "float64" else (1e-6, 1e-6, 1e-7)
    assert np.isclose(r.value, want["value"], rtol=vtol, atol=0)
    assert np.allclose(r.grad, want["grad"], rtol=rtol, atol=atol)
    assert np.allclose(r.grads["target"], want["grad_target"], rtol=rtol, atol=atol)


@pytest.mark.parametrize("args, where, words", [
    (["--convention", "torch"], "--convention", "F.cross_entropy on the similarity logits"),
    (["--convention", "keras"], "--convention", "Keras has no contrastive loss"),
    (["--convention", "optax"], "--convention", "optax's only contrastive loss is ntxent, SimCLR's (give --ntxent)"),
    (["--convention", "optax", "--symmetric"], "--convention", "drop --symmetric"),
    (["--ntxent", "--symmetric"], "--ntxent", "two different losses"),
    (["--convention", "optax", "--ntxent", "--decoupled"], "--convention", "has no decoupled loss (drop --decoupled)"),
    (["--decoupled", "--pred", "1,0", "--target", "0,1"], "--decoupled", "give at least 2 samples"),
    (["--pred", "1,0;0,0"], "--pred", "starts a row of zeros"),
])
def test_cli_errors(args, where, words):
    base = {"--pred": "1,0;0,1", "--target": "1,0;0,1"}
    rest = []
    for i, a in enumerate(args):
        if a in base and i + 1 < len(args):
            base[a] = args[i + 1]
        elif i == 0 or args[i - 1] not in base:
            rest.append(a)
    r = run("contrastive", "--pred", base["--pred"], "--target", base["--target"], *rest)
    assert r.code == 2 and r.out == ""
    assert r.err.startswith(f"error: {where}") and words in r.err and r.err.count("\n") == 1


def test_csv_batches_are_refused(tmp_path):
    f = tmp_path / "b.csv"
    f.write_text("a,b,c,d\n1,0,1,0\n0,1,0,1\n")
    r = run("contrastive", "--csv", f, "--pred-cols", "a,b", "--target-cols", "c,d")
    assert r.code == 2 and r.out == "" and "depends on every row" in r.err


def test_whole_batch_in_one_slice(monkeypatch):
    from lossgrad import evaluation

    rng = np.random.default_rng(3)
    y, p = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    whole = lossgrad.contrastive(y, p)
    monkeypatch.setattr(evaluation, "SLICE_ROWS", 2)
    assert np.array_equal(lossgrad.contrastive(y, p).losses, whole.losses)


def test_tensor_files_take_the_batch_as_one_block(tmp_path, monkeypatch, capsys):
    from lossgrad import cli, tensor_run

    rng = np.random.default_rng(5)
    y, p = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "p.npy", p)
    monkeypatch.setattr(tensor_run, "BLOCK_BYTES", 8 * 3 * 2)  # two rows a block, for a loss that could be cut
    out = tmp_path / "out.npz"
    with pytest.raises(SystemExit) as e:
        cli.main(["contrastive", "-p", str(tmp_path / "p.npy"), "-y", str(tmp_path / "y.npy"), "-o", str(out),
                  "-f", "json"])
    assert e.value.code == 0
    whole = lossgrad.contrastive(y, p)
    assert json.loads(capsys.readouterr().out)["value"] == whole.value
    assert np.array_equal(np.load(out)["grad"], whole.grad)
