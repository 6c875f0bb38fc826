"""`lossgrad check` on the gradients with respect to a loss's further inputs (--my-grad-var, --my-grad-negative,
--my-grad-other, --my-grad-target): the convention that explains them, a mean's 1/N, the reasons per element, the
half dtypes' rounding band, the JSON keys, and the errors for an input the loss lacks or a gradient misshapen."""

import json
from pathlib import Path

import numpy as np

from conftest import assert_usage_error, lossgrad

GOLDEN = Path(__file__).resolve().parent / "golden"


def _case(loss, per_sample=False, **want):
    """A case PyTorch or optax computed (scripts/make_golden.py), chosen by its convention, reduction, params
    (`per_sample`: gaussian-nll's with one variance per sample)."""
    cases = json.loads((GOLDEN / f"{loss}.json").read_text())["cases"]
    return next(c for c in cases if all(c.get(k) == v for k, v in want.items())
                and (not per_sample or np.ndim(c["inputs"]["var"]) == 1))


def _text(v):
    v = np.asarray(v, dtype=np.float64)
    rows = v.reshape(v.shape[0], -1) if v.ndim > 1 else v.reshape(1, -1)
    return ";".join(",".join(repr(float(x)) for x in r) for r in rows)


def _triplet_args(c):
    return ["-y", _text(c["target"]), "-p", _text(c["pred"]), "--negative", _text(c["inputs"]["negative"]),
            "--margin", c["params"]["margin"], "--norm-degree", c["params"]["norm_degree"]]


def _gaussian_args(c):
    return ["-y", _text(c["target"]), "-p", _text(c["pred"]), "--var", ",".join(map(repr, c["inputs"]["var"]))]


def _against(findings, name):
    """The findings under `against NAME (...)`, up to the next convention's."""
    start = next(i for i, f in enumerate(findings) if f.startswith(f"against {name} "))
    end = next((i for i, f in enumerate(findings[start + 1:], start + 1) if f.startswith("against ")), len(findings))
    return findings[start:end]


def test_torchs_own_variance_gradient_is_recognised_and_shown_in_json():
    # PyTorch's gaussian_nll_loss, mean over N = 18 elements, one variance per sample (golden, torch 2.x)
    c = _case("gaussian-nll", per_sample=True, reduction="mean", params={}, convention="torch")
    j = lossgrad("check", "gaussian-nll", *_gaussian_args(c), "--my-grad", _text(c["grad"]),
                 "--my-grad-var", _text(c["grads"]["var"]), "-f", "json").json()
    # (no variance is below PyTorch's clamp here, so the exact mathematics explains them too, and comes first)
    assert {"convention": "torch", "reduction": "mean", "from_logits": False, "wrt": "pred", "options": {}} in \
        [j["match"], *j["also"]]
    assert j["match"]["reduction"] == "mean"
    assert np.allclose(j["nearest"]["grad_var"], c["grads"]["var"], rtol=1e-12, atol=0)
    assert np.shape(j["nearest"]["grad_var"]) == (6,)  # (one per sample, as --var was given)
    assert "against torch (mean over N=18): your gradients match torch's" in j["findings"]


def test_a_variance_gradient_without_the_mean_says_so():
    # the golden sum's var gradient (PyTorch, reduction='sum') against its mean: 18 elements, the 1/N left out
    s = _case("gaussian-nll", per_sample=True, reduction="sum", params={}, convention="torch")
    m = _case("gaussian-nll", per_sample=True, reduction="mean", params={}, convention="torch")
    assert s["inputs"] == m["inputs"]
    r = lossgrad("check", "gaussian-nll", *_gaussian_args(s), "--my-grad", _text(m["grad"]),
                 "--my-grad-var", _text(s["grads"]["var"]), "-c", "torch", "-f", "json")
    assert r.code == 1, r.err  # (the predictions' gradient is a mean's, the variances' a sum's: no one convention)
    j = r.json()
    assert j["match"] is None
    assert j["findings"][:3] == [
        "against torch (mean over N=18):",
        "your gradient matches torch's",
        "your gradient with respect to --var is 18.000× torch's (mean over N=18): you left out the 1/N of the mean"]


def test_the_exact_variance_gradient_against_torchs_clamp():
    # by hand, ½(1/v − e²/v²) for y = 0, p = 0.5, 1, 2, v = 1e−8, 0.5, 4: ½(1e8 − 0.25e16) = −1.24999995e15,
    # ½(2 − 4) = −1, ½(1/4 − 4/16) = 0; and (p − y)/v: 5e7, 2, 0.5 (sum). PyTorch clamps v = 1e−8 at 1e−6.
    out = lossgrad("check", "gaussian-nll", "-y", "0,0,0", "-p", "0.5,1,2", "--var", "1e-8,0.5,4", "--my-grad",
                   "5e7,2,0.5", "--my-grad-var", "-1.24999995e15,-1,0", "-c", "torch", "-r", "sum", "-f", "table")
    assert out.code == 0, out.err
    lines = out.out.splitlines()
    assert lines[0].startswith("your numbers match: exact mathematics, reduction sum")
    assert lines[0].endswith("with respect to the predictions and --var")
    assert lines[1] == "against torch (sum):"
    assert lines[3].startswith("  --var element 0: torch clamps each variance at ε = 1e-06")
    assert len(lines) == 4


