"""A sequence loss (ctc) over tensor files: predictions [T, B, C] (PyTorch's layout) or [B, T, C], padded labels
[B, S] and each sequence's input and target lengths, read whole into one Batch (a sequence's loss couples all its
frames), evaluated, and written out as the losses [B] and the gradients in the predictions' own layout.

The layout is read from the labels: the predictions' axis of the B sequences is the first or the second; where
both are (T = B) PyTorch's [T, B, C] is taken, as the note says; --time-major and --batch-first decide.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from . import render, tensor_out
from .api import run as run_batch
from .errors import InputError, OptionError, counted
from .inputs import Batch, as_given, parse_inline, sequences
from .losses.ctc import HEAD
from .options import per_length
from .reduction import formulas
from .tensor_run import Geometry, Groups, Run, _tensor, choose_dtype, half_setup
from .tensors import Tensor, is_tensor_file, open_tensor

OPTIONS = ("input_lengths", "target_lengths", "time_major", "pad")  # the options of a sequence batch


def _whole(t: Tensor) -> np.ndarray:
    """A tensor read whole, in its own shape, as float64."""
    width = t.shape[-1] if t.shape else 1
    if t.size == 0:
        return np.zeros(t.shape)
    return t.rows(0, t.size // width, width).astype(np.float64).reshape(t.shape)


def _layout(shape: tuple[int, ...], b: int, given: bool | None, notes: list[str]) -> bool:
    """Whether the predictions are time-major ([T, B, C]): the axis that holds the B sequences of the labels."""
    first, second = shape[0] == b, shape[1] == b
    if given is not None and not (second if given else first):
        axis = "second" if given else "first"
        raise InputError("{pred}", f"has shape {list(shape)}, whose {axis} axis is not the {b} sequences of "
                                   f"{{target}} [B, S] ({'{time_major}' if given else '{batch_first}'} was given)")
    if given is not None:
        return given
    if not (first or second):
        raise InputError("{pred}", f"has shape {list(shape)}: neither [T, B, C] nor [B, T, C] for the {b} sequences "
                                   "of {target} [B, S] (one row of padded labels per sequence)")
    if first and second:
        notes.append(f"{{pred}} {list(shape)} read as [T, B, C], PyTorch's layout ({{batch_first}} reads [B, T, C])")
    return second


def _lengths(kw: dict[str, Any], name: str, b: int) -> tuple[np.ndarray | None, str]:
    """A length per sequence from a tensor file or numbers (None: not given), and where they came from."""
    text = kw.get(name)
    if text is None:
        return None, ""
    option = "{" + name + "}"
    a, spec = _per_sequence(text, option, "length", b)
    bad = ~(np.isfinite(a) & (a == np.floor(a)) & (a >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(_at(option, spec, i), f"{float(a[i])!r} is not a length: a whole number, 0 or more")
    return a, spec


def _per_sequence(text: str, option: str, what: str, b: int) -> tuple[np.ndarray, str]:
    """One number per sequence from a tensor file or typed, and the file it came from ("": typed)."""
    if is_tensor_file(text):
        t = open_tensor(text, option)
        a, spec = _whole(t).reshape(-1), t.spec
    else:
        a, spec = parse_inline(text, option).reshape(-1), ""
    if a.size != b:
        raise InputError(option, f"{spec + ' ' if spec else ''}has {counted(a.size, what)} for the "
                                 f"{counted(b, 'sequence')} of {{target}}; give one per sequence")
    return a, spec


def _weights(kw: dict[str, Any], b: int) -> np.ndarray | None:
    """--sample-weight: a weight per sequence, from a tensor file [B] or typed, each finite and at least 0."""
    text = kw.get("sample_weight")
    if text is None:
        return None
    a, spec = _per_sequence(text, "{sample_weight}", "weight", b)
    bad = ~(np.isfinite(a) & (a >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(_at("{sample_weight}", spec, i), f"{float(a[i])!r} is not a sample weight: weights are "
                                                         "finite and at least 0")
    return a


def _at(option: str, spec: str, i: int) -> str:
    return f"{option}: {spec}[{i}]" if spec else f"{option}: value {i + 1}"


def _target_lengths(kw: dict[str, Any], labels: np.ndarray) -> tuple[np.ndarray, str]:
    """--target-lengths, or each row's labels up to its first --pad value, or every label of the row."""
    given, spec = _lengths(kw, "target_lengths", labels.shape[0])
    pad = kw.get("pad")
    if given is not None and pad is not None:
        raise OptionError("pad", "or {target_lengths}: give one way to know where each row's labels end")
    if given is not None:
        return given, spec
    if pad is not None and not np.isfinite(pad):
        raise OptionError("pad", f"must be a finite number (the labels' padding value), got {pad!r}")
    if pad is None:
        return np.full(labels.shape[0], float(labels.shape[1])), ""
    is_pad = labels == pad
    return np.where(is_pad.any(axis=1), np.argmax(is_pad, axis=1), labels.shape[1]).astype(np.float64), ""


