"""triplet under the torch convention in float32, float16 and bfloat16, cosine-embedding and cosine in float16 and
bfloat16, against PyTorch's own CPU results recorded by scripts/golden_lowp_pairs.py in
tests/golden/lowp_pairs.json: losses, value and every gradient bit for bit, in memory, from a CSV batch and from
tensor files; why float32 cosine-embedding stays on its formulas (torch's float32 square root is MKL's); and,
with PyTorch installed, fresh random inputs live."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lossgrad
from conftest import lossgrad as run
from lossgrad import kernels, lowp, lowp_focal, lowp_pairs, mkl, options
from test_lowp_more import assert_torch_results, record_ids, values

GOLDEN = Path(__file__).resolve().parent / "golden" / "lowp_pairs.json"
DATA = json.loads(GOLDEN.read_text())
FURTHER = {"triplet": ("target", "negative"), "cosine-embedding": ("target",), "cosine": ()}  # (differentiated)


def _half(dtype: str) -> object:
    """The numpy type lossgrad's kernels carry a dtype in (None: float32)."""
    return None if dtype == "float32" else lowp.half_dtype(dtype)


def _inputs(rec: dict) -> dict[str, np.ndarray]:
    """The record's further inputs (negative, label) as lossgrad takes them."""
    return {k: values(rec[k], rec["dtype"]).astype(np.float64) for k in ("negative", "label") if k in rec}


def _run(rec: dict) -> lossgrad.Result:
    dtype = rec["dtype"]
    return lossgrad.evaluate(rec["loss"], values(rec["target"], dtype).astype(np.float64),
                             values(rec["pred"], dtype).astype(np.float64), convention="torch", dtype=dtype,
                             reduction=rec["reduction"], **_inputs(rec), **rec["options"])



@pytest.mark.parametrize("rec", DATA["records"], ids=record_ids(DATA["records"]))
def test_torch_kernels_bit_for_bit(rec: dict) -> None:
    r = _run(rec)
    assert options.setup(rec["loss"], convention="torch", dtype=rec["dtype"]).lowp
    got = {"grad": r.grad, "losses": r.losses, "value": r.value}
    got.update({f"grad_{k}": r.grads[k] for k in FURTHER[rec["loss"]]})
    assert all(rec.get(k) is not None for k in got if k not in ("losses", "value"))
    assert_torch_results(got, rec)


def test_golden_records_torch_and_the_instruction_set() -> None:
    assert DATA["versions"]["torch"].startswith("2.13.0")
    assert DATA["versions"]["cpu_capability"] == "AVX512"
    recs = DATA["records"]
    # every scalar tail of the norm kernel (n mod 8 for float32, n mod 16 for bfloat16) has a record
    assert {np.shape(r["pred"])[1] % 16 for r in recs if r["loss"] == "triplet"} >= {0, 1, 3, 4, 5, 7}
    # a tie in swap's minimum (anchor = positive: d(a, neg) = d(pos, neg)) and a clamped sample are recorded
    ties = [r for r in recs if r["loss"] == "triplet" and r["options"]["swap"] and r["name"] == "adversarial"]
    assert ties and all(r["pred"][0] == r["target"][0] for r in ties)
    assert any((values(r["losses"], r["dtype"]) == 0).any() for r in recs if r["losses"] is not None)
    # float16 rounds cosine_embedding_loss's ε to 0: a zero row is 0/0 there, as torch gives it
    zero = [r for r in recs if r["loss"] == "cosine-embedding" and r["dtype"] == "float16" and r["losses"]
            and r["name"] == "adversarial"]
    assert zero and all(np.isnan(values(r["losses"], "float16")[0]) for r in zero)


def test_float32_sqrt_is_mkls_so_float32_cosine_needs_mkl() -> None:
    # torch's float32 square root (MKL's vmsSqrt) is not the correctly rounded one on the recorded inputs (about
    # one in six of 20,000): float32 cosine-embedding and cosine are reproduced with MKL's own root where the mkl
    # extra is installed (tests/test_newer_float32.py holds them to PyTorch's bits), and stay on their formulas
    # where it is not
    rec = DATA["float32_sqrt"]
    x, want = values(rec["x"], "float32"), values(rec["sqrt"], "float32")
    assert len(x) and not np.array_equal(np.sqrt(x), want)
    assert 0.1 < rec["differ_from_rounded"] / rec["of"] < 0.3
    for loss in ("cosine-embedding", "cosine"):
        assert bool(kernels.unsupported("torch", "float32", loss, False, {}, {}, False)) != mkl.available()
        assert options.setup(loss, convention="torch", dtype="float32").lowp == mkl.available()
        assert options.setup(loss, convention="torch", dtype="bfloat16").lowp
    assert options.setup("triplet", convention="torch", dtype="float32").lowp
    if mkl.available():
        assert np.array_equal(mkl.sqrt(x), want)


