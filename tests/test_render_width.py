"""Tables at any terminal width: a number is never cut. Narrow terminals get fewer significant digits (the exponent
kept), then the columns in groups, and a line saying how to see every digit."""

import re

import pytest

from conftest import lossgrad

SEED = ["-y", "0,1,0,0", "-p", "8.358390031511923e-09,0.6248064744684293,0.9497887268097336,2.7607649501930464e-06"]
COMMANDS = {
    "bce tf-keras": ["bce", "-c", "tf-keras", *SEED],
    "bce from logits": ["bce", "--from-logits", "-y", "0,1,0,0", "-p", "-18.6,0.51,2.94,-12.8"],
    "ce 5 classes": ["ce", "--from-logits", "-y", "2,0", "-p", "0.3,-1.2,2.0,1e-300,7;1.5,0.2,-0.4,3e8,-2.5e-7"],
    "compare": ["compare", "bce", *SEED],
    "jacobian": ["jacobian", "softmax", "--x", "1,2,3,4,5,6"],
}
NUMBER = re.compile(r"^-?(\d+(\.\d*)?(e[-+]\d+)?|inf|nan)\*?$")


@pytest.mark.parametrize("width", [40, 60, 80, 200])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_numbers_are_never_cut(name, width):
    r = lossgrad(*COMMANDS[name], "-f", "table", env={"COLUMNS": str(width)})
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert all(len(line) <= width for line in lines), [line for line in lines if len(line) > width]
    assert "…" not in r.out  # rich's mark for a cut cell
    rows = [line.split() for line in lines if re.match(r"^\s+(\d+|value)\s", line)]
    assert rows and all(NUMBER.match(cell) for row in rows for cell in row[1:]), rows
    if width < 200 and name != "bce from logits":
        assert "--format csv or json, or a wider terminal" in " ".join(r.out.split())


def test_fewer_digits_keep_the_value_and_its_exponent():
    # 8.358390031511923e-09 at 80 columns: shown as 8.35839e-09 (6 digits), not 8.358390032… (which reads as 8.36)
    r = lossgrad(*COMMANDS["bce tf-keras"], "-f", "table", env={"COLUMNS": "80"})
    assert "8.35839e-09" in r.out and "shown to 6 significant digits" in r.out


def test_compare_keeps_its_difference_marks_when_narrow():
    wide = lossgrad(*COMMANDS["compare"], "-f", "table", env={"COLUMNS": "200"}).out.count("*")
    for width in (40, 60, 80):
        assert lossgrad(*COMMANDS["compare"], "-f", "table", env={"COLUMNS": str(width)}).out.count("*") == wide


def test_columns_zero_is_an_ordinary_terminal():
    r = lossgrad("mse", "-y", "1", "-p", "2", "-f", "table", env={"COLUMNS": "0"})
    assert r.code == 0 and "value=1.0" in r.out and " 2 " in r.out


@pytest.mark.parametrize("width", [60, 80, 120])
def test_compare_s_reasons_hang_under_their_first_line(width):
    """compare's "why they differ" and "not available" lines wrap at the terminal's width with their later lines
    indented under the first, never inside a cell's indexes "(2, 1)" or an equation "ε = 1e-06"."""
    r = lossgrad("compare", "triplet", "-y", "1,0;0,1", "-p", "0,0;1,1", "--negative", "0,0.5;1,0", "-f", "table",
                 env={"COLUMNS": str(width)})
    assert r.code == 0, r.err
    notes = r.out.split("\nkeras: not available", 1)[1].splitlines()
    assert all(len(line) <= width for line in notes), notes
    why = notes.index("why they differ:")
    for line in notes[why + 1:]:
        assert line.startswith(("  torch, ", "  optax, ", "    ")), line
    text = " ".join(notes)
    assert not re.search(r"\(\d+,$|^\s*\d+\)", "\n".join(notes), re.M) and "ε = 1e-06" in text


@pytest.mark.parametrize("width", [60, 80])
def test_explain_s_formulas_wrap_with_their_parts_whole(width):
    """--explain's formulas wrap at the terminal's width, later lines indented by two, never inside a subscript's
    braces ("Σ_{s < S−1}") or after a function's name ("log yᵢ"), with no trailing spaces."""
    for args in (["ctc", "--from-logits", "--target", "1,2", "--pred", "0,0.69,0; 0.69,0,0; 0,0,0.69"],
                 ["poisson", "--full", "-y", "0,2,5", "-p", "0.5,3,4"]):
        r = lossgrad(*args, "--explain", "-f", "table", env={"COLUMNS": str(width)})
        assert r.code == 0, r.err
        formulas = r.out.split("\n\n")[0].splitlines()
        assert all(len(line) <= width and line == line.rstrip() for line in formulas), formulas
        assert not any(line.rstrip().endswith(("log", "Σ_{s")) or line.count("{") != line.count("}")
                       for line in formulas), formulas
