"""Other delimiters than the comma (--delimiter, .tsv files, a first line of tabs) and --keep-cols (id columns, text
included, copied in front of each output row) on every path: the tokeniser for small inputs, polars for large ones,
batch mode's stream (counted or spooled) and the in-memory json, table and csv outputs."""

import csv
import io
import itertools
import json

import numpy as np
import pytest

import lossgrad
from conftest import assert_usage_error, lossgrad as run
from lossgrad import batch, inputs, render
from lossgrad.errors import InputError
from lossgrad.options import setup


def _rows(n, seed=3):
    rng = np.random.default_rng(seed)
    ids = [f"a{i}" if i % 3 else f"id {i}" for i in range(n)]  # (text, some with a space inside)
    y = rng.integers(0, 2, n).astype(float)
    z = rng.normal(scale=4, size=n)
    return ids, y, z


def _text(ids, y, z, sep, header=True):
    head = sep.join(["id", "target", "logit"]) + "\n" if header else ""
    return head + "".join(f"{i}{sep}{int(a)}{sep}{float(b)!r}\n" for i, a, b in zip(ids, y, z, strict=True))


def _read_out(text):
    """The per-row CSV output: its header and its rows as lists of fields (Python's csv module, RFC 4180)."""
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def _check_rows(out, ids, y, z, reduction):
    head, rows = _read_out(out)
    ref = lossgrad.bce(y, z, from_logits=True, reduction=reduction)
    assert head == ["id", "loss", "grad"]
    assert [r[0] for r in rows] == ids
    assert [float(r[1]) for r in rows] == ref.losses.tolist()
    assert [float(r[2]) for r in rows] == ref.grad.tolist()  # round-trip exact, bit for bit


# ---------------------------------------------------------------- tab-separated input


@pytest.mark.parametrize("how", ["suffix", "sniffed", "option", "tab-name", "stdin"])
def test_tsv_reads_as_the_same_csv(tmp_path, how):
    ids, y, z = _rows(40)
    rows = "".join(f"{int(a)},{float(b)!r}\n" for a, b in zip(y, z, strict=True))
    (tmp_path / "t.csv").write_text("target,logit\n" + rows)
    want = run("bce", "--from-logits", "--csv", tmp_path / "t.csv", "-f", "json")
    tsv = _text(ids, y, z, "\t")
    path = tmp_path / ("t.tsv" if how == "suffix" else "t.txt")
    path.write_text(tsv)
    args = {"suffix": [], "sniffed": [], "option": ["--delimiter", "\t"], "tab-name": ["--delimiter", "tab"],
            "stdin": ["--delimiter", "\\t"]}[how]
    common = ["bce", "--from-logits", "--target-cols", "target", "--pred-cols", "logit", "-f", "json", *args]
    got = run(*common, input=tsv) if how == "stdin" else run(*common, "--csv", path)
    assert got.code == 0, got.err
    assert got.json() == want.json() and got.json()["n"] == 40


@pytest.mark.parametrize("suffix", [".tsv", ".tab", ".TSV"])
def test_a_tsv_name_means_tabs_whatever_the_first_line(tmp_path, suffix):
    # a first line with a comma is not sniffed as tab-separated, but the file's name decides first
    text = "y,1\tp\n1\t3\n"
    (tmp_path / f"t{suffix}").write_text(text)
    (tmp_path / "t.txt").write_text(text)
    r = run("mse", "--csv", tmp_path / f"t{suffix}", "-f", "json")
    assert r.code == 0 and r.json()["value"] == 4.0  # (3 - 1)² by hand
    assert_usage_error(run("mse", "--csv", tmp_path / "t.txt", "-f", "json"), "t.txt:2:", "has 1 fields")


