"""`compare` and `check`: the same inputs under every convention, and which one explains a user's numbers.

The reasons given are read off the conventions' data (a clip, an ε inside a log, a clamp, the N of a mean), so a
new convention explains itself without code here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import conventions, lowp
from .api import Micro, Result, micro_batches, run
from .errors import PARAMETERS, LossgradError, OptionError, counted
from .inputs import Batch, as_given, given_index
from .losses import LOSSES
from .losses._ops import sigmoid, softmax
from .losses.base import _g
from .options import setup, weighed_convention
from .reduction import leading_shape, split_rows
from .render import distinct, grad_order, places, wrt_text

REL = 1e-12  # cells closer than this to the exact convention are "the same"


def supported(loss: str, from_logits: bool, params=None, **setup_kw) -> tuple[list[str], dict[str, str]]:
    """Conventions that have `loss` in this mode with these options (kl's --log-input, ce's --ignore-index, ...),
    and the reason each of the others gives. An option no convention can take is the exact convention's error."""
    modes = ["logits" if from_logits else "probs"] + [k for k, v in (params or {}).items() if v is True]
    have: list[str] = []
    lack: dict[str, str] = {}
    for name, conv in conventions.CONVENTIONS.items():
        reason = next((conv.lacks[(loss, m)] for m in modes if (loss, m) in conv.lacks), None)
        if reason is None:
            try:
                setup(loss, from_logits=from_logits, convention=name, **setup_kw, **(params or {}))
            except OptionError as e:
                if name == "exact":
                    raise
                reason = _refusal(e)
        (lack.__setitem__(name, reason) if reason else have.append(name))
    return have, lack


def evaluate_all(loss, batch: Batch, *, from_logits, reduction, labels, dtype="float64",
                 params=None, jit=None) -> tuple[dict[str, Result], dict[str, str]]:
    """Each convention's result, and the reason of each that lacks the loss, or refuses an option for these
    inputs (Keras' label smoothing of class indexes): the exact convention's refusal is the error."""
    have, lack = supported(loss, from_logits, params, **_setup_kw(batch, reduction, labels, dtype))
    out = {}
    for name in have:
        try:
            s = setup(loss, from_logits=from_logits, convention=name, **_setup_kw(batch, reduction, labels, dtype),
                      **_jit(name, dtype, jit, loss), **(params or {}))
            out[name] = run(s, batch)
        except OptionError as e:
            if name == "exact":
                raise
            lack[name] = _refusal(e)
    return out, lack


def _refusal(e: LossgradError) -> str:
    """A convention's reason for refusing, naming the option it refuses."""
    return "{" + e.where + "}: " + e.what if e.where in PARAMETERS else e.message()


def _jit(name: str, dtype: str, jit: bool | None, loss: str) -> dict:
    """JAX's results under jit or op by op, for the one convention whose kernels are XLA's (conventions.jit_applies)."""
    applies = conventions.jit_applies(conventions.CONVENTIONS[name], dtype, loss)
    return {"jit": jit} if jit is not None and applies else {}


def _setup_kw(batch: Batch, reduction: str, labels: str, dtype: str) -> dict:
    return {"reduction": reduction, "dtype": dtype, "labels": labels, "sample_weight": batch.w is not None}


def element_reasons(conv, loss: str, y2, p2, from_logits: bool, labels, opts: dict | None = None) -> list[tuple]:
    """(mask over the predictions, text(idx)[, the largest relative difference it explains]) for each way `conv`'s
    numbers depart from the exact mathematics: the loss's own (given its options and further inputs, `opts`), then
    the per-sample mean over outputs."""
    spec = LOSSES[loss]
    rules = spec.reasons(conv, y2, p2, from_logits, labels, **(opts or {})) if spec.reasons else []
    k = p2.shape[1]
    if loss in conv.floatx_losses:
        rules.append((np.ones_like(p2, dtype=bool), lambda i: f"{conv.name} computes {loss} in float32 whatever the "
                      "inputs' dtype", {"grad": 1e-3, "loss": 1e-3}))
    if conv.last_axis_mean and spec.kind == "elementwise" and spec.last_axis is None and k > 1:
        rules.append((np.ones_like(p2, dtype=bool),
                      lambda i: f"{conv.name} averages each sample's {k} outputs before the batch reduction, so its "
                                f"sum and per-sample losses carry a 1/{k}", {"grad": np.inf, "value": np.inf}))
    return rules


def reason_options(params: dict | None, batch: Batch) -> dict:
    """What a loss's reasons are told besides the inputs: its options and its further inputs, by name."""
    return {**(params or {}), **batch.extra}


def shaped_targets(loss: str, r: Result, shape: tuple) -> np.ndarray:
    """The targets as the loss used them, shaped as the predictions (a sequence loss's rows as they are)."""
    return r.target if LOSSES[loss].kind == "sequence" else r.target.reshape(shape)


def _applies(rule, idx, rel: float, what: str) -> bool:
    """Whether `rule` explains a difference of relative size `rel` at `idx` in the gradient (`what` "grad") or a
    loss term ("loss")."""
    if not rule[0][idx]:
        return False
    if len(rule) < 3:  # (a reason of the elements, not of the whole value: one says so in its bound)
        return what != "value"
    reach = _reach(rule[2], idx, what)
    return reach is not None and rel <= reach


def _reason(reasons, idx, rel: float, what: str = "grad"):
    return next((rule[1](idx) for rule in reasons if _applies(rule, idx, rel, what)), None)


def _reach(bound, idx, what: str = "grad") -> float | None:
    """A reason's size bound at `idx`: one number for every element, or an array of them; or one of those for the
    gradient and one for the loss terms (a mapping that has no bound for `what`: the reason does not speak of it)."""
    if isinstance(bound, dict):
        if what not in bound:
            return None
        bound = bound[what]
    return float(bound[idx]) if isinstance(bound, np.ndarray) else bound


