import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# the golden files hold the kernels of a processor with AVX-512 (each records its capability): the tests reproduce
# that one on any machine, in the command line too; a test of another capability says so (--cpu, cpu=), and a
# comparison with a framework running here reproduces this machine's (live_kernels)
os.environ["LOSSGRAD_CPU"] = "avx512"

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLES = ROOT / "samples"


class Run:
    def __init__(self, proc):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)


# what the command line reads from the environment as each command starts: other variables (LOSSGRAD_MKL, say)
# are read once per process, so a call that sets them runs in a process of its own
PER_COMMAND_ENV = {"COLUMNS", "LOSSGRAD_CPU", "NO_COLOR", "TERM"}


def lossgrad(*args, input=None, cwd=None, env=None, process=False):
    """The command line as users run it (`lossgrad ARGS`, its stdin fed `input`), with stdin, stdout and stderr
    as pipes. It runs `cli.main` in this process, since a new interpreter per call would take most of the suite's
    time; `process=True`, or an environment variable read once per process, runs `python -m lossgrad` instead."""
    if process or set(env or {}) - PER_COMMAND_ENV:
        return _in_a_process(args, input, cwd, env)
    return _in_this_process(args, input, cwd, env)


def _in_a_process(args, input, cwd, env):
    e = dict(os.environ)
    e.pop("COLUMNS", None)
    e.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "lossgrad", *map(str, args)],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        cwd=cwd,
        env=e,
        timeout=60,
    )
    return Run(proc)


