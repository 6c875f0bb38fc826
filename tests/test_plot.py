"""`lossgrad plot`: the curves are lossgrad's own per-element numbers, the frameworks' clips show in them, the
terminal picture and the PNG are drawn, and bad options get one clear error line."""

import subprocess
import sys

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, lossgrad as run
from lossgrad.plot import curves, terminal, write_png


@pytest.mark.parametrize("from_logits", [False, True])
def test_curves_are_lossgrads_own_per_element_numbers(from_logits):
    c = curves("bce", target=1, from_logits=from_logits, points=101)
    assert list(c.grads) == (["exact", "keras", "tf-keras", "torch", "optax"] if from_logits
                             else ["exact", "keras", "tf-keras", "torch"])
    for name in c.grads:
        r = lossgrad.bce(np.ones_like(c.x), c.x, from_logits=from_logits, reduction="none", convention=name)
        np.testing.assert_array_equal(c.losses[name], r.losses)
        np.testing.assert_array_equal(c.grads[name], r.grad)


def test_exact_curve_is_the_formula():
    # by hand: bce on probabilities with y = 1 is −log p, its derivative −1/p; from logits σ(z) − 1 = −1/(1 + e^z)
    c = curves("bce", target=1, points=201)
    np.testing.assert_allclose(c.grads["exact"], -1 / c.x, rtol=1e-15)
    np.testing.assert_allclose(c.losses["exact"], -np.log(c.x), rtol=1e-15)
    z = curves("bce", target=1, from_logits=True, range=(-5, 5), points=11)
    np.testing.assert_allclose(z.grads["exact"], -1 / (1 + np.exp(z.x)), rtol=1e-14)


def test_worked_point_bce_gradient_at_one_half_is_minus_two():
    # by hand: −1/p at p = 0.5 is −2 (the middle of 3 points from 0.25 to 0.75 on a linear axis)
    c = curves("bce", target=1, range=(0.25, 0.75), points=3, log_x=False, conventions="exact")
    assert c.x[1] == 0.5 and c.grads["exact"][1] == -2.0
    assert c.losses["exact"][1] == pytest.approx(np.log(2), rel=1e-15)


def test_keras_clip_makes_the_gradient_exactly_zero_below_eps():
    c = curves("bce", target=1, points=401)
    below, inside = c.x < 1e-7, (c.x > 1e-7) & (c.x < 1 - 1e-7)
    assert below.sum() > 50 and inside.sum() > 50
    for name in ("keras", "tf-keras"):
        assert (c.grads[name][below] == 0).all()
        assert (c.grads[name][inside] < 0).all()
    assert (c.grads["exact"][below] < -1e7).all()
    # --eps moves the clip
    wide = curves("bce", target=1, points=401, eps=1e-3, conventions="keras")
    clipped = (wide.x < 1e-3) | (wide.x > 1 - 1e-3)
    assert (wide.grads["keras"][clipped] == 0).all() and (wide.grads["keras"][~clipped] < 0).all()


def test_probabilities_are_log_spaced_towards_both_ends():
    c = curves("bce", points=31)  # 1e-15 … 1 − 1e-15: t = log10(p/(1 − p)) from −15 to 15, in steps of 1
    np.testing.assert_allclose(np.diff(c.at), 1.0, rtol=1e-3)
    # (p next to 1 is rounded to a double: 1 − p is 1.1e-15 at the top end)
    np.testing.assert_allclose(np.log10(c.x) - np.log10(1 - c.x), c.at, atol=0.05)
    assert c.axis == "logit" and curves("poisson", points=5).axis == "log"
    assert curves("mse", points=5).x.tolist() == [-2.0, -0.5, 1.0, 2.5, 4.0]  # target 1 ± 3


def test_terminal_picture_has_every_convention_and_fits_the_width():
    c = curves("bce", target=1)
    text = terminal(c, width=80, color=False)
    for name in ("exact", "keras", "tf-keras", "torch"):
        assert f" {name}" in text
    assert "optax: not drawn" in text and "--from-logits" in text
    assert "bce loss ℓ, target 1" in text and "bce gradient ∂ℓ/∂p, target 1" in text
    assert "sign·log10(1 + |y|)" in text  # the gradient spans 15 decades
    assert max(len(line) for line in text.splitlines() if line.startswith(("┌", "│", "└"))) <= 80
    assert terminal(c, what="loss", width=80, color=False).count("┌") == 1


def test_the_command_prints_the_pictures():
    r = run("plot", "bce", "--from-logits", "--range", "-40,40", "--what", "grad", env={"COLUMNS": "100"})
    assert r.code == 0, r.err
    assert "bce gradient ∂ℓ/∂z, target 1" in r.out and "optax" in r.out and "x: logit z" in r.out
    assert "\x1b[" not in r.out  # no colour into a pipe