def _differing(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return ~((got == want) | (np.isfinite(want) & (np.abs(got - want) <= REL * np.abs(want)))
                 | (np.isnan(got) & np.isnan(want)))


def _rel(got: float, want: float) -> float:
    return abs(got - want) / abs(want) if want and np.isfinite(want) else float("inf")


def differences(name: str, res: Result, exact: Result, reasons, shape, order=None) -> list[dict]:
    """Where `res` departs from `exact` (beyond 1e-12 relative): each gradient element (the predictions', then each
    further input's), each loss term and the value, with the first reason that applies, or what is known of it."""
    e = exact.grad
    g: np.ndarray = res.grad.reshape(e.shape)
    found = []
    for i, j in np.argwhere(_differing(g, e)):
        idx = (int(i), int(j))
        user_idx = given_index(idx[0] * g.shape[-1] + idx[1], shape, order)
        found.append({"convention": name, "of": "grad", "element": list(user_idx), "place": places([user_idx], shape),
                      "why": _cell_why(name, reasons, [idx], g[idx], e[idx], "grad", res.dtype)})
    for k, ek in exact.grads.items():
        gk = res.grads.get(k)
        if gk is None or gk.size != ek.size:
            continue
        ek2 = ek.reshape(e.shape) if ek.size == e.size else ek.reshape(-1, 1)
        gk2 = gk.reshape(ek2.shape)
        for i, j in np.argwhere(_differing(gk2, ek2)):
            place: tuple[int, ...]
            if ek2.shape == e.shape:  # (one per prediction: the prediction's reasons, placed as it is)
                at = [(int(i), int(j))]
                place = given_index(int(i) * g.shape[-1] + int(j), shape, order)
                where = places([place], shape)
            else:  # (one per sample: its predictions' reasons)
                at, where = [(int(i), c) for c in range(g.shape[-1])], f"sample {int(i)}"
                place = (int(i),)
            found.append({"convention": name, "of": f"grad_{k}", "element": list(place), "place": where,
                          "why": _cell_why(name, reasons, at, gk2[i, j], ek2[i, j], "grad", res.dtype)})
    found += _term_differences(name, res, exact, reasons, shape, order)
    return found


# below this relative size, a difference no reason names is put down to rounding (float32's cancellations reach
# further)
ROUNDING = {"float64": 1e-6, "float32": 1e-3}


def _cell_why(name: str, reasons, at: list[tuple], got: float, want: float, what: str, dtype: str) -> str:
    """The first reason true at one of the places `at` that reaches this far; else rounding, or plainly the two
    numbers."""
    rel = _rel(got, want)
    why = next((w for idx in at if (w := _reason(reasons, idx, rel, what)) is not None), None)
    if why is not None:
        return why
    term = "" if what == "grad" else " of the loss term"
    return (f"rounding in {name}'s {dtype} formulation{term} ({rel:.1e} relative)" if rel < ROUNDING.get(dtype, 1e-3)
            else f"{name} computes it differently ({_g(got)} against {_g(want)})")


def _term_differences(name: str, res: Result, exact: Result, reasons, shape: tuple, order=None) -> list[dict]:
    """The loss terms where they differ (per element, or per sample: the elements' reasons in its row), and the
    value where no term, and no divisor, accounts for it."""
    p_shape = exact.grad.shape
    theirs, mine = res.losses.reshape(-1), exact.losses.reshape(-1)
    per_sample = theirs.size == p_shape[0] and mine.size != theirs.size
    if per_sample:  # (Keras' mean over each sample's outputs: against the exact terms' row means)
        mine = mine.reshape(p_shape).mean(axis=1)
    found: list[dict[str, Any]] = []
    if theirs.size == mine.size:
        rows = per_sample or theirs.size != int(np.prod(p_shape))
        for (t,) in np.argwhere(_differing(theirs, mine)):
            t = int(t)
            place: tuple[int, ...]
            if res.joined is not None:  # (--over-batch: the one loss is the batch's, of every cell)
                at, place, where = list(np.ndindex(*p_shape)), (t,), "the batch's loss"
            elif rows:
                at, place, where = [(t, c) for c in range(p_shape[1])], (t,), f"sample {t}"
            else:
                at = [(t // p_shape[1], t % p_shape[1])]
                place = given_index(t, shape, order)
                where = places([place], shape)
            found.append({"convention": name, "of": "loss", "element": list(place), "place": where,
                          "why": _cell_why(name, reasons, at, float(theirs[t]), float(mine[t]), "loss",
                                          res.dtype)})
    if res.value is None or exact.value is None or (res.n != exact.n and res.reduction == "mean"):
        return found  # (a mean over another N: divisors says so)
    if _differing(np.array(res.value), np.array(exact.value)):
        # (a reason of the whole value, Keras' mean over each sample's outputs; else, where no term differs,
        # the reduction's own rounding)
        rel = _rel(res.value, exact.value)
        why = _reason(reasons, (0, 0), np.inf, "value")
        if why is None and not found:
            why = (f"rounding in {name}'s {res.dtype} reduction ({rel:.1e} relative)"
                   if rel < ROUNDING.get(res.dtype, 1e-3)
                   else f"{name} reduces the terms differently ({_g(res.value)} against {_g(exact.value)})")
        if why is not None:
            found.append({"convention": name, "of": "value", "element": None, "why": why})
    return found


# ---------------------------------------------------------------- compare


class InShape:
    """What holds the predictions' shape and axes as given (`shape`, `order`: inputs.as_given) and shows arrays of
    the rows' layout in them."""

    shape: tuple
    order: tuple | None

    def as_given(self, a: np.ndarray) -> np.ndarray:
        """An array of the rows' layout in the predictions' shape and axes as given."""
        return as_given(a, self.shape, self.order)

    def shaped(self, g: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """A further gradient shaped as the predictions' where it has one element per prediction (else one value
        per sample: a list), as lossgrad's own JSON shapes it."""
        return self.as_given(g) if g.size == grad.size else g.reshape(-1)


@dataclass
class Comparison(InShape):
    loss: str
    from_logits: bool
    reduction: str
    results: dict
    unsupported: dict
    differences: list
    shape: tuple
    micro: dict = field(default_factory=dict)  # each convention's Micro (--micro-batches)
    order: tuple | None = None  # the predictions' axes as given, a transpose of the rows' (inputs.as_given)

    def as_dict(self) -> dict:
        """The comparison as a tree of plain values and arrays (render writes it as JSON)."""
        return {
            "loss": self.loss,
            "from_logits": self.from_logits,
            "reduction": self.reduction,
            **({"over_batch": {"outputs": r0.joined}} if (r0 := next(iter(self.results.values()))).joined else {}),
            "conventions": {
                name: {"n": r.n, "value": r.value,
                       "losses": r.losses if r.per_sample else self.as_given(r.losses),
                       "grad": self.as_given(r.grad)}
                | {f"grad_{k}": self.shaped(g, r.grad) for k, g in r.grads.items()}
                | ({"autocast": True} if r.autocast else {})
                | ({"micro_batches": self.micro[name].as_dict(), "grad_micro": self.as_given(self.micro[name].grad)}
                   if name in self.micro else {})
                for name, r in self.results.items()
            },
            "unsupported": self.unsupported,
            "differences": self.differences,
        }


def compare(loss: str, batch: Batch, *, from_logits=False, reduction="mean", labels="auto", dtype="float64",
            params=None, micro=None, autocast=False, jit=None) -> Comparison:
    """`loss` under every convention that has it (`autocast`: each under its mixed-precision policy; `jit`: optax's
    under jax.jit or op by op)."""
    if dtype in HALF or autocast:
        return compare_low(loss, batch, from_logits=from_logits, reduction=reduction, labels=labels, dtype=dtype,
                           params=params, autocast=autocast, jit=jit)
    p2, shape = batch.p, batch.shape
    results, lack = evaluate_all(loss, batch, from_logits=from_logits, reduction=reduction, labels=labels,
                                 dtype=dtype, params=params, jit=jit)
    exact = results["exact"]
    diffs = []
    for name, res in results.items():
        if name == "exact":
            continue
        conv = weighed_convention(conventions.CONVENTIONS[name], LOSSES[loss], batch.w is not None)
        reasons = element_reasons(conv, loss, shaped_targets(loss, exact, p2.shape), p2, from_logits, exact.labels,
                                  reason_options(params, batch))
        diffs += differences(name, res, exact, reasons, shape, batch.order) + divisors(name, res, exact, reduction)
    comp = Comparison(loss, from_logits, reduction, results, lack, diffs, shape, order=batch.order)
    if micro is not None:
        for name in results:
            s = setup(loss, from_logits=from_logits, reduction=reduction, convention=name, dtype=dtype, labels=labels,
                      sample_weight=batch.w is not None, **_jit(name, dtype, jit, loss), **(params or {}))
            comp.micro[name] = micro_batches(s, batch, micro, whole=results[name])
    return comp


HALF = ("float16", "bfloat16")
BAND = 16  # beyond this many ulps of a half dtype a difference is a formula's, not rounding's


def compare_low(loss: str, batch: Batch, *, from_logits, reduction, labels, dtype, params,
                autocast=False, jit=None) -> Comparison:
    """`loss` in a half dtype under each convention that computes it there (`autocast`: under its mixed policy),
    beside the float64 truth (the column `float64`), each gradient element's distance from it said in ulps of the
    dtype."""
    have, lack = supported(loss, from_logits, params)
    kw = dict(from_logits=from_logits, reduction=reduction, labels=labels, sample_weight=batch.w is not None,
              **(params or {}))
    held = _held(batch, dtype, autocast)
    results = {"float64": run(setup(loss, convention="exact", dtype="float64", **kw), held)}
    for name in have:
        try:
            results[name] = run(setup(loss, convention=name, dtype=dtype, autocast=autocast,
                                      **_jit(name, dtype, jit, loss), **kw), batch)
        except OptionError as e:
            lack[name] = e.what
    diffs = []
    for name, res in results.items():
        if name != "float64":
            diffs += ulp_differences(name, res, results["float64"], dtype, batch.shape, batch.order)
            diffs += divisors(name, res, results["float64"], reduction)
    return Comparison(loss, from_logits, reduction, results, lack, diffs, batch.shape, order=batch.order)


def divisors(name: str, res: Result, exact: Result, reduction: str) -> list[dict]:
    """Where a convention's mean divides by another N than exact's (sample weights: N or their sum), that reason."""
    if res.n == exact.n or reduction != "mean":
        return []
    why = f"{name}'s mean divides by N = {res.n}, exact's by N = {exact.n}"
    return [{"convention": name, "of": "value", "element": None, "why": why}]


def _held(batch: Batch, dtype: str, autocast: bool) -> Batch:
    """The inputs as the dtype holds them, whose truth the half results are measured against (autocast: the
    targets are float32 data, only the predictions are the model's half dtype)."""
    half = lowp.half_dtype(dtype)
    y = batch.y.astype(np.float32 if autocast else half).astype(np.float64)
    # (the further inputs, var or the negatives, reach the loss in the dtype as the predictions do)
    extra = {k: a.astype(np.float32 if autocast else half).astype(np.float64) for k, a in batch.extra.items()}
    return replace(batch, y=y, p=batch.p.astype(half).astype(np.float64), extra=extra)


def ulp_differences(name: str, res: Result, truth: Result, dtype: str, shape, order=None) -> list[dict]:
    """Each gradient element's distance from the float64 truth in ulps of `dtype`, grouped: correctly rounded
    (at most half an ulp), within k ulp (rounding inside the kernel), or beyond the band (a formula's)."""
    e = truth.grad
    u = lowp.ulps(res.grad.reshape(e.shape), e, dtype)
    found = []
    for i, j in np.argwhere(u > 0):
        idx = (int(i), int(j))
        k = float(u[idx])
        if k <= 0.5:
            why = f"correctly rounded to {dtype} (at most half an ulp from the float64 truth)"
        elif k <= BAND:
            why = (f"within {int(np.ceil(k))} ulp of {dtype} from the float64 truth: rounding inside {name}'s "
                   f"{dtype} arithmetic, not a different formula")
        else:
            why = f"{k:.3g} ulp of {dtype} from the float64 truth: more than rounding"
        user_idx = given_index(idx[0] * e.shape[-1] + idx[1], shape, order)
        found.append({"convention": name, "element": list(user_idx), "place": places([user_idx], shape), "why": why,
                      "ulps": k})
    return found


# ---------------------------------------------------------------- check

REDUCTIONS = ("mean", "sum", "none")
ORDER = list(conventions.CONVENTIONS)


@dataclass
class Candidate:
    """One way to compute the user's numbers. `wrt` is what the gradient is taken with respect to: "pred" (the
    predictions as given, which are not logits), "logits" (the logits, given or behind given probabilities) or
    "probs" (the probabilities σ(z) or softmax(z), or poisson's rates e^z, behind given logits). `options` holds
    the options check solved for, which the user did not pass."""

    convention: str
    reduction: str
    wrt: str
    grad: np.ndarray
    value: float | None
    n: int | float
    losses: np.ndarray | None = None
    options: dict = field(default_factory=dict)
    residual: float = np.inf  # worst difference (gradient elements, loss) in units of its tolerance
    flipped: float = np.inf  # the same with the sign of the user's gradient reversed
    micro: Micro | None = None  # reduction "micro": the mean of the micro-batch means (--micro-batches)
    grads: dict = field(default_factory=dict)  # the gradients with respect to the loss's further inputs
    via: str = ""  # how the convention was given the user's inputs, where not as they are (in words)


@dataclass
class Diagnosis(InShape):
    loss: str
    from_logits: bool  # the input's own flag
    shape: tuple
    match: Candidate | None
    nearest: Candidate
    given: str = "grad"  # what the user gave: "grad", "loss" or "both"
    findings: list = field(default_factory=list)
    also: list = field(default_factory=list)
    extra: tuple = ()  # the further inputs whose gradient the user gave (var, target, ...)
    pred: bool = True  # the user gave the predictions' gradient (--my-grad)
    order: tuple | None = None  # the predictions' axes as given, a transpose of the rows' (inputs.as_given)


@dataclass(frozen=True)
class Question:
    """What check is asked: the inputs, the user's numbers with their tolerances, the options given."""

    loss: str
    batch: Batch
    mine: Any  # the user's gradient, shaped as the predictions (2-D), or None
    tol: Any  # its tolerance per element
    my_loss: Any  # the user's loss and its tolerance, or None
    from_logits: bool
    labels: Any
    dtype: str
    params: dict
    targets: np.ndarray = field(default_factory=lambda: np.empty(0))  # as the loss uses them, shaped as p
    label_idx: Any = None  # ce's class indexes, when given so
    micro: int = 0  # --micro-batches K: the mean of K micro-batch means is one more reduction to try
    autocast: bool = False  # the dtype is the predictions'; each convention under its mixed-precision policy
    extra: dict = field(default_factory=dict)  # the user's gradients for further inputs: name -> (values, tolerances)
    jit: bool | None = None  # optax's numbers under jax.jit (True) or op by op (False); None: its default


@dataclass(frozen=True)
class Part:
    """One gradient the user gave: the predictions' (name "") or a further input's ("var", "target", ...)."""

    name: str
    mine: np.ndarray
    tol: np.ndarray
    given: tuple | None = None  # the predictions' shape as given, and their axes (inputs.as_given): for places
    order: tuple | None = None

    @property
    def what(self) -> str:
        return "your gradient" + (f" with respect to {{{self.name}}}" if self.name else "")

    def theirs(self, c: Candidate) -> np.ndarray | None:
        """`c`'s gradient shaped as the user's (None where `c` has none for this input)."""
        g = c.grad if not self.name else c.grads.get(self.name)
        return None if g is None or g.size != self.mine.size else g.reshape(self.mine.shape)

    def place(self, idxs: list) -> str:
        """The elements `idxs` (of mine, a row per sample) where the user sees them: one per prediction, in the
        predictions' shape and axes as given."""
        shape = self.mine.shape
        if self.given is not None and self.mine.size == int(np.prod(self.given)):
            idxs = [given_index(int(np.ravel_multi_index(i, shape)), self.given, self.order) for i in idxs]
            shape = self.given
        return (f"{{{self.name}}} " if self.name else "") + places(idxs, shape)

    def pred_index(self, idx: tuple, shape: tuple) -> tuple | None:
        """The prediction an element of this gradient belongs to (a variance per sample: its row's first)."""
        if not self.name:
            return idx
        flat = int(np.ravel_multi_index(idx, self.mine.shape))
        if self.mine.size == int(np.prod(shape)):
            return tuple(int(k) for k in np.unravel_index(flat, shape))
        return (flat, 0) if self.mine.size == shape[0] else None


def _parts(q: Question) -> list[Part]:
    at = {"given": q.batch.shape, "order": q.batch.order}
    main = [Part("", q.mine, q.tol, **at)] if q.mine is not None else []
    return main + [Part(name, mine, tol, **at) for name, (mine, tol) in q.extra.items()]


def tolerance(tokens: list[str], values: np.ndarray) -> np.ndarray:
    """Per element: 1e-6 relative, or half a unit in the last digit the user typed, whichever is larger. A zero's
    digits say nothing of its precision (a bare 0 would allow ±0.5): it takes the finest the other numbers are typed
    to, and where every number is 0 (a backward pass left out) it must be 0."""
    units = []
    for tok in tokens:
        mant, _, exp = tok.lower().partition("e")
        digits = len(mant.split(".")[1]) if "." in mant else 0
        units.append(10.0 ** (-digits + (int(exp) if exp else 0)))
    flat = values.reshape(-1)
    finest = min((u for u, v in zip(units, flat, strict=True) if v != 0), default=0.0)
    tol = [max(1e-6 * abs(v), 0.5 * (u if v != 0 else min(u, finest)), 1e-300)
           for u, v in zip(units, flat, strict=True)]
    return np.array(tol).reshape(values.shape)


# what --from-logits predictions stand for (Loss.link)
LINKS: dict[str | None, Callable[[np.ndarray], np.ndarray]] = {"sigmoid": sigmoid, "softmax": softmax, "exp": np.exp}


def _paths(q: Question) -> tuple[str, ...]:
    """"direct": the predictions as given; "probs": the probabilities (or rates) behind given logits;
    "log_softmax": a sequence's logits through log_softmax per frame, as PyTorch's ctc_loss users give them."""
    spec = LOSSES[q.loss]
    # (a sequence's softmax is per frame, not per row: its gradient with respect to log-probabilities is its own)
    probs = q.from_logits and spec.has_logits and spec.link in LINKS and spec.kind != "sequence"
    if q.from_logits and spec.kind == "sequence":
        return ("direct", "log_softmax")
    return ("direct", "probs") if probs else ("direct",)


LOG_SOFTMAX_VIA = "on log_softmax of your logits per frame, as its ctc_loss takes them"


def _takes_log_softmax(name: str, loss: str) -> bool:
    """Whether `name` takes a sequence loss's log-probabilities only, with its gradient with respect to the logits
    behind them (PyTorch's ctc_loss: e^x − γ): given logits, its users pass log_softmax of them."""
    return LOSSES[loss].kind == "sequence" and conventions.CONVENTIONS[name].ctc == "torch"


def _path_inputs(q: Question, path: str) -> tuple[Batch, bool, dict]:
    if path == "direct":
        return q.batch, q.from_logits, q.params
    if path == "log_softmax":
        classes = q.batch.shape[-1]
        z = q.batch.p.reshape(q.batch.p.shape[0], -1, classes)
        top = z.max(axis=2, keepdims=True)
        with np.errstate(all="ignore"):
            lp = z - top - np.log(np.exp(z - top).sum(axis=2, keepdims=True))
        return replace(q.batch, p=lp.reshape(q.batch.p.shape)), False, q.params
    with np.errstate(over="ignore"):
        probs = LINKS[LOSSES[q.loss].link](q.batch.p)
    return replace(q.batch, p=probs), False, {k: v for k, v in q.params.items() if k != "pos_weight"}


def _with_options(q: Question, batch: Batch, logits: bool, params: dict, options: dict) -> tuple[Batch, bool, dict]:
    """The inputs and parameters of a candidate that adds `options` (a weight per sample among them goes into the
    batch)."""
    vectors = {p.name for p in LOSSES[q.loss].params if p.vector}
    params = {**params, **{k: np.atleast_1d(v) if k in vectors else v for k, v in options.items()}}
    w = params.pop("sample_weight", None)
    if w is not None:
        batch = replace(batch, w=np.asarray(w, dtype=np.float64))
    return batch, logits, params


def _evaluate(q: Question, path: str, name: str, reduction: str, options: dict) -> list[Candidate]:
    """`name`'s candidates on `path` with `options` added; none where it lacks the loss, mode or option."""
    if path == "log_softmax" and not _takes_log_softmax(name, q.loss):
        return []
    batch, logits, params = _with_options(q, *_path_inputs(q, path), options)
    try:
        with np.errstate(all="ignore"):
            s = setup(q.loss, from_logits=logits, reduction=reduction.replace("micro", "mean"), convention=name,
                      dtype=q.dtype, autocast=q.autocast, **_jit(name, q.dtype, q.jit, q.loss),
                      labels=q.labels, sample_weight=batch.w is not None, **params)
            r = run(s, batch)
            m = micro_batches(s, batch, q.micro, whole=r) if reduction == "micro" else None
    except LossgradError:
        return []
    make = lambda wrt, g: _score(q, Candidate(name, reduction, wrt, g, r.value if m is None else m.value,  # noqa
                                              r.n, r.losses, dict(options), micro=m,
                                              grads=r.grads if m is None else {}))
    grad, grad_logits = (r.grad, r.grad_logits) if m is None else (m.grad, m.grad_logits)
    if path == "probs":
        return [make("probs", grad)]
    if path == "log_softmax":  # (its e^x − γ is the gradient with respect to the logits given)
        return [replace(make("logits", grad), via=LOG_SOFTMAX_VIA)]
    out = [make("logits" if logits else "pred", grad)]
    if grad_logits is not None and q.mine is not None:  # (a loss alone cannot tell the two apart)
        out.append(make("logits", grad_logits))
    return out


def candidates(q: Question, options: dict | None = None, names=None) -> list[Candidate]:
    out = []
    for path in _paths(q):
        for reduction in REDUCTIONS + (("micro",) if q.micro else ()):
            for name in names or ORDER:
                out += _evaluate(q, path, name, reduction, options or {})
    return out


def rounding_band(q: Question, match: Candidate | None, best: Candidate) -> list[str]:
    """Whether the user's gradients differ from the float64 truth by rounding or by more, in ulps of the half
    dtype: within the match's rounding; or, with no match, within a few ulp of the truth (rounding of another
    order) or beyond any rounding of the dtype (a formula). Options check solved for are said, and how far the
    numbers are without them."""
    c = match or best
    truth, over = _truth_grads(q, c)
    under = f"under {q.dtype} autocast" if q.autocast else f"in {q.dtype}"
    if _jit(c.convention, q.dtype, True, q.loss):  # (JAX's numbers depend on the mode: say which)
        under += " op by op" if q.jit is False else " under jax.jit"
    given = f"with {_options_text(c.options)[len('your numbers need '):]}, " if c.options else ""
    plain = _plain(q, c) if c.options else None
    lines = []
    for part in _parts(q):
        theirs, exact = part.theirs(c), part.theirs(truth)
        if theirs is None or exact is None:
            continue
        near = lowp.ulps(part.mine, theirs, q.dtype).max()
        off = lowp.ulps(part.mine, exact, q.dtype).max()
        truth_is = f"{off:.2g} ulp of {q.dtype} from the float64 truth{over} at most"
        if match is None and off > BAND:
            lines.append(f"{given}{part.what} is {truth_is} ({near:.2g} from {c.convention}'s {under}, the nearest): "
                         f"larger than any rounding of {q.dtype} could explain, so a formula differs")
        elif match is None:
            lines.append(f"{given}{part.what} matches no convention's rounding {under}, but it is {truth_is}: the "
                         f"difference is rounding done in another order, not a formula")
        else:
            within = "exactly" if near == 0 else f"to within {int(np.ceil(near))} ulp"
            lines.append(f"{given}{part.what} matches {c.convention} {under} {within}; it is {truth_is}: " + (
                ("beyond that, " if c.options else "") + "the difference from float64 is rounding, not a formula"
                if off <= BAND else "more than rounding"))
        mine_plain = None if plain is None else part.theirs(plain)
        if mine_plain is not None:
            far = lowp.ulps(part.mine, mine_plain, q.dtype).max()
            lines.append(f"without {'them' if len(c.options) > 1 else 'it'}, {part.what} is {far:.3g} ulp of "
                         f"{q.dtype} from {c.convention}'s at most: " + ("larger than any rounding of "
                         f"{q.dtype} could explain" if far > BAND else "within rounding"))
    return lines


def _truth_grads(q: Question, c: Candidate) -> tuple[Candidate, str]:
    """The float64 truth of `c`'s reduction and options for the inputs as held in the dtype, as a Candidate of
    `c`'s shape (its mean over c's N), and how that N is said where it is not the truth's."""
    held = _held(q.batch, q.dtype, q.autocast)
    batch, logits, params = _with_options(q, *_path_inputs(replace(q, batch=held), _path_of(c)), c.options)
    truth = run(setup(q.loss, from_logits=logits, reduction=c.reduction, labels=q.labels,
                      sample_weight=batch.w is not None, **params), batch)
    grad = truth.grad_logits if c.wrt == "logits" and not logits and truth.grad_logits is not None else truth.grad
    over = ""
    if c.reduction == "mean" and truth.n != c.n and c.n:  # (c's mean divides by another N)
        grad, over = grad * (truth.n / c.n), f" over N = {_n(c.n)} as {c.convention} divides"
        truth.grads = {k: v * (truth.n / c.n) for k, v in truth.grads.items()}
    return replace(c, grad=grad, grads=truth.grads), over


def _plain(q: Question, c: Candidate) -> Candidate | None:
    """`c` without the options check solved for (None where the convention has them only as options)."""
    plain = _evaluate(q, "direct" if c.wrt == "probs" and not q.from_logits else _path_of(c), c.convention,
                      c.reduction, {})
    return next((p for p in plain if p.wrt == c.wrt), None)


def _path_of(c: Candidate) -> str:
    """The path (_paths) `c` was computed on."""
    return "probs" if c.wrt == "probs" else "log_softmax" if c.via == LOG_SOFTMAX_VIA else "direct"


def _residual(mine: np.ndarray, theirs: np.ndarray, tol: np.ndarray) -> float:
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(mine - theirs.reshape(mine.shape)) / tol
    d = np.where(np.isnan(d), np.inf, d)
    return float(d.max())


def _loss_residual(q: Question, value: float | None) -> float:
    if q.my_loss is None:
        return 0.0
    if value is None or not np.isfinite(value):
        return np.inf
    return abs(q.my_loss[0] - value) / q.my_loss[1]


def _score(q: Question, c: Candidate) -> Candidate:
    """The worst of the loss's and each gradient's residual (a gradient `c` lacks: none fits), and the same with
    the signs of the user's gradients reversed."""
    c.residual = c.flipped = _loss_residual(q, c.value)
    for part in _parts(q):
        theirs = part.theirs(c)
        c.residual = max(c.residual, np.inf if theirs is None else _residual(part.mine, theirs, part.tol))
        c.flipped = max(c.flipped, np.inf if theirs is None else _residual(-part.mine, theirs, part.tol))
    return c


def _rank(c: Candidate):
    # the closest first; among ties, no solved options before some, the plain mathematics before a framework,
    # the mean before sum and none, the inputs as given before the probabilities behind given logits (whose
    # residuals differ from theirs only by the last bits of exp and log, which differ between machines)
    magnitude = -1 if c.residual <= 0.1 else (0 if c.residual <= 1 else np.log10(c.residual))
    return (magnitude, _cost(c.options), ORDER.index(c.convention), (*REDUCTIONS, "micro").index(c.reduction),
            c.wrt == "probs", c.residual)


def _cost(options: dict) -> int:
    """How much a candidate's solved options assume: a definition switch (the switches of one loss together) or a
    number is one; a weight per class or sample, many numbers fitted to the user's, two."""
    return (any(k in DEFINITION_KEYS for k in options) + sum(2 if k in FACTORS else 1 for k in options
                                                               if k not in DEFINITION_KEYS))


def _key(c: Candidate) -> tuple:
    # sum and none have the same gradient: one of them names both
    return (c.convention, c.wrt, c.reduction.replace("none", "sum"), repr(sorted(c.options.items())))


def check(loss, batch: Batch, my_grad, my_grad_tokens, *, from_logits=False, labels="auto", against=None,
          reduction=None, my_loss=None, dtype="float64", params=None, micro=None, autocast=False,
          my_grads=None, jit=None) -> Diagnosis:
    """Which convention, reduction, derivative (and options left out) explain the user's gradient and/or loss;
    `my_grads`: the user's gradients with respect to the loss's further inputs, name -> (values, tokens typed);
    `jit`: optax's numbers under jax.jit or op by op."""
    for name in my_grads or {}:
        if name not in grad_order(LOSSES[loss]):
            raise _no_such_gradient(loss, name)
    mine = tol = None
    if my_grad is not None:
        mine = np.asarray(my_grad, dtype=np.float64)
        if mine.size != batch.p.size:
            raise OptionError("my_grad", f"has {counted(mine.size, 'value')} but the predictions have "
                                          f"{batch.p.size}")
        mine = mine.reshape(batch.p.shape)
        tol = tolerance(my_grad_tokens, mine)
        if dtype in HALF:  # (a half dtype's numbers are as good as its last place: one ulp either way)
            tol = np.maximum(tol, lowp.ulp(mine, dtype))
    if my_loss is not None and dtype in HALF:  # (under autocast the loss is float32)
        my_loss = (my_loss[0], max(my_loss[1], float(lowp.ulp(np.array(my_loss[0]), "float32" if autocast
                                                                   else dtype))))
    if micro is not None:
        split_rows(batch.p.shape[0], micro, leading_shape(batch.shape, batch.p.shape[0]))
    q = Question(loss, batch, mine, tol, my_loss, from_logits, labels, dtype, dict(params or {}), micro=micro or 0,
                 autocast=autocast, jit=jit)
    exact = run(setup(loss, from_logits=from_logits, reduction="none", labels=labels,
                      sample_weight=batch.w is not None, **q.params), batch)
    q = replace(q, targets=shaped_targets(loss, exact, batch.p.shape), label_idx=exact.labels,
                extra=_further(exact, my_grads or {}, dtype, batch.p.shape))
    cands = sorted(candidates(q), key=_rank)
    if cands[0].residual > 1:
        cands = sorted(cands + solve(q), key=_rank)
    match = cands[0] if cands[0].residual <= 1 else None
    # nothing fits as given: the nearest, allowing for a reversed sign (said in the findings)
    best = match or min(cands, key=lambda c: (min(c.residual, c.flipped), ORDER.index(c.convention)))
    grads = mine is not None or bool(q.extra)
    given = "both" if grads and my_loss is not None else ("grad" if grads else "loss")
    diag = Diagnosis(loss, from_logits, batch.shape, match, best, given, extra=tuple(q.extra), pred=mine is not None,
                     order=batch.order)
    if match:
        seen = {_key(match)}
        for c in cands[1:]:
            if c.residual <= 1 and _key(c) not in seen:
                seen.add(_key(c))
                diag.also.append(c)
        diag.also = diag.also[:6]
    diag.findings = definition_findings(q, best) + micro_findings(q, best, cands) + _findings(
        q, best, cands, against, reduction or ("micro" if best.reduction == "micro" else "mean"))
    if grads and dtype in HALF:
        diag.findings[:0] = rounding_band(q, match, best)
    diag.findings += _left_out(q, cands)
    if match is None and loss in ("bce", "ce") and not from_logits:
        act = "sigmoid" if loss == "bce" else "softmax"
        diag.findings.append(
            f"if these probabilities came straight out of Keras' {act} (a tensor, not a copy), Keras silently used "
            f"the logits behind them: run the check again on the logits with {{from_logits}}")
    return diag


def _left_out(q: Question, cands: list[Candidate]) -> list[str]:
    """The conventions that have the loss but gave no candidate: they refuse an option for these inputs (Keras'
    label smoothing of class indexes), or do not compute the loss in the dtype asked (in a half dtype, or optax in
    the jit mode asked); each with its reason (under --autocast, the conventions with no mixed-precision policy
    are left out by design, and not listed)."""
    if q.autocast:
        return []
    weighed = {c.convention for c in cands}
    out = []
    for name in (n for n in supported(q.loss, q.from_logits, q.params)[0] if n not in weighed | {"exact"}):
        try:
            with np.errstate(all="ignore"):
                run(setup(q.loss, from_logits=q.from_logits, convention=name, dtype=q.dtype, autocast=q.autocast,
                          labels=q.labels, sample_weight=q.batch.w is not None, **_jit(name, q.dtype, q.jit, q.loss),
                          **q.params), q.batch)
        except LossgradError as e:
            out.append(f"{name} was not weighed: {_refusal(e)}")
    return out


def _no_such_gradient(loss: str, name: str) -> OptionError:
    """A gradient given for an input the loss has no gradient for: what the loss takes and gives instead."""
    spec = LOSSES[loss]
    lacks = ("gives no gradient with respect to its targets" if name == "target"
             else f"takes no {{{name}}}" if name in PARAMETERS else f"takes no input {name!r}")
    inputs = ["{target}", "{pred}"] + ["{" + i.name + "}" for i in spec.inputs]
    gives = ["{pred} ({my_grad})"] + [f"{{{k}}} ({{my_grad_{k}}})" for k in grad_order(spec)]
    return OptionError(f"my_grad_{name}", f"{loss} {lacks}: its inputs are "
                       f"{_and(inputs)}, and it gives the gradient{'s' if len(gives) > 1 else ''} with respect to "
                       f"{_and(gives)}")


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _further(exact: Result, given: dict, dtype: str, shape: tuple) -> dict:
    """The user's gradients for the further inputs, each shaped as the loss's own gradient for that input (the
    predictions' shape, or one value per sample), with its tolerance."""
    out = {}
    for name, (values, tokens) in given.items():
        mine = np.asarray(values, dtype=np.float64).reshape(-1)
        want = exact.grads[name].size
        if mine.size != want:
            raise OptionError(f"my_grad_{name}", f"has {counted(mine.size, 'value')} but {{{name}}} has {want}: one "
                                                 f"gradient value per value of {{{name}}}")
        mine = mine.reshape(shape if want == int(np.prod(shape)) else (want, 1))
        tol = tolerance(tokens, mine)
        out[name] = (mine, np.maximum(tol, lowp.ulp(mine, dtype)) if dtype in HALF else tol)
    return out


def _findings(q: Question, best: Candidate, cands: list[Candidate], against, reduction: str) -> list[str]:
    """Against the framework asked for, else each framework that has the loss: how the user's numbers depart."""
    lines = []
    if best.options:
        lines.append(f"{_options_text(best.options, q.params)}: {_without(q, best)}")
    pool = (candidates(q, best.options) if best.options else []) + cands
    have, _ = supported(q.loss, q.from_logits, q.params)
    # (and those that have it on other inputs than the user's: PyTorch's ctc on log_softmax of logits)
    weighed = {c.convention for c in pool}
    for name in [against] if against else [n for n in ORDER if n != "exact" and (n in have or n in weighed)]:
        mine_here = [c for c in pool if c.convention == name and c.reduction == reduction]
        ref = next((c for c in mine_here if c.wrt == best.wrt), mine_here[0] if mine_here else None)
        if ref is not None:
            lines += _explain_against(q, ref, best, pool)
    return lines


def _options_text(options: dict, given: dict | None = None) -> str:
    said = [f"{{{k}}} = {_option_value(v)}" for k, v in options.items()]
    passed = [k for k in options if (given or {}).get(k) not in (None, False)]
    if passed:  # (a switch the user gave, the other way)
        return "your numbers need " + " and ".join(said) + ", where you passed " + " and ".join(
            f"{{{k}}} = {_option_value((given or {})[k])}" for k in passed)
    return "your numbers need " + " and ".join(said) + ", which you did not pass"


def _option_value(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "on" if v else "off"
    if isinstance(v, np.ndarray):
        return ",".join(f"{x:.8g}" for x in v)
    return f"{v:.8g}"


def _without(q: Question, best: Candidate) -> str:
    plain = _plain(q, best)
    if plain is None:
        return f"{best.convention} has them only as options"
    return (f"without {'them' if len(best.options) > 1 else 'it'} {best.convention}'s numbers are off by up to "
            f"{plain.residual:.3g} times what your digits allow")


def _head(ref: Candidate) -> str:
    over = f" over N={_n(ref.n)}" if ref.reduction == "mean" else ""
    red = ref.reduction if ref.micro is None else f"the mean of {ref.micro.k} micro-batch means"
    opts = f", {_options_text(ref.options)[len('your numbers need '):].split(', which')[0]}" if ref.options else ""
    via = f", {ref.via}" if ref.via else ""
    return f"against {ref.convention} ({red}{over}{opts}{via}):"


def _n(n) -> str:
    return f"{n:g}" if isinstance(n, float) else str(n)


def _explain_against(q: Question, ref: Candidate, best: Candidate, pool: list[Candidate]) -> list[str]:
    """Plain sentences for how the user's numbers depart from `ref`'s: each gradient given in turn."""
    parts = _parts(q)
    if not parts:
        return _explain_loss(q, ref, best, pool)
    # (the loss, given beside the gradients, is explained as well where it departs)
    loss = _explain_loss(q, ref, best, pool)[1:] if q.my_loss is not None and ref.value is not None \
        and _loss_residual(q, ref.value) > 1 else []
    if all(_matches(part, ref) for part in parts):
        said = parts[0].what + " matches" if len(parts) == 1 else "your gradients match"
        if not loss:
            return [f"{_head(ref)} {said} {ref.convention}'s"]
        return [_head(ref), f"  {said} {ref.convention}'s; your loss does not:"] + loss
    lines = [line for part in parts for line in _explain_part(q, part, ref, best, pool)]
    return [_head(ref)] + list(dict.fromkeys(["  " + s for s in lines] + loss))  # (a reason both share: once)


def _matches(part: Part, c: Candidate) -> bool:
    theirs = part.theirs(c)
    return theirs is not None and _residual(part.mine, theirs, part.tol) <= 1


def same_options(a: dict, b: dict) -> bool:
    """Whether two candidates' options are the same (a fitted weight per sample is an array)."""
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _explain_part(q: Question, part: Part, ref: Candidate, best: Candidate, pool: list[Candidate]) -> list[str]:
    """How one of the user's gradients departs from `ref`'s: the derivative taken, a common factor, each
    element left over."""
    theirs = part.theirs(ref)
    if theirs is None:
        return [f"{part.what}: {ref.convention} gives none to compare with here"]
    if _residual(part.mine, theirs, part.tol) <= 1:
        return [f"{part.what} matches {ref.convention}'s"]
    lines = []
    given = "logits" if q.from_logits else "pred"
    if not part.name and (best.wrt != ref.wrt or best.wrt != given):
        lines.append(f"these look like gradients with respect to {wrt_text(q.loss, best.wrt)}"
                     + (" (σ(z) − y)" if q.loss == "bce" and best.wrt == "logits" else "")
                     + f", not to {wrt_text(q.loss, ref.wrt if ref.wrt != best.wrt else given)}")
    said = _reduction_factor(q, part, ref, pool)
    if said:  # (the same convention at the other reduction is yours, to the last digit)
        return lines + said
    exact = next((c for c in pool if c.convention == "exact" and c.reduction == ref.reduction
                  and c.wrt == ref.wrt and same_options(c.options, ref.options)), None)
    ratio, said = _common_factor(part, theirs, ref, best, q.dtype, part.theirs(exact) if exact else None)
    lines += said + (_per_length_grad(q, ref, pool) + _per_length_yours(q, ref, best) if not part.name else [])
    lines += _elements(q, part, theirs, ref, ratio, pool)
    if not lines:
        lines.append(f"{part.what} is {ref.convention}'s up to the digits given")
    return lines


def _reduction_factor(q: Question, part: Part, ref: Candidate, pool: list[Candidate]) -> list[str]:
    """The 1/N a mean has and a sum has not, said where `ref`'s convention at the other reduction gives the
    user's numbers (in a half dtype, to its rounding, where the elements' ratios scatter). (Not for a sequence
    loss, whose framework's mean may divide by the target lengths too: the factor said there is its own.)"""
    if LOSSES[q.loss].kind == "sequence":
        return []
    other = {"mean": ("sum",), "sum": ("mean",), "none": ("mean",)}.get(ref.reduction, ())
    twin = next((c for c in pool if c.convention == ref.convention and c.reduction in other and c.wrt == ref.wrt
                 and same_options(c.options, ref.options) and _matches(part, c)), None)
    if twin is None or twin.n == 1 or ref.n == 1:  # (N = 1: the mean is the sum, no factor between them)
        return []
    if ref.reduction == "mean":
        return [f"{part.what} is {ref.n:.3f}× {ref.convention}'s (mean over N={_n(ref.n)}): you left out the 1/N of "
                "the mean"]
    return [f"{part.what} is 1/{_n(twin.n)} of {ref.convention}'s ({ref.reduction}): you divided by N = "
            f"{_n(twin.n)} as a mean does"]


def _common_factor(part: Part, theirs, ref: Candidate, best: Candidate, dtype: str = "float64",
                   exact=None) -> tuple[float, list[str]]:
    """A factor common to the elements both sides give as nonzero (the N of a mean, a reversed sign), said."""
    what, name = part.what, ref.convention
    found = _factor(part, theirs, ref, best, dtype, exact)
    if found is None:
        return 1.0, []
    med, whole = found
    lines, n, sign = [], ref.n, 1.0 if med > 0 else -1.0
    if abs(abs(med) - 1) <= 1e-3:  # (a factor of 1 is none, whatever N is: N = 1's mean is its sum)
        ratio = sign
    elif ref.reduction == "mean" and abs(abs(med) - n) <= 1e-3 * n:
        ratio = sign * n  # the factor is N itself; what is left over is for the elements to explain
        lines.append(f"{what} is {n:.3f}× {name}'s (mean over N={_n(n)}): you left out the 1/N of the mean" if whole
                     else f"{what} is a sum where {name}'s is a mean over N={_n(n)}: you left out the 1/N of the "
                     "mean, and beyond that factor the elements below differ")
    elif ref.reduction != "mean" and best.reduction == "mean" and abs(abs(med) * best.n - 1) < 1e-3:
        ratio = sign / best.n
        lines.append(f"{what} is 1/{_n(best.n)} of {name}'s ({ref.reduction}): you divided by N = "
                     f"{_n(best.n)} as a mean does" if whole else
                     f"{what} is a mean over N = {_n(best.n)} where {name}'s is a {ref.reduction}: you divided by "
                     "N as a mean does, and beyond that factor the elements below differ")
    else:
        ratio = med
        lines.append(f"{what} is {abs(med):.4g}× {name}'s")
    if ratio < 0:
        lines.append(f"sign reversed: {what} has the opposite sign (descent direction instead of gradient?)")
    return ratio, lines


def _factor(part: Part, theirs, ref: Candidate, best: Candidate, dtype: str, exact) -> tuple[float, bool] | None:
    """The factor between the user's elements and `ref`'s: their median ratio where it holds of every element both
    give as nonzero, or the N of a mean where each element is `ref`'s or the exact value times it (a clip or a
    clamp of `ref`'s, which the elements after it explain); in a half dtype each ratio may be off by the ulp
    either side holds its number to. With it, whether it holds of most of `ref`'s elements (else mostly of the
    exact values, where `ref`'s depart)."""
    mine, tol = part.mine, part.tol
    both = (theirs != 0) & (mine != 0) & np.isfinite(theirs)
    if not both.any():
        return None
    r = mine[both] / theirs[both]
    med = float(np.median(r))
    sign = 1.0 if med > 0 else -1.0
    guesses = [med] + ([sign * float(ref.n)] if ref.reduction == "mean" else []) + (
        [sign / float(best.n)] if ref.reduction != "mean" and best.reduction == "mean" else [])
    def near(f: float) -> np.ndarray:
        slack = tol[both] / np.abs(theirs[both])
        if dtype in HALF:
            slack = slack + abs(f) * lowp.ulp(theirs[both], dtype) / np.abs(theirs[both])
        return np.abs(r - f) <= 1e-3 * abs(f) + slack

    if near(1.0).all():
        return None  # (no factor: the same numbers, to the digits given or the dtype's rounding)
    for i, f in enumerate(guesses):
        agree = near(f)
        if agree.all():
            return f, True
        if i > 0 and exact is not None:  # (a mean's N, not any ratio that happens to be the median)
            theirs_times = 2 * int(agree.sum()) >= agree.size
            with np.errstate(invalid="ignore", over="ignore"):
                e = f * exact[both]
                agree |= np.abs(mine[both] - e) <= 1e-3 * np.abs(e) + tol[both]
            if agree.all():
                return f, theirs_times
    return None


def _elements(q: Question, part: Part, theirs: np.ndarray, ref: Candidate, ratio: float,
              pool: list[Candidate]) -> list[str]:
    """Element by element, what is left once the common factor is taken out, with the reason that is true of it."""
    mine, tol = part.mine, part.tol
    scaled = theirs * ratio
    with np.errstate(invalid="ignore"):
        off = ~(np.abs(mine - scaled) <= tol)
    peers = [c for c in pool if c.reduction == ref.reduction and c.wrt == ref.wrt
             and same_options(c.options, ref.options) and c.convention != ref.convention]
    grouped: dict[str, list] = {}
    for idx in map(tuple, np.argwhere(off)[:12]):
        grouped.setdefault(_why(q, part, scaled[idx], idx, ref, ratio, peers), []).append(idx)
    lines = [f"{part.place(idxs)}: {why}" for why, idxs in grouped.items()]
    if off.sum() > 12:
        lines.append(f"… and {int(off.sum()) - 12} more elements differ")
    return lines


def _why(q: Question, part: Part, t: float, idx: tuple, ref: Candidate, ratio: float, peers: list[Candidate]
         ) -> str:
    """Why the user's element differs from `ref`'s (`t`, scaled by the common factor): a reason only where the
    numbers bear it out."""
    m = part.mine[idx]
    exact = next((c for c in peers if c.convention == "exact"), None)
    if ref.convention == "exact":
        exact = ref
    exact_grad = part.theirs(exact) if exact is not None else None
    e = exact_grad[idx] * ratio if exact_grad is not None else None
    at = part.pred_index(idx, q.batch.p.shape)  # (whose reasons: the prediction's this element goes with)
    if e is not None and abs(m - e) <= part.tol[idx]:
        # yours is the mathematics: what departs is the framework
        why = _true_reason(q, ref, at, t, e, ratio) if at is not None else None
        return why or f"yours is the exact value {float(m)!r}; {ref.convention}'s is {distinct(m, t)[1]}"
    for c in peers:
        theirs = part.theirs(c)
        if theirs is None:
            continue
        v = theirs[idx] * ratio
        if c.convention != "exact" and abs(m - v) <= part.tol[idx]:
            why = _true_reason(q, c, at, v, e, ratio) if e is not None and at is not None else None
            return f"yours is {c.convention}'s value here, not {ref.convention}'s" + (f": {why}" if why else "")
    a, b = repr(float(m)), distinct(m, t)[1]
    scale = "" if ratio == 1 else f" (×{_n(ratio) if abs(ratio) == ref.n else f'{ratio:.4g}'})"
    rel = f" ({abs(m - t) / abs(t):.2g} relative)" if t and np.isfinite(t) else ""
    return f"yours is {a}, {ref.convention}'s{scale} {b}: they differ by {_g(abs(m - t))}{rel}"


def _true_reason(q: Question, c: Candidate, idx: tuple, value: float, exact: float, ratio: float) -> str | None:
    """The first of `c`'s reasons for departing from the exact mathematics at `idx` whose claim holds of the
    numbers: its size bound, and for a claim of rounding, a departure within a few ulp of the operands."""
    return next(_true_reasons(q, c, idx, value, exact, ratio), None)


def _true_reasons(q: Question, c: Candidate, idx: tuple, value: float, base: float, ratio: float,
                  what: str = "grad") -> Iterator[str]:
    """Each of `c`'s reasons at `idx` that can explain how its `value` departs from `base` (the exact value, or
    another convention's): of a gradient element (`what` "grad") or a loss term ("loss")."""
    if value == base:
        return
    batch, logits, params = _path_inputs(q, _path_of(c))
    y2 = q.targets
    conv = weighed_convention(conventions.CONVENTIONS[c.convention], LOSSES[q.loss], q.batch.w is not None)
    rel = _rel(value, base)
    per_element = abs(ratio) / (c.n if c.reduction == "mean" else 1)
    opts = reason_options({**params, **c.options}, batch)
    for rule in element_reasons(conv, q.loss, y2, batch.p, logits, q.label_idx, opts):
        if not _applies(rule, idx, rel, what):
            continue
        why = rule[1](idx)
        bound = 16 * np.finfo(np.float32 if q.dtype == "float32" else np.float64).eps
        if "rounding" in why and abs(value - base) > bound * max(abs(base), max(1.0, abs(y2[idx])) * per_element):
            continue
        yield why


def _explain_loss(q: Question, ref: Candidate, best: Candidate, pool: list[Candidate]) -> list[str]:
    """How the user's loss departs from `ref`'s: the reduction, then the per-element terms."""
    if ref.value is None:
        return []
    if _loss_residual(q, ref.value) <= 1:
        return [f"{_head(ref)} your loss matches {ref.convention}'s"]
    my = q.my_loss[0]
    lines = [f"yours is {my!r}, {ref.convention}'s {distinct(my, ref.value)[1]}"]
    same = next((c for c in pool if c.convention == ref.convention and c.reduction == best.reduction
                 and c.wrt == ref.wrt and same_options(c.options, best.options)), None)
    if best.reduction != ref.reduction and "micro" not in (best.reduction, ref.reduction) and same is not None \
            and same.value is not None:
        kind = "a sum, not a mean" if best.reduction == "sum" else f"a mean (÷ N = {_n(best.n)}), not a sum"
        lines.append(f"yours is {kind}: {ref.convention}'s {best.reduction} is {distinct(same.value, my)[0]}")
    lines += _per_length(q, ref, pool) + _per_length_yours(q, ref, best)
    if best.residual <= 1 and (best.convention, best.wrt) != (ref.convention, ref.wrt):
        lines += _terms(q, same or ref, best, pool)
    return [_head(ref)] + ["  " + s for s in lines]


def _per_length_mean(q: Question, ref: Candidate) -> bool:
    """Whether `ref`'s mean divides each sequence's loss by its target length (PyTorch's reduction='mean'; weighed by
    sequence, its users' (loss * w).mean() divides by the batch size)."""
    conv = weighed_convention(conventions.CONVENTIONS[ref.convention], LOSSES[q.loss], q.batch.w is not None)
    return LOSSES[q.loss].kind == "sequence" and ref.reduction == "mean" and conv.ctc_mean == "target-length"


def _per_length_yours(q: Question, ref: Candidate, best: Candidate) -> list[str]:
    """The converse of _per_length: the user's numbers are the framework's mean that divides each sequence's loss
    by its target length first (PyTorch's), `ref`'s mean does not."""
    if best.residual > 1 or not _per_length_mean(q, best) or _per_length_mean(q, ref) or ref.reduction != "mean":
        return []
    lengths = ", ".join(_n(int(v)) for v in np.maximum(q.targets[:8, 2], 1)) + (", …" if len(q.targets) > 8 else "")
    return [f"yours is {best.convention}'s mean, which divides each sequence's loss by its target length ({lengths}) "
            f"before averaging over the batch (PyTorch's reduction='mean'); {ref.convention}'s mean averages the "
            "sequences' losses as they are"]


def _per_length_grad(q: Question, ref: Candidate, pool: list[Candidate]) -> list[str]:
    """The gradient's side of _per_length: the user's is the framework's sum over the batch size."""
    if not _per_length_mean(q, ref):
        return []
    total = next((c for c in pool if c.convention == ref.convention and c.reduction == "sum" and c.wrt == ref.wrt),
                 None)
    n = q.batch.p.shape[0]
    if total is None or _residual(q.mine, total.grad / n, q.tol) > 1:
        return []
    return [f"yours is the gradient of the plain mean of the sequences' losses; {ref.convention}'s mean divides "
            "each sequence's loss by its target length first (PyTorch's reduction='mean'; reduction='sum' over the "
            "batch size is yours)"]


def _per_length(q: Question, ref: Candidate, pool: list[Candidate]) -> list[str]:
    """A sequence loss whose framework's mean divides each sequence's loss by its target length first (PyTorch's
    ctc): said when the plain mean of that framework's losses is the user's."""
    if not _per_length_mean(q, ref):
        return []
    per = next((c.losses for c in pool if c.convention == ref.convention and c.reduction == "none"
                and c.wrt == ref.wrt and c.losses is not None), None)
    if per is None or _loss_residual(q, float(np.mean(per))) > 1:
        return []
    return [f"yours is the plain mean of the sequences' losses ({float(np.mean(per)):.10g}); "
            f"{ref.convention}'s mean divides each sequence's loss by its target length first (PyTorch's "
            "reduction='mean'; reduction='sum' over the batch size is yours)"]


def _terms(q: Question, ref: Candidate, best: Candidate, pool: list[Candidate]) -> list[str]:
    """Where `best`'s per-element loss terms (which give the user's loss) differ from `ref`'s, and why."""
    mine, theirs = best.losses, ref.losses
    if mine is None or theirs is None or mine.shape != theirs.shape:
        return []
    with np.errstate(invalid="ignore"):
        differ = ~((mine == theirs) | (np.abs(mine - theirs) <= REL * np.abs(theirs)))
    exact = next((c for c in pool if c.convention == "exact" and c.wrt == best.wrt and c.reduction == "none"), None)
    lines = []
    for idx in map(tuple, np.argwhere(differ)[:6]):
        a, b = distinct(mine[idx], theirs[idx])
        elementwise = mine.shape == q.batch.p.shape
        # (a sample's one term: the reasons of its row's cells)
        at = [idx] if elementwise else [(idx[0], k) for k in range(q.batch.p.shape[1])]
        why = _terms_why(q, best, ref, idx, exact, at) if elementwise or mine.ndim == 1 else ""
        place = places([idx], mine.shape) if elementwise else f"sample {idx[0]}"
        lines.append(f"{place}: {best.convention}'s term is {a}, {ref.convention}'s {b}{why}")
    if differ.sum() > 6:
        lines.append(f"… and {int(differ.sum()) - 6} more terms differ")
    return lines


def _terms_why(q: Question, best: Candidate, ref: Candidate, idx: tuple, exact: Candidate | None,
               at: list[tuple]) -> str:
    """Each side's reason for its term `idx` (whose reasons are those of the cells `at`), where the two differ: a
    reason both sides share (a clip both make) explains nothing between them; the others are measured against the
    other side's term."""
    if exact is None or exact.losses is None or best.losses is None or ref.losses is None:
        return ""
    e = exact.losses[idx]
    terms = {best.convention: best.losses[idx], ref.convention: ref.losses[idx]}
    whys = {c.convention: list(dict.fromkeys(
        w for cell in at for w in _term_reasons(q, c, cell, terms[c.convention],
                                                 [terms[o.convention] for o in (best, ref) if o is not c][0], e)))
            for c in (best, ref)}
    plain = {name: [w.replace(name, "") for w in ws] for name, ws in whys.items()}
    said = {}
    for name, other in ((best.convention, ref.convention), (ref.convention, best.convention)):
        said[name] = next((w for w, p in zip(whys[name], plain[name], strict=True) if p not in plain[other]), None)
    if not any(said.values()):
        return ""
    return " (" + "; ".join(w if w.startswith(name) else f"{name}: {w}" for name, w in said.items() if w) + ")"


def _term_reasons(q: Question, c: Candidate, idx: tuple, term: float, other: float, exact: float) -> list[str]:
    """`c`'s reasons for its term: against the other side's term, or, where none holds there, the exact one."""
    if c.convention == "exact" or term == exact:
        return []
    return (list(_true_reasons(q, c, idx, term, other, 1.0, "loss"))
            or list(_true_reasons(q, c, idx, term, exact, 1.0, "loss")))


# ---------------------------------------------------------------- check: the options left out

# the options check solves for when the user did not pass them. Affine: the gradient and the loss are affine in
# the option (two evaluations give the line, least squares over the elements gives the value); factors: each
# class's or sample's gradient is the plain one times its weight; searched: a one-dimensional search over a range
# (geometric when `log`; None: from the data's |p − y|); flags: tried on.
AFFINE = {"label_smoothing": (0.0, 0.5), "pos_weight": (1.0, 2.0), "alpha": (0.0, 1.0)}
FACTORS = ("class_weights", "sample_weight")
SEARCHED: dict[str, tuple[float, float, bool] | None] = {"eps": (1e-12, 0.3, True), "gamma": (0.0, 6.0, False),
                                                          "delta": None, "beta": None,
                                                          "temperature": (1e-3, 10.0, True)}
FLAGS = ("log_input", "log_target", "zero_infinity", "full", "squared", "dot", "jaccard", "over_batch")
# the definitions a loss goes by under one name, each the switches that give it, and what it is in words: tried
# against the user's numbers before any weight is fitted to them (each with the temperature solved for too, where
# the user gave none)
DEFINITIONS: dict[str, dict[str, tuple[dict[str, bool], str]]] = {
    "contrastive": {
        "infonce": ({"ntxent": False, "symmetric": False, "decoupled": False},
                    "one-directional InfoNCE (van den Oord's; CLIP's image→text half): each anchor's positive picked "
                    "out of the B targets, its negatives the other B − 1"),
        "clip": ({"ntxent": False, "symmetric": True, "decoupled": False},
                 "CLIP's symmetric loss: the mean of InfoNCE from the anchors to the targets and from the targets "
                 "back to the anchors"),
        "ntxent": ({"ntxent": True, "symmetric": False, "decoupled": False},
                   "NT-Xent (SimCLR, optax's ntxent): the 2B rows [pred; target], each row's positive its partner "
                   "view, its negatives the other 2B − 2 rows, each sample's loss the mean of its two rows'"),
        "dcl": ({"ntxent": False, "symmetric": False, "decoupled": True},
                "decoupled InfoNCE (DCL, Yeh et al.): each anchor's positive left out of its own denominator, "
                "only its B − 1 negatives there (--decoupled)"),
        "dcl-clip": ({"ntxent": False, "symmetric": True, "decoupled": True},
                     "CLIP's symmetric loss decoupled (DCL): both directions with the positive left out of its "
                     "denominator (--symmetric --decoupled)"),
        "dcl-ntxent": ({"ntxent": True, "symmetric": False, "decoupled": True},
                       "NT-Xent decoupled (DCL, Yeh et al.'s SimCLR form): each of the 2B rows against its 2B − 2 "
                       "negatives alone, its positive left out of its denominator (--ntxent --decoupled)"),
    },
}
DEFINITION_KEYS = {k for defs in DEFINITIONS.values() for switches, _ in defs.values() for k in switches}


def _unknowns(q: Question) -> list[str]:
    """The options of this loss that change the numbers and that the user did not give."""
    names = [p.name for p in LOSSES[q.loss].params] + ["eps"]
    if q.batch.w is None and q.mine is not None:
        names.append("sample_weight")
    return [n for n in names if q.params.get(n) in (None, False) and n != "ignore_index" and n not in DEFINITION_KEYS]


def _given_switches(q: Question) -> list[str]:
    """The loss's switches that change the numbers and that the user turned on."""
    return [p.name for p in LOSSES[q.loss].params if p.name in FLAGS and q.params.get(p.name) is True]


def solve(q: Question) -> list[Candidate]:
    """Candidates that match once an option the user left out is given a value (solved for, then rounded to the
    fewest digits that still match)."""
    equations = (0 if q.mine is None else q.mine.size) + (q.my_loss is not None)
    # (one number fits any one-parameter family, so nothing would be learnt by fitting one to it; but a switch is
    # no fit: a loss alone, --my-loss, can still say that --full explains it)
    fitted = q.mine is not None and equations >= 2
    if not fitted and q.my_loss is None:
        return []
    found = []
    for name in _unknowns(q) + _given_switches(q):
        if not fitted and name not in FLAGS:
            continue
        for conv in ORDER:
            for path in _paths(q):
                for reduction in ("mean", "sum"):
                    found += _solve_one(q, name, conv, path, reduction)
    return found + (_definitions(q) if fitted else [])


def _given_definition(q: Question) -> str | None:
    """Which of the loss's definitions the user's switches name (None: the loss has one)."""
    defs = DEFINITIONS.get(q.loss, {})
    return next((d for d, (switches, _) in defs.items()
                 if all(bool(q.params.get(k)) == v for k, v in switches.items())), None)


def _definitions(q: Question) -> list[Candidate]:
    """Candidates under each other definition of the loss (the switches that differ from the user's), and where
    the user gave no temperature, with it solved for."""
    found = []
    mine = _given_definition(q)
    for name, (switches, _) in DEFINITIONS.get(q.loss, {}).items():
        if name == mine:
            continue
        base = {k: v for k, v in switches.items() if bool(q.params.get(k)) != v}
        for conv in ORDER:
            for path in _paths(q):
                for reduction in ("mean", "sum"):
                    found += [c for c in _evaluate(q, path, conv, reduction, base) if c.residual <= 1]
                    if "temperature" in _unknowns(q):
                        found += [c for wrt, v in _searched(q, "temperature", conv, path, reduction, base)
                                  if (c := _settle(q, "temperature", v, conv, path, reduction, wrt, base))]
    return found


def definition_findings(q: Question, best: Candidate) -> list[str]:
    """Where the user's numbers are another definition of the loss than the one checked: which, in words."""
    theirs = _given_definition(q)
    if theirs is None or not any(k in DEFINITION_KEYS for k in best.options):
        return []
    defs = DEFINITIONS[q.loss]
    yours = next(d for d, (switches, _) in defs.items()
                 if all(best.options.get(k, bool(q.params.get(k))) == v for k, v in switches.items()))
    return [f"yours is {defs[yours][1]}; the one checked ({theirs}) is {defs[theirs][1]}"]


def _solve_one(q: Question, option: str, conv: str, path: str, reduction: str) -> list[Candidate]:
    if option in AFFINE:
        values = _affine(q, option, conv, path, reduction)
    elif option in FACTORS:
        values = _factors(q, option, conv, path, reduction)
    elif option in SEARCHED:
        values = _searched(q, option, conv, path, reduction)
    else:
        on = not q.params.get(option)  # (a switch the user left off tried on; one they gave, off)
        values = [(wrt, on) for wrt in ("pred", "logits", "probs")] if option in FLAGS else []
    out = []
    for wrt, v in values:
        c = _settle(q, option, v, conv, path, reduction, wrt)
        if c is not None:
            out.append(c)
    return out


def _pair(q: Question, option: str, a, conv: str, path: str, reduction: str) -> dict[str, Candidate]:
    return {c.wrt: c for c in _evaluate(q, path, conv, reduction, {option: a})}


def _affine(q: Question, option: str, conv: str, path: str, reduction: str) -> list[tuple[str, Any]]:
    a0, a1 = AFFINE[option]
    c0, c1 = _pair(q, option, a0, conv, path, reduction), _pair(q, option, a1, conv, path, reduction)
    out = []
    for wrt in c0.keys() & c1.keys():
        # one unknown per output column for pos_weight, else one
        k = q.batch.p.shape[1]
        groups = np.broadcast_to(np.arange(k), q.batch.p.shape) if option == "pos_weight" and k > 1 else None
        t = _line_fit(q, c0[wrt], c1[wrt], groups)
        if t is not None:
            out.append((wrt, a0 + (a1 - a0) * t if groups is None else a0 + (a1 - a0) * np.asarray(t)))
    return out


def _line_fit(q: Question, c0: Candidate, c1: Candidate, groups) -> Any:
    """t minimising the weighted squares of mine − (c0 + t·(c1 − c0)), over the elements and the loss; per group
    when `groups` labels the elements."""
    rows_d, rows_r = [], []
    if q.mine is not None:
        d = (c1.grad.reshape(q.mine.shape) - c0.grad.reshape(q.mine.shape)) / q.tol
        r = (q.mine - c0.grad.reshape(q.mine.shape)) / q.tol
        if groups is not None:
            fits = [_lsq(d[groups == g], r[groups == g]) for g in range(int(groups.max()) + 1)]
            return None if any(f is None for f in fits) else fits
        rows_d, rows_r = list(d.reshape(-1)), list(r.reshape(-1))
    if q.my_loss is not None and c0.value is not None and c1.value is not None:
        rows_d.append((c1.value - c0.value) / q.my_loss[1])
        rows_r.append((q.my_loss[0] - c0.value) / q.my_loss[1])
    return _lsq(np.array(rows_d), np.array(rows_r))


def _lsq(d: np.ndarray, r: np.ndarray) -> float | None:
    with np.errstate(all="ignore"):
        keep = np.isfinite(d) & np.isfinite(r)
        dd = float(np.dot(d[keep], d[keep]))
        return float(np.dot(d[keep], r[keep]) / dd) if dd > 0 and keep.sum() > 1 else None


def _factors(q: Question, option: str, conv: str, path: str, reduction: str) -> list[tuple[str, Any]]:
    """Per class (ce, nll with class labels) or per sample (more than one gradient element each): the factor
    that scales the plain gradient onto the user's."""
    shape = q.batch.p.shape
    if option == "class_weights":
        y2 = q.targets
        if LOSSES[q.loss].kind != "rows" or not np.all((y2 == 0) | (y2 == 1)) or not np.all(y2.sum(1) == 1):
            return []
        rows_group, count = np.argmax(y2, axis=1), shape[1]
    else:
        if shape[1] < 2:
            return []  # one element per sample: any gradient would fit, so nothing is learnt
        rows_group, count = np.arange(shape[0]), shape[0]
    groups = np.broadcast_to(rows_group[:, None], shape)
    out = []
    for wrt, c in _pair(q, option, None, conv, path, reduction).items():
        g, mine = c.grad.reshape(shape) / q.tol, q.mine / q.tol
        f = [_lsq(g[groups == k], mine[groups == k]) if (groups == k).any() else 1.0 for k in range(count)]
        if all(v is not None and v >= 0 for v in f):
            out.append((wrt, np.array(f)))
    return out


def _searched(q: Question, option: str, conv: str, path: str, reduction: str,
              base: dict | None = None) -> list[tuple[str, Any]]:
    """A grid over the option's range, then a golden-section search around the best point (`base`: further
    options held fixed)."""
    span: Any = SEARCHED[option]
    if span is None:
        e = np.abs(q.batch.p - q.batch.y) if q.batch.y.shape == q.batch.p.shape else np.abs(q.batch.p)
        e = e[e > 0]
        if not e.size:
            return []
        span = (float(e.min()) / 4, float(e.max()) * 2, True)
    lo, hi, log = span
    to_v = (lambda u: float(np.exp(u))) if log else float
    a, b = (np.log(lo), np.log(hi)) if log else (lo, hi)

    def cost(u: float) -> tuple[float, str]:
        cs = _evaluate(q, path, conv, reduction, {**(base or {}), option: to_v(u)})
        return min(((c.residual, c.wrt) for c in cs), default=(np.inf, ""))

    grid = np.linspace(a, b, 33)
    costs = [cost(u)[0] for u in grid]
    i = int(np.argmin(costs))
    if not np.isfinite(costs[i]):
        return []
    lo_u, hi_u = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    u = _golden(lambda x: cost(x)[0], lo_u, hi_u)
    return [(cost(u)[1], to_v(u))]


def _golden(f: Callable[[float], float], a: float, b: float, steps: int = 40) -> float:
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(steps):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2


def _settle(q: Question, option: str, value, conv: str, path: str, reduction: str, wrt: str,
            base: dict | None = None) -> Candidate | None:
    """The solved value rounded to the fewest significant digits that still explain the user's numbers (or None
    when even the full value does not, or it is the value a plain run uses); `base`: further options held."""
    for digits in (1, 2, 3, 4, 5, 6, 8, 10, 17):
        v = value if isinstance(value, bool) else _round_sig(value, digits)
        if _is_default(q, option, v, conv):
            continue
        c = next((c for c in _evaluate(q, path, conv, reduction, {**(base or {}), option: v}) if c.wrt == wrt),
                 None)
        if c is not None and c.residual <= 1:
            if isinstance(v, np.ndarray) and np.all(v == v.reshape(-1)[0]) and option == "pos_weight":
                c.options = {option: float(v.reshape(-1)[0])}
            return c
        if isinstance(value, bool):
            return None
    return None


def _round_sig(v, digits: int):
    if isinstance(v, np.ndarray):
        return np.array([float(f"{x:.{digits}g}") for x in v.reshape(-1)])
    return float(f"{v:.{digits}g}")


def _is_default(q: Question, option: str, v, conv: str) -> bool:
    """The value a run without the option uses (so it cannot explain what a plain run did not); for a switch, the
    value the user's own run has."""
    if option in FLAGS:
        return bool(v) == bool(q.params.get(option))
    neutral = {"pos_weight": 1.0, "class_weights": 1.0, "sample_weight": 1.0, "label_smoothing": 0.0,
               "eps": conventions.CONVENTIONS[conv].eps}
    default = neutral.get(option, next((p.default for p in LOSSES[q.loss].params if p.name == option), None))
    return default is not None and bool(np.all(np.asarray(v) == default))


def micro_findings(q: Question, best: Candidate, cands: list[Candidate]) -> list[str]:
    """--micro-batches: whether the user's numbers are the mean of the micro-batch means (gradient accumulation
    that averages each micro-batch) or the true mean over every counted sample, and how far apart the two are."""
    if not q.micro or best.options.get("over_batch"):  # (one loss over the batch: no mean to split)
        return []
    m = best.micro or next((c.micro for c in cands if c.micro is not None and c.convention == best.convention
                            and c.wrt == best.wrt), None)
    if m is None:
        return []
    what = m.unit
    over = f"over all {m.n:,} counted {what}" if isinstance(m.n, int) else f"over the whole batch (N = {m.n:g})"
    counts = ", ".join(map(_n, m.counts[:8])) + (", …" if m.k > 8 else "")
    if m.value == m.true_value:
        same = f"the mean of the {m.k} micro-batch means and the mean {over} are the same here (n = {counts})"
        return [same + ("" if m.k == 1 else ": only micro-batches of unequal n, or weights, tell them apart")]
    if best.micro is None:
        return [f"your numbers are the mean {over}, not the mean of the {m.k} per-micro-batch means (n = "
                f"{counts}), which is {distinct(m.value, m.true_value)[0]}, {m.ratio:.4g}× it"]
    yours = ("loss is" if q.mine is None else "loss and gradient are those of" if q.my_loss is not None
             else "gradient is that of")
    theirs = "yours" if q.mine is None else "the mean of means"
    lines = [f"your {yours} the mean of {m.k} per-micro-batch means (n = "
             f"{counts}); {over} it is {distinct(m.true_value, m.value)[0]} ({theirs} is {m.ratio:.4g}× it)"]
    if q.mine is not None:
        lines.append(f"  each element's derivative is divided by {m.k}·n of its micro-batch; the true mean divides "
                     f"every one by N = {_n(m.n)}: average the losses over all counted {what} of the batch (sum "
                     f"each micro-batch's losses and divide by the batch's N) to get the true mean's gradient")
    return lines