def test_every_norm_degree_is_reproduced_with_or_without_sample_weights() -> None:
    # pairwise_distance of any q > 0 runs PyTorch's kernels in every dtype; in float32 the norms whose backward
    # takes x ** 0.5 (torch.sqrt, MKL's: |u|^½ for 2.5, |u|^½ and d^½ for 1.5, d^½ for ½) need the mkl extra;
    # sample weights are reproduced as PyTorch users weigh the losses (tests/test_weights_torch_more.py)
    for q in (0.3, 0.5, 1.5, 2.5, 2.75, 7.0):
        for dtype in ("float16", "bfloat16"):
            assert options.setup("triplet", convention="torch", dtype=dtype, norm_degree=q).lowp
            assert options.setup("triplet", convention="torch", dtype=dtype, norm_degree=q, sample_weight=True).lowp
        root = q in lowp_pairs.ROOT_NORMS
        assert options.setup("triplet", convention="torch", dtype="float32", norm_degree=q).lowp == \
            (mkl.available() or not root)
        for weighed in (False, True):
            assert bool(kernels.unsupported("torch", "float32", "triplet", False, {"norm_degree": q}, {},
                                            weighed)) == (root and not mkl.available())


def test_other_norm_records_cover_each_branch_of_norm_backward() -> None:
    # norm_backward's three branches (q < 1, 1 < q < 2, q > 2), rows with a difference of exactly 0 (masked
    # where q < 1, 0^(q−1) being ∞), batches of 64 rows or more (d^(q−1) in SLEEF's registers), and bfloat16
    # degrees whose q − 1 or q − 2 the pow kernel holds as 3 or 2 (4.005: products, not SLEEF's pow)
    recs = [r for r in DATA["records"] if r["loss"] == "triplet" and r["options"]["norm_degree"] not in (1, 2, 3, 4)]
    degrees = {r["options"]["norm_degree"] for r in recs}
    assert min(degrees) < 1 and any(1 < q < 2 for q in degrees) and {3.004, 4.005, 7.0} <= degrees
    for r in (r for r in recs if r["name"] == "zero difference"):
        u = values(r["pred"], r["dtype"])[-1, 0] - values(r["target"], r["dtype"])[-1, 0]
        half = _half(r["dtype"])
        assert lowp.rounder(half)(lowp.rounder(half)(u) + lowp_pairs.scalar(lowp_pairs.DIST_EPS, half)) == 0
    assert any(np.shape(r["pred"])[0] >= 64 for r in recs)
    assert {(r["dtype"], r["options"]["norm_degree"]) for r in recs} >= {("bfloat16", 4.005), ("bfloat16", 0.3)}


@pytest.mark.parametrize("rec", DATA["pow"], ids=[f"{r['dtype']}-{r['exponent']}" for r in DATA["pow"]])
def test_torch_pow_of_a_scalar_exponent_bit_for_bit(rec: dict) -> None:
    # torch.pow(x, e), the powers of norm_backward (and of focal): its kernel's own cases (0, 1, ±½, −1 by the
    # exponent given; 2, 3, −2 by the exponent as bfloat16 holds it, so 3.005 is 3 there), SLEEF's powf in its
    # registers and the C library's pow in the tail of 36 (halves) or 4 (float32) elements
    half = _half(rec["dtype"])
    x, want = values(rec["x"], rec["dtype"]), values(rec["pow"], rec["dtype"])
    with np.errstate(all="ignore"):
        got = lowp_focal.power(x, rec["exponent"], lowp.rounder(half), half)
    assert np.array_equal(got.astype(np.float32), want.astype(np.float32), equal_nan=True)