def test_other_commands_do_not_import_the_plotting_libraries():
    code = ("import sys\nfrom lossgrad import cli\ntry:\n    cli.main(['mse', '-y', '1', '-p', '2', '-f', 'json'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted({'uniplot', 'matplotlib'} & set(sys.modules)), file=sys.stderr)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stderr.strip().splitlines()[-1] == "[]", p.stderr


def test_png_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "bce.png"
    r = run("plot", "bce", "--png", out)
    assert r.code == 0, r.err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [f.name for f in tmp_path.iterdir()] == ["bce.png"]  # no temporary file left beside it
    write_png(curves("mse", points=11), str(tmp_path / "mse.png"), what="grad")
    assert (tmp_path / "mse.png").read_bytes()[:4] == b"\x89PNG"


def test_png_without_matplotlib_says_how_to_install_it(tmp_path):
    code = ("import sys\nsys.modules['matplotlib'] = None\nfrom lossgrad import cli\n"
            f"cli.main(['plot', 'bce', '--png', {str(tmp_path / 'x.png')!r}])")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("error: --png: needs matplotlib") and "lossgrad[png]" in p.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args,fragments", [
    (["bce", "--range", "1,0"], ["--range", "LO must be below HI"]),
    (["bce", "--range", "a,b"], ["--range", "not two numbers"]),
    (["bce", "--range", "0,0.5"], ["--range", "strictly between 0 and 1"]),
    (["poisson", "--range", "-1,2"], ["--range", "above 0", "--from-logits"]),
    (["bce", "--from-logits", "--log-x"], ["--log-x", "probabilities and rates"]),
    (["bce", "--what", "hessian"], ["--what", "loss, grad or both"]),
    (["bce", "--y-scale", "cubic"], ["--y-scale", "linear, symlog"]),
    (["bce", "-c", "caffe"], ["--convention", "unknown convention 'caffe'"]),
    (["bce", "-c", "exact,optax"], ["--convention", "optax has no bce on probabilities"]),
    (["bce", "--points", "1"], ["--points", "2 to 100000"]),
    (["bce", "--target", "2"], ["--target", "2.0"]),
    (["ce"], ["loss of a whole row"]),
    (["softmax"], ["LOSS: unknown loss 'softmax'"]),
    # a linear axis labels up to ±1e150; mse's loss (p - 1)² passes 1e150 beyond |p| ≈ 1e75
    (["mse", "--range", "-1e308,1e308", "--linear-x"], ["--range", "-1e+308,1e+308 is beyond", "-1e+150,1e+150"]),
    (["bce", "--from-logits", "--range", "-1e200,0"], ["--range", "is beyond what a linear axis draws"]),
    (["mse", "--range", "-1e76,1e76", "--y-scale", "linear"], ["--y-scale", "the loss reaches 1e+152", "symlog"]),
])
def test_bad_options_give_one_clear_error(args, fragments):
    assert_usage_error(run("plot", *args), *fragments)


def test_a_range_as_wide_as_a_linear_axis_draws(tmp_path):
    r = run("plot", "mse", "--range", "-1e150,1e150")
    assert r.code == 0 and "exact" in r.out, r.err


def test_half_dtype_draws_the_conventions_that_compute_it_and_notes_the_others():
    c = curves("bce", target=1, from_logits=True, dtype="bfloat16", range=(-2, 2), points=5, log_x=False)
    assert "exact" in c.grads and set(c.grads) | set(c.unsupported) == set(lossgrad.CONVENTIONS)
    for name in lossgrad.CONVENTIONS:
        try:
            r = lossgrad.bce(np.ones_like(c.x), c.x, from_logits=True, reduction="none", convention=name,
                             dtype="bfloat16")
        except lossgrad.OptionError as e:  # refused by the API: noted, not drawn
            assert name not in c.grads and c.unsupported[name] == e.what
            continue
        np.testing.assert_array_equal(c.losses[name], r.losses)
        np.testing.assert_array_equal(c.grads[name], r.grad)
    # by hand at z = 0: log 2 = 0.693147… is 177.45 bfloat16 steps of 2⁻⁸ in [0.5, 1), so 177·2⁻⁸ = 0.69140625;
    # σ(0) − 1 = −0.5 exactly
    assert c.x[2] == 0.0 and c.losses["exact"][2] == 0.69140625 and c.grads["exact"][2] == -0.5
    out = run("plot", "bce", "--from-logits", "--dtype", "bfloat16", "--what", "loss", env={"COLUMNS": "100"})
    assert out.code == 0, out.err
    for name in c.unsupported:
        assert f"{name}: not drawn: " in out.out
    for name in c.unsupported:  # named with -c, a convention that does not compute the dtype is still an error
        assert_usage_error(run("plot", "bce", "--from-logits", "--dtype", "bfloat16", "-c", name), "--dtype")
