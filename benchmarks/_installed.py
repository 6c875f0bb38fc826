"""Benchmarks time lossgrad as an installed package runs: with its modules compiled to bytecode, which pip does
when it installs a wheel. (An editable install run under PYTHONDONTWRITEBYTECODE=1 would otherwise compile every
module again on every run: about 60 ms that no installed copy pays.)"""

from __future__ import annotations

import compileall
import os


def compile_lossgrad() -> None:
    import lossgrad

    compileall.compile_dir(os.path.dirname(lossgrad.__file__), quiet=1)
