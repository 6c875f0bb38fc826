"""The Python API: every bad argument is an InputError or OptionError (ValueErrors) that names the parameter as a
Python caller wrote it (y, p, sample_weight, eps, ...), never a command-line option, and never another exception."""

import numpy as np
import pytest

import lossgrad
from lossgrad.errors import InputError, OptionError


def _gen():
    yield 0.5


GOOD = {"y": [1.0, 0.0], "p": [0.3, 0.6]}
CE = {"y": [0, 1], "p": [[0.3, 0.7], [0.6, 0.4]]}

# (loss, arguments, the parameter the message must name)
BAD = [
    # targets and predictions that are not arrays of real numbers
    ("bce", {"y": {"a": 1}}, "y"),
    ("bce", {"y": {1, 0}}, "y"),
    ("bce", {"y": frozenset({1})}, "y"),
    ("bce", {"y": _gen()}, "y"),
    ("bce", {"y": iter([1, 0])}, "y"),
    ("bce", {"y": [1 + 2j, 0]}, "y"),
    ("bce", {"y": np.array([1 + 0j, 0])}, "y"),
    ("bce", {"y": [10 ** 400, 0]}, "y"),
    ("bce", {"y": [-(10 ** 400), 0]}, "y"),
    ("bce", {"y": 10 ** 400, "p": 0.5}, "y"),
    ("bce", {"y": [], "p": []}, "y"),
    ("bce", {"y": [[]], "p": [[]]}, "y"),
    ("bce", {"y": [[1, 0], [1]], "p": [[0.5, 0.5], [0.5, 0.5]]}, "y"),
    ("bce", {"y": [[[1]]], "p": [[[0.5, 0.5]]]}, "y"),  # (any leading shape, but the same for both)
    ("bce", {"y": "1,0"}, "y"),
    ("bce", {"y": b"10"}, "y"),
    ("bce", {"y": None}, "y"),
    ("bce", {"y": [None, 1]}, "y"),
    ("bce", {"y": ["1", "0"]}, "y"),
    ("bce", {"y": [object(), 1]}, "y"),
    ("bce", {"y": np.array(["a", "b"])}, "y"),
    ("bce", {"y": np.array([1, 0], dtype=object)}, None),  # (object arrays of numbers are numbers)
    ("bce", {"y": [float("nan"), 0]}, "y"),
    ("bce", {"y": [float("inf"), 0]}, "y"),
    ("bce", {"y": 1.0, "p": 0.5}, "y"),
    ("bce", {"y": [2.0, 0]}, "y"),
    ("bce", {"p": {"a": 1}}, "p"),
    ("bce", {"p": {0.5, 0.6}}, "p"),
    ("bce", {"p": _gen()}, "p"),
    ("bce", {"p": [0.5 + 1j, 0.5]}, "p"),
    ("bce", {"p": [10 ** 400, 0.5]}, "p"),
    ("bce", {"p": []}, "p"),
    ("bce", {"p": [[0.5, 0.5], [0.5]]}, "p"),
    ("bce", {"p": "0.5,0.5"}, "p"),
    ("bce", {"p": None}, "p"),
    ("bce", {"p": [None, 0.5]}, "p"),
    ("bce", {"p": ["a", 0.5]}, "p"),
    ("bce", {"p": [float("nan"), 0.5]}, "p"),
    ("bce", {"p": [float("-inf"), 0.5]}, "p"),
    ("bce", {"p": [1.5, 0.5]}, "p"),
    ("bce", {"p": [-0.5, 0.5]}, "p"),
    ("bce", {"p": [0.5, 0.5, 0.5]}, "y"),
    ("bce", {"p": [[[0.5, 0.5]]]}, "p"),
    ("bce", {"p": 0.5}, "p"),
    ("mse", {"y": [1, 2, 3], "p": [1, 2]}, "y"),
    ("ce", {"y": [0, 5], "p": CE["p"]}, "y"),
    ("ce", {"y": [0.5, 1], "p": CE["p"]}, "y"),
    ("ce", {"y": [0, 1, 1], "p": CE["p"]}, "y"),
    ("ce", {"y": [0, 1], "p": [[1.5, 0.2], [0.6, 0.4]]}, "p"),
    ("ce", {"y": [0, 1], "p": [[-0.5, 0.2], [0.6, 0.4]]}, "p"),
    ("ce", {"y": [0, 1], "p": [[0.3, 0.7], [0.6]]}, "p"),
    ("ce", {"y": {0: 1}, "p": CE["p"]}, "y"),
    # per-sample weights
    ("bce", {"sample_weight": {1: 2}}, "sample_weight"),
    ("bce", {"sample_weight": {1, 2}}, "sample_weight"),
    ("bce", {"sample_weight": _gen()}, "sample_weight"),
    ("bce", {"sample_weight": [1j, 1]}, "sample_weight"),
    ("bce", {"sample_weight": [10 ** 400, 1]}, "sample_weight"),
    ("bce", {"sample_weight": [[1, 2], [3]]}, "sample_weight"),
    ("bce", {"sample_weight": [1, 2, 3]}, "sample_weight"),
    ("bce", {"sample_weight": []}, "sample_weight"),
    ("bce", {"sample_weight": [-1, 1]}, "sample_weight"),
    ("bce", {"sample_weight": [float("nan"), 1]}, "sample_weight"),
    ("bce", {"sample_weight": [float("inf"), 1]}, "sample_weight"),
    ("bce", {"sample_weight": "1,1"}, "sample_weight"),
    ("bce", {"sample_weight": ["a", 1]}, "sample_weight"),
    # the common options
    ("bce", {"from_logits": "no"}, "from_logits"),
    ("bce", {"from_logits": 1}, "from_logits"),
    ("bce", {"from_logits": None}, "from_logits"),
    ("bce", {"from_logits": [True]}, "from_logits"),
    ("bce", {"reduction": "avg"}, "reduction"),
    ("bce", {"reduction": None}, "reduction"),
    ("bce", {"reduction": ["mean"]}, "reduction"),
    ("bce", {"reduction": {}}, "reduction"),
    ("bce", {"reduction": 1}, "reduction"),
    ("bce", {"convention": {}}, "convention"),
    ("bce", {"convention": []}, "convention"),
    ("bce", {"convention": None}, "convention"),
    ("bce", {"convention": "pytorchh"}, "convention"),
    ("bce", {"convention": 1}, "convention"),
    ("bce", {"convention": "keras", "eps": "x"}, "eps"),
    ("bce", {"convention": "keras", "eps": 0}, "eps"),
    ("bce", {"convention": "keras", "eps": -1e-7}, "eps"),
    ("bce", {"convention": "keras", "eps": 0.5}, "eps"),
    ("bce", {"convention": "keras", "eps": float("nan")}, "eps"),
    ("bce", {"convention": "keras", "eps": float("inf")}, "eps"),
    ("bce", {"convention": "keras", "eps": 10 ** 400}, "eps"),
    ("bce", {"convention": "keras", "eps": [1e-7]}, "eps"),
    ("bce", {"convention": "keras", "eps": True}, "eps"),
    ("bce", {"convention": "keras", "eps": 1e-7j}, "eps"),
    ("bce", {"eps": 1e-7}, "eps"),
    ("bce", {"dtype": "float8"}, "dtype"),
    ("bce", {"dtype": None}, "dtype"),
    ("bce", {"dtype": {}}, "dtype"),
    ("ce", {"labels": "idx"}, "labels"),
    ("ce", {"labels": 1}, "labels"),
    ("ce", {"labels": []}, "labels"),
    ("bce", {"labels": "index"}, "labels"),
    # the losses' own parameters
    ("huber", {"delta": "x"}, "delta"),
    ("huber", {"delta": -1}, "delta"),
    ("huber", {"delta": 0}, "delta"),
    ("huber", {"delta": float("nan")}, "delta"),
    ("huber", {"delta": float("inf")}, "delta"),
    ("huber", {"delta": 10 ** 400}, "delta"),
    ("huber", {"delta": [1.0]}, "delta"),
    ("huber", {"delta": 1j}, "delta"),
    ("huber", {"delta": {}}, "delta"),
    ("smooth-l1", {"beta": -0.5}, "beta"),
    ("focal", {"gamma": -2}, "gamma"),
    ("focal", {"gamma": "2"}, "gamma"),
    ("focal", {"alpha": 1.5}, "alpha"),
    ("focal", {"alpha": -0.25}, "alpha"),
    ("ce", {"label_smoothing": 2}, "label_smoothing"),
    ("ce", {"label_smoothing": -0.1}, "label_smoothing"),
    ("ce", {"label_smoothing": "x"}, "label_smoothing"),
    ("ce", {"ignore_index": 1.5}, "ignore_index"),
    ("ce", {"ignore_index": "a"}, "ignore_index"),
    ("ce", {"ignore_index": 10 ** 400}, "ignore_index"),
    ("ce", {"ignore_index": float("nan")}, "ignore_index"),
    ("ce", {"ignore_index": float("inf")}, "ignore_index"),
    ("ce", {"class_weights": "a,b"}, "class_weights"),
    ("ce", {"class_weights": [-1, 1]}, "class_weights"),
    ("ce", {"class_weights": [float("nan"), 1]}, "class_weights"),
    ("ce", {"class_weights": {}}, "class_weights"),
    ("ce", {"class_weights": [[1, 2]]}, "class_weights"),
    ("ce", {"class_weights": [1, 2, 3]}, "class_weights"),
    ("ce", {"class_weights": [1j, 1]}, "class_weights"),
    ("ce", {"class_weights": [10 ** 400, 1]}, "class_weights"),
    ("ce", {"class_weights": 5}, "class_weights"),
    ("bce", {"from_logits": True, "pos_weight": "x"}, "pos_weight"),
    ("bce", {"from_logits": True, "pos_weight": [-1.0]}, "pos_weight"),
    ("bce", {"from_logits": True, "pos_weight": {}}, "pos_weight"),
    ("kl", {"log_input": "no"}, "log_input"),
    ("kl", {"log_target": 1}, "log_target"),
    ("bce", {"delta": 1.0}, "delta"),
    ("bce", {"foo": 1}, "foo"),
]


