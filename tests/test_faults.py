"""Nothing lost, nothing clobbered: what `-o` does to whatever is at its path, and what the command line does when
the system refuses (a full disk, a size limit, closed streams, exhausted resources), when it is stopped by a
signal, and when its input changes while it is read. Every case runs the real CLI in a subprocess."""

import os
import resource
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from conftest import assert_usage_error, lossgrad as run

EX_IOERR = 74
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def child(*args, preexec_fn=None, env=None, **kw):
    """The CLI in a subprocess with `preexec_fn` run in the child first (limits, closed descriptors)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "lossgrad", *map(str, args)], preexec_fn=preexec_fn, env=e,
                          timeout=120, **kw)


def one_fault_line(err: bytes, *fragments: str) -> str:
    text = err.decode()
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert "Traceback" not in text and "bug" not in text
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def leftovers(folder) -> list:
    return [p.name for p in folder.iterdir() if p.name.startswith(".lossgrad-")]


def rows_csv(n: int) -> bytes:
    """n rows of bce (target, logit) data: targets alternate 0/1, logits walk over [-3, 3)."""
    return b"target,logit\n" + b"".join(b"%d,%.3f\n" % (i % 2, (i % 6000) / 1000 - 3) for i in range(n))


# ---------------------------------------------------------------- -o: whatever is at the path


def test_output_writes_through_a_device_node(tmp_path):
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the memory device that discards writes
    except (PermissionError, OSError):
        pytest.skip("making a device node needs the privilege to")
    r = run("mse", "-y", "1,2", "-p", "2,4", "-o", node)
    assert r.code == 0, r.err
    assert stat.S_ISCHR(os.lstat(node).st_mode), "the device node was replaced"
    assert leftovers(tmp_path) == []


def test_output_writes_through_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r = run("mse", "-y", "1,2", "-p", "2,4", "-f", "json", "-o", fifo)
    reader.join(60)
    assert r.code == 0, r.err
    assert got and got[0].decode() == run("mse", "-y", "1,2", "-p", "2,4", "-f", "json").out
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced"


def test_output_through_a_symlink_replaces_its_target(tmp_path):
    target, link = tmp_path / "real.csv", tmp_path / "link.csv"
    target.write_text("old\n")
    link.symlink_to("real.csv")
    r = run("mse", "-y", "1,2", "-p", "2,4", "-o", link)
    assert r.code == 0, r.err
    assert link.is_symlink() and os.readlink(link) == "real.csv"
    # mse at y=(1,2), p=(2,4): losses (p-y)^2 = 1, 4; gradients 2(p-y)/N = 1, 2 (by hand)
    assert target.read_text() == "loss,grad\n1.0,1.0\n4.0,2.0\n"


def test_output_that_is_an_input_is_refused(tmp_path):
    data = tmp_path / "in.csv"
    data.write_text("y,p\n1,2\n3,4\n")
    before = data.read_bytes()
    assert_usage_error(run("mse", "--csv", data, "-o", data), "--output", "is also the input")
    link = tmp_path / "link.csv"
    link.symlink_to("in.csv")
    assert_usage_error(run("mse", "--csv", link, "-f", "json", "-o", data), "is also the input")
    with open(data, "rb") as stdin:  # stdin redirected from the file named by -o
        r = child("mse", "-f", "csv", "-o", data, stdin=stdin, capture_output=True)
    assert r.returncode == 2 and b"is also the input (stdin)" in r.stderr, r.stderr
    with open(data, "ab") as stdout:  # stdout appended to the input (>> in.csv) would never end
        r = child("mse", "--csv", data, "-f", "csv", stdout=stdout, stderr=subprocess.PIPE)
    assert r.returncode == 2 and b"stdout is also the input" in r.stderr, r.stderr
    assert data.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_read_only_output_is_refused(tmp_path):
    out = tmp_path / "keep.csv"
    out.write_text("precious\n")
    out.chmod(0o444)
    assert_usage_error(run("mse", "-y", "1", "-p", "2", "-o", out), "--output", "read-only")
    assert out.read_text() == "precious\n" and stat.S_IMODE(out.stat().st_mode) == 0o444


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_new_output_follows_the_umask(tmp_path, mask):
    out = tmp_path / "new.csv"
    r = child("mse", "-y", "1", "-p", "2", "-o", out, preexec_fn=lambda: os.umask(mask), capture_output=True)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o755])
def test_replaced_output_keeps_its_mode_and_owner(tmp_path, mode):
    out = tmp_path / "old.csv"
    out.write_text("old\n")
    out.chmod(mode)
    owner = (1234, 4321) if IS_ROOT else (os.getuid(), os.getgid())
    if IS_ROOT:
        os.chown(out, *owner)
    r = run("mse", "-y", "1", "-p", "2", "-o", out)
    assert r.code == 0, r.err
    st = out.stat()
    assert stat.S_IMODE(st.st_mode) == mode and (st.st_uid, st.st_gid) == owner
    assert out.read_text() != "old\n"


# ---------------------------------------------------------------- the system refuses


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a 1 MB tmpfs (only as root, where mount works)."""
    if not IS_ROOT:
        pytest.skip("mounting a small tmpfs needs root")
    folder = tmp_path / "small"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True
                      ).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield folder
    subprocess.run(["umount", str(folder)], capture_output=True)


