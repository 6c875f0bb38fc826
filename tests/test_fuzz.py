"""Fuzzing the tokeniser and the command line: any text gives numbers or a located InputError, never another
exception; numpy's and polars' paths give the same numbers or the same error for the same bytes.

The examples are drawn deterministically (the `lossgrad` hypothesis profile in conftest.py); LOSSGRAD_EXPLORE=1
draws new ones. scripts/fuzz_cli.py runs a larger campaign through the real command line."""

import io
import re

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import (  # noqa: E402
    HealthCheck,
    given,
    settings,
    strategies as st,  # noqa: E402
)

from conftest import lossgrad as run  # noqa: E402
from lossgrad import inputs  # noqa: E402
from lossgrad.errors import InputError  # noqa: E402

# pieces of numbers and of everything that is nearly one
PIECES = ["0", "1", "7", "12", "0.5", ".", "-", "+", "e", "E", "e-7", "_", " ", "\t", ",", '"', "'", "inf", "nan",
          "\u00a0", "\u3000", "\f", "\v", "\ufeff", "\u0661", "\u00bd", "x", "1e999", "\r", ";"]
texts = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
# CSV: lines of such text, with the bytes that change how lines are read
LINE_PIECES = PIECES + ["\n", "\r\n", "\n\n", "\xff", "\x00"]
csv_bytes = st.one_of(
    st.lists(st.sampled_from(LINE_PIECES), max_size=30).map(lambda p: "".join(p).encode("utf-8", "surrogatepass")),
    st.binary(max_size=60),
)
LOCATED = re.compile(r"^t\.csv(:\d+(:\d+)?)?: ")

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(texts)
def test_inline_text_is_numbers_or_a_located_error(text):
    try:
        a = inputs.parse_inline(text, "{pred}")
    except InputError as e:
        assert e.message().startswith("p"), e.message()
        return
    assert a.ndim in (1, 2) and a.size and np.isfinite(a).all()


def _read(data: bytes, fast: bool):
    """The numbers of CSV bytes, or the error's message; `fast`: polars reads the blocks it can."""
    try:
        r = inputs.CsvReader(io.BytesIO(data), "t.csv")
        r.fast = fast
        return np.concatenate([c.data for c in r.chunks()] or [np.zeros((0, r.ncols))])
    except InputError as e:
        assert LOCATED.match(e.message()), e.message()
        return e.message()


@FUZZ
@given(csv_bytes)
def test_csv_bytes_read_alike_by_both_parsers(data):
    slow, fast = _read(data, False), _read(data, True)
    if isinstance(slow, str) or isinstance(fast, str):
        assert slow == fast
    else:
        assert np.array_equal(slow, fast) and np.isfinite(slow).all()


@FUZZ
@given(st.lists(st.lists(st.sampled_from(["0", "1", "0.5", "-2.5e-3", '"0.25"', " 3 ", "1_0", "\u00a0", ""]),
                         min_size=2, max_size=2), min_size=1, max_size=5),
       st.sampled_from(["1,2\n", "a,b\n", "\ufeffa,b\n", ""]))
def test_a_large_block_reads_like_a_small_one(rows, head):
    """Blocks of a few rows repeated: large enough that polars is asked first (the fast path)."""
    block = "".join(",".join(r) + "\n" for r in rows).encode()
    data = head.encode() + block * max(1, 20_000 // len(block))
    slow, fast = _read(data, False), _read(data, True)
    if isinstance(slow, str) or isinstance(fast, str):
        assert slow == fast
    else:
        assert np.array_equal(slow, fast)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loss=st.sampled_from(["mse", "bce", "ce"]), y=texts, p=texts,
       extra=st.sampled_from([[], ["--sample-weight", "0,0"], ["--from-logits"], ["-r", "sum"]]))
def test_the_command_line_never_fails_inside(loss, y, p, extra):
    r = run(loss, "-y", y, "-p", p, "-f", "json", *extra)
    assert r.code in (0, 2), r.err
    assert "Traceback" not in r.err and "internal failure" not in r.err
    if r.code == 2:
        assert r.err.startswith("error: ") and r.out == ""