def test_bfloat16_pow_takes_its_special_cases_by_the_rounded_exponent() -> None:
    # undoing the rule (SLEEF's pow of 3.0 rounded once, for 3.005 and −2.005) puts recorded bfloat16 powers
    # apart; for −0.5001 (held as −0.5) torch takes SLEEF's pow, not the reciprocal square root of −0.5
    by = {(r["dtype"], r["exponent"]): r for r in DATA["pow"]}
    bf16 = lowp.half_dtype("bfloat16")
    for e in (3.005, -2.005, -0.5001, -0.5):
        rec = by["bfloat16", e]
        x, want = values(rec["x"], "bfloat16"), values(rec["pow"], "bfloat16")
        with np.errstate(all="ignore"):
            plain = lowp.rounder(bf16)(lowp_focal.pow_kernel(x, lowp_focal._sleef_exponent(e, bf16), e, bf16))
        assert np.array_equal(plain, want) == (e == -0.5001)


def _pick(loss: str, dtype: str, shape: tuple[int, int]) -> dict:
    return next(r for r in DATA["records"] if r["loss"] == loss and r["dtype"] == dtype and r["reduction"] == "mean"
                and np.shape(r["pred"]) == shape and r["name"] == "random")


def test_csv_batch_mean_writes_the_kernels_gradients(tmp_path: Path) -> None:
    # a CSV batch's rows (mean: the 1/N brought in first) are the in-memory kernels' gradients for the anchor,
    # the positive and the negative, which the golden records hold to torch's
    rec = _pick("triplet", "bfloat16", (11, 7))
    y, p, n = (values(rec[k], "bfloat16") for k in ("target", "pred", "negative"))
    head = ",".join([f"t{i}" for i in range(7)] + [f"p{i}" for i in range(7)] + [f"n{i}" for i in range(7)])
    (tmp_path / "b.csv").write_text(head + "\n" + "".join(",".join(repr(float(a)) for a in row) + "\n"
                                                          for row in np.hstack([y, p, n])))
    opts = rec["options"]
    r = run("triplet", "--csv", "b.csv", "--target-cols", "0:7", "--pred-cols", "7:14", "--negative", "14:21",
            "-c", "torch", "--dtype", "bfloat16", "-r", "mean", "-f", "csv", "--margin", str(opts["margin"]),
            "--norm-degree", str(opts["norm_degree"]), *(["--swap"] if opts["swap"] else []), cwd=tmp_path)
    assert r.code == 0, r.err
    rows = np.loadtxt(r.out.splitlines()[1:], delimiter=",", ndmin=2)
    want = _run(rec)
    assert np.array_equal(rows[:, 1:8], want.grad)
    assert np.array_equal(rows[:, 8:15], want.grads["target"]) and np.array_equal(rows[:, 15:], want.grads["negative"])
    assert np.array_equal(want.grads["negative"], values(rec["grad_negative"], "bfloat16"))


def test_tensor_files_mean_writes_the_kernels_gradients(tmp_path: Path) -> None:
    # tensor files written with -o: cosine-embedding's gradients of the mean for x1 and x2 and its value are the
    # in-memory kernels', which the golden records hold to torch's
    rec = _pick("cosine-embedding", "float16", (4, 33))
    for k in ("target", "pred", "label"):
        a = values(rec[k], "float16").astype(np.float16)
        np.save(tmp_path / f"{k}.npy", a.reshape(-1) if k == "label" else a)
    r = run("cosine-embedding", "--target", "target.npy", "--pred", "pred.npy", "--label", "label.npy", "-c",
            "torch", "--dtype", "float16", "-r", "mean", "--margin", str(rec["options"]["margin"]), "-o", "out.npz",
            "-f", "json", cwd=tmp_path)
    assert r.code == 0, r.err
    out = np.load(tmp_path / "out.npz")
    assert np.array_equal(out["grad"].astype(np.float32), values(rec["grad"], "float16"))
    assert np.array_equal(out["grad_target"].astype(np.float32), values(rec["grad_target"], "float16"))
    assert float(r.json()["value"]) == _run(rec).value == float(values(rec["value"], "float16"))


