"""The errors lossgrad reports to a user: what is wrong, where, and what would be right.

Messages name the library's parameters as templates, `{from_logits}`: the Python API shows them as written in a
call (`from_logits=True`), the command line as its options (`--from-logits`). The CLI prints each error as one
`error: ` line and exits with status 2; the API raises them (all are ValueErrors).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# the on/off parameters: a message asks for them switched on
SWITCHES = frozenset({"from_logits", "log_input", "log_target", "explain", "autocast", "full", "swap",
                      "zero_infinity", "squared", "dot", "symmetric", "ntxent", "jaccard",
                      "decoupled", "over_batch"})
# every parameter a message may name: only these `{name}`s are templates, so a user's own text in a message (a
# file called {x}.csv) stays as it is
PARAMETERS = SWITCHES | {
    "loss", "activation", "shell", "target", "pred", "csv", "target_cols", "pred_cols", "sample_weight", "labels",
    "reduction",
    "convention", "eps", "dtype", "format", "output", "my_grad", "my_loss", "x", "class_weights", "pos_weight",
    "label_smoothing", "ignore_index", "delta", "beta", "gamma", "alpha", "delimiter", "keep_cols",
    "var", "var_eps", "full", "negative", "other", "label", "margin", "norm_degree", "swap", "micro_batches",
    "blank", "input_lengths", "target_lengths", "time_major", "no_grad", "class_alpha", "smooth", "smooth_dr",
    "temperature", "pad", "batch_first", "jit", "no_jit", "cpu",
    "my_grad_target", "my_grad_var", "my_grad_negative", "my_grad_other",
}
_NAME = re.compile(r"\{([a-z][a-z0-9_]*)\}")

Namer = Callable[[str], str]


# the inputs as the Python API's functions name them (lossgrad.bce(y, p))
API_NAMES = {"target": "y", "pred": "p"}


def api_name(name: str) -> str:
    """A parameter as a Python call writes it."""
    return f"{name}=True" if name in SWITCHES else API_NAMES.get(name, name)


# parameters the command line takes as arguments rather than options
ARGUMENTS = {"loss": "LOSS", "activation": "ACTIVATION", "shell": "SHELL"}


def cli_name(name: str) -> str:
    """A parameter as the command line writes it: its option (--from-logits) or argument (LOSS)."""
    return ARGUMENTS.get(name) or "--" + name.replace("_", "-")


def fill(text: str, name: Namer = api_name) -> str:
    """`text` with each `{parameter}` written by `name`."""
    return _NAME.sub(lambda m: name(m.group(1)) if m.group(1) in PARAMETERS else m.group(0), text)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 value', '2 values': a count and its noun, in the plural unless it is one."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


class LossgradError(ValueError):
    """Bad usage or bad input: `where` it is (a parameter, an input or a file:line:column) and `what` is wrong."""

    def __init__(self, where: str, what: str):
        self.where, self.what = where, what
        super().__init__(self.message())

    def place(self, name: Namer) -> str:
        return self.where

    def message(self, name: Namer = api_name) -> str:
        """The one-line message, parameters named by `name`."""
        where, what = self.place(name), fill(self.what, name)
        return f"{where}: {what}" if where else what


class OptionError(LossgradError):
    """An option value that cannot be used (unknown name, unsupported combination); `where` is the parameter."""

    def place(self, name: Namer) -> str:
        # (a Python caller is told the parameter's bare name: `from_logits: ...`)
        return name(self.where) if self.where in PARAMETERS and name is not api_name else self.where


class NotReproduced(OptionError):
    """A framework's kernels not reproduced for these inputs (their shape, a fused order): in float32 lossgrad
    computes the formulas instead, as for any case the kernels do not cover; in a half dtype it is an error."""


class InputError(LossgradError):
    """Data that cannot be used; `where` is the input ({target}, {pred}, ...) or file:line:column."""

    def place(self, name: Namer) -> str:
        return fill(self.where, name)


# what is said of a NaN or an infinity among the inputs, wherever it is read (typed, a CSV, a tensor file)
NOT_FINITE = "is not a finite number; NaN and infinity are not valid inputs"


class DomainError(InputError):
    """An input value outside the loss's domain: which array, where in it (row, column) and what is wrong.

    The losses raise it with positions in the arrays they were given; whoever read the arrays turns it into the
    place a user knows (inputs.locate)."""

    def __init__(self, which: str, row: int, col: int, value: float, what: str):
        self.which, self.row, self.col, self.value = which, row, col, value
        self.reason = what
        super().__init__(f"{which}[{row}, {col}]", f"{value!r} {what}")


class EnvironmentFault(Exception):
    """The system refused what lossgrad needs (a full disk, a file-size limit, a closed stream, too many open files,
    no memory, an encoding that cannot write the output): `where` is the file or stream, `what` the system's reason.
    The CLI prints it as one `error: ` line and exits with status 74 (sysexits' EX_IOERR)."""

    exit_status = 74

    def __init__(self, where: str, what: str):
        self.where, self.what = where, what
        super().__init__(self.message())

    def message(self, name: Namer = api_name) -> str:
        return f"{self.where}: {self.what}" if self.where else self.what
