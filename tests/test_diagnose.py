"""`lossgrad compare` and `lossgrad check` through the real CLI. The seed question's numbers (seeds.json, seed 000):
TF's gradient [0, -0.40012383, 4.97895166, 0.25000067] (tf-keras, mean) against a hand-derived
[1.00000001, -1.60049558, 19.91584631, 1.00000276]."""

import numpy as np
import pytest

from conftest import assert_usage_error, lossgrad

P = "8.358390031511923e-09,0.6248064744684293,0.9497887268097336,2.7607649501930464e-06"
HAND = "1.00000001,-1.60049558,19.91584631,1.00000276"


def test_check_diagnoses_the_seed_question():
    r = lossgrad("check", "bce", "-y", "0,1,0,0", "-p", P, "--my-grad", HAND, "-c", "tf-keras", "-f", "json")
    assert r.code == 0, r.err
    out = r.json()
    # the hand numbers are the exact per-element derivatives (no 1/N), with respect to the probabilities
    assert out["match"]["convention"] == "exact" and out["match"]["wrt"] == "pred"
    assert out["match"]["reduction"] in ("sum", "none")
    text = "\n".join(out["findings"])
    assert "4.000× tf-keras's (mean over N=4): you left out the 1/N of the mean" in text
    assert "element 0: p = 8.36e-09 is below ε = 1e-07, so tf-keras clips it" in text
    assert "ε = 1e-07 inside log(p + ε)" in text  # element 2's 7th digit


def test_check_recognises_logit_gradients():
    # p - y (the gradient with respect to the logits), summed, from the probabilities above
    r = lossgrad("check", "bce", "-y", "0,1,0,0", "-p", P, "--my-grad", "8.358e-9,-0.3751935,0.9497887,2.76076e-6",
                 "-f", "json")
    out = r.json()
    assert r.code == 0 and out["match"]["wrt"] == "logits" and out["match"]["from_logits"] is False
    assert any("with respect to the logits (σ(z) − y)" in f for f in out["findings"])


def test_check_matches_a_framework_mean():
    r = lossgrad("check", "bce", "-y", "0,1,0,0", "-p", P,
                 "--my-grad", "0,-0.40012383066342433,4.978951662060161,0.2500006651930075", "-f", "json")
    out = r.json()
    assert r.code == 0 and out["match"] == {"convention": "tf-keras", "reduction": "mean", "from_logits": False,
                                            "wrt": "pred", "options": {}}


def test_check_reports_a_reversed_sign_and_exits_1():
    r = lossgrad("check", "bce", "-y", "0,1,0,0", "-p", P, "--my-grad", "-1.0,1.6,-19.9,-1.0", "-c", "tf-keras",
                 "-f", "json")
    assert r.code == 1
    out = r.json()
    assert out["match"] is None and out["nearest"]["convention"] == "exact"
    assert any("sign reversed" in f for f in out["findings"])


def test_check_uses_the_loss_value_too():
    # right gradient, wrong loss: the mean's value is 0.8654579497810972 (exact), 0.8654573847833843 (tf-keras)
    r = lossgrad("check", "bce", "--from-logits", "-y", "0,1,0,0", "-p", "-18.6,0.51,2.94,-12.8",
                 "--my-grad", "2.09e-9,-0.0938,0.2374,6.9e-7", "--my-loss", "0.8655", "-f", "json")
    assert r.code == 0 and r.json()["match"]["reduction"] == "mean"
    r = lossgrad("check", "bce", "--from-logits", "-y", "0,1,0,0", "-p", "-18.6,0.51,2.94,-12.8",
                 "--my-grad", "2.09e-9,-0.0938,0.2374,6.9e-7", "--my-loss", "3.46", "-f", "json")
    assert r.code == 1


def test_check_table_output_reads_as_sentences():
    r = lossgrad("check", "bce", "-y", "0,1,0,0", "-p", P, "--my-grad", HAND, "-c", "tf-keras", "-f", "table")
    assert r.out.startswith("your numbers match: exact mathematics")
    assert "against tf-keras (mean over N=4):" in r.out


