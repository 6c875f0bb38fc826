"""Where results go, without losing or clobbering anything: stdout, or `-o PATH`.

A regular file is written to a temporary file beside it and renamed over it only when everything was written (a
symlink's target is replaced, not the link), keeping the mode and owner of the file it replaces, or the umask's
mode for a new one. Anything else (a device, a FIFO) is opened and written as it is. An output that is also an
input, or a file without write permission, is refused before anything is read.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from . import faults
from .errors import EnvironmentFault, OptionError

# the inputs an output must not be: (how the user named it, a path or an open file descriptor)
Inputs = Sequence[tuple[str, "str | int"]]


@contextmanager
def open_output(path: str | None, binary: bool = False, inputs: Inputs = ()) -> Iterator[Any]:
    """stdout, or the file `path` (see the module's rules); write failures are EnvironmentFaults naming it."""
    if path in (None, "-"):
        with _stdout(binary, inputs) as out:
            yield out
        return
    assert path is not None
    refuse_empty(path)
    real = os.path.realpath(path)  # a symlink to a file: its target is what gets replaced
    try:
        st: os.stat_result | None = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OptionError("output", f"{path}: {e.strerror}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OptionError("output", f"{path} is a folder; give a file name")
    if not os.path.isdir(os.path.dirname(real)):
        raise OptionError("output", _no_folder(path, real))
    if st is not None:
        _refuse_an_input(st, inputs, path)
    opener = _replace if st is None or stat.S_ISREG(st.st_mode) else _through
    with opener(path, real, st, binary) as out:
        yield out


def refuse_empty(path: str | None) -> None:
    """An -o of no name (`-o ""`, an unset variable) is an error of its own, not a folder or a format."""
    if path == "":
        raise OptionError("output", "is empty; give a file name (or - for stdout)")


def _no_folder(path: str, real: str) -> str:
    """Why `path` (resolved: `real`) cannot be created: the first folder on the way that is missing, or a file
    where a folder should be; through a symlink, the link's target is named."""
    folder = os.path.dirname(real)
    while not os.path.exists(os.path.dirname(folder)):
        folder = os.path.dirname(folder)
    link = f"{path} is a link to {os.readlink(path)}, but " if os.path.islink(path) else f"{path}: "
    if os.path.exists(folder):
        return f"{link}{folder} is not a folder; give a path inside a folder"
    return f"{link}folder {folder} does not exist; create it (mkdir -p {os.path.dirname(real)}) or write elsewhere"


def _refuse_an_input(st: os.stat_result, inputs: Inputs, shown: str) -> None:
    """An OptionError when the output `st` is the same file as one of `inputs`: writing it would destroy what is
    being read."""
    for name, source in inputs:
        try:
            other = os.fstat(source) if isinstance(source, int) else os.stat(source)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(other.st_mode) and (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            raise OptionError("" if shown == "stdout" else "output", f"{shown} is also the input ({name}): writing "
                              "it would destroy what is being read; write to another file")


@contextmanager
def _stdout(binary: bool, inputs: Inputs) -> Iterator[Any]:
    if isinstance(sys.stdout, faults.Closed):
        raise EnvironmentFault("<stdout>", "is closed")
    try:
        st = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        st = None
    if st is not None and stat.S_ISREG(st.st_mode):  # (stdout appended to the input file: it would never end)
        _refuse_an_input(st, inputs, "stdout")
    if binary:
        sys.stdout.flush()
        out = faults.Guarded(sys.stdout.buffer, "<stdout>", quiet_pipe=True)
        yield out
        out.flush()
        return
    # text is small: kept whole until it is known to be writable, so an encoding fault writes nothing
    text = _Text()
    yield text
    data = text.getvalue()
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        data.encode(encoding, getattr(sys.stdout, "errors", None) or "strict")
    except UnicodeEncodeError as e:
        raise faults.as_fault(e, "<stdout>") or e from None
    out = faults.Guarded(sys.stdout, "<stdout>", quiet_pipe=True)
    out.write(data)
    out.flush()


class _Text(io.StringIO):
    """Text on its way to stdout, looking like stdout to whoever draws it (a terminal or not, its encoding)."""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(sys.stdout, "encoding", None) or "utf-8"

    def isatty(self) -> bool:
        return bool(sys.stdout.isatty())

    def fileno(self) -> int:
        return int(sys.stdout.fileno())


@contextmanager
def _through(path: str, real: str, st: os.stat_result | None, binary: bool) -> Iterator[Any]:
    """A device or a FIFO, written as it is: replacing it would put a regular file where it was."""
    try:
        fd = os.open(real, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise faults.as_fault(e, path) or OptionError("output", f"{path}: {e.strerror}") from None
    f = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
    out = faults.Guarded(f, path, quiet_pipe=True)
    try:
        yield out
        out.flush()
    finally:
        _close(f)


def _writable(real: str, st: os.stat_result) -> bool:
    # (the superuser may write anything, but a file nobody may write is still read-only to lossgrad)
    return bool(st.st_mode & 0o222) and os.access(real, os.W_OK)


@contextmanager
def _replace(path: str, real: str, st: os.stat_result | None, binary: bool) -> Iterator[Any]:
    """A regular file (or a new one): a temporary file beside it, renamed over it only when all was written."""
    if st is not None and not _writable(real, st):
        raise OptionError("output", f"{path} is read-only (no write permission); make it writable or write to "
                                    "another file")
    folder = os.path.dirname(real)
    tmp, fd = _temporary(folder, path)
    try:
        if st is not None:  # the replacement is the file it replaces: its mode, and its owner where allowed
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            try:
                os.fchown(fd, st.st_uid, st.st_gid)
            except OSError:
                pass
        f = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        _discard(tmp)
        raise
    out = faults.Guarded(f, path, quiet_pipe=False)
    try:
        yield out
        out.flush()
        f.close()
        os.replace(tmp, real)
    except BaseException:
        _close(f)
        _discard(tmp)
        raise
    finally:
        faults.forget(tmp)


def _temporary(folder: str, path: str) -> tuple[str, int]:
    """A new hidden file in `folder`, made with the umask's mode (0666 less the umask), known to the signal
    handler before it exists."""
    while True:
        tmp = os.path.join(folder, f".lossgrad-{os.urandom(6).hex()}.tmp")
        faults.remember(tmp)
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            faults.forget(tmp)
        except OSError as e:
            faults.forget(tmp)
            raise faults.as_fault(e, path) or OptionError("output", f"cannot write in {folder}: {e.strerror}") \
                from None


def _close(f: Any) -> None:
    try:
        f.close()
    except (OSError, ValueError):  # (what it could not write is reported already, or never will be needed)
        pass


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass
    faults.forget(tmp)