@pytest.mark.frameworks
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_live_random_triplets_and_cosines(dtype: str, live_rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    kind = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    rng = live_rng
    for _ in range(6):
        shape = (int(rng.integers(1, 30)), int(rng.integers(1, 70)))
        ts = [torch.tensor(rng.standard_normal(shape) * rng.choice([0.01, 1.0, 30.0])).to(kind) for _ in range(3)]
        a, pos, neg = (t.to(torch.float64).numpy() for t in ts)
        q = float(rng.choice([1.0, 2.0, 3.0, 4.0, 0.5, 1.5, 2.5, round(float(rng.uniform(0.1, 12)), 3)]))
        if dtype == "float32" and q in lowp_pairs.ROOT_NORMS and not mkl.available():
            q = 3.0  # (float32's x ** 0.5 is MKL's)
        swap = bool(rng.random() < 0.5)
        leaves = [t.clone().requires_grad_() for t in ts]
        out = torch.nn.functional.triplet_margin_loss(*leaves, margin=0.5, p=q, swap=swap)
        out.backward()
        r = lossgrad.evaluate("triplet", pos, a, negative=neg, convention="torch", dtype=dtype, margin=0.5,
                              norm_degree=q, swap=swap)
        assert np.array_equal(r.value, float(out.detach()), equal_nan=True)
        for got, leaf in ((r.grad, leaves[0]), (r.grads["target"], leaves[1]), (r.grads["negative"], leaves[2])):
            assert np.array_equal(got, leaf.grad.to(torch.float64).numpy(), equal_nan=True)
        if dtype == "float32":
            continue
        label = np.where(rng.random(shape[0]) < 0.5, 1.0, -1.0)
        leaves = [t.clone().requires_grad_() for t in ts[:2]]
        out = torch.nn.functional.cosine_embedding_loss(*leaves, torch.tensor(label).to(kind), margin=0.1)
        out.backward()
        r = lossgrad.evaluate("cosine-embedding", pos, a, label=label[:, None], convention="torch", dtype=dtype,
                              margin=0.1)
        assert np.array_equal(r.value, float(out.detach()), equal_nan=True)  # (float16: a tiny row's ε is 0: 0/0)
        assert np.array_equal(r.grad, leaves[0].grad.to(torch.float64).numpy(), equal_nan=True)
        assert np.array_equal(r.grads["target"], leaves[1].grad.to(torch.float64).numpy(), equal_nan=True)


def test_float32_triplet_cases_of_the_losses_golden_file_are_bit_for_bit() -> None:
    # losses_b_float32.json (scripts/golden_losses_b.py) holds PyTorch's float32 triplet_margin_loss for small
    # batches with norms 1, 2 and 3: the kernels give every number of it
    cases = json.loads((GOLDEN.parent / "losses_b_float32.json").read_text())["cases"]
    cases = [c for c in cases if c["loss"] == "triplet" and c["convention"] == "torch"]
    assert len(cases) == 12 and {c["params"]["norm_degree"] for c in cases} == {1.0, 2.0, 3.0}
    for c in cases:
        r = lossgrad.evaluate("triplet", np.array(c["target"]), np.array(c["pred"]), convention="torch",
                              dtype="float32", reduction=c["reduction"], **c["params"],
                              negative=np.array(c["inputs"]["negative"]))
        for want, got in ((c["value"], r.value), (c["losses"], r.losses), (c["grad"], r.grad),
                          (c["grads"]["target"], r.grads["target"]), (c["grads"]["negative"], r.grads["negative"])):
            if want is not None:
                assert np.array_equal(np.asarray(want, dtype=np.float32), np.asarray(got, dtype=np.float32))


def test_exact_half_dtype_rounds_the_further_inputs_gradients_once() -> None:
    # the exact convention in bfloat16: the positive's and the negative's gradients of the mean are the float64
    # truth divided by N and rounded once, as the anchor's are (by hand: ∂/∂pos = −(a − pos)/‖a − pos‖, here
    # (0.5, 0, 1)/√1.25 over N = 2, i.e. 0.2236068 and 0.4472136, which bfloat16 holds as 0.2236328 and 0.4472656)
    r = lossgrad.evaluate("triplet", [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]], [[0.5, 2.0, 2.0], [0.0, 0.0, 0.0]],
                          negative=[[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]], dtype="bfloat16")
    assert r.grads["target"][0].tolist() == [0.2236328125, 0.0, 0.447265625]
    for g in (r.grad, r.grads["target"], r.grads["negative"]):
        assert np.array_equal(g, g.astype(lowp.half_dtype("bfloat16")).astype(np.float64))
