"""Text in, arrays out: inline --target/--pred values, and CSV files or stdin read in chunks.

Every problem with the input becomes an InputError that names the option, or file:line:column, and says what
would be right. Nothing here knows about losses beyond their kind ("elementwise" or "rows").
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import re
import stat
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from .errors import NOT_FINITE, DomainError, InputError, OptionError, counted
from .losses import Loss
from .losses.base import Input
from .losses.ctc import HEAD, pack
from .pasted import unpaste

if TYPE_CHECKING:  # (numpy.typing costs a millisecond of start-up)
    from numpy.typing import NDArray

_SPLIT = re.compile(r"\s*,\s*|\s+")
# every blank str.strip() removes but the tab: a tab-separated line loses its blanks, never an empty first or last field
_BLANKS_NOT_TAB = ("\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                   "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


# ---------------------------------------------------------------- the tokeniser: one grammar for every path

BOM = "\ufeff"
# a number as every path reads it: optional sign, ASCII digits with an optional point, an optional exponent
# (Python's float() would also take '1_000', '١٢' and 'nan', which the CSV parsers do not)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
# the bytes of plain numeric CSV: numpy's and polars' parsers read a block of only these exactly as _number does
# (tests/test_tokens.py compares them); a block with any other byte is read by _number itself
PLAIN_BYTES = b"0123456789+-.eE, \t\r\n"


def is_plain(block: bytes, sep: str = ",") -> bool:
    """Only PLAIN_BYTES (and the delimiter), and a carriage return only before a line end (one C pass: 0.3 ms
    per MB)."""
    if block.translate(None, PLAIN_BYTES + sep.encode()):
        return False
    return b"\r" not in block or block.count(b"\r") == block.count(b"\r\n")


def _unquoted(text: str) -> str:
    """A value in double quotes without them ("0.5" is 0.5, as a CSV writer may quote it)."""
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def not_finite(text: str) -> str:
    return f"{text!r} {NOT_FINITE}"


def _hint(text: str) -> str:
    """Why a value that looks numeric is not read as a number."""
    if "_" in text and _NUMBER.fullmatch(text.replace("_", "")):
        return " (write it without '_' separators)"
    if any(c.isdigit() and not c.isascii() for c in text):
        return " (only the ASCII digits 0-9 are read)"
    if '"' in text:
        return ' (quotes may enclose a whole number only, like "0.5")'
    if "," in text and _NUMBER.fullmatch(text.replace(",", ".")):
        return " (the decimal point is '.')"
    return ""


def _placement_hint(text: str, sep: str | None, option: str | None) -> str:
    """Why a value made of numbers is one value: the '=' of a short option (-p=-1) before an inline `option`'s
    value, or CSV fields separated by another delimiter than `sep`."""
    if option is not None:
        v = text[1:].strip()
        if text.startswith("=") and _NUMBER.fullmatch(v):
            return f" (an option's value follows a blank, or '=' after its long name: {option} {v} or {option}={v})"
        return ""
    for d in ";|:\t":
        parts = text.split(d)
        if d != sep and len(parts) > 1 and all(_NUMBER.fullmatch(_unquoted(p.strip())) for p in parts):
            return f" (are the fields separated by {d!r}? give --delimiter {'tab' if d == chr(9) else repr(d)})"
    return ""


def _number(token: str, where: Callable[[], str], sep: str | None = None, option: str | None = None) -> float:
    """One value: blanks around it, and double quotes around the number, are allowed; `sep`: the CSV delimiter,
    or `option`: the option of an inline value (for the hint of a value that is not a number)."""
    text = token.strip()
    inner = _unquoted(text)
    if _NUMBER.fullmatch(inner):
        v = float(inner)
        if math.isfinite(v):
            return v
        raise InputError(where(), not_finite(text))
    if _NON_FINITE.fullmatch(inner):
        raise InputError(where(), not_finite(text))
    raise InputError(where(), f"{text!r} is not a number{_hint(inner) or _placement_hint(text, sep, option)}")


def _numberish(field: str) -> bool:
    """Whether a first line's field is meant as a number (then the line is data, and a value the grammar
    refuses is an error there, not a header's name)."""
    try:
        float(_unquoted(field.strip()))
    except ValueError:
        return False
    return True


def parse_inline(text: str, option: str) -> np.ndarray:
    """'1, 2 3' -> 1-D array; '1,2;3,4' -> 2-D array (rows separated by ';'); arrays as numpy and PyTorch print
    them too (pasted.unpaste)."""
    text = unpaste(text.removeprefix(BOM), option)
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
            row.append(_number(tok, place, option=option))
        rows.append(row)
    if matrix:
        widths = {len(r) for r in rows}
        if len(widths) > 1:
            bad = next(i for i, r in enumerate(rows) if len(r) != len(rows[0]))
            raise InputError(
                f"{option}: row {bad + 1}",
                f"has {counted(len(rows[bad]), 'value')} but row 1 has {len(rows[0])}; every row needs the same number",
            )
        return np.array(rows, dtype=np.float64)
    return np.array(rows[0], dtype=np.float64)


# ---------------------------------------------------------------- CSV


# A block of CSV text parsed at once: memory stays flat whatever the input's length. About BLOCK_ROWS rows, within
# these bounds: polars' cost per call (and per column) wants many cells per block, memory wants few bytes.
BLOCK_BYTES = 2 << 20
BLOCK_BYTES_MAX = 8 << 20
BLOCK_ROWS = 200_000
# a framework's kernels may sum a row otherwise in a short batch (XLA: 32 rows or fewer, or fewer than 4096
# elements): a short last block or slice of a longer batch goes with the one before it (CsvReader._next_read,
# evaluation.spans), so that each row is computed as in the batch
SHORT_BATCH_ROWS, SHORT_BATCH_ELEMENTS = 33, 4096
# XLA hands 4,096 rows or more to YNNPACK where a batch of fewer is its own loops' (lowp_xla.ynn_probability_rows)
YNN_ROWS = 4096
FAST_BYTES = 1 << 20  # inputs larger than this are parsed by polars (multithreaded), smaller by numpy
# the widest input read: a longer line, or more fields, is refused before it is held whole (memory stays bounded)
MAX_LINE_BYTES = BLOCK_BYTES_MAX
MAX_FIELDS = 100_000


LineNo = Callable[[], int] | int  # a line number, or a function that counts it (only errors need it)
Kept = list[list[str]]  # the text of each --keep-cols column, one entry per row


def delimiter(value: str | None) -> str | None:
    """--delimiter as typed: one ASCII character that cannot be part of a number, or a name ('tab', '\\t')."""
    if value is None:
        return None
    sep = DELIMITER_NAMES.get(value.lower(), value)
    if sep == " ":
        raise OptionError("delimiter", "a space cannot separate fields, since blanks around a number are allowed "
                                       "('1  2' would be ambiguous); use tab ('tab' or '\\t')")
    if len(sep) != 1 or not sep.isascii() or not (sep.isprintable() or sep == "\t"):
        raise OptionError("delimiter", f"{value!r} is not one ASCII character; give one such as ',', ';', '|' or "
                                       "'tab'")
    if sep.isalnum() or sep in "+-.\"'":
        raise OptionError("delimiter", f"{sep!r} can be part of a number or a quoted value; give one such as ',', ';', "
                                       "'|' or 'tab'")
    return sep


def sniff(name: str, first: str) -> str:
    """The delimiter when none is given: tab for a .tsv or .tab file, or when the first line (stripped) has tabs
    and no commas; else a comma."""
    if name.lower().endswith((".tsv", ".tab")) or ("\t" in first and "," not in first):
        return "\t"
    return ","


def _trim(text: str, sep: str) -> str:
    """A line without the blanks around it, but a tab when tabs separate its fields (an empty first field)."""
    return text.strip(_BLANKS_NOT_TAB) if sep == "\t" else text.strip()


def _trim_end(text: str, sep: str) -> str:
    return text.rstrip(_BLANKS_NOT_TAB) if sep == "\t" else text.rstrip()


