"""poisson --full (the log y! term as the mathematics has it and as PyTorch approximates it) and categorical-focal
(Keras' CategoricalFocalCrossentropy), worked by hand."""

import math

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, lossgrad as run


def test_full_adds_log_factorial_and_leaves_the_gradient():
    # by hand: log 3! = log 6, log 0! = log 1! = 0, log Γ(3/2) = log(√π/2)
    y, p = [3.0, 0.0, 1.0, 0.5], [2.0, 0.7, 1.5, 0.25]
    plain = lossgrad.poisson(y, p, reduction="none")
    full = lossgrad.poisson(y, p, reduction="none", full=True)
    added = [math.log(6), 0.0, 0.0, math.log(math.sqrt(math.pi) / 2)]
    np.testing.assert_allclose(full.losses - plain.losses, added, rtol=1e-15, atol=1e-16)
    assert full.grad.tolist() == plain.grad.tolist()


def test_full_at_its_minimum_is_half_log_two_pi_y_and_more():
    # by hand: at p = y = 1 the loss is 1 − 0 + log 1! = 1; at p = y = 2 it is 2 − 2 log 2 + log 2
    r = lossgrad.poisson([1.0, 2.0], [1.0, 2.0], reduction="none", full=True)
    assert r.losses[0] == 1.0
    assert r.losses[1] == pytest.approx(2 - math.log(2), rel=1e-15)
    # and from log rates: e^0 − 0 + log 1! = 1
    assert lossgrad.poisson([1.0], [0.0], from_logits=True, full=True).value == 1.0


def test_torch_full_is_stirling_above_one_and_nothing_below():
    # by hand: PyTorch adds y log y − y + ½ log(2πy) for y > 1 only: 3 log 3 − 3 + ½ log(6π) at y = 3, 0 at y = ½
    y, z = [3.0, 0.5, 1.0], [0.25, -1.0, 0.5]
    plain = lossgrad.poisson(y, z, from_logits=True, reduction="none", convention="torch")
    full = lossgrad.poisson(y, z, from_logits=True, reduction="none", convention="torch", full=True)
    stirling = 3 * math.log(3) - 3 + 0.5 * math.log(6 * math.pi)
    np.testing.assert_allclose(full.losses - plain.losses, [stirling, 0.0, 0.0], rtol=1e-15, atol=0)
    # Stirling's approximation falls short of log 3! by about 1/36
    exact = lossgrad.poisson(y, z, from_logits=True, reduction="none", full=True)
    assert exact.losses[0] - full.losses[0] == pytest.approx(math.log(6) - stirling, rel=1e-12)
    assert 1 / 36 - 1 / 3240 < math.log(6) - stirling < 1 / 36


