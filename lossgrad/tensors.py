"""Tensor files in: .npy, .npz, .safetensors, .parquet, .arrow/.feather, and globs of shards, read without any
framework and never by unpickling.

A Tensor is one logical array, possibly split over shards along its first axis, read in blocks of rows of its
2-D view (rows × width, width being the product of its last axes): memory-mapped where the format allows, so a
block costs its own bytes and no more.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError

if TYPE_CHECKING:  # (zipfile, json, struct, glob and mmap are imported where a file is read: the other commands
    # start without them)
    import zipfile
    from typing import Protocol

    from numpy.typing import NDArray

    class Shard(Protocol):
        shape: tuple[int, ...]
        dtype: np.dtype[Any]

        def rows(self, start: int, stop: int, width: int) -> NDArray[Any]: ...

# the formats read, by extension; FILE:KEY picks an array (npz, safetensors) or a column (parquet, arrow)
ARRAY_EXTS = (".npy", ".npz", ".safetensors")
TABLE_EXTS = (".parquet", ".arrow", ".feather", ".ipc")
PICKLED_EXTS = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")
EXTS = ARRAY_EXTS + TABLE_EXTS

# safetensors' dtype names as numpy's (BF16 through ml_dtypes, loaded only when a file holds one)
SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                      "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
MAX_HEADER = 100 << 20  # a safetensors header longer than this is not one (its own limit is 100 MB)


def _split(spec: str) -> tuple[str, str | None]:
    """'FILE:KEY' -> (FILE, KEY); a path with a known extension and no key -> (FILE, None)."""
    for ext in EXTS + PICKLED_EXTS:
        at = spec.lower().rfind(ext + ":")
        if at >= 0:
            return spec[: at + len(ext)], spec[at + len(ext) + 1:]
    return spec, None


def is_tensor_file(spec: str | None) -> bool:
    """Whether an input option names a tensor file (or a glob of them) rather than inline numbers."""
    if not spec:
        return False
    path, _ = _split(spec.strip())
    return path.lower().endswith(EXTS + PICKLED_EXTS)


def input_files(spec: str) -> list[str]:
    """The files a tensor input option names (its glob's matches), without opening them."""
    import glob

    path, _ = _split(spec.strip())
    return sorted(glob.glob(path)) if glob.has_magic(path) else [path]


class ArrayShard:
    """An array in memory or memory-mapped: rows of its 2-D view are a slice, read when used."""

    def __init__(self, a: NDArray[Any]) -> None:
        self.a = a
        self.shape: tuple[int, ...] = tuple(a.shape)
        self.dtype: np.dtype[Any] = a.dtype

    def rows(self, start: int, stop: int, width: int) -> NDArray[Any]:
        block = np.array(self.a.reshape(-1, width)[start:stop])
        _release(self.a, start * width, stop * width)
        return block


def _release(a: NDArray[Any], first: int, last: int) -> None:
    """Give back a memory-mapped array's pages of elements first:last once they are copied: the file stays in the
    page cache, but the process's resident memory stays at a block however much of the file it has read."""
    import mmap

    buffer = getattr(a, "_mmap", None)
    if not isinstance(a, np.memmap) or buffer is None or not hasattr(mmap, "MADV_DONTNEED"):
        return
    base = a.offset - a.offset % mmap.ALLOCATIONGRANULARITY  # (np.memmap maps from an aligned offset)
    lo = a.offset - base + first * a.itemsize
    hi = a.offset - base + last * a.itemsize
    lo -= lo % mmap.PAGESIZE
    hi -= hi % mmap.PAGESIZE
    if hi > lo:
        try:
            buffer.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        except (OSError, ValueError):  # (an advice, not a need)
            pass


class ColumnShard:
    """A column of a parquet or Arrow file, read by polars a slice at a time; a list or array column holds one
    row per sample."""

    def __init__(self, path: str, column: str, kind: str, where: str) -> None:
        import polars as pl

        self.pl, self.path, self.column, self.where = pl, path, column, where
        self.scan = (lambda: pl.scan_parquet(path)) if kind == "parquet" else (lambda: pl.scan_ipc(path))
        self.width: int | None = None  # values per row of a list column, fixed by its first row
        n = int(self.scan().select(pl.len()).collect().item())
        first = self._read(0, 1) if n else np.empty(0)
        self.shape: tuple[int, ...] = (n, *first.shape[1:])
        self.dtype: np.dtype[Any] = first.dtype

    def _read(self, start: int, stop: int) -> NDArray[Any]:
        pl = self.pl
        try:
            s = self.scan().select(self.column).slice(start, stop - start).collect().to_series()
        except Exception as e:  # (polars' own errors for a damaged file)
            raise InputError(self.where, f"cannot be read ({_reason(e)})") from None
        if s.null_count():
            row = start + int(s.is_null().arg_max() or 0)
            raise InputError(self.where, f"row {row} is empty (null); every sample needs a value")
        if not self._numbers(s.dtype):
            raise InputError(self.where, f"is a column of {s.dtype}; give a numeric column (or a list of numbers "
                                         "per row)")
        if isinstance(s.dtype, pl.List):
            lengths = s.list.len()
            want = int(lengths[0]) if self.width is None else self.width
            if (lengths != want).any():
                row = int((lengths != want).arg_max() or 0)
                raise InputError(self.where, f"row {start + row} holds {int(lengths[row])} values but the first "
                                             f"holds {want}; every row needs the same number")
            self.width = want
            self._no_null_inside(s.explode() if want else s.clear(), (len(s), want), start)
            return np.asarray(s.explode().to_numpy().reshape(len(s), want))
        if isinstance(s.dtype, pl.Array):
            flat = s
            while isinstance(flat.dtype, pl.Array):
                flat = flat.explode()
            self._no_null_inside(flat, (len(s), *s.dtype.shape), start)
        return np.asarray(s.to_numpy())

    def _numbers(self, dtype: Any) -> bool:
        """Whether a column holds numbers: numeric, a list of numbers per row, or fixed-size arrays of them."""
        pl = self.pl
        if isinstance(dtype, pl.List):
            dtype = dtype.inner
        else:
            while isinstance(dtype, pl.Array):
                dtype = dtype.inner
        return bool(dtype.is_numeric())

    def _no_null_inside(self, flat: Any, shape: tuple[int, ...], start: int) -> None:
        """A null among a list's or an array's values (read as NaN otherwise) is an error at its index."""
        if flat.null_count():
            at = np.unravel_index(int(flat.is_null().arg_max() or 0), shape)
            index = ", ".join(map(str, (start + int(at[0]), *map(int, at[1:]))))
            raise InputError(f"{self.where}[{index}]", "is null (a missing value); every value must be a number")

    def rows(self, start: int, stop: int, width: int) -> NDArray[Any]:
        per_row = math.prod(self.shape[1:])
        first, last = start * width // per_row, -(-stop * width // per_row)
        block = self._read(first, last).reshape(-1)
        skip = start * width - first * per_row
        return block[skip: skip + (stop - start) * width].reshape(-1, width)


class Tensor:
    """One logical array over its shards (joined along the first axis), as the user named it."""

    def __init__(self, spec: str, shards: Sequence[Shard], names: Sequence[str], option: str) -> None:
        self.spec, self.shards, self.names, self.option = spec, list(shards), list(names), option
        first = self.shards[0].shape
        self.shape: tuple[int, ...] = (sum(s.shape[0] for s in self.shards), *first[1:])
        self.dtype: np.dtype[Any] = self.shards[0].dtype
        self.files = sorted({n.split(":")[0] for n in self.names})

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def rows(self, start: int, stop: int, width: int) -> NDArray[Any]:
        """Rows start:stop of the 2-D view (rows × width), across shards."""
        if width == self.size and len(self.shards) > 1:  # (--over-batch's one row of every value, across them)
            return np.concatenate([s.rows(0, 1, math.prod(s.shape)) for s in self.shards], axis=1)[start:stop]
        parts, offset = [], 0
        for s in self.shards:
            n = math.prod(s.shape) // width
            a, b = max(start - offset, 0), min(stop - offset, n)
            if a < b:
                parts.append(s.rows(a, b, width))
            offset += n
            if offset >= stop:
                break
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def open_tensor(spec: str, option: str) -> Tensor:
    """The tensor an input option names: a file (FILE:KEY for a member or column), or a glob of shards read in
    sorted order, whose shapes agree beyond the first axis."""
    import glob

    path, key = _split(spec.strip())
    if path.lower().endswith(PICKLED_EXTS):
        raise InputError(option, f"{path}: {os.path.splitext(path)[1]} files are read by unpickling, which runs "
                                 "code; lossgrad does not load them. Save the tensor with safetensors "
                                 "(safetensors.torch.save_file) or numpy (np.save(t.numpy())) and give that file")
    paths = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
    if not paths:
        raise InputError(option, f"{path}: no file matches")
    shards = [_open_one(p, key, option) for p in paths]
    names = [p if key is None else f"{p}:{key}" for p in paths]
    for name, s in zip(names, shards, strict=True):
        if not s.shape:
            raise InputError(option, f"{name} holds a scalar (shape []); give an array (np.atleast_1d makes one)")
    for name, s in zip(names[1:], shards[1:], strict=True):
        if s.shape[1:] != shards[0].shape[1:] or s.dtype.kind != shards[0].dtype.kind:
            raise InputError(option, f"shard {name} has shape {list(s.shape)} ({s.dtype}) but {names[0]} has "
                                     f"{list(shards[0].shape)} ({shards[0].dtype}); shards must agree beyond the "
                                     "first axis")
    return Tensor(spec, shards, names, option)


def _open_one(path: str, key: str | None, option: str) -> Shard:
    import struct
    import zipfile
    if os.path.isdir(path):
        raise InputError(option, f"{path} is a folder, not a tensor file")
    if not os.path.exists(path):
        raise InputError(option, f"{path}: no such file")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            if key:
                raise InputError(option, f"{path}: a .npy file holds one array; drop ':{key}'")
            return ArrayShard(_npy(path, option))
        if ext == ".npz":
            return ArrayShard(_npz(path, key, option))
        if ext == ".safetensors":
            return ArrayShard(_safetensors(path, key, option))
        return _column(path, key, "parquet" if ext == ".parquet" else "ipc", option)
    except InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile, struct.error) as e:
        raise InputError(option, f"{path}: cannot be read as {ext} ({_reason(e)})") from None


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e).splitlines()[0] if str(e) else type(e).__name__