def test_a_mean_s_factor_shows_through_a_clamp():
    # the same hand-worked sums against torch's mean over N = 3: elements 1 and 2 are 3× torch's, element 0 is 3×
    # the exact mean's, which torch's clamp moves
    out = lossgrad("check", "gaussian-nll", "-y", "0,0,0", "-p", "0.5,1,2", "--var", "1e-8,0.5,4", "--my-grad",
                   "5e7,2,0.5", "--my-grad-var", "-1.24999995e15,-1,0", "-c", "torch", "-f", "table")
    lines = out.out.splitlines()
    clamp = "torch clamps each variance at ε = 1e-06 (the exact convention takes it as given)"
    assert lines[1:] == [
        "against torch (mean over N=3):",
        "  your gradient is 3.000× torch's (mean over N=3): you left out the 1/N of the mean",
        f"  element 0: {clamp}, and forms ½(log v + e²/v) in its own order",
        "  your gradient with respect to --var is 3.000× torch's (mean over N=3): you left out the 1/N of the mean",
        f"  --var element 0: {clamp}, and forms ½(log v + e²/v) in its own order"]


def test_triplet_positive_and_negative_gradients_tell_torch_from_optax():
    # PyTorch's (golden) gradients for the positives and negatives: PyTorch's ε in each difference shows
    c = _case("triplet", convention="torch", reduction="mean", params={"margin": 1.0, "norm_degree": 2.0})
    j = lossgrad("check", "triplet", *_triplet_args(c), "--my-grad-target", _text(c["grads"]["target"]),
                 "--my-grad-negative", _text(c["grads"]["negative"]), "-f", "json").json()
    assert j["match"]["convention"] == "torch"
    assert np.allclose(j["nearest"]["grad_negative"], c["grads"]["negative"], rtol=1e-12, atol=1e-300)
    optax = _against(j["findings"], "optax")
    assert optax[0] == "against optax (mean over N=6):"
    assert all(f.startswith(("--target ", "--negative ")) for f in optax[1:]) and len(optax) == 3
    assert all(f.endswith("yours is torch's value here, not optax's: torch adds ε = 1e-06 to each difference "
                          "before its norm") for f in optax[1:])


def test_triplet_sum_against_a_mean_and_the_other_framework():
    # optax's sum (golden) asked against torch's mean: the 1/N and then torch's ε, for each gradient given
    c = _case("triplet", convention="optax", reduction="sum", params={"margin": 1.0, "norm_degree": 2.0})
    j = lossgrad("check", "triplet", *_triplet_args(c), "--my-grad", _text(c["grad"]),
                 "--my-grad-negative", _text(c["grads"]["negative"]), "-c", "torch", "-f", "json").json()
    assert j["match"]["convention"] == "optax" and j["match"]["reduction"] == "sum"
    f = j["findings"]
    assert f[0] == "against torch (mean over N=6):"
    assert "your gradient is 6.000× torch's (mean over N=6): you left out the 1/N of the mean" in f
    assert "your gradient with respect to --negative is 6.000× torch's (mean over N=6): you left out the 1/N of " \
           "the mean" in f
    assert any(x.startswith("--negative cells") and x.endswith("torch adds ε = 1e-06 to each difference before its "
                                                               "norm") for x in f)


def test_margin_ranking_other_gradient_and_a_tensor_file(tmp_path):
    # PyTorch's margin_ranking_loss (golden): the mean's gradient for x1 with the sum's for x2, and x2's gradient
    # given as a .npy file
    m = _case("margin-ranking", reduction="mean", params={"margin": 0.0})
    s = _case("margin-ranking", reduction="sum", params={"margin": 0.0})
    np.save(tmp_path / "g2.npy", np.asarray(s["grads"]["other"]))
    args = ["-y", _text(m["target"]), "-p", _text(m["pred"]), "--other", _text(m["inputs"]["other"])]
    typed = lossgrad("check", "margin-ranking", *args, "--my-grad", _text(m["grad"]), "--my-grad-other",
                     _text(s["grads"]["other"]), "-f", "json")
    read = lossgrad("check", "margin-ranking", *args, "--my-grad", _text(m["grad"]), "--my-grad-other",
                    tmp_path / "g2.npy", "-f", "json")
    assert typed.code == read.code == 1
    assert typed.json()["findings"] == read.json()["findings"] == [
        "against torch (mean over N=8):", "your gradient matches torch's",
        "your gradient with respect to --other is 8.000× torch's (mean over N=8): you left out the 1/N of the mean"]