def test_check_finds_pytorchs_full_term():
    # PyTorch's full=True at y = 3, z = 0.25: e^0.25 − 0.75 + 3 log 3 − 3 + ½ log 6π, worked from the formula; the
    # gradient e^0.25 − 3 is the same with or without the term, so only the loss tells
    loss = math.exp(0.25) - 0.75 + 3 * math.log(3) - 3 + 0.5 * math.log(6 * math.pi)
    r = run("check", "poisson", "--from-logits", "-y", "3", "-p", "0.25", "--my-grad", repr(math.exp(0.25) - 3),
            "--my-loss", repr(loss), "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["match"]["convention"] == "torch" and r.json()["match"]["options"] == {"full": True}


@pytest.mark.parametrize("conv", ["keras", "tf-keras"])
def test_keras_has_no_full_term(conv):
    with pytest.raises(lossgrad.OptionError, match="has no log y! term"):
        lossgrad.poisson([1.0], [1.0], convention=conv, full=True)
    assert_usage_error(run("poisson", "-y", "1", "-p", "1", "--full", "-c", conv), "--full", "--convention torch")


def test_full_applies_to_poisson_only():
    with pytest.raises(lossgrad.OptionError, match="applies to poisson, gaussian-nll, not to mse"):
        lossgrad.mse([1.0], [1.0], full=True)
    assert_usage_error(run("mse", "-y", "1", "-p", "1", "--full"), "--full")


def test_full_explains_both_terms():
    r = run("poisson", "-y", "3", "-p", "2", "--full", "--explain", "-c", "torch", "-f", "json")
    assert r.code == 0, r.err
    assert any("Stirling" in line for line in r.json()["formulas"])


# ---------------------------------------------------------------- categorical-focal


def test_categorical_focal_by_hand():
    # one-hot row at q = 0.9: α(1 − 0.9)^γ·(−log 0.9); its derivative −α(0.1)^γ(γ(−log 0.9)/0.1 + 1/0.9)
    y, p = [[0.0, 1.0, 0.0]], [[0.05, 0.9, 0.05]]
    r = lossgrad.categorical_focal(y, p, gamma=2.0, class_alpha=[0.25])
    want = 0.25 * 0.1**2 * -math.log(0.9)
    assert r.value == pytest.approx(want, rel=1e-14)
    dp = -0.25 * 0.1**2 * (2 * -math.log(0.9) / 0.1 + 1 / 0.9)
    np.testing.assert_allclose(r.grad, [[0.0, dp, 0.0]], rtol=1e-14, atol=0)


def test_categorical_focal_at_gamma_zero_is_cross_entropy():
    # (1 − q)^0 = 1: the loss is ce's, −Σ y log softmax(z), and so is its gradient softmax·Σy − y
    rng = np.random.default_rng(7)
    y, z = rng.dirichlet(np.ones(4), size=5), rng.normal(scale=3, size=(5, 4))
    a = lossgrad.categorical_focal(y, z, from_logits=True, gamma=0.0)
    b = lossgrad.ce(y, z, from_logits=True)
    assert a.value == pytest.approx(b.value, rel=1e-15)
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-13, atol=1e-17)


def test_categorical_focal_of_a_certain_class_is_zero_with_the_limits():
    # z = (800, 0): q = 1 − e^−800 for the target, so the loss is e^−800·... far below the floats: 0, and the
    # other class's gradient q_j·c is e^−800 as well; the target's −c·(1 − q) likewise
    r = lossgrad.categorical_focal([[1.0, 0.0]], [[800.0, 0.0]], from_logits=True, reduction="none")
    assert r.losses.tolist() == [0.0] and np.all(np.abs(r.grad) == 0)


def test_keras_takes_a_list_of_alphas_in_float32():
    # Keras 3 turns a list α into a float32 tensor (0.1 → 0.10000000149011612); tf-keras and one number stay exact
    y, p = [[0.0, 1.0, 0.0]], [[0.2, 0.5, 0.3]]
    one = lossgrad.categorical_focal(y, p, convention="keras", class_alpha=[1.0]).value
    k3 = lossgrad.categorical_focal(y, p, convention="keras", class_alpha=[0.1, 0.1, 0.1]).value
    k2 = lossgrad.categorical_focal(y, p, convention="tf-keras", class_alpha=[0.1, 0.1, 0.1]).value
    assert k3 == one * float(np.float32(0.1)) and k2 == one * 0.1
    assert lossgrad.categorical_focal(y, p, convention="keras", class_alpha=[0.1]).value == one * 0.1


def test_keras_divides_rows_by_their_sum_and_clips():
    # by hand: the row (0.2, 0.4, 0.2) is (0.25, 0.5, 0.25) to Keras, a row of 0 and 1 is clipped to [1e−7, 1 − 1e−7]
    r = lossgrad.categorical_focal([[0.0, 1.0, 0.0]], [[0.2, 0.4, 0.2]], convention="keras", gamma=2.0)
    assert r.value == pytest.approx(0.5**2 * -math.log(0.5), rel=1e-15)
    r = lossgrad.categorical_focal([[0.0, 1.0]], [[0.0, 1.0]], convention="keras", gamma=1.0)
    assert r.value == pytest.approx(1e-7 * -math.log(1 - 1e-7), rel=1e-8)


