"""Benchmarks time lossgrad as an installed package runs: with its modules compiled to bytecode, which pip does
when it installs a wheel. (An editable install run under PYTHONDONTWRITEBYTECODE=1 would otherwise compile every
module again on every run: about 60 ms that no installed copy pays.)"""

from __future__ import annotations

import compileall
import os


def compile_lossgrad(checkout: str | None = None) -> None:
    """Compile the installed lossgrad, or the one in the source tree `checkout`."""
    if checkout is not None:
        compileall.compile_dir(os.path.join(checkout, "lossgrad"), quiet=1)
        return
    import lossgrad

    compileall.compile_dir(os.path.dirname(lossgrad.__file__), quiet=1)


def lossgrad_from(checkout: str, python: str) -> list[str]:
    """A command running lossgrad from the source tree `checkout` (another version, timed in the same run)."""
    return ["env", f"PYTHONPATH={os.path.abspath(checkout)}", python, "-m", "lossgrad"]


def script_files(texts: dict[str, str]) -> dict[str, str]:
    """Each script text written to a temporary .py file: name -> path."""
    import tempfile

    paths = {}
    for name, text in texts.items():
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(text)
        paths[name] = f.name
    return paths


def lossgrad_command(python: str) -> list[str]:
    """The installed `lossgrad` command, or `python -m lossgrad` where none is on PATH."""
    import shutil

    exe = shutil.which("lossgrad")
    return [exe] if exe else [python, "-m", "lossgrad"]