@pytest.mark.parametrize("args,fragments", [
    (["check", "bce", "-y", "0,1", "-p", "0.5,0.5"], ["--my-grad", "required"]),
    (["check", "bce", "-y", "0,1", "-p", "0.5,0.5", "--my-grad", "1,2,3"], ["--my-grad", "3 values"]),
    (["check", "bce", "-y", "0,1", "-p", "0.5,0.5", "--my-grad", "1,x"], ["--my-grad: value 2"]),
    (["check", "bce", "-y", "0,1", "-p", "0.5,0.5", "--my-grad", "1,1", "-c", "jax"], ["--convention"]),
    (["compare", "no-such-loss", "-y", "0", "-p", "1"], ["unknown loss 'no-such-loss'"]),
    (["compare", "bce", "-y", "0,1", "-p", "0.5,1.5"], ["--pred: value 2", "outside [0, 1]"]),
    (["compare", "bce", "-y", "0,1", "-p", "0.5,0.5", "-f", "csv"], ["--format", "table or json"]),
])
def test_bad_usage(args, fragments):
    assert_usage_error(lossgrad(*args), *fragments)


def test_compare_marks_and_explains_each_difference():
    r = lossgrad("compare", "bce", "-y", "0,1,0,0,1", "-p", P + ",0", "-f", "json")
    assert r.code == 0, r.err
    out = r.json()
    assert set(out["conventions"]) == {"exact", "keras", "tf-keras", "torch"}
    assert "optax" in out["unsupported"]
    assert out["conventions"]["keras"]["grad"][0] == 0.0 and out["conventions"]["exact"]["value"] == "inf"
    # torch: log(0) clamped at -100; grad (p - y) / float32(1e-12) / N
    assert out["conventions"]["torch"]["grad"][4] == pytest.approx(-1 / 9.99999996e-13 / 5, rel=1e-9)
    whys = {(d["convention"], tuple(d["element"])): d["why"] for d in out["differences"] if d["of"] == "grad"}
    assert "clips it" in whys[("keras", (0,))] and "clips it" in whys[("tf-keras", (4,))]
    assert "inside log(p + ε)" in whys[("tf-keras", (1,))]
    assert "clamps log(p) at -100" in whys[("torch", (4,))]
    assert ("keras", (1,)) not in whys  # Keras 3 has no ε inside the log


def test_compare_explains_the_fused_softmax_kernel():
    r = lossgrad("compare", "ce", "--from-logits", "-y", "1,1,0;0,0,1", "-p", "1,2,3;0.5,0.1,-2", "-f", "json")
    out = r.json()
    # worked by hand for row 0 (multi-hot, sum y = 2): autodiff softmax*2 - y, TF's kernel softmax - y
    import math
    e = [math.exp(v) for v in (1, 2, 3)]
    sm = [v / sum(e) for v in e]
    assert out["conventions"]["torch"]["grad"][0] == pytest.approx([(2 * sm[0] - 1) / 2, (2 * sm[1] - 1) / 2,
                                                                    2 * sm[2] / 2], rel=1e-12)
    assert out["conventions"]["keras"]["grad"][0] == pytest.approx([(sm[0] - 1) / 2, (sm[1] - 1) / 2, sm[2] / 2],
                                                                   rel=1e-12)
    assert any("fused kernel" in d["why"] for d in out["differences"])


def test_compare_table():
    r = lossgrad("compare", "bce", "-y", "0,1,0,0", "-p", P, "-f", "table")
    assert "why they differ:" in r.out and "optax: not available" in r.out
    assert "0*" in r.out  # the clipped cell is marked


def test_a_convention_refusing_an_option_for_these_inputs_is_not_available_the_others_shown():
    # Keras has no label smoothing of class indexes; exact, torch and optax have, so compare shows them, and check
    # names the two it could not weigh. Worked by hand: row 0 smoothed (s = 0.1, C = 3) is (1/30, 1/30, 28/30),
    # and with logits 0, 0, 0 the gradient is softmax - y = (1/3 - 1/30, 1/3 - 1/30, 1/3 - 28/30) over N = 1.
    args = ("ce", "--from-logits", "-y", "2", "-p", "0,0,0", "--label-smoothing", "0.1")
    r = lossgrad("compare", *args, "-f", "json")
    assert r.code == 0, r.err
    out = r.json()
    assert set(out["conventions"]) == {"exact", "torch", "optax"}
    assert set(out["unsupported"]) == {"keras", "tf-keras"}
    assert "--label-smoothing" in out["unsupported"]["keras"]
    for name in ("exact", "torch", "optax"):
        assert np.ravel(out["conventions"][name]["grad"]) == pytest.approx([0.3, 0.3, -0.6], rel=1e-12)
    table = lossgrad("compare", *args, "-f", "table")
    assert table.code == 0 and "keras: not available: --label-smoothing" in table.out
    check = lossgrad("check", *args, "--my-grad", "0.3,0.3,-0.6", "-f", "table")
    assert check.code == 0 and "keras was not weighed: --label-smoothing" in check.out