@pytest.mark.parametrize("conv,who", [("torch", "PyTorch"), ("optax", "optax")])
def test_categorical_focal_is_missing_in_torch_and_optax(conv, who):
    with pytest.raises(lossgrad.OptionError, match=f"{who} has no softmax focal loss"):
        lossgrad.categorical_focal([[0.0, 1.0]], [[0.0, 1.0]], from_logits=True, convention=conv)
    assert_usage_error(run("categorical-focal", "-y", "1", "-p", "0.5,1.0", "--from-logits", "-c", conv),
                       f"{who} has no softmax focal loss")


def test_class_alpha_needs_one_weight_per_class():
    with pytest.raises(lossgrad.OptionError, match="has 2 weights but the predictions have 3 classes"):
        lossgrad.categorical_focal([[0.0, 1.0, 0.0]], [[0.2, 0.5, 0.3]], class_alpha=[0.5, 0.5])
    assert_usage_error(run("categorical-focal", "-y", "0,1,0", "-p", "0.2,0.5,0.3", "--class-alpha", "1,2"),
                       "--class-alpha", "3 classes")


def test_categorical_focal_refuses_probabilities_above_one():
    assert_usage_error(run("categorical-focal", "-y", "0,1", "-p", "0.5,1.5"), "1.5", "--from-logits")


def test_categorical_focal_takes_class_indexes():
    # index 1 is the one-hot row (0, 1, 0)
    a = lossgrad.categorical_focal([1], [[0.3, -1.2, 2.0]], from_logits=True)
    b = lossgrad.categorical_focal([[0.0, 1.0, 0.0]], [[0.3, -1.2, 2.0]], from_logits=True)
    assert a.value == b.value and a.grad.tolist() == b.grad.tolist()


# ---------------------------------------------------------------- dice, tversky


def test_dice_by_hand():
    # y = (1, 1, 0, 0), p = (0, 1, 0, 1): 2·Σpy = 2, Σp + Σy = 4, so 1 − 2/4 = 1/2; ∂/∂p_k = (2 − 2y_k·4)/16
    r = lossgrad.dice([[1.0, 1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0, 1.0]], reduction="none")
    assert r.losses.tolist() == [0.5]
    assert r.grad.tolist() == [[-0.375, -0.375, 0.125, 0.125]]
    # squared: Σp² + Σy² = 4 as well; ∂/∂p_k = (2·2p_k − 2y_k·4)/16
    r = lossgrad.dice([[1.0, 1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0, 1.0]], reduction="none", squared=True)
    assert r.losses.tolist() == [0.5] and r.grad.tolist() == [[-0.5, -0.25, 0.0, 0.25]]


def test_tversky_by_hand_and_keras_swaps_alpha_and_beta():
    # TP = 1, FP = Σp(1 − y) = 1, FN = Σ(1 − p)y = 1: 1 − 1/(1 + 0.3 + 0.7) = 1/2 for any α + β = 1, so take
    # y = (1, 1, 0), p = (1, 0, 1) with α = 0.25, β = 1: TP = 1, FP = 1, FN = 1 → 1 − 1/2.25
    y, p = [[1.0, 1.0, 0.0]], [[1.0, 0.0, 1.0]]
    r = lossgrad.tversky(y, p, alpha=0.25, beta=1.0)
    assert r.value == pytest.approx(1 - 1 / 2.25, rel=1e-15)
    # and with FP = 2 (p = (1, 0, 1, 1) against y = (1, 1, 0, 0)): α weighs it, so 1 − 1/(1 + 0.5 + 1)
    r = lossgrad.tversky([[1.0, 1.0, 0.0, 0.0]], [[1.0, 0.0, 1.0, 1.0]], alpha=0.25, beta=1.0)
    assert r.value == pytest.approx(1 - 1 / 2.5, rel=1e-15)
    # Keras' alpha weighs FN: lossgrad's α = 0.25 is Keras' beta, so its value is 1 − 1/(1 + 0.5 + 1 + ε) too
    k = lossgrad.tversky([[1.0, 1.0, 0.0, 0.0]], [[1.0, 0.0, 1.0, 1.0]], alpha=0.25, beta=1.0, convention="keras")
    assert k.value == pytest.approx(1 - 1 / (2.5 + 1e-7), rel=1e-15)


