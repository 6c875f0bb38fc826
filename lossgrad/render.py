"""Results out: the rich table for people, JSON and CSV for programs, and atomic file output.

The only module that imports rich, and only inside the function that draws a table.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .api import Result
from .errors import OptionError
from .losses import LOSSES

FORMATS = ("table", "json", "csv")


@dataclass
class Report:
    """A result with what it takes to show it: column names and the shape the user gave."""

    result: Result
    pred: np.ndarray  # 2-D, as given
    pred_names: list  # names of the prediction columns (ce: classes)
    flat: bool  # elementwise with one output per sample: losses and grads as 1-D lists
    source: str = ""


def _jsonable(a):
    """Nested lists with floats as themselves (repr round-trips) and non-finite values as strings."""
    if a is None:
        return None
    if isinstance(a, np.ndarray):
        a = a.tolist()
    if isinstance(a, list):
        return [_jsonable(x) for x in a]
    if isinstance(a, float) and not math.isfinite(a):
        return "nan" if a != a else ("inf" if a > 0 else "-inf")
    return a


def _shaped(rep: Report, a: np.ndarray | None):
    if a is None:
        return None
    if rep.flat:
        return a.reshape(-1)
    return a


def to_json(rep: Report) -> str:
    r = rep.result
    losses = r.losses if r.losses.ndim == 1 or not rep.flat else r.losses.reshape(-1)
    obj = {
        "loss": r.loss,
        "convention": r.convention,
        "from_logits": r.from_logits,
        "reduction": r.reduction,
        "dtype": r.dtype,
        "n": r.n,
        "value": _jsonable(r.value),
        "losses": _jsonable(losses),
        "grad": _jsonable(_shaped(rep, r.grad)),
        "grad_logits": _jsonable(_shaped(rep, r.grad_logits)),
    }
    if r.warnings:
        obj["warnings"] = r.warnings
    return json.dumps(obj) + "\n"


def _rows_text(m: np.ndarray) -> str:
    # repr of a Python float is the shortest string that reads back to the same double
    return "".join(",".join(map(repr, row)) + "\n" for row in m.tolist())


def csv_header(per_sample: bool, pred_names: list) -> str:
    if per_sample:
        return ",".join(["loss"] + [f"grad_{c}" for c in pred_names]) + "\n"
    if len(pred_names) == 1:
        return "loss,grad\n"
    return ",".join([f"loss_{c}" for c in pred_names] + [f"grad_{c}" for c in pred_names]) + "\n"


def csv_rows(losses: np.ndarray, grad: np.ndarray) -> str:
    losses = losses.reshape(grad.shape[0], -1)
    return _rows_text(np.hstack([losses, grad]))


def value_line(r: Result) -> str:
    per = "samples" if r.per_sample else "elements"
    if r.value is None:
        return f"{r.loss} ({r.convention}, reduction none, {r.n} {per}): no reduced value"
    how = f"mean over N={r.n} {per}" if r.reduction == "mean" else f"sum over {r.n} {per}"
    return f"{r.loss} ({r.convention}, {how}): value={_num(r.value, full=True)}"


def _num(v, full=False) -> str:
    v = float(v)
    if not math.isfinite(v):
        return "nan" if v != v else ("inf" if v > 0 else "-inf")
    return repr(v) if full else f"{v:.10g}"


def to_table(rep: Report, out, explain: list[str] | None = None) -> None:
    """A header line and one row per element; long inputs show their head and tail."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    r = rep.result
    # off a terminal rich falls back to 80 columns and would cut the numbers short
    wide = not (hasattr(out, "isatty") and out.isatty()) and "COLUMNS" not in os.environ
    console = Console(file=out, highlight=False, soft_wrap=False, width=200 if wide else None)
    rows_loss = LOSSES[r.loss].kind == "rows"
    per_sample = r.per_sample
    title = value_line(r) + ("" if r.dtype == "float64" else f"  [{r.dtype}]")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("row", justify="right")
    table.add_column("class" if rows_loss else "col", justify="right")
    table.add_column("target", justify="right")
    table.add_column("logit" if r.from_logits else "pred", justify="right")
    if r.prob is not None:
        table.add_column("prob", justify="right")
    table.add_column("loss", justify="right")
    table.add_column("grad", justify="right")
    if r.grad_logits is not None:
        table.add_column("grad_logits", justify="right")
    pred = rep.pred
    grad = r.grad.reshape(pred.shape)
    gl = None if r.grad_logits is None else r.grad_logits.reshape(pred.shape)
    prob = None if r.prob is None else r.prob.reshape(pred.shape)
    target = r.target.reshape(pred.shape)
    losses = r.losses.reshape(pred.shape[0], -1)
    cells = pred.shape[0] * pred.shape[1]
    head, tail = (cells, 0) if cells <= 60 else (40, 10)
    order = list(range(head)) + list(range(cells - tail, cells))
    for pos, flat in enumerate(order):
        if tail and pos == head:
            table.add_row("…", *[""] * (len(table.columns) - 1))
        i, j = divmod(flat, pred.shape[1])
        label = rep.pred_names[j]
        if per_sample:
            loss_cell = _num(losses[i, 0]) if j == 0 else ""
            tgt = _num(target[i, j])
        else:
            loss_cell = _num(losses[i, j])
            tgt = _num(target[i, j])
        row = [str(i), label, tgt, _num(pred[i, j])]
        if prob is not None:
            row.append(_num(prob[i, j]))
        row += [loss_cell, _num(grad[i, j])]
        if gl is not None:
            row.append(_num(gl[i, j]))
        table.add_row(*row)
    if explain:
        for line in explain:
            console.print(line)
        console.print()
    console.print(title)
    console.print(table)
    if tail:
        console.print(f"({cells - head - tail} of {cells} elements not shown; --format csv or json gives all)")


def default_format(output: str | None) -> str:
    if output not in (None, "-"):
        return "csv"
    return "table" if sys.stdout.isatty() else "csv"


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise OptionError("--format", f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


@contextmanager
def open_output(path: str | None):
    """stdout, or a temporary file beside `path` renamed over it only when everything was written."""
    if path in (None, "-"):
        yield sys.stdout
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OptionError("--output", f"folder {folder} does not exist")
    if os.path.isdir(path):
        raise OptionError("--output", f"{path} is a folder; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".lossgrad-", suffix=".tmp")
    except OSError as e:
        raise OptionError("--output", f"cannot write in {folder}: {e.strerror}") from None
    f = os.fdopen(fd, "w", encoding="utf-8", newline="")
    try:
        yield f
        f.close()
        os.replace(tmp, path)
    except BaseException:
        f.close()
        os.unlink(tmp)
        raise