def _call(loss, kw):
    base = dict(CE if loss == "ce" else GOOD)
    if loss == "kl":
        base = {"y": [0.2, 0.8], "p": [0.5, 0.5]}
    base.update(kw)
    return lossgrad.evaluate(loss, base.pop("y"), base.pop("p"), **base)


@pytest.mark.parametrize("loss,kw,name", BAD, ids=[f"{i}-{c[0]}-{next(iter(c[1]))}" for i, c in enumerate(BAD)])
def test_a_bad_argument_is_a_lossgrad_error_naming_the_parameter(loss, kw, name):
    if name is None:  # not bad after all: a control that the cases around it fail for their own reason
        assert _call(loss, kw).value == pytest.approx(_call(loss, {"y": [1.0, 0.0]}).value)
        return
    with pytest.raises((InputError, OptionError)) as e:
        _call(loss, kw)
    assert isinstance(e.value, ValueError)
    message = str(e.value)
    assert message.startswith(name) or f" {name}" in message or f"{name}[" in message or f"{name}=" in message, \
        message
    assert "--" not in message, message  # a Python caller is told its parameters, not the command line's


def test_enough_bad_arguments():
    assert sum(1 for case in BAD if case[2] is not None) >= 80


@pytest.mark.parametrize("name", ["evaluate", "bce"])
def test_an_unknown_loss_is_an_option_error(name):
    with pytest.raises(OptionError, match="^loss: unknown loss"):
        lossgrad.evaluate("bce2", [1], [0.5])
    with pytest.raises(OptionError, match="^loss: unknown loss"):
        lossgrad.evaluate(None, [1], [0.5])  # type: ignore[arg-type]


