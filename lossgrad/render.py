"""Render: results out. The rich table for people, JSON and CSV for programs (batch mode's writer too), the
progress bar, compare's and check's reports, and atomic file output.

The only module that imports rich, and only inside the functions that draw; polars only to write large batches.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from . import conventions, outputs
from .api import Result
from .errors import OptionError, cli_name, counted, fill
from .inputs import _polars
from .losses import LOSSES
from .outputs import Inputs
from .reduction import describe as describe_reduction

FORMATS = ("table", "json", "csv")


@dataclass
class Report:
    """A result with what it takes to show it: column names and the shape the user gave."""

    result: Result
    pred: np.ndarray  # 2-D, as given
    pred_names: list  # names of the prediction columns (ce: classes)
    flat: bool  # elementwise with one output per sample: losses and grads as 1-D lists
    source: str = ""
    kept: list = field(default_factory=list)  # --keep-cols: (name, each row's text)
    extra: dict = field(default_factory=dict)  # the loss's extra inputs, 2-D (their gradients: result.grads)
    micro: Any = None  # api.Micro: the batch split into micro-batches (--micro-batches)
    shape: tuple = ()  # the predictions' shape as given (a sequence's [T, C]: its gradients take it in JSON)
    input_names: dict = field(default_factory=dict)  # CSV: the target's and extra inputs' column names


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
    if rep.shape and LOSSES[rep.result.loss].kind == "sequence":
        return a.reshape(rep.shape)
    return a


def to_json(rep: Report, formulas: list | None = None) -> str:
    r = rep.result
    losses = r.losses if r.losses.ndim == 1 or not rep.flat else r.losses.reshape(-1)
    obj = {
        "loss": r.loss,
        "convention": r.convention,
        "from_logits": r.from_logits,
        "reduction": r.reduction,
        "dtype": r.dtype,
        **({} if r.jit is None else {"jit": r.jit}),
        **({} if r.joined is None else {"over_batch": {"outputs": r.joined}}),  # (n: its one loss)
        "n": r.n,
        "value": _jsonable(r.value),
        "losses": _jsonable(losses),
        "grad": _jsonable(_shaped(rep, r.grad)),
        "grad_logits": _jsonable(_shaped(rep, r.grad_logits)),
    } | {f"grad_{k}": _jsonable(_shaped(rep, g) if g.size == r.grad.size else g.reshape(-1))
         for k, g in r.grads.items()}
    if r.autocast:  # (the dtype is the predictions' and the gradient's; losses and value are float32)
        obj["autocast"] = True
    if rep.kept:
        obj["kept"] = dict(rep.kept)
    if rep.micro is not None:  # the loop's mean of micro-batch means, and its gradient
        obj["micro_batches"] = _jsonable_tree(rep.micro.as_dict())
        obj["grad_micro"] = _jsonable(_shaped(rep, rep.micro.grad.reshape(r.grad.shape)))
        gl = rep.micro.grad_logits
        obj["grad_logits_micro"] = _jsonable(None if gl is None else _shaped(rep, gl.reshape(r.grad.shape)))
    if r.weight_note:
        obj["n_is"] = r.weight_note  # sample weights: what the mean divides by
    if formulas:
        obj["formulas"] = formulas  # --explain
    if r.warnings:
        obj["warnings"] = [cli_text(w) for w in r.warnings]
    return json.dumps(obj) + "\n"


def _rows_text(m: np.ndarray) -> str:
    # repr of a Python float is the shortest string that reads back to the same double
    return "".join(",".join(map(repr, row)) + "\n" for row in m.tolist())


def csv_field(text: str) -> str:
    """A text value as a CSV field: in double quotes when it is empty or holds a comma, a quote or a line end (as
    polars writes it)."""
    if text and not any(c in text for c in ',"\r\n'):
        return text
    return '"' + text.replace('"', '""') + '"'


def csv_header(per_sample: bool, pred_names: list, kept_names: list | None = None,
               micro: bool = False, with_losses: bool = True) -> str:
    """The kept columns' names, the losses' (where the rows hold them), then the gradient's (and with `micro`
    the mean of micro-batch means' gradient's)."""
    kept = "".join(csv_field(k) + "," for k in kept_names or [])
    grads = ["grad", "grad_micro"] if micro else ["grad"]
    if not with_losses:
        return kept + ",".join(f"{g}_{c}" for g in grads for c in pred_names) + "\n"
    if per_sample:
        return kept + ",".join(["loss"] + [f"{g}_{c}" for g in grads for c in pred_names]) + "\n"
    if len(pred_names) == 1:
        return kept + ",".join(["loss", *grads]) + "\n"
    losses = [f"loss_{c}" for c in pred_names]
    return kept + ",".join(losses + [f"{g}_{c}" for g in grads for c in pred_names]) + "\n"


def grad_order(loss: Any) -> list[str]:
    """The further gradients in the order CSV rows hold them: the target's (embeddings), then each input's."""
    return (["target"] if loss.target_grad else []) + [i.name for i in loss.inputs if i.differentiated]


def extra_header(widths: dict[str, int], pred_names: list, names: dict[str, list] | None = None) -> str:
    """CSV header cells for the further gradients (name: how many columns), each column named as its input's
    (`names`: a CSV's target and extra columns), else as the prediction's."""
    def columns(k: str, w: int) -> list:
        own = (names or {}).get(k)
        return [""] if w == 1 else own if own is not None and len(own) == w else pred_names
    return "".join(f",grad_{k}" + (f"_{c}" if w > 1 else "") for k, w in widths.items() for c in columns(k, w))


def csv_rows(losses: np.ndarray, grads: np.ndarray, kept: list | None = None) -> str:
    """Each row's losses, then its gradient columns (`grads`: the gradient and any others beside it)."""
    losses = losses.reshape(grads.shape[0], -1)
    if kept:
        return _kept_rows(np.hstack([losses, grads]), kept)
    return _rows_text(np.hstack([losses, grads]))


def micro_line(m: Any, r: Result) -> str:
    """--micro-batches in two lines: the mean of the micro-batch means beside the true mean, their ratio, and what
    its gradient divides by."""
    true = describe_reduction("mean", m.n, r.per_sample, r.weight_note)
    return (f"micro-batches: {m.k} of {m.groups} each; the mean of their means is {_num(m.value, full=True)}, "
            f"{_num(m.ratio)}× the {true} ({_num(m.true_value, full=True)})\ngrad_micro: the gradient of the mean "
            f"of means, each element's derivative over {m.k}·n of its micro-batch (grad's over N={m.n})")


def micro_table(console: Any, m: Any) -> None:
    """Each micro-batch: its rows (a:b, half-open), its N and its mean; the first 10 and last 5 of many."""
    shown = list(range(m.k)) if m.k <= 20 else [*range(10), -1, *range(m.k - 5, m.k)]
    rows: list[list[Cell]] = [["…", "", "", ""] if i < 0 else
                              [str(i), f"{i * m.size}:{(i + 1) * m.size}", _count(m.counts[i]), float(m.means[i])]
                              for i in shown]
    print_table(console, ["micro-batch", "rows", "n", "mean"], rows, keys=2)


def _count(n: int | float) -> str:
    return f"{n:,}" if isinstance(n, int) else f"{n:.10g}"


def _kept_rows(m: np.ndarray, kept: list) -> str:
    """Rows of `m` after the kept columns' text (a list of columns)."""
    prefix = ["".join(csv_field(t) + "," for t in row) for row in zip(*kept, strict=True)]
    return "".join(p + ",".join(map(repr, row)) + "\n" for p, row in zip(prefix, m.tolist(), strict=True))


def value_line(r: Result) -> str:
    if r.joined is not None:  # (--over-batch: every reduction of one loss is that loss)
        loss = r.losses[0] if r.value is None else r.value
        return (f"{r.loss} ({r.convention}, one loss over the whole batch of {counted(r.joined, 'output')}): "
                f"value={_num(loss, full=True)}")
    if r.value is None:
        per = "samples" if r.per_sample else "elements"
        return f"{r.loss} ({r.convention}, reduction none, {r.n} {per}): no reduced value"
    how = describe_reduction(r.reduction, r.n, r.per_sample, r.weight_note)
    return f"{r.loss} ({r.convention}, {how}): value={_num(r.value, full=True)}"


def cli_text(text: str) -> str:
    """A library message with its parameters named as the command line's options."""
    return fill(text, cli_name)


def warn(lines: list[str]) -> None:
    for line in lines:
        sys.stderr.write(f"warning: {cli_text(line)}\n")


def _console(out: IO[str]) -> Any:
    """A rich Console on `out`, as wide as the terminal (or $COLUMNS); off a terminal 200 columns, where rich would
    fall back to 80."""
    from rich.console import Console

    # (a height too: with a width alone rich takes 80 columns on a terminal whose TERM is dumb)
    return Console(file=out, highlight=False, markup=False, soft_wrap=False, width=_width(out), height=25)


def _width(out: IO[str]) -> int:
    terminal = hasattr(out, "isatty") and out.isatty()
    columns = os.environ.get("COLUMNS", "")
    if columns.strip().isdigit() and int(columns) > 0:
        return int(columns)
    if not terminal:
        return 200
    import shutil

    return shutil.get_terminal_size((80, 24)).columns or 80


def _num(v: float, full: bool = False, digits: int = 10) -> str:
    v = float(v)
    if not math.isfinite(v):
        return "nan" if v != v else ("inf" if v > 0 else "-inf")
    return repr(v) if full else f"{v:.{digits}g}"


def write_result(rep: Report, fmt: str, out: IO[str], explain: list[str] | None = None) -> None:
    """A result as json, csv (a row per sample: its losses, then its gradient) or a table."""
    r = rep.result
    if fmt == "json":
        out.write(to_json(rep, explain))
    elif fmt == "csv":
        if explain:
            sys.stderr.write("".join(line + "\n" for line in explain))
        extra = {k: r.grads[k].reshape(rep.pred.shape[0], -1) for k in grad_order(LOSSES[r.loss])}
        micro = [] if rep.micro is None else [rep.micro.grad.reshape(rep.pred.shape)]
        kept = [name for name, _ in rep.kept]
        # (--over-batch: the batch's one loss is the value, on stderr; each row holds its gradient)
        losses = r.losses if r.joined is None else np.empty((rep.pred.shape[0], 0))
        head = csv_header(r.per_sample, rep.pred_names, kept, bool(micro), r.joined is None).rstrip("\n")
        out.write(head + extra_header({k: g.shape[1] for k, g in extra.items()}, rep.pred_names, rep.input_names)
                  + "\n")
        out.write(csv_rows(losses, np.hstack([r.grad.reshape(rep.pred.shape), *micro, *extra.values()]),
                           [text for _, text in rep.kept]))
    else:
        to_table(rep, out, explain)


def to_table(rep: Report, out: IO[str], explain: list[str] | None = None) -> None:
    """A header line and one row per element; long inputs show their head and tail."""
    r = rep.result
    console = _console(out)
    kind = LOSSES[r.loss].kind
    headers = [*(name for name, _ in rep.kept), "row", {"rows": "class", "sequence": "frame:class"}.get(kind, "col"),
               *(["target"] if kind != "sequence" else []), "logit" if r.from_logits else "pred"]
    pred = rep.pred
    columns: list[np.ndarray | None] = [r.target.reshape(pred.shape)] if kind != "sequence" else []
    columns.append(pred)
    if r.prob is not None:
        headers.append("prob")
        columns.append(r.prob.reshape(pred.shape))
    whole = r.joined is not None  # (--over-batch: the batch's one loss is the value line's)
    headers += ["grad"] if whole else ["loss", "grad"]
    losses = r.losses.reshape(1 if whole else pred.shape[0], -1)
    if not whole:
        columns.append(None)  # (the loss: per element, or once per sample)
    columns.append(r.grad.reshape(pred.shape))
    if r.grad_logits is not None:
        headers.append("grad_logits")
        columns.append(r.grad_logits.reshape(pred.shape))
    if rep.micro is not None:
        headers.append("grad_micro")
        columns.append(rep.micro.grad.reshape(pred.shape))
        if rep.micro.grad_logits is not None:
            headers.append("grad_logits_micro")
            columns.append(rep.micro.grad_logits.reshape(pred.shape))
    for name, a in rep.extra.items():  # (an extra input of one value per sample: shown at its first output)
        headers.append(name)
        columns.append(a)
    for name, g in r.grads.items():  # (with respect to an extra input, or to the target)
        headers.append(f"grad_{name}")
        columns.append(g.reshape(rep.extra[name].shape if name in rep.extra else pred.shape))
    cells = pred.shape[0] * pred.shape[1]
    head, tail = (cells, 0) if cells <= 60 else (40, 10)
    rows: list[list[Cell]] = []
    for flat in list(range(head)) + list(range(cells - tail, cells)):
        if tail and len(rows) == head:
            rows.append(["…", *[""] * (len(headers) - 1)])
        i, j = divmod(flat, pred.shape[1])
        loss: Cell = "" if whole else ("" if j else float(losses[i, 0])) if r.per_sample else float(losses[i, j])
        rows.append([*(text[i] for _, text in rep.kept), str(i), rep.pred_names[j],
                     *(loss if a is None else _at(a, i, j) for a in columns)])
    for line in explain or []:
        console.print(_formula(line, _width(out)), soft_wrap=True)
    if explain:
        console.print()
    console.print(value_line(r) + dtype_tag(r), overflow="fold")
    if rep.micro is not None:
        console.print(micro_line(rep.micro, r), overflow="fold")
    print_table(console, headers, rows, keys=2 + len(rep.kept))
    if tail:
        console.print(f"({cells - head - tail} of {cells} elements not shown; --format csv or json gives all)")
    if rep.micro is not None:
        micro_table(console, rep.micro)


def _at(a: np.ndarray, i: int, j: int) -> Cell:
    """Cell (i, j) of a column; one of a value per sample (an extra input) shows at the sample's first output."""
    return float(a[i, j]) if j < a.shape[1] else ""


def default_format(output: str | None) -> str:
    if output not in (None, "-"):
        return "csv"
    return "table" if sys.stdout.isatty() else "csv"


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise OptionError("format", f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def open_output(path: str | None, binary: bool = False, inputs: Inputs = ()) -> Any:
    """stdout, or the file `path`: a regular file replaced atomically, a device or FIFO written through, an input
    or a read-only file refused (outputs.py)."""
    return outputs.open_output(path, binary, inputs)


# ---------------------------------------------------------------- tensor files


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def dtype_tag(r: Result) -> str:
    """The dtype beside the value, unless float64: [bfloat16, autocast] for a mixed-precision run, [float32, jit]
    or [float32, no jit] for JAX's numbers under jit or op by op."""
    if r.dtype == "float64":
        return ""
    more = (", autocast" if r.autocast else "") + ("" if r.jit is None else (", jit" if r.jit else ", no jit"))
    return f"  [{r.dtype}{more}]"


def tensor_summary(run: Any) -> str:
    """A tensor run in a few lines: the reduced value, the inputs' shapes, what was written, notes."""
    r = run.result
    lines = [value_line(r) + dtype_tag(r)]
    lines += [f"{name}: {t.spec} {_shape(t.shape)} {t.dtype.name}" + (f" ({len(t.shards)} shards)"
                                                                       if len(t.shards) > 1 else "")
              for name, t in (("pred", run.pred), ("target", run.target),
                              *((k, t) for k, (t, _) in getattr(run, "extras", {}).items()))]
    lines += [f"losses: {_shape(run.geometry.losses_shape)}"] if not run.written else []
    if run.micro is not None:
        lines += micro_line(run.micro, r).splitlines()[:1]
    if run.written:
        lines.append(f"wrote {run.output}: " + ", ".join(f"{n} {_shape(sh)} {dt}" for n, sh, dt in run.written))
    lines += [f"note: {cli_text(n)}" for n in run.notes]
    return "".join(line + "\n" for line in lines)


def write_tensor_run(run: Any, fmt: str, out: IO[str]) -> None:
    """A tensor run as JSON (the summary, no per-element arrays) or as the summary and a table of the first and
    last sequences (tokens counted, mean and max loss) or samples."""
    if fmt == "json":
        out.write(json.dumps(_tensor_json(run)) + "\n")
        return
    console = _console(out)
    for line in tensor_summary(run).splitlines():
        console.print(line, overflow="fold")
    groups = run.groups
    if groups.size:
        rows: list[list[Cell]] = [[str(i), str(k), mean, top] for i, k, mean, top in groups.rows()]
        headers, total, what = ["seq", "tokens", "mean loss", "max loss"], groups.count.size, "sequences"
    else:
        rows = [[str(i), v] for i, v in groups.flat_rows()]
        headers, total, what = ["row", "loss"], groups.seen, "losses"
    hidden = total - len(rows)
    if hidden:
        rows.insert(len(rows) // 2, ["…", *[""] * (len(headers) - 1)])
    print_table(console, headers, rows, keys=1)
    if hidden:
        console.print(f"({hidden} of {total} {what} not shown; -o FILE.npz writes every loss)")


def _tensor_json(run: Any) -> dict:
    r = run.result
    obj = {"loss": r.loss, "convention": r.convention, "from_logits": r.from_logits, "reduction": r.reduction,
           "dtype": r.dtype, **({} if r.jit is None else {"jit": r.jit}),
           **({} if r.joined is None else {"over_batch": {"outputs": r.joined}}), "n": r.n, "value": _jsonable(r.value),
           "pred": {"source": run.pred.spec, "shape": list(run.pred.shape), "dtype": run.pred.dtype.name},
           "target": {"source": run.target.spec, "shape": list(run.target.shape), "dtype": run.target.dtype.name},
           **{k: {"source": t.spec, "shape": list(t.shape), "dtype": t.dtype.name}
              for k, (t, _) in getattr(run, "extras", {}).items()},
           "losses_shape": list(run.geometry.losses_shape), "output": run.output,
           "written": {n: {"shape": list(sh), "dtype": dt} for n, sh, dt in run.written}}
    if r.autocast:
        obj["autocast"] = True
    if r.weight_note:
        obj["n_is"] = r.weight_note
    if run.micro is not None:
        obj["micro_batches"] = _jsonable_tree(run.micro.as_dict())
    if run.notes:
        obj["notes"] = [cli_text(n) for n in run.notes]
    if r.warnings:
        obj["warnings"] = [cli_text(w) for w in r.warnings]
    return obj


# ---------------------------------------------------------------- compare and check


def write_comparison(comp, p2: np.ndarray, y2: np.ndarray, fmt: str, out) -> None:
    if fmt == "json":
        out.write(json.dumps(_jsonable_tree(comp.as_dict())) + "\n")
        return
    console = _console(out)
    names = list(comp.results)
    ref = "exact" if "exact" in comp.results else names[0]  # (autocast: the float64 truth; exact has no policy)
    exact = comp.results[ref]
    seq = LOSSES[comp.loss].kind == "sequence"
    mode = "from logits" if comp.from_logits else (
        ("on log-probabilities" if seq else "on probabilities") if LOSSES[comp.loss].has_logits else "")
    how = "one loss over the whole batch" if exact.joined is not None else f"reduction {comp.reduction}"
    console.print(f"{' '.join(filter(None, (comp.loss, mode)))}, {how}: value and gradient under "
                  f"each convention (* differs from {ref} by more than 1e-12 relative)", overflow="fold")
    headers = ["row", "frame:class" if seq else "col", "target", "logit" if comp.from_logits else "pred", *names]

    def mark(v: float, e: float) -> Cell:
        same = v == e or (math.isfinite(e) and abs(v - e) <= 1e-12 * abs(e)) or (v != v and e != e)
        return (float(v), "" if same else "*")

    values = [("" if r.value is None else mark(r.value, exact.value if exact.value is not None else r.value))
              for r in comp.results.values()]
    rows: list[list[Cell]] = [["value", "", "", "", *values]]
    if comp.micro:  # the mean of the micro-batch means, beside the value
        rows.append(["micro", "", "", "", *[("" if n not in comp.micro else
                                             mark(comp.micro[n].value, comp.micro["exact"].value)) for n in names]])
    grads = {n: r.grad.reshape(p2.shape) for n, r in comp.results.items()}
    eg = grads[ref]
    target = None if LOSSES[comp.loss].kind == "sequence" else exact.target.reshape(p2.shape)
    cells = p2.size
    limit = cells if cells <= 60 else 40
    for flat in range(limit):
        i, j = divmod(flat, p2.shape[1])
        col = f"{j // comp.shape[-1]}:{j % comp.shape[-1]}" if seq else str(j)
        rows.append([str(i), col, "" if target is None else float(target[i, j]), float(p2[i, j]),
                     *[mark(grads[n][i, j], eg[i, j]) for n in names]])
    print_table(console, headers, rows, keys=2)
    if cells > limit:
        console.print(f"({cells - limit} more elements not shown; --format json gives all)")
    for k in exact.grads:
        _further_gradient(console, comp, k, mark)
    _comparison_notes(console, comp)


def _comparison_notes(console: Any, comp: Any) -> None:
    """Below compare's table: the micro-batch means, the conventions that lack the loss, and why they differ."""
    if comp.micro:
        m = comp.micro["exact"]
        console.print(f"micro: the mean of the {m.k} per-micro-batch means ({m.size} rows each), as gradient "
                      "accumulation computes it; micro / value: " + ", ".join(
                          f"{n} {_num(comp.micro[n].ratio)}" for n in comp.results if n in comp.micro)
                      + "; --format json gives grad_micro", overflow="fold")
    for name, reason in comp.unsupported.items():
        reason = cli_text(reason)
        console.print(_wrap(f"{name}: not available: {reason}", _width(console.file)), soft_wrap=True)
    if comp.differences:
        console.print("why they differ:")
        groups: dict = {}  # (one line per convention and reason, however many kinds of cell it covers)
        for d in comp.differences:
            groups.setdefault((d["convention"], d["why"]), {}).setdefault(d.get("of", "grad"), []).append(d)
        for (conv, why), kinds in list(groups.items())[:40]:
            joined = next(iter(comp.results.values())).joined is not None
            where = ", ".join(filter(None, (_where(of, ds, comp.shape, joined) for of, ds in kinds.items())))
            line = f"  {conv}{', ' + where if where else ''}: {cli_text(why)}"
            console.print(_wrap(line, _width(console.file)), soft_wrap=True)  # (later lines indented under the first)
        if len(groups) > 40:
            console.print(f"  … and {len(groups) - 40} more (--format json gives all)")
        _ulps_line(console, comp)
    elif _any_differs(comp):  # (every cell that differs has a reason: this cannot be, but it must not say "same")
        console.print("the cells marked * differ from the reference")
    else:
        console.print("every convention gives the same numbers here")


def _ulps_line(console: Any, comp: Any) -> None:
    """In a half dtype: each convention's farthest gradient element from the float64 truth, in ulps of the dtype."""
    measured = [d for d in comp.differences if "ulps" in d]
    if not measured:
        return
    worst = {n: max((d["ulps"] for d in measured if d["convention"] == n), default=0.0)
             for n in comp.results if n != "float64"}
    console.print("the gradient's farthest element from the float64 truth, in ulps of the dtype: "
                  + ", ".join(f"{n} {u:.2g}" for n, u in worst.items()), overflow="fold")


def _where(of: str, ds: list, shape: tuple, joined: bool = False) -> str:
    """Which cells of one kind a reason is about: gradient elements, a further input's, loss terms, the value
    (`joined`: --over-batch's one loss is the batch's)."""
    if of == "value":
        return "value"
    if of == "loss" and joined:
        return "the batch's loss"
    idxs = [tuple(d["element"]) for d in ds if d["element"] is not None]
    if not idxs:
        return ""
    if all(d["place"].startswith("sample ") for d in ds):
        said = ("sample " if len(idxs) == 1 else "samples ") + ", ".join(str(i[0]) for i in idxs[:12]) + (
            " …" if len(idxs) > 12 else "")
    else:
        said = places(idxs, shape)
    return ("" if of == "grad" else "loss of " if of == "loss" else f"{of} ") + said


def _any_differs(comp: Any) -> bool:
    """Whether any value, loss term or gradient cell of a convention differs from the reference's."""
    ref = comp.results["exact" if "exact" in comp.results else next(iter(comp.results))]

    def apart(a: Any, b: Any) -> bool:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.size != b.size:
            return False
        a, b = a.reshape(-1), b.reshape(-1)
        with np.errstate(invalid="ignore"):
            same = (a == b) | (np.isfinite(b) & (np.abs(a - b) <= 1e-12 * np.abs(b))) | (np.isnan(a) & np.isnan(b))
        return not bool(same.all())

    for r in comp.results.values():
        if (r.value is not None and ref.value is not None and apart(r.value, ref.value)) or apart(r.grad, ref.grad):
            return True
        if any(k in r.grads and apart(r.grads[k], g) for k, g in ref.grads.items()):
            return True
    return False


def _further_gradient(console: Any, comp: Any, name: str, mark: Any) -> None:
    """compare's table of the gradient with respect to a further input (gaussian-nll's var) or the target."""
    shape = comp.results["exact"].grads[name].reshape(len(comp.results["exact"].grads[name]), -1).shape
    grads = {n: r.grads[name].reshape(shape) for n, r in comp.results.items()}
    console.print(f"grad_{name} under each convention:")
    rows: list[list[Cell]] = [[str(i), str(j), *[mark(g[i, j], grads["exact"][i, j]) for g in grads.values()]]
                              for i, j in list(np.ndindex(shape))[:40]]
    print_table(console, ["row", "col", *grads], rows, keys=2)


def _jsonable_tree(obj: Any) -> Any:
    """A tree of dicts, lists, arrays and floats as JSON values; messages in it name the command line's options."""
    if isinstance(obj, dict):
        return {k: _jsonable_tree(v) for k, v in obj.items()}
    if isinstance(obj, list) and any(isinstance(v, dict) for v in obj):
        return [_jsonable_tree(v) for v in obj]
    if isinstance(obj, str):
        return cli_text(obj)
    return _jsonable(obj) if isinstance(obj, (list, float, np.ndarray)) else obj


WRT = {"pred": "the predictions", "logits": "the logits", "probs": "the probabilities"}
# what the probabilities behind --from-logits predictions are, per loss (Loss.link)
_LINKED = {"sigmoid": "the probabilities σ(z)", "softmax": "the probabilities softmax(z)", "exp": "the rates e^z"}


def wrt_text(loss: str, wrt: str) -> str:
    """What a gradient is taken with respect to, in words ("probs" named as the loss's link makes them)."""
    return _LINKED.get(LOSSES[loss].link or "", WRT[wrt]) if wrt == "probs" else WRT[wrt]


def distinct(a: float, b: float) -> tuple[str, str]:
    """a and b with the fewest significant digits (at least 4) that tell them apart; equal numbers alike."""
    a, b = float(a), float(b)
    for digits in range(4, 18):
        sa, sb = _num_digits(a, digits), _num_digits(b, digits)
        if sa != sb or a == b:
            return sa, sb
    return repr(a), repr(b)


def _num_digits(v: float, digits: int) -> str:
    return _num(v) if not math.isfinite(v) else f"{v + 0.0:.{digits}g}"  # (+ 0.0: -0 reads as 0)


def _options_words(options: dict) -> str:
    said = []
    for k, v in options.items():
        shown = ",".join(f"{x:.8g}" for x in np.ravel(v)) if not isinstance(v, bool) else ("on" if v else "off")
        said.append(f"{cli_name(k)} {shown}" if isinstance(v, bool) else f"{k} = {shown}")
    # (a switch check turned off is one the user passed: off is every switch's default)
    off = [cli_name(k) for k, v in options.items() if v is False]
    unsaid = [cli_name(k) for k, v in options.items() if v is not False]
    notes = ([f"you did not pass {', '.join(unsaid)}"] if unsaid else []) + ([f"you passed {', '.join(off)}"]
                                                                            if off else [])
    return " with " + " and ".join(said) + " (" + "; ".join(notes) + ")"


def describe(c: Any, loss: str = "", given: str = "grad", extra: tuple = (), pred: bool = True) -> str:
    """A check candidate (convention, reduction, what the gradient is taken with respect to, options solved for)
    in words; for a loss alone, what the loss is computed on instead of a derivative. `extra`: the further inputs
    whose gradients were given too (`pred`: beside the predictions')."""
    title = conventions.CONVENTIONS[c.convention].title
    n = f"{c.n:g}" if isinstance(c.n, float) else str(c.n)
    opts = _options_words(c.options) if c.options else ""
    if given == "loss":
        on = f", on {wrt_text(loss, 'probs')}" if c.wrt == "probs" else ""
        red = {"mean": f"mean over N={n}", "sum": "reduction sum"}
        via = f", {c.via}" if getattr(c, "via", "") else ""
        return f"{title}, {red.get(c.reduction) or _micro_words(c, n)}{on}{opts}{via}"
    red = {"mean": f"mean over N={n}", "micro": _micro_words(c, n),
           "sum": "reduction sum (no 1/N: each element's own derivative, as reduction none gives too)",
           "none": "reduction none (each element's own derivative)"}
    wrt = [wrt_text(loss, c.wrt) if loss else WRT[c.wrt]] if pred else []
    wrt += [cli_text("{" + k + "}") for k in extra]
    via = f", {c.via}" if getattr(c, "via", "") else ""
    return f"{title}, {red[c.reduction]}, with respect to {', '.join(wrt[:-1]) + ' and ' if len(wrt) > 1 else ''}" \
           f"{wrt[-1]}{opts}{via}"


def _micro_words(c: Any, n: str) -> str:
    m = c.micro
    return "" if m is None else (f"the mean of {m.k} per-micro-batch means (gradient accumulation; not the mean "
                                 f"over N={n})")


def _place(idx: tuple[int, ...], shape: tuple[int, ...]) -> str:
    if len(idx) > 2:  # (a tensor of more axes: its index in full)
        return f"cell ({', '.join(map(str, idx))})"
    if len(shape) == 2 and shape[1] > 1:
        return f"row {idx[0]}, column {idx[1]}"
    return f"element {idx[0]}"


def places(idxs: list[tuple[int, ...]], shape: tuple[int, ...]) -> str:
    """'element 3', 'elements 1, 2, 3', 'row 0, column 2', 'cells (0, 1), (2, 0)', 'cells (0, 1, 2), (1, 0, 3)'."""
    flat = not (len(shape) == 2 and shape[1] > 1) and all(len(i) <= 2 for i in idxs)
    if len(idxs) == 1:
        return _place(idxs[0], shape)
    shown = idxs[:12]
    tail = " …" if len(idxs) > 12 else ""
    if flat:
        return "elements " + ", ".join(str(i[0]) for i in shown) + tail
    return "cells " + ", ".join(f"({', '.join(map(str, i))})" for i in shown) + tail


def _candidate_json(c: Any, from_logits: bool) -> dict:
    out = {"convention": c.convention, "reduction": c.reduction, "from_logits": from_logits,
           "wrt": c.wrt, "options": _jsonable_tree(dict(c.options))}
    if getattr(c, "via", ""):  # (the convention was given the inputs otherwise: PyTorch's ctc, log_softmax)
        out["via"] = c.via
    if getattr(c, "micro", None) is not None:  # reduction "micro": the micro-batches' means and Ns
        out["micro_batches"] = _jsonable_tree(c.micro.as_dict())
    return out


def write_diagnosis(diag, fmt: str, out) -> None:
    """check's answer: the match (or nearest) in words and the findings; as JSON with the candidates' keys."""
    c = diag.match or diag.nearest
    if fmt == "json":
        near = _candidate_json(c, diag.from_logits) | {
            "residual": _jsonable(float(c.residual)), "value": _jsonable(c.value),
            "grad": _jsonable(diag.as_given(c.grad))} | {
            f"grad_{k}": _jsonable(diag.shaped(g, c.grad))
            for k, g in getattr(c, "grads", {}).items()}
        obj = {
            "match": None if diag.match is None else _candidate_json(c, diag.from_logits),
            "nearest": near,
            "also": [_candidate_json(a, diag.from_logits) for a in diag.also],
            "findings": [cli_text(f.strip()) for f in diag.findings],
        }
        out.write(json.dumps(obj) + "\n")
        return
    what = "your loss matches" if diag.given == "loss" else "your numbers match"
    lines = []
    if diag.match:
        lines.append(f"{what}: {describe(c, diag.loss, diag.given, diag.extra, diag.pred)}")
        if diag.also:
            lines.append("  (also within the digits given: "  # (a loss alone names no derivative: said once)
                         + "; ".join(dict.fromkeys(_also_words(a, diag.given if diag.pred else "loss")
                                                   for a in diag.also)) + ")")
    else:
        lines.append("no convention explains your numbers; the nearest is "
                     f"{describe(c, diag.loss, diag.given, diag.extra, diag.pred)}")
    lines += [cli_text(f) for f in diag.findings]
    columns = _width(out) if _sized(out) else None
    for line in lines:
        out.write("\n".join(_wrap(part, columns) for part in line.split("\n")) + "\n")


def _sized(out: IO[str]) -> bool:
    """Whether `out` has a width to wrap prose to: a terminal, or $COLUMNS given."""
    return (hasattr(out, "isatty") and out.isatty()) or os.environ.get("COLUMNS", "").strip().isdigit()


def _wrap(line: str, columns: int | None) -> str:
    """A line of prose wrapped at word boundaries to `columns` (None: as it is), later lines indented two more than
    its own indent."""
    indent = len(line) - len(line.lstrip(" "))
    if columns is None or len(line) <= columns:
        return line
    return _hanging(" " * indent, line.strip(), indent + 2, columns).rstrip("\n")


def _also_words(a: Any, given: str) -> str:
    opts = "".join(f", {k} = {_jsonable_tree(v)}" for k, v in a.options.items())
    return f"{a.convention} {a.reduction}" + ("" if given == "loss" else f" wrt {a.wrt}") + opts


def write_losses(fmt: str, out: IO[str]) -> None:
    """The losses, their options and the conventions that have each mode, as a listing or JSON."""
    rows: list[dict[str, Any]] = []
    for loss in LOSSES.values():
        modes = ["probs", "logits"] if loss.has_logits else ["values"]
        if loss.kind == "sequence":  # (a sequence loss's predictions without --from-logits are log-probabilities)
            modes[0] = "log-probs"
        support = {mode: [c.name for c in conventions.CONVENTIONS.values()
                          if (loss.name, mode if mode == "logits" else "probs") not in c.lacks] for mode in modes}
        options = (["--from-logits"] if loss.has_logits else []) + (["--labels"] if loss.kind == "rows" else []) + [
            cli_name(p.name) for p in loss.params]
        rows.append({"loss": loss.name, "summary": loss.summary, "options": options, "conventions": support}
                    | ({"inputs": [cli_name(i.name) for i in loss.inputs]} if loss.inputs else {}))
    if fmt == "json":
        out.write(json.dumps(rows) + "\n")
        return
    width = max([15] + [len(row["loss"]) + 2 for row in rows])  # (a name as long as categorical-focal keeps a gap)
    columns = _width(out)
    for row in rows:
        out.write(_hanging(f"{row['loss']:<{width}}", row["summary"], width, columns))
        lines = ([("inputs", " ".join(row["inputs"]))] if row.get("inputs") else []) + (
            [("options", " ".join(row["options"]))] if row["options"] else []) + [
            (mode, ", ".join(convs)) for mode, convs in row["conventions"].items()]
        for label, text in lines:
            out.write(_hanging(f"{'':<{width}}  {label}: ", text, width + 4, columns))


# what a line is not broken inside: a cell's indexes, "(2, 1)", and a short equation, "ε = 1e-06" (textwrap breaks
# at spaces alone; a no-break space stands in for these while it wraps)
TOGETHER = re.compile(r"\(\d+(?:, \d+)+\)|\S+ = \S+")
# and in a formula: a subscript or superscript's braces, a short parenthesis, a function and its argument
FORMULA_TOGETHER = re.compile(r"\{[^{}]*\}|\([^()]{1,24}\)|\b(?:log|exp|log1p|max|min|softmax) \S+")


def _formula(line: str, columns: int) -> str:
    """A formula of --explain wrapped at its spaces to `columns`, later lines indented by 2, never inside a
    subscript's braces, a short parenthesis or a function's application."""
    if len(line) <= columns:
        return line
    import textwrap

    return "\n".join(part.rstrip().replace("\xa0", " ") for part in textwrap.wrap(
        _held(FORMULA_TOGETHER, line), width=max(columns, 22), subsequent_indent="  ", break_long_words=False,
        break_on_hyphens=False))


def _held(together: re.Pattern[str], text: str) -> str:
    """`text` with a no-break space in each of `together`'s matches, so that textwrap breaks outside them."""
    return together.sub(lambda m: m.group(0).replace(" ", "\xa0"), text)


def _hanging(head: str, text: str, indent: int, columns: int) -> str:
    """`head` then `text`, wrapped at word boundaries to `columns` with later lines indented by `indent`."""
    import textwrap

    return textwrap.fill(_held(TOGETHER, text), width=max(columns, indent + 20), initial_indent=head,
                         subsequent_indent=" " * indent, break_long_words=False,
                         break_on_hyphens=False).replace("\xa0", " ") + "\n"


def write_jacobian(act: Any, x: np.ndarray, values: np.ndarray, jac: np.ndarray, fmt: str, out: IO[str]) -> None:
    """An activation's values and Jacobian, as JSON or as its formulas and a table."""
    if fmt == "json":
        out.write(json.dumps({"activation": act.name, "x": _jsonable(x), "values": _jsonable(values),
                              "jacobian": _jsonable(jac), "formulas": list(act.formulas)}) + "\n")
        return
    console = _console(out)
    for line in act.formulas:
        console.print(line, overflow="fold")
    console.print()
    console.print(f"{act.name}: values a and the Jacobian J[i, j] = ∂aᵢ/∂xⱼ", overflow="fold")
    headers = ["i", "x", "a", *(f"j={j}" for j in range(len(x)))]
    rows: list[list[Cell]] = [[str(i), float(x[i]), float(values[i]), *(float(v) for v in jac[i])]
                              for i in range(len(x))]
    print_table(console, headers, rows, keys=1)


# ---------------------------------------------------------------- tables that fit the terminal

# a cell: text as it is, a number, or a number with a mark after it (compare's "*")
Cell = str | float | tuple[float, str]
DIGITS = (10, 8, 6, 5, 4)  # significant digits, tried in turn until the table fits (then it is split)


def _cell(c: Cell, digits: int) -> str:
    if isinstance(c, str):
        return c
    value, mark = c if isinstance(c, tuple) else (c, "")
    return _num(value, digits=digits) + mark


def _table(headers: list[str], rows: list[list[str]], fold: bool = False) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for h in headers:
        table.add_column(h, justify="right", overflow="fold" if fold else "ellipsis", no_wrap=not fold)
    for row in rows:
        table.add_row(*row)
    return table


def print_table(console: Any, headers: list[str], rows: list[list[Cell]], keys: int) -> None:
    """The rows under their headers within the console's width, no number ever cut: with fewer significant digits
    (the exponent kept) while that is enough, else in groups of columns (the first `keys` columns, which say which
    element a row is, in each), else folded; and a line saying how to see every digit."""
    width = console.width
    for digits in DIGITS:
        text = [[_cell(c, digits) for c in row] for row in rows]
        table = _table(headers, text)
        if _natural(console, table) <= width:
            console.print(table)
            _say_digits(console, digits, width)
            return
    groups = _column_groups(console, headers, text, keys, width)
    for k, group in enumerate(groups):
        fits = _natural(console, _table([headers[i] for i in group], [[r[i] for i in group] for r in text]))
        console.print(_table([headers[i] for i in group], [[r[i] for i in group] for r in text], fold=fits > width))
        if k < len(groups) - 1:
            console.print()
    _say_digits(console, DIGITS[-1], width)


def _natural(console: Any, table: Any) -> int:
    """The width `table` takes when nothing in it is cut."""
    return int(console.measure(table, options=console.options.update_width(1 << 16)).maximum)


def _column_groups(console: Any, headers: list[str], text: list[list[str]], keys: int, width: int) -> list[list[int]]:
    """The value columns packed into as few tables as fit `width`, each led by the key columns."""
    groups: list[list[int]] = []
    group = list(range(keys))
    for i in range(keys, len(headers)):
        trial = group + [i]
        table = _table([headers[k] for k in trial], [[r[k] for k in trial] for r in text])
        if len(group) > keys and _natural(console, table) > width:
            groups.append(group)
            trial = list(range(keys)) + [i]
        group = trial
    return groups + [group]


def _say_digits(console: Any, digits: int, width: int) -> None:
    if digits < DIGITS[0]:
        console.print(f"(numbers shown to {digits} significant digits to fit {width} columns; --format csv or json, "
                      "or a wider terminal, shows them in full)", overflow="fold")


# ---------------------------------------------------------------- batch mode's writer and progress bar


class _Sink:
    """A binary stream for polars to write to that keeps the stream's own exception (polars turns a
    BrokenPipeError into a plain OSError)."""

    def __init__(self, out):
        self.out = out
        self.error = None

    def write(self, data) -> int:
        try:
            return self.out.write(data)
        except Exception as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.out.flush()


def rows_table(pieces: list[tuple[np.ndarray, np.ndarray]], divisor: int | float = 1, kept: list | None = None
               ) -> Any:
    """The CSV rows of `pieces` ((losses, grad) in turn: a row per sample of its losses then its gradient
    divided by `divisor`), after the text of the `kept` columns, as a table for write_table: a polars DataFrame
    when it is large, else a numpy array (or, with kept columns, the text itself)."""
    n = sum(grad.shape[0] for _, grad in pieces)
    nl = pieces[0][0].size // max(pieces[0][1].shape[0], 1)
    ng = pieces[0][1].shape[1]
    dtype = np.result_type(*(a for piece in pieces for a in piece))
    # one C-ordered matrix: polars copies its columns out faster than it gathers strided ones
    table = np.empty((n, nl + ng), dtype=dtype)
    row = 0
    for losses, grad in pieces:
        m = grad.shape[0]
        table[row:row + m, :nl] = losses.reshape(m, nl)
        if divisor == 1:
            table[row:row + m, nl:] = grad
        else:
            np.divide(grad, grad.dtype.type(divisor), out=table[row:row + m, nl:])
        row += m
    pl = _polars() if n > 2000 else None  # (a small batch does not pay for importing polars)
    if pl is None:
        return _kept_rows(table, kept).encode() if kept else table
    frame = pl.from_numpy(table)
    if kept:  # (the frame's own column names are never written: they need only be distinct)
        frame = pl.DataFrame({f"kept_{k}": text for k, text in enumerate(kept)}).hstack(frame)
    return frame


def write_table(out, table) -> None:
    """Write a rows_table to the binary stream `out`, every float in its shortest round-trip form."""
    if isinstance(table, bytes):
        out.write(table)
        return
    if isinstance(table, np.ndarray):
        out.write("".join(",".join(map(repr, r)) + "\n" for r in table.tolist()).encode())
        return
    sink = _Sink(out)
    try:
        table.write_csv(sink, include_header=False)  # into `out` itself: no intermediate bytes
    except Exception:
        if sink.error is not None:  # the stream's own error (a closed pipe), not polars' rewording of it
            raise sink.error from None
        raise


class Progress:
    """A progress bar on stderr, only when stderr is a terminal and the input turns out to be more than a moment's
    work: it appears after AFTER seconds (a pipe's size is unknown until its end, and most inputs are small)."""

    AFTER = 1.0

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.bar: Any = None
        self.wanted = (reader.size is None or reader.size > (64 << 20)) and sys.stderr.isatty()

    def _start(self) -> None:
        from rich import progress as rp
        from rich.console import Console

        self.bar = rp.Progress(
            rp.TextColumn("{task.description}"), rp.BarColumn(), rp.DownloadColumn(),
            rp.TextColumn("{task.fields[rate]}"), rp.TimeRemainingColumn(), console=Console(stderr=True),
            transient=True, redirect_stdout=False, redirect_stderr=False,
        )
        self.task = self.bar.add_task(self.reader.name, total=self.reader.size, rate="")
        self.bar.start()

    def update(self, rows: int, seconds: float) -> None:
        if self.wanted and self.bar is None and seconds >= self.AFTER:
            self._start()
        if self.bar:
            rate = f"{rows / max(seconds, 1e-9):,.0f} rows/s"
            self.bar.update(self.task, completed=self.reader.bytes_read, rate=rate)

    def close(self):
        if self.bar:
            self.bar.stop()


