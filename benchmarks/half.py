"""What float16 and bfloat16 cost: the worst and median error of ce, bce, mse and kl computed in a half dtype, against
the float64 truth for the inputs as the dtype holds them, for every convention lossgrad computes in that dtype and
for the frameworks themselves (PyTorch, Keras, optax) where they are installed.

    python benchmarks/accuracy.py --half [--rounds N] [--seed S]

Inputs are drawn as a language model's: logits of a few hundred rows over 1,000 or 32,000 classes, a few of them
dominant, some rows saturated; the truth is lossgrad's exact convention in float64 (within a few float64 ulps, far
below any half ulp). A convention or setting lossgrad refuses (OptionError) is a row of "—".
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossgrad import __version__, api, lowp
from lossgrad.conventions import CONVENTIONS
from lossgrad.errors import LossgradError, OptionError
from lossgrad.inputs import read_arrays
from lossgrad.options import setup

DTYPES = ("bfloat16", "float16")


@dataclass(frozen=True)
class Case:
    """A loss as a model meets it: lossgrad's name and options, and how its inputs are drawn."""

    title: str
    loss: str
    options: dict[str, Any]
    draw: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
    reductions: tuple[str, ...] = ("mean",)  # the first lossgrad accepts for a convention


# ---------------------------------------------------------------- inputs


def lm_logits(rng: np.random.Generator, rows: int, classes: int) -> np.ndarray:
    """Logits as a language model's: normal, a few classes per row well above the rest, one row in ten saturated
    (one class 30 to 60 above the others)."""
    z = rng.normal(scale=rng.uniform(1.0, 3.0, (rows, 1)), size=(rows, classes))
    for r in range(rows):
        top = rng.choice(classes, rng.integers(1, 6), replace=False)
        z[r, top] += rng.uniform(4.0, 12.0, top.size)
        if rng.random() < 0.1:
            z[r, top[0]] += rng.uniform(30.0, 60.0)
    return z


def ce_inputs(rows: int, classes: int) -> Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]:
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Class indexes: the row's top class half the time (a loss near 0 to 1), else any class (near log V)."""
        z = lm_logits(rng, rows, classes)
        labels = np.where(rng.random(rows) < 0.5, z.argmax(axis=1), rng.integers(0, classes, rows))
        return labels.astype(float), z

    return draw


