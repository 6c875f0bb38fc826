"""Every bad input of the contract's list, through the real CLI: exit 2, one `error:` line saying what and where,
nothing on stdout, no traceback."""

import math

import pytest

from conftest import DATA, assert_usage_error, lossgrad
from lossgrad.errors import OptionError
from lossgrad.losses import LOSSES
from lossgrad.options import setup

CASES = [
    # (args, fragments the error line must contain)
    (["bce", "-y", "0,1,0", "-p", "0.1,0.2"], ["--target", "3 values", "2 values"]),
    (["mse", "-y", "1,2;3,4", "-p", "1,2;3"], ["--pred: row 2", "has 1 value but row 1 has 2"]),
    (["mse", "-y", "1,x", "-p", "1,2"], ["--target: value 2", "'x' is not a number"]),
    (["mse", "-y", "1,,2", "-p", "1,2,3"], ["--target: value 2", "empty"]),
    (["mse", "-y", "", "-p", "1"], ["--target", "is empty"]),
    (["mse", "-y", "1,nan", "-p", "1,2"], ["--target: value 2", "not a finite number"]),
    (["mse", "-y", "1,2", "-p", "1,-inf"], ["--pred: value 2", "not a finite number"]),
    (["bce", "-y", "0,1", "-p", "0.5,1.2"], ["--pred: value 2", "outside [0, 1]", "--from-logits"]),
    (["bce", "-y", "0,-0.1", "-p", "0.5,0.2"], ["--target: value 2", "outside [0, 1]"]),
    (["bce", "--from-logits", "-y", "2,1", "-p", "0.5,3"], ["--target: value 1", "outside [0, 1]"]),
    (["ce", "--from-logits", "-y", "0,1.5", "-p", "1,2;3,4"], ["--target: value 2", "not a class index"]),
    (["ce", "--from-logits", "-y", "0,3", "-p", "1,2,3;3,4,5"], ["--target: value 2", "[0, 3)"]),
    (["ce", "-y", "0,1", "-p", "0.5,0.5;-0.2,1.2"], ["--pred: row 2, value 1", "negative"]),
    (["ce", "--from-logits", "-y", "0,1", "-p", "1,2;3,4;5,6"], ["2 class labels", "3 rows"]),
    (["huberish", "-y", "1", "-p", "1"],
     ["no such loss or command 'huberish' (did you mean 'huber'?)", "mse, mae, huber"]),
    (["bce", "-c", "pytorchh", "-y", "1", "-p", "0.5"], ["--convention", "unknown convention 'pytorchh'"]),
    (["bce", "-r", "avg", "-y", "1", "-p", "0.5"], ["--reduction", "mean, sum, none"]),
    (["bce", "--dtype", "float8", "-y", "1", "-p", "0.5"], ["--dtype", "float64, float32, float16, bfloat16"]),
    (["ce", "-c", "keras", "--dtype", "bfloat16", "--ignore-index", "1", "-y", "0,1", "-p", "0.4,0.6;0.3,0.7"],
     ["--dtype", "TensorFlow's bfloat16 kernels are reproduced for", "not for ce with --ignore-index"]),
    (["bce", "-f", "xml", "-y", "1", "-p", "0.5"], ["--format", "table, json, csv"]),
    (["bce", "-y", "1"], ["--pred", "is missing"]),
    (["bce", "--eps", "1e-7", "-y", "1", "-p", "0.5"], ["--eps", "does not clip"]),
    (["bce", "-c", "optax", "-y", "1", "-p", "0.5"], ["optax has no bce on probabilities"]),
    (["ce", "-c", "torch", "-y", "0", "-p", "0.5,0.5"], ["PyTorch has no cross entropy on probabilities"]),
    (["mse", "--from-logits", "-y", "1", "-p", "0.5"], ["No such option: --from-logits"]),
    (["bce", "--csv", DATA / "bad_number.csv", "--from-logits"], ["bad_number.csv:3:3", "'abc' is not a number"]),
    (["bce", "--csv", DATA / "ragged.csv", "--from-logits"], ["ragged.csv:3", "3 fields", "header has 2"]),
    (["bce", "--csv", DATA / "empty.csv"], ["empty.csv", "no data"]),
    (["bce", "--csv", DATA / "header_only.csv"], ["header_only.csv", "no data rows"]),
    (["mse", "--csv", DATA / "nan.csv"], ["nan.csv:2:3", "not a finite number"]),
    (["bce", "--csv", DATA / "binary.csv"], ["binary.csv", "binary file"]),
    (["bce", "--csv", DATA / "latin1.csv"], ["latin1.csv:3", "not UTF-8"]),
    (["bce", "--csv", DATA / "missing.csv"], ["--csv", "no such file"]),
    (["bce", "--csv", DATA], ["--csv", "is a folder"]),
    (["bce", "--csv", DATA / "crlf.csv", "--pred-cols", "q"], ["--pred-cols", "no column named 'q'", "y, p"]),
    (["mse", "-y", "1,2", "-p", "1,2", "--sample-weight", "1"], ["--sample-weight: has 1 weight but there are 2"]),
    (["ce", "--from-logits", "-y", "0", "-p", "1,2;3,4"], ["--target: has 1 class label but --pred has 2 rows"]),
    (["ce", "--from-logits", "-y", "0,1", "-p", "1,2;3,4", "--class-weights", "1"],
     ["--class-weights: has 1 weight but the predictions have 2 classes"]),
    (["ce", "--from-logits", "-y", "0,1", "-p", "1,2;3,4", "--no-jit"], ["error: --no-jit: chooses between"]),
    (["mse", "-y", "1", "-p=-1"], ["--pred: value 1: '=-1' is not a number", "--pred -1 or --pred=-1"]),
    (["mse", "-y=0.5,2", "-p", "1,2"], ["--target: value 1: '=0.5' is not a number", "--target=0.5"]),
    (["ce", "--from-logits", "--labels", "onehot", "-y", "2,0", "-p", "0.3,-1.2,2.0;1.5,0.2,-0.4"],
     ["--target: one-hot/probability targets need one column per class (3), got 1", "--labels index"]),
    # a value beyond the dtype's largest, shown as given: float16's is (2 − 2⁻¹⁰)·2¹⁵ = 65504, bfloat16's
    # (2 − 2⁻⁷)·2¹²⁷ ≈ 3.3895314e+38, float32's (2 − 2⁻²³)·2¹²⁷ ≈ 3.4028235e+38
    (["mse", "-y", "1,2", "-p", "70000,1", "--dtype", "float16"],
     ["--pred: value 1: 70000.0 is too large for float16", "largest finite number is 65504"]),
    (["mse", "-y", "3.4e38,2", "-p", "1,1", "--dtype", "bfloat16"],
     ["--target: value 1: 3.4e+38 is too large for bfloat16", "3.3895314e+38"]),
    (["gaussian-nll", "-y", "1", "-p", "1", "--var", "1e39", "--dtype", "float32"],
     ["--var: value 1: 1e+39 is too large for float32", "3.4028235e+38"]),
    (["mse", "-c", "torch", "--autocast", "--dtype", "float16", "-y", "1,2", "-p", "1,1e5"],
     ["--pred: value 2: 100000.0 is too large for float16", "65504"]),
]


