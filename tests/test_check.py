"""`lossgrad check` answers the question asked: the path that matched, reasons the numbers bear out, a loss alone,
and the options left out solved for."""

import json
import math
from pathlib import Path

import pytest

import lossgrad as lg
from conftest import assert_usage_error, lossgrad
from lossgrad.render import distinct

GOLDEN = Path(__file__).resolve().parent / "golden"
Z = "--pred=-18.6,0.51,2.94,-12.8"
# seed 000's hand-derived (p − y)/(p(1 − p)) on p = σ(z), one per element (no 1/N): a gradient taken with respect
# to the probabilities while the asker holds the logits
HAND = "1.00000001,-1.60049558,19.91584631,1.00000276"


def _golden(loss, **want):
    cases = json.loads((GOLDEN / f"{loss}.json").read_text())["cases"]
    return next(c for c in cases if all(c.get(k) == v for k, v in want.items()))


def _text(v):
    if isinstance(v[0], list):
        return ";".join(",".join(repr(float(x)) for x in r) for r in v)
    return ",".join(repr(float(x)) for x in v)


def test_logits_with_a_probability_gradient_reads_the_same_in_json_and_text():
    out = lossgrad("check", "bce", "--from-logits", "-y", "0,1,0,0", Z, "--my-grad", HAND, "-f", "json")
    assert out.code == 0, out.err
    j = out.json()
    assert j["match"] == {"convention": "exact", "reduction": "sum", "from_logits": True, "wrt": "probs",
                          "options": {}}
    assert j["nearest"]["wrt"] == "probs" and j["nearest"]["from_logits"] is True
    text = lossgrad("check", "bce", "--from-logits", "-y", "0,1,0,0", Z, "--my-grad", HAND, "-f", "table").out
    assert text.startswith("your numbers match: exact mathematics, reduction sum")
    assert "with respect to the probabilities σ(z)" in text.splitlines()[0]


def test_reasons_come_from_the_path_that_matched():
    # σ(−18.6) = 8.36e-09 < ε: on the probability path Keras clips it (gradient 0); y = 0 there, so σ(z) − y
    # cancels nothing
    j = lossgrad("check", "bce", "--from-logits", "-y", "0,1,0,0", Z, "--my-grad", HAND, "-f", "json").json()
    keras = j["findings"][j["findings"].index("against keras (mean over N=4):"):]
    keras = keras[:next(i for i, f in enumerate(keras[1:], 1) if f.startswith("against"))]
    assert any(f.startswith("element 0: p = 8.36e-09 is below ε = 1e-07, so keras clips it") for f in keras)
    assert not any("cancels" in f or "rounding" in f for f in j["findings"])
    # tf-keras' element 2 (4 × 4.978951662060161 from the golden seed against the hand 19.91584631): the ε
    # inside its logs, not "19.9 against 19.9"
    assert any(f.startswith("element 2: tf-keras adds ε = 1e-07 inside log(p + ε)") for f in j["findings"])


def test_numbers_shown_differ_when_they_differ():
    # 19.91584631 (hand) against 4 × 4.978951662060161 (tf-keras, seeds.json): equal to 3 digits, not to 7
    a, b = distinct(19.91584631, 4 * 4.978951662060161)
    assert a != b and float(a) != float(b)
    assert distinct(0.5, 0.5) == ("0.5", "0.5")


def test_a_plainly_wrong_gradient_is_not_blamed_on_rounding():
    r = lossgrad("check", "bce", "--from-logits", "-y", "0,1,0,0", Z, "--my-grad", "0.1,0.2,0.3,0.4", "-f", "json")
    assert r.code == 1
    j = r.json()
    assert j["match"] is None
    assert not any("rounding" in f or "clips" in f or "cancels" in f for f in j["findings"])
    # element 1 worked by hand: torch's mean (σ(0.51) − 1)/4 = −0.0937983814, and 0.2 − (−0.0938) = 0.294
    assert "element 1: yours is 0.2, torch's -0.0938: they differ by 0.294 (3.1 relative)" in j["findings"]


def test_rounding_is_named_only_where_it_is_rounding():
    # z = 40, y = 1: σ(40) rounds to 1 in float64, so PyTorch's σ(z) − y gives 0; the true value is
    # −σ(−40) = −4.248354255291589e-18 (mpmath agrees to all digits shown), a sum over one element
    r = lossgrad("check", "bce", "--from-logits", "-y", "1", "-p", "40", "--my-grad", "-4.248354255291589e-18",
                 "-c", "torch", "-r", "sum", "-f", "json")
    assert r.code == 0 and r.json()["match"]["convention"] == "exact"
    assert any("lost to rounding" in f for f in r.json()["findings"])