def _in_this_process(args, input, cwd, env):
    import io
    import threading
    from types import SimpleNamespace

    from lossgrad import cli

    def drain(fd, into):
        with open(fd, "rb") as f:
            into.append(f.read())

    def feed(fd, data):
        with open(fd, "wb") as f:
            try:
                f.write(data)
            except BrokenPipeError:  # (the command stopped reading)
                pass

    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    out, err = [], []
    threads = [threading.Thread(target=feed, args=(stdin_w, (input or "").encode())),
               threading.Thread(target=drain, args=(out_r, out)), threading.Thread(target=drain, args=(err_r, err))]
    for t in threads:
        t.start()
    saved = sys.stdin, sys.stdout, sys.stderr, dict(os.environ), os.getcwd()
    sys.stdin = io.TextIOWrapper(open(stdin_r, "rb"), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(open(out_w, "wb"), encoding="utf-8", line_buffering=False)
    sys.stderr = io.TextIOWrapper(open(err_w, "wb"), encoding="utf-8", line_buffering=True)
    os.environ.pop("COLUMNS", None)
    os.environ.update(env or {})
    try:
        if cwd is not None:
            os.chdir(cwd)
        try:
            cli.main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    finally:
        for stream in (sys.stdin, sys.stdout, sys.stderr):
            try:
                stream.close()
            except OSError:  # (a pipe the command closed itself)
                pass
        sys.stdin, sys.stdout, sys.stderr, environ, wd = saved
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(wd)
        for t in threads:
            t.join()
    text = (b"".join(out).decode().replace("\r\n", "\n"), b"".join(err).decode().replace("\r\n", "\n"))
    return Run(SimpleNamespace(returncode=code, stdout=text[0], stderr=text[1]))


@pytest.fixture(autouse=True)
def live_kernels(request, monkeypatch):
    """A test against the frameworks running on this machine (marked `frameworks`, or drawing live_rng's inputs)
    reproduces this machine's kernels, in the API and in the command line: the pin to the golden files'
    AVX-512 is lifted for it."""
    if request.node.get_closest_marker("frameworks") or "live_rng" in request.fixturenames:
        from lossgrad import cpu

        monkeypatch.setenv("LOSSGRAD_CPU", cpu.detected())


def pytest_collection_modifyitems(config, items):
    """The comparisons with the frameworks running here (marked `frameworks`, or drawing live_rng's inputs) run
    under LOSSGRAD_LIVE=1 or LOSSGRAD_EXPLORE=1; otherwise the golden files, which hold the frameworks' own results,
    stand for them, so that a run is the same on every machine and fits CI's time."""
    if os.environ.get("LOSSGRAD_LIVE") or os.environ.get("LOSSGRAD_EXPLORE"):
        return
    later = pytest.mark.skip(reason="a live comparison with the installed frameworks: LOSSGRAD_LIVE=1 runs it")
    for item in items:
        if item.get_closest_marker("frameworks") or "live_rng" in getattr(item, "fixturenames", ()):
            item.add_marker(later)


@pytest.fixture
def cli():
    return lossgrad


def assert_usage_error(r, *fragments):
    """Exit 2, nothing on stdout, exactly one `error:` line on stderr, no traceback."""
    assert r.code == 2, (r.code, r.err)
    assert r.out == "", r.out
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    assert "Traceback" not in r.err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


# property tests draw the same examples on every run, so CI and a developer see the same thing
try:
    from hypothesis import settings

    settings.register_profile("lossgrad", derandomize=True, print_blob=True)
    settings.register_profile("explore", derandomize=False, print_blob=True)  # LOSSGRAD_EXPLORE=1: new examples
    settings.load_profile("explore" if os.environ.get("LOSSGRAD_EXPLORE") else "lossgrad")
except ImportError:  # hypothesis is in the test extra
    pass


@pytest.fixture
def live_rng(request):
    """The random inputs of a live comparison with a framework: the same on every run (a seed from the test's name),
    so CI and a developer see the same thing; fresh under LOSSGRAD_EXPLORE=1, or any LOSSGRAD_SEED=N, to look for new
    disagreements. The seed is printed, so a failure names the inputs that gave it."""
    import secrets
    import zlib

    import numpy as np

    seed = os.environ.get("LOSSGRAD_SEED")
    if seed is None:
        seed = secrets.randbits(32) if os.environ.get("LOSSGRAD_EXPLORE") else zlib.crc32(request.node.nodeid.encode())
    print(f"live inputs: LOSSGRAD_SEED={seed}")
    return np.random.default_rng(int(seed))


@pytest.fixture
def jax_x32():
    """JAX as a user has it by default (jax_enable_x64 off) for a live comparison in float32 or lower: the float64
    golden scripts turn x64 on for the whole process, and under it XLA compiles optax's float32 ctc differently."""
    jax = pytest.importorskip("jax")
    with jax.enable_x64(False):
        yield


def live_rounds(ci: int, explore: int) -> int:
    """How many random rounds a live comparison runs: a few on every run (CI's time is bounded), more under
    LOSSGRAD_EXPLORE=1."""
    return explore if os.environ.get("LOSSGRAD_EXPLORE") else ci


def assert_recorded(result, digests: dict, rec: dict) -> None:
    """A result held to a golden record kept by digest: no warning, the record's value (a float32 or half value, so
    compared as float32) and each digest of its arrays."""
    import numpy as np

    assert not result.warnings, result.warnings
    assert np.float32(result.value) == np.float32(rec["value"])
    assert digests == {k: rec[k] for k in digests}


def golden_script(name: str, *frameworks: str):
    """A golden script of scripts/ as a module, for a live comparison: skipped unless its frameworks are installed."""
    import importlib

    for framework in frameworks:
        pytest.importorskip(framework)
    scripts = str(Path(__file__).resolve().parent.parent / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    return importlib.import_module(name)


def optax_run(rec: dict, **more):
    """A golden record of optax's (tests/golden/lowp_xla*.json, weights_optax.json) evaluated by lossgrad: its loss
    under the optax convention in its dtype, reduction and jit mode, the targets and predictions as float32 values
    (`more`: sample_weight and the like)."""
    import numpy as np

    import lossgrad

    kw = dict(convention="optax", dtype=rec["dtype"], reduction=rec["reduction"], jit=rec["jit"])
    if rec["loss"] in ("ce", "bce"):
        kw["from_logits"] = True
    if rec["loss"] == "ce":
        kw["labels"] = rec["labels"]
    if rec["loss"] == "kl":
        kw.update(log_input=rec["log_input"], log_target=rec["log_target"])
    return lossgrad.evaluate(rec["loss"], np.array(rec["target"], dtype=np.float32).astype(np.float64),
                             np.array(rec["pred"], dtype=np.float32).astype(np.float64), **kw, **more)


def ulps_apart(got, want):
    """How many float32 steps each element of `got` is from `want`'s (0 for NaN and NaN)."""
    import numpy as np

    def ordered(x):
        bits = np.asarray(x, dtype=np.float32).reshape(-1).view(np.int32).astype(np.int64)
        return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)

    a, b = np.asarray(got, dtype=np.float32).reshape(-1), np.asarray(want, dtype=np.float32).reshape(-1)
    return np.where(np.isnan(a) & np.isnan(b), 0, np.abs(ordered(a) - ordered(b)))