@pytest.mark.parametrize("args,fragments", CASES, ids=[" ".join(map(str, a))[:60] for a, _ in CASES])
def test_bad_input_is_one_error_line(args, fragments):
    assert_usage_error(lossgrad(*args), *fragments)


# a refusal's advice names only what takes the same options: another dtype where the convention takes them there,
# the exact convention where it takes them; where no dtype does, the convention's own refusal
ADVICE = [
    (["bce", "--from-logits", "--pos-weight", "2", "-c", "keras", "--dtype", "bfloat16", "-y", "1,0", "-p", "0.3,0.2"],
     "error: --pos-weight: Keras 3 (keras 3.x, tf.keras in TF >= 2.16) has no pos_weight for bce", ()),
    (["ce", "-c", "keras", "--dtype", "bfloat16", "--ignore-index", "1", "-y", "0,1", "-p", "0.4,0.6;0.3,0.7"],
     "; use --dtype float32 or float64, or --convention exact", ("float32",)),
    (["ce", "-c", "keras", "--dtype", "bfloat16", "--eps", "0.01", "--ignore-index", "1", "-y", "0,1", "-p",
      "0.4,0.6;0.3,0.7"], "; use --dtype float32 or float64", ("float32", "--eps 0.01")),
    (["dice", "-c", "exact", "--dtype", "bfloat16", "--autocast", "-y", "1,0", "-p", "0.3,0.2"],
     "no autocast changes; choose --convention keras", ("keras",)),
    (["focal", "-c", "exact", "--dtype", "float16", "--autocast", "-y", "1,0", "-p", "0.3,0.2"],
     "no autocast changes; choose --convention keras or tf-keras", ("keras", "tf-keras")),
    (["ctc", "-c", "exact", "--dtype", "bfloat16", "--autocast", "-y", "1", "-p", "0.3,0.2"],
     "no framework's mixed policy is reproduced for ctc with these options", ()),
]


