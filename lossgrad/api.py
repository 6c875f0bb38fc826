"""One path for data: arrays -> domain checks -> loss and gradient -> reduction.

`Evaluator` takes a batch in chunks (the CLI streams CSV through it); `evaluate` is the one-call form the Python
API and inline input use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import conventions
from .errors import InputError, OptionError
from .losses import LOSSES, DomainError, Parts
from .losses.base import first_bad
from .reduction import REDUCTIONS, Total, reduce

DTYPES = {"float64": np.float64, "float32": np.float32}
LABELS = ("auto", "index", "onehot")
SLICE_ROWS = 32768


def _choice(option: str, value: str, choices, what: str) -> str:
    if value not in choices:
        raise OptionError(option, f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    return value


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class Evaluator:
    """A loss with its options, fed one chunk of samples at a time."""

    def __init__(
        self,
        loss: str,
        *,
        from_logits: bool = False,
        reduction: str = "mean",
        convention: str = "exact",
        eps: float | None = None,
        dtype: str = "float64",
        labels: str = "auto",
        sample_weight: bool = False,
        **params,
    ):
        self.loss = LOSSES.get(_choice("LOSS", loss, LOSSES, "loss"))
        self.params = self._params(params)
        self.reduction = _choice("--reduction", reduction, REDUCTIONS, "reduction")
        self.dtype_name = _choice("--dtype", dtype, DTYPES, "dtype")
        self.dtype = DTYPES[dtype]
        self.labels = _choice("--labels", labels, LABELS, "label layout")
        if labels != "auto" and self.loss.kind != "rows":
            raise OptionError("--labels", f"applies to ce only, not to {loss}")
        if from_logits and not self.loss.has_logits:
            raise OptionError("--from-logits", f"{loss} takes no logits; drop --from-logits")
        self.from_logits = from_logits
        try:
            conv = conventions.get(convention)
            conventions.require(conv, loss, "logits" if from_logits else "probs")
        except conventions.UnsupportedError as e:
            raise OptionError("--convention", str(e)) from None
        if eps is not None:
            if conv.eps is None:
                clipping = [c.name for c in conventions.CONVENTIONS.values() if c.eps is not None]
                raise OptionError("--eps", f"the {conv.name} convention does not clip; --eps applies to {', '.join(clipping)}")
            if not (0 < eps < 0.5):
                raise OptionError("--eps", f"must be in (0, 0.5), got {eps!r}")
        self.conv = conventions.with_eps(conv, eps)
        for param in self.loss.params:
            if param.flag and self.params.get(param.name):
                try:
                    conventions.require(self.conv, loss, param.name)
                except conventions.UnsupportedError as e:
                    raise OptionError("--convention", str(e)) from None
        if self.params.get("pos_weight") is not None:
            if not from_logits:
                raise OptionError("--pos-weight", "applies to bce from logits (--from-logits), as PyTorch's pos_weight")
            if not self.conv.pos_weight:
                raise OptionError("--pos-weight", f"{self.conv.title} has no pos_weight for bce (TF's "
                                  "weighted_cross_entropy_with_logits is PyTorch's formula: --convention torch)")
        # per-sample weights (the chunks carry them): Keras' sum_over_batch_size and (loss * w).mean() divide the
        # weighted sum by N, the exact weighted mean by the sum of the weights
        self.sample_weight = sample_weight
        self.weight_note = None
        if sample_weight:
            if self.params.get("class_weights") is not None:
                raise OptionError("--sample-weight", "cannot be combined with --class-weights; fold the class weights "
                                                     "into the sample weights")
            self.weight_note = ("the sum of the sample weights" if self.conv.sample_weight_mean == "sum-of-weights"
                                else "the weighted sum over N")
        if self.params.get("class_weights") is not None and self.conv.class_weights is None:
            raise OptionError("--class-weights", f"{self.conv.title} has no class weights")
        if self.params.get("ignore_index") is not None and loss not in self.conv.ignoring:
            raise OptionError("--ignore-index", f"{self.conv.title} has no ignore_index for {loss}")
        if self.params.get("label_smoothing") and loss not in self.conv.smoothing:
            raise OptionError("--label-smoothing", f"{self.conv.title} has no label smoothing for {loss}")
        self.total = Total()
        self.rows = 0
        self.classes: int | None = None
        self.per_sample = self.rows_loss
        self.first_infinite: tuple[int, int] | None = None
        self.infinite = 0
        self.first_nan: tuple[int, int] | None = None
        self.nans = 0

    def _params(self, given: dict) -> dict:
        """The loss's own numbers (huber's --delta): defaults filled in, others refused, values checked."""
        known = {p.name: p for p in self.loss.params}
        out = {name: p.default for name, p in known.items()}
        for name, value in given.items():
            if value is None or value is False:  # an option not given (a switch left off)
                continue
            if name in known and known[name].vector:
                from .inputs import parse_inline

                v = parse_inline(value, _flag(name)) if isinstance(value, str) else np.asarray(value, dtype=float)
                if v.ndim != 1 or (v < 0).any() or not np.isfinite(v).all():
                    raise OptionError(_flag(name), "takes one non-negative number per class, comma separated")
                out[name] = v
                continue
            if name in known and known[name].flag:
                out[name] = bool(value)
                continue
            if name in known and known[name].integer:
                if float(value) != int(float(value)):
                    raise OptionError(_flag(name), f"must be a whole number (a class index), got {value!r}")
                out[name] = int(float(value))
                continue
            if name not in known:
                users = [loss.name for loss in LOSSES.values() if any(p.name == name for p in loss.params)]
                raise OptionError(_flag(name), f"applies to {', '.join(users) or 'no loss'}, not to {self.loss.name}")
            value = float(value)
            if not np.isfinite(value) or value < 0 or (known[name].positive and value == 0):
                raise OptionError(_flag(name), f"must be {'positive' if known[name].positive else 'zero or more'}, "
                                               f"got {value!r}")
            if name in ("label_smoothing", "alpha") and value > 1:
                raise OptionError(_flag(name), f"must be in [0, 1], got {value!r}")
            out[name] = value
        return out

    def per_sample_for(self, outputs: int) -> bool:
        """One loss per sample (rather than per element) for predictions with `outputs` columns."""
        if self.loss.last_axis == "vector" or (self.loss.last_axis == "sum" and not self.keeps_elements):
            return True
        return self.rows_loss or (self.conv.last_axis_mean and outputs > 1 and self.loss.last_axis is None)

    @property
    def keeps_elements(self) -> bool:
        """The framework's mean divides a per-sample sum's terms by the element count (PyTorch's kl_div)."""
        return self.loss.name in self.conv.elementwise_mean

    @property
    def rows_loss(self) -> bool:
        return self.loss.kind == "rows"

    def label_layout(self, target_cols: int, classes: int, first_column: np.ndarray | None = None) -> str:
        """'index' or 'onehot' for ce targets with `target_cols` columns against `classes` prediction columns."""
        if self.labels == "index" or (self.labels == "auto" and target_cols == 1 and classes != 1):
            if target_cols != 1:
                raise InputError("--labels", f"index labels need one target column, got {target_cols}")
            return "index"
        if target_cols != classes:
            raise InputError(
                "target",
                f"one-hot/probability targets need one column per class ({classes}), got {target_cols}",
            )
        return "onehot"

    def _targets(self, y: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray | None]:
        """ce targets as rows of class probabilities, plus the class indexes when they were given as such.
        Samples whose index is --ignore-index get a row of zeros (and index 0; `self.ignored` marks them)."""
        ignore = self.params.get("ignore_index")
        self.ignored = None
        if self.label_layout(y.shape[1], classes) == "onehot":
            if ignore is not None:
                raise OptionError("--ignore-index", "applies to class-index targets, not one-hot/probability rows")
            return y, None
        idx = y[:, 0]
        if ignore is not None:
            self.ignored = idx == ignore
            idx = np.where(self.ignored, 0, idx)
        bad = (idx != np.floor(idx)) | (idx < 0) | (idx >= classes)
        if bad.any():
            row = int(np.argmax(bad))
            raise DomainError("target", row, 0, float(idx[row]), f"is not a class index: an integer in [0, {classes})"
                              + ("" if ignore is not None else " (--ignore-index K leaves the samples of label K out)"))
        idx = idx.astype(np.intp)
        onehot = np.zeros((y.shape[0], classes))
        onehot[np.arange(y.shape[0]), idx] = 1
        if self.ignored is not None:
            onehot[self.ignored] = 0
        return onehot, idx

    def slices(self, y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None
               ) -> list[tuple[Parts, np.ndarray, np.ndarray | None]]:
        """Loss and per-element derivatives of one chunk (2-D arrays, samples x columns), not yet reduced, in
        slices of at most SLICE_ROWS samples: a few dozen numpy passes over slices that stay in cache beat the
        same passes over the whole chunk.

        Each slice gives its parts, the targets as used (ce: probability rows), and the class indexes if given
        so. Raises DomainError with chunk-relative row and column for values outside the loss's domain.
        """
        n = p.shape[0]
        if n <= SLICE_ROWS:
            return [self._slice(y, p, w)]
        outs = []
        for start in range(0, n, SLICE_ROWS):
            try:
                outs.append(self._slice(y[start:start + SLICE_ROWS], p[start:start + SLICE_ROWS],
                                        None if w is None else w[start:start + SLICE_ROWS]))
            except DomainError as e:
                e.row += start
                raise
        return outs

    def chunk(self, y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None
              ) -> tuple[Parts, np.ndarray, np.ndarray | None]:
        """The chunk's slices (see `slices`) joined: (parts, targets as used, class indexes)."""
        outs = self.slices(y, p, w)
        if len(outs) == 1:
            return outs[0]
        parts = Parts(**{
            name: None if getattr(outs[0][0], name) is None else np.concatenate([getattr(o[0], name) for o in outs])
            for name in ("losses", "grad", "grad_logits", "prob")
        })
        y_used = np.concatenate([o[1] for o in outs])
        labels = None if outs[0][2] is None else np.concatenate([o[2] for o in outs])
        return parts, y_used, labels

    def csv_chunk(self, chunk, layout, joined: bool = True):
        """One chunk of CSV rows (inputs.Chunk) under its layout: (parts, targets as used, class indexes,
        predictions), a value outside the loss's domain reported at its file:line:column. With `joined` False,
        just the slices' parts (batch mode writes them out as they are)."""
        p = chunk.data[:, layout.pred]
        try:
            w = None if layout.weight is None else chunk.data[:, layout.weight]
            y = chunk.data[:, layout.target]
            if not joined:
                return [parts for parts, _, _ in self.slices(y, p, w)]
            parts, y_used, labels = self.chunk(y, p, w)
        except DomainError as e:
            raise layout.error(e, chunk) from None
        return parts, y_used, labels, p

    def _class_weights(self, y: np.ndarray, labels, classes: int):
        """Each sample's weight under --class-weights (None without), and the targets to compute with: PyTorch
        weighs probability rows inside the sum (w * y); index targets weigh the sample's loss afterwards."""
        w = self.params.get("class_weights")
        if w is None:
            return None, y
        if w.size != classes:
            raise OptionError("--class-weights", f"has {w.size} weights but the predictions have {classes} classes")
        if labels is not None:
            return w[labels], y
        if self.conv.class_weights == "n":
            raise OptionError("--class-weights", f"{self.conv.title} weighs class-index labels only (class_weight)")
        return None, y * w

    def _slice(self, y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None
               ) -> tuple[Parts, np.ndarray, np.ndarray | None]:
        if self.sample_weight:
            if w is None:
                raise OptionError("--sample-weight", "no weights came with the samples")
            w = np.asarray(w, dtype=np.float64).reshape(-1)
            if w.size != p.shape[0]:
                raise InputError("--sample-weight", f"has {w.size} weights but there are {p.shape[0]} samples; "
                                                    "give one per sample")
            first_bad("weight", ~(np.isfinite(w) & (w >= 0))[:, None], w[:, None],
                      "is not a sample weight: weights are finite and at least 0")
        labels = None
        weights = None
        if self.rows_loss:
            y, labels = self._targets(y, p.shape[1])
            weights, y = self._class_weights(y, labels, p.shape[1])
            if labels is not None and self.params.get("label_smoothing") and not self.conv.sparse_smoothing:
                raise OptionError("--label-smoothing", f"{self.conv.title} has no label smoothing with class-index "
                                  "targets (sparse_categorical_crossentropy); give one-hot targets")
        elif y.shape != p.shape:
            raise InputError("target", f"shape {y.shape} does not match the predictions' {p.shape}")
        elif self.params.get("pos_weight") is not None and self.params["pos_weight"].size not in (1, p.shape[1]):
            raise OptionError("--pos-weight", f"has {self.params['pos_weight'].size} weights; give one, or one per "
                                              f"output column ({p.shape[1]})")
        if self.dtype is not np.float64:
            with np.errstate(over="ignore"):
                y, p = y.astype(self.dtype), p.astype(self.dtype)
            for which, a in (("target", y), ("pred", p)):
                first_bad(which, ~np.isfinite(a), a, f"is too large for {self.dtype_name}")
        y = y.astype(self.dtype, copy=False)
        p = p.astype(self.dtype, copy=False)
        self.loss.check(y, p, self.from_logits, **{q.name: self.params[q.name] for q in self.loss.params if q.flag})
        # the dtype the formulas run in: float64 for the exact convention (rounded at the end), float32 where
        # the framework casts the loss to float32 whatever its input
        if self.dtype is not np.float64 and self.conv.float32_via_float64:
            work = np.float64
        elif self.loss.name in self.conv.floatx_losses:
            work = np.float32
        else:
            work = self.dtype
        with np.errstate(over="ignore", under="ignore"):
            parts = self.loss.compute(y.astype(work, copy=False), p.astype(work, copy=False), self.from_logits,
                                      self.conv, labels, **self.params)
        if work is not self.dtype:
            for name in ("losses", "grad", "grad_logits", "prob"):
                a = getattr(parts, name)
                if a is not None:
                    setattr(parts, name, a.astype(self.dtype))
        if self.loss.last_axis == "sum" and not self.keeps_elements:
            # a divergence between two distributions: each sample's terms summed over its outputs
            parts.losses = parts.losses.sum(axis=1) if parts.losses.ndim == 2 else parts.losses
            self.per_sample = True
        elif self.loss.last_axis is not None:
            self.per_sample = self.loss.last_axis == "vector" or self.per_sample
        elif self.conv.last_axis_mean and not self.rows_loss and p.shape[1] > 1:
            # Keras reduces each sample's outputs by their mean before the batch reduction: its elements are
            # samples, and each output's derivative carries a 1/k
            k = p.dtype.type(p.shape[1])
            parts.losses = parts.losses.sum(axis=1) / k
            parts.grad = parts.grad / k
            if parts.grad_logits is not None:
                parts.grad_logits = parts.grad_logits / k
            self.per_sample = True
        count = None
        if self.rows_loss and getattr(self, "ignored", None) is not None:
            # left-out samples: loss and gradient 0, and not counted in the mean's N
            keep = ~self.ignored
            parts.losses = np.where(keep, parts.losses, 0)
            for name in ("grad", "grad_logits"):
                a = getattr(parts, name)
                if a is not None:
                    setattr(parts, name, np.where(keep[:, None], a, 0))
            count = int(keep.sum())
        if weights is not None:
            # each sample's loss times its class's weight; PyTorch's mean divides by the sum of those weights
            if self.ignored is not None:
                weights = np.where(self.ignored, 0, weights)
            weights = weights.astype(parts.losses.dtype)
            parts.losses = parts.losses * weights
            for name in ("grad", "grad_logits"):
                a = getattr(parts, name)
                if a is not None:
                    setattr(parts, name, a * weights[:, None])
            if self.conv.class_weights == "sum-of-weights":
                count = float(np.sum(weights, dtype=np.float64))
        if w is not None:
            if getattr(self, "ignored", None) is not None and self.rows_loss:
                w = np.where(self.ignored, 0, w)
            wt = w.astype(parts.losses.dtype)
            parts.losses = parts.losses * (wt[:, None] if parts.losses.ndim == 2 else wt)
            for name in ("grad", "grad_logits"):
                a = getattr(parts, name)
                if a is not None:
                    setattr(parts, name, a * wt[:, None])
            if self.conv.sample_weight_mean == "sum-of-weights":
                per_row = parts.losses.shape[1] if parts.losses.ndim == 2 else 1
                count = float(np.sum(w, dtype=np.float64)) * per_row
        self.total.add(parts.losses, count)
        nan = np.isnan(parts.losses)
        if nan.any():
            self.nans += int(nan.sum())
            if self.first_nan is None:
                where = np.argwhere(nan.reshape(nan.shape[0], -1))[0]
                self.first_nan = (self.rows + int(where[0]), int(where[1]))
        inf = np.isinf(parts.losses)
        if inf.any():
            self.infinite += int(inf.sum())
            if self.first_infinite is None:
                where = np.argwhere(inf.reshape(inf.shape[0], -1))[0]
                self.first_infinite = (self.rows + int(where[0]), int(where[1]))
        self.rows += p.shape[0]
        self.classes = p.shape[1]
        return parts, y, labels

    @property
    def n(self) -> int:
        """The N of the mean: samples for row losses, elements otherwise."""
        return self.total.n

    def finish(self) -> tuple[float | None, int]:
        """The reduced value and the divisor of the per-element derivatives."""
        return reduce(self.total, self.reduction, self.n, self.dtype)

    def warnings(self) -> list[str]:
        out = []
        if self.nans:
            row, col = self.first_nan
            out.append(f"{self.nans} NaN loss{'es' if self.nans > 1 else ''} (first at row {row}, column {col}): "
                       f"{self.conv.title} computes NaN there (such as 0·log 0 taken as 0·(−∞)); the exact "
                       "convention gives the limit")
        if not self.infinite:
            return out
        row, col = self.first_infinite
        why = self.loss.zero_hint if (self.loss.zero_hint and not self.from_logits) else \
            "the loss overflows the float range"
        return out + [
            f"{self.infinite} infinite loss{'es' if self.infinite > 1 else ''} (first at row {row}, column {col}): {why}"
        ]


@dataclass
class Result:
    """A loss evaluated on a batch: what the CLI renders and the API returns."""

    loss: str
    convention: str
    from_logits: bool
    reduction: str
    dtype: str
    n: int
    value: float | None
    losses: np.ndarray
    grad: np.ndarray
    grad_logits: np.ndarray | None = None
    prob: np.ndarray | None = None
    target: np.ndarray | None = None
    labels: np.ndarray | None = None
    per_sample: bool = False  # one loss per sample (ce; Keras' mean over each sample's outputs), not per element
    warnings: list = field(default_factory=list)
    weight_note: str | None = None  # what the mean divides by under sample weights

    def __repr__(self) -> str:
        return (
            f"Result(loss={self.loss!r}, convention={self.convention!r}, reduction={self.reduction!r}, "
            f"n={self.n}, value={self.value!r})"
        )


def assemble(ev: Evaluator, parts: list, targets: list, labels: list) -> Result:
    """The reduced result of the chunks `ev` has seen: concatenated, gradients divided by the mean's N."""
    value, divisor = ev.finish()

    def cat(name):
        arrays = [getattr(x, name) for x in parts]
        return None if arrays[0] is None else np.concatenate(arrays)

    def scaled(a):
        return a if a is None or divisor == 1 else a / a.dtype.type(divisor)

    return Result(
        loss=ev.loss.name,
        convention=ev.conv.name,
        from_logits=ev.from_logits,
        reduction=ev.reduction,
        dtype=ev.dtype_name,
        n=ev.n,
        value=value,
        losses=cat("losses"),
        grad=scaled(cat("grad")),
        grad_logits=scaled(cat("grad_logits")),
        prob=cat("prob"),
        target=np.concatenate(targets),
        labels=None if labels[0] is None else np.concatenate(labels),
        per_sample=ev.per_sample,
        warnings=ev.warnings(),
        weight_note=ev.weight_note,
    )


def run(ev: Evaluator, y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> Result:
    """Evaluate one in-memory batch (2-D arrays; `w`: per-sample weights) and apply the reduction."""
    parts, y_used, labels = ev.chunk(y, p, w)
    return assemble(ev, [parts], [y_used], [labels])


def as_2d(loss: str, y, p) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Array-likes as 2-D samples x columns, and the predictions' original shape.

    A 1-D vector is n samples of one output, except for row losses (ce) and the losses of a whole row (kl, cosine),
    where a 1-D prediction is one sample's row, and for ce a 1-D target is class indexes (or, with as many entries
    as classes, that row's targets).
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    shape = p.shape
    if p.ndim == 0 or y.ndim == 0 or p.ndim > 2 or y.ndim > 2:
        raise InputError("pred" if p.ndim in (0,) or p.ndim > 2 else "target", "must be a vector or a matrix")
    if LOSSES[loss].kind == "rows" or LOSSES[loss].last_axis is not None:
        # a vector is one sample's row: ce's classes, kl's distribution, cosine's vector
        if p.ndim == 1:
            p = p[None, :]
            y = y.reshape(1, -1)
        elif y.ndim == 1:
            y = y[:, None]
    else:
        p = p.reshape(p.shape[0], -1)
        y = y.reshape(y.shape[0], -1)
    return y, p, shape


def evaluate(loss: str, y, p, sample_weight=None, **options) -> Result:
    """The loss `loss` of predictions `p` against targets `y`, with its gradient (see Evaluator for options);
    `sample_weight`: one weight per sample, reduced as the convention does."""
    ev = Evaluator(loss, sample_weight=sample_weight is not None, **options)
    y2, p2, shape = as_2d(loss, y, p)
    for name, a in (("target", y2), ("pred", p2)):
        if a.size == 0:
            raise InputError(name, "is empty")
        if not np.isfinite(a).all():
            raise InputError(name, "contains NaN or infinity")
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    try:
        result = run(ev, y2, p2, w)
    except DomainError as e:
        where = f"sample_weight[{e.row}]" if e.which == "weight" else f"{e.which}[{e.row}, {e.col}]"
        raise InputError(where, f"{e.value!r} {e.reason}") from None
    result.grad = result.grad.reshape(shape)
    if result.grad_logits is not None:
        result.grad_logits = result.grad_logits.reshape(shape)
    if not result.per_sample:
        result.losses = result.losses.reshape(shape)
    return result


def _public(name: str):
    def fn(y, p, *, from_logits=False, reduction="mean", convention="exact", eps=None, dtype="float64",
           sample_weight=None, **kw):
        return evaluate(name, y, p, sample_weight=sample_weight, from_logits=from_logits, reduction=reduction,
                        convention=convention, eps=eps, dtype=dtype, **kw)

    fn.__name__ = fn.__qualname__ = name.replace("-", "_")
    fn.__doc__ = f"{LOSSES[name].summary}. Returns a Result with value, losses and grad."
    return fn


mse = _public("mse")
bce = _public("bce")
ce = _public("ce")
mae = _public("mae")
huber = _public("huber")
smooth_l1 = _public("smooth-l1")
logcosh = _public("logcosh")
hinge = _public("hinge")
squared_hinge = _public("squared-hinge")
nll = _public("nll")
kl = _public("kl")
poisson = _public("poisson")
focal = _public("focal")
cosine = _public("cosine")

__all__ = ["Evaluator", "Result", "evaluate", "mse", "bce", "ce", "mae", "huber", "smooth_l1", "logcosh", "hinge",
           "squared_hinge", "nll", "kl", "poisson", "focal", "cosine"]