def kept_text(values: list[str | None]) -> list[str]:
    """A kept column's fields as text: blanks around them dropped, and double quotes around a whole field
    (a doubled quote inside is one quote)."""
    out = []
    for v in values:
        t = (v or "").strip()
        if len(t) >= 2 and t[0] == t[-1] == '"':
            t = t[1:-1].replace('""', '"')
        out.append(t)
    return out


class Chunk:
    """The rows of one block of CSV text: their numbers, and how to find a row's line when it is at fault."""

    def __init__(self, data: NDArray[np.float64], block: bytes, first_line: LineNo, name: str, sep: str = ",",
                 kept: Kept | None = None) -> None:
        self.data = data
        self.kept = kept  # the --keep-cols columns' text
        self._block = block
        self._first_line = first_line
        self._name = name
        self._sep = sep
        self._rows: list[tuple[int, str]] | None = None

    def _index(self) -> list[tuple[int, str]]:
        if self._rows is None:
            rows = []
            first = _resolve(self._first_line)
            for i, raw in enumerate(self._block.split(b"\n")):
                text = _trim_end(raw.decode("utf-8", errors="replace"), self._sep)
                if text.strip():
                    rows.append((first + i, text))
            self._rows = rows
        return self._rows

    def line(self, row: int) -> tuple[int, str]:
        """(line number, text) of data row `row` of this chunk."""
        return self._index()[row]

    def where(self, row: int, field: int | None = None) -> str:
        lineno, text = self.line(row)
        return f"{self._name}:{lineno}" + ("" if field is None else f":{_char_column(text, field, self._sep)}")


class Rows(Chunk):
    """Rows of one or more chunks taken as one block (`parts`: each chunk with its first row and the row after its
    last): their numbers, their kept text, and each row's line, its own chunk's."""

    def __init__(self, parts: list[tuple[Chunk, int, int]]) -> None:
        self.parts = parts
        self.data = np.concatenate([c.data[a:b] for c, a, b in parts])
        kept = [c.kept for c, _, _ in parts]
        self.kept = None if kept[0] is None else [sum((k[i][a:b] for k, (_, a, b) in zip(kept, parts, strict=True)
                                                       if k is not None), []) for i in range(len(kept[0]))]

    def _of(self, row: int) -> tuple[Chunk, int]:
        for chunk, a, b in self.parts:
            if row < b - a:
                return chunk, a + row
            row -= b - a
        raise IndexError(row)

    def line(self, row: int) -> tuple[int, str]:
        chunk, at = self._of(row)
        return chunk.line(at)

    def where(self, row: int, field: int | None = None) -> str:
        chunk, at = self._of(row)
        return chunk.where(at, field)


def whole_packets(chunks: Iterable[Chunk], rows: int) -> Iterator[Chunk]:
    """The chunks as blocks of a multiple of `rows` rows but the last: the rows after a block's last whole multiple
    go with the next block (a kernel that takes the whole batch in packets then finds them whole in every block)."""
    carry: list[tuple[Chunk, int, int]] = []
    for chunk in chunks:
        n = chunk.data.shape[0]
        cut = n - (sum(b - a for _, a, b in carry) + n) % rows
        if cut <= 0:
            carry.append((chunk, 0, n))
            continue
        yield chunk if not carry and cut == n else Rows([*carry, (chunk, 0, cut)])
        carry = [(chunk, cut, n)] if cut < n else []
    if carry:
        yield Rows(carry)


def _resolve(line: LineNo) -> int:
    return line() if callable(line) else line


def _where(name: str, lineno: int, col: int | None = None) -> str:
    return f"{name}:{lineno}" + (f":{col}" if col is not None else "")


def _char_column(text: str, field: int, sep: str = ",") -> int:
    """1-based character column where CSV field `field` (0-based) starts, past its leading blanks."""
    parts = text.split(sep)
    col = sum(len(f) + 1 for f in parts[:field])
    if field < len(parts):
        col += len(parts[field]) - len(parts[field].lstrip())
    return col + 1


def _polars() -> ModuleType | None:
    try:
        import polars
    except ImportError:  # an optional speed-up: numpy reads the same files, slower
        return None
    return polars


@dataclass
class _FirstLine:
    """The input's first non-blank line (a header or the first row), found in the bytes read so far."""

    buf: bytes  # every byte read so far
    eof: bool  # whether that is the whole input
    text: str  # the line, stripped
    line: int  # its line number
    start: int  # its offset in buf
    end: int  # the offset of its line end (len(buf) when it has none)


def _first_line(buf: bytes, read_more: Callable[[], bytes], name: str) -> _FirstLine:
    """The first non-blank line of the input that starts with `buf`, read whole (calling read_more as needed)."""
    eof = not buf
    pos, line = 0, 1
    while True:
        nl = buf.find(b"\n", pos)
        if nl < 0 and not eof:
            _check_length(len(buf) - pos, name, line)
            more = read_more()
            eof = not more
            buf += more
            continue
        end = len(buf) if nl < 0 else nl
        _check_length(end - pos, name, line)
        try:
            text = buf[pos:end].decode("utf-8").strip()
        except UnicodeDecodeError:
            raise InputError(_where(name, line), "is not UTF-8 text") from None
        if "\r" in text:  # (a CR at the line's end is CRLF's, stripped; inside it, the line ends of old Macs)
            raise InputError(_where(name, line), "has lines that end in a bare carriage return (\\r) and not in "
                                                 "\\n or \\r\\n; convert them first: tr '\\r' '\\n' < FILE")
        if text:
            return _FirstLine(buf, eof, text, line, pos, end)
        if nl < 0:
            raise InputError(name, "has no data (empty input)")
        pos, line = nl + 1, line + 1


def _check_length(length: int, name: str, line: LineNo) -> None:
    if length > MAX_LINE_BYTES:
        raise InputError(_where(name, _resolve(line)), f"is longer than {MAX_LINE_BYTES >> 20} MB, the longest line "
                                                       "lossgrad reads (is it CSV with one sample per line?)")


def _is_header(fields: list[str], kept: set[int]) -> bool:
    """A first line is a header if any of its fields is not a number (empty fields decide nothing: pandas
    leaves the index column's name empty; nor do columns kept by index, which may hold text ids)."""
    return any(f.strip() and not _numberish(f) for i, f in enumerate(fields) if i not in kept)


def _indexes(spec: str | None, ncols: int) -> set[int]:
    """The columns a --keep-cols spec names by index or range (names need a header to mean anything)."""
    out: set[int] = set()
    for item in (spec or "").split(","):
        try:
            out.update(parse_cols(item, "", None, ncols))
        except InputError:  # (a name, or a column out of range: reported once the layout is read)
            pass
    return out