@pytest.mark.parametrize("args,advice,works", ADVICE, ids=[" ".join(a)[:60] for a, _, _ in ADVICE])
def test_refusals_advise_only_what_works(args, advice, works):
    r = lossgrad(*args)
    assert_usage_error(r, advice)
    assert r.err.strip().endswith(advice) or r.err.startswith(advice)
    for way in works:  # (each way the advice names runs)
        if way.startswith("--eps"):
            continue
        swapped = list(args)
        flag = "--dtype" if way.startswith("float") else "-c"
        swapped[swapped.index(flag) + 1] = way
        ok = lossgrad(*swapped)
        assert ok.code == 0, (swapped, ok.err)


def test_bad_value_in_piped_csv_names_stdin_line_and_column():
    r = lossgrad("bce", input="y,p\n0,0.5\n1,1.5\n")
    assert_usage_error(r, "<stdin>:3:3", "1.5", "outside [0, 1]")


@pytest.mark.parametrize("sep", [";", "|", ":"])
def test_csv_of_another_delimiter_says_which_to_give(sep):
    for text in (f"t{sep}p\n1{sep}0.5\n", f"1{sep}0.5\n0{sep}1\n"):  # (the first line is read as a header)
        field = text.splitlines()[1]
        assert_usage_error(lossgrad("bce", "--from-logits", input=text), "<stdin>:2:1:", f"{field!r} is not a number",
                           f"are the fields separated by {sep!r}? give --delimiter {sep!r}")


def test_bad_label_in_csv_names_its_column():
    r = lossgrad("ce", "--from-logits", input="label,a,b\n0,1,2\n 7,1,2\n")
    assert_usage_error(r, "<stdin>:3:2", "not a class index")


def test_odd_column_count_explains_the_default_layout():
    r = lossgrad("mse", input="a,b,c\n1,2,3\n")
    assert_usage_error(r, "<stdin>:1", "3 columns", "--target-cols")


def test_unreadable_file(tmp_path):
    f = tmp_path / "locked.csv"
    f.write_text("1,0.5\n")
    f.chmod(0)
    r = lossgrad("bce", "--csv", f)
    if r.code == 0:  # root reads anything
        pytest.skip("running as root: permissions are not enforced")
    assert_usage_error(r, "--csv")


def test_infinite_loss_is_a_result_with_a_hint():
    r = lossgrad("bce", "-y", "1,1,1", "-p", "1,1,0", "-f", "json")
    assert r.code == 0
    out = r.json()
    assert out["value"] == "inf" and out["losses"][2] == "inf" and out["grad"][2] == "-inf"
    warning = r.err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: ") and "--from-logits" in warning[0]


def test_internal_failure_is_one_line_and_exit_70(monkeypatch, capsys):
    from lossgrad import cli, commands

    def boom(*a, **k):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(commands, "run_loss", boom)
    with pytest.raises(SystemExit) as e:
        cli.main(["mse", "-y", "1", "-p", "1"])
    assert e.value.code == 70
    err = capsys.readouterr().err
    assert err.startswith("error: internal failure") and "--debug" in err and "Traceback" not in err


def test_no_input_on_a_terminal_says_how_to_give_some(monkeypatch, capsys):
    from lossgrad import cli

    monkeypatch.setattr(cli.sys.stdin, "isatty", lambda: True, raising=False)
    with pytest.raises(SystemExit) as e:
        cli.main(["bce"])
    assert e.value.code == 2
    assert "no input" in capsys.readouterr().err


