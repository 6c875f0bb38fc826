"""Intel MKL's vector math (VML), where PyTorch's float32 kernels take e^x, log x and √x from it (and its float64
kernels e^x, log x and √x).

PyTorch's CPU builds link MKL and compute exp, log and sqrt of float32 tensors (and x ** 0.5, which goes to the
square root) with vmsExp, vmsLn and vmsSqrt in mode VML_HA (ATen's cpu/vml.h), which are not correctly rounded:
√x is an ulp off in about one case in six. With the `mkl` extra installed (`pip install lossgrad[mkl]`, Intel's
libmkl_rt, about 200 MB), these functions here call the same routines and give PyTorch's bits; without it,
`available()` is False and the kernels that need them say so. LOSSGRAD_MKL=PATH names the library, and
LOSSGRAD_MKL=0 leaves it unused. MKL picks its code path by processor, as it does
inside PyTorch, so the bits are this machine's (the README says which were measured).

Loaded on first use only: importing this module costs nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

# vml.h: VML_HA | VML_FTZDAZ_OFF | VML_ERRMODE_IGNORE, the mode ATen passes (denormals kept, no error handling)
MODE = 0x2 | 0x140000 | 0x100
CHUNK = 2**31 - 1  # (VML counts elements in a 32-bit int)
NAMES = ("libmkl_rt.so.2", "libmkl_rt.so", "libmkl_rt.2.dylib", "mkl_rt.2.dll")
INSTALL = "pip install 'lossgrad[mkl]' for PyTorch's bits"


def _candidates() -> list[str]:
    """Where pip puts MKL's libraries (the environment's lib/), then the loader's own search."""
    places = [os.environ.get("LOSSGRAD_MKL", "")]
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, sys.exec_prefix)):
        places += [str(Path(prefix) / "lib" / name) for name in NAMES]
    import ctypes.util  # (only when the library is first looked for)

    found = ctypes.util.find_library("mkl_rt")
    return [p for p in [*places, found or ""] if p]


@cache
def _library() -> Any:
    """MKL's runtime library, sequential (no OpenMP of its own), or None when it is not installed (or
    LOSSGRAD_MKL=0 says not to use it)."""
    if os.environ.get("LOSSGRAD_MKL") == "0":
        return None
    os.environ.setdefault("MKL_THREADING_LAYER", "SEQUENTIAL")
    for path in _candidates():
        if os.path.sep in path and not Path(path).exists():
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        floats, doubles = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_double)
        for name in ("vmsExp", "vmsLn", "vmsSqrt"):
            getattr(lib, name).argtypes = [ctypes.c_int, floats, floats, ctypes.c_int64]
        for name in ("vmdExp", "vmdSqrt", "vmdLn"):
            getattr(lib, name).argtypes = [ctypes.c_int, doubles, doubles, ctypes.c_int64]
        return lib
    return None


def available() -> bool:
    return _library() is not None


def _vml(name: str, x: Any, kind: Any = np.float32) -> np.ndarray:
    """`name` (vmsExp, vmsLn, vmsSqrt; vmdExp, vmdLn, vmdSqrt of float64) of each element of x as `kind`, in x's
    shape."""
    lib = _library()
    if lib is None:
        raise RuntimeError(f"MKL is not installed: {INSTALL}")
    src = np.ascontiguousarray(x, dtype=kind).reshape(-1)
    out = np.empty_like(src)
    pointer = ctypes.POINTER(ctypes.c_double if kind is np.float64 else ctypes.c_float)
    for i in range(0, src.size, CHUNK):
        n = min(CHUNK, src.size - i)
        getattr(lib, name)(n, src[i:].ctypes.data_as(pointer), out[i:].ctypes.data_as(pointer), MODE)
    return out.reshape(np.shape(x))


def exp(x: Any) -> np.ndarray:
    """torch.exp of a float32 tensor: vmsExp."""
    return _vml("vmsExp", x)


def log(x: Any) -> np.ndarray:
    """torch.log of a float32 tensor: vmsLn (log 0 = −∞, log of a negative NaN)."""
    return _vml("vmsLn", x)


def sqrt(x: Any) -> np.ndarray:
    """torch.sqrt (and x ** 0.5) of a float32 tensor: vmsSqrt."""
    return _vml("vmsSqrt", x)


def exp64(x: Any) -> np.ndarray:
    """torch.exp of a float64 tensor: vmdExp (on 2,000,000 random doubles none apart from PyTorch's; 10,570 apart
    from numpy's exp)."""
    return _vml("vmdExp", x, np.float64)


def log64(x: Any) -> np.ndarray:
    """torch.log of a float64 tensor: vmdLn (on 1,000,000 random doubles none apart from PyTorch's)."""
    return _vml("vmdLn", x, np.float64)


def sqrt64(x: Any) -> np.ndarray:
    """torch.sqrt of a float64 tensor: vmdSqrt (on 1,000,000 random doubles, 12,777 an ulp from the correctly
    rounded root; none from PyTorch's)."""
    return _vml("vmdSqrt", x, np.float64)