def _is_terminal(stream: IO[bytes]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class CsvReader:
    """Numeric CSV from a binary stream, in blocks of about `block_bytes` (by default BLOCK_ROWS rows, within
    BLOCK_BYTES and BLOCK_BYTES_MAX) cut at line ends.

    The first non-blank line is a header if any field is not a number. Each block is parsed by polars when the
    input is large (and polars is installed), else by numpy; a block either refuses is re-read line by line to
    report the first bad cell as file:line:column. Fields are separated by `delimiter`, or as `sniff` finds;
    columns `keep` names by index may hold text in the first line without making it a header.
    """

    def __init__(self, stream: IO[bytes], name: str, block_bytes: int | None = None, size: int | None = None,
                 path: str | None = None, delimiter: str | None = None, keep: str | None = None) -> None:
        self.name = name
        # a file that can be read again: its blocks' line numbers are counted only when an error needs one
        self.path = path
        self._counted: list[tuple[int, int]] = []  # (offset, line number there) already counted
        self.block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
        self.raw = stream
        # typed at a terminal: Ctrl-D ends a read short, and that is the end (not a second Ctrl-D)
        self._typed = _is_terminal(stream)
        self._ended = False
        self.bytes_read = 0
        self.size = size
        self.header: list[str] | None = None
        buf = self._read(self.block_bytes)
        while buf and len(buf) <= len(BOM.encode()) and BOM.encode().startswith(buf[:3]):
            more = self._read(self.block_bytes)
            if not more:
                break
            buf += more
        buf = buf.removeprefix(BOM.encode())  # (a byte-order mark, as Excel writes: not part of the first field)
        if b"\0" in buf[:8192]:
            raise InputError(name, "is a binary file, not CSV text")
        first = _first_line(buf, lambda: self._read(self.block_bytes), name)
        self._eof = first.eof
        self.sep = sniff(name, first.text) if delimiter is None else delimiter
        self._first_fields(first, keep)
        if block_bytes is None:  # rows as wide as the first block's
            lines = self._buf.count(b"\n")
            if lines:
                width = len(self._buf) / lines
                self.block_bytes = int(min(BLOCK_BYTES_MAX, max(BLOCK_BYTES, width * BLOCK_ROWS)))
        small = (self._eof and len(first.buf) <= FAST_BYTES) or (size is not None and size <= FAST_BYTES)
        self.fast = not small and _polars() is not None  # (read at each block: a test may set it)
        self._parser = _BlockParser(name, self.ncols, self.header is not None, self.sep)

    def _first_fields(self, first: _FirstLine, keep: str | None) -> None:
        """The column count, and the header if the first line is one."""
        text = _trim(first.buf[first.start:first.end].decode("utf-8"), self.sep)
        if text.count(self.sep) >= MAX_FIELDS:
            raise InputError(_where(self.name, first.line), f"has {text.count(self.sep) + 1} fields; lossgrad "
                                                            f"reads at most {MAX_FIELDS:,} per line")
        fields = [f.strip() for f in text.split(self.sep)]
        self.ncols = len(fields)
        self.header_line = first.line
        if _is_header(fields, _indexes(keep, self.ncols)):
            self.header = [f.strip('"').strip("'") for f in fields]
            self._buf, self._line = first.buf[first.end + 1:], first.line + 1
        else:
            self._buf, self._line = first.buf[first.start:], first.line

    def read_as_text(self, text: set[int], keep: list[int]) -> None:
        """Read columns `text` as text, not numbers (their place in the data is 0), and carry the text of
        columns `keep` with each chunk."""
        self._parser = _BlockParser(self.name, self.ncols, self.header is not None, self.sep, frozenset(text),
                                    tuple(keep))

    def _read(self, n: int) -> bytes:
        if self._ended:
            return b""
        b = self.raw.read(n)
        self._ended = self._typed and len(b) < n
        self.bytes_read += len(b)
        return b

    def where(self, lineno: int, col: int | None = None) -> str:
        return _where(self.name, lineno, col)

    def _pieces(self) -> Iterator[bytes]:
        """The input from where the header left off, as it is read."""
        if self._buf:
            yield self._buf
        self._buf = b""
        while not self._eof:
            more = self._read(self._next_read())
            if not more:
                self._eof = True
                return
            yield more

    def _next_read(self) -> int:
        """block_bytes, or for a file of known size all that is left where the read after would be a short last
        block (less than a quarter of block_bytes): a framework sums the rows of a short batch otherwise
        (SHORT_BATCH_ROWS), and a long file's last rows are computed as the framework computes them in the whole
        batch. (A pipe's last block may be short: its end is not known before it comes.)"""
        n = self.block_bytes
        left = None if self.size is None else self.size - self.bytes_read
        return max(n, left) if left is not None and left - n < n // 4 else n

    def blocks(self) -> Iterator[tuple[bytes, LineNo]]:
        """(block of whole lines, the line number it starts at or a function counting it), about block_bytes
        each."""
        line = self._line
        path = self.path  # when set, line numbers are counted only if an error needs one
        start = self.bytes_read - len(self._buf)  # the file offset of the next block
        first_offset, first_line = start, line
        pending: list[bytes] = []  # the start of a line not yet ended, in pieces
        for piece in self._pieces():
            cut = piece.rfind(b"\n")
            if pending:  # a long line: refused once longer than any lossgrad reads, before it is held whole
                length = sum(map(len, pending)) + (len(piece) if cut < 0 else piece.find(b"\n"))
                _check_length(length, self.name, line if path is None else
                              self._line_at(path, first_offset, first_line, start))
            if cut < 0:  # no line end yet: a very long line
                pending.append(piece)
                continue
            if not pending and cut == len(piece) - 1:
                block = piece  # (no copy)
            else:  # one copy, however the lines fell across reads
                block = b"".join([*pending, memoryview(piece)[: cut + 1]])
                pending = [piece[cut + 1:]] if cut + 1 < len(piece) else []
            if path is not None:
                yield block, self._line_at(path, first_offset, first_line, start)
            else:
                yield block, line
                line += block.count(b"\n")
            start += len(block)
        block = b"".join(pending)  # a last line without a line end
        if block:
            yield block, (line if path is None else self._line_at(path, first_offset, first_line, start))

    def _line_at(self, path: str, offset0: int, line0: int, offset: int) -> Callable[[], int]:
        """A function giving the line number at byte `offset` of file `path`, counted from (offset0, line0)."""

        def count() -> int:
            # from the nearest point already counted (blocks ask in order, so the file is read once overall)
            known = [(o, n) for o, n in self._counted if o <= offset]
            o0, lines = max(known) if known else (offset0, line0)
            with open(path, "rb") as f:
                f.seek(o0)
                left = offset - o0
                while left > 0:
                    piece = f.read(min(left, 16 << 20))
                    if not piece:
                        break
                    lines += piece.count(b"\n")
                    left -= len(piece)
            self._counted.append((offset, lines))
            return lines

        return count

    def chunks(self) -> Iterator[Chunk]:
        for block, line in self.blocks():
            if block:
                data, kept = self._parser.parse(block, line, self.fast)
                if data.shape[0]:
                    yield Chunk(data, block, line, self.name, self.sep, kept)


# ---------------------------------------------------------------- parsing a block


def _all_finite(data: NDArray[np.float64]) -> bool:
    """One pass: a NaN or infinity anywhere makes the sum one (an overflowing sum is looked at closely)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(data.sum())) or bool(np.isfinite(data).all())


@dataclass(frozen=True)
class _BlockParser:
    """Turns a block of one input's CSV text into numbers (and the text of the kept columns), or an InputError at
    its first bad cell."""

    name: str
    ncols: int
    has_header: bool  # (a row's field count is compared with the header's, or else the first row's)
    sep: str = ","
    text: frozenset[int] = frozenset()  # columns read as text, not numbers (0 in the data)
    keep: tuple[int, ...] = ()  # columns whose text goes with each chunk

    def parse(self, block: bytes, line: LineNo, fast: bool) -> tuple[NDArray[np.float64], Kept | None]:
        # polars takes no token the grammar refuses but the words for infinity and NaN, which come out non-finite:
        # then (or when polars refuses the block) the block is read again here, and the grammar names the fault
        # (tests/test_tokens.py; checking every block's bytes first cost 0.55 ms per MB)
        parsed = self._parse_polars(block) if fast else None
        if parsed is not None and _all_finite(parsed[0]):
            return parsed
        data, kept = self._parse_numpy(block, line, not self.keep and not self.text and is_plain(block, self.sep))
        if _all_finite(data):
            return data, kept
        finite = np.isfinite(data)
        if not finite.all():
            r, c = np.argwhere(~finite)[0]
            chunk = Chunk(data, block, line, self.name, self.sep)
            lineno, text = chunk.line(int(r))
            raise InputError(_where(self.name, lineno, _char_column(text, int(c), self.sep)),
                             not_finite(text.split(self.sep)[c].strip()))
        return data, kept

    def _parse_polars(self, block: bytes) -> tuple[NDArray[np.float64], Kept | None] | None:
        pl = _polars()
        if pl is None or not self._regular(block):
            return None
        names = [f"c{i}" for i in range(self.ncols)]
        as_text = self.text.union(self.keep)
        try:
            df = pl.read_csv(
                block, has_header=False, new_columns=names, separator=self.sep,
                schema={c: pl.String if i in as_text else pl.Float64 for i, c in enumerate(names)},
                truncate_ragged_lines=False, quote_char=None,
            )
            if not as_text:
                data: NDArray[np.float64] = df.to_numpy()
                # (an empty field or a blank line is a null, which comes out as NaN: parse() has it read again)
                return data, None
            numeric = [i for i in range(self.ncols) if i not in self.text]
            # a kept column that is also a target or prediction: its text read as a number (a null where polars
            # refuses it, which parse() has read again)
            frame = df.select(pl.col(names[i]).str.strip_chars().cast(pl.Float64, strict=False) if i in self.keep
                              else pl.col(names[i]) for i in numeric)
            data = np.zeros((df.height, self.ncols))
            data[:, numeric] = frame.to_numpy()
        except Exception:  # anything polars will not take: numpy re-reads the block and names the fault
            return None
        return data, [kept_text(df[names[i]].to_list()) for i in self.keep]

    def _regular(self, block: bytes) -> bool:
        """Every line holds ncols fields, by the count of delimiters and line ends (0.5 ms per MB): polars is never
        given a blank line or a row wider than the first (a line of millions of fields costs it gigabytes)."""
        a = np.frombuffer(block, dtype=np.uint8)
        lines = int(np.count_nonzero(a == 10)) + (not block.endswith(b"\n"))
        return int(np.count_nonzero(a == ord(self.sep))) == (self.ncols - 1) * lines

    def _parse_numpy(self, block: bytes, first_line: LineNo, plain: bool
                     ) -> tuple[NDArray[np.float64], Kept | None]:
        """numpy's parser for plain bytes, else (or where it refuses) _number on each field."""
        line = _resolve(first_line)
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(_where(self.name, line + block[: e.start].count(b"\n")), "is not UTF-8 text") from None
        # blank is blank whatever the blanks: U+00A0 or U+3000 alone make no row (str.strip, as Chunk counts)
        rows = [(line + i, _trim_end(t, self.sep)) for i, t in enumerate(text.split("\n")) if t.strip()]
        if not rows:
            return np.zeros((0, self.ncols)), [[] for _ in self.keep] if self.keep else None
        if plain:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    data = np.loadtxt([t for _, t in rows], delimiter=self.sep, dtype=np.float64, ndmin=2,
                                      comments=None)
                if data.shape[1] == self.ncols:
                    return data, None
            except ValueError:
                pass
        return self._parse_rows(rows)

    def _parse_rows(self, rows: list[tuple[int, str]]) -> tuple[NDArray[np.float64], Kept | None]:
        """Each field of each (line number, text) read by _number; the first bad one as file:line:column."""
        out, kept = [], []
        for lineno, text in rows:
            if text.count(self.sep) + 1 != self.ncols:  # (counted before a wide line is split)
                raise InputError(
                    _where(self.name, lineno),
                    f"has {text.count(self.sep) + 1} fields but the {'header' if self.has_header else 'first row'} "
                    f"has {self.ncols}{_quoted_sep(text, self.sep)}",
                )
            fields = text.split(self.sep)
            row = []
            for j, f in enumerate(fields):
                place = functools.partial(_where, self.name, lineno, _char_column(text, j, self.sep))
                if j in self.text:
                    row.append(0.0)
                elif not f.strip():
                    raise InputError(place(), "empty field; every field must be a number")
                else:
                    row.append(_number(f, place, self.sep))
            out.append(row)
            kept.append([fields[j] for j in self.keep])
        data = np.array(out, dtype=np.float64).reshape(len(out), self.ncols)
        return data, [kept_text([r[k] for r in kept]) for k in range(len(self.keep))] if self.keep else None


def _quoted_sep(text: str, sep: str) -> str:
    """A hint when a quoted value may hold the delimiter (which lossgrad does not take as part of the value)."""
    if re.search(f'"[^"]*{re.escape(sep)}[^"]*"', text):
        return f" (lossgrad splits at every {sep!r}, inside double quotes too)"
    return ""


_BLANK = np.zeros(256, dtype=bool)
_BLANK[[32, 9, 13, 10]] = True  # space, tab, CR, LF
_SPACE = np.zeros(256, dtype=bool)
_SPACE[[32, 9]] = True
# bytes that may be or begin a blank the parsers strip but the ASCII tables above do not know: form feed, vertical
# tab, the separators \x1c-\x1f, and any UTF-8 sequence (U+00A0, U+3000, ...)
_OTHER_BLANK = np.zeros(256, dtype=bool)
_OTHER_BLANK[[11, 12, 28, 29, 30, 31]] = True
_OTHER_BLANK[128:] = True


def quick_count_lines(path: str, block_bytes: int = 8 << 20) -> int | None:
    """The number of lines of a file from its line ends alone (one vectorised pass, read into one reused
    buffer). Blank lines count too, so it can exceed the samples: a stream divided by it is checked at the end
    and run again if it was wrong."""
    buf = bytearray(block_bytes)
    a = np.frombuffer(buf, dtype=np.uint8)
    lines, last = 0, 10
    try:
        with open(path, "rb", buffering=0) as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                lines += int(np.count_nonzero(a[:k] == 10))
                last = buf[k - 1]
    except OSError:
        return None
    return lines + (last != 10)  # a last line without its line end


def count_lines(path: str, block_bytes: int = 16 << 20) -> int | None:
    """The number of lines of a CSV file (header and data), counted from its line ends alone, or None when some
    line is blank, starts or ends with blanks, or holds a byte that may be a blank beyond ASCII's (then only
    parsing can tell). Lets batch mode divide by N before it has read to
    the end. One vectorised look at the bytes around each line end."""
    lines = 0
    prev_last = 10  # as if a line ended just before the file: a leading blank line is irregular
    size = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(block_bytes)
            if not size:
                block = block.removeprefix(BOM.encode())
            if not block:
                break
            size += len(block)
            a = np.frombuffer(block, dtype=np.uint8)
            if _OTHER_BLANK[a].any():
                return None
            nl = np.flatnonzero(a == 10)
            # the first byte of every line (after a line end, or the file's first) must not be blank ...
            starts = a[nl[nl + 1 < a.size] + 1]
            if _BLANK[starts].any() or (prev_last == 10 and _BLANK[a[0]]):
                return None
            # ... nor the last byte before a line end (CR allowed, but not blank before it)
            before = np.where(nl > 0, a[np.maximum(nl - 1, 0)], prev_last)
            cr = before == 13
            if _SPACE[before].any():
                return None
            if cr.any():
                idx = nl[cr] - 2
                before2 = np.where(idx >= 0, a[np.maximum(idx, 0)], 32)
                if _BLANK[before2].any():
                    return None
            lines += nl.size
            prev_last = int(a[-1])
    if size == 0:
        return 0
    if prev_last != 10:
        lines += 1  # a last line without its line end
    return lines


# ---------------------------------------------------------------- columns and layout


def parse_cols(spec: str, option: str, header: list[str] | None, ncols: int) -> list[int]:
    """'a,b', '0,3', '2:5', '4:' -> column indexes (0-based, ranges half-open), each at most once."""
    out = _cols(spec, option, header, ncols)
    twice = next((i for i in out if out.count(i) > 1), None)
    if twice is not None:
        raise InputError(option, f"names column {column_names(header, [twice])[0]!r} twice; name each column once")
    return out


def _cols(spec: str, option: str, header: list[str] | None, ncols: int) -> list[int]:
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
            same = [i for i, h in enumerate(header) if h == item]
            if len(same) > 1:
                alike = f"{', '.join(map(str, same[:-1]))} and {same[-1]}"
                raise InputError(option, f"column name {item!r} is ambiguous: the header names columns {alike} "
                                         "alike; pick one by its 0-based index")
            out.append(same[0])
        else:
            have = f"columns: {', '.join(header)}" if header else "the input has no header, so use 0-based indexes"
            # (a header read as one column, whose names another separator splits: the file's own delimiter)
            seps = [sep for sep in (";", "\t", "|", " ") if any(item in h.split(sep) for h in header or [])]
            hint = f"; the header looks {'tab' if seps[0] == chr(9) else repr(seps[0])}-separated: give --delimiter " \
                   f"{repr(seps[0]) if seps[0] != chr(9) else 'tab'}" if seps else ""
            raise InputError(option, f"no column named {item!r} ({have}){hint}")
    return out


@dataclass
class Layout:
    target: list[int]
    pred: list[int]
    labels: str | None = None  # ce: "index" or "onehot"
    weight: int | None = None  # the column of per-sample weights (--sample-weight)
    extra: dict[str, list[int]] = field(default_factory=dict)  # the columns of the loss's extra inputs

    def file_column(self, which: str, col: int) -> int:
        """The file's column of column `col` of the targets, predictions, weights or an extra input."""
        if which in self.extra:
            return self.extra[which][col]
        if which == "weight":
            assert self.weight is not None
            return self.weight
        return (self.target if which == "target" else self.pred)[col]

    def error(self, e: DomainError, chunk: Chunk) -> InputError:
        """A loss's DomainError in `chunk` as an InputError at file:line:column."""
        return located(e, chunk.where(e.row, self.file_column(e.which, e.col)))


def _looks_onehot(block: np.ndarray) -> bool:
    """Rows of non-negative numbers that each sum to 1: one-hot or probability targets."""
    return bool((block >= 0).all() and np.allclose(block.sum(axis=1), 1, rtol=0, atol=1e-6))


def choose_layout(reader: CsvReader, first: Chunk | None, kind: str, labels: str, target_cols: str | None,
                  pred_cols: str | None, weight_col: str | None = None, aside: Collection[int] = ()) -> Layout:
    """Which columns are targets and predictions (and weights): as named, or the default layout of the loss's
    kind over the columns left once the weight column and the columns `aside` (kept text) are taken out."""
    w = None
    if weight_col is not None:
        cols = parse_cols(weight_col, "{sample_weight}", reader.header, reader.ncols)
        if len(cols) != 1:
            raise InputError("{sample_weight}", "names one column (a name or a 0-based index)")
        w = cols[0]
        for option, spec in (("{target_cols}", target_cols), ("{pred_cols}", pred_cols)):
            if spec and w in parse_cols(spec, option, reader.header, reader.ncols):
                raise InputError(option, "includes the {sample_weight} column")
    out = set(aside) | ({w} if w is not None else set())
    rest = [i for i in range(reader.ncols) if i not in out]
    if not out:
        return _choose_layout(reader, first, kind, labels, target_cols, pred_cols)
    if not rest and not aside:
        raise InputError("{sample_weight}", "names the input's only column; the targets and predictions need "
                                            "columns of their own")
    if not rest:
        raise InputError("{keep_cols}", "leaves no columns for the targets and predictions; they need columns of "
                                        "their own")
    if target_cols or pred_cols:
        layout = _choose_layout(reader, first, kind, labels, target_cols, pred_cols, exclude=out)
    else:
        # the default layout over the other columns, mapped back to the file's
        sub = _Columns(reader, rest)
        view = None if first is None else _View(first.data[:, rest])
        layout = _choose_layout(sub, view, kind, labels, None, None)
        layout.target = [rest[i] for i in layout.target]
        layout.pred = [rest[i] for i in layout.pred]
    layout.weight = w
    return layout


class _Columns:
    """A reader's header and column count with some columns left out (for the default layout)."""

    def __init__(self, reader: CsvReader, keep: list[int]) -> None:
        self.ncols = len(keep)
        self.header = None if reader.header is None else [reader.header[i] for i in keep]
        self.header_line = reader.header_line
        self.where = reader.where


class _View:
    """A chunk's numbers with some columns left out (for the default layout)."""

    def __init__(self, data: NDArray[np.float64]) -> None:
        self.data = data


def _choose_layout(reader: CsvReader | _Columns, first: Chunk | _View | None, kind: str, labels: str,
                   target_cols: str | None, pred_cols: str | None, exclude: Collection[int] = ()) -> Layout:
    n = reader.ncols
    where = reader.where(reader.header_line)
    if target_cols or pred_cols:
        t = parse_cols(target_cols, "{target_cols}", reader.header, n) if target_cols else None
        p = parse_cols(pred_cols, "{pred_cols}", reader.header, n) if pred_cols else None
        if t is None:
            assert p is not None  # (one of the two was named)
            t = [i for i in range(n) if i not in p and i not in exclude]
        if p is None:
            p = [i for i in range(n) if i not in t and i not in exclude]
        if not t or not p:
            raise InputError("{target_cols}" if not t else "{pred_cols}", "selects no columns")
        if set(t) & set(p):
            raise InputError("{pred_cols}", "overlaps {target_cols}; a column is either a target or a prediction")
        lab = None
        if kind == "rows":
            lab = "index" if (labels == "index" or (labels == "auto" and len(t) == 1)) else "onehot"
        return Layout(t, p, lab)
    if kind == "elementwise":
        if n % 2:
            raise InputError(
                where,
                f"{n} columns: by default the first half are targets and the second half predictions, so the count "
                "must be even; name them with {target_cols} and {pred_cols}",
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
        raise InputError(where, f"{n} columns: ce with one-hot targets needs C target columns then C prediction "
                                "columns")
    return Layout(list(range(n // 2)), list(range(n // 2, n)), "onehot")


def column_names(reader_header: list[str] | None, cols: list[int]) -> list[str]:
    return [reader_header[i] if reader_header else str(i) for i in cols]


# ---------------------------------------------------------------- the batch in memory


def located(e: DomainError, where: str) -> InputError:
    """A loss's DomainError (positions in its arrays) as an InputError at the place the user knows."""
    return InputError(where, f"{e.value!r} {e.reason}")


Locate = Callable[[str, int, int], str]


def _natural(shape: tuple[int, ...], order: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape whose row-major order is the rows' (p's): the given shape with its axes put back."""
    return shape if order is None else tuple(shape[i] for i in np.argsort(order))


def as_given(a: np.ndarray, shape: tuple[int, ...], order: tuple[int, ...] | None = None) -> np.ndarray:
    """An array laid out as the batch's rows (p: a row per sample) in the shape and axes the predictions were given
    in (`order`: those axes as a transpose of the rows' own, a [T, B, C] ctc file's (1, 0, 2))."""
    shaped = np.asarray(a).reshape(_natural(shape, order))
    return shaped if order is None else shaped.transpose(order)


def as_rows(a: np.ndarray, shape: tuple[int, ...], order: tuple[int, ...] | None = None) -> np.ndarray:
    """as_given's inverse: values in the predictions' shape and axes as given (check's --my-grad) flat in the order
    of the batch's rows."""
    shaped = np.asarray(a).reshape(shape)
    return (shaped if order is None else shaped.transpose(np.argsort(order))).reshape(-1)


def given_index(flat: int, shape: tuple[int, ...], order: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """Where element `flat` of the batch's rows (p in row-major order) is in the predictions as given."""
    at = np.unravel_index(int(flat), _natural(shape, order))
    return tuple(int(at[i]) for i in (range(len(shape)) if order is None else order))


@dataclass
class Batch:
    """Samples held in memory as 2-D arrays (samples x columns), and where each value came from."""

    y: np.ndarray
    p: np.ndarray
    w: np.ndarray | None  # per-sample weights
    shape: tuple[int, ...]  # the predictions' shape as given
    names: list[str]  # the prediction columns' names (ce: classes)
    locate: Locate  # (which array, row, column) -> the place a user would look
    source: str = ""
    labels: str | None = None  # ce: the label layout the input turned out to have
    kept: list[tuple[str, list[str]]] = field(default_factory=list)  # --keep-cols: (name, each row's text)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # the loss's extra inputs, 2-D like p (or n x 1)
    joined: bool = False  # --over-batch: the batch's samples already joined into one (api._over_batch)
    input_names: dict[str, list[str]] = field(default_factory=dict)  # CSV: the target's and extra inputs' columns
    order: tuple[int, ...] | None = None  # the given axes as a transpose of the rows' (as_given): [T, B, C] files

    def error(self, e: DomainError) -> InputError:
        return located(e, self.locate(e.which, e.row, e.col))


def to_array(value: object, name: str) -> np.ndarray:
    """An array-like of real numbers as a float64 array, or an InputError naming parameter `name`."""
    if isinstance(value, (str, bytes, dict, set, frozenset)) or not hasattr(value, "__len__") and not isinstance(
            value, (int, float, np.ndarray, np.generic)):
        raise InputError(name, f"takes numbers (a list or an array), got {type(value).__name__}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            raw = np.asarray(value)
            if raw.dtype.kind not in "biufO":  # (text, complex numbers, dates: numpy would convert some of them)
                raise TypeError
            a = raw.astype(np.float64)
    except (ValueError, TypeError, OverflowError, np.exceptions.ComplexWarning):
        raise InputError(name, "takes real numbers within the float range, in a rectangular list or array "
                               "(rows of equal length)") from None
    return a


def as_2d(loss: Loss, y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targets and predictions as 2-D samples x columns.

    A 1-D vector is n samples of one output, except for row losses (ce) and the losses of a whole row (kl, cosine),
    where a 1-D prediction is one sample's row, and for ce a 1-D target is class indexes (or, with as many entries
    as classes, that row's targets).
    """
    for name, a in (("{target}", y), ("{pred}", p)):
        if a.ndim == 0:
            raise InputError(name, "must be an array (a vector, a matrix or any shape), got a single number")
        if a.size == 0:
            raise InputError(name, "is empty")
    if p.ndim > 2 or y.ndim > 2:  # any leading shape: the last axis is a sample's row (ce: its classes)
        return leading_2d(loss, y, p)
    if loss.kind == "rows" or loss.last_axis is not None:
        # a vector is one sample's row: ce's classes, kl's distribution, cosine's vector
        if p.ndim == 1:
            return y.reshape(1, -1), p[None, :]
        return (y[:, None] if y.ndim == 1 else y), p
    return y.reshape(y.shape[0], -1), p.reshape(p.shape[0], -1)


def leading_2d(loss: Loss, y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arrays of any leading shape as rows of their last axis: ce's [B, T, C] predictions with [B, T] class
    indexes (or [B, T, C] targets), an elementwise loss's equal shapes."""
    rows = loss.kind == "rows"
    if (rows and y.shape not in (p.shape[:-1], p.shape)) or (not rows and y.shape != p.shape):
        want = f"{list(p.shape[:-1])} (class indexes) or {list(p.shape)}" if rows else f"{list(p.shape)}"
        raise InputError("{target}", f"has shape {list(y.shape)} but {{pred}} has {list(p.shape)}; give targets "
                                     f"of shape {want}")
    p2 = p.reshape(-1, p.shape[-1])
    return (y.reshape(-1, 1) if y.shape == p.shape[:-1] else y.reshape(-1, y.shape[-1])), p2


def _count(a: np.ndarray) -> str:
    """An array's size as an error message names it: values, rows of a number, or its shape."""
    if a.ndim <= 1:
        return f"{a.size} value" + ("s" if a.size != 1 else "")
    if a.ndim == 2:
        return f"{a.shape[0]} row{'s' if a.shape[0] != 1 else ''} of {a.shape[1]}"
    return f"shape {list(a.shape)}"


def _check_shapes(loss: Loss, y: np.ndarray, p: np.ndarray, y2: np.ndarray, p2: np.ndarray,
                  names: tuple[str, str]) -> None:
    """One target per prediction (elementwise), or one label or target row per sample (row losses)."""
    if loss.kind != "rows" and y2.shape != p2.shape:
        raise InputError(names[0], f"has {_count(y)} but {names[1]} has {_count(p)}; they must match, one target "
                                   "per prediction")
    if loss.kind == "rows" and y.ndim == 1 and p.ndim == 2 and y.size != p.shape[0]:
        raise InputError(names[0], f"has {counted(y.size, 'class label')} but {names[1]} has "
                                   f"{counted(p.shape[0], 'row')}; give one label per row (or ';' rows of one-hot "
                                   "targets)")
    if loss.kind == "rows" and y2.shape[0] != p2.shape[0]:
        raise InputError(names[0], f"has {y2.shape[0]} rows but {names[1]} has {p2.shape[0]}; give one target row "
                                   "(or one label) per sample")
    if loss.kind == "rows" and y2.shape[1] not in (1, p2.shape[1]):
        raise InputError(names[0], f"has rows of {y2.shape[1]} but {names[1]} has {p2.shape[1]} classes; give one "
                                   "label per sample or one target per class")


def _typed_locator(y: np.ndarray, p: np.ndarray, y2: np.ndarray, p2: np.ndarray, weights: str,
                   given: dict[str, np.ndarray] | None = None, extras: dict[str, np.ndarray] | None = None) -> Locate:
    """Maps (which, row, col) of the 2-D arrays back to the option and position the user typed."""
    typed = {"target": (y, y2, "{target}"), "pred": (p, p2, "{pred}")}
    typed |= {k: (a, (extras or {})[k], f"{{{k}}}") for k, a in (given or {}).items()}

    def locate(which: str, row: int, col: int) -> str:
        if which == "weight":
            return f"{weights}: value {row + 1}"
        a, a2, option = typed[which]
        if a.ndim == 1:
            return f"{option}: value {row * a2.shape[1] + col + 1}"
        return f"{option}: row {row + 1}, value {col + 1}"

    return locate


def _given(loss: Loss, values: dict[str, Any]) -> list[tuple[Input, Any]]:
    """The loss's extra inputs with their values; one not given is an error naming what it takes."""
    out = []
    for i in loss.inputs:
        if values.get(i.name) is None:
            raise InputError(f"{{{i.name}}}", f"is missing: {loss.name} takes {i.help[0].lower()}{i.help[1:]}")
        out.append((i, values[i.name]))
    return out


def extra_arrays(loss: Loss, given: dict[str, np.ndarray], p: np.ndarray, p2: np.ndarray) -> dict[str, np.ndarray]:
    """Each extra input as a 2-D array: the predictions' shape, or (an input that may be per sample) one column."""
    out: dict[str, np.ndarray] = {}
    inputs = {i.name: i for i in loss.inputs}
    for name, a in given.items():
        option, i = f"{{{name}}}", inputs[name]
        if a.size == 0:
            raise InputError(option, "is empty")
        if i.per_prediction and (a.shape == p.shape or (a.size == p2.size and a.ndim == 1 and p2.shape[1] == 1)):
            out[name] = a.reshape(p2.shape)
        elif i.per_sample and a.size == p2.shape[0] and a.ndim <= 2:
            out[name] = a.reshape(-1, 1)
        elif not i.per_prediction:  # (one per sample only: the predictions' shape says nothing more)
            raise InputError(option, f"has {counted(a.size, 'value')}; give {i.forms(str(p2.shape[0]))}")
        else:
            raise InputError(option, f"has {_count(a)} but {{pred}} has {_count(p)}; give {i.forms(str(p2.shape[0]))}")
    return out


def read_inline(loss: Loss, target: str | None, pred: str | None, weights: str | None,
                extra: dict[str, str | None] | None = None) -> Batch:
    """--target and --pred as typed (and --sample-weight, one number per sample; the loss's extra inputs)."""
    if target is None or pred is None:
        missing, given = ("{pred}", "{target}") if pred is None else ("{target}", "{pred}")
        raise InputError(missing, f"is missing ({given} was given); give both, or a CSV with {{csv}}")
    y, p = parse_inline(target, "{target}"), parse_inline(pred, "{pred}")
    y2, p2 = as_2d(loss, y, p)
    _check_shapes(loss, y, p, y2, p2, ("{target}", "{pred}"))
    w = None if weights is None else _weights(parse_inline(weights, "{sample_weight}").reshape(-1), p2.shape[0],
                                                "{sample_weight}")
    names = [str(i) for i in range(p2.shape[1])]
    typed = {i.name: parse_inline(v, f"{{{i.name}}}") for i, v in _given(loss, extra or {})}
    extras = extra_arrays(loss, typed, p, p2)
    return Batch(y2, p2, w, p.shape, names, _typed_locator(y, p, y2, p2, "{sample_weight}", typed, extras), "inline",
                 extra=extras)


def read_arrays(loss: Loss, y: object, p: object, w: object = None, extra: dict[str, Any] | None = None) -> Batch:
    """Array-likes from a Python caller; positions in errors are those of the arrays as passed (y[3], p[1, 2])."""
    ya, pa = to_array(y, "{target}"), to_array(p, "{pred}")
    y2, p2 = as_2d(loss, ya, pa)
    _check_shapes(loss, ya, pa, y2, p2, ("{target}", "{pred}"))
    given = {i.name: to_array(v, f"{{{i.name}}}") for i, v in _given(loss, extra or {})}
    extras = extra_arrays(loss, given, pa, p2)
    for name, a in (("{target}", y2), ("{pred}", p2), *((f"{{{k}}}", v) for k, v in extras.items())):
        if not np.isfinite(a).all():
            raise InputError(name, "contains NaN or infinity")
    weights = None if w is None else _weights(to_array(w, "{sample_weight}").reshape(-1), p2.shape[0],
                                              "{sample_weight}")
    shapes = {"target": (ya, y2), "pred": (pa, p2)} | {k: (given[k], extras[k]) for k in extras}

    def locate(which: str, row: int, col: int) -> str:
        if which == "weight":
            return f"{{sample_weight}}[{row}]"
        a, a2 = shapes[which]
        if a.ndim > 1 and a.shape != a2.shape:  # (any leading shape, read as rows of its last axis)
            return f"{{{which}}}[{', '.join(str(int(i)) for i in np.unravel_index(row * a2.shape[1] + col, a.shape))}]"
        return f"{{{which}}}[{row * a2.shape[1] + col}]" if a.ndim == 1 else f"{{{which}}}[{row}, {col}]"

    return Batch(y2, p2, weights, pa.shape, [str(i) for i in range(p2.shape[1])], locate, extra=extras)


def _weights(w: np.ndarray, samples: int, name: str, unit: str = "sample") -> np.ndarray:
    if w.size != samples:
        raise InputError(name, f"has {counted(w.size, 'weight')} but there {'is' if samples == 1 else 'are'} "
                               f"{counted(samples, unit)}; give one per {unit}")
    return w


def open_csv(path: str | None, stdin: IO[bytes] | None = None, sep: str | None = None,
             keep: str | None = None) -> CsvReader:
    """The CSV source: a file, '-' for stdin, or piped stdin when no input was named."""
    if path is None or path == "-":
        if stdin is None:
            raise InputError("", "no input: give {target} and {pred}, {csv} FILE, or pipe CSV into lossgrad "
                                 "(see --help)")
        return CsvReader(stdin, "<stdin>", delimiter=sep, keep=keep)
    try:
        f = open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise InputError("{csv}", f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError("{csv}", f"{path} is a folder, not a CSV file") from None
    except OSError as e:
        raise InputError("{csv}", f"{path}: {e.strerror}") from None
    if os.path.isdir(path):
        raise InputError("{csv}", f"{path} is a folder, not a CSV file")
    try:
        size: int | None = os.fstat(f.fileno()).st_size
    except OSError:
        size = None
    regular = size is not None and os.path.isfile(path)
    return CsvReader(f, path, size=size if size else None, path=path if regular else None, delimiter=sep, keep=keep)


@dataclass
class CsvSource:
    """An open CSV input: its reader, its chunks (the first already read, to decide the layout) and layout."""

    reader: CsvReader
    chunks: Iterator[Chunk]
    layout: Layout
    keep: list[int] = field(default_factory=list)  # the --keep-cols columns, in the order given

    @property
    def names(self) -> list[str]:
        return column_names(self.reader.header, self.layout.pred)

    @property
    def input_names(self) -> dict[str, list[str]]:
        """The names of the target's columns and of each extra input's (the gradients with respect to them are
        named after them)."""
        return {"target": column_names(self.reader.header, self.layout.target)} | {
            k: column_names(self.reader.header, cols) for k, cols in self.layout.extra.items()}

    @property
    def kept_names(self) -> list[str]:
        """The kept columns' names: the header's, else col<i>."""
        return [self.reader.header[i] if self.reader.header else f"col{i}" for i in self.keep]


@dataclass(frozen=True)
class CsvRequest:
    """CSV input as the user named it: a file, '-' or None for stdin, and the columns to use."""

    path: str | None = None
    stdin: IO[bytes] | None = None  # stdin as a binary stream when it may be read (piped or redirected), else None
    target_cols: str | None = None
    pred_cols: str | None = None
    weight_col: str | None = None
    delimiter: str | None = None  # as typed: checked by `delimiter`
    keep_cols: str | None = None
    extra_cols: tuple[tuple[str, str], ...] = ()  # (an extra input's name, its columns as --pred-cols takes them)

    def open(self, kind: str, labels: str) -> CsvSource:
        """The reader, its chunks (the first already read, to decide the layout) and the layout."""
        if kind == "sequence":
            raise InputError("{csv}", SEQUENCE_INPUT)
        if self.extra_cols and not (self.target_cols and self.pred_cols):
            name = self.extra_cols[0][0]
            raise InputError(f"{{{name}}}", "takes CSV columns when {target_cols} and {pred_cols} name theirs too")
        reader = open_csv(self.path, self.stdin, delimiter(self.delimiter), self.keep_cols)
        keep, text = self._text_columns(reader)
        reader.read_as_text(text, keep)
        chunks = reader.chunks()
        first = next(chunks, None)
        if first is None:
            raise InputError(reader.name, "has a header but no data rows")
        layout = choose_layout(reader, first, kind, labels, self.target_cols, self.pred_cols, self.weight_col, text)
        if kind == "elementwise" and len(layout.target) != len(layout.pred):
            raise InputError("{target_cols}", f"selects {len(layout.target)} columns but {{pred_cols}} "
                                              f"{len(layout.pred)}; one target per prediction")
        layout.extra = self.extra_columns(reader, layout)
        return CsvSource(reader, itertools.chain([first], chunks), layout, keep)

    def _text_columns(self, reader: CsvReader) -> tuple[list[int], set[int]]:
        """The kept columns, and the columns read as text: those kept that no option names as numbers, and, when
        both targets and predictions are named, every column no option names."""
        def cols(spec: str | None, option: str) -> list[int]:
            return parse_cols(spec, option, reader.header, reader.ncols) if spec else []

        keep = [] if self.keep_cols is None else parse_cols(self.keep_cols, "{keep_cols}", reader.header, reader.ncols)
        named = set(cols(self.target_cols, "{target_cols}") + cols(self.pred_cols, "{pred_cols}")
                    + cols(self.weight_col, "{sample_weight}"))
        for name, spec in self.extra_cols:
            named |= set(cols(spec, f"{{{name}}}"))
        unnamed = set(range(reader.ncols)) - named
        return keep, unnamed if self.target_cols and self.pred_cols else set(keep) - named

    def extra_columns(self, reader: CsvReader, layout: Layout) -> dict[str, list[int]]:
        """The columns of each extra input, none of them a target, prediction or weight column."""
        if not self.extra_cols:
            return {}
        taken = set(layout.target) | set(layout.pred) | ({layout.weight} if layout.weight is not None else set())
        out = {}
        for name, spec in self.extra_cols:
            cols = parse_cols(spec, f"{{{name}}}", reader.header, reader.ncols)
            if taken & set(cols):
                raise InputError(f"{{{name}}}", "names a column that is already a target, prediction or weight")
            taken |= set(cols)
            out[name] = cols
        return out

    def size(self) -> int:
        """The input's size in bytes when it is a regular file (stdin redirected from one too), else 0."""
        try:
            if self.path not in (None, "-"):
                st = os.stat(str(self.path))
            elif self.stdin is not None:
                st = os.fstat(self.stdin.fileno())
            else:
                return 0
        except (OSError, ValueError, AttributeError):
            return 0  # (the reader says what is wrong with the input)
        return st.st_size if stat.S_ISREG(st.st_mode) else 0


def read_csv(source: CsvSource) -> Batch:
    """The whole CSV input in memory, with a locator back to file:line:column."""
    chunks = list(source.chunks)
    layout = source.layout
    data = np.concatenate([c.data for c in chunks])
    starts = np.cumsum([0] + [c.data.shape[0] for c in chunks])

    def locate(which: str, row: int, col: int) -> str:
        i = int(np.searchsorted(starts, row, side="right")) - 1
        return chunks[i].where(row - int(starts[i]), layout.file_column(which, col))

    p2 = data[:, layout.pred]
    w = None if layout.weight is None else data[:, layout.weight]
    kept = [(name, [t for c in chunks if c.kept for t in c.kept[k]]) for k, name in enumerate(source.kept_names)]
    extra = {name: data[:, cols] for name, cols in layout.extra.items()}
    for name, a in extra.items():
        if a.shape[1] not in (1, p2.shape[1]):
            raise InputError(f"{{{name}}}", f"selects {a.shape[1]} columns but {{pred_cols}} {p2.shape[1]}; give "
                                            "one per prediction column (or one per sample)")
    return Batch(data[:, layout.target], p2, w, p2.shape, source.names, locate, source.reader.name, layout.labels,
                 kept, extra, input_names=source.input_names)


def read(loss: Loss, *, target: str | None, pred: str | None, weights: str | None, csv: CsvRequest,
         labels: str = "auto", extra: dict[str, str | None] | None = None) -> Batch:
    """The command line's input, inline (target, pred, weights and the loss's extra inputs as typed) or CSV (the
    extra inputs as column names), as one Batch in memory."""
    if target is not None or pred is not None:
        if csv.path is not None:
            raise InputError("{csv}", "cannot be combined with {target}/{pred}; use one or the other")
        for option, value in (("{target_cols}", csv.target_cols), ("{pred_cols}", csv.pred_cols),
                              ("{keep_cols}", csv.keep_cols), ("{delimiter}", csv.delimiter)):
            if value:
                raise InputError(option, "applies to CSV input only")
        if loss.kind == "sequence":
            return read_sequence_inline(target, pred, weights)
        return read_inline(loss, target, pred, weights, extra)
    if loss.kind == "sequence":
        raise InputError("{csv}", SEQUENCE_INPUT)
    given = tuple((i.name, str(v)) for i, v in _given(loss, extra or {}))
    return read_csv(replace(csv, extra_cols=given).open(loss.kind, labels))


# ---------------------------------------------------------------- sequences (ctc)

SEQUENCE_INPUT = ("a sequence loss reads one sequence inline ({target} its labels, {pred} one ';' row per frame), "
                  "or a batch from tensor files ({pred} a [T, B, C] or [B, T, C] tensor, {target} the padded "
                  "label rows, {input_lengths}, {target_lengths}) or through the Python API (lossgrad.ctc); not "
                  "from CSV")


def read_sequence_inline(target: str | None, pred: str | None, weights: str | None) -> Batch:
    """One sequence typed: --target its labels, --pred one row per frame of one value per class."""
    if target is None or pred is None:
        missing, given = ("{pred}", "{target}") if pred is None else ("{target}", "{pred}")
        raise InputError(missing, f"is missing ({given} was given); give both")
    y, p = parse_inline(target, "{target}"), parse_inline(pred, "{pred}")
    if y.ndim != 1:
        raise InputError("{target}", "takes one label sequence: class indexes separated by commas (no ';' rows)")
    if p.ndim != 2:
        raise InputError("{pred}", "takes one row per frame, one value per class, ';' between frames")
    batch = sequences(y[None, :], p[None], np.array([p.shape[0]]), np.array([y.size]), "inline", False)
    if weights is not None:  # (one weight, the sequence's)
        batch.w = _weights(parse_inline(weights, "{sample_weight}").reshape(-1), 1, "{sample_weight}", "sequence")
    return batch


def sequences(labels: NDArray[np.float64], pred: NDArray[np.float64], input_lengths: NDArray[np.float64],
              target_lengths: NDArray[np.float64], source: str, time_major: bool) -> Batch:
    """Padded labels [B, L], predictions [B, T, C] and the lengths as a Batch of one row per sequence; positions in
    errors name the arrays as given ([T, B, C] when time-major)."""
    b, t, c = pred.shape
    y2, p2 = pack(labels, pred, input_lengths, target_lengths)
    typed = source == "inline"

    def locate(which: str, row: int, col: int) -> str:
        if which == "pred":
            f, k = divmod(col, c)
            return f"{{pred}}: row {f + 1}, value {k + 1}" if typed else (
                f"{{pred}}[{f}, {row}, {k}]" if time_major else f"{{pred}}[{row}, {f}, {k}]")
        if which == "weight":
            return f"{{sample_weight}}: value {row + 1}" if typed else f"{{sample_weight}}[{row}]"
        if col >= HEAD:
            return f"{{target}}: value {col - HEAD + 1}" if typed else f"{{target}}[{row}, {col - HEAD}]"
        return f"{{{('input_lengths', 'target_lengths')[col - 1]}}}[{row}]"

    names = [f"{f}:{k}" for f in range(t) for k in range(c)]
    shape = (t, c) if typed else ((t, b, c) if time_major else (b, t, c))
    order = (1, 0, 2) if time_major and not typed else None
    return Batch(y2, p2, None, shape, names, locate, source, order=order)


def _lengths(value: object, name: str, count: int, default: int) -> NDArray[np.float64]:
    if value is None:
        return np.full(count, float(default))
    a = to_array(value, "{" + name + "}").reshape(-1)
    if a.size != count or not (np.isfinite(a) & (a == np.floor(a))).all():
        raise InputError("{" + name + "}", f"takes {count} whole numbers, one per sequence")
    return a


def read_sequences(y: object, p: object, input_lengths: object = None, target_lengths: object = None,
                   time_major: bool = False, sample_weight: object = None) -> Batch:
    """Array-likes from a Python caller: one sequence (labels [L], predictions [T, C]) or a batch (padded labels
    [B, L], predictions [B, T, C], or [T, B, C] time-major, and the lengths; default: all of T, all of L); and a
    weight per sequence."""
    ya, pa = to_array(y, "{target}"), to_array(p, "{pred}")
    if pa.ndim not in (2, 3) or ya.ndim != pa.ndim - 1:
        raise InputError("{pred}", f"one sequence is labels [L] and predictions [T, C], a batch labels [B, L] and "
                                   f"predictions [B, T, C]; got {ya.ndim} and {pa.ndim} dimensions")
    if not np.isfinite(pa).all():
        raise InputError("{pred}", "contains NaN or infinity")
    single = pa.ndim == 2
    lab, pred = (ya[None], pa[None]) if single else (ya, pa.transpose(1, 0, 2) if time_major else pa)
    if lab.shape[0] != pred.shape[0]:
        raise InputError("{target}", f"has {lab.shape[0]} label rows for {pred.shape[0]} sequences")
    il = _lengths(input_lengths, "input_lengths", pred.shape[0], pred.shape[1])
    tl = _lengths(target_lengths, "target_lengths", pred.shape[0], lab.shape[1])
    batch = sequences(lab, pred, il, tl, "", time_major)
    if sample_weight is not None:
        batch.w = _weights(to_array(sample_weight, "{sample_weight}").reshape(-1), pred.shape[0], "{sample_weight}",
                           "sequence")
    if single:
        batch.shape = pa.shape
    return batch
