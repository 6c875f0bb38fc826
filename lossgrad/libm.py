"""The C library's float functions (glibc's, through ctypes), where JAX's CPU results take them: XLA's compiled code
calls powf for x^y, and logf for the few elements of a short vector LLVM cannot widen (lowp_xla.own_op); and its
double exp and pow, where PyTorch's scalar loops call std::exp and std::pow (lowp.sigmoid, triplet's norms in
float64), and its double log, exp and pow, where Eigen's scalar path in TensorFlow's double kernels calls them
(eigen64). Loaded on first use, so that lossgrad starts without it."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import NotReproduced
from .losses._ops import Array

F32 = np.float32


@functools.cache
def _libm() -> Any:
    """The C library (None where it cannot be loaded)."""
    try:
        lib = ctypes.CDLL("libm.so.6")
    except OSError:
        name = ctypes.util.find_library("m")
        if name is None:
            return None
        lib = ctypes.CDLL(name)
    lib.powf.restype, lib.powf.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]
    lib.expf.restype, lib.expf.argtypes = ctypes.c_float, [ctypes.c_float]
    lib.logf.restype, lib.logf.argtypes = ctypes.c_float, [ctypes.c_float]
    lib.exp.restype, lib.exp.argtypes = ctypes.c_double, [ctypes.c_double]
    lib.log.restype, lib.log.argtypes = ctypes.c_double, [ctypes.c_double]
    lib.pow.restype, lib.pow.argtypes = ctypes.c_double, [ctypes.c_double, ctypes.c_double]
    return lib


def available() -> bool:
    return _libm() is not None


def _each(name: str, f: Callable[[Any, float], float], x: Array, kind: Any = F32) -> Array:
    """f(lib, v) for every element of x, as `kind` (float32: no flushing of subnormals, the caller's to do)."""
    lib = _libm()
    if lib is None:
        raise NotReproduced("dtype", f"the framework's results here take the C library's {name}, which could not be "
                            "loaded; use {convention} exact for the mathematics")
    each = np.frompyfunc(lambda v: f(lib, v), 1, 1)
    out: Array = np.asarray(each(np.asarray(x, dtype=np.float64)), dtype=np.float64).astype(kind)
    return out


def powf(x: Array, e: float) -> Array:
    """x^e by the C library's powf, one element at a time."""
    return _each("powf", lambda lib, v: lib.powf(v, e), x)


def logf(x: Array) -> Array:
    """log x by the C library's logf, one element at a time."""
    return _each("logf", lambda lib, v: lib.logf(v), x)



def expf(x: Array) -> Array:
    """e^x by the C library's expf, one element at a time (lowp.libm_expf's reference)."""
    return _each("expf", lambda lib, v: lib.expf(v), x)


def exp(x: Array) -> Array:
    """e^x of doubles by the C library's exp, one element at a time (not always correctly rounded: glibc's is
    within 0.52 ulp)."""
    return _each("exp", lambda lib, v: lib.exp(v), x, np.float64)


def log(x: Array) -> Array:
    """log x of doubles by the C library's log, one element at a time."""
    return _each("log", lambda lib, v: lib.log(v), x, np.float64)


def pow(x: Array, e: float) -> Array:
    """x^e of doubles by the C library's pow, one element at a time."""
    return _each("pow", lambda lib, v: lib.pow(v, e), x, np.float64)
