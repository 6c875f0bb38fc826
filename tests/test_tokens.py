"""One tokeniser for every path: inline text, small CSV (numpy's parser) and large CSV (polars) read the same bytes
as the same numbers, or refuse them with the same located error."""

import io
import itertools
import re

import numpy as np
import pytest

from conftest import assert_usage_error, lossgrad as run
from lossgrad import inputs
from lossgrad.errors import InputError

# every value here is read by hand: the numbers are the text's own
VALUES = ["0.5", "-3", "+2", ".25", "7.", "1e-7", "-1.5E+3", '"0.5"', ' "0.25" ', "\u00a00.5", "0.5\u3000"]
READ = [0.5, -3.0, 2.0, 0.25, 7.0, 1e-7, -1500.0, 0.5, 0.25, 0.5, 0.5]
REFUSED = ["1_000", "\u0661\u0662", "0x10", "1e", "e5", ".", "-", "1.2.3", "--1", '"0.5', '""0.5""',
           "'0.5'", "nan", "-inf", "Infinity", "1e999", "\ufeff1", "1d5", "\u00bd", "abc"]


def _csv_reader(data: bytes, fast: bool, block_bytes=None):
    r = inputs.CsvReader(io.BytesIO(data), "t.csv", block_bytes=block_bytes)
    r.fast = fast
    return r


def read_csv(data: bytes, fast: bool) -> np.ndarray:
    return np.concatenate([c.data for c in _csv_reader(data, fast).chunks()])


@pytest.mark.parametrize("text,value", list(zip(VALUES, READ, strict=True)))
@pytest.mark.parametrize("fast", [False, True])
def test_a_number_reads_the_same_on_every_path(text, value, fast):
    assert inputs.parse_inline(text, "{pred}").tolist() == [value]
    data = f"a,b\n1,{text}\n2,1\n".encode()
    assert read_csv(data, fast)[0].tolist() == [1.0, value]


@pytest.mark.parametrize("text", REFUSED)
@pytest.mark.parametrize("fast", [False, True])
def test_a_refused_value_is_refused_on_every_path_with_its_place(text, fast):
    with pytest.raises(InputError) as inline:
        inputs.parse_inline(f"1,{text}", "{pred}")
    assert inline.value.message().startswith("p: value 2: ")
    with pytest.raises(InputError) as csv:
        read_csv(f"a,b\n1,2\n3,{text}\n".encode(), fast)
    assert re.match(r"t\.csv:3(:3)?: ", csv.value.message()), csv.value.message()
    # the same reason on both paths (the CSV field is the same text)
    if "," not in text and text.strip() == text:
        assert inline.value.what == csv.value.what


def test_the_plain_parsers_agree_with_the_grammar_on_every_short_token():
    """numpy's loadtxt and polars see only blocks of plain bytes: over every token of up to 4 plain characters,
    each accepts exactly what the tokeniser accepts (polars may refuse more: its blocks then go to the
    tokeniser)."""
    alphabet = "01.eE+- "
    tokens = ["".join(t) for n in range(1, 5) for t in itertools.product(alphabet, repeat=n)]
    tokens = [t for t in tokens if t.strip()]
    grammar = {}
    for t in tokens:
        try:
            grammar[t] = inputs._number(t, lambda: "x")
        except InputError:
            grammar[t] = None
    parser = inputs._BlockParser("t.csv", 1, False)
    for t in tokens:
        block = f"{t}\n".encode()
        numpy_read = _try(lambda t=t: np.loadtxt([t], delimiter=",", dtype=np.float64, ndmin=2, comments=None))
        assert _same(numpy_read, grammar[t]), (t, numpy_read, grammar[t])
        polars_read = parser._parse_polars(block)  # (numbers, kept text) or None
        assert polars_read is None or _same(polars_read[0], grammar[t]), (t, polars_read, grammar[t])
        got = _try(lambda block=block: parser.parse(block, 1, fast=True)[0])
        assert _same(got, grammar[t]), (t, got, grammar[t])


def _try(fn):
    try:
        return fn()
    except (ValueError, InputError):
        return None


def _same(a, v):
    if a is None or v is None:
        return a is None and v is None
    return a.shape == (1, 1) and a[0, 0] == v


@pytest.mark.parametrize("fast", [False, True])
def test_a_byte_order_mark_is_not_part_of_the_first_field(fast):
    bom = "\ufeff".encode()
    # headerless: the first row stays a data row
    assert read_csv(bom + b"1,0.5\n0,0.2\n", fast).tolist() == [[1.0, 0.5], [0.0, 0.2]]
    r = _csv_reader(bom + b"target,pred\n1,0.5\n", fast)
    assert r.header == ["target", "pred"]
    assert inputs.parse_inline("\ufeff1,2", "{pred}").tolist() == [1.0, 2.0]