@pytest.mark.parametrize("args,fragments", [
    (["mse", "-y", "1", "-p", "2", "--delta", "2"], ["No such option: --delta"]),
    (["huber", "-y", "1", "-p", "2", "--delta", "0"], ["--delta", "must be positive"]),
    (["smooth-l1", "-y", "1", "-p", "2", "--beta", "-1"], ["--beta", "zero or more"]),
    (["compare", "mse", "-y", "1", "-p", "2", "--delta", "2"], ["--delta", "applies to huber, not to mse"]),
    (["mae", "-c", "optax", "-y", "1", "-p", "2"], ["optax has no absolute-error loss"]),
    (["logcosh", "-c", "torch", "-y", "1", "-p", "2"], ["PyTorch has no log-cosh loss"]),
    (["smooth-l1", "-c", "keras", "-y", "1", "-p", "2"], ["Keras has no smooth L1 loss"]),
])
def test_loss_parameters_and_missing_losses(args, fragments):
    assert_usage_error(lossgrad(*args), *fragments)


NUMBERS = [(loss.name, p.name) for loss in LOSSES.values() for p in loss.params if not p.flag and not p.vector]


@pytest.mark.parametrize("loss,name", NUMBERS, ids=[f"{a}-{b}" for a, b in NUMBERS])
def test_every_number_option_of_every_loss_must_be_finite_before_its_range(loss, name):
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(OptionError) as e:
            setup(loss, **{name: bad})
        assert e.value.where == name and e.value.what == f"must be a finite number, got {bad!r}"


@pytest.mark.parametrize("args,option", [
    (["huber", "-y", "1", "-p", "2", "--delta", "inf"], "--delta"),
    (["smooth-l1", "-y", "1", "-p", "2", "--beta", "inf"], "--beta"),
    (["triplet", "-y", "1", "-p", "2", "--negative", "1", "--margin", "nan"], "--margin"),
    (["bce", "-c", "keras", "-y", "1", "-p", "0.5", "--eps", "nan"], "--eps"),
    (["plot", "mse", "--target", "inf"], "--target"),
])
def test_a_number_option_that_is_not_finite_says_so(args, option):
    assert_usage_error(lossgrad(*args), f"error: {option}: must be a finite number, got ")


@pytest.mark.parametrize("args,fragments", [
    (["bce", "-c", "torch", "-y", "1", "-p", "0.5", "--label-smoothing", "0.1"], ["--label-smoothing", "PyTorch"]),
    (["ce", "-c", "keras", "--from-logits", "-y", "0", "-p", "1,2", "--label-smoothing", "0.1"],
     ["--label-smoothing", "class-index targets"]),
    (["bce", "-y", "1", "-p", "0.5", "--label-smoothing", "1.5"], ["--label-smoothing", "[0, 1]"]),
    (["mse", "-y", "1", "-p", "0.5", "--label-smoothing", "0.1"], ["No such option: --label-smoothing"]),
])
def test_label_smoothing_errors(args, fragments):
    assert_usage_error(lossgrad(*args), *fragments)


@pytest.mark.parametrize("args,fragments", [
    (["hinge", "-y", "1,2", "-p", "1,1"], ["--target: value 2", "hinge targets are -1/1 (or 0/1)"]),
    (["hinge", "-y", "0,-1", "-p", "1,1"], ["--target: value 2", "not both"]),
    (["squared-hinge", "-c", "torch", "-y", "1", "-p", "1"], ["PyTorch has no squared hinge"]),
])
def test_hinge_errors(args, fragments):
    assert_usage_error(lossgrad(*args), *fragments)


def test_hinge_kink_follows_each_framework():
    # 1 - y p = 0 at p = y = 1: TF's maximum passes -y, JAX's splits it, the exact convention takes 0 (golden files
    # hold the framework numbers)
    import json

    out = json.loads(lossgrad("compare", "hinge", "-y", "1", "-p", "1", "-r", "sum", "-f", "json").out)
    grads = {c: v["grad"][0] for c, v in out["conventions"].items()}
    assert grads == {"exact": 0.0, "keras": -1.0, "tf-keras": -1.0, "optax": -0.5}
    assert any("kink" in d["why"] for d in out["differences"])


