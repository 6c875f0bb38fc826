"""The command line's own conveniences: --version, shell completion, and --help showing each option's choices."""

import math
import os
import subprocess
import sys

import lossgrad
from conftest import assert_usage_error, lossgrad as run


def test_version():
    for flag in ("--version", "-V"):
        r = run(flag)
        assert r.code == 0 and r.out == f"lossgrad {lossgrad.__version__}\n"


def test_completion_script_and_answers():
    r = run("completion", "bash")
    assert r.code == 0 and "_LOSSGRAD_COMPLETE=complete_bash" in r.out and "complete -o default" in r.out
    assert_usage_error(run("completion", "tcsh"), "SHELL: unknown shell 'tcsh'; choose one of bash, zsh")

    def complete(words: str, cword: int) -> list[str]:
        env = {**os.environ, "_LOSSGRAD_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        proc = subprocess.run([sys.executable, "-m", "lossgrad"], env=env, capture_output=True, text=True, timeout=60)
        return proc.stdout.split()

    assert complete("lossgrad bc", 1) == ["bce"]
    assert "--from-logits" in complete("lossgrad bce --from", 2)


def test_help_shows_choices():
    out = run("ce", "--help").out
    for choices in ("[mean|sum|none]", "[exact|keras|tf-keras|torch|optax]", "[float64|float32|float16|bfloat16]",
                    "[table|json|csv]", "[auto|index|onehot]"):
        assert choices in out


def test_what_people_type_for_conventions_and_reductions():
    y, p = "0,1,0,0", "8.4e-9,0.62,0.95,2.8e-6"
    for alias, name in (("pytorch", "torch"), ("PyTorch", "torch"), ("jax", "optax"), ("tf.keras", "tf-keras"),
                        ("keras2", "tf-keras"), ("keras3", "keras")):
        if name == "optax":
            r = run("bce", "--from-logits", "-y", y, "-p", "1,2,3,4", "-c", alias, "-f", "json")
        else:
            r = run("bce", "-y", y, "-p", p, "-c", alias, "-f", "json")
        assert r.code == 0 and r.json()["convention"] == name, (alias, r.err)
    assert_usage_error(run("bce", "-y", y, "-p", p, "-c", "tensorflow"), "TF 2.16 and later come with Keras 3",
                       "(--convention keras)", "(--convention tf-keras)")
    keras = run("mse", "-y", "1,2", "-p", "2,4", "-c", "keras", "-r", "sum_over_batch_size", "-f", "json").json()
    assert keras["reduction"] == "mean" and keras["value"] == 2.5  # ((2-1)² + (4-2)²) / 2, by hand


def test_batchmean_is_pytorchs_kl_reduction():
    # PyTorch's kl_div: 'mean' divides the summed terms by every element (4), 'batchmean' by the batch size (2)
    args = ["kl", "-y", "0.2,0.8;0.5,0.5", "-p", "0.3,0.7;0.6,0.4", "-c", "torch", "-f", "json"]
    mean, batchmean = run(*args).json(), run(*args, "-r", "batchmean").json()
    total = run(*args, "-r", "sum").json()["value"]
    assert mean["value"] == total / 4 and batchmean["value"] == total / 2
    assert_usage_error(run("mse", "-y", "1", "-p", "2", "-r", "batchmean"), "batchmean is PyTorch's kl_div reduction")


def test_csv_typed_at_a_terminal_ends_at_one_ctrl_d():
    """`--csv -` on a terminal: a hint on how to end, and one Ctrl-D (not two) ends the input."""
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: lossgrad reading the terminal
        os.execvp(sys.executable, [sys.executable, "-m", "lossgrad", "bce", "--from-logits", "--csv", "-",
                                   "-f", "json"])
    out = b""

    def read_for(seconds: float) -> bytes:
        got, end = b"", time.monotonic() + seconds
        while time.monotonic() < end and select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        return got

    out += read_for(5)  # (the hint, once lossgrad has started)
    os.write(fd, b"target,logit\n1,0.5\n")
    os.write(fd, b"\x04")  # one Ctrl-D on an empty line
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline:
        out += read_for(0.5)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    if not done:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert done, "a second Ctrl-D was needed: " + text
    # bce from logits, y = 1, z = 0.5: log(1 + e^−0.5) = 0.4740769841801067 (by hand; the mean of one sample)
    assert "Ctrl-D on an empty line ends it" in text and "\"value\": 0.4740769841801067" in text


def test_an_option_of_one_value_given_twice_is_refused():
    ce = ["ce", "--from-logits", "-p", "0.3,-1.2,2.0;1.5,0.2,-0.4", "-y", "2,0"]
    for args, said in [
        (["--ignore-index", "0", "--ignore-index", "2"], "--ignore-index is given twice ('0', then '2')"),
        (["-r", "sum", "--reduction=mean"], "-r/--reduction is given twice ('sum', then 'mean')"),
        (["-fjson", "-f", "csv"], "-f/--format is given twice ('json', then 'csv')"),
    ]:
        assert_usage_error(run(*ce, *args), f"error: {said}; it takes one value: give it once")
    assert_usage_error(run("compare", "mse", "-y", "1", "-p", "1", "--pred", "2"), "-p/--pred is given twice")
    # switches may repeat, and a value that starts with '-' is the option's value
    r = run("bce", "--from-logits", "--from-logits", "-y", "1", "-p", "0", "-f", "csv")
    assert r.code == 0 and r.out == f"loss,grad\n{math.log(2)!r},-0.5\n", r.err  # log 2 and σ(0) − 1
    r = run("mse", "-y", "1", "-p", "-1", "-f", "csv")
    assert r.code == 0 and r.out == "loss,grad\n4.0,-4.0\n", r.err  # (p − y)² and 2(p − y)


def test_the_list_of_losses_fits_the_terminal() -> None:
    # at 80 columns every line fits, wrapped at word boundaries under a hanging indent: the same words as a wide
    # terminal's listing, none cut
    narrow, wide = (run("losses", env={"COLUMNS": str(c)}) for c in (80, 200))
    assert narrow.code == wide.code == 0
    assert max(len(line) for line in narrow.out.splitlines()) <= 80
    assert max(len(line) for line in wide.out.splitlines()) > 80  # (some summaries are longer than 80)
    assert narrow.out.split() == wide.out.split()
    names = [line.split()[0] for line in wide.out.splitlines() if not line.startswith(" ")]
    assert [line.split()[0] for line in narrow.out.splitlines() if not line.startswith(" ")] == names


def test_checks_prose_fits_the_terminal() -> None:
    # check's findings at 80 columns: wrapped at word boundaries, each line's continuation indented, no word cut
    args = ("check", "ce", "-y", "0,2", "-p", "0.2,0.3,0.5;0.1,0.1,0.8", "--my-grad=-2.5,0,0;0,0,-0.625", "-f", "table")
    narrow, wide = (run(*args, env={"COLUMNS": str(c)}) for c in (80, 300))
    assert narrow.code == wide.code == 0
    assert max(len(line) for line in narrow.out.splitlines()) <= 80 < max(len(line) for line in wide.out.splitlines())
    assert narrow.out.split() == wide.out.split()
    assert run(*args).out == wide.out  # (piped without COLUMNS: one line each, as before)
