"""What the system can do to a run, and what lossgrad does about it: a signal stops it without debris, and a
refusal (a full disk, a file-size limit, a closed or full stream, too many open files, no memory) is one line and
exit status 74 rather than a report of a bug.

Only the standard library, and nothing heavy: the command line installs this before anything else is imported.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Any

from .errors import EnvironmentFault

EXIT_FAULT = 74  # sysexits' EX_IOERR
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# what the system may refuse: the run cannot go on, and it is no bug of lossgrad's
REFUSALS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EIO,
                      errno.EROFS, errno.EBADF, errno.EPIPE, errno.EAGAIN})

# temporary outputs to remove if the process is stopped before it renames them into place
_temporary: set[str] = set()
_installed = False


def remember(path: str) -> None:
    _temporary.add(path)


def forget(path: str) -> None:
    _temporary.discard(path)


def _stop(signum: int, frame: Any) -> None:
    # no exception (a traceback, a thread's own report) and no waiting for a blocked writer: remove the temporary
    # files and leave at once, with the status a shell gives a process the signal ended
    for path in list(_temporary):
        try:
            os.unlink(path)
        except OSError:
            pass
    os._exit(128 + signum)


def install() -> None:
    """SIGINT, SIGTERM and SIGHUP end the process quietly with 128 + the signal, leaving no temporary file. A signal
    the parent set to be ignored (nohup, a background job) stays ignored."""
    global _installed
    if _installed:
        return
    _installed = True
    for sig in STOP_SIGNALS:
        try:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, _stop)
        except (ValueError, OSError):  # not the main thread
            pass


def launched_as_command() -> bool:
    """Whether this process is the command line (`python -m lossgrad`, or the `lossgrad` script) rather than a
    program that imported lossgrad."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and getattr(spec, "name", "") == "lossgrad.__main__":
        return True
    return os.path.basename(getattr(main, "__file__", None) or "") == "lossgrad"


# ---------------------------------------------------------------- the streams and the environment


class Closed:
    """A standard stream that was closed when lossgrad started: writing to it is a fault; asking it is harmless."""

    encoding, errors = "utf-8", "strict"

    def __init__(self, name: str) -> None:
        self.name = name
        self.buffer = self

    def write(self, data: Any) -> int:
        raise EnvironmentFault(self.name, "is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))


class Guarded:
    """A stream whose refusals are environment faults naming it; a closed pipe (EPIPE) on stdout stays a
    BrokenPipeError (a reader that stopped early: no failure)."""

    def __init__(self, stream: Any, name: str, quiet_pipe: bool) -> None:
        self._stream, self.name, self._quiet_pipe = stream, name, quiet_pipe

    def write(self, data: Any) -> int:
        try:
            return int(self._stream.write(data))
        except (OSError, UnicodeEncodeError, ValueError) as e:
            raise self._fault(e) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError) as e:
            raise self._fault(e) from None

    def _fault(self, e: BaseException) -> BaseException:
        if isinstance(e, BrokenPipeError) and self._quiet_pipe:
            return e
        return as_fault(e, self.name) or e

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_streams() -> None:
    """Closed standard streams get /dev/null in their place (so no file opened later takes their number) and
    report a fault when written; stderr escapes what its encoding cannot write and reports its refusals."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if name == "stdin":
                sys.stdin = open(fd, closefd=False)
            else:
                setattr(sys, name, Closed(f"<{name}>"))
    if sys.stderr is not None and not isinstance(sys.stderr, Closed):
        try:
            sys.stderr.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
        sys.stderr = Guarded(sys.stderr, "<stderr>", quiet_pipe=False)  # type: ignore[assignment]


def settle_environment() -> None:
    """What would make polars fail where lossgrad cannot report it: an invalid POLARS_MAX_THREADS (polars panics)
    is treated as unset; under an address-space limit (ulimit -v) polars is not used at all, since it aborts the
    process on a failed allocation where numpy raises a MemoryError that can be reported; nor with fewer than 64
    file descriptors (ulimit -n)."""
    threads = os.environ.get("POLARS_MAX_THREADS")
    if threads is not None and not (threads.strip().isdigit() and int(threads) > 0):
        del os.environ["POLARS_MAX_THREADS"]
        sys.stderr.write(f"warning: POLARS_MAX_THREADS={threads!r} is not a positive whole number; ignored\n")
    try:
        import resource

        memory = resource.getrlimit(resource.RLIMIT_AS)[0]
        files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return
    # (polars' runtime also needs a few descriptors of its own, and panics without them)
    if (memory != resource.RLIM_INFINITY or files < 64) and "polars" not in sys.modules:
        sys.modules["polars"] = None  # type: ignore[assignment]  # (import polars now raises ImportError)


def as_fault(e: BaseException, where: str = "") -> EnvironmentFault | None:
    """The environment fault `e` is (or was raised while handling), or None when it is something else."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        fault = _one_fault(cur, where)
        if fault is not None:
            return fault
        cur = cur.__cause__ or cur.__context__
    return None


def _one_fault(e: BaseException, where: str) -> EnvironmentFault | None:
    if isinstance(e, EnvironmentFault):
        return e
    if isinstance(e, MemoryError):
        return EnvironmentFault(where, "out of memory")
    if isinstance(e, UnicodeEncodeError):
        text = e.object[e.start:e.end]
        return EnvironmentFault(where or "<stdout>", f"its encoding {e.encoding} cannot write {text!r}; set "
                                                     "PYTHONIOENCODING=utf-8 (or a UTF-8 locale)")
    if isinstance(e, OSError) and e.errno in REFUSALS:
        return EnvironmentFault(where or (str(e.filename) if e.filename else ""), os.strerror(e.errno or 0))
    if isinstance(e, RuntimeError) and "can't start new thread" in str(e):
        return EnvironmentFault(where, "cannot start a thread (a process or memory limit)")
    if type(e).__name__ == "PanicException":  # (polars, from Rust: what it could not get, in words)
        text = str(e)
        if "Too many open files" in text:
            return EnvironmentFault(where, os.strerror(errno.EMFILE))
        if "memory" in text or "alloc" in text:
            return EnvironmentFault(where, "out of memory")
    if isinstance(e, ValueError) and "closed file" in str(e):
        return EnvironmentFault(where, "is closed")
    return None


def report(e: BaseException) -> int:
    """What the system refused: one line, if stderr can still take one, and exit status 74."""
    try:
        sys.stderr.write(f"error: {e}\n")
        sys.stderr.flush()
    except Exception:  # (stderr itself is what failed)
        pass
    return EXIT_FAULT


def quiet_stdout() -> None:
    # the reader went away (| head): point stdout at /dev/null so the interpreter's final flush is silent
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
