"""The command line's own conveniences: --version, shell completion, and --help showing each option's choices."""

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
    for choices in ("[mean|sum|none]", "[exact|keras|tf-keras|torch|optax]", "[float64|float32]",
                    "[table|json|csv]", "[auto|index|onehot]"):
        assert choices in out
