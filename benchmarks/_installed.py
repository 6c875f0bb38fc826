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
