"""`compare` and `check`: the same inputs under every convention, and which one explains a user's numbers.

The reasons given are read off the conventions' data (a clip, an ε inside a log, a clamp, the N of a mean), so a
new convention explains itself without code here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from . import conventions
from .api import Result, run
from .errors import OptionError
from .inputs import Batch
from .losses import LOSSES
from .losses._ops import sigmoid, softmax
from .losses.base import _g
from .options import setup
from .render import WRT, places

REL = 1e-12  # cells closer than this to the exact convention are "the same"


def supported(loss: str, from_logits: bool, params=None) -> tuple[list[str], dict[str, str]]:
    """Conventions that have `loss` in this mode (and with the switches in `params`, such as kl's --log-input),
    and the reason each of the others gives."""
    modes = ["logits" if from_logits else "probs"] + [k for k, v in (params or {}).items() if v is True]
    have: list[str] = []
    lack: dict[str, str] = {}
    for name, conv in conventions.CONVENTIONS.items():
        reason = next((conv.lacks[(loss, m)] for m in modes if (loss, m) in conv.lacks), None)
        (lack.__setitem__(name, reason) if reason else have.append(name))
    return have, lack


def evaluate_all(loss, batch: Batch, *, from_logits, reduction, labels, dtype="float64", names=None,
                 params=None) -> dict[str, Result]:
    have, _ = supported(loss, from_logits, params)
    out = {}
    for name in names or have:
        s = setup(loss, from_logits=from_logits, reduction=reduction, convention=name, dtype=dtype, labels=labels,
                  sample_weight=batch.w is not None, **(params or {}))
        out[name] = run(s, batch)
    return out




def element_reasons(conv, loss: str, y2, p2, from_logits: bool, labels) -> list[tuple]:
    """(mask over the predictions, text(idx)[, largest relative difference it explains]) for each way `conv`'s
    numbers depart from the exact mathematics: the loss's own, then the per-sample mean over outputs."""
    spec = LOSSES[loss]
    rules = spec.reasons(conv, y2, p2, from_logits, labels) if spec.reasons else []
    k = p2.shape[1]
    if conv.last_axis_mean and spec.kind == "elementwise" and spec.last_axis is None and k > 1:
        rules.append((np.ones_like(p2, dtype=bool),
                      lambda i: f"{conv.name} averages each sample's {k} outputs before the batch reduction, so its "
                                f"sum and per-sample losses carry a 1/{k}"))
    return rules


def _reason(reasons, idx, rel: float):
    for rule in reasons:
        mask, text = rule[0], rule[1]
        if mask[idx] and (len(rule) < 3 or rel <= rule[2]):
            return text(idx)
    return None


def differences(name: str, res: Result, exact: Result, reasons, shape) -> list[dict]:
    """Where `res` departs from `exact` (beyond 1e-12 relative), each element with the first reason that applies."""
    e = exact.grad
    g: np.ndarray = res.grad.reshape(e.shape)
    with np.errstate(invalid="ignore"):
        differ = ~((g == e) | (np.isfinite(e) & (np.abs(g - e) <= REL * np.abs(e))))
    found = []
    for i, j in np.argwhere(differ):
        idx = (int(i), int(j))
        rel = abs(g[idx] - e[idx]) / abs(e[idx]) if e[idx] and np.isfinite(e[idx]) else float("inf")
        why = _reason(reasons, idx, rel)
        if why is None:
            why = (f"rounding in {name}'s formulation ({rel:.1e} relative)" if rel < 1e-6
                   else f"{name} computes it differently ({_g(g[idx])} against {_g(e[idx])})")
        user_idx = tuple(int(k) for k in np.unravel_index(idx[0] * g.shape[-1] + idx[1], shape))
        found.append({"convention": name, "element": list(user_idx), "place": places([user_idx], shape), "why": why})
    return found


# ---------------------------------------------------------------- compare


@dataclass
class Comparison:
    loss: str
    from_logits: bool
    reduction: str
    results: dict
    unsupported: dict
    differences: list
    shape: tuple

    def as_dict(self) -> dict:
        """The comparison as a tree of plain values and arrays (render writes it as JSON)."""
        return {
            "loss": self.loss,
            "from_logits": self.from_logits,
            "reduction": self.reduction,
            "conventions": {
                name: {"n": r.n, "value": r.value,
                       "losses": r.losses if r.per_sample else r.losses.reshape(self.shape),
                       "grad": r.grad.reshape(self.shape)}
                for name, r in self.results.items()
            },
            "unsupported": self.unsupported,
            "differences": self.differences,
        }


def compare(loss: str, batch: Batch, *, from_logits=False, reduction="mean", labels="auto", dtype="float64",
            params=None) -> Comparison:
    """`loss` under every convention that has it."""
    p2, shape = batch.p, batch.shape
    results = evaluate_all(loss, batch, from_logits=from_logits, reduction=reduction, labels=labels, dtype=dtype,
                           params=params)
    _, lack = supported(loss, from_logits, params)
    exact = results["exact"]
    diffs = []
    for name, res in results.items():
        if name == "exact":
            continue
        conv = conventions.CONVENTIONS[name]
        reasons = element_reasons(conv, loss, exact.target.reshape(p2.shape), p2, from_logits, exact.labels)
        diffs += differences(name, res, exact, reasons, shape)
        if res.n != exact.n and reduction == "mean":
            diffs.append({"convention": name, "element": None,
                          "why": f"{name}'s mean divides by N = {res.n}, exact's by N = {exact.n}"})
    return Comparison(loss, from_logits, reduction, results, lack, diffs, shape)


# ---------------------------------------------------------------- check


@dataclass
class Candidate:
    convention: str
    reduction: str
    wrt: str  # "pred" or "logits" (or "probs" when the inputs are logits)
    grad: np.ndarray
    value: float | None
    n: int | float
    residual: float = np.inf  # worst element's difference in units of its tolerance
    flipped: float = np.inf  # the same with the sign of the user's numbers reversed


@dataclass
class Diagnosis:
    shape: tuple
    match: Candidate | None
    nearest: Candidate
    findings: list = field(default_factory=list)
    also: list = field(default_factory=list)


def tolerance(tokens: list[str], values: np.ndarray) -> np.ndarray:
    """Per element: 1e-6 relative, or half a unit in the last digit the user typed, whichever is larger."""
    tol = []
    for tok, v in zip(tokens, values.reshape(-1), strict=True):
        mant, _, exp = tok.lower().partition("e")
        digits = len(mant.split(".")[1]) if "." in mant else 0
        unit = 10.0 ** (-digits + (int(exp) if exp else 0))
        tol.append(max(1e-6 * abs(v), 0.5 * unit, 1e-300))
    return np.array(tol).reshape(values.shape)


def candidates(loss, batch: Batch, *, from_logits, labels, dtype="float64", params=None) -> list[Candidate]:
    out = []
    p2 = batch.p
    for reduction in ("mean", "sum", "none"):
        res = evaluate_all(loss, batch, from_logits=from_logits, reduction=reduction, labels=labels, dtype=dtype,
                           params=params)
        for name, r in res.items():
            out.append(Candidate(name, reduction, "logits" if from_logits else "pred", r.grad, r.value, r.n))
            if r.grad_logits is not None:
                out.append(Candidate(name, reduction, "logits", r.grad_logits, r.value, r.n))
    if from_logits and LOSSES[loss].has_logits:
        # gradients with respect to what the logits stand for: the same loss on sigma(z), softmax(z) or the rate e^z
        link = LOSSES[loss].link
        with np.errstate(over="ignore"):
            probs = LINKS[link](p2)
        have_probs = [n for n in supported(loss, False, params)[0]]
        for reduction in ("mean", "sum", "none"):
            if not np.isfinite(probs).all():
                break
            res = evaluate_all(loss, replace(batch, p=probs), from_logits=False, reduction=reduction,
                               labels=labels, dtype=dtype, names=have_probs,
                               params={k: v for k, v in (params or {}).items() if k != "pos_weight"})
            for name, r in res.items():
                out.append(Candidate(name, reduction, "probs", r.grad, r.value, r.n))
    return out


# what --from-logits predictions stand for (Loss.link)
LINKS: dict[str | None, Callable[[np.ndarray], np.ndarray]] = {"sigmoid": sigmoid, "softmax": softmax, "exp": np.exp}


def _residual(mine: np.ndarray, theirs: np.ndarray, tol: np.ndarray) -> float:
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(mine - theirs.reshape(mine.shape)) / tol
    d = np.where(np.isnan(d), np.inf, d)
    return float(d.max())


def check(loss, batch: Batch, my_grad, my_grad_tokens, *, from_logits=False, labels="auto", against=None,
          reduction=None, my_loss=None, dtype="float64", params=None) -> Diagnosis:
    p2, shape = batch.p, batch.shape
    mine = np.asarray(my_grad, dtype=np.float64)
    if mine.size != p2.size:
        raise OptionError("my_grad", f"has {mine.size} values but the predictions have {p2.size}")
    mine = mine.reshape(p2.shape)
    tol = tolerance(my_grad_tokens, mine)
    cands = candidates(loss, batch, from_logits=from_logits, labels=labels, dtype=dtype, params=params)
    exact = evaluate_all(loss, batch, from_logits=from_logits, reduction="none", labels=labels, names=["exact"],
                         params=params)
    targets_used, label_idx = exact["exact"].target.reshape(p2.shape), exact["exact"].labels
    for c in cands:
        c.residual = _residual(mine, c.grad, tol)
        c.flipped = _residual(-mine, c.grad, tol)
        if my_loss is not None and c.value is not None:
            t = max(1e-6 * abs(my_loss[0]), my_loss[1])
            c.residual = max(c.residual, abs(my_loss[0] - c.value) / t)
    # the closest first; among ties, the plain mathematics before a framework, the mean before sum and none
    order = list(conventions.CONVENTIONS)
    def rank(c):
        magnitude = -1 if c.residual <= 0.1 else (0 if c.residual <= 1 else np.log10(c.residual))
        return magnitude, order.index(c.convention), ("mean", "sum", "none").index(c.reduction), c.residual

    cands.sort(key=rank)
    best = cands[0]
    match = best if best.residual <= 1 else None
    if match is None:
        # nothing fits as given: the nearest, allowing for a reversed sign (said in the findings)
        best = min(cands, key=lambda c: (min(c.residual, c.flipped), order.index(c.convention)))
    diag = Diagnosis(shape=shape, match=match, nearest=best)
    if match:
        # sum and none have the same gradient: name one of them
        seen = {(match.convention, match.wrt, match.reduction in ("sum", "none"))}
        for c in cands[1:]:
            key = (c.convention, c.wrt, c.reduction in ("sum", "none"))
            if c.residual <= 1 and key not in seen:
                seen.add(key)
                diag.also.append(c)
        diag.also = diag.also[:6]
    # against which framework to explain: the one asked for, else each framework that has the loss
    have, _ = supported(loss, from_logits, params)
    frameworks = [against] if against else [n for n in have if n != "exact"]
    wrt = best.wrt
    for name in frameworks:
        red = reduction or "mean"
        ref = next((c for c in cands if c.convention == name and c.reduction == red and c.wrt == wrt), None)
        if ref is None:
            ref = next((c for c in cands if c.convention == name and c.reduction == red), None)
        if ref is None:
            continue
        diag.findings += _explain_against(loss, targets_used, p2, from_logits, label_idx, mine, tol, ref, best)
    if match is None and loss in ("bce", "ce") and not from_logits:
        act = "sigmoid" if loss == "bce" else "softmax"
        diag.findings.append(
            f"if these probabilities came straight out of Keras' {act} (a tensor, not a copy), Keras silently used "
            f"the logits behind them: run the check again on the logits with {{from_logits}}")
    return diag


def _explain_against(loss, y2, p2, from_logits, labels, mine, tol, ref: Candidate, best: Candidate) -> list[str]:
    """Plain sentences for how the user's gradient departs from `ref`'s."""
    conv = conventions.CONVENTIONS[ref.convention]
    theirs = ref.grad.reshape(mine.shape)
    head = f"against {conv.name} ({ref.reduction}{f' over N={ref.n}' if ref.reduction == 'mean' else ''}):"
    lines = []
    if _residual(mine, theirs, tol) <= 1:
        return [f"{head} your gradient matches {conv.name}'s"]
    if best.wrt != ref.wrt or (best.wrt == "logits" and not from_logits):
        lines.append(f"these look like gradients with respect to {WRT[best.wrt]}"
                     + (" (σ(z) − y)" if loss == "bce" and best.wrt == "logits" else "")
                     + f", not to {WRT['logits' if from_logits else 'pred']}")
    # a common factor over the elements both sides give as nonzero
    both = (theirs != 0) & (mine != 0) & np.isfinite(theirs)
    ratio = None
    if both.any():
        r = mine[both] / theirs[both]
        med = float(np.median(r))
        if np.all(np.abs(r - med) <= 1e-3 * abs(med) + tol[both] / np.abs(theirs[both])):
            ratio = med
    if ratio is not None and abs(ratio - 1) > 1e-6:
        n = ref.n
        sign = 1 if ratio > 0 else -1
        if ref.reduction == "mean" and abs(abs(ratio) - n) <= 1e-3 * n:
            ratio = sign * n  # the factor is N itself; what is left over is for the elements to explain
            lines.append(f"your gradient is {n:.3f}× {conv.name}'s (mean over N={n}): "
                         "you left out the 1/N of the mean")
        elif ref.reduction != "mean" and best.reduction == "mean" and abs(abs(ratio) * best.n - 1) < 1e-3:
            ratio = sign / best.n
            lines.append(f"your gradient is 1/{best.n} of {conv.name}'s ({ref.reduction}): you divided by N = "
                         f"{best.n} as a mean does")
        elif abs(abs(ratio) - 1) > 1e-3:
            lines.append(f"your gradient is {abs(ratio):.4g}× {conv.name}'s")
        else:
            ratio = float(sign)
        if ratio < 0:
            lines.append("sign reversed: your gradient has the opposite sign (descent direction instead of gradient?)")
        scaled = theirs * ratio
    else:
        scaled = theirs
    # element by element, what is left
    reasons = element_reasons(conv, loss, y2, p2, from_logits, labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        off = np.abs(mine - scaled) > tol
    grouped: dict[str, list] = {}
    for idx in map(tuple, np.argwhere(off)[:12]):
        rel = abs(mine[idx] - scaled[idx]) / abs(scaled[idx]) if scaled[idx] else float("inf")
        why = _reason(reasons, idx, rel) or f"yours is {_g(mine[idx])}, {conv.name}'s {_g(scaled[idx])}"
        grouped.setdefault(why, []).append(idx)
    for why, idxs in grouped.items():
        lines.append(f"{places(idxs, mine.shape)}: {why}")
    if off.sum() > 12:
        lines.append(f"… and {int(off.sum()) - 12} more elements differ")
    if not lines:
        lines.append(f"your gradient is {conv.name}'s up to the digits given")
    return [head] + ["  " + s for s in lines]
