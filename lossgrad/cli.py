"""The command line: each loss is a command built from the registry; one boundary turns errors into one line.

    lossgrad LOSS [OPTIONS]     the loss and its gradient, per element and reduced
    lossgrad losses             the losses, their options and the conventions that support each
"""

from __future__ import annotations

import inspect
import os
import sys
from dataclasses import dataclass, field
from typing import Optional

import typer

from .errors import InputError, LossgradError, OptionError

EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPT = 130

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Loss functions and their gradients: per element, reduced, and as each framework computes them.",
)


@dataclass
class Options:
    target: Optional[str] = None
    pred: Optional[str] = None
    csv: Optional[str] = None
    target_cols: Optional[str] = None
    pred_cols: Optional[str] = None
    from_logits: bool = False
    labels: str = "auto"
    reduction: str = "mean"
    convention: str = "exact"
    eps: Optional[float] = None
    dtype: str = "float64"
    format: Optional[str] = None
    output: Optional[str] = None
    explain: bool = False
    my_grad: Optional[str] = None
    my_loss: Optional[str] = None
    sample_weight: Optional[str] = None
    params: dict = field(default_factory=dict)  # the loss's own numbers (--delta, --beta)


def _opt(name, annotation, default, *decls, help, logits=False, rows=False):
    return (name, annotation, typer.Option(default, *decls, help=help), logits, rows)


# (name, type, typer option, only for losses with logits, only for row losses)
OPTIONS = [
    _opt("target", Optional[str], None, "-y", "--target", help="Targets: numbers separated by commas or spaces; ';' between rows."),
    _opt("pred", Optional[str], None, "-p", "--pred", help="Predictions (probabilities, logits with --from-logits, or values), same syntax."),
    _opt("csv", Optional[str], None, "--csv", help="A CSV file, one sample per row; '-' reads stdin (piped stdin is read without it)."),
    _opt("target_cols", Optional[str], None, "--target-cols", help="CSV target columns: names or 0-based indexes, comma separated, a:b ranges."),
    _opt("pred_cols", Optional[str], None, "--pred-cols", help="CSV prediction columns, as --target-cols."),
    _opt("sample_weight", Optional[str], None, "--sample-weight", help="Per-sample weights: with CSV input the "
         "column that holds them (a name or 0-based index); inline, one number per sample. Reduced as the "
         "convention does: exact divides the weighted sum by the sum of the weights, the frameworks by N."),
    _opt("from_logits", bool, False, "--from-logits", help="Predictions are logits: the sigmoid/softmax is part of the loss.", logits=True),
    _opt("labels", str, "auto", "--labels", help="Targets are class indexes (index), rows (onehot), or decided from their shape (auto).", rows=True),
    _opt("reduction", str, "mean", "-r", "--reduction", help="mean, sum or none."),
    _opt("convention", str, "exact", "-c", "--convention", help="Whose numbers: exact, keras, tf-keras, torch or optax."),
    _opt("eps", Optional[float], None, "--eps", help="The clipping epsilon of a clipping convention (Keras: 1e-7)."),
    _opt("dtype", str, "float64", "--dtype", help="float64 or float32 arithmetic."),
    _opt("format", Optional[str], None, "-f", "--format", help="table, json or csv [default: table on a terminal, else csv]."),
    _opt("output", Optional[str], None, "-o", "--output", help="Write to this file (atomically) instead of stdout."),
    _opt("explain", bool, False, "--explain", help="Print the formulas used before the results."),
]


def _signed(fn, name: str, options, leading=()):
    """`fn(**kw)` with the signature Typer reads: `leading` parameters, then the chosen options."""
    params = list(leading)
    for opt_name, annotation, info, _, _ in options:
        params.append(inspect.Parameter(opt_name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation))
    fn.__signature__ = inspect.Signature(params)
    fn.__annotations__ = {p.name: p.annotation for p in params}
    fn.__name__ = name
    return fn


