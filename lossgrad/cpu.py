"""The processor whose frameworks a convention's kernels reproduce.

The width of a CPU's vector registers decides how PyTorch's, oneDNN's and XLA's kernels split a sum into lanes
and where their scalar remainders fall, so a float32 result can differ in its last bits between a machine with
AVX-512 and one with AVX2 only. lossgrad reproduces either: the one this machine has (as PyTorch's
`torch.backends.cpu.get_cpu_capability()` reads it), or the one `--cpu` or the environment's LOSSGRAD_CPU names, to
match numbers printed on another machine. The kernels read the capability once, when they start on a batch.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import OptionError

CAPABILITIES = ("avx512", "avx2")
ENV = "LOSSGRAD_CPU"
# the flags PyTorch asks of a processor before it runs its AVX-512 kernels (cpuinfo's, at::get_cpu_capability)
AVX512_FLAGS = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})

_chosen: ContextVar[str | None] = ContextVar("cpu", default=None)


@functools.cache
def detected() -> str:
    """This machine's capability: avx512 where the processor has the AVX-512 subsets PyTorch asks for, else avx2
    (also where /proc/cpuinfo cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "avx2"
    return "avx512" if AVX512_FLAGS <= set(flags) else "avx2"


def checked(name: object, where: str) -> str:
    """`name` as one of CAPABILITIES (any case), or an OptionError naming `where`."""
    value = name.lower() if isinstance(name, str) else name
    if value not in CAPABILITIES:
        raise OptionError(where, f"names the processor whose kernels are reproduced: {' or '.join(CAPABILITIES)}, "
                                 f"not {name!r}")
    return str(value)


def selected() -> str:
    """The capability the kernels reproduce: the one chosen (--cpu, `using`), else LOSSGRAD_CPU, else this
    machine's."""
    chosen = _chosen.get()
    if chosen is not None:
        return chosen
    env = os.environ.get(ENV)
    return checked(env, ENV) if env else detected()


def avx512() -> bool:
    return selected() == "avx512"


@contextmanager
def using(name: object) -> Iterator[None]:
    """The kernels reproduce capability `name` inside (None: as selected() finds it)."""
    token = _chosen.set(checked(name, "cpu") if name is not None else None)
    if os.environ.get(ENV):  # (one the kernels cannot take is an error before they start; the machine is read later,
        checked(os.environ[ENV], ENV)  # and only where kernels run)
    try:
        yield
    finally:
        _chosen.reset(token)