@pytest.mark.parametrize("args,fragments", [
    (["ce", "--from-logits", "-c", "optax", "-y", "0", "-p", "1,2", "--ignore-index", "-100"],
     ["--ignore-index", "optax"]),
    (["ce", "--from-logits", "-y", "1,0;0,1", "-p", "1,2;3,4", "--ignore-index", "1"], ["one-hot"]),
    (["ce", "--from-logits", "-y", "0", "-p", "1,2", "--ignore-index", "0.5"], ["--ignore-index", "whole number"]),
    (["ce", "--from-logits", "-y", "-100,1", "-p", "1,2;3,4"], ["not a class index", "--ignore-index"]),
    (["bce", "-y", "1", "-p", "0.5", "--ignore-index", "1"], ["No such option: --ignore-index"]),
])
def test_ignore_index_errors(args, fragments):
    assert_usage_error(lossgrad(*args), *fragments)


def test_ignore_index_leaves_samples_out_of_the_mean(tmp_path):
    # worked by hand: the second sample is left out, so the mean is that of the first and third over N = 2
    import json
    import math

    out = json.loads(lossgrad("ce", "--from-logits", "-y", "2,-100,0", "-p", "1,2,3;0,0,0;3,1,0",
                              "--ignore-index", "-100", "-f", "json").out)
    lse = lambda z: math.log(sum(math.exp(v) for v in z))  # noqa: E731
    want = ((lse([1, 2, 3]) - 3) + (lse([3, 1, 0]) - 3)) / 2
    assert out["n"] == 2 and out["value"] == pytest.approx(want, rel=1e-15)
    assert out["losses"][1] == 0.0 and out["grad"][1] == [0.0, 0.0, 0.0]
    # batch mode from a file counts N after reading (the row count would be 3)
    f = tmp_path / "t.csv"
    f.write_text("label,a,b,c\n2,1,2,3\n-100,0,0,0\n0,3,1,0\n")
    r = lossgrad("ce", "--from-logits", "--csv", f, "--ignore-index", "-100", "-f", "csv")
    assert r.code == 0 and "N=2 samples" in r.err
    assert float(r.out.splitlines()[1].split(",")[0]) == pytest.approx(lse([1, 2, 3]) - 3, rel=1e-15)


@pytest.mark.parametrize("args,fragments", [
    (["ce", "--from-logits", "-y", "0", "-p", "1,2", "--class-weights", "1,2,3"], ["--class-weights", "3 weights",
                                                                                    "2 classes"]),
    (["ce", "--from-logits", "-c", "optax", "-y", "0", "-p", "1,2", "--class-weights", "1,2"], ["optax"]),
    (["ce", "--from-logits", "-y", "0", "-p", "1,2", "--class-weights", "1,-2"], ["non-negative"]),
])
def test_class_weight_errors(args, fragments):
    assert_usage_error(lossgrad(*args), *fragments)


def test_class_weights_divide_by_the_sum_of_weights(tmp_path):
    # frameworks.md's worked example (PyTorch): logits [[.2,.3,.5],[.5,.2,.3]], targets [2, 1], weights [2, 4, 6]:
    # none [5.6390, 4.9593], mean 10.598/10 = 1.0598; Keras' class_weight divides by N: 5.2992
    import json

    args = ["-y", "2,1", "-p", ".2,.3,.5;.5,.2,.3", "--class-weights", "2,4,6", "-f", "json"]
    torch_mean = json.loads(lossgrad("ce", "--from-logits", "-c", "torch", *args).out)
    keras_mean = json.loads(lossgrad("ce", "--from-logits", "-c", "keras", *args).out)
    assert torch_mean["n"] == 10.0 and torch_mean["value"] == pytest.approx(1.0598, abs=5e-5)
    assert keras_mean["n"] == 2 and keras_mean["value"] == pytest.approx(5.2992, abs=5e-5)
    f = tmp_path / "w.csv"
    f.write_text("label,a,b,c\n2,.2,.3,.5\n1,.5,.2,.3\n")
    r = lossgrad("ce", "--from-logits", "--csv", f, "--class-weights", "2,4,6", "-f", "csv")
    assert r.code == 0 and "N=10.0" in r.err