def test_a_loss_alone_finds_keras_sum_for_seed_001():
    # y = 1,1,1, p = 1,1,0: Keras 3 clips p = 0 to ε = 1e-7 and sums: −log(1e−7) + 2·(−log(1 − 1e−7)) = 16.118
    # (by hand: 16.1180956 + 2e-7); tf-keras' mean is 5.1416 (seeds.json)
    r = lossgrad("check", "bce", "-y", "1,1,1", "-p", "1,1,0", "--my-loss", "16.118", "-c", "tf-keras", "-f", "json")
    assert r.code == 0, r.err
    j = r.json()
    assert j["match"] == {"convention": "keras", "reduction": "sum", "from_logits": False, "wrt": "pred",
                          "options": {}}
    assert j["nearest"]["value"] == pytest.approx(-math.log(1e-7) - 2 * math.log1p(-1e-7), rel=1e-12)
    text = " ".join(j["findings"])
    assert "yours is 16.118, tf-keras's 5.142" in text and "yours is a sum, not a mean" in text
    t = lossgrad("check", "bce", "-y", "1,1,1", "-p", "1,1,0", "--my-loss", "16.118", "-f", "table").out
    assert t.startswith("your loss matches: Keras 3") and "reduction sum" in t.splitlines()[0]


def test_a_loss_alone_names_tf_keras_epsilon_inside_the_log():
    # seed 001, element 2: both clip p = 0 to ε = 1e-7; Keras 3's term is −log(ε) = 16.118, tf-keras' is
    # −log(ε + ε) = −log(2e-7) = 15.425 (by hand): the ε inside the log is the difference, the clip they share is not
    r = lossgrad("check", "bce", "-y", "1,1,1", "-p", "1,1,0", "--my-loss", "16.118", "-c", "tf-keras", "-f", "json")
    element2 = [f for f in r.json()["findings"] if f.startswith("element 2:")]
    assert len(element2) == 1
    assert "keras's term is 16.12, tf-keras's 15.42" in element2[0]
    assert "tf-keras adds ε = 1e-07 inside log(p + ε)" in element2[0] and "15.42, 16.12 without it" in element2[0]
    assert "clips" not in element2[0]


def test_epsilon_inside_the_log_is_not_called_a_7th_digit_change_where_it_is_not():
    # y = 0, p = 2.7607649501930464e-06 (seed 000, element 3): −log(1 − p + ε) = 2.6608e-06 against −log(1 − p) =
    # 2.7608e-06 (by hand: p − ε to first order), a 4% change of the term; the other elements move by ~1e-7
    r = lossgrad("compare", "bce", "-y", "0,1,0,0", "-p", "8.358390031511923e-09,0.6248064744684293,"
                 "0.9497887268097336,2.7607649501930464e-06", "-f", "json")
    why = {tuple(d["element"]): d["why"] for d in r.json()["differences"]
           if d["convention"] == "tf-keras" and d["of"] == "grad"}
    assert "7th digit" in why[(1,)] and "7th digit" in why[(2,)]
    assert "7th digit" not in why[(3,)] and "its term here is 2.661e-06, 2.761e-06 without it" in why[(3,)]


def test_a_loss_nothing_explains_exits_1():
    # 7.5 is no convention's mean or sum here (inf, 5.37/16.1, 5.14/15.4, 33.3/100); a loss alone is not used to
    # solve for an option (one number fits any one-parameter family)
    r = lossgrad("check", "bce", "-y", "1,1,1", "-p", "1,1,0", "--my-loss", "7.5", "-f", "json")
    assert r.code == 1 and r.json()["match"] is None


def test_neither_gradient_nor_loss_is_bad_usage():
    assert_usage_error(lossgrad("check", "bce", "-y", "0,1", "-p", "0.5,0.5"), "--my-grad", "--my-loss")


def test_label_smoothing_left_on_is_found():
    # PyTorch's own numbers with label_smoothing=0.1 (tests/golden/ce.json), checked without --label-smoothing
    c = _golden("ce", convention="torch", reduction="mean", labels="index", params={"label_smoothing": 0.1})
    r = lossgrad("check", "ce", "--from-logits", "-y", ",".join(str(int(v)) for v in c["target"]),
                 "-p", _text(c["pred"]), "--my-grad", _text(c["grad"]), "-f", "json")
    assert r.code == 0, r.err
    j = r.json()
    assert j["match"]["options"] == {"label_smoothing": 0.1} and j["match"]["reduction"] == "mean"
    assert "torch" in [j["match"]["convention"]] + [a["convention"] for a in j["also"]]
    assert any("--label-smoothing = 0.1, which you did not pass" in f for f in j["findings"])