def test_full_disk_is_one_line_exit_74_and_no_file(full_disk):
    data = rows_csv(120_000)  # about 6 MB of output: more than the disk holds
    out = full_disk / "out.csv"
    r = child("bce", "--from-logits", "-r", "none", "-o", out, input=data, capture_output=True)
    assert r.returncode == EX_IOERR, r.stderr
    one_fault_line(r.stderr, str(out), os.strerror(28))
    assert list(full_disk.iterdir()) == []
    with open(full_disk / "stdout.csv", "wb") as stdout:
        r = child("bce", "--from-logits", "-r", "none", "-f", "csv", input=data, stdout=stdout,
                  stderr=subprocess.PIPE)
    assert r.returncode == EX_IOERR
    one_fault_line(r.stderr, "<stdout>", os.strerror(28))


def _file_size_limit():
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_file_size_limit_is_one_line_exit_74_and_no_file(tmp_path, fmt):
    data = rows_csv(20_000)
    out = tmp_path / "out.csv"
    r = child("bce", "--from-logits", "-r", "none", "-f", fmt, "-o", out, input=data, preexec_fn=_file_size_limit,
              capture_output=True)
    assert r.returncode == EX_IOERR, r.stderr
    one_fault_line(r.stderr, str(out), os.strerror(27))
    assert list(tmp_path.iterdir()) == []


def test_mean_spooled_to_a_limited_disk_is_exit_74(tmp_path):
    # a mean over piped input waits in a temporary file until N is known: the limit stops it there
    r = child("bce", "--from-logits", "-f", "csv", "-o", tmp_path / "out.csv", input=rows_csv(20_000),
              preexec_fn=_file_size_limit, capture_output=True)
    assert r.returncode == EX_IOERR, r.stderr
    one_fault_line(r.stderr, os.strerror(27))
    assert list(tmp_path.iterdir()) == []


def _close(*fds):
    def close():
        for fd in fds:
            os.close(fd)
    return close


def test_closed_stdout_is_one_line_exit_74():
    r = child("mse", "-y", "1,2", "-p", "2,4", "-f", "json", preexec_fn=_close(1), stderr=subprocess.PIPE)
    assert r.returncode == EX_IOERR
    one_fault_line(r.stderr, "<stdout>", "closed")


def test_closed_stdout_leaves_dash_o_alone(tmp_path):
    # the file opened for -o must not take the closed stdout's number (and receive what stdout would)
    out = tmp_path / "o.json"
    r = child("mse", "-y", "1,2", "-p", "2,4", "-f", "json", "-o", out, preexec_fn=_close(1), stderr=subprocess.PIPE)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == run("mse", "-y", "1,2", "-p", "2,4", "-f", "json").out


def test_closed_stderr_is_exit_74_after_the_data():
    # csv output says its reduced value on stderr, which cannot take it
    r = child("mse", "-y", "1,2", "-p", "2,4", "-f", "csv", preexec_fn=_close(2), stdout=subprocess.PIPE)
    assert r.returncode == EX_IOERR
    assert r.stdout.decode() == "loss,grad\n1.0,1.0\n4.0,2.0\n"  # the same numbers as above, by hand


def test_closed_stdin_is_no_input():
    r = child("mse", preexec_fn=_close(0), capture_output=True)
    assert r.returncode == 2 and b"Traceback" not in r.stderr, r.stderr


def test_full_stdout_device_is_exit_74():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "wb") as full:
        r = child("mse", "-y", "1,2", "-p", "2,4", "-f", "json", stdout=full, stderr=subprocess.PIPE)
    assert r.returncode == EX_IOERR
    one_fault_line(r.stderr, "<stdout>", os.strerror(28))


def test_ascii_stdout_is_one_line_and_nothing_written():
    # compare's table names the clipping epsilon as ε, which ascii cannot write
    r = child("compare", "bce", "-y", "0,1", "-p", "0.3,0.2", "-f", "table", env={"PYTHONIOENCODING": "ascii"},
              capture_output=True)
    assert r.returncode == EX_IOERR
    one_fault_line(r.stderr, "<stdout>", "ascii", "PYTHONIOENCODING")
    assert r.stdout == b""


def test_invalid_polars_max_threads_is_ignored_with_a_warning():
    data = rows_csv(50_000)  # large enough for polars to read it
    plain = child("bce", "--from-logits", "-r", "none", "-f", "csv", input=data, capture_output=True)
    r = child("bce", "--from-logits", "-r", "none", "-f", "csv", input=data, capture_output=True,
              env={"POLARS_MAX_THREADS": "0"})
    assert r.returncode == 0 and r.stdout == plain.stdout
    assert r.stderr.decode().startswith("warning: POLARS_MAX_THREADS='0'") and b"panicked" not in r.stderr