def test_dice_near_a_perfect_prediction_keeps_its_digits():
    # p = y except one pixel 2⁻⁵² short: E = 2⁻⁵², D = 4 − 2⁻⁵², loss E/D; 1 − N/D in float64 gives a multiple of
    # 2⁻⁵³ at best
    r = lossgrad.dice([[1.0, 0.0, 1.0]], [[1.0, 0.0, 1.0 - 2**-52]])
    assert r.value == pytest.approx(2**-52 / (4 - 2**-52), rel=1e-15)


def test_monai_smooths_numerator_and_denominator():
    # MONAI's 1e-5 on both sides: an empty target and an empty prediction score 1 − 1e-5/1e-5 = 0
    r = lossgrad.dice([[0.0, 0.0]], [[0.0, 0.0]], convention="torch")
    assert r.value == 0.0
    # exact without --smooth has no answer there, and says so; with it, the same 0
    with pytest.raises(lossgrad.InputError, match="0/0"):
        lossgrad.dice([[0.0, 0.0]], [[0.0, 0.0]])
    assert lossgrad.dice([[0.0, 0.0]], [[0.0, 0.0]], smooth=1e-5).value == 0.0


def test_segmentation_options_that_conventions_lack():
    assert_usage_error(run("dice", "-y", "1,0", "-p", "0.5,0.5", "--squared", "-c", "keras"), "squared_pred")
    assert_usage_error(run("dice", "-y", "1,0", "-p", "0.5,0.5", "--smooth", "1", "-c", "keras"), "--eps")
    assert_usage_error(run("tversky", "-y", "1,0", "-p", "0.5,0.5", "-c", "tf-keras"), "Keras 3 has")
    assert_usage_error(run("dice", "-y", "1,0", "-p", "0.5,0.5", "-c", "optax"), "optax has no Dice loss")
    assert_usage_error(run("dice", "-y", "1,0", "-p", "0.5,1.5"), "1.5", "--from-logits")


def test_check_finds_monais_squared_pred():
    # MONAI's DiceLoss(squared_pred=True) as recorded by scripts/golden_losses_a.py: check names --squared
    import json
    from pathlib import Path

    cases = json.loads((Path(__file__).parent / "golden" / "dice.json").read_text())["cases"]
    case = next(c for c in cases if c["convention"] == "torch" and c["params"] == {"squared": True}
                and c["reduction"] == "mean" and not c["from_logits"])
    rows = lambda a: ";".join(",".join(repr(float(v)) for v in r) for r in a)  # noqa: E731
    r = run("check", "dice", "-y", rows(case["target"]), "-p", rows(case["pred"]), "--my-grad", rows(case["grad"]),
            "--my-loss", repr(case["value"]), "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["match"]["convention"] == "torch" and r.json()["match"]["options"] == {"squared": True}


def test_tversky_weights_above_one():
    # α weighs the false positives and may exceed 1 (MONAI and Keras take any weight): y = (1, 0), p = (0.3, 0.4),
    # TP = 0.3, FP = 0.4, FN = 0.7, α = 2, β = ½: ℓ = (0.8 + 0.35)/(0.3 + 0.8 + 0.35) = 23/29
    r = lossgrad.tversky([[1.0, 0.0]], [[0.3, 0.4]], alpha=2.0, beta=0.5)
    assert r.value == pytest.approx(23 / 29, rel=1e-15)
    assert run("tversky", "--alpha", "2", "-y", "1,0", "-p", "0.3,0.4").code == 0
    assert_usage_error(run("focal", "--alpha", "2", "-y", "1,0", "-p", "0.3,0.4"), "--alpha", "[0, 1]")