@pytest.mark.parametrize("args,fragments", [
    (["bce", "-y", "1", "-p", "0.3", "--pos-weight", "3"], ["--pos-weight", "--from-logits"]),
    (["bce", "--from-logits", "-c", "optax", "-y", "1", "-p", "0.3", "--pos-weight", "3"], ["--pos-weight", "optax"]),
    (["bce", "--from-logits", "-y", "1,0;0,1", "-p", "1,2;3,4", "--pos-weight", "1,2,3"],
     ["--pos-weight", "3 weights"]),
])
def test_pos_weight_errors(args, fragments):
    assert_usage_error(lossgrad(*args), *fragments)


def test_an_infinite_keras_loss_in_float16_says_its_clip_bound_is_1(capsys: pytest.CaptureFixture[str]) -> None:
    """Keras clips p to [ε, 1 − ε]; in float16 1 − 10⁻⁷ is 1, so p = 1 against a target of 0.3 gives log 0."""
    from lossgrad import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["bce", "-y", "0.3,0.5", "-p", "1,0.7", "-c", "keras", "--dtype", "float16"])
    assert e.value.code == 0
    err = capsys.readouterr().err
    assert "1 infinite loss (first at row 0, column 0): a probability of exactly 1 for a target below 1" in err
    assert "1 − ε is 1 in float16" in err and "convention keras" not in err


def test_compare_and_check_never_write_over_a_tensor_input(tmp_path):
    """-o names a file that compare or check reads (a tensor input, --my-grad's file): refused, the file kept."""
    import numpy as np

    from conftest import lossgrad as run

    for name, a in (("a.npy", [[0.0, 0.0]]), ("pos.npy", [[1.0, 0.0]]), ("neg.npy", [[0.0, 0.5]]),
                    ("g.npy", [[0.0, 0.0]])):
        np.save(tmp_path / name, np.array(a))
    before = {f: (tmp_path / f).read_bytes() for f in ("neg.npy", "g.npy")}
    base = ("triplet", "--pred", "a.npy", "--target", "pos.npy", "--negative", "neg.npy")
    r = run("compare", *base, "-o", "neg.npy", cwd=tmp_path)
    assert r.code == 2 and "neg.npy is also the input (--negative neg.npy)" in r.err, r.err
    r = run("check", *base, "--my-grad", "g.npy", "-o", "g.npy", cwd=tmp_path)
    assert r.code == 2 and "g.npy is also the input (--my-grad g.npy)" in r.err, r.err
    assert {f: (tmp_path / f).read_bytes() for f in before} == before


def test_a_my_grad_file_must_be_whole_and_in_its_inputs_shape(tmp_path):
    """check's --my-grad FILE: an empty one is an error line (it was an internal failure, exit 70), and one of the
    predictions' size in another shape (a [5, 2, 4] gradient for [2, 5, 4] predictions) is refused, not read
    flattened; a further input's gradient likewise takes that input's shape."""
    import numpy as np

    from conftest import assert_usage_error, lossgrad as run

    np.save(tmp_path / "p.npy", np.zeros((2, 5, 4)))
    np.save(tmp_path / "y.npy", np.zeros((2, 5, 4)))
    np.save(tmp_path / "empty.npy", np.zeros(0))
    np.save(tmp_path / "swapped.npy", np.zeros((5, 2, 4)))
    base = ("check", "mse", "--pred", "p.npy", "--target", "y.npy")
    assert_usage_error(run(*base, "--my-grad", "empty.npy", cwd=tmp_path),
                       "error: --my-grad: empty.npy is empty (shape [0])")
    assert_usage_error(run(*base, "--my-grad", "swapped.npy", cwd=tmp_path),
                       "error: --my-grad: swapped.npy has shape [5, 2, 4]; give it in the predictions' shape, "
                       "[2, 5, 4]")
    np.save(tmp_path / "a.npy", np.zeros((3, 4)))
    np.save(tmp_path / "flat.npy", np.zeros(12))
    r = run("check", "triplet", "--pred", "a.npy", "--target", "a.npy", "--negative", "a.npy", "--my-grad-negative",
            "flat.npy", cwd=tmp_path)
    assert_usage_error(r, "error: --my-grad-negative: flat.npy has shape [12]; give it in --negative's shape, [3, 4]")