def test_pos_weight_left_on_is_found():
    # lossgrad's own torch convention with pos_weight = 3 (golden-tested in test_golden) computes the "user's"
    # numbers; checked without --pos-weight
    y, z = [0, 1, 0, 1], [-1.2, 0.51, 2.94, -0.8]
    g = lg.bce(y, z, from_logits=True, convention="torch", pos_weight=[3.0]).grad.reshape(-1)
    r = lossgrad("check", "bce", "--from-logits", "-y", "0,1,0,1", "--pred=-1.2,0.51,2.94,-0.8",
                 "--my-grad", ",".join(repr(float(v)) for v in g), "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["match"]["options"] == {"pos_weight": 3.0}


def test_huber_delta_is_found():
    # PyTorch's huber_loss with delta = 0.7 (tests/golden/huber.json), checked without --delta
    c = _golden("huber", convention="torch", reduction="mean", params={"delta": 0.7})
    y, p, g = ([v for row in c[k] for v in row] for k in ("target", "pred", "grad"))  # one output per sample
    r = lossgrad("check", "huber", "-y", _text(y), "--pred=" + _text(p), "--my-grad", _text(g), "-f", "json")
    assert r.code == 0, r.err
    assert r.json()["match"]["options"] == {"delta": 0.7}


def test_a_solved_option_must_fit_the_digits():
    # the torch label-smoothed gradient with one element moved by 10% fits no smoothing at all
    c = _golden("ce", convention="torch", reduction="mean", labels="index", params={"label_smoothing": 0.1})
    g = [row[:] for row in c["grad"]]
    g[0][0] *= 1.1
    r = lossgrad("check", "ce", "--from-logits", "-y", ",".join(str(int(v)) for v in c["target"]),
                 "-p", _text(c["pred"]), "--my-grad", _text(g), "-f", "json")
    assert r.code == 1 and r.json()["match"] is None


def test_compare_lists_a_convention_without_the_option_as_unavailable():
    # optax's softmax_cross_entropy_with_integer_labels has no ignore_index: compare shows the others, and says so
    r = lossgrad("compare", "ce", "--from-logits", "-y", "1,-100,0", "-p", "0.3,-1.2,2.0;1.5,0.2,-0.4;-2.0,3.1,0.5",
                 "--ignore-index", "-100", "-f", "json")
    assert r.code == 0, r.err
    j = r.json()
    assert "optax" not in j["conventions"] and {"exact", "torch", "keras"} <= set(j["conventions"])
    assert j["unsupported"]["optax"] == "--ignore-index: optax (JAX) has no ignore_index for ce"
    assert j["conventions"]["torch"]["n"] == 2  # the ignored sample is left out of the mean


def test_a_half_dtype_match_that_needs_a_sample_weight_gets_its_rounding_band():
    # kl summed over the outputs, by hand: d/dq Σ y·log(y/q) = −y/q = (−0.4, −1.6) at y = (0.2, 0.8), q = ½; the
    # numbers given are half of that, which a weight of ½ on the one sample explains (the float16 band of the match
    # is then measured with that weight in the batch)
    r = lossgrad("check", "kl", "--dtype", "float16", "-y", "0.2,0.8", "-p", "0.5,0.5", "--my-grad=-0.2,-0.8",
                 "-f", "json")
    assert r.code == 0
    j = r.json()
    assert j["match"]["options"] == {"sample_weight": [0.5]}
    assert any("matches exact in float16" in f and "rounding, not a formula" in f for f in j["findings"])
    # the weight is said with the band, and how far the numbers are without it: 0.2 against 0.4 (−0.4's float16
    # ulp is 2^-12, so 0.2 away is 819.2 ulp; by hand), more than any rounding
    band = next(f for f in j["findings"] if "rounding, not a formula" in f)
    assert band.startswith("with --sample-weight = 0.5, which you did not pass, your gradient matches exact")
    assert "without it, your gradient is 819 ulp of float16 from exact's at most: larger than any rounding" in \
        j["findings"][j["findings"].index(band) + 1]


def test_a_half_dtype_gradient_no_convention_rounds_to_is_said_to_be_beyond_rounding():
    # ce from logits z = (1, 2, 3), label 0, in bfloat16: the truth's gradient at class 2 is softmax(z)₂ =
    # e²/(1 + e + e²) = 0.66524 (by hand); 0.75 is 0.0848 from it, 21.7 ulp of bfloat16 (2^-8 in [0.5, 1)), more
    # than the band of 16 any rounding stays within
    far = lossgrad("check", "ce", "--from-logits", "--dtype", "bfloat16", "-y", "0", "-p", "1,2,3",
                   "--my-grad=-0.91015625,0.2451171875,0.75", "-f", "json")
    assert far.code == 1 and far.json()["match"] is None
    first = far.json()["findings"][0]
    assert first.startswith("your gradient is 22 ulp of bfloat16 from the float64 truth at most")
    assert first.endswith("larger than any rounding of bfloat16 could explain, so a formula differs")
    # 0.65625, three steps of 2^-8 below exact's 0.6640625 at class 2 (the truth rounded once), beyond the ulp
    # check allows a match: 2.3 ulp of the truth, so rounding, of an order no convention has
    near = lossgrad("check", "ce", "--from-logits", "--dtype", "bfloat16", "-y", "0", "-p", "1,2,3",
                    "--my-grad=-0.91015625,0.2451171875,0.65625", "-f", "json")
    assert near.json()["match"] is None
    assert near.json()["findings"][0] == ("your gradient matches no convention's rounding in bfloat16, but it is 2.3 "
                                          "ulp of bfloat16 from the float64 truth at most: the difference is "
                                          "rounding done in another order, not a formula")
