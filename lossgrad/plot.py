"""`lossgrad plot`: a loss and its gradient as curves over the prediction, one curve per convention, so the point
where a framework's clip or clamp flattens the gradient is seen at a glance.

The curves are lossgrad's own numbers: each convention's `run` on a batch of one target against a grid of
predictions, reduction none (each element's own derivative). Drawing is separate: the terminal through uniplot,
an image through matplotlib, each imported only here.

The x axis follows the predictions' domain: probabilities on a log-odds axis, t = log10(p/(1 − p)), which is
log-spaced towards both 0 and 1 (t = −7 is p ≈ 1e−7, t = 7 is 1 − p ≈ 1e−7); rates on log10 p; logits and
values as they are. A gradient that spans more than three decades is drawn as sign(g)·log10(1 + |g|).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .api import run
from .conventions import CONVENTIONS
from .diagnose import supported
from .errors import OptionError, cli_name, fill
from .inputs import read_arrays
from .losses import LOSSES, Loss
from .options import choose_loss, setup
from .render import open_output

AXES = ("logit", "log", "linear")
WHAT = ("loss", "grad", "both")
Y_SCALES = ("auto", "linear", "symlog")
SYMLOG_ABOVE = 1e3  # auto: a curve reaching beyond this is drawn on sign·log10(1 + |v|)


@dataclass
class Curves:
    """Each convention's losses and gradients over the same predictions `x`, for one target."""

    loss: str
    from_logits: bool
    target: float
    x: np.ndarray  # the predictions: probabilities, rates, logits or values
    at: np.ndarray  # where each prediction sits on the drawn axis (log10(p/(1 − p)), log10 p, or x itself)
    axis: str  # how x is laid out and drawn: "logit", "log" or "linear"
    losses: dict[str, np.ndarray] = field(default_factory=dict)
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)

    @property
    def x_name(self) -> str:
        if self.from_logits:
            return "log rate z" if LOSSES[self.loss].link == "exp" else "logit z"
        return {"sigmoid": "probability p", "exp": "rate p"}.get(LOSSES[self.loss].link or "", "prediction p")


# ---------------------------------------------------------------- the data


def domain(loss: Loss, from_logits: bool) -> str:
    """What the predictions are: "probs" (in (0, 1)), "rates" (above 0) or "real"."""
    if from_logits or loss.link is None:
        return "real"
    return "probs" if loss.link == "sigmoid" else "rates"


def default_range(loss: Loss, from_logits: bool, target: float) -> tuple[float, float]:
    kind = domain(loss, from_logits)
    if kind == "probs":
        return 1e-15, 1 - 1e-15  # past Keras' ε = 1e-7 and PyTorch's 1e-12 clamp on both sides
    if kind == "rates":
        return 1e-10, max(10.0, 3 * target)
    if from_logits:
        return (-10.0, 10.0) if loss.link == "exp" else (-20.0, 20.0)
    return target - 3, target + 3


def parse_range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    parts = [t.strip() for t in text.split(",")]
    try:
        lo, hi = (float(parts[0]), float(parts[1])) if len(parts) == 2 else (0.0, float("nan"))
    except ValueError:
        lo, hi = 0.0, float("nan")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise OptionError("--range", f"{text!r} is not two numbers LO,HI (e.g. --range -40,40)")
    if not lo < hi:
        raise OptionError("--range", f"{text!r}: LO must be below HI")
    return lo, hi


def choose_axis(kind: str, lo: float, hi: float, log_x: bool | None) -> str:
    """The x layout: log-spaced where the domain has an end the frameworks clip at, unless asked otherwise."""
    if kind == "probs" and not (0 < lo and hi < 1):
        raise OptionError("--range", f"probabilities must lie strictly between 0 and 1; got {lo:g},{hi:g}")
    if kind == "rates" and lo <= 0:
        raise OptionError("--range", f"rates must be above 0; got {lo:g},{hi:g} (pass log rates with "
                                     "--from-logits)")
    if log_x is False or (log_x is None and kind == "real"):
        return "linear"
    if kind == "real":
        raise OptionError("--log-x", "needs predictions above 0: it applies to probabilities and rates, not to "
                                     "logits or values")
    return "logit" if kind == "probs" else "log"


DRAWN = 1e150  # the largest magnitude uniplot's linear axes label (they square the span: 1e308 would overflow)