def test_a_first_line_with_commas_is_not_sniffed_as_tabs(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("1,\t2\n3,4\n")  # a tab beside a comma is a blank around a number
    r = run("mse", "--csv", f, "-r", "sum", "-f", "json")
    assert r.code == 0 and r.json()["losses"] == [1.0, 1.0]  # (2 - 1)², (4 - 3)² by hand


def test_tsv_with_blanks_around_numbers_and_quoted_numbers():
    r = run("mse", "-r", "none", "-f", "json", input='y\tp\n 1 \t "2"\n"3"\t  5\n')
    assert r.code == 0, r.err
    assert r.json()["losses"] == [1.0, 4.0]  # (2 - 1)², (5 - 3)² by hand


def test_an_empty_first_tab_field_is_a_column_not_a_blank():
    # pandas' to_csv(sep='\t') names its index column '': the header's first field is empty, not a blank to strip
    r = run("mse", "-r", "none", "-f", "csv", "--keep-cols", "0", input="\tA\tB\n7\t1\t2\n8\t0\t3\n")
    assert r.code == 0, r.err
    assert r.out == '"",loss,grad\n7,1.0,2.0\n8,9.0,6.0\n'  # (2 - 1)², (3 - 0)² and 2·(p - y) by hand


def test_tab_error_locations_point_at_the_field(tmp_path):
    f = tmp_path / "t.tsv"
    f.write_text("target\tpred\n0\t0.5\n1\t  0.2x\n")
    # line 3: '1' and a tab are columns 1 and 2, two blanks, then the field at column 5
    assert_usage_error(run("mse", "--csv", f, "-f", "csv"), f"{f}:3:5:", "'0.2x' is not a number")
    f.write_text("target\tpred\n0\t0.5\n1\t\n")
    assert_usage_error(run("mse", "--csv", f, "-f", "csv"), f"{f}:3:3:", "empty field")
    f.write_text("target\tpred\n0\t0.5\n1\t2\t3\n")
    assert_usage_error(run("mse", "--csv", f, "-f", "csv"), f"{f}:3:", "has 3 fields but the header has 2")


def test_a_late_error_in_a_large_tsv_is_located(tmp_path):
    ids, y, z = _rows(60_000)
    lines = _text(ids, y, z, "\t").splitlines(keepends=True)
    lines[50_001] = "a\t1\t\t1e999\n"[:-7] + "1e999\n"  # a value beyond the float range, past the polars threshold
    f = tmp_path / "big.tsv"
    f.write_text("".join(lines))
    assert f.stat().st_size > inputs.FAST_BYTES
    r = run("bce", "--from-logits", "--keep-cols", "id", "--csv", f, "-f", "csv")
    assert_usage_error(r, f"{f}:50002:5:", "'1e999' is not a finite number")


def test_semicolons(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("target;pred\n1;2\n3;5\n")
    r = run("mse", "--csv", f, "--delimiter", ";", "-r", "sum", "-f", "json")
    assert r.code == 0 and r.json()["value"] == 5.0  # (2 - 1)² + (5 - 3)² by hand
    f.write_text("target;pred\n1;2\n3;0,5\n")
    assert_usage_error(run("mse", "--csv", f, "--delimiter", ";", "-f", "json"), f"{f}:3:3:", "'0,5' is not a number",
                       "the decimal point is '.'")


def test_pipes_on_compare_and_check():
    text = "y|p\n0|0.25\n1|0.5\n"
    r = run("compare", "mse", "--delimiter", "|", "-f", "json", input=text)
    assert r.code == 0, r.err
    # check: the exact mean's gradient 2·(p - y)/2 by hand, so exact mathematics explains it
    r = run("check", "mse", "--delimiter", "pipe", "--my-grad", "0.25,-0.5", "-f", "json", input=text)
    assert r.code == 0 and r.json()["match"]["convention"] == "exact"


@pytest.mark.parametrize("value,fragment", [
    (" ", "a space cannot separate fields"), ("ab", "not one ASCII character"), ("", "not one ASCII character"),
    ("é", "not one ASCII character"), (".", "can be part of a number"), ("-", "can be part of a number"),
    ("e", "can be part of a number"), ("7", "can be part of a number"), ('"', "quoted value"),
])
def test_bad_delimiters(value, fragment):
    assert_usage_error(run("mse", "--delimiter", value, input="1,2\n"), "--delimiter:", fragment)


def test_delimiter_and_keep_cols_apply_to_csv_only():
    assert_usage_error(run("mse", "-y", "1", "-p", "2", "--delimiter", ";"), "--delimiter: applies to CSV input only")
    assert_usage_error(run("mse", "-y", "1", "-p", "2", "--keep-cols", "0"), "--keep-cols: applies to CSV input only")


def test_a_quoted_delimiter_gets_a_hint():
    r = run("mse", "-f", "csv", "--keep-cols", "id", input='id,y,p\n"a,17",0,0.5\n')
    assert_usage_error(r, "<stdin>:2: has 4 fields but the header has 3", "inside double quotes too")


# ---------------------------------------------------------------- --keep-cols


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("source", ["file", "stdin"])
def test_kept_ids_through_the_stream(tmp_path, reduction, size, source):
    # small: the tokeniser and repr; large (over the polars threshold): polars' parser and writer. A mean over a
    # file divides by a count made beforehand, over stdin the rows wait in the spool
    ids, y, z = _rows(60_000 if size == "large" else 50)
    text = _text(ids, y, z, "\t")
    f = tmp_path / "t.tsv"
    f.write_text(text)
    if size == "large":
        reader = inputs.open_csv(str(f), keep="id")
        reader.raw.close()
        assert f.stat().st_size > inputs.FAST_BYTES and reader.fast
    args = ["bce", "--from-logits", "-r", reduction, "--keep-cols", "id", "-f", "csv"]
    r = run(*args, input=text) if source == "stdin" else run(*args, "--csv", f)
    assert r.code == 0, r.err
    _check_rows(r.out, ids, y, z, reduction)


def test_kept_text_is_quoted_in_the_output_as_csv_needs(tmp_path):
    # commas, quotes and empty ids in a tab-separated input, through the tokeniser and through polars alike
    ids = ["a,b", 'say "hi"', "", "plain"] * 20_000
    y = np.array([0.0, 1.0, 1.0, 0.0] * 20_000)
    z = np.linspace(-3, 3, y.size)
    outs = []
    for n in (8, y.size):
        f = tmp_path / f"t{n}.tsv"
        f.write_text(_text(ids[:n], y[:n], z[:n], "\t"))
        r = run("bce", "--from-logits", "--keep-cols", "id", "-r", "sum", "--csv", f, "-f", "csv")
        assert r.code == 0, r.err
        _check_rows(r.out, ids[:n], y[:n], z[:n], "sum")
        outs.append(r.out)
    small, large = (out.splitlines() for out in outs)
    assert small[1].startswith('"a,b",') and small[2].startswith('"say ""hi""",') and small[3].startswith('"",')
    assert large[:5] == small[:5]  # polars quotes as the repr path does


def test_polars_reads_text_columns_itself():
    # (a block polars refused would be read again by the tokeniser: the same numbers, only slower)
    parser = inputs._BlockParser("t.tsv", 3, True, "\t", frozenset({0}), (0, 2))
    data, kept = parser._parse_polars(b'a1\t0\t0.50\n"b"\t1\t 2\n')
    assert data.tolist() == [[0.0, 0.0, 0.5], [0.0, 1.0, 2.0]] and kept == [["a1", "b"], ["0.50", "2"]]


def test_a_kept_number_polars_reads_as_text_is_one_the_grammar_takes():
    # a kept column that is also a prediction is read by polars as text, then as a number: over every token of up
    # to 4 of these characters it takes none the grammar refuses, and reads the others as the grammar does
    alphabet = "01.e+- _"
    parser = inputs._BlockParser("t.csv", 1, False, ",", frozenset(), (0,))
    for t in ("".join(t) for n in range(1, 5) for t in itertools.product(alphabet, repeat=n)):
        try:
            grammar = inputs._number(t, lambda: "x")
        except InputError:
            grammar = None
        got = parser._parse_polars(f"{t}\n".encode())
        if got is not None and np.isfinite(got[0]).all():
            assert got[0].tolist() == [[grammar]] and got[1] == [[t.strip()]], (t, got, grammar)


def test_quoted_ids_lose_their_quotes_and_blanks():
    r = run("mse", "-r", "none", "-f", "csv", "--keep-cols", "id", input='id,y,p\n  "a""1"  ,0,1\n b 2 ,0,2\n')
    assert r.code == 0, r.err
    assert r.out == 'id,loss,grad\n"a""1",1.0,2.0\nb 2,4.0,4.0\n'  # (p - y)² and 2·(p - y) by hand


def test_kept_columns_in_json_and_table():
    text = "id,label,z0,z1\nq1,1,0.5,0.5\nq2,0,0.0,0.0\n"
    js = run("ce", "--from-logits", "--keep-cols", "id", "-f", "json", input=text).json()
    # equal logits: loss log 2 for each sample, by hand
    assert js["kept"] == {"id": ["q1", "q2"]} and js["losses"] == [float(np.log(2))] * 2
    table = run("ce", "--from-logits", "--keep-cols", "id", "-f", "table", input=text).out.splitlines()
    head = table[2].split()
    assert head[:3] == ["id", "row", "class"]
    assert [line.split()[0] for line in table[4:8]] == ["q1", "q1", "q2", "q2"]


def test_without_a_header_kept_columns_are_named_by_index():
    # the id column kept by index is not taken for a header, however textual its first value
    r = run("mse", "-r", "none", "-f", "csv", "--keep-cols", "0", input="a17,1,2\nb2,0,3\n")
    assert r.code == 0, r.err
    assert r.out == "col0,loss,grad\na17,1.0,2.0\nb2,9.0,6.0\n"  # (p - y)² and 2·(p - y) by hand
    assert_usage_error(run("mse", "--keep-cols", "id", "-f", "csv", input="a17,1,2\n"), "--keep-cols:",
                       "no column named 'id'")


def test_kept_columns_overlapping_targets_are_copied():
    text = "id,y,p,junk\nx,1,2.50,zz\n"
    r = run("mse", "-r", "none", "-f", "csv", "--keep-cols", "p,id", "--target-cols", "y", "--pred-cols", "p",
            input=text)
    # the prediction's own text, 2.50, in front; the junk column, named nowhere, is not read as a number
    assert r.code == 0, r.err
    assert r.out == "p,id,loss,grad\n2.50,x,2.25,3.0\n"  # (2.5 - 1)², 2·(2.5 - 1) by hand


def test_an_unnamed_text_column_is_still_an_error_in_the_default_layout():
    assert_usage_error(run("mse", "-f", "csv", input="id,y,p\na17,1,2\n"), "<stdin>:2:1:", "'a17' is not a number")


def test_a_kept_column_is_set_aside_with_the_weights():
    r = run("mse", "-r", "sum", "-f", "csv", "--keep-cols", "id", "--sample-weight", "w",
            input="w,id,y,p\n2,a,1,2\n3,b,0,1\n")
    assert r.code == 0, r.err
    assert r.out == "id,loss,grad\na,2.0,4.0\nb,3.0,6.0\n"  # w·(p - y)², w·2·(p - y) by hand


@pytest.mark.parametrize("spec,fragment", [
    ("idx", "no column named 'idx' (columns: id, y, p)"), ("id,id", "names column 'id' twice"),
    ("7", "column 7 does not exist"), ("", "empty column name"),
])
def test_bad_keep_cols(spec, fragment):
    assert_usage_error(run("mse", "-f", "csv", "--keep-cols", spec, input="id,y,p\na,1,2\n"), "--keep-cols:",
                       fragment)


@pytest.mark.parametrize("args,fragment", [
    (["--target-cols", "0,0", "--pred-cols", "1,1"], "--target-cols: names column 't' twice"),
    (["--target-cols", "0", "--pred-cols", "1,p"], "--pred-cols: names column 'p' twice"),
    (["--target-cols", "t", "--pred-cols", "0:2,1"], "--pred-cols: names column 'p' twice"),
    (["--sample-weight", "w,w"], "--sample-weight: names column 'w' twice"),
])
def test_a_column_named_twice_is_refused_by_every_option(args, fragment):
    assert_usage_error(run("bce", "--from-logits", "-f", "csv", *args, input="t,p,w\n1,0.5,1\n"), fragment)


def test_a_name_the_header_gives_two_columns_is_ambiguous():
    text = "a,a,p\n1,0,0.5\n"
    for option in ("--target-cols", "--keep-cols"):
        assert_usage_error(run("bce", "--from-logits", "-f", "csv", option, "a", "--pred-cols", "2", input=text),
                           f"{option}: column name 'a' is ambiguous", "columns 0 and 1", "0-based index")
    r = run("bce", "--from-logits", "-f", "csv", "--target-cols", "1", "--pred-cols", "p", input=text)
    assert r.code == 0 and r.out.startswith("loss,grad\n"), r.err  # (picked by index, the name is not needed)


def test_keeping_every_column_leaves_none_for_the_loss():
    assert_usage_error(run("mse", "-f", "csv", "--keep-cols", "0:3", input="id,y,p\na,1,2\n"), "--keep-cols:",
                       "leaves no columns")


def test_kept_json_matches_the_csv_output():
    ids, y, z = _rows(30)
    text = _text(ids, y, z, ";")
    js = run("bce", "--from-logits", "--delimiter", ";", "--keep-cols", "id", "-f", "json", input=text).json()
    out = run("bce", "--from-logits", "--delimiter", ";", "--keep-cols", "id", "-f", "csv", input=text).out
    assert js["kept"]["id"] == ids and json.dumps(js["kept"]["id"]) == json.dumps([r[0] for r in _read_out(out)[1]])


@pytest.mark.parametrize("fast", [True, False], ids=["polars", "tokeniser"])
@pytest.mark.parametrize("block", [4096, 200_000], ids=["repr-writer", "polars-writer"])
@pytest.mark.parametrize("counted", [True, False], ids=["counted", "spooled"])
def test_kept_text_stays_with_its_rows_across_blocks(fast, block, counted):
    # many blocks, each parsed by one parser and written by one writer (polars' for blocks over 2000 rows); a mean
    # divided as it goes (the count given) or spooled until the end
    ids, y, z = _rows(20_000)
    text = _text(ids, y, z, "\t").encode()
    reader = inputs.CsvReader(io.BytesIO(text), "t.tsv", block_bytes=block, keep="id")
    reader.fast = fast
    reader.read_as_text({0}, [0])
    chunks = reader.chunks()
    first = next(chunks)
    layout = inputs.choose_layout(reader, first, "elementwise", "auto", None, None, aside={0})
    source = inputs.CsvSource(reader, itertools.chain([first], chunks), layout, [0])
    out = io.BytesIO()
    s = setup("bce", from_logits=True)
    batch.stream(s, source, out, render.csv_header(False, source.names, source.kept_names).encode(),
                 20_000 if counted else None)
    _check_rows(out.getvalue().decode(), ids, y, z, "mean")


def test_a_header_read_as_one_column_suggests_its_delimiter():
    """A ';'-separated CSV piped without --delimiter: the header is one column, and the error says which separator
    would split it into the names asked for."""
    from conftest import assert_usage_error, lossgrad as run

    r = run("mse", "--csv", "-", "--target-cols", "y0,y1", "--pred-cols", "p0,p1", input="y0;y1;p0;p1\n1;0;0.5;0.5\n")
    assert_usage_error(r, "no column named 'y0'", "the header looks ';'-separated: give --delimiter ';'")