def _limited(tmp_path, which, values, reason):
    """The same batch run (a file in, a file out) under each limit: it either succeeds with every row, or ends with
    one line and exit 74 (never a traceback, a panic or an abort, nor a file left); the smallest limit must make it
    fail."""
    data = tmp_path / "in.csv"
    data.write_bytes(rows_csv(50_000))
    full = child("bce", "--from-logits", "-r", "none", "-f", "csv", "--csv", data, capture_output=True).stdout
    out = tmp_path / "out.csv"
    codes = []
    for value in values:
        r = child("bce", "--from-logits", "-r", "none", "--csv", data, "-o", out, capture_output=True,
                  preexec_fn=lambda v=value: resource.setrlimit(which, (v, v)))
        codes.append(r.returncode)
        if r.returncode == 0:
            assert out.read_bytes() == full
            out.unlink()
        else:
            assert r.returncode == EX_IOERR, (value, r.returncode, r.stderr)
            one_fault_line(r.stderr, reason)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
    assert codes[0] == EX_IOERR, codes


def test_too_few_file_descriptors_is_exit_74(tmp_path):
    # (below 5 the interpreter itself cannot start)
    _limited(tmp_path, resource.RLIMIT_NOFILE, [5, 6, 7, 8, 10, 16, 32, 64, 128], os.strerror(24))


def test_too_little_memory_is_exit_74(tmp_path):
    _limited(tmp_path, resource.RLIMIT_AS, [m << 20 for m in (150, 250, 400, 800, 1600)], "out of memory")


# ---------------------------------------------------------------- signals


def _wait_for(condition, what):
    deadline = time.monotonic() + 60  # (a bound on a failing test, not a measurement)
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_signal_during_dash_o_leaves_nothing(tmp_path, sig):
    out = tmp_path / "out.csv"
    p = subprocess.Popen([sys.executable, "-m", "lossgrad", "bce", "--from-logits", "-r", "none", "-o", str(out)],
                         stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(rows_csv(300_000))  # the rest of the input is still to come when the signal arrives
    p.stdin.flush()
    _wait_for(lambda: any((tmp_path / n).stat().st_size for n in leftovers(tmp_path)), "no output started")
    p.send_signal(sig)
    err = p.communicate()[1]
    assert p.returncode == 128 + sig, (p.returncode, err)
    assert b"Traceback" not in err and err == b""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_signal_while_streaming_to_a_pipe(tmp_path, sig):
    data = tmp_path / "big.csv"
    data.write_bytes(rows_csv(600_000))
    p = subprocess.Popen([sys.executable, "-m", "lossgrad", "bce", "--from-logits", "--csv", str(data), "-f", "csv"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.read(100_000)  # the output has started; the rest waits for this reader
    p.send_signal(sig)
    p.stdout.read()
    err = p.stderr.read()
    p.wait()
    assert p.returncode == 128 + sig, (p.returncode, err)
    assert b"Traceback" not in err and b"Exception" not in err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["big.csv"]


# ---------------------------------------------------------------- an input that changes while it is read


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_input_truncated_while_read_to_a_pipe(tmp_path, reduction):
    data = tmp_path / "big.csv"
    data.write_bytes(rows_csv(600_000))
    p = subprocess.Popen([sys.executable, "-m", "lossgrad", "bce", "--from-logits", "--csv", str(data), "-f", "csv",
                          "-r", reduction], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = p.stdout.read(100_000)  # rows are flowing, and wait for this reader
    os.truncate(data, data.stat().st_size // 3)
    out = head + p.stdout.read()
    err = p.stderr.read()
    p.wait()
    assert p.returncode == 2, err
    line = one_fault_line(err, str(data), "changed while it was read")
    assert line
    text = out.decode()
    assert text.endswith("\n") and all(len(row.split(",")) == 2 for row in text.splitlines()), "a partial row"
    assert len(text.splitlines()) <= 600_001


def test_input_grown_while_read_into_a_file(tmp_path):
    data = tmp_path / "big.csv"
    data.write_bytes(rows_csv(300_000))
    out = tmp_path / "out.csv"
    p = subprocess.Popen([sys.executable, "-m", "lossgrad", "bce", "--from-logits", "--csv", str(data), "-r",
                          "none", "-o", str(out)], stderr=subprocess.PIPE)
    _wait_for(lambda: any((tmp_path / n).stat().st_size for n in leftovers(tmp_path)) or p.poll() is not None,
              "no output started")
    with open(data, "ab") as f:
        f.write(b"1,0.5\n" * 1000)
    err = p.communicate()[1]
    if p.returncode == 0:  # (it had read the whole file already: then what it wrote is the old file's rows)
        assert len(out.read_text().splitlines()) == 300_001
        pytest.skip("the input was read before it grew")
    assert p.returncode == 2, err
    one_fault_line(err, "changed while it was read")
    assert not out.exists() and leftovers(tmp_path) == []