def test_cosine_embedding_second_vector_alone():
    # PyTorch's cosine_embedding_loss, reduction='sum' (golden): its gradient for the second vectors, without the
    # first's. Each sample's gradient is its own under a sum, so sample 1 (a parallel pair, whose gradient is
    # float64 cancellation, PyTorch's ~1e-15 against lossgrad's own to 0.2%) is left out.
    c = _case("cosine-embedding", reduction="sum", params={"margin": 0.0})
    keep = [0, 2, 3, 4, 5]
    pick = lambda v: [v[i] for i in keep]  # noqa: E731
    out = lossgrad("check", "cosine-embedding", "-y", _text(pick(c["target"])), "-p", _text(pick(c["pred"])),
                   "--label", _text(pick(c["inputs"]["label"])), "--my-grad-target",
                   _text(pick(c["grads"]["target"])), "-c", "torch", "-f", "table")
    assert out.code == 0, out.err
    lines = out.out.splitlines()
    assert lines[0].startswith("your numbers match: ") and lines[0].endswith("with respect to --target")
    assert "reduction sum" in lines[0]
    assert lines[-2:] == ["against torch (mean over N=5):",
                          "  your gradient with respect to --target is 5.000× torch's (mean over N=5): you left out "
                          "the 1/N of the mean"]


def test_half_dtype_rounding_band_for_the_variance_gradient():
    # PyTorch's float16 gaussian_nll_loss (tests/golden/lowp_newer.json, reduction 'none': the sum's gradient),
    # the rows where every number is finite
    data = json.loads((GOLDEN / "lowp_newer.json").read_text())
    r = next(r for r in data["records"] if r["loss"] == "gaussian-nll" and r["dtype"] == "float16"
             and r["options"] == {"full": False} and np.shape(r["pred"])[1] == 1)
    keys = ("target", "pred", "var", "grad", "grad_var")
    rows = [i for i in range(len(r["pred"])) if all(np.isfinite(float(r[k][i][0])) for k in keys)][:8]
    col = {k: ",".join(r[k][i][0] for i in rows) for k in keys}
    j = lossgrad("check", "gaussian-nll", "--dtype", "float16", "-y", col["target"], "-p", col["pred"], "--var",
                 col["var"], "--my-grad", col["grad"], "--my-grad-var", col["grad_var"], "-c", "torch",
                 "-f", "json").json()
    assert j["match"]["convention"] == "torch" and j["match"]["reduction"] in ("sum", "none")
    band = [f for f in j["findings"] if f.startswith("your gradient with respect to --var matches torch in float16")]
    assert len(band) == 1 and "from the float64 truth at most" in band[0]
    n = len(rows)
    assert f"your gradient with respect to --var is {n}.000× torch's (mean over N={n}): you left out the 1/N of " \
           "the mean" in j["findings"]


def test_an_input_the_loss_lacks_is_one_error_line():
    assert_usage_error(lossgrad("check", "mse", "-y", "0,1", "-p", "0.5,0.5", "--my-grad-var", "1,2"),
                       "--my-grad-var: mse takes no --var", "its inputs are --target and --pred",
                       "the gradient with respect to --pred (--my-grad)")
    assert_usage_error(lossgrad("check", "triplet", "-y", "1,0", "-p", "0,0", "--negative", "0,0.5",
                                "--my-grad-other", "1,2"),
                       "--my-grad-other: triplet takes no --other", "its inputs are --target, --pred and --negative",
                       "--target (--my-grad-target) and --negative (--my-grad-negative)")
    assert_usage_error(lossgrad("check", "mse", "-y", "0,1", "-p", "0.5,0.5", "--my-grad-target", "1,2"),
                       "--my-grad-target: mse gives no gradient with respect to its targets")
    assert_usage_error(lossgrad("check", "cosine-embedding", "-y", "1,0", "-p", "0,1", "--label", "1",
                                "--my-grad-negative", "1,2"),
                       "cosine-embedding takes no --negative", "its inputs are --target, --pred and --label")


def test_a_misshapen_gradient_is_one_error_line():
    # one variance per sample: its gradient has one value per sample too
    assert_usage_error(lossgrad("check", "gaussian-nll", "-y", "0,0;1,1", "-p", "0.5,1;2,2", "--var", "1,2",
                                "--my-grad-var", "1,2,3,4"),
                       "--my-grad-var: has 4 values but --var has 2")
    assert_usage_error(lossgrad("check", "triplet", "-y", "1,0", "-p", "0,0", "--negative", "0,0.5",
                                "--my-grad-negative", "1"),
                       "--my-grad-negative: has 1 value but --negative has 2")
    assert_usage_error(lossgrad("check", "triplet", "-y", "1,0", "-p", "0,0", "--negative", "0,0.5",
                                "--my-grad-negative", "1,x"), "--my-grad-negative")