def test_positions_name_the_arrays_as_passed():
    with pytest.raises(InputError) as e:
        lossgrad.bce([[1, 0], [0, 1]], [[0.5, 0.5], [0.5, 1.5]])
    assert str(e.value).startswith("p[1, 1]: 1.5 is outside [0, 1]")
    with pytest.raises(InputError) as e:
        lossgrad.bce([1, 0], [0.5, 0.5], sample_weight=[1, -2])
    assert str(e.value).startswith("sample_weight[1]: -2.0 is not a sample weight")


def test_zero_total_weight_is_nan_with_one_warning():
    r = lossgrad.bce([1, 0], [0.3, 0.6], sample_weight=[0, 0])
    assert np.isnan(r.value) and np.isnan(r.grad).all() and r.n == 0
    assert len(r.warnings) == 1 and "N is 0" in r.warnings[0]
    r = lossgrad.ce([0, 1], [[0.3, 0.7], [0.6, 0.4]], ignore_index=0, labels="index")
    assert r.value == pytest.approx(-np.log(0.4))  # one sample left, by hand: -log 0.4
    r = lossgrad.ce([0, 0], [[0.3, 0.7], [0.6, 0.4]], ignore_index=0)
    assert np.isnan(r.value) and len(r.warnings) == 1
    r = lossgrad.ce([0, 1], [[0.3, 0.7], [0.6, 0.4]], class_weights=[0, 0])
    assert np.isnan(r.value) and len(r.warnings) == 1
    # a sum over zero weight is 0, nothing undefined
    r = lossgrad.bce([1, 0], [0.3, 0.6], sample_weight=[0, 0], reduction="sum")
    assert r.value == 0 and r.warnings == []