def _param_options(params) -> list:
    return [_opt(p.name, bool, False, "--" + p.name.replace("_", "-"), help=p.help) if p.flag else
            _opt(p.name, Optional[str] if p.vector else Optional[float], None, "--" + p.name.replace("_", "-"),
                 help=p.help + ("" if p.default is None else f" [default: {p.default:g}]"))
            for p in params]


def _split_params(kw: dict, names) -> tuple[dict, dict]:
    return {k: v for k, v in kw.items() if k not in names}, {k: kw[k] for k in names if k in kw}


def _make_loss_command(name: str, has_logits: bool, rows: bool, params=()):
    names = [p.name for p in params]

    def command(**kw):
        kw, values = _split_params(kw, names)
        run_loss(name, Options(**kw, params=values))

    chosen = [o for o in OPTIONS if not ((o[3] and not has_logits) or (o[4] and not rows))] + _param_options(params)
    return _signed(command, name, chosen)


LOSS_ARG = inspect.Parameter(
    "loss", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str,
    default=typer.Argument(..., metavar="LOSS", help="The loss: see 'lossgrad losses'."),
)
_INPUTS = ("target", "pred", "csv", "target_cols", "pred_cols", "sample_weight", "from_logits", "labels", "dtype",
           "format", "output")
COMPARE_OPTIONS = [o for o in OPTIONS if o[0] in _INPUTS + ("reduction",)]
CHECK_OPTIONS = [o for o in OPTIONS if o[0] in _INPUTS] + [
    _opt("my_grad", Optional[str], None, "--my-grad", help="Your gradient, one value per prediction (required)."),
    _opt("my_loss", Optional[str], None, "--my-loss", help="Your loss value, if you have one."),
    _opt("convention", Optional[str], None, "-c", "--convention",
         help="The framework to explain your numbers against [default: each one that has the loss]."),
    _opt("reduction", Optional[str], None, "-r", "--reduction", help="That framework's reduction [default: mean]."),
]


def _register_losses() -> None:
    from .losses import LOSSES

    for loss in LOSSES.values():
        app.command(
            loss.name,
            help=f"{loss.summary[0].upper()}{loss.summary[1:]}.\n\nReproduces: {loss.reference}.",
            epilog=EXAMPLES.get(loss.name),
        )(_make_loss_command(loss.name, loss.has_logits, loss.kind == "rows", loss.params))


EXAMPLES = {
    "mse": "Example: lossgrad mse --target 0.11,0.01,0.59 --pred 0.12,0.35,0.61",
    "bce": "Examples: lossgrad bce --from-logits -y 0,1,0,0 -p -18.6,0.51,2.94,-12.8 ; "
    "lossgrad bce -c tf-keras -y 1,1,1 -p 1,1,0",
    "ce": "Examples: lossgrad ce --from-logits -y 2,0 -p '0.3,-1.2,2.0;1.5,0.2,-0.4' ; "
    "cat batch.csv | lossgrad ce --from-logits --format csv > per_row.csv",
}


@app.command("losses", help="List the losses, their options and the conventions that support each.")
def losses_command(
    format: Optional[str] = typer.Option(None, "-f", "--format", help="table or json [default: table]."),
):
    import json

    from .conventions import CONVENTIONS
    from .losses import LOSSES

    rows = []
    for loss in LOSSES.values():
        modes = ["probs", "logits"] if loss.has_logits else ["values"]
        support = {}
        for mode in modes:
            key = "probs" if mode == "values" else mode
            support[mode] = [c.name for c in CONVENTIONS.values() if (loss.name, key) not in c.lacks]
        options = (["--from-logits"] if loss.has_logits else []) + (["--labels"] if loss.kind == "rows" else []) + [
            "--" + p.name.replace("_", "-") for p in loss.params]
        rows.append({"loss": loss.name, "summary": loss.summary, "options": options, "conventions": support})
    if (format or "table") == "json":
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    if format not in (None, "table"):
        raise OptionError("--format", f"unknown format {format!r}; choose table or json")
    for row in rows:
        sys.stdout.write(f"{row['loss']:<15}{row['summary']}\n")
        if row["options"]:
            sys.stdout.write(f"{'':<15}  options: {' '.join(row['options'])}\n")
        for mode, convs in row["conventions"].items():
            sys.stdout.write(f"{'':<15}  {mode}: {', '.join(convs)}\n")