def test_eps_overrides_the_clip():
    # worked by hand: with eps = 1e-3, p = 5e-4 is clipped (loss -log(1e-3), gradient 0); p = 0.5 gives
    # -log(0.5) and 1/(1 - 0.5); the mean divides both by N = 2
    import math

    out = lossgrad("bce", "-c", "keras", "--eps", "1e-3", "-y", "1,0", "-p", "5e-4,0.5", "-f", "json").json()
    assert out["value"] == pytest.approx((-math.log(1e-3) - math.log(0.5)) / 2, rel=1e-14)
    assert out["grad"] == [0.0, pytest.approx(1.0, rel=1e-14)]
    assert_usage_error(lossgrad("bce", "-c", "keras", "--eps", "0.7", "-y", "1", "-p", "0.5"), "--eps", "(0, 0.5)")


def test_clip_bound_itself_passes_the_gradient_as_tensorflow_does():
    # TF's clip_by_value differentiates max/min with >= and <=: at p == eps exactly the gradient is -y/p (golden
    # files hold the same from TF 2.21); y = 1, p = 1e-7, N = 1
    out = lossgrad("bce", "-c", "keras", "-y", "1", "-p", "1e-7", "-f", "json").json()
    assert out["grad"] == [pytest.approx(-1e7, rel=1e-12)]


def test_compare_explains_the_new_losses_differences():
    r = lossgrad("compare", "kl", "-y", "0.2,0.3,0.5;0,1,0", "-p", "0.1,0.6,0.3;0.05,0.95,0.0000001", "-f", "json")
    why = " ".join(d["why"] for d in r.json()["differences"])
    assert "clips it to ε" in why and "N·3 elements" in why
    # PyTorch's kl_div mean over the 6 elements is a third of the per-sample mean
    convs = r.json()["conventions"]
    assert convs["torch"]["n"] == 6 and convs["exact"]["n"] == 2


def test_check_finds_pytorch_kl_mean():
    # a gradient that divides by N·C (PyTorch's kl_div 'mean'), worked by hand: -y/q/6
    y, q = "0.2,0.3,0.5;0.1,0.8,0.1", "0.1,0.6,0.3;0.2,0.6,0.2"
    yy, qq = (0.2, 0.3, 0.5, 0.1, 0.8, 0.1), (0.1, 0.6, 0.3, 0.2, 0.6, 0.2)
    mine = ",".join(repr(-a / b / 6) for a, b in zip(yy, qq, strict=True))
    r = lossgrad("check", "kl", "-y", y, "-p", q, "--my-grad", mine, "-f", "json")
    assert r.code == 0 and r.json()["match"]["convention"] == "torch"


def _simple_inputs(name):
    if name in ("ce", "nll"):
        return "1,0", ("-0.5,-1.2,-2.0;-0.3,-1.5,-2.2" if name == "nll" else "0.2,0.5,0.3;0.6,0.3,0.1")
    if name in ("hinge", "squared-hinge", "margin-ranking"):
        return "1,-1,1", "0.3,-2.0,1.5"
    if name == "ctc":  # (one sequence: labels, and a row of log-probabilities per frame)
        return "1,2", "-1.1,-1.6,-2.1;-1.5,-1.2,-1.7;-1.4,-2.2,-1.5"
    return "0.2,0.3,0.5", "0.1,0.6,0.3"


# the extra inputs of the losses that take more than a target and a prediction
EXTRA = {"gaussian-nll": ["--var", "0.5,1,2"], "triplet": ["--negative", "0.4,0.1,0.2"],
         "margin-ranking": ["--other", "0.1,0.2,0.3"], "cosine-embedding": ["--label", "-1"]}


@pytest.mark.parametrize("name", sorted(__import__("lossgrad").LOSSES))
@pytest.mark.parametrize("logits", [False, True])
def test_compare_and_check_run_for_every_loss(name, logits):
    # every loss and mode: compare answers (exit 0) and check gives a verdict (0 or 1), in table and json
    if logits and not __import__("lossgrad").LOSSES[name].has_logits:
        pytest.skip("no logits")
    y, p = _simple_inputs(name)
    if logits:
        p = p.replace("0.", "-0.") if name != "nll" else p
    extra = (["--from-logits"] if logits else []) + EXTRA.get(name, [])
    for fmt in ("table", "json"):
        r = lossgrad("compare", name, "-y", y, "-p", p, "-f", fmt, *extra)
        assert r.code == 0, r.err
        n = len(p.replace(";", ",").split(","))
        r = lossgrad("check", name, "-y", y, "-p", p, "--my-grad", ",".join(["0.1"] * n), "-f", fmt, *extra)
        assert r.code in (0, 1) and "internal" not in r.err, r.err