def _npy(path: str, option: str) -> NDArray[Any]:
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":  # (np.load would take anything else for a pickle, and say so)
            raise InputError(option, f"{path} is not a .npy file (it does not start with numpy's header)")
    a = np.load(path, mmap_mode="r", allow_pickle=False)
    return _numeric(a, path, option)


def _numeric(a: NDArray[Any], name: str, option: str) -> NDArray[Any]:
    if a.dtype.kind not in "biuf" and a.dtype.name != "bfloat16":
        raise InputError(option, f"{name} holds {a.dtype} values; give real numbers (floats or integer labels)")
    return a


def _npz(path: str, key: str | None, option: str) -> NDArray[Any]:
    """A member of an .npz: memory-mapped when stored uncompressed (np.savez), read whole when compressed."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        members = {n.removesuffix(".npy"): z.getinfo(n) for n in z.namelist() if n.endswith(".npy")}
        info = _member(members, key, path, option)
        stored = _stored(path, info) if info.compress_type == zipfile.ZIP_STORED else None
        if stored is None:  # compressed (np.savez_compressed): read whole
            with z.open(info) as f:
                a: NDArray[Any] = np.lib.format.read_array(f, allow_pickle=False)
        else:
            shape, fortran, dtype, offset = stored
            if dtype.hasobject:
                raise InputError(option, f"{path}:{info.filename} holds Python objects; lossgrad reads numbers only")
            a = np.empty(shape, dtype) if math.prod(shape) == 0 else \
                np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    return _numeric(a, f"{path}:{key}", option)


def _stored(path: str, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], bool, np.dtype[Any], int] | None:
    """An uncompressed member's array header (shape, Fortran order, dtype) and the file offset of its data."""
    import struct
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        name_len, extra_len = struct.unpack("<HH", f.read(30)[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            return None
        return shape, fortran, dtype, f.tell()


def _member(members: dict[str, Any], key: str | None, path: str, option: str) -> Any:
    if key is None and len(members) == 1:
        return next(iter(members.values()))
    if key is None or key not in members:
        keys = ", ".join(sorted(members)) or "none"
        what = f"has no array {key!r}" if key else "holds several arrays; pick one as FILE:KEY"
        raise InputError(option, f"{path} {what}; its keys: {keys}")
    return members[key]


def _safetensors(path: str, key: str | None, option: str) -> NDArray[Any]:
    """A tensor of a .safetensors file: an 8-byte little-endian header length, a JSON header, then raw data."""
    import json
    import struct
    with open(path, "rb") as f:
        head = f.read(8)
        size = os.fstat(f.fileno()).st_size
        if len(head) < 8 or not 2 <= (n := struct.unpack("<Q", head)[0]) <= min(MAX_HEADER, size - 8):
            raise InputError(option, f"{path} is not a safetensors file (no header)")
        header = json.loads(f.read(n))
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    info = _member(tensors, key, path, option)
    name = f"{path}:{key or next(iter(tensors))}"
    dtype = _st_dtype(info.get("dtype"), name, option)
    shape = tuple(int(d) for d in info["shape"])
    begin, end = (int(x) for x in info["data_offsets"])
    if end - begin != math.prod(shape) * dtype.itemsize or 8 + n + end > size:
        raise InputError(option, f"{name}: its header's offsets do not fit its shape {list(shape)} and dtype (a "
                                 "damaged file?)")
    if math.prod(shape) == 0:
        return np.empty(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=8 + n + begin, shape=shape)


def _st_dtype(name: object, where: str, option: str) -> np.dtype[Any]:
    if name == "BF16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    if not isinstance(name, str) or name not in SAFETENSORS_DTYPES or name in ("BOOL",):
        raise InputError(option, f"{where} holds {name} values; lossgrad reads F64, F32, F16, BF16 and integer "
                                 "labels")
    return np.dtype(SAFETENSORS_DTYPES[name])


def _column(path: str, key: str | None, kind: str, option: str) -> Shard:
    import polars as pl

    scan = pl.scan_parquet(path) if kind == "parquet" else pl.scan_ipc(path)
    try:
        columns = list(scan.collect_schema().names())
    except Exception as e:  # (polars' own errors for a file that is not what its name says)
        raise InputError(option, f"{path}: cannot be read as {os.path.splitext(path)[1]} ({_reason(e)})") from None
    if key is None and len(columns) == 1:
        key = columns[0]
    if key is None or key not in columns:
        what = f"has no column {key!r}" if key else "has several columns; pick one as FILE:COLUMN"
        raise InputError(option, f"{path} {what}; its columns: {', '.join(columns) or 'none'}")
    return ColumnShard(path, key, kind, f"{option}: {path}:{key}")