def bce_inputs(rng: np.random.Generator, n: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Multi-label logits: hard labels (a tenth soft), logits of scale 3, a tenth saturated at ±20 to ±40."""
    y = np.where(rng.random(n) < 0.9, rng.integers(0, 2, n).astype(float), rng.random(n))
    z = rng.normal(scale=3.0, size=n)
    sat = rng.random(n) < 0.1
    z[sat] = rng.choice([-1.0, 1.0], sat.sum()) * rng.uniform(20.0, 40.0, sat.sum())
    return y[:, None], z[:, None]


def mse_inputs(rng: np.random.Generator, n: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Regression targets of unit scale, predictions off by 0.01 to 1 (a trained model and an untrained one)."""
    y = rng.normal(size=n)
    p = y + rng.normal(size=n) * 10.0 ** rng.uniform(-2, 0, n)
    return y[:, None], p[:, None]


def kl_inputs(rng: np.random.Generator, rows: int = 256, classes: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Distillation: a teacher's softmax (temperature 2) as the target, a student's log-softmax of the teacher's
    logits plus noise as the prediction (PyTorch's kl_div takes log-probabilities)."""
    zt = lm_logits(rng, rows, classes)
    zs = zt + rng.normal(scale=0.5, size=zt.shape)
    e = np.exp(zt / 2 - (zt / 2).max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), zs - zs.max(axis=1, keepdims=True) - np.log(
        np.exp(zs - zs.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True))


CASES = (Case("ce, logits, V = 1,000", "ce", {"from_logits": True, "labels": "index"}, ce_inputs(512, 1000)),
         Case("ce, logits, V = 32,000", "ce", {"from_logits": True, "labels": "index"}, ce_inputs(128, 32_000)),
         Case("bce, logits", "bce", {"from_logits": True}, bce_inputs),
         Case("mse", "mse", {}, mse_inputs),
         Case("kl, log-probabilities (batchmean)", "kl", {"log_input": True}, kl_inputs, ("batchmean", "mean")))


def held(a: np.ndarray, dtype: str) -> np.ndarray:
    """`a` as `dtype` holds it, in float64."""
    return np.asarray(a, dtype=np.float64).astype(lowp.half_dtype(dtype)).astype(np.float64)


def as_held(case: Case, y: np.ndarray, p: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """The inputs rounded to the dtype (class indexes stay as they are)."""
    return (y if case.options.get("labels") == "index" else held(y, dtype)), held(p, dtype)


# ---------------------------------------------------------------- results and their errors


@dataclass
class Outcome:
    """A computation's results in float64: per-element losses, gradient of the reduced value, the reduced value."""

    losses: np.ndarray
    grad: np.ndarray
    value: float


@dataclass
class Errors:
    """Every error seen of one row of the table, over the rounds: relative and in ulps of the dtype."""

    rel: dict[str, list[np.ndarray]] = field(default_factory=lambda: {"value": [], "losses": [], "grad": []})
    ulp: dict[str, list[np.ndarray]] = field(default_factory=lambda: {"value": [], "losses": [], "grad": []})
    missing: str = ""

    def add(self, got: Outcome, truth: Outcome, dtype: str) -> None:
        for name in ("value", "losses", "grad"):
            a = np.ravel(getattr(got, name)).astype(np.float64)
            t = np.ravel(getattr(truth, name)).astype(np.float64)
            if a.size != t.size:  # (a per-element loss where the truth has one per row: not comparable)
                continue
            self.rel[name].append(relative(a, t))
            self.ulp[name].append(in_ulps(a, t, dtype))


def relative(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """|a − t| / |t|; where the truth is 0 or infinite, 0 for the same value and inf for any other."""
    with np.errstate(all="ignore"):
        r = np.abs(a - t) / np.abs(t)
    return np.where(a == t, 0.0, np.where(np.isfinite(t) & (t != 0), r, np.inf))


def in_ulps(a: np.ndarray, t: np.ndarray, dtype: str) -> np.ndarray:
    """|a − t| in ulps of the dtype at t; where the truth is infinite, 0 for the same value and inf for any other."""
    with np.errstate(all="ignore"):
        u = lowp.ulps(a, np.where(np.isfinite(t), t, 0.0), dtype)
    return np.where(np.isfinite(t), u, np.where(a == t, 0.0, np.inf))


# ---------------------------------------------------------------- lossgrad


def lossgrad_rows() -> list[tuple[str, str, dict[str, Any]]]:
    """(row name, convention, extra setup options): each convention, plain and with setup's autocast=True (an
    OptionError while lossgrad has no such setting: those rows are then left out of the table)."""
    return [(f"lossgrad {c}", c, {}) for c in CONVENTIONS] + [(f"lossgrad {c}, autocast", c, {"autocast": True})
                                                              for c in CONVENTIONS]


def lossgrad_outcome(case: Case, y: np.ndarray, p: np.ndarray, dtype: str, convention: str,
                     extra: dict[str, Any]) -> tuple[Outcome, Outcome]:
    """A convention's result in `dtype` and the float64 truth for the same inputs, loss options and reduction; the
    first input form and reduction the convention takes (kl: log-probabilities, or else probabilities).
    OptionError when it takes none."""
    last: OptionError | None = None
    for options in _forms(case):
        for reduction in case.reductions:
            try:
                s = setup(case.loss, convention=convention, dtype=dtype, reduction=reduction, **options, **extra)
            except OptionError as e:
                last = e
                continue
            pp = p if options.get("log_input", True) else held(np.exp(p), dtype)  # (probabilities as held)
            truth = setup(case.loss, convention="exact", dtype="float64", reduction=reduction, **options)
            return _outcome(s, y, pp), _outcome(truth, y, pp)
    assert last is not None
    raise last


def _forms(case: Case) -> list[dict[str, Any]]:
    if not case.options.get("log_input"):
        return [case.options]
    return [case.options, {**case.options, "log_input": False}]


def _outcome(s: Any, y: np.ndarray, p: np.ndarray) -> Outcome:
    with np.errstate(all="ignore"):
        r = api.run(s, read_arrays(s.loss, y, p, None))
    return Outcome(r.losses, r.grad, math.nan if r.value is None else float(r.value))


def exact_truth(case: Case, y: np.ndarray, p: np.ndarray) -> Outcome:
    """The float64 truth under the case's first reduction (what the frameworks' rows are measured against)."""
    return _outcome(setup(case.loss, convention="exact", dtype="float64", reduction=case.reductions[0],
                          **case.options), y, p)


def versions_line() -> str:
    found = [f"Python {platform.python_version()}", f"numpy {np.__version__}", f"lossgrad {__version__}"]
    for mod in ("torch", "tensorflow", "keras", "jax", "optax"):
        try:
            found.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    return f"{platform.machine()}, {platform.system()}, " + ", ".join(found)


# ---------------------------------------------------------------- the rounds and the table

Table = dict[tuple[str, str], Errors]  # (dtype, row name) -> errors


def truth_for(case: Case, y: np.ndarray, p: np.ndarray, taken: dict[str, Any]) -> Outcome:
    """The truth for what a framework took: the case's inputs, or (Keras' kl) probabilities in place of the
    log-probabilities."""
    if not taken:
        return exact_truth(case, y, p)
    options = {**case.options, "log_input": taken["log_input"]}
    return _outcome(setup(case.loss, convention="exact", dtype="float64", reduction=case.reductions[0], **options),
                    y, taken["p"])


def one_round(table: Table, case: Case, y: np.ndarray, p: np.ndarray, dtype: str,
              live: list[tuple[str, Callable[..., Any], dict[str, Any]]]) -> None:
    """Every lossgrad convention, then every live framework, on one draw held in `dtype`."""
    for name, convention, extra in lossgrad_rows():
        errors = table.setdefault((dtype, name), Errors())
        try:
            errors.add(*lossgrad_outcome(case, y, p, dtype, convention, extra), dtype)
        except LossgradError as e:  # (a refusal: the setting, or an input the framework refuses, as Keras' cast)
            errors.missing = str(e)
    for name, fn, kw in live:
        errors = table.setdefault((dtype, name), Errors())
        try:
            got, taken = fn(case, y, p, dtype, **kw)
        except Exception as e:  # (a framework that refuses the dtype is a row of "—", said on stderr)
            errors.missing = f"{type(e).__name__}: {e}"
            continue
        errors.add(got, truth_for(case, y, p, taken), dtype)


def measure(case: Case, rounds: int, seed: int, live: list[tuple[str, Callable[..., Any], dict[str, Any]]]) -> Table:
    table: Table = {}
    for k in range(rounds):
        y0, p0 = case.draw(np.random.default_rng([seed, k]))
        for dtype in DTYPES:
            one_round(table, case, *as_held(case, y0, p0, dtype), dtype, live)
    return table


def _rel(a: float) -> str:
    return "nan" if a != a else ("0" if a == 0 else f"{a:.1e}")


def _ulps(a: float) -> str:
    return "nan" if a != a else ("inf" if math.isinf(a) else (f"{a:.2f}" if a < 1e4 else f"{a:.1e}"))


def cells(errors: Errors) -> list[str]:
    """value, per-element losses, gradient elements: relative error and ulps, worst / median over every round."""
    out = []
    for name in ("value", "losses", "grad"):
        for kind, fmt in (("rel", _rel), ("ulp", _ulps)):
            seen = getattr(errors, kind)[name]
            if not seen:
                out.append("—")
                continue
            a = np.concatenate([np.ravel(x) for x in seen])
            worst, median = float(np.max(a)), float(np.median(a))
            out.append(fmt(worst) if a.size == 1 or worst == median else f"{fmt(worst)} / {fmt(median)}")
    return out


HEADER = ("| loss | computed by | value: rel. error | value: ulps | losses: rel. error | losses: ulps "
          "| gradient: rel. error | gradient: ulps |\n|---|---|---|---|---|---|---|---|")
GROUPS = {"PyTorch": "torch", "Keras": "keras", "optax": "optax"}  # a live row's lossgrad convention


def rank(name: str) -> tuple[int, int]:
    """Each convention's rows together: lossgrad's, the framework's own, lossgrad's under autocast, the framework's
    other settings."""
    lossgrad = name.startswith("lossgrad ")
    conv = name.split()[1].rstrip(",") if lossgrad else GROUPS[name.split()[0]]
    where = (0 if "," not in name else 2) if lossgrad else (1 if "," not in name else 3)
    return list(CONVENTIONS).index(conv), where


def shown(tables: dict[str, Table]) -> set[str]:
    """The rows to print: all but lossgrad's autocast rows while no convention takes autocast (a version of
    lossgrad without it)."""
    names = {name for t in tables.values() for _, name in t}
    has_autocast = any(not e.missing for t in tables.values() for (_, name), e in t.items()
                       if name.startswith("lossgrad") and "autocast" in name)
    return {n for n in names if has_autocast or not (n.startswith("lossgrad") and "autocast" in n)}


def main(rounds: int, seed: int) -> None:
    import sys

    from half_frameworks import available

    live = available()
    tables = {case.title: measure(case, rounds, seed, live) for case in CASES}
    names = sorted(shown(tables), key=rank)
    print(f"Error of float16 and bfloat16 results against the float64 truth for the inputs as the dtype holds them "
          f"(lossgrad exact in float64), worst / median over {rounds} round(s) (seed {seed}); ulps of the dtype.")
    for dtype in DTYPES:
        print(f"\n{dtype}:\n\n{HEADER}")
        for title, table in tables.items():
            for name in names:
                errors = table.get((dtype, name), Errors(missing="not measured"))
                if errors.missing:
                    print(f"{name}, {title}, {dtype}: {errors.missing}", file=sys.stderr)
                print(f"| {title} | {name} | " + " | ".join(cells(errors)) + " |")
    print(f"\n{versions_line()}")
