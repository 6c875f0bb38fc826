"""Tensor files out: the losses and gradients of a tensor run as .npz, .npy, .safetensors or .parquet.

Each array is first spooled block by block, unscaled, to an anonymous temporary file (nothing is left behind by a
killed run); when the mean's N is known, the file is written from the spools block by block, each gradient block
divided by N as it is copied, in the same dtype and by the same division as the in-memory path. Memory stays at
a block whatever the size of the arrays.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from . import outputs
from .errors import OptionError

FORMATS = (".npz", ".npy", ".safetensors", ".parquet")
COPY_BYTES = 8 << 20  # the block the spools are copied out in
ST_DTYPES = {"float64": "F64", "float32": "F32"}


def output_format(path: str | None) -> str | None:
    """The tensor format an -o path asks for, by its extension (None: a text output)."""
    if not path or path == "-":
        return None
    ext = os.path.splitext(path)[1].lower()
    return ext if ext in FORMATS else None


def check_output(path: str | None) -> None:
    """Tensor inputs write tensor files (or print a summary): an -o of another kind is refused before any work."""
    outputs.refuse_empty(path)
    if path in (None, "-"):
        return
    if output_format(path) is None:
        raise OptionError("output", f"{path}: tensor inputs write {', '.join(FORMATS)} files (losses and gradients, "
                                    "shaped like the inputs); give one of those extensions, or leave {output} out "
                                    "for a summary")


class Spool:
    """An array written in blocks of rows to an anonymous temporary file, read back in blocks."""

    def __init__(self, name: str, shape: tuple[int, ...], folder: str) -> None:
        self.name, self.shape = name, shape
        self.file: IO[bytes] = tempfile.TemporaryFile(dir=folder)
        self.dtype: np.dtype[Any] | None = None

    def add(self, block: np.ndarray) -> None:
        if self.dtype is None:
            self.dtype = block.dtype
        self.file.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())

    def blocks(self, width: int, divisor: float | np.ndarray = 1) -> Iterator[np.ndarray]:
        """The array as rows of `width` values, a few MB at a time, divided by `divisor` in its own dtype (one
        number, or one per row: a micro-batch's K·n)."""
        assert self.dtype is not None
        self.file.flush()
        self.file.seek(0)
        rows = max(1, COPY_BYTES // (width * self.dtype.itemsize))
        total = math.prod(self.shape) // max(width, 1)
        for start in range(0, total, rows):
            block = np.frombuffer(self.file.read(rows * width * self.dtype.itemsize), dtype=self.dtype)
            block = block.reshape(-1, width)
            if isinstance(divisor, np.ndarray):
                yield block / divisor[start:start + block.shape[0], None].astype(self.dtype)
            else:
                yield block if divisor == 1 else block / self.dtype.type(divisor)

    def close(self) -> None:
        self.file.close()


@dataclass
class Written:
    """An array to write: its spool, and what its values are divided by (the mean's N for a gradient)."""

    spool: Spool
    divisor: float | np.ndarray = 1  # one per row for a micro-batch gradient
    rename: str = ""  # written under this name instead of the spool's (grad_micro: grad's spool again)

    @property
    def name(self) -> str:
        return self.rename or self.spool.name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.spool.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        assert self.spool.dtype is not None
        return self.spool.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def width(self) -> int:
        return self.shape[-1] if len(self.shape) > 1 else 1

    def blocks(self) -> Iterator[np.ndarray]:
        return self.spool.blocks(self.width(), self.divisor)


def write(fmt: str, arrays: list[Written], out: IO[bytes]) -> list[str]:
    """The arrays in format `fmt` to the binary stream `out`; the names of the arrays written."""
    if fmt == ".npy":
        arrays = arrays[:1]  # (one array: the losses)
        _npy(arrays[0], out)
    elif fmt == ".npz":
        _npz(arrays, out)
    elif fmt == ".safetensors":
        _safetensors(arrays, out)
    else:
        _parquet(arrays, out)
    return [a.name for a in arrays]


def _npy_header(a: Written) -> dict[str, Any]:
    return {"descr": np.lib.format.dtype_to_descr(a.dtype), "fortran_order": False, "shape": a.shape}


def _npy(a: Written, out: IO[bytes]) -> None:
    np.lib.format.write_array_header_2_0(out, _npy_header(a))
    for block in a.blocks():
        out.write(block.tobytes())


def _npz(arrays: list[Written], out: IO[bytes]) -> None:
    """An uncompressed zip of .npy members, as np.savez writes it, member by member (np.load memory-maps none
    of it, but reads each member without decompressing)."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for a in arrays:
            with z.open(a.name + ".npy", "w", force_zip64=True) as member:
                _npy(a, member)  # type: ignore[arg-type]


def _safetensors(arrays: list[Written], out: IO[bytes]) -> None:
    """The safetensors layout: an 8-byte little-endian header length, the JSON header (padded with spaces to 8
    bytes), then each tensor's raw little-endian data in the header's order."""
    header: dict[str, Any] = {"__metadata__": {"format": "np", "writer": "lossgrad"}}
    offset = 0
    for a in arrays:
        header[a.name] = {"dtype": ST_DTYPES[a.dtype.name], "shape": list(a.shape),
                          "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    out.write(len(text).to_bytes(8, "little") + text)
    for a in arrays:
        for block in a.blocks():
            out.write(block.astype(block.dtype.newbyteorder("<"), copy=False).tobytes())


def _parquet(arrays: list[Written], out: IO[bytes]) -> None:
    """One row per sample (the leading axes flattened), a column per array: a number, or an array of the last
    axis's values (ce's gradient: one per class). Written by polars from a stream of blocks."""
    import polars as pl
    from polars.io.plugins import register_io_source

    rows = math.prod(arrays[0].shape[:-1]) if len(arrays[0].shape) > 1 else math.prod(arrays[0].shape)
    kinds = {"float32": pl.Float32, "float64": pl.Float64}
    schema = pl.Schema({a.name: (kinds[a.dtype.name] if _per_row(a, rows) == 1 else
                                 pl.Array(kinds[a.dtype.name], _per_row(a, rows))) for a in arrays})

    step = max(1, COPY_BYTES // sum(_per_row(a, rows) * a.dtype.itemsize for a in arrays))

    def frames(*_: Any) -> Iterator[Any]:
        streams = [_rows_of(a, rows, step) for a in arrays]
        for parts in zip(*streams, strict=True):
            yield pl.DataFrame({a.name: (p.reshape(-1) if _per_row(a, rows) == 1 else p)
                                for a, p in zip(arrays, parts, strict=True)}, schema=schema)

    # (row groups of a few blocks: polars holds a row group whole before it writes it)
    register_io_source(frames, schema=schema).sink_parquet(out, row_group_size=step)


def _per_row(a: Written, rows: int) -> int:
    return math.prod(a.shape) // max(rows, 1)


def _rows_of(a: Written, rows: int, block_rows: int) -> Iterator[np.ndarray]:
    """The array as `rows` rows, in blocks of the same rows for every array (so the columns line up)."""
    width = _per_row(a, rows)
    pending: list[np.ndarray] = []
    held = 0
    for block in a.blocks():
        pending.append(block.reshape(-1))
        held += block.size
        while held >= block_rows * width:
            flat = np.concatenate(pending)
            yield flat[: block_rows * width].reshape(-1, width)
            rest = flat[block_rows * width:]
            pending, held = [rest], rest.size
    if held:
        yield np.concatenate(pending).reshape(-1, width)
