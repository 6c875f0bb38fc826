"""Text in, arrays out: inline --target/--pred values, and CSV files or stdin read in chunks.

Every problem with the input becomes an InputError that names the option, or file:line:column, and says what
would be right. Nothing here knows about losses beyond their kind ("elementwise" or "rows").
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .errors import InputError

CHUNK_ROWS = 65536
_SPLIT = re.compile(r"\s*,\s*|\s+")


# ---------------------------------------------------------------- inline values


def _number(token: str, where: Callable[[], str]) -> float:
    try:
        v = float(token)
    except ValueError:
        raise InputError(where(), f"{token!r} is not a number") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise InputError(where(), f"{token!r} is not a finite number; NaN and infinity are not valid inputs")
    return v


def parse_inline(text: str, option: str) -> np.ndarray:
    """'1, 2 3' -> 1-D array; '1,2;3,4' -> 2-D array (rows separated by ';')."""
    rows_text = [r.strip() for r in text.split(";")]
    matrix = len(rows_text) > 1
    rows_text = [r for r in rows_text if r]
    if not rows_text:
        raise InputError(option, "is empty; give numbers separated by commas or spaces (';' between rows)")
    rows = []
    for i, r in enumerate(rows_text):
        tokens = _SPLIT.split(r)
        row = []
        for j, tok in enumerate(tokens):
            place = (lambda i=i, j=j: f"{option}: row {i + 1}, value {j + 1}") if matrix else (
                lambda j=j: f"{option}: value {j + 1}"
            )
            if tok == "":
                raise InputError(place(), "is empty (two separators in a row?)")
            row.append(_number(tok, place))
        rows.append(row)
    if matrix:
        widths = {len(r) for r in rows}
        if len(widths) > 1:
            bad = next(i for i, r in enumerate(rows) if len(r) != len(rows[0]))
            raise InputError(
                f"{option}: row {bad + 1}",
                f"has {len(rows[bad])} values but row 1 has {len(rows[0])}; every row needs the same number",
            )
        return np.array(rows, dtype=np.float64)
    return np.array(rows[0], dtype=np.float64)


def inline_locator(target: np.ndarray, pred: np.ndarray, y2: np.ndarray, p2: np.ndarray):
    """Maps (which, row, col) of the 2-D arrays back to the option and position the user typed."""
    orig = {"target": (target, y2, "--target"), "pred": (pred, p2, "--pred")}

    def locate(which: str, row: int, col: int) -> str:
        a, a2, option = orig[which]
        if a.ndim == 1:
            return f"{option}: value {row * a2.shape[1] + col + 1}"
        return f"{option}: row {row + 1}, value {col + 1}"

    return locate


# ---------------------------------------------------------------- CSV


@dataclass
class Chunk:
    data: np.ndarray  # rows x columns, float64
    linenos: list  # the file line of each row (1-based)
    texts: list  # the raw text of each row, for columns in error messages


def _char_column(text: str, field: int) -> int:
    """1-based character column where CSV field `field` (0-based) starts, past its leading blanks."""
    parts = text.split(",")
    col = sum(len(f) + 1 for f in parts[:field])
    if field < len(parts):
        col += len(parts[field]) - len(parts[field].lstrip())
    return col + 1


class CsvReader:
    """Reads numeric CSV from a binary stream in chunks of rows; detects a header; reports bad cells precisely."""

    def __init__(self, stream, name: str, chunk_rows: int = CHUNK_ROWS):
        self.name = name
        self.chunk_rows = chunk_rows
        raw = stream if isinstance(stream, io.BufferedIOBase) else io.BufferedReader(stream)
        head = raw.peek(8192)[:8192] if hasattr(raw, "peek") else b""
        if b"\0" in head:
            raise InputError(name, "is a binary file, not CSV text")
        self.raw = raw
        self.lineno = 0
        self.header: list[str] | None = None
        self.ncols: int | None = None
        self._pending: tuple[int, str] | None = None
        self._read_first()

    def where(self, lineno: int, col: int | None = None) -> str:
        return f"{self.name}:{lineno}" + (f":{col}" if col is not None else "")

    def _lines(self) -> Iterator[tuple[int, str]]:
        """(line number, text) of each non-blank line; CRLF and trailing blanks removed."""
        for raw_line in self.raw:
            self.lineno += 1
            try:
                s = raw_line.decode("utf-8").rstrip()
            except UnicodeDecodeError:
                raise InputError(self.where(self.lineno), "is not UTF-8 text") from None
            if s.strip():
                yield self.lineno, s

    def _read_first(self) -> None:
        self._it = self._lines()
        first = next(self._it, None)
        if first is None:
            raise InputError(self.name, "has no data (empty input)")
        lineno, text = first
        self.header_line = lineno
        fields = [f.strip() for f in text.split(",")]
        self.ncols = len(fields)
        try:
            [float(f) for f in fields]
        except ValueError:
            self.header = [f.strip('"').strip("'") for f in fields]
        else:
            self._pending = first

    def _locate_bad(self, linenos, texts) -> InputError:
        """The first bad cell of a chunk that numpy refused, as file:line:column."""
        for lineno, text in zip(linenos, texts):
            fields = text.split(",")
            if len(fields) != self.ncols:
                return InputError(
                    self.where(lineno),
                    f"has {len(fields)} fields but the {'header' if self.header else 'first row'} has {self.ncols}",
                )
            for j, f in enumerate(fields):
                tok = f.strip()
                place = lambda: self.where(lineno, _char_column(text, j))  # noqa: E731
                if not tok:
                    raise InputError(place(), "empty field; every field must be a number")
                _number(tok, place)
        return InputError(self.name, "could not be parsed as numeric CSV")

    def chunks(self) -> Iterator[Chunk]:
        linenos: list[int] = []
        texts: list[str] = []
        if self._pending is not None:
            linenos.append(self._pending[0])
            texts.append(self._pending[1])
            self._pending = None
        for lineno, text in self._it:
            linenos.append(lineno)
            texts.append(text)
            if len(texts) >= self.chunk_rows:
                yield self._parse(linenos, texts)
                linenos, texts = [], []
        if texts:
            yield self._parse(linenos, texts)

    def _parse(self, linenos, texts) -> Chunk:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = np.loadtxt(texts, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
        except ValueError:
            raise self._locate_bad(linenos, texts) from None
        if data.shape[1] != self.ncols:
            raise self._locate_bad(linenos, texts)
        finite = np.isfinite(data)
        if not finite.all():
            r, c = np.argwhere(~finite)[0]
            raise InputError(
                self.where(linenos[r], _char_column(texts[r], int(c))),
                f"{texts[r].split(',')[c].strip()!r} is not a finite number; NaN and infinity are not valid inputs",
            )
        return Chunk(data, linenos, texts)


# ---------------------------------------------------------------- columns and layout


def parse_cols(spec: str, option: str, header: list[str] | None, ncols: int) -> list[int]:
    """'a,b', '0,3', '2:5', '4:' -> column indexes (0-based, ranges half-open)."""
    out: list[int] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            raise InputError(option, f"empty column name in {spec!r}")
        if ":" in item:
            a, _, b = item.partition(":")
            try:
                lo = int(a) if a.strip() else 0
                hi = int(b) if b.strip() else ncols
            except ValueError:
                raise InputError(option, f"range {item!r} needs 0-based integers, like 1:3") from None
            if not (0 <= lo < hi <= ncols):
                raise InputError(option, f"range {item!r} is outside the {ncols} columns (0:{ncols})")
            out.extend(range(lo, hi))
        elif re.fullmatch(r"-?\d+", item):
            i = int(item)
            if not 0 <= i < ncols:
                raise InputError(option, f"column {i} does not exist; there are {ncols} (0 to {ncols - 1})")
            out.append(i)
        elif header and item in header:
            out.append(header.index(item))
        else:
            have = f"columns: {', '.join(header)}" if header else "the input has no header, so use 0-based indexes"
            raise InputError(option, f"no column named {item!r} ({have})")
    return out


@dataclass
class Layout:
    target: list[int]
    pred: list[int]
    labels: str | None = None  # ce: "index" or "onehot"


def _looks_onehot(block: np.ndarray) -> bool:
    """Rows of non-negative numbers that each sum to 1: one-hot or probability targets."""
    return bool((block >= 0).all() and np.allclose(block.sum(axis=1), 1, rtol=0, atol=1e-6))


def choose_layout(reader: CsvReader, first: Chunk | None, kind: str, labels: str, target_cols, pred_cols) -> Layout:
    n = reader.ncols
    where = reader.where(reader.header_line if reader.header else (first.linenos[0] if first else 1))
    if target_cols or pred_cols:
        t = parse_cols(target_cols, "--target-cols", reader.header, n) if target_cols else None
        p = parse_cols(pred_cols, "--pred-cols", reader.header, n) if pred_cols else None
        if t is None:
            t = [i for i in range(n) if i not in p]
        if p is None:
            p = [i for i in range(n) if i not in t]
        if not t or not p:
            raise InputError("--target-cols" if not t else "--pred-cols", "selects no columns")
        if set(t) & set(p):
            raise InputError("--pred-cols", "overlaps --target-cols; a column is either a target or a prediction")
        lab = None
        if kind == "rows":
            lab = "index" if (labels == "index" or (labels == "auto" and len(t) == 1)) else "onehot"
        return Layout(t, p, lab)
    if kind == "elementwise":
        if n % 2:
            raise InputError(
                where,
                f"{n} columns: by default the first half are targets and the second half predictions, so the count "
                "must be even; name them with --target-cols and --pred-cols",
            )
        k = n // 2
        return Layout(list(range(k)), list(range(k, n)))
    # ce: 1 label column + C prediction columns, or C target columns + C prediction columns
    if labels == "auto":
        if n % 2 or first is None:
            labels = "index"
        else:
            half = first.data[:, : n // 2]
            labels = "onehot" if _looks_onehot(half) else "index"
    if labels == "index":
        if n < 2:
            raise InputError(where, f"{n} column: ce with class-index labels needs 1 label column then C columns")
        return Layout([0], list(range(1, n)), "index")
    if n % 2:
        raise InputError(where, f"{n} columns: ce with one-hot targets needs C target columns then C prediction columns")
    return Layout(list(range(n // 2)), list(range(n // 2, n)), "onehot")


def column_names(reader_header: list[str] | None, cols: list[int]) -> list[str]:
    return [reader_header[i] if reader_header else str(i) for i in cols]
