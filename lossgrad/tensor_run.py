"""A loss over tensor files: inputs of any leading shape read block by block, evaluated, reduced by one
Accumulator, and written out as tensor files shaped like the inputs.

The class axis (ce, nll) or the sample's axis (kl, cosine, and Keras' mean over a sample's outputs) is the last
one; every other axis is a sample's place. A block is as many of those rows as fit in about BLOCK_BYTES of
float64 work arrays, so memory stays flat however large the tensors are.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import errors, render, tensor_out
from .api import Result, accumulate, batch_value, mean_part, micro_divisors, micro_needs_mean, micro_summary, summary
from .batch import kernel_mean, n_is_weighed
from .errors import NOT_FINITE, DomainError, InputError, OptionError, cli_name
from .evaluation import Block, evaluate, least_rows, spans, with_batch_totals
from .inputs import YNN_ROWS, Batch, parse_inline
from .options import Setup, per_length, setup
from .reduction import Accumulator, Slices, formulas, micro_formulas, split_rows
from .tensors import ArrayShard, Tensor, is_tensor_file, open_tensor

# the most values of its slices' value_parts a tensor file's batch holds for its reduced value (Keras' and optax's
# sums depend on the whole batch; PyTorch's is summed as it comes): beyond, lossgrad's own sum, with a warning
TENSOR_HELD = 1 << 26
BLOCK_BYTES = 8 << 20  # the float64 work arrays of one block of rows (larger blocks were slower: cache)
# a block holds a multiple of this many rows: whole packets of 8 values however wide its rows, as the batch's
# rows from the first hold them, so a kernel that takes the flattened batch in packets (TensorFlow's element-wise
# kernels) leaves its scalar remainder to the batch's last block, where the batch has it
ALIGN_ROWS = 8
SHOWN = 5  # sequences (or samples) shown at each end of the table
HALF = ("float16", "bfloat16")


def _tensor(kw: dict[str, Any], key: str) -> Tensor:
    text = kw.get(key)
    option = "{" + key + "}"
    if text is None:
        raise InputError(option, "is missing: tensor inputs need both {pred} and {target} (files, or FILE:KEY)")
    if is_tensor_file(text):
        return open_tensor(text, option)
    return Tensor(text, [ArrayShard(parse_inline(text, option))], ["inline"], option)


@dataclass
class Geometry:
    """How the tensors are read as rows: the predictions' rows of `width`, the targets' of `target_width`."""

    rows: int
    width: int
    target_width: int
    labels: str | None  # ce, nll: "index" or "onehot"
    losses_shape: tuple[int, ...] = ()


def geometry(s: Setup, pred: Tensor, target: Tensor, weight: Tensor | None) -> Geometry:
    """The layout of predictions and targets of any leading shape, or an InputError saying what would match."""
    shape, tshape = pred.shape, target.shape
    if not shape or pred.size == 0:
        raise InputError("{pred}", f"{pred.spec} is {'empty' if shape else 'a single number'}; give an array")
    row_axis = s.rows_loss or s.loss.last_axis is not None
    width = shape[-1] if row_axis or len(shape) > 1 else 1
    if s.params.get("over_batch"):  # (one sample of every value: one row, read and evaluated whole)
        width = pred.size
    labels = None
    if s.rows_loss:
        if tshape == shape[:-1] or (tshape in ((), (1,)) and len(shape) == 1):
            labels = "index"
        elif tshape == shape:
            labels = "onehot"
        else:
            raise InputError("{target}", f"has shape {list(tshape)} but {{pred}} has {list(shape)}; give one class "
                                         f"label per row of the last axis (shape {list(shape[:-1])}) or targets "
                                         f"shaped like the predictions")
    elif tshape != shape:
        raise InputError("{target}", f"has shape {list(tshape)} but {{pred}} has {list(shape)}; they must match, "
                                     "one target per prediction")
    rows = pred.size // width
    if weight is not None and weight.size != rows:
        leading = list(shape[:-1] if width > 1 else shape)
        raise InputError("{sample_weight}", f"has {errors.counted(weight.size, 'weight')} (shape "
                                            f"{list(weight.shape)}) but there are {errors.counted(rows, 'sample')} "
                                            f"(shape {leading}); give one per sample")
    g = Geometry(rows, width, 1 if labels == "index" else width, labels)
    per_sample = s.with_labels(labels).per_sample_for(width)
    over_batch = bool(s.params.get("over_batch"))  # (its one loss: shape [1])
    g.losses_shape = (shape[:-1] if len(shape) > 1 and not over_batch else (1,)) if per_sample else shape
    return g


def extras(s: Setup, kw: dict[str, Any], pred: Tensor, g: Geometry) -> dict[str, tuple[Tensor, int]]:
    """The loss's extra inputs (files, or numbers as {pred} takes them), each with the width of its rows: the
    predictions' (one value per prediction) or 1 (one per sample, where the input may be)."""
    out = {}
    for i in s.loss.inputs:
        option = "{" + i.name + "}"
        if kw.get(i.name) is None:
            raise InputError(option, f"is missing: {s.loss.name} takes {i.help[0].lower()}{i.help[1:]}")
        t = _tensor(kw, i.name)
        if i.per_prediction and t.shape == pred.shape:
            out[i.name] = (t, g.width)
        elif i.per_sample and t.size == g.rows and (t.shape == tuple(pred.shape[:-1]) or len(t.shape) <= 1):
            out[i.name] = (t, 1)
        else:
            raise InputError(option, f"has shape {list(t.shape)} but {{pred}} has {list(pred.shape)}; give "
                                     f"{i.forms('shape ' + str(list(pred.shape[:-1] or [g.rows])))}")
    return out