def grid(lo: float, hi: float, n: int, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """n predictions from lo to hi evenly spaced on the drawn axis, and their places on it."""
    if axis == "linear":
        if max(-lo, hi) > DRAWN:
            raise OptionError("--range", f"{lo:g},{hi:g} is beyond what a linear axis draws (±{DRAWN:g}: its labels "
                                         f"square the span); give a range within it, such as -{DRAWN:g},{DRAWN:g}")
        x = np.linspace(lo, hi, n)
        return x, x
    if axis == "log":
        t = np.linspace(np.log10(lo), np.log10(hi), n)
        return 10.0 ** t, t
    t = np.linspace(np.log10(lo) - np.log10(1 - lo), np.log10(hi) - np.log10(1 - hi), n)
    return 1 / (1 + 10.0 ** -t), t  # p with log10(p/(1 − p)) = t


def chosen_conventions(loss: str, from_logits: bool, names: str | None, params: dict) -> tuple[list[str], dict]:
    have, lack = supported(loss, from_logits, params)
    if names is None:
        return have, lack
    picked = [n.strip() for n in names.split(",") if n.strip()]
    for n in picked:
        if n not in CONVENTIONS:
            raise OptionError("--convention", f"unknown convention {n!r}; choose from {', '.join(CONVENTIONS)}, "
                                              "comma separated")
        if n in lack:
            raise OptionError("--convention", lack[n])
    if not picked:
        raise OptionError("--convention", "names no convention; give one or more, comma separated")
    return picked, {}


def curves(loss: str, *, target: float | None = None, range: tuple[float, float] | None = None, points: int = 401,
           from_logits: bool = False, conventions: str | None = None, log_x: bool | None = None,
           eps: float | None = None, dtype: str = "float64", params: dict | None = None) -> Curves:
    """The losses and gradients of `loss` under each convention, over a grid of predictions for one target."""
    the_loss = choose_loss(loss)
    if the_loss.kind != "elementwise" or the_loss.last_axis is not None:
        raise OptionError("loss", f"plot draws losses of one prediction against one target; {loss} is a loss of a "
                                  "whole row (use compare or the loss command on rows)")
    params = {k: v for k, v in (params or {}).items() if v is not None and v is not False}
    if not 2 <= points <= 100_000:
        raise OptionError("--points", f"{points} is out of range; give 2 to 100000")
    y = 1.0 if target is None else target
    if not np.isfinite(y):
        raise OptionError("--target", f"must be a finite number, got {y!r}")
    lo, hi = range or default_range(the_loss, from_logits, y)
    axis = choose_axis(domain(the_loss, from_logits), lo, hi, log_x)
    names, lack = chosen_conventions(loss, from_logits, conventions, params)
    c = Curves(loss, from_logits, y, *grid(lo, hi, points, axis), axis=axis, unsupported=lack)
    for name in names:
        try:
            s = setup(loss, from_logits=from_logits, reduction="none", convention=name, eps=eps, dtype=dtype,
                      **params)
        except OptionError as e:
            if conventions is not None:  # (one asked for by name is an error; a default one is noted)
                raise
            c.unsupported[name] = e.what  # (a convention that does not compute this dtype: bfloat16 under keras)
            continue
        batch = read_arrays(s.loss, np.full(points, y), c.x)
        r = run(s, replace(batch, locate=_locate))
        c.losses[name], c.grads[name] = r.losses.reshape(-1), r.grad.reshape(-1)
    return c


def _locate(which: str, row: int, col: int) -> str:
    return "--target" if which == "target" else "--range"


# ---------------------------------------------------------------- drawing


def y_scale(values: Sequence[np.ndarray], choice: str) -> str:
    if choice not in Y_SCALES:
        raise OptionError("--y-scale", f"unknown scale {choice!r}; choose {', '.join(Y_SCALES)}")
    if choice != "auto":
        return choice
    finite = [np.abs(v[np.isfinite(v)]) for v in values]
    top = max((float(f.max()) for f in finite if f.size), default=0.0)
    return "symlog" if top > SYMLOG_ABOVE else "linear"


def symlog(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.log10(1 + np.abs(v))


def panels(c: Curves, what: str, scale: str) -> list[tuple[str, dict[str, np.ndarray], str]]:
    """(quantity, its curves, y scale) for each picture `what` asks for: the loss, the gradient, or both."""
    if what not in WHAT:
        raise OptionError("--what", f"unknown choice {what!r}; choose loss, grad or both")
    chosen = [("loss", c.losses), ("grad", c.grads)] if what == "both" else [
        (what, c.losses if what == "loss" else c.grads)]
    out = [(q, v, y_scale(list(v.values()), scale)) for q, v in chosen]
    for quantity, v, yscale in out:
        drawn = [a[np.isfinite(a)] for a in (_drawn(a, yscale) for a in v.values())]
        if v and not any(a.size for a in drawn):
            raise OptionError("--range", f"{c.x[0]:g},{c.x[-1]:g}: the {quantity} is infinite or NaN at every point "
                                         "(it overflows there); give a narrower range")
        top = max((float(np.abs(a).max()) for a in drawn if a.size), default=0.0)
        if top > DRAWN:
            raise OptionError("--y-scale", f"the {quantity} reaches {top:.3g} on this range, beyond what a linear "
                                           f"axis draws (±{DRAWN:g}); use --y-scale symlog or a narrower --range")
    return out


def caption(c: Curves, quantity: str) -> str:
    wrt = "z" if c.from_logits else "p"
    return f"{c.loss} {'loss ℓ' if quantity == 'loss' else f'gradient ∂ℓ/∂{wrt}'}, target {c.target:g}"


def axes_note(c: Curves, scale: str) -> str:
    x = {"logit": "x: log10(p/(1 − p)), −7: p = 1e−7, 7: 1 − p = 1e−7", "log": "x: log10(p)",
         "linear": f"x: {c.x_name}"}[c.axis]
    return x + ("; y: sign·log10(1 + |y|)" if scale == "symlog" else "")


def terminal(c: Curves, what: str = "both", scale: str = "auto", width: int | None = None,
             color: bool | None = None) -> str:
    """The pictures as text for a terminal `width` columns wide, one character per convention (and a colour)."""
    plot_to_string = _uniplot()
    columns = width or shutil.get_terminal_size((80, 24)).columns
    color = sys.stdout.isatty() and os.environ.get("TERM") != "dumb" and "NO_COLOR" not in os.environ \
        if color is None else color
    x = c.at
    out = []
    for quantity, values, yscale in panels(c, what, scale):
        names = list(values)[::-1]  # drawn in turn: the first convention (exact) last, on top of the others
        ys = [_drawn(values[n], yscale) for n in names]
        text = plot_to_string(ys, [x] * len(ys), legend_labels=names, width=max(20, columns - 10), height=12,
                              lines=True, color=color, character_set="ascii", title=caption(c, quantity))
        out.append(f"{text if isinstance(text, str) else chr(10).join(text)}\n{axes_note(c, yscale)}")
    out.append("where curves meet, the last named is drawn on top"
               + "".join(f"\n{n}: not drawn: {fill(why, cli_name)}" for n, why in c.unsupported.items()))
    return "\n\n".join(out) + "\n"


def _drawn(v: np.ndarray, scale: str) -> np.ndarray:
    """The curve as drawn: a value that is not finite leaves a gap."""
    v = np.where(np.isfinite(v), v, np.nan)
    return symlog(v) if scale == "symlog" else v


def _uniplot():
    try:
        from uniplot import plot_to_string
    except ImportError:
        raise OptionError("", "lossgrad plot draws with uniplot, which is not installed: python3 -m pip install "
                              "uniplot (or reinstall lossgrad with its dependencies)") from None
    return plot_to_string


def write_png(c: Curves, path: str, what: str = "both", scale: str = "auto") -> None:
    """The same pictures as a PNG image, written atomically (Agg: no display needed)."""
    pyplot = _pyplot()
    chosen = panels(c, what, scale)
    fig, axes = pyplot.subplots(len(chosen), 1, figsize=(8, 3.6 * len(chosen)), squeeze=False)
    for ax, (quantity, values, yscale) in zip(axes[:, 0], chosen, strict=True):
        for i, (name, v) in enumerate(values.items()):
            # exact wide and underneath, each framework dashed on top: where they agree both show
            ax.plot(c.x, np.where(np.isfinite(v), v, np.nan), label=name, zorder=2 + i, linewidth=3 if i == 0 else
                    1.5, linestyle=STYLES[(i - 1) % len(STYLES)] if i else "-", alpha=0.5 if i == 0 else 1)
        if c.axis != "linear":
            ax.set_xscale(c.axis)
            ax.set_xticks(*_x_ticks(c))
            ax.minorticks_off()
        if yscale == "symlog":
            ax.set_yscale("symlog", linthresh=1)
            ax.set_yticks(*_y_ticks(list(values.values())))
        ax.set_title(caption(c, quantity))
        ax.set_xlabel(c.x_name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with open_output(path, binary=True) as out:
        fig.savefig(out, format="png", dpi=110)
    pyplot.close(fig)


STYLES = ("--", "-.", ":", (0, (6, 2, 1, 2, 1, 2)))


def _x_ticks(c: Curves) -> tuple[list[float], list[str]]:
    """A few decades on a log or log-odds axis, as p values (1 − 1e−7 rather than 0.9999999)."""
    first, last = int(np.ceil(c.at[0])), int(np.floor(c.at[-1]))
    step = max(1, -(-(last - first) // 7))
    ts = [t for t in range(first, last + 1) if t % step == 0]
    if c.axis == "log":
        return [10.0 ** t for t in ts], [f"1e{t}" for t in ts]
    return ([1 / (1 + 10.0 ** -t) for t in ts],
            ["0.5" if t == 0 else f"1e{t}" if t < 0 else f"1−1e−{t}" for t in ts])


def _y_ticks(values: list[np.ndarray]) -> tuple[list[float], list[str]]:
    """0 and a few decades each side that the curves reach."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values])
    ticks, labels = [0.0], ["0"]
    for sign in (1, -1):
        top = float(np.max(sign * finite, initial=0))
        if top >= 1:
            decades = int(np.floor(np.log10(top)))
            step = max(1, -(-decades // 4))
            for k in range(decades, -1, -step):
                ticks.append(sign * 10.0 ** k)
                labels.append(f"{'−' if sign < 0 else ''}1e{k}")
    return ticks, labels


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise OptionError("--png", "needs matplotlib, which is not installed: python3 -m pip install "
                                   "'lossgrad[png]' (or python3 -m pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


__all__ = ["Curves", "curves", "terminal", "write_png"]