def test_overflowing_weights_say_what_overflowed():
    r = lossgrad.bce([1, 0], [0.3, 0.4], sample_weight=[1e308, 1e308])
    assert not any("probability of exactly 0" in w for w in r.warnings), r.warnings
    assert any("sum of the weights is beyond the float range" in w for w in r.warnings), r.warnings
    # -1e308/0.3 overflows: the weight, not the loss, made it infinite
    assert any("the weight times a finite loss or gradient" in w for w in r.warnings), r.warnings


@pytest.mark.parametrize("convention", ["exact", "keras", "tf-keras", "torch", "optax"])
def test_a_weight_beyond_a_half_dtypes_range_is_named(convention):
    # (200 − 0)² = 40,000 and its gradient 400 are finite in float16 (largest 65,504); times the weight 100 the loss,
    # 4e6, is not: the weight made it infinite, in the formulas rounded once and in the kernels that weigh inside
    r = lossgrad.mse([[0.0], [0.0]], [[200.0], [1.0]], dtype="float16", convention=convention,
                     sample_weight=[100.0, 1.0])
    assert np.isinf(r.losses[0, 0]) and r.losses[1, 0] == 1
    assert [w for w in r.warnings if "weight times a finite loss" in w and "row 0" in w], r.warnings
    assert not any("the loss overflows" in w for w in r.warnings), r.warnings
    # a loss that is infinite before it is weighed is the loss's: no weight is named
    r = lossgrad.mse([[0.0], [0.0]], [[300.0], [1.0]], dtype="float16", convention=convention,
                     sample_weight=[1.0, 1.0])
    assert not any("weight times" in w for w in r.warnings), r.warnings


# ---------------------------------------------------------------- the same on the command line, in memory and streamed

@pytest.mark.parametrize("fmt", ["json", "csv"])
@pytest.mark.parametrize("args", [
    ["mse", "--sample-weight", "w"],
    ["ce", "--class-weights", "0,0", "--target-cols", "y"],
    ["ce", "--ignore-index", "0", "--target-cols", "y"],
])
def test_a_zero_weight_mean_is_nan_with_one_warning_line(tmp_path, args, fmt):
    from conftest import lossgrad as run

    f = tmp_path / "t.csv"
    # mse: targets, predictions, weights; ce: labels and probability rows
    f.write_text("y,p,w\n0,0.5,0\n0,0.25,0\n" if args[0] == "mse" else "y,a,b\n0,0.5,0.5\n0,0.25,0.75\n")
    r = run(*args, "--csv", f, "-f", fmt)
    assert r.code == 0, r.err
    warnings = [line for line in r.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "N is 0" in warnings[0], r.err
    assert "RuntimeWarning" not in r.err and "Error" not in r.err
    if fmt == "json":
        assert r.json()["value"] == "nan"
    else:  # every gradient is 0/0
        assert all(line.split(",")[-1] == "nan" for line in r.out.splitlines()[1:]), r.out


def test_a_one_column_csv_with_its_column_as_weights_is_an_error(tmp_path):
    from conftest import assert_usage_error, lossgrad as run

    f = tmp_path / "t.csv"
    f.write_text("1\n2\n")
    assert_usage_error(run("mse", "--csv", f, "--sample-weight", "0"), "--sample-weight: names the input's only")


def test_ce_rows_above_one_and_not_summing_to_one(tmp_path):
    from conftest import assert_usage_error, lossgrad as run

    assert_usage_error(run("ce", "-y", "0", "-p", "1.5,0.2,0.3"), "--pred: value 1: 1.5 is above 1")
    r = run("ce", "-y", "0", "-p", "0.5,0.2,0.2", "-f", "json")
    assert r.code == 0 and r.err.count("warning:") == 1 and "does not sum to 1" in r.err
    r = run("ce", "-y", "0", "-p", "0,0,0", "-f", "json")
    assert r.code == 0 and "RuntimeWarning" not in r.err and r.err.count("warning:") == 2, r.err
    # Keras divides each row by its sum: entries above 1 mean something there
    r = run("ce", "-y", "1,0,0", "-p", "1.5,0.2,0.3", "-c", "keras", "-f", "json")
    assert r.code == 0 and "keras convention divides each row by its sum" in r.err
    # by hand: Keras' row is (0.75, 0.1, 0.15), so the loss is -log 0.75
    assert r.json()["value"] == pytest.approx(-np.log(0.75), rel=1e-12)