def choose_dtype(pred: Tensor, given: str | None) -> str:
    """The results' dtype: --dtype when given, else the predictions' own (float32, float16, bfloat16), float64
    for any other."""
    name = pred.dtype.name
    return given or (name if name in ("float32", *HALF) else "float64")


def half_setup(name: str, dtype: str, options: dict[str, Any], notes: list[str] | None) -> Setup:
    """The setup in `dtype`; half-precision predictions whose convention has no kernels of that dtype are
    computed in float32 instead, with a note saying why (`notes` None: the dtype was asked for, so no fallback)."""
    try:
        return setup(name, dtype=dtype, **options)
    except OptionError as e:
        if dtype not in HALF or notes is None or options.get("autocast"):  # (autocast: the half dtype is the point)
            raise
        notes.append(f"{{pred}} is {dtype}: computed in float32, as {e.message(cli_name)}")
        return setup(name, dtype="float32", **options)


@dataclass
class Groups:
    """Per sequence (the first axis of the losses, when they have two or more): tokens counted, the sum and the
    maximum of their losses; otherwise the first and last losses."""

    size: int  # losses per sequence (0: no sequences)
    count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    total: np.ndarray = field(default_factory=lambda: np.zeros(0))
    top: np.ndarray = field(default_factory=lambda: np.zeros(0))
    head: list[float] = field(default_factory=list)
    tail: list[float] = field(default_factory=list)
    seen: int = 0

    @classmethod
    def of(cls, shape: tuple[int, ...]) -> Groups:
        if len(shape) < 2:
            return cls(0)
        n = shape[0]
        return cls(math.prod(shape[1:]), np.zeros(n, np.int64), np.zeros(n), np.full(n, -np.inf))

    def add(self, losses: np.ndarray, counted: np.ndarray) -> None:
        """The next losses (flat) and whether each counts (ignore_index leaves some out)."""
        start, self.seen = self.seen, self.seen + losses.size
        if not self.size:
            self.head += losses[: 2 * SHOWN + 2 - len(self.head)].astype(float).tolist()
            self.tail = (self.tail + losses[-SHOWN:].astype(float).tolist())[-SHOWN:]
            return
        group = (np.arange(start, self.seen) // self.size)
        firsts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        ids = group[firsts]
        with np.errstate(invalid="ignore"):
            self.count[ids] += np.add.reduceat(counted.astype(np.int64), firsts)
            self.total[ids] += np.add.reduceat(np.where(counted, losses, 0).astype(np.float64), firsts)
            self.top[ids] = np.maximum(self.top[ids], np.maximum.reduceat(np.where(counted, losses, -np.inf),
                                                                          firsts))

    def flat_rows(self) -> list[tuple[int, float]]:
        """(index, loss) of the first and last losses."""
        if self.seen <= len(self.head):
            return list(enumerate(self.head))
        last = range(self.seen - len(self.tail), self.seen)
        return [*enumerate(self.head[:SHOWN]), *zip(last, self.tail, strict=True)]

    def rows(self) -> list[tuple[int, int, float, float]]:
        """(sequence, tokens counted, mean loss, max loss) of the first and last sequences."""
        n = self.count.size
        shown = list(range(n)) if n <= 2 * SHOWN + 2 else [*range(SHOWN), *range(n - SHOWN, n)]
        with np.errstate(invalid="ignore", divide="ignore"):
            return [(i, int(self.count[i]), float(self.total[i] / self.count[i]) if self.count[i] else math.nan,
                     float(self.top[i]) if self.count[i] else math.nan) for i in shown]


@dataclass
class Run:
    """What a tensor run read, computed and wrote: the summary render shows."""

    result: Any
    pred: Tensor
    target: Tensor
    geometry: Geometry
    groups: Groups
    notes: list[str]
    written: list[tuple[str, tuple[int, ...], str]] = field(default_factory=list)  # (name, shape, dtype)
    output: str | None = None
    cut: int = 0  # --micro-batches: the rows of each micro-batch (0: none)
    micro: Any = None  # api.Micro: the micro-batches' means beside the true mean
    extras: dict[str, tuple[Tensor, int]] = field(default_factory=dict)  # extra input: (tensor, row width)


def run(name: str, kw: dict[str, Any], given_dtype: str | None, params: dict[str, Any]) -> None:
    """lossgrad LOSS with tensor files: summary on stderr (or JSON on stdout), arrays to -o FILE."""
    if kw.get("csv") is not None:
        raise InputError("{csv}", "cannot be combined with tensor files in {pred}/{target}; use one or the other")
    fmt = kw.get("format") or "table"
    if fmt not in ("table", "json"):
        raise OptionError("format", f"tensor inputs print a summary as table or json, not {fmt}; the per-element "
                                    "losses and gradients go to -o FILE.npz (.npy, .safetensors, .parquet)")
    out_path = kw.get("output")
    tensor_out.check_output(out_path)
    pred, target = _tensor(kw, "pred"), _tensor(kw, "target")
    weight = None if kw.get("sample_weight") is None else _tensor(kw, "sample_weight")
    notes: list[str] = []
    options: dict[str, Any] = {k: kw[k] for k in ("from_logits", "reduction", "convention", "eps", "labels",
                                                  "autocast", "jit")
                               if k in kw}
    s = half_setup(name, choose_dtype(pred, given_dtype), {"sample_weight": weight is not None, **options, **params},
                   notes if given_dtype is None else None)
    g = geometry(s, pred, target, weight)
    s = s.with_labels(g.labels)
    inputs = [(f"{t.option} {f}", f) for t in (pred, target, weight) if t is not None for f in t.files
              if f != "inline"]
    r = Run(None, pred, target, g, Groups.of(g.losses_shape), notes, output=out_path, extras=extras(s, kw, pred, g))
    inputs += [(f"{t.option} {f}", f) for t, _ in r.extras.values() for f in t.files if f != "inline"]
    if kw.get("micro_batches") is not None:
        micro_needs_mean(s)
        r.cut = split_rows(g.rows, kw["micro_batches"], tuple(pred.shape[:-1]) if len(pred.shape) > 1 else None)
    if out_path in (None, "-"):
        r.output = None
        r.result, _ = _evaluate(s, r, weight, None)
    else:
        _write(s, r, weight, inputs, kw.get("no_grad", False))
    render.warn(r.result.warnings + (r.micro.warnings if r.micro else []))
    if kw.get("explain"):  # (on stderr: stdout has the summary, or nothing)
        res = r.result
        sys.stderr.write("".join(line + "\n" for line in s.loss.formulas(s.from_logits, s.conv, **s.params)
                                 + formulas(res.reduction, res.n, res.weight_note, per_length(s))
                                 + (micro_formulas(r.micro.k) if r.micro else [])))
    if fmt == "table" and r.output is not None:  # (stdout is free for other things: the summary goes to stderr)
        sys.stderr.write(render.tensor_summary(r))
        return
    with render.open_output(None) as out:
        render.write_tensor_run(r, fmt, out)


def _write(s: Setup, r: Run, weight: Tensor | None, inputs: list[tuple[str, str]], no_grad: bool) -> None:
    """Evaluate into spools beside the output, then write the output file from them (atomically)."""
    assert r.output is not None
    spools: list[tensor_out.Spool] = []
    try:
        with render.open_output(r.output, binary=True, inputs=inputs) as out:
            spools = _spools(r, r.output, no_grad, s.loss.target_grad)
            r.result, arrays = _evaluate(s, r, weight, spools)
            names = tensor_out.write(tensor_out.output_format(r.output) or "", arrays, out)
            r.written = [(a.name, a.shape, a.dtype.name) for a in arrays if a.name in names]
    finally:
        for spool in spools:
            spool.close()


def _spools(r: Run, path: str, no_grad: bool, target_grad: bool) -> list[tensor_out.Spool]:
    folder = os.path.dirname(os.path.realpath(path))
    spools = [tensor_out.Spool("losses", r.geometry.losses_shape, folder)]
    if not no_grad and tensor_out.output_format(path) != ".npy":
        spools.append(tensor_out.Spool("grad", r.pred.shape, folder))
        spools.append(tensor_out.Spool("grad_logits", r.pred.shape, folder))  # (kept where the loss has one)
        if target_grad:
            spools.append(tensor_out.Spool("grad_target", r.target.shape, folder))
        spools += [tensor_out.Spool(f"grad_{k}", t.shape, folder) for k, (t, _) in r.extras.items()]
    return spools


def _blocks(s: Setup, r: Run, weight: Tensor | None) -> Iterator[tuple[int, list[Block], np.ndarray]]:
    """(first row, evaluated slices, which samples count) for each block of rows."""
    g = r.geometry
    # (a loss coupling every row takes the batch as one block; the others blocks of whole packets, ALIGN_ROWS)
    step = max(1, g.rows) if s.loss.whole_batch else max(ALIGN_ROWS, BLOCK_BYTES // (8 * g.width) // ALIGN_ROWS
                                                         * ALIGN_ROWS)
    if _rows_to_ynnpack(s, g):  # (4,096 rows or more are YNNPACK's fusions in XLA: no block of fewer)
        step = max(step, YNN_ROWS)
    ignore = s.params.get("ignore_index")
    wide = np.float64 if s.dtype.value == "float64" else np.float32
    cut = r.cut or g.rows  # (no block straddles two micro-batches)
    least = least_rows(g.width)  # (a short last block joins the one before it: its rows summed as the batch's)
    bounds = [(start + a, start + b) for start in range(0, g.rows, cut)
              for a, b in spans(min(cut, g.rows - start), step, least)]
    if not r.cut and g.labels == "index" and len(bounds) > 1:  # (the kernels' sums over the whole batch)
        whole = r.target.rows(0, g.rows, g.target_width).astype(np.float64, copy=False)
        s = with_batch_totals(s, _finite(r.target, whole, 0, g.target_width), g.width, bounds)
    for a, b in bounds:
        p = _finite(r.pred, r.pred.rows(a, b, g.width).astype(wide, copy=False), a, g.width)
        y = _finite(r.target, r.target.rows(a, b, g.target_width).astype(np.float64, copy=False), a,
                    g.target_width)
        w = None if weight is None else _finite(weight, weight.rows(a, b, 1).reshape(-1).astype(np.float64), a, 1)
        extra = {k: _finite(t, t.rows(a, b, width).astype(np.float64, copy=False), a, width)
                 for k, (t, width) in r.extras.items()}
        try:
            blocks = evaluate(s, y, p, w, extra, (a, g.rows))  # (its kernels told where the block lies)
        except DomainError as e:
            t, width = ({"target": (r.target, g.target_width), "pred": (r.pred, g.width)} | r.extras).get(
                e.which, (weight, 1))
            raise InputError(_place(t, a + e.row, e.col, width), f"{e.value!r} {e.reason}") from None
        counted = np.ones(b - a, bool) if ignore is None or g.labels != "index" else y[:, 0] != ignore
        yield a, blocks, counted


def _rows_to_ynnpack(s: Setup, g: Geometry) -> bool:
    """Whether XLA computes these rows otherwise in a batch of YNN_ROWS rows or more than in fewer, whatever their
    width: softmax_cross_entropy of probability rows in float16 or bfloat16 (lowp_xla.ynn_probability_rows,
    ynn_shift_rows). A block of such rows is never shorter (wide rows take blocks beyond BLOCK_BYTES)."""
    return s.conv.kernels == "xla" and s.half is not None and s.loss.name == "ce" and g.labels != "index"


def _finite(t: Tensor | None, a: np.ndarray, row0: int, width: int) -> np.ndarray:
    bad = ~np.isfinite(a)
    if bad.any():
        row, col = np.argwhere(bad.reshape(a.shape[0], -1))[0]
        assert t is not None
        raise InputError(_place(t, row0 + int(row), int(col), width),
                         f"{float(a.reshape(a.shape[0], -1)[row, col])!r} {NOT_FINITE}")
    return a


def _place(t: Tensor | None, row: int, col: int, width: int) -> str:
    """Where element (row, col) of a tensor's 2-D view is, as its index in the tensor the user gave."""
    assert t is not None
    index = np.unravel_index(row * width + col, t.shape) if t.shape else ()
    return f"{t.option}: {t.spec}[{', '.join(str(int(i)) for i in index)}]"


def _evaluate(s: Setup, r: Run, weight: Tensor | None,
              spools: list[tensor_out.Spool] | None) -> tuple[Any, list[tensor_out.Written]]:
    """Every block evaluated and accumulated (losses and gradients into the spools); the Result of the reduction,
    with the spools as the arrays to write (gradients divided by the mean's N: as they are written, or, for a kernel
    that divides before it rounds, by the kernel itself)."""
    known = _kernel_divisor(s, r, weight) if spools else None
    acc = Accumulator()
    # (one slice alone is summed in the kernel's order; several by their fold, which may hold TENSOR_HELD values)
    acc.slices = Slices(r.geometry.rows, TENSOR_HELD)
    per_sample = s.per_sample_for(r.geometry.width)
    parts = [_micro_accumulator(r.cut) for _ in range(r.geometry.rows // r.cut)] if r.cut else []
    divided: set[str] = set()
    joined = None  # (--over-batch: the batch's one loss, the value of every reduction)
    for a, blocks, counted in _blocks(s, r, weight):
        accumulate(s, acc, blocks)
        if s.params.get("over_batch"):
            joined = float(blocks[0].parts.losses.reshape(-1)[0])
        if parts:
            accumulate(s, parts[a // r.cut], blocks)
        losses = np.concatenate([b.parts.losses.reshape(-1) for b in blocks])
        r.groups.add(losses, counted if per_sample else np.repeat(counted, losses.size // counted.size))
        for spool in spools or []:
            for b in blocks:
                if known is not None and (spool.name == "grad" or spool.name[5:] in (b.parts.extra_grads or {})):
                    spool.add(mean_part(b.parts, spool.name, known))
                    divided.add(spool.name)
                elif (part := _part(b.parts, spool.name)) is not None:
                    spool.add(part)
    result = summary(s, acc, per_sample)
    _, divisor = acc.finish(s.reduction.value, s.np_dtype)
    result.value = batch_value(s, acc.slices, divisor, result)  # (as lossgrad.api.run gives it)
    result.joined = r.pred.size if s.params.get("over_batch") else None
    if joined is not None:  # (its one loss, kept whether or not the losses are written)
        result.losses = np.array([joined])
    written = [tensor_out.Written(sp, 1 if sp.name == "losses" or sp.name in divided else divisor)
               for sp in spools or [] if sp.dtype is not None]
    if parts:  # the loop's mean of micro-batch means, and its gradients (each row over k·n of its micro-batch)
        leading = tuple(r.pred.shape[:-1]) if len(r.pred.shape) > 2 else None
        r.micro = micro_summary(s, r.cut, [_micro_result(s, p, per_sample) for p in parts], result, leading)
        per_row = micro_divisors(r.micro)
        written += [tensor_out.Written(w.spool, per_row / (divisor if w.name in divided else 1), w.name + "_micro")
                    for w in written if w.name != "losses"]
    return result, written


def _micro_accumulator(rows: int) -> Accumulator:
    """A micro-batch's accumulator, which keeps what the kernel's sum over its `rows` samples needs (Slices)."""
    acc = Accumulator()
    acc.slices = Slices(rows, TENSOR_HELD)
    return acc


def _micro_result(s: Setup, acc: Accumulator, per_sample: bool) -> Result:
    """A micro-batch's mean as the kernel sums it (as an in-memory run of it gives it), or lossgrad's own sum with a
    warning that says why."""
    result = summary(s, acc, per_sample)
    _, divisor = acc.finish(s.reduction.value, s.np_dtype)
    assert acc.slices is not None  # (_micro_accumulator's)
    result.value = batch_value(s, acc.slices, divisor, result)
    return result


def _part(parts: Any, name: str) -> np.ndarray | None:
    """A block's array for the spool `name`: losses, grad, grad_logits, or grad_X, the gradient w.r.t. X."""
    further = parts.extra_grads or {}
    if name.startswith("grad_") and name[5:] in further:
        result: np.ndarray = further[name[5:]]
        return result
    return getattr(parts, name, None)


def _kernel_divisor(s: Setup, r: Run, weight: Tensor | None) -> float | None:
    """The mean's N ahead of the pass that writes, for a kernel that brings its 1/N in before it rounds (PyTorch's
    float32 and half kernels, a half dtype's single rounding), so that the gradient is written as it forms it; a
    first pass over the blocks finds it. None for the others, whose gradient is divided as it is written."""
    if not kernel_mean(s):
        return None
    n = _counted(s, r)
    return _evaluated_n(s, r, weight) if n is None else n


def _evaluated_n(s: Setup, r: Run, weight: Tensor | None) -> int | float:
    """The mean's N as a first pass over the blocks finds it."""
    acc = Accumulator()
    for _, blocks, _ in _blocks(s, r, weight):
        accumulate(s, acc, blocks)
    return acc.finish(s.reduction.value, s.np_dtype)[1]


def _counted(s: Setup, r: Run) -> int | None:
    """The mean's N where it is a count the files' shapes and labels give without an evaluation: every loss
    (countable), or the class indexes ignore_index keeps (as the blocks count them; a label that is no class is
    the evaluation's error). None where weights make N."""
    ignore, g = s.params.get("ignore_index"), r.geometry
    if s.loss.whole_batch or n_is_weighed(s):
        return None
    if ignore is None:
        return math.prod(g.losses_shape)
    if g.labels != "index":
        return None
    step = max(1, BLOCK_BYTES // 8)
    return sum(int(np.count_nonzero(r.target.rows(a, min(a + step, g.rows), g.target_width) != ignore))
               for a in range(0, g.rows, step))


def read_batch(name: str, kw: dict[str, Any], labels: str) -> Batch:
    """Tensor files held in memory as one Batch, for compare and check (which hold their whole input): the rows
    of the 2-D view in float64, the predictions' shape kept (micro-batches split its first axis), and places
    named as indexes into the files."""
    pred, target = _tensor(kw, "pred"), _tensor(kw, "target")
    weight = None if kw.get("sample_weight") is None else _tensor(kw, "sample_weight")
    s = setup(name, from_logits=kw.get("from_logits", False), labels=labels, sample_weight=weight is not None)
    g = geometry(s, pred, target, weight)
    widths = {"pred": (pred, g.width), "target": (target, g.target_width), "sample_weight": (weight, 1),
              **extras(s, kw, pred, g)}

    def whole(which: str) -> np.ndarray:
        t, width = widths[which]
        assert t is not None
        return _finite(t, t.rows(0, g.rows, width).astype(np.float64), 0, width)

    def locate(which: str, row: int, col: int) -> str:
        t, width = widths.get(which, widths["sample_weight"])
        return _place(t, row, col, width)

    w = None if weight is None else whole("sample_weight").reshape(-1)
    return Batch(whole("target"), whole("pred"), w, tuple(pred.shape), [str(j) for j in range(g.width)], locate,
                 pred.spec, g.labels, extra={i.name: whole(i.name) for i in s.loss.inputs})


def read_array(spec: str, option: str) -> np.ndarray:
    """A whole tensor file (check's --my-grad FILE) as float64, in its own shape."""
    t = open_tensor(spec, option)
    if t.size == 0:
        raise InputError(option, f"{spec} is empty (shape {list(t.shape)}); give one value per element")
    a = t.rows(0, t.size, 1).astype(np.float64).reshape(-1)
    return _finite(t, a.reshape(-1, 1), 0, 1).reshape(t.shape)


def given_dtype(kw: dict[str, Any]) -> str | None:
    """--dtype as typed, or None when it was left at its default (tensor inputs then follow the predictions)."""
    from typer._click.core import ParameterSource
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    if ctx is not None and ctx.get_parameter_source("dtype") in (ParameterSource.DEFAULT, None):
        return None
    return str(kw.get("dtype") or "float64")