def read(kw: dict[str, Any], notes: list[str]) -> tuple[Batch, Tensor, Tensor]:
    """The batch of sequences the tensor files and lengths hold; errors name the file and the index."""
    pred, target = _tensor(kw, "pred"), _tensor(kw, "target")
    for t in (pred, target):
        if 0 in t.shape:
            hint = " (labels of no length: one column and {target_lengths} 0)" if t is target else ""
            raise InputError(t.option, f"{t.spec} is empty (shape {list(t.shape)}); give an array with no empty "
                                       f"axis{hint}")
    p, labels = _whole(pred), _whole(target)
    if labels.ndim != 2:
        raise InputError("{target}", f"{target.spec} has shape {list(labels.shape)}; give padded labels [B, S], one "
                                     "row per sequence")
    if p.ndim != 3:
        raise InputError("{pred}", f"{pred.spec} has shape {list(p.shape)}; give [T, B, C] (PyTorch's layout) or "
                                   "[B, T, C]: frames, sequences and classes")
    time_major = _layout(p.shape, labels.shape[0], kw.get("time_major"), notes)
    bt = p.transpose(1, 0, 2) if time_major else p
    il, il_spec = _lengths(kw, "input_lengths", labels.shape[0])
    tl, tl_spec = _target_lengths(kw, labels)
    batch = sequences(labels, bt, np.full(bt.shape[0], float(bt.shape[1])) if il is None else il, tl, pred.spec,
                      time_major)
    batch.w = _weights(kw, labels.shape[0])
    specs = {1: ("{input_lengths}", il_spec), 2: ("{target_lengths}", tl_spec)}
    c = bt.shape[2]

    def locate(which: str, row: int, col: int) -> str:
        if which == "pred":
            f, k = divmod(col, c)
            return f"{{pred}}: {pred.spec}[{', '.join(map(str, (f, row, k) if time_major else (row, f, k)))}]"
        if which == "weight":
            return f"{{sample_weight}}[{row}]"
        if col >= HEAD:
            return f"{{target}}: {target.spec}[{row}, {col - HEAD}]"
        return _at(*specs[col], row)

    batch.locate = locate
    return batch, pred, target


def run(name: str, kw: dict[str, Any], given_dtype: str | None, params: dict[str, Any]) -> None:
    """lossgrad ctc with tensor files: the summary on stderr (or JSON on stdout), the arrays to -o FILE."""
    fmt = kw.get("format") or "table"
    if fmt not in ("table", "json"):
        raise OptionError("format", f"tensor inputs print a summary as table or json, not {fmt}; the losses and "
                                    "gradients go to -o FILE.npz (.npy, .safetensors, .parquet)")
    if kw.get("micro_batches") is not None:
        raise OptionError("micro_batches", "applies to batches of samples, not to a batch of sequences")
    tensor_out.check_output(kw.get("output"))
    notes: list[str] = []
    batch, pred, target = read(kw, notes)
    options: dict[str, Any] = {k: kw[k] for k in ("from_logits", "reduction", "convention", "eps") if k in kw}
    options["sample_weight"] = batch.w is not None
    s = half_setup(name, choose_dtype(pred, given_dtype), {**options, **params},
                   notes if given_dtype is None else None)
    b = batch.p.shape[0]
    r = Run(run_batch(s, batch), pred, target, Geometry(b, batch.p.shape[1], batch.y.shape[1], None, (b,)),
            Groups.of((b,)), notes, output=kw.get("output"))
    r.groups.add(r.result.losses, np.ones(b, bool))
    if r.output in (None, "-"):
        r.output = None
    else:
        _write(r, batch, kw)
    render.warn(r.result.warnings)
    if kw.get("explain"):  # (on stderr: stdout has the summary, or nothing)
        r_ = r.result
        sys.stderr.write("".join(line + "\n" for line in s.loss.formulas(s.from_logits, s.conv, **s.params)
                                 + formulas(r_.reduction, r_.n, r_.weight_note, per_length(s))))
    if fmt == "table" and r.output is not None:
        sys.stderr.write(render.tensor_summary(r))
        return
    with render.open_output(None) as out:
        render.write_tensor_run(r, fmt, out)


def _write(r: Run, batch: Batch, kw: dict[str, Any]) -> None:
    """The losses [B], and (unless --no-grad, or a .npy of one array) the gradients of the value in the
    predictions' layout, written atomically."""
    assert r.output is not None
    fmt = tensor_out.output_format(r.output) or ""
    arrays = {"losses": r.result.losses}
    if not kw.get("no_grad") and fmt != ".npy":
        for name in ("grad", "grad_logits"):
            a = getattr(r.result, name)
            if a is not None:
                arrays[name] = as_given(a, batch.shape, batch.order)
    read = [(f"{t.option} {f}", f) for t in (r.pred, r.target) for f in t.files if f != "inline"]
    read += [(f"{{{k}}} {f}", f) for k in ("input_lengths", "target_lengths", "sample_weight")
             if is_tensor_file(kw.get(k))
             for f in open_tensor(kw[k], "{" + k + "}").files]
    spools = [tensor_out.Spool(name, a.shape, os.path.dirname(os.path.realpath(r.output))) for name, a in
              arrays.items()]
    try:
        for spool, a in zip(spools, arrays.values(), strict=True):
            spool.add(a)
        with render.open_output(r.output, binary=True, inputs=read) as out:
            names = tensor_out.write(fmt, [tensor_out.Written(sp) for sp in spools], out)
        r.written = [(sp.name, sp.shape, sp.dtype.name) for sp in spools if sp.name in names and sp.dtype]
    finally:
        for spool in spools:
            spool.close()
