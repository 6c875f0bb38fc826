"""Every `$ lossgrad ...` example in the README prints what the README says it prints, so the README cannot go
stale. (Examples whose output the README elides with `...` are compared up to that line.)"""

import fcntl
import math
import os
import pty
import re
import select
import struct
import sys
import termios
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def examples() -> list[tuple[str, str]]:
    out = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S):
        parts = re.split(r"^\$ ", block, flags=re.M)
        for part in parts[1:]:
            command, _, expected = part.partition("\n")
            if re.match(r"(printf .*\| )?(cat .*\| )?lossgrad |head ", command):
                out.append((command, expected))
    return out


def _normal(text: str) -> list[str]:
    return [line.rstrip() for line in text.rstrip().splitlines()]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with the samples, where the examples may write their files (per_row.csv)."""
    d = tmp_path_factory.mktemp("readme")
    (d / "samples").symlink_to(ROOT / "samples")
    return d


def on_a_terminal(command: str, cwd: Path, width: int = 200) -> str:
    """What `command` shows in a terminal `width` columns wide (stdout and stderr, as a person sees them)."""
    shell = f'lossgrad() {{ "{sys.executable}" -m lossgrad "$@"; }}; {command}'
    pid, fd = pty.fork()
    if pid == 0:  # the child: a shell on the terminal, in the project's folder
        os.chdir(cwd)
        os.environ.update(COLUMNS=str(width), TERM="dumb", PYTHONPATH=str(ROOT))
        os.execvp("bash", ["bash", "-c", shell])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 60, width, 0, 0))
    out = b""
    while select.select([fd], [], [], 60)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.decode().replace("\r\n", "\n"))


def written(command: str) -> str | None:
    """The file an example writes (`> per_row.csv`, `-o token_grads.npz`), if any."""
    found = re.search(r"(?:>|-o)\s*(\S+)$", command)
    return found.group(1) if found else None


def makers(command: str) -> list[str]:
    """The earlier examples that write a file this one reads: run first where it is missing (pytest-xdist may run
    this example in another process than theirs, with a folder of its own)."""
    words, own = command.split(), written(command)
    return [c for c, _ in examples() if written(c) not in (None, own) and written(c) in words]


@pytest.mark.parametrize("command,expected", examples(), ids=[c[:60] for c, _ in examples()])
def test_readme_example(command, expected, workdir):
    for maker in makers(command):
        if not (workdir / str(written(maker))).exists():
            on_a_terminal(maker, workdir)
    got, want = _normal(on_a_terminal(command, workdir)), _normal(expected)
    if want and want[-1] in ("...", "…"):
        want = want[:-1]
        got = got[:len(want)]
    assert len(got) == len(want) and all(_same_line(g, w) for g, w in zip(got, want, strict=True)), (got, want)


# a float64 printed in full (15 significant digits or more): numpy's exp and log take the AVX-512 code where the
# processor has it and the C library's elsewhere, so `exact`'s numbers (within a few ulp of the truth on either) can
# differ between machines in their last bits; the README was printed on one of them
NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]\d+)?")
ULPS = 8


def _same_line(got: str, want: str) -> bool:
    """The same text, but for full float64s that are within ULPS of each other."""
    if got == want:
        return True
    if NUMBER.split(got) != NUMBER.split(want):
        return False
    pairs = zip(NUMBER.findall(got), NUMBER.findall(want), strict=True)
    return all(g == w or (_full(g) and _full(w) and abs(float(g) - float(w)) <= ULPS * math.ulp(float(w)))
               for g, w in pairs)


def _full(number: str) -> bool:
    return len(number.split("e")[0].lstrip("-0.").replace(".", "")) >= 15


def test_the_readme_has_examples():
    assert len(examples()) >= 10