def test_a_byte_order_mark_read_a_byte_at_a_time():
    r = inputs.CsvReader(io.BufferedReader(io.BytesIO("\ufeff1,2\n3,4\n".encode()), 1), "t.csv", block_bytes=1)
    assert np.concatenate([c.data for c in r.chunks()]).tolist() == [[1.0, 2.0], [3.0, 4.0]]


BLANKS = ["\u00a0", "\u3000", "\f", "\v", "\x1c", "\u2028", " \t", "\r"]


@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize("fast", [False, True])
def test_a_line_of_any_blanks_is_blank(blank, fast):
    data = f"1,2\n{blank}\n3,4\n".encode()
    assert read_csv(data, fast).tolist() == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize("blank", BLANKS)
def test_the_line_counters_do_not_count_a_blank_line_as_a_row(tmp_path, blank):
    f = tmp_path / "t.csv"
    f.write_bytes(f"y,p\n1,2\n{blank}\n3,4\n".encode())
    # count_lines either counts only real lines or gives up; the quick count is checked at the end
    assert inputs.count_lines(str(f)) in (None, 3)
    f.write_bytes("\ufeffy,p\n1,2\n3,4\n".encode())
    assert inputs.count_lines(str(f)) == 3


@pytest.mark.parametrize("blank", ["\u00a0", "\u3000", "\f", "\v"])
def test_a_unicode_blank_line_in_a_piped_stream_keeps_n(tmp_path, blank):
    f = tmp_path / "t.csv"
    f.write_bytes(f"target,logit\n1,0.5\n{blank}\n0,-1\n".encode())
    r = run("bce", "--from-logits", "--csv", f, "-f", "csv")
    assert r.code == 0, r.err
    rows = [line.split(",") for line in r.out.splitlines()[1:]]
    # with N = 2: grad = (sigmoid(z) - y) / 2, by hand
    assert float(rows[0][1]) == pytest.approx((1 / (1 + np.exp(-0.5)) - 1) / 2, rel=1e-15)
    assert "mean over N=2" in r.err


@pytest.mark.parametrize("fast", [False, True])
def test_quoted_numbers_are_numbers_and_a_quoted_first_row_is_data(fast):
    assert read_csv(b'"1","0.5"\n"0",0.25\n', fast).tolist() == [[1.0, 0.5], [0.0, 0.25]]
    assert _csv_reader(b'"target","pred"\n1,0.5\n', fast).header == ["target", "pred"]


@pytest.mark.parametrize("fast", [False, True])
def test_blanks_inside_a_csv_field_are_refused(fast):
    with pytest.raises(InputError, match=r"t\.csv:2:3: '1 2' is not a number"):
        read_csv(b"1,2\n3,1 2\n", fast)


@pytest.mark.parametrize("fast", [False, True])
def test_a_first_row_of_refused_numbers_is_an_error_not_a_header(fast):
    with pytest.raises(InputError, match=r"t\.csv:1:3: '1_000' is not a number"):
        read_csv(b"1,1_000\n2,3\n", fast)


def test_a_line_too_long_stops_early(tmp_path):
    f = tmp_path / "wide.csv"
    f.write_bytes(b"1,2\n" + b"1," * (inputs.MAX_LINE_BYTES // 2 + 10) + b"1\n")
    assert_usage_error(run("mse", "--csv", f, "-f", "json"), "wide.csv:2:", "longer than 8 MB")
    f.write_bytes(b"1," * inputs.MAX_FIELDS + b"1\n")
    assert_usage_error(run("mse", "--csv", f, "-f", "csv"), "wide.csv:1:", "at most 100,000")


@pytest.mark.parametrize("fast", [False, True])
def test_a_wide_ragged_row_is_refused_by_its_field_count(fast):
    with pytest.raises(InputError, match=r"t\.csv:3: has 200001 fields but the first row has 2"):
        read_csv(b"1,2\n3,4\n" + b"1," * 200_000 + b"1\n", fast)


def test_polars_is_given_regular_blocks_only():
    p = inputs._BlockParser("t.csv", 2, False)
    assert p._regular(b"1,2\n3,4\n") and p._regular(b"1,2\n3,4")
    assert not p._regular(b"1,2\n\n3,4\n") and not p._regular(b"1,2\n3,4,5,6\n")
