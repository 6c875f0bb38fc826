"""compare's and check's reasons: every cell that differs has one, each names the cause large enough to explain
its difference, and check names the definitions a loss goes by (NT-Xent, InfoNCE, CLIP; PyTorch's ctc on
log_softmax of logits). The numbers are worked by hand in the comments, or come from tests/golden."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import lossgrad

REL = 1e-12


def _rows(a) -> str:
    return ";".join(",".join(repr(float(v)) for v in row) for row in np.atleast_2d(a))


def _differs(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(invalid="ignore"):
        same = (a == b) | (np.isfinite(b) & (np.abs(a - b) <= REL * np.abs(b))) | (np.isnan(a) & np.isnan(b))
    return ~same


def _unexplained(out: dict) -> list[str]:
    """The cells of compare's JSON that differ from exact's with no reason that names a cause."""
    exact, missing = out["conventions"]["exact"], []
    for name, c in out["conventions"].items():
        if name == "exact":
            continue
        mine = [d for d in out["differences"] if d["convention"] == name and "computes it differently" not in d["why"]]
        if c["value"] is not None and _differs(c["value"], exact["value"]) and not any(
                d["of"] in ("loss", "value") for d in mine):
            missing.append(f"{name} value")
        for key in [k for k in exact if k == "grad" or k.startswith("grad_")]:
            for idx in map(tuple, np.argwhere(np.atleast_1d(_differs(c[key], exact[key])))):
                el = [int(v) for v in idx]
                if not any(d["of"] == key and d["element"] in (el, el[:1], el[-1:]) for d in mine):
                    missing.append(f"{name} {key}{el}")
    return missing


# ---------------------------------------------------------------- compare: a reason for every differing cell

# a = (0, 0), pos = (1, 0), neg = (0.5, 0). Exact, q = 1: ‖(−1, 0)‖₁ − ‖(−0.5, 0)‖₁ + 1 = 1.5. optax takes
# (Σ(a − v)¹ + ε)^(1/1) with no |·|: (−1 + ε) − (−0.5 + ε) + 1 = 0.5. PyTorch: ‖(−1 + ε, ε)‖₁ − ‖(−0.5 + ε, ε)‖₁ + 1
# = (1 − ε + ε) − (0.5 − ε + ε) + 1 = 1.5; its ∂/∂pos = −sign(a − pos + ε) = (1, −1) where exact's is (1, 0): the
# second difference is 0, and ε moves it off |·|'s kink.
TRIPLET = ("triplet", "-p", "0,0", "-y", "1,0", "--negative", "0.5,0")


def test_compare_triplet_degree_1_names_optax_signed_sum_and_torch_kink():
    r = lossgrad("compare", *TRIPLET, "--norm-degree", "1", "-f", "json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["conventions"]["exact"]["value"] == 1.5 and out["conventions"]["torch"]["value"] == 1.5
    assert out["conventions"]["optax"]["value"] == 0.5
    assert out["conventions"]["torch"]["grad_target"] == [1.0, -1.0]  # (shaped as the single sample's --pred)
    assert out["conventions"]["exact"]["grad_target"] == [1.0, 0.0]
    why = {(d["convention"], d["of"]): d["why"] for d in out["differences"]}
    assert "signed sum, not a norm" in why[("optax", "loss")]
    assert "a difference is 0 here" in why[("torch", "grad_target")]
    assert "subgradient 0" in why[("torch", "grad_target")]
    assert _unexplained(out) == []
    table = lossgrad("compare", *TRIPLET, "--norm-degree", "1", "-f", "table")
    assert "0.5*" in table.out and "every convention gives the same numbers" not in table.out
    optax = " ".join(line for line in table.out.replace("\n", " ").split("  optax, ")[1:])
    assert "loss of sample 0" in optax and "signed sum" in optax


@pytest.mark.parametrize("q, words", [("3", "the root of a negative sum is NaN"),
                                      ("1.5", "a negative difference's fractional power is NaN")])
def test_compare_triplet_optax_nan_degrees_are_explained(q, words):
    # a − pos = (−1, 0): optax's Σ(a − pos)³ = −1, whose cube root jnp.power gives as NaN; (−1)^1.5 is NaN
    out = lossgrad("compare", *TRIPLET, "--norm-degree", q, "-f", "json").json()
    assert out["conventions"]["optax"]["value"] == "nan"
    assert any(d["convention"] == "optax" and words in d["why"] for d in out["differences"])
    assert _unexplained(out) == []


@pytest.mark.parametrize("args", [
    ("mse", "-y", "0,1;2,3", "-p", "1,1;0,0", "-r", "sum"),  # Keras' mean over each sample's outputs: 1/2
    ("cosine", "-y", "1,0", "-p", "1,1"),  # Keras reports −cos, 1 − cos is exact's
    ("logcosh", "-y", "0", "-p", "1"),  # Keras' log 2 in float32
    ("poisson", "--full", "-y", "0,1,2,5", "-p", "0.5,1,3,4"),
    ("poisson", "--full", "--from-logits", "-y", "0,1,2,5", "-p", "0.5,1,3,4"),
    ("margin-ranking", "-y", "1,-1", "-p", "1,2", "--other", "1,3"),  # both at the hinge's kink
    ("ctc", "--from-logits", "--target", "1,2", "--pred", "0.1,0.7,-0.4;0.3,-0.2,0.9;-1,0.2,0.5"),  # float32 keras
])
def test_compare_every_differing_cell_has_a_reason(args):
    r = lossgrad("compare", *args, "-f", "json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["differences"], "the conventions differ here"
    assert _unexplained(out) == []
    table = lossgrad("compare", *args, "-f", "table").out
    assert "every convention gives the same numbers" not in table


def test_compare_says_same_only_when_nothing_differs():
    # mse on exact inputs: (1 − 0)² and its derivative 2(p − y) are the same in every convention
    table = lossgrad("compare", "mse", "-y", "0", "-p", "1", "-f", "table").out
    assert "every convention gives the same numbers here" in table
    assert "*" not in "".join(table.splitlines()[1:])


def test_compare_keras_cosine_and_logcosh_values_are_explained():
    # cos((1, 0), (1, 1)) = 1/√2: exact's 1 − cos = 0.2928932188134524, Keras' −cos = −0.7071067811865475
    out = lossgrad("compare", "cosine", "-y", "1,0", "-p", "1,1", "-f", "json").json()
    assert out["conventions"]["exact"]["value"] == pytest.approx(1 - 1 / math.sqrt(2), rel=1e-15)
    assert out["conventions"]["keras"]["value"] == pytest.approx(-1 / math.sqrt(2), rel=1e-15)
    assert any(d["convention"] == "keras" and d["of"] == "loss" and "reports −cos" in d["why"]
               for d in out["differences"])
    # log 2 in float32 is 0x3f317218 = 0.693147182464599609375, 1.9e-09 above log 2
    out = lossgrad("compare", "logcosh", "-y", "0", "-p", "1", "-f", "json").json()
    why = [d["why"] for d in out["differences"] if d["convention"] == "keras" and d["of"] == "loss"]
    assert why and "log 2 rounded to float32, 0.6931471825" in why[0] and "1.9e-09 above" in why[0]


# ---------------------------------------------------------------- poisson: the reason large enough

# y = (0, 1, 2, 5), p = (0.5, 1, 3, 4). The full terms p − y·log p + log y!: 0.5; 1; 3 − 2 log 3 + log 2 =
# 1.4959226032237258; 4 − 5 log 4 + log 120 = 1.856019937182593; their mean 1.2129856351015297. PyTorch's
# full=True adds Stirling's y log y − y + ½ log(2πy) for y > 1, about 1/(12y) short of log y! (0.0417 at y = 2,
# 0.0167 at y = 5: 2.8% and 0.9% of the terms); its ε = 1e−8 moves a term by about ε·y/p (1.25e−8 at y = 5).
POISSON = ("poisson", "--full", "-y", "0,1,2,5", "-p", "0.5,1,3,4")
HAND_MEAN = (0.5 + 1 + (3 - 2 * math.log(3) + math.log(2)) + (4 - 5 * math.log(4) + math.log(120))) / 4


def test_compare_poisson_full_names_stirling_for_the_terms_it_moves():
    out = lossgrad("compare", *POISSON, "-f", "json").json()
    assert out["conventions"]["exact"]["value"] == pytest.approx(HAND_MEAN, rel=1e-15)
    terms = {d["element"][0]: d["why"] for d in out["differences"] if d["convention"] == "torch"
             and d["of"] == "loss"}
    assert "Stirling" in terms[2] and "0.0417" in terms[2]
    assert "Stirling" in terms[3] and "0.0167" in terms[3]
    assert "ε = 1e-08" in terms[1]  # (y = 1: log 1! = 0, and PyTorch adds nothing; only its ε moves the term)
    grads = [d["why"] for d in out["differences"] if d["convention"] == "torch" and d["of"] == "grad"]
    assert grads and all("ε = 1e-08" in w for w in grads)  # (the log y! term is p's constant)


def test_check_poisson_full_blames_stirling_not_eps():
    r = lossgrad("check", *POISSON, "--my-loss", repr(HAND_MEAN), "-c", "torch", "-f", "json")
    assert r.code == 0, r.err
    findings = r.json()["findings"]
    for place in ("element 2", "element 3"):
        line = next(f for f in findings if f.startswith(place))
        assert "Stirling" in line and "ε" not in line, line


# PyTorch's full=True by hand: Stirling's y·log y − y + ½·log(2πy) where y > 1 in place of log y!
TORCH_FULL_MEAN = (0.5 + 1 + (3 - 2 * math.log(3) + 2 * math.log(2) - 2 + 0.5 * math.log(4 * math.pi))
                   + (4 - 5 * math.log(4) + 5 * math.log(5) - 5 + 0.5 * math.log(10 * math.pi))) / 4


@pytest.mark.parametrize(("mine", "theirs"), [(HAND_MEAN, "exact"), (TORCH_FULL_MEAN, "torch")])
def test_check_poisson_tries_full_on_a_loss_alone(mine, theirs):
    """A mean with log y! (exact's, HAND_MEAN) or PyTorch's full=True (by hand) given as --my-loss alone, without
    --full: check tries the switch (a switch is no fitted parameter, so one number can confirm it) and says the user
    left it out; before, it found no convention."""
    plain = [a for a in POISSON if a != "--full"]
    r = lossgrad("check", *plain, "--my-loss", repr(mine), "-f", "json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["match"]["convention"] == theirs and out["match"]["options"] == {"full": True}
    assert any("which you did not pass" in f for f in out["findings"])


@pytest.mark.parametrize("typed", ["0,0,0", "0.0,0.0,0.0"])
def test_check_takes_a_gradient_of_zeros_as_zeros(typed):
    """A gradient of zeros (a backward pass left out) is no match for margin-ranking's, whose third element is
    −1/3 (by hand: y = 1, x1 = 0.5, x2 = 1 is inside the margin): a typed 0 says nothing of its precision, and
    every number here is 0, so each must be 0. Before, a bare 0 allowed ±0.5 and the zeros "matched"."""
    r = lossgrad("check", "margin-ranking", "-y", "1,-1,1", "-p", "0.75,0.25,0.5", "--other", "0.5,0.25,1",
                 "--my-grad", typed, "-f", "json")
    assert r.code == 1 and r.json()["match"] is None, r.out


def test_check_poisson_full_says_the_loss_departs_where_the_gradient_matches():
    # the exact gradient (p − y)/p over N = 4 to 5 decimals: 0.25, 0, 1/12, −1/16 (PyTorch's, with its ε = 1e-8 in
    # log(p + ε), is 2.5e-9 at element 1: within the digits given, where a 0 stands for the others' precision)
    r = lossgrad("check", *POISSON, "--my-loss", repr(HAND_MEAN), "--my-grad", "0.25,0,0.08333,-0.0625",
                 "-c", "torch", "-f", "json")
    assert r.code == 0, r.err
    text = "\n".join(r.json()["findings"])
    assert "your gradient matches torch's; your loss does not" in text
    assert "Stirling" in text


# ---------------------------------------------------------------- ctc: PyTorch's mean from logits

# tests/test_ctc.py's hand case: frames' probabilities Y, labels (1, 2), p(l|x) = 1/3.2, γ the posteriors. From
# logits z = log Y + 1 (softmax(z) = Y), PyTorch's users pass log_softmax(z) = log Y; its mean divides the loss by
# the target length 2: log(3.2)/2, and its gradient with respect to z is (softmax(z) − γ)/2.
HAND_Y = np.array([[1 / 4, 1 / 2, 1 / 4], [1 / 2, 1 / 4, 1 / 4], [1 / 4, 1 / 4, 1 / 2]])
HAND_GAMMA = np.array([[1 / 10, 9 / 10, 0], [4 / 10, 3 / 10, 3 / 10], [1 / 10, 0, 9 / 10]])


def test_check_ctc_from_logits_names_pytorchs_division_by_target_length():
    z = _rows(np.log(HAND_Y) + 1)
    grad = ",".join(repr(float(v)) for v in ((HAND_Y - HAND_GAMMA) / 2).ravel())
    for given in (["--my-grad", grad, "--my-loss", repr(math.log(3.2) / 2)], ["--my-loss", repr(math.log(3.2) / 2)]):
        r = lossgrad("check", "ctc", "--from-logits", "--target", "1,2", "--pred", z, *given, "-f", "json")
        assert r.code == 0, r.err
        out = r.json()
        assert out["match"]["convention"] == "torch" and out["match"]["options"] == {}
        assert "log_softmax of your logits" in out["match"]["via"]
        text = " ".join(out["findings"])
        assert "divides each sequence's loss by its target length (2)" in text
        assert "sample_weight" not in text


def test_check_ctc_one_sequence_says_no_factor_of_one():
    # N = 1: the mean is the sum, so the exact −γ (the gradient with respect to log Y) is no "1.000×" of anything
    lp = _rows(np.log(HAND_Y))
    grad = ",".join(repr(float(v)) for v in (-HAND_GAMMA).ravel())
    r = lossgrad("check", "ctc", "--target", "1,2", "--pred", lp, "--my-grad", grad, "-f", "table")
    assert r.code == 0, r.err
    assert "1.000×" not in r.out and "left out the 1/N" not in r.out


# ---------------------------------------------------------------- contrastive: which definition

GOLDEN = json.loads((Path(__file__).resolve().parent / "golden" / "contrastive.json").read_text())
TWO = next(c for c in GOLDEN["cases"] if c["name"] == "two-pairs")  # B = 2, D = 2, τ = 0.5; optax's ntxent


@pytest.mark.parametrize("temperature", [["--temperature", "0.5"], []])
def test_check_contrastive_names_ntxent(temperature):
    grad = ",".join(repr(float(v)) for v in np.ravel(TWO["float64"]["grad"]))
    r = lossgrad("check", "contrastive", "--pred", _rows(TWO["pred"]), "--target", _rows(TWO["target"]),
                 *temperature, "--my-grad", grad, "-f", "json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["match"]["options"]["ntxent"] is True  # (a switch of definition, not weights fitted per sample)
    assert "sample_weight" not in out["match"]["options"]
    if not temperature:
        assert out["match"]["options"]["temperature"] == 0.5
    assert out["findings"][0].startswith("yours is NT-Xent (SimCLR, optax's ntxent): the 2B rows")
    assert "the one checked (infonce) is one-directional InfoNCE" in out["findings"][0]


def test_check_contrastive_names_infonce_checked_as_ntxent():
    # a = p = [[1, 0], [0, 1]], τ = 1 (test_contrastive's hand case): InfoNCE's ℓ = log(1 + e⁻¹) per sample and
    # gradient (0, q/2; q/2, 0), q = 1/(1 + e); NT-Xent's ℓ is log(1 + 2e⁻¹) = 0.5514
    q = 1 / (1 + math.e)
    r = lossgrad("check", "contrastive", "-c", "optax", "--ntxent", "--pred", "1,0;0,1", "--target", "1,0;0,1",
                 "--temperature", "1", "--my-grad", f"0,{q / 2!r},{q / 2!r},0", "--my-loss",
                 repr(math.log1p(math.exp(-1))), "-f", "table")
    assert r.code == 0, r.err
    assert "the one checked (ntxent) is NT-Xent" in r.out and "InfoNCE" in r.out.split("the one checked")[0]
    assert "--ntxent = off, where you passed --ntxent = on" in r.out
    assert "(you passed --ntxent)" in r.out


@pytest.mark.parametrize("given, loss, theirs", [
    ([], -1.0, "the one checked (infonce) is one-directional InfoNCE"),
    (["--ntxent"], math.log(2) - 1, "the one checked (ntxent) is NT-Xent"),
])
def test_check_contrastive_names_decoupled(given, loss, theirs):
    # test_contrastive's hand case decoupled: a = p = [[1, 0], [0, 1]], τ = 1, each row's denominator its negatives
    # alone: ℓ = −1 (NT-Xent: two negatives, −1 + log 2), the gradient (0, ½; ½, 0). A negative loss: no definition
    # that keeps the positive in the denominator gives one
    r = lossgrad("check", "contrastive", *given, "--pred", "1,0;0,1", "--target", "1,0;0,1", "--temperature", "1",
                 "--my-grad", "0,0.5,0.5,0", "--my-loss", repr(loss), "-f", "json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["match"]["options"]["decoupled"] is True and out["nearest"]["residual"] <= 1
    assert out["findings"][0].startswith("yours is ") and "(DCL" in out["findings"][0].split("; the one")[0]
    assert theirs in out["findings"][0]
    assert any("your numbers need --decoupled = on, which you did not pass" in f for f in out["findings"])


# ---------------------------------------------------------------- errors and --explain say what applies


def test_errors_suggest_only_options_the_loss_has():
    # ce has --ignore-index; categorical-focal has not, so its error must not suggest it
    r = lossgrad("ce", "-y", "5", "-p", "0.2,0.8")
    assert r.code == 2 and "--ignore-index K" in r.err
    r = lossgrad("categorical-focal", "-y", "5", "-p", "0.2,0.8")
    assert r.code == 2 and "not a class index" in r.err and "--ignore-index" not in r.err


def test_ctc_csv_error_names_tensor_files(tmp_path):
    r = lossgrad("ctc", "--csv", str(tmp_path / "x.csv"))
    assert r.code == 2 and "tensor files" in r.err and "--input-lengths" in r.err and "not from CSV" in r.err


def test_ctc_explain_shows_the_mean_the_convention_uses():
    lp = _rows(np.log(HAND_Y))

    def explain(*args):
        r = lossgrad("ctc", *args, "--target", "1,2", "--pred", lp, "--explain", "-f", "json")
        assert r.code == 0, r.err
        return "\n".join(r.json()["formulas"])

    torch = explain("-c", "torch")
    assert "J = (1/N) Σᵢ ℓᵢ / max(Lᵢ, 1)" in torch and "J = (1/N) Σᵢ ℓᵢ," not in torch
    summed = explain("-c", "torch", "-r", "sum")
    assert "max(Lᵢ, 1)" not in summed and "J = Σᵢ ℓᵢ" in summed
    exact = explain()
    assert "max(Lᵢ, 1)" not in exact and "J = (1/N) Σᵢ ℓᵢ," in exact