# ---------------------------------------------------------------- running a loss


def _open_csv(path: Optional[str]):
    """The CSV source: a file, '-' for stdin, or piped stdin when no input was named."""
    from .inputs import CsvReader

    if path is None or path == "-":
        if path is None and sys.stdin.isatty():
            raise InputError(
                "", "no input: give --target and --pred, --csv FILE, or pipe CSV into lossgrad (see --help)"
            )
        return CsvReader(sys.stdin.buffer, "<stdin>")
    try:
        f = open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise InputError("--csv", f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError("--csv", f"{path} is a folder, not a CSV file") from None
    except OSError as e:
        raise InputError("--csv", f"{path}: {e.strerror}") from None
    if os.path.isdir(path):
        raise InputError("--csv", f"{path} is a folder, not a CSV file")
    try:
        size = os.fstat(f.fileno()).st_size
    except OSError:
        size = None
    regular = size is not None and os.path.isfile(path)
    return CsvReader(f, path, size=size if size else None, path=path if regular else None)


def _input_size(path: Optional[str]) -> int:
    """The CSV input's size in bytes when it is a regular file (stdin redirected from one too), else 0."""
    import stat

    try:
        st = os.fstat(sys.stdin.fileno()) if path in (None, "-") else os.stat(path)
    except (OSError, ValueError):
        return 0  # (the reader says what is wrong with the input)
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _csv_layout(kind: str, labels: str, o: Options):
    """The CSV input's reader, its chunks (the first already read, to decide the layout) and the layout."""
    from .inputs import choose_layout

    reader = _open_csv(o.csv)
    chunks = reader.chunks()
    first = next(chunks, None)
    if first is None:
        raise InputError(reader.name, "has a header but no data rows")
    layout = choose_layout(reader, first, kind, labels, o.target_cols, o.pred_cols, o.sample_weight)
    if kind == "elementwise" and len(layout.target) != len(layout.pred):
        raise InputError(
            "--target-cols",
            f"selects {len(layout.target)} columns but --pred-cols {len(layout.pred)}; one target per prediction",
        )
    return reader, _chain(first, chunks), layout


def _domain_error(e, where: str):
    return InputError(where, f"{e.value!r} {e.reason}")


def _from_inline(ev, o: Options):
    from .api import as_2d, run
    from .inputs import inline_locator, parse_inline
    from .losses import DomainError
    from .render import Report

    if o.target is None or o.pred is None:
        missing, given = ("--pred", "--target") if o.pred is None else ("--target", "--pred")
        raise InputError(missing, f"is missing ({given} was given); give both, or a CSV with --csv")
    if o.csv is not None:
        raise InputError("--csv", "cannot be combined with --target/--pred; use one or the other")
    if o.target_cols or o.pred_cols:
        raise InputError("--target-cols" if o.target_cols else "--pred-cols", "applies to CSV input only")
    y, p = parse_inline(o.target, "--target"), parse_inline(o.pred, "--pred")
    y2, p2, _ = as_2d(ev.loss.name, y, p)
    if not ev.rows_loss and y2.shape != p2.shape:
        raise InputError(
            "--target",
            f"has {_count(y)} but --pred has {_count(p)}; they must match, one target per prediction",
        )
    if ev.rows_loss and y.ndim == 1 and p.ndim == 2 and y.size != p.shape[0]:
        raise InputError(
            "--target",
            f"has {y.size} class labels but --pred has {p.shape[0]} rows; give one label per row "
            "(or ';' rows of one-hot targets)",
        )
    locate = inline_locator(y, p, y2, p2)
    w = _inline_weights(o.sample_weight, p2.shape[0])
    try:
        result = run(ev, y2, p2, w)
    except DomainError as e:
        raise _domain_error(e, f"--sample-weight: value {e.row + 1}" if e.which == "weight"
                            else locate(e.which, e.row, e.col)) from None
    flat = not ev.rows_loss and p.ndim == 1
    names = [str(i) for i in range(p2.shape[1])]
    return Report(result=result, pred=p2, pred_names=names, flat=flat, source="inline")


def _inline_weights(spec, samples: int):
    """--sample-weight with inline input: one number per sample."""
    if spec is None:
        return None
    from .inputs import parse_inline

    w = parse_inline(spec, "--sample-weight").reshape(-1)
    if w.size != samples:
        raise InputError("--sample-weight", f"has {w.size} weights but there are {samples} samples; give one per "
                                            "sample")
    return w


def _count(a) -> str:
    return f"{a.size} values" if a.ndim == 1 else f"{a.shape[0]} rows of {a.shape[1]}"


def _from_csv(ev, o: Options):
    import numpy as np

    from .api import assemble
    from .inputs import column_names
    from .render import Report

    reader, chunks, layout = _csv_layout(ev.loss.kind, ev.labels, o)
    if layout.labels:
        ev.labels = layout.labels
    parts_list, ys, labels, preds = [], [], [], []
    for chunk in chunks:
        parts, y_used, lab, p = ev.csv_chunk(chunk, layout)
        parts_list.append(parts)
        ys.append(y_used)
        preds.append(p)
        labels.append(lab)
    result = assemble(ev, parts_list, ys, labels)
    pred = np.concatenate(preds)
    flat = not ev.rows_loss and pred.shape[1] == 1
    return Report(result=result, pred=pred, pred_names=column_names(reader.header, layout.pred), flat=flat, source=reader.name)


def _chain(first, rest):
    yield first
    yield from rest


def _load_arrays(loss: str, o: Options):
    """All the input as 2-D arrays (compare and check hold it in memory), with a locator for domain errors."""
    import numpy as np

    from .api import as_2d
    from .inputs import inline_locator, parse_inline
    from .losses import LOSSES

    if loss not in LOSSES:
        raise OptionError("LOSS", f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    kind = LOSSES[loss].kind
    if o.target is not None or o.pred is not None:
        if o.target is None or o.pred is None:
            missing, given = ("--pred", "--target") if o.pred is None else ("--target", "--pred")
            raise InputError(missing, f"is missing ({given} was given)")
        y, p = parse_inline(o.target, "--target"), parse_inline(o.pred, "--pred")
        y2, p2, shape = as_2d(loss, y, p)
        if kind == "elementwise" and y2.shape != p2.shape:
            raise InputError("--target", f"has {_count(y)} but --pred has {_count(p)}; they must match")
        locate = inline_locator(y, p, y2, p2)
        return y2, p2, shape, _weights_locator(locate, lambda r, c: f"--sample-weight: value {r + 1}"), \
            _inline_weights(o.sample_weight, p2.shape[0])
    reader, chunks, layout = _csv_layout(kind, o.labels, o)
    chunks = list(chunks)
    data = np.concatenate([c.data for c in chunks])
    starts = np.cumsum([0] + [c.data.shape[0] for c in chunks])
    if layout.labels and o.labels == "auto":
        o.labels = layout.labels

    def locate(which, row, col):
        file_col = layout.weight if which == "weight" else (layout.target if which == "target" else layout.pred)[col]
        i = int(np.searchsorted(starts, row, side="right")) - 1
        return chunks[i].where(row - int(starts[i]), file_col)

    p2 = data[:, layout.pred]
    w = None if layout.weight is None else data[:, layout.weight]
    return data[:, layout.target], p2, p2.shape, locate, w


def _weights_locator(locate, weight_where):
    def where(which, row, col):
        return weight_where(row, col) if which == "weight" else locate(which, row, col)

    return where


def _domain_guard(fn, locate):
    from .losses import DomainError

    try:
        return fn()
    except DomainError as e:
        raise _domain_error(e, locate(e.which, e.row, e.col)) from None


def run_compare(o: Options, loss: str) -> None:
    from .diagnose import compare
    from .render import check_format, open_output, write_comparison

    fmt = check_format(o.format) if o.format else ("table" if o.output in (None, "-") and sys.stdout.isatty() else "json")
    if fmt == "csv":
        raise OptionError("--format", "compare writes table or json")
    y2, p2, shape, locate, w = _load_arrays(loss, o)
    comp = _domain_guard(lambda: compare(loss, y2, p2, from_logits=o.from_logits, reduction=o.reduction,
                                         labels=o.labels, dtype=o.dtype, shape=shape, params=o.params, w=w), locate)
    with open_output(o.output) as out:
        write_comparison(comp, p2, y2, fmt, out)


def run_check(o: Options, loss: str) -> int:
    from .diagnose import check
    from .inputs import parse_inline
    from .render import check_format, open_output, write_diagnosis

    if o.my_grad is None:
        raise OptionError("--my-grad", "is required: give your gradient, one value per prediction")
    fmt = check_format(o.format) if o.format else ("table" if o.output in (None, "-") and sys.stdout.isatty() else "json")
    if fmt == "csv":
        raise OptionError("--format", "check writes table or json")
    if o.convention is not None:
        from .api import _choice
        from .conventions import CONVENTIONS

        _choice("--convention", o.convention, CONVENTIONS, "convention")
    if o.reduction is not None:
        from .api import _choice
        from .reduction import REDUCTIONS

        _choice("--reduction", o.reduction, REDUCTIONS, "reduction")
    y2, p2, shape, locate, w = _load_arrays(loss, o)
    grad = parse_inline(o.my_grad, "--my-grad")
    tokens = [t for t in __import__("re").split(r"[,;\s]+", o.my_grad.strip()) if t]
    my_loss = None
    if o.my_loss is not None:
        from .diagnose import tolerance

        v = parse_inline(o.my_loss, "--my-loss")
        if v.size != 1:
            raise InputError("--my-loss", "takes one number, the reduced loss")
        my_loss = (float(v.reshape(-1)[0]), float(tolerance([o.my_loss.strip()], v.reshape(-1))[0]))
    diag = _domain_guard(lambda: check(loss, y2, p2, grad.reshape(-1), tokens, from_logits=o.from_logits,
                                       labels=o.labels, against=o.convention, reduction=o.reduction,
                                       my_loss=my_loss, dtype=o.dtype, shape=shape, params=o.params, w=w), locate)
    with open_output(o.output) as out:
        write_diagnosis(diag, fmt, out)
    return 0 if diag.match else 1


def run_loss(name: str, o: Options) -> None:
    from .api import Evaluator
    from .render import check_format, csv_header, csv_rows, default_format, open_output, to_json, to_table, value_line

    fmt = check_format(o.format) if o.format else default_format(o.output)

    def make_ev():
        return Evaluator(name, sample_weight=o.sample_weight is not None, from_logits=o.from_logits,
                         reduction=o.reduction, convention=o.convention, eps=o.eps, dtype=o.dtype, labels=o.labels,
                         **o.params)

    ev = make_ev()
    inline = o.target is not None or o.pred is not None
    if fmt == "csv" and not inline:
        return _stream_csv(make_ev, o)
    rep = _from_inline(ev, o) if inline else _from_csv(ev, o)
    r = rep.result
    for w in r.warnings:
        sys.stderr.write(f"warning: {w}\n")
    explain = ev.loss.formulas(ev.from_logits, ev.conv, **ev.params) + _reduction_formula(r) if o.explain else None
    if explain and fmt == "csv":
        sys.stderr.write("".join(line + "\n" for line in explain))
    with open_output(o.output) as out:
        if fmt == "json":
            out.write(to_json(rep, explain))
        elif fmt == "csv":
            out.write(csv_header(r.per_sample, rep.pred_names))
            out.write(csv_rows(r.losses, r.grad.reshape(rep.pred.shape)))
        else:
            to_table(rep, out, explain)
    if fmt == "csv":
        sys.stderr.write(value_line(r) + "\n")


def _stream_csv(make_ev, o: Options) -> None:
    """CSV in, CSV out, block by block (batch mode). `make_ev()` makes the evaluator (a fresh one if the stream
    must be run again)."""
    import numpy as np

    from .api import Result
    from .batch import Miscounted
    from .render import open_output, value_line

    ev = make_ev()
    # a mean's N is the row count unless rows are left out or weighted (--ignore-index, --class-weights, exact's
    # --sample-weight): then only the end knows it
    countable = ev.params.get("ignore_index") is None and ev.params.get("class_weights") is None and not (
        ev.sample_weight and ev.conv.sample_weight_mean == "sum-of-weights")
    counted = ev.reduction == "mean" and countable and o.csv not in (None, "-") and os.path.isfile(o.csv)
    with open_output(o.output, binary=True) as out:
        start = _rewind_point(out)
        # N from a quick count of the file's lines, if the output can be rewritten should blank lines make it
        # wrong; else from a count that checks every line first (or, for stdin, from a spool)
        how = None if not counted else ("quick" if start is not None else "checked")
        try:
            explain = _stream_once(ev, o, out, how)
        except Miscounted as m:
            out.seek(start)
            out.truncate()
            ev = make_ev()
            explain = _stream_once(ev, o, out, m.rows)
    value, _ = ev.finish()
    r = Result(loss=ev.loss.name, convention=ev.conv.name, from_logits=ev.from_logits, reduction=ev.reduction,
               dtype=ev.dtype_name, n=ev.n, value=value, losses=np.empty(0), grad=np.empty(0),
               per_sample=ev.per_sample, weight_note=ev.weight_note)
    for w in ev.warnings():
        sys.stderr.write(f"warning: {w}\n")
    if explain:
        sys.stderr.write("".join(line + "\n" for line in explain + _reduction_formula(r)))
    sys.stderr.write(value_line(r) + "\n")


def _rewind_point(out):
    """The offset to go back to if the output must be written again: a regular file's, else None (a pipe)."""
    import stat

    try:
        if not stat.S_ISREG(os.fstat(out.fileno()).st_mode):
            return None
        out.flush()
        return out.tell()
    except (OSError, ValueError, AttributeError):
        return None


def _stream_once(ev, o: Options, out, how):
    """One pass over the CSV input into `out`. `how`: None (no N needed beforehand, or spooled), "quick" or
    "checked" (count the file's lines on another thread while the reader starts), or the row count itself."""
    from .batch import prepare_writer, stream
    from .inputs import FAST_BYTES, column_names, count_lines, quick_count_lines
    from .render import csv_header

    if _input_size(o.csv) > FAST_BYTES:  # (a pipe's size is unknown, and it may be small)
        prepare_writer()
    counting = None
    if how in ("quick", "checked"):
        from concurrent.futures import ThreadPoolExecutor

        counting = ThreadPoolExecutor(max_workers=1)
        lines = counting.submit(quick_count_lines if how == "quick" else count_lines, o.csv)
    try:
        reader, chunks, layout = _csv_layout(ev.loss.kind, ev.labels, o)
        if layout.labels:
            ev.labels = layout.labels
        header = csv_header(ev.per_sample_for(len(layout.pred)), column_names(reader.header, layout.pred))
        explain = ev.loss.formulas(ev.from_logits, ev.conv, **ev.params) if o.explain else None
        rows = how if isinstance(how, int) else None
        if counting is not None:
            # the lines up to the header (or before the first data row) are not samples
            skip = reader.header_line if reader.header is not None else reader.header_line - 1
            rows = counting.submit(lambda: None if lines.result() is None else lines.result() - skip)
        stream(ev, reader, layout, out, chunks, header.encode(), rows)
    finally:
        if counting is not None:
            counting.shutdown(wait=True)
    return explain


def _reduction_formula(r) -> list[str]:
    if r.weight_note and r.reduction != "none":
        lines = ["ℓᵢ ← wᵢ·ℓᵢ, ∂ℓᵢ/∂xᵢ ← wᵢ·∂ℓᵢ/∂xᵢ  (sample weights; the losses shown are the weighted ones)"]
        if r.reduction == "sum":
            return lines + ["J = Σᵢ wᵢℓᵢ"]
        if "sum of the sample weights" in r.weight_note:
            return lines + [f"J = Σᵢ wᵢℓᵢ / Σᵢ wᵢ,  ∂J/∂xᵢ = wᵢ·(∂ℓᵢ/∂xᵢ) / Σᵢ wᵢ,  Σᵢ wᵢ = {r.n}"]
        return lines + [f"J = Σᵢ wᵢℓᵢ / N,  ∂J/∂xᵢ = wᵢ·(∂ℓᵢ/∂xᵢ) / N,  N = {r.n}  (Keras' sum_over_batch_size; "
                        "(loss·w).mean() in PyTorch and optax)"]
    if r.reduction == "mean":
        return [f"J = (1/N) Σᵢ ℓᵢ,  ∂J/∂xᵢ = (∂ℓᵢ/∂xᵢ) / N,  N = {r.n}"]
    if r.reduction == "sum":
        return ["J = Σᵢ ℓᵢ,  ∂J/∂xᵢ = ∂ℓᵢ/∂xᵢ"]
    return ["no reduction: each ℓᵢ and its own derivative ∂ℓᵢ/∂xᵢ"]


def _all_params():
    from .losses import LOSSES

    seen = {}
    for loss in LOSSES.values():
        for p in loss.params:
            seen.setdefault(p.name, p)
    return list(seen.values())


def _options_of(kw: dict) -> Options:
    kw = {k: v for k, v in kw.items() if k != "loss"}
    kw, values = _split_params(kw, [p.name for p in _all_params()])
    return Options(**kw, params=values)


def _compare(**kw):
    run_compare(_options_of(kw), kw["loss"])


def _check(**kw):
    raise typer.Exit(run_check(_options_of(kw), kw["loss"]))


app.command(
    "compare",
    help="The same inputs under every convention, side by side: value and gradients, the cells that differ from the "
    "exact mathematics marked *, and one line per difference saying why.",
    epilog="Example: lossgrad compare bce -y 0,1,0,0 -p 8.4e-9,0.62,0.95,2.8e-6",
)(_signed(_compare, "compare", COMPARE_OPTIONS + _param_options(_all_params()), [LOSS_ARG]))
app.command(
    "check",
    help="Which convention, reduction and derivative explain your hand-computed gradient (and loss), and in plain "
    "sentences how it departs from each framework's. Exit status 0 when one explains it, 1 when none does.",
    epilog="Example: lossgrad check bce -y 0,1,0,0 -p 8.358e-09,0.6248,0.9498,2.761e-06 --my-grad 1.0,-1.6,19.9,1.0",
)(_signed(_check, "check", CHECK_OPTIONS + _param_options(_all_params()), [LOSS_ARG]))

@app.command("jacobian", help="An activation's values and its full Jacobian matrix ∂aᵢ/∂xⱼ (softmax: diag(s) − s·sᵀ): "
             "the step between a gradient with respect to probabilities and one with respect to logits.",
             epilog="Example: lossgrad jacobian softmax --x 1,2,3")
def jacobian_command(
    activation: str = typer.Argument(..., metavar="ACTIVATION", help="softmax, sigmoid, tanh or relu."),
    x: Optional[str] = typer.Option(None, "--x", "-x", help="The input vector: numbers separated by commas or spaces."),
    format: Optional[str] = typer.Option(None, "-f", "--format", help="table or json [default: table on a terminal, "
                                         "else json]."),
):
    import json

    from .activations import ACTIVATIONS
    from .inputs import parse_inline
    from .render import _jsonable, write_jacobian

    if activation not in ACTIVATIONS:
        raise OptionError("ACTIVATION", f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    if x is None:
        raise OptionError("--x", "is required: the input vector, e.g. --x 1,2,3")
    v = parse_inline(x, "--x")
    if v.ndim != 1:
        raise InputError("--x", "takes one vector (no ';' rows)")
    fmt = format or ("table" if sys.stdout.isatty() else "json")
    if fmt not in ("table", "json"):
        raise OptionError("--format", f"unknown format {fmt!r}; choose table or json")
    act = ACTIVATIONS[activation]
    values, jac = act.fn(v)
    if fmt == "json":
        sys.stdout.write(json.dumps({"activation": activation, "x": _jsonable(v), "values": _jsonable(values),
                                     "jacobian": _jsonable(jac), "formulas": list(act.formulas)}) + "\n")
    else:
        write_jacobian(act, v, values, jac, sys.stdout)


_register_losses()


# ---------------------------------------------------------------- the one error boundary


def main(argv: Optional[list] = None) -> None:
    """Entry point: runs the app, turns every failure into one line and an exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    from typer._click import exceptions as click_exc  # typer >= 0.26 vendors click

    code = 0
    try:
        command, prog, rest = _click_command(args)
        rv = command.main(args=rest, prog_name=prog, standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except LossgradError as e:
        code = _error(str(e))
    except click_exc.NoArgsIsHelpError as e:
        sys.stdout.write(e.format_message() + "\n") if hasattr(e, "format_message") else None
        code = 0
    except click_exc.UsageError as e:
        code = _error(_usage_message(e))
    except (KeyboardInterrupt, typer.Abort):
        code = EXIT_INTERRUPT
    except BrokenPipeError:
        _quiet_stdout()
        code = 0
    except SystemExit as e:
        if not isinstance(e.__context__, BrokenPipeError):
            raise
        # (click turns a closed pipe into exit status 1; a reader that stops early is no failure here either)
        _quiet_stdout()
        code = 0
    except Exception as e:  # a bug: one line, the traceback only with --debug
        if debug:
            raise
        code = EXIT_INTERNAL
        sys.stderr.write(
            f"error: internal failure ({type(e).__name__}: {e}); this is a bug in lossgrad: please report it "
            "with the command line (rerun with --debug for the traceback)\n"
        )
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    if argv is None:
        # the command line's own process: everything is written and closed, so skip the interpreter's teardown
        # (freeing polars and numpy takes a tenth of a second after a large batch)
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _click_command(args: list) -> tuple:
    """The click command to run, its program name and its arguments: only the subcommand named first when
    there is one (building all of them from their signatures takes longer than a small batch's own work),
    else the whole group (its help, and suggestions for a misspelt command)."""
    import copy

    if args and not args[0].startswith("-"):
        for info in app.registered_commands:
            if info.name == args[0]:
                one = copy.copy(app)
                one.registered_commands = [info]  # a Typer app of one command is that command
                return typer.main.get_command(one), f"lossgrad {args[0]}", args[1:]
    return typer.main.get_command(app), "lossgrad", args


def _error(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return EXIT_USAGE


def _usage_message(e) -> str:
    msg = e.format_message()
    cmd = getattr(e, "ctx", None)
    if cmd is not None and cmd.command_path and "No such command" not in msg:
        return f"{msg} (see '{cmd.command_path} --help')"
    if "No such command" in msg:
        import re

        from .losses import LOSSES

        m = re.match(r"No such command '([^']*)'\.?(?: Did you mean '([^']*)'\?)?", msg)
        if m:
            msg = f"no such loss or command {m.group(1)!r}" + (f" (did you mean {m.group(2)!r}?)" if m.group(2) else "")
        return f"{msg}; the losses are {', '.join(LOSSES)}, the other commands compare, check, jacobian, losses"
    return msg


def _quiet_stdout() -> None:
    # the reader went away (| head): point stdout at /dev/null so the interpreter's final flush is silent
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
