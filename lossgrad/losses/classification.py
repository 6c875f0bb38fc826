"""Cross entropies: binary (bce) on probabilities or logits, softmax (ce) on probability rows or logits.

The `exact` forms follow docs numerics.md: no clipping, no cancellation. The framework forms reproduce what each
framework's kernel or autodiff computes, as selected by the fields of the Convention.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import precise
from ._ops import Array, clip_grad, log_softmax, shifted_exp, sigmoid, sigmoid_pair, sign_select, softplus, xlogy
from .base import SMALL, Loss, Param, Parts, Reason, _g, first_bad, register

if TYPE_CHECKING:  # (decimal and fractions are imported where an element needs them: start-up time)
    pass

if TYPE_CHECKING:
    from ..conventions import Convention

Triple = tuple[Array, Array, Array]

ZERO_HINT = ("a probability of exactly 0 for a nonzero target; pass logits with {from_logits}, or reproduce a "
             "clipping framework with {convention} keras")
IGNORE = Param("ignore_index", None, "Class index whose samples are left out: loss and gradient 0, and not counted in "
               "the mean's N (PyTorch's ignore_index, Keras' ignore_class).", integer=True)
POS_WEIGHT = Param("pos_weight", None, "bce from logits: the positive class's weight w⁺, one number or one per "
                   "output column (PyTorch's pos_weight, TF's weighted_cross_entropy_with_logits).", vector=True)
WEIGHTS = Param("class_weights", None, "One weight per class, comma separated: PyTorch's weight= (each class's term "
                "weighted inside the loss, smoothing's too; the mean over class indexes divides by the sum of the "
                "samples' weights), Keras' fit(class_weight=...) (each sample weighs its class's, a one-hot or soft "
                "row its argmax class's; the mean divides by N).", vector=True)
SMOOTHING = Param("label_smoothing", 0.0, "Label smoothing s: targets become y(1 − s) + s/K (K = 2 for bce, the "
                  "number of classes for ce), as Keras, PyTorch and optax define it.", positive=False, fraction=True)



# ---------------------------------------------------------------- bce


def _bce_probs_exact(y: Array, p: Array) -> Triple:
    with np.errstate(divide="ignore", invalid="ignore"):
        # log1p(-p) keeps log(1 - p) accurate for small p; 0 * log 0 is 0
        # (+ 0 turns the -0 of a perfect prediction into 0)
        losses = -(xlogy(y, np.log(p)) + xlogy(1 - y, np.log1p(-p))) + 0
        # one division, no difference of two large quotients; 1 - p is exact for p >= 1/2
        grad = (p - y) / (p * (1 - p))
    # at p = y = 0 or p = y = 1 the quotient is 0/0; the limit is 1/(1 - p) = 1 or -1/p = -1
    grad = np.where((p == 0) & (y == 0), 1, grad)
    grad = np.where((p == 1) & (y == 1), -1, grad).astype(p.dtype, copy=False)
    return losses, grad, p - y


def _bce_probs_keras(y: Array, p: Array, conv: Convention) -> Triple:
    eps = p.dtype.type(conv.eps)
    one = p.dtype.type(1)
    hi = one - eps
    pc = np.clip(p, eps, hi)
    # tf-keras adds eps again inside both logs; Keras 3 does not
    a = eps if conv.log_eps else p.dtype.type(0)
    losses = -(y * np.log(pc + a) + (1 - y) * np.log(1 - pc + a))
    dpc = -y / (pc + a) + (1 - y) / (1 - pc + a)
    grad = dpc * clip_grad(p, eps, hi, conv.clip_tie_grad)
    return losses, grad, grad * p * (1 - p)


def _bce_probs_torch(y: Array, p: Array, conv: Convention) -> Triple:
    clamp, floor = conv.log_clamp, conv.grad_floor
    assert clamp is not None and floor is not None  # (a convention with this form sets both)
    with np.errstate(divide="ignore"):
        # binary_cross_entropy_out_cpu: each log clamped at -100, so p = 0 with y = 1 costs 100
        losses = (y - 1) * np.maximum(np.log1p(-p), clamp) - y * np.maximum(np.log(p), clamp)
    # binary_cross_entropy_backward: (p - y) / max((1 - p) p, 1e-12), never infinite
    grad = (p - y) / np.maximum((1 - p) * p, p.dtype.type(floor))
    return losses, grad, grad * p * (1 - p)


def _bce_logits_exact(y: Array, z: Array, w: Array | None = None) -> Triple:
    sz, smz, e = sigmoid_pair(z)
    u = 1 - y
    if w is None:
        # z (1 - y) for z >= 0 and -z y below: |z| times one of the two, so that they never cancel
        losses = np.abs(z) * sign_select(z)(u, y) + np.log1p(e)
        a, b = u * sz, y * smz
    else:
        # w y softplus(-z) + (1 - y) softplus(z): two non-negative terms
        # (w times y's term, not w y times the softplus: w y may be a subnormal that rounds badly)
        losses = w * (y * softplus(-z, e)) + u * softplus(z, e)
        a, b = u * sz, w * (y * smz)
    grad = a - b
    if w is None and not np.any(u * y):
        return losses, grad, sz  # hard labels: one of the two terms is 0, so nothing cancels
    # sigma(z) - y cancels when sigma(z) ~ y (z = 40, y = 1 gives 0); this form keeps the -4.25e-18, and the
    # elements where the two terms still nearly agree (soft labels) are recomputed in higher precision
    grad = precise.sigmoid_minus_y(y, z, grad, np.maximum(a, b), w)
    return losses, grad, sz


def _bce_logits_tf(y: Array, z: Array) -> Triple:
    # tf.nn.sigmoid_cross_entropy_with_logits: relu(z) - z*y + log1p(exp(-|z|)), differentiated by autodiff
    sz, smz, e = sigmoid_pair(z)
    pos = z >= 0
    losses = np.where(pos, z, 0) - z * y + np.log1p(e)
    grad = (np.where(pos, 1, 0) - y) + np.where(pos, -1, 1) * (e / (1 + e))
    return losses, grad.astype(z.dtype, copy=False), sz


def _bce_logits_torch(y: Array, z: Array, w: Array | None = None) -> Triple:
    # binary_cross_entropy_with_logits: (1 - y) z + (1 + (w - 1) y)(log1p(e^-|z|) + max(-z, 0)); backward
    # (w y + 1 - y) sigma(z) - w y, which is sigma(z) - y without pos_weight
    sz, smz, e = sigmoid_pair(z)
    if w is None:
        return (1 - y) * z + softplus(-z, e), sz - y, sz
    losses = (1 - y) * z + (1 + (w - 1) * y) * softplus(-z, e)
    return losses, (w * y + 1 - y) * sz - w * y, sz


def _bce_logits_optax(y: Array, z: Array) -> Triple:
    # sigmoid_binary_cross_entropy: -y log_sigmoid(z) - (1 - y) log_sigmoid(-z), log_sigmoid(z) = -softplus(-z);
    # jax's gradient of log_sigmoid(z) is sigma(-z), so autodiff gives (1 - y) sigma(z) - y sigma(-z)
    sz, smz, e = sigmoid_pair(z)
    losses = y * softplus(-z, e) + (1 - y) * softplus(z, e)
    return losses, -y * smz + (1 - y) * sz, sz


def bce_from_logits(y: Array, z: Array, form: str | None, w: Array | None = None) -> Triple:
    """bce of logits z as `form` (Convention.bce_logits) computes it: losses, gradient and sigma(z)."""
    if form == "exact":
        return _bce_logits_exact(y, z, w)
    if form == "torch":
        return _bce_logits_torch(y, z, w)
    return _bce_logits_tf(y, z) if form == "tf" else _bce_logits_optax(y, z)


def bce_on_probs(y: Array, p: Array, conv: Convention) -> Triple:
    """bce of probabilities p as `conv` computes it: losses, gradient, and the gradient for the logits behind p."""
    if conv.bce_probs == "keras":
        return _bce_probs_keras(y, p, conv)
    return _bce_probs_torch(y, p, conv) if conv.bce_probs == "torch" else _bce_probs_exact(y, p)


def _bce_logits_long_exact(y: Array, z: Array, s: float, w: Array | None) -> Triple:
    """The exact form in long double, for a smoothed target y(1 − s) + s/2 and its complement (formed from y and s,
    not rounded to float64 first) or a positive-class weight (w·y·σ(−z) with no intermediate underflow: y·σ(−z)
    is a subnormal at y = 1e−300, z = 40, and σ(−745) one at y = 1, before w = 1e300 brings them back); its
    gradient's cancelling elements refined with the same target."""
    work = precise._long() or z.dtype
    yl, ul = precise.smoothed_pair(y.astype(work), s)
    zl = z.astype(work)
    sz, smz, e = sigmoid_pair(zl)
    wl = np.ones_like(zl) if w is None else np.broadcast_to(w, z.shape).astype(work)
    losses = wl * (yl * softplus(-zl, e)) + ul * softplus(zl, e)
    a, b = ul * sz, wl * (yl * smz)
    grad = precise.sigmoid_minus_y(y, z, (a - b).astype(z.dtype), np.maximum(a, b).astype(z.dtype), w, s)
    return losses.astype(z.dtype), grad, sigmoid_pair(z)[0]


def _bce_probs_smoothed_exact(y: Array, p: Array, s: float) -> Triple:
    """The exact form with the smoothed target and its complement formed in long double from y and s; p − y'
    (the gradient's numerator, and the gradient for the logits) refined where it cancels."""
    work = precise._long() or p.dtype
    yl, ul = precise.smoothed_pair(y.astype(work), s)
    pl = p.astype(work)
    with np.errstate(divide="ignore", invalid="ignore"):
        losses = -(xlogy(yl, np.log(pl)) + xlogy(ul, np.log1p(-pl))) + 0
        diff, size = _smoothed_diff(yl, ul, pl)
        grad = (diff / (pl * (1 - pl))).astype(p.dtype)
        gscale = (size / (pl * (1 - pl))).astype(p.dtype)
    sk = np.full_like(p, s)
    gl = precise.refine(diff.astype(p.dtype), size.astype(p.dtype), _smoothed_diff_long, _smoothed_diff_dec,
                        y, p, sk)
    grad = precise.refine(grad, np.where(np.isfinite(gscale), gscale, 0), _smoothed_quotient_long,
                          _smoothed_quotient_dec, y, p, sk)
    return losses.astype(p.dtype), grad, gl


def _smoothed_diff(yl: Array, ul: Array, p: Array) -> tuple[Array, Array]:
    """p − y' from whichever of y' and its complement 1 − y' is the smaller (the other lost digits when it was
    rounded: 1 − 5e−301 is 1), and the size of its terms."""
    return np.where(yl > 0.5, ul - (1 - p), p - yl), np.maximum(p, yl)


def _smoothed_diff_long(y: Array, p: Array, s: Array) -> tuple[Array, Array]:
    return _smoothed_diff(y * (1 - s) + s / 2, (1 - y) * (1 - s) + s / 2, p)


def _smoothed_quotient_long(y: Array, p: Array, s: Array) -> tuple[Array, Array]:
    d, size = _smoothed_diff_long(y, p, s)
    return d / (p * (1 - p)), size / (p * (1 - p))


def _smoothed_diff_dec(y: float, p: float, s: float) -> precise.Terms:
    from decimal import Decimal
    yd, ud, pd = precise._dec_smoothed(Decimal(y), s, 2), precise._dec_smoothed(1 - Decimal(y), s, 2), Decimal(p)
    return (ud - (1 - pd) if yd > Decimal("0.5") else pd - yd), max(pd, yd)


def _smoothed_quotient_dec(y: float, p: float, s: float) -> precise.Terms:
    from decimal import Decimal
    (d, size), pd = _smoothed_diff_dec(y, p, s), Decimal(p)
    return d / (pd * (1 - pd)), size / (pd * (1 - pd))


def bce_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                label_smoothing: float = 0.0, pos_weight: Any = None) -> Parts:
    w = None if pos_weight is None else np.broadcast_to(np.asarray(pos_weight, dtype=p.dtype), p.shape[1:])
    if (label_smoothing or w is not None) and from_logits and conv.bce_logits == "exact":
        losses, grad, prob = _bce_logits_long_exact(y, p, label_smoothing, w)
        return Parts(losses=losses, grad=grad, prob=prob)
    if label_smoothing and not from_logits and conv.bce_probs == "exact":
        losses, grad, grad_logits = _bce_probs_smoothed_exact(y, p, label_smoothing)
        return Parts(losses=losses, grad=grad, grad_logits=grad_logits)
    y = precise.smoothed(y, label_smoothing, 2)
    if from_logits:
        losses, grad, prob = bce_from_logits(y, p, conv.bce_logits, w)
        return Parts(losses=losses, grad=grad, prob=prob)
    losses, grad, grad_logits = bce_on_probs(y, p, conv)
    return Parts(losses=losses, grad=grad, grad_logits=grad_logits)


def bce_check(y: Array, p: Array, from_logits: bool) -> None:
    if not (y.min(initial=0) >= 0 and y.max(initial=1) <= 1):  # (two reductions; the mask only when it is needed)
        first_bad("target", (y < 0) | (y > 1), y, "is outside [0, 1]; bce targets are probabilities (hard 0/1 or soft)")
    if not from_logits and not (p.min(initial=0) >= 0 and p.max(initial=1) <= 1):
        first_bad(
            "pred",
            (p < 0) | (p > 1),
            p,
            "is outside [0, 1]; bce predictions are probabilities: pass logits with {from_logits}",
        )


def _smoothing_line(s: float, k: int | str) -> list[str]:
    return [f"yᵢ ← yᵢ(1 − s) + s/{k}, s = {s:g}  (label smoothing)"] if s else []


def bce_formulas(from_logits: bool, conv: Convention, label_smoothing: float = 0.0,
                 pos_weight: Any = None) -> list[str]:
    weighted = [] if pos_weight is None else [
        f"w⁺ = {', '.join(f'{v:g}' for v in np.atleast_1d(pos_weight))} (pos_weight)",
        "ℓᵢ = w⁺·yᵢ·log(1 + e^−zᵢ) + (1 − yᵢ)·log(1 + e^zᵢ)",
        "∂ℓᵢ/∂zᵢ = (1 − yᵢ)·σ(zᵢ) − w⁺·yᵢ·σ(−zᵢ)"]
    return _smoothing_line(label_smoothing, 2) + (weighted or _bce_formulas(from_logits, conv))


def _bce_formulas(from_logits: bool, conv: Convention) -> list[str]:
    if from_logits:
        return [
            "pᵢ = σ(zᵢ) = 1 / (1 + e^−zᵢ)",
            "ℓᵢ = max(zᵢ, 0) − zᵢ·yᵢ + log(1 + e^−|zᵢ|)",
            "∂ℓᵢ/∂zᵢ = σ(zᵢ) − yᵢ",
        ]
    lines = ["ℓᵢ = −(yᵢ·log pᵢ + (1 − yᵢ)·log(1 − pᵢ))", "∂ℓᵢ/∂pᵢ = (pᵢ − yᵢ) / (pᵢ·(1 − pᵢ))"]
    if conv.eps is not None:
        lines.insert(0, f"pᵢ ← clip(pᵢ, ε, 1 − ε), ε = {conv.eps:g}; ∂ℓᵢ/∂pᵢ = 0 where the clip is active")
    if conv.log_eps:
        lines[1] = "ℓᵢ = −(yᵢ·log(pᵢ + ε) + (1 − yᵢ)·log(1 − pᵢ + ε))"
    if conv.log_clamp is not None:
        lines[0] = "ℓᵢ = −(yᵢ·max(log pᵢ, −100) + (1 − yᵢ)·max(log(1 − pᵢ), −100))"
        lines[1] = "∂ℓᵢ/∂pᵢ = (pᵢ − yᵢ) / max(pᵢ·(1 − pᵢ), 1e−12)"
    lines.append("∂ℓᵢ/∂zᵢ = pᵢ − yᵢ  (z: the logits behind p)")
    return lines


def bce_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool,
                labels: Array | None, **opts: Any) -> list[Reason]:
    """Where `conv`'s bce departs from the exact one: its clip, its ε in the logs, its clamps, its σ(z) − y."""
    rules: list[Reason] = []
    if from_logits:
        if conv.bce_logits in ("torch", "tf"):
            close = np.abs(sigmoid(p2) - y2) < 1e-3
            rules.append((close, lambda i: f"{conv.name} forms σ(z) − y by a subtraction that cancels when σ(z) is "
                                           "this close to y, so the small true value is lost to rounding"))
        return rules
    if conv.eps is not None:
        eps = conv.eps
        rules.append((p2 < eps, lambda i: f"p = {_g(p2[i])} is below ε = {eps:g}, so {conv.name} clips it to ε: "
                                          "its gradient is 0"))
        rules.append((p2 > 1 - eps, lambda i: f"p = {_g(p2[i])} is above 1 − ε, so {conv.name} clips it to 1 − ε: "
                                              "its gradient is 0"))
        rules.append(((p2 == eps) | (p2 == 1 - eps), lambda i: f"p = {_g(p2[i])} is exactly at the clip bound: "
                                                               f"{conv.name}'s autodiff lets the gradient through"))
    if conv.log_eps and conv.eps is not None:
        rules.append(_log_eps_reason(conv.name, conv.eps, y2, p2))
    if conv.log_clamp is not None:
        floor = conv.grad_floor
        rules.append((((p2 == 0) & (y2 > 0)) | ((p2 == 1) & (y2 < 1)),
                      lambda i: f"p = {_g(p2[i])}: {conv.name} clamps log(p) at {conv.log_clamp:g}, so the loss "
                                f"is finite and the gradient is (p − y)/{floor:.0e}"))
        rules.append((p2 * (1 - p2) < floor, lambda i: f"p(1 − p) = {_g(p2[i] * (1 - p2[i]))} is below {floor:.0e}: "
                                                       f"{conv.name}'s backward divides by that floor instead"))
    return rules


def _log_eps_reason(name: str, eps: float, y: Array, p: Array) -> Reason:
    """tf-keras' ε inside both logs, with the term and gradient it gives beside those the logs alone give; it
    explains a departure up to a few times its own relative size, ε/(p̂ + ε) at the clipped p̂, and no more."""
    q = np.clip(p, eps, 1 - eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = -(y * np.log(q + eps) + (1 - y) * np.log(1 - q + eps))
        plain = -(y * np.log(q) + (1 - y) * np.log1p(-q))
        grads = ((1 - y) / (1 - q + eps) - y / (q + eps), (1 - y) / (1 - q) - y / q)
    reach = 4 * np.maximum(eps / (q + eps), eps / (1 - q + eps))

    def text(i: tuple[int, ...]) -> str:
        said = f"{name} adds ε = {eps:g} inside log(p + ε) and log(1 − p + ε)"
        if reach[i] < SMALL:
            return said + ", which moves the numbers in about the 7th digit"
        a, b = _apart(float(inside[i]), float(plain[i]))
        said += f": its term here is {a}, {b} without it"
        if q[i] == p[i]:  # (a clipped p's gradient is the clip's 0 either way)
            ga, gb = _apart(float(grads[0][i]), float(grads[1][i]))
            said += f"; its derivative {ga}, {gb} without it"
        return said

    return (np.ones_like(p, dtype=bool), text, reach)


def _apart(a: float, b: float) -> tuple[str, str]:
    """a and b with the fewest significant digits (at least 4) that tell them apart; 0 for either zero."""
    for digits in range(4, 18):
        sa, sb = (f"{v + 0.0:.{digits}g}" for v in (a, b))
        if sa != sb:
            break
    return sa, sb


BCE = register(
    Loss(
        name="bce",
        summary="binary cross entropy, on probabilities or (--from-logits) on logits",
        kind="elementwise",
        compute=bce_compute,
        check=bce_check,
        formulas=bce_formulas,
        has_logits=True,
        link="sigmoid",
        reference="keras.losses.binary_crossentropy, torch.nn.functional.binary_cross_entropy[_with_logits], "
        "optax.losses.sigmoid_binary_cross_entropy",
        params=(SMOOTHING, POS_WEIGHT),
        zero_hint=ZERO_HINT,
        reasons=bce_reasons,
    )
)


# ---------------------------------------------------------------- ce


def _softmax_parts_exact(z: Array) -> tuple[Array, Array, Array, Array, Array, Array, Array]:
    """The pieces of log softmax via the row max, without the rounding of z - max: s + s_err is z - max exactly
    (TwoSum), and e^(s + s_err) = e^s (1 + s_err). The max's own term is exactly 1, added by log1p:
    log softmax = (s + s_err) - lse."""
    k = np.argmax(z, axis=1)
    rows = np.arange(z.shape[0])
    m = z[rows, k][:, None]
    s = z - m
    bb = s - z
    s_err = (z - (s - bb)) + (-m - bb)
    es = np.exp(s)
    es += es * s_err
    # the others' sum: the max's own term (exactly 1) left out, then put back
    es[rows, k] = 0
    rest = es.sum(axis=1)
    es[rows, k] = 1
    lse = np.log1p(rest)
    # -log softmax = lse - s - s_err: three non-negative parts (s <= 0), no cancellation
    return k, rows, es, rest, s, s_err, lse


def _ce_logits_exact(y: Array, z: Array) -> Triple:
    losses, grad, scale, sm = _ce_logits_exact_parts(y, z)
    return losses, precise.softmax_grad(y, z, grad, scale), sm


def _ce_logits_exact_parts(y: Array, z: Array) -> tuple[Array, Array, Array, Array]:
    """The exact form's losses, gradient (before refining), the size of the gradient's terms, and softmax."""
    k, rows, es, rest, s, s_err, lse = _softmax_parts_exact(z)
    with np.errstate(invalid="ignore"):
        neg_logp = (lse[:, None] - s) - s_err
        losses = xlogy(y, neg_logp).sum(axis=1)
    sm = es / (1 + rest)[:, None]
    sy = y.sum(axis=1)
    grad = sm * sy[:, None] - y
    scale = np.maximum(np.abs(sm * sy[:, None]), np.abs(y))
    # the class holding most of the probability, when its target is most of sum(y): softmax_k * sum(y) - y_k
    # cancels; write it as sum_{j != k} y_j - sum(y) * sum_{j != k} softmax_j
    others_sm = rest / (1 + rest)
    y_wo_k = y.copy()
    y_wo_k[rows, k] = 0
    others_y = y_wo_k.sum(axis=1)
    use = y[rows, k] > 0.5 * sy
    r = rows[use]
    grad[r, k[use]] = others_y[use] - sy[use] * others_sm[use]
    scale[r, k[use]] = np.maximum(np.abs(others_y[use]), np.abs(sy[use] * others_sm[use]))
    return losses, grad, scale, sm


def _ce_smoothed_exact(y: Array, p: Array, s: float, from_logits: bool) -> Triple:
    """The exact forms with the smoothed targets y(1 − s) + s/K formed in long double from y and s (not rounded to
    float64 first), and the cancelling gradient cells refined with the same targets."""
    work = precise._long() or p.dtype
    yl, pl = precise.smoothed(y.astype(work), s, p.shape[1]), p.astype(work)
    if from_logits:
        losses, grad, scale, sm = _ce_logits_exact_parts(yl, pl)
        grad = precise.softmax_grad(y, p, grad.astype(p.dtype), scale.astype(p.dtype), s)
        return losses.astype(p.dtype), grad, sm.astype(p.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        losses = -xlogy(yl, np.log(pl)).sum(axis=1) + 0
        grad = np.where(yl == 0, 0, -yl / pl)
    a = (pl / pl.sum(axis=1, keepdims=True)) * yl.sum(axis=1, keepdims=True)
    gl = precise.normalised_minus_y(y, p, (a - yl).astype(p.dtype), np.maximum(a, yl).astype(p.dtype), s)
    return losses.astype(p.dtype), grad.astype(p.dtype), gl


def _ce_logits_autodiff(y: Array, z: Array) -> Triple:
    # -sum y log_softmax(z), differentiated: softmax * sum(y) - y (torch, optax, Keras on JAX)
    logp = log_softmax(z)
    sm = np.exp(logp)
    return -(y * logp).sum(axis=1), sm * y.sum(axis=1, keepdims=True) - y, sm


def _ce_logits_fused(y: Array, z: Array) -> Triple:
    # TF's softmax_cross_entropy_with_logits kernel: loss sum y (lse - s), backprop softmax - y even when
    # sum(y) != 1
    s, es, se = shifted_exp(z)
    losses = (y * (np.log(se) - s)).sum(axis=1)
    sm = es / se
    return losses, sm - y, sm


def _ce_probs_exact(y: Array, p: Array) -> Triple:
    with np.errstate(divide="ignore", invalid="ignore"):
        losses = -xlogy(y, np.log(p)).sum(axis=1) + 0
        grad = np.where(y == 0, 0, -y / p).astype(p.dtype, copy=False)
    s = p.sum(axis=1, keepdims=True)
    # the logits behind p are log p: softmax(log p) = p / sum(p), and the chain rule gives p̂ sum(y) - y
    a = (p / s) * y.sum(axis=1, keepdims=True)
    grad_logits = precise.normalised_minus_y(y, p, a - y, np.maximum(np.abs(a), np.abs(y)))
    return losses, grad, grad_logits


def _ce_probs_keras(y: Array, p: Array, conv: Convention) -> Triple:
    # keras categorical_crossentropy: p / sum(p), clip to [eps, 1 - eps], -sum y log p
    eps = p.dtype.type(conv.eps)
    hi = p.dtype.type(1) - eps
    s = p.sum(axis=1, keepdims=True)
    q = p / s
    qc = np.clip(q, eps, hi)
    losses = -(y * np.log(qc)).sum(axis=1)
    g = -y / qc * clip_grad(q, eps, hi, conv.clip_tie_grad)  # d loss / d q
    # through q = p / s: d/dp_j = (g_j - sum_k g_k q_k) / s, which puts a gradient on every class
    grad = (g - (g * q).sum(axis=1, keepdims=True)) / s
    return losses, grad, _through_softmax(q, grad)


def _through_softmax(q: Array, grad: Array) -> Array:
    """Gradient with respect to the logits behind probability rows q = softmax(z): q (grad - sum q grad)."""
    through: Array = q * (grad - (q * grad).sum(axis=1, keepdims=True))
    return through


def _ce_probs_keras_sparse(y: Array, p: Array, conv: Convention) -> Triple:
    # keras sparse_categorical_crossentropy on probabilities: log(clip(p)) fed as logits to TF's
    # sparse_softmax_cross_entropy_with_logits, so the clipped row is renormalised by the softmax
    eps = p.dtype.type(conv.eps)
    hi = p.dtype.type(1) - eps
    c = np.clip(p, eps, hi)
    losses, g, _ = _ce_logits_fused(y, np.log(c))
    g = g / c * clip_grad(p, eps, hi, conv.clip_tie_grad)
    return losses, g, _through_softmax(p / p.sum(axis=1, keepdims=True), g)


def ce_from_logits(y: Array, z: Array, form: str | None) -> Triple:
    """ce of logit rows z as `form` (Convention.ce_logits) computes it: losses, gradient and softmax(z)."""
    if form == "exact":
        return _ce_logits_exact(y, z)
    return _ce_logits_fused(y, z) if form == "fused" else _ce_logits_autodiff(y, z)


def ce_on_probs(y: Array, p: Array, form: str | None, conv: Convention) -> Triple:
    """ce of probability rows p as `form` computes it: losses, gradient, and the gradient for the logits behind p."""
    if form == "keras":
        return _ce_probs_keras(y, p, conv)
    return _ce_probs_keras_sparse(y, p, conv) if form == "keras-sparse" else _ce_probs_exact(y, p)


def _ce_logits_exact_index(labels: Array, z: Array) -> Triple:
    """The exact form for class-index targets (one-hot rows): the loss is lse - s_t, the gradient softmax with 1
    taken off the target class. Nothing cancels: 1 - softmax_t is -sum of the others when t holds the maximum,
    and softmax_t <= 1/2 otherwise."""
    k, rows, es, rest, s, s_err, lse = _softmax_parts_exact(z)
    losses = (lse - s[rows, labels]) - s_err[rows, labels]
    sm = es / (1 + rest)[:, None]
    grad = sm.copy()
    at_max = labels == k
    grad[rows, labels] -= 1
    grad[rows[at_max], labels[at_max]] = -(rest / (1 + rest))[at_max]
    return losses, grad, sm


def ce_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
               label_smoothing: float = 0.0, ignore_index: int | None = None, class_weights: Any = None) -> Parts:
    if label_smoothing:
        labels = None  # the targets are soft now
        if class_weights is None and (conv.ce_logits if from_logits else conv.ce_probs) == "exact":
            losses, grad, other = _ce_smoothed_exact(y, p, label_smoothing, from_logits)
            return Parts(losses=losses, grad=grad, prob=other) if from_logits else \
                Parts(losses=losses, grad=grad, grad_logits=other)
        y = precise.smoothed(y, label_smoothing, p.shape[1])
    w = _weighted_targets(y, labels, class_weights)
    if from_logits:
        if labels is not None and conv.ce_logits == "exact":
            losses, grad, prob = _ce_logits_exact_index(labels, p)
            return Parts(losses=losses, grad=grad, prob=prob) if w is None else _weigh(
                Parts(losses=losses, grad=grad, prob=prob), class_weights[labels])
        losses, grad, prob = ce_from_logits(y if w is None else w, p, conv.ce_logits)
        return Parts(losses=losses, grad=grad, prob=prob)
    rule = conv.ce_probs_index if labels is not None and conv.ce_probs_index else conv.ce_probs
    losses, grad, grad_logits = ce_on_probs(y if w is None else w, p, rule, conv)
    return Parts(losses=losses, grad=grad, grad_logits=grad_logits)


def _weighted_targets(y: Array, labels: Array | None, class_weights: Any) -> Array | None:
    """PyTorch's class weights: each class's term inside the sum, −Σₖ wₖ·yₖ·log pₖ, on the targets as smoothed
    (so a smoothed index target costs (1 − s)·w_y·(−log p_y) + (s/C)·Σₖ wₖ·(−log pₖ)). None: no weights."""
    if class_weights is None:
        return None
    weighted: Array = y * np.asarray(class_weights, dtype=y.dtype)
    return weighted


def _weigh(parts: Parts, w: Array) -> Parts:
    """Each sample's loss and gradient times its weight (one-hot targets: the same as weighing inside)."""
    wt = w.astype(parts.losses.dtype)
    return Parts(losses=parts.losses * wt, grad=parts.grad * wt[:, None], prob=parts.prob)


def ce_check(y: Array, p: Array, from_logits: bool) -> None:
    first_bad("target", y < 0, y, "is negative; ce targets are class indexes or probability rows")
    if not from_logits:
        first_bad("pred", p < 0, p, "is negative; ce predictions are probability rows: pass logits with {from_logits}")


def unnormalised_rows(p: Array, divided: bool) -> Array:
    """ce probability rows that do not sum to 1 (beyond rounding); `divided`: the convention divides each row by
    its sum first (Keras), else an entry above 1 has no meaning as a probability (its -log p is negative)."""
    if not divided:
        first_bad("pred", p > 1, p, "is above 1; ce predictions are probability rows (each in [0, 1], summing to "
                  "1): pass logits with {from_logits}")
    mask: Array = np.abs(p.sum(axis=1, dtype=np.float64) - 1) > 1e-6
    return mask


def ce_formulas(from_logits: bool, conv: Convention, label_smoothing: float = 0.0, ignore_index: int | None = None,
                class_weights: Any = None) -> list[str]:
    return _smoothing_line(label_smoothing, "C") + _ce_formulas(from_logits, conv)


def _ce_formulas(from_logits: bool, conv: Convention) -> list[str]:
    if from_logits:
        return [
            "sᵢₖ = softmax(zᵢ)ₖ = e^zᵢₖ / Σⱼ e^zᵢⱼ",
            "ℓᵢ = −Σₖ yᵢₖ·log sᵢₖ",
            "chain rule: ∂ℓᵢ/∂sᵢₖ = −yᵢₖ / sᵢₖ, and ∂sᵢₖ/∂zᵢⱼ = sᵢₖ(δₖⱼ − sᵢⱼ) (lossgrad jacobian softmax), so",
            "∂ℓᵢ/∂zᵢⱼ = Σₖ (−yᵢₖ / sᵢₖ)·sᵢₖ(δₖⱼ − sᵢⱼ) = sᵢⱼ·Σₖ yᵢₖ − yᵢⱼ"
            + ("" if conv.ce_logits != "fused" else "  (TF's fused kernel gives sᵢⱼ − yᵢⱼ, the same when Σₖ yᵢₖ = 1)"),
        ]
    lines = ["ℓᵢ = −Σₖ yᵢₖ·log pᵢₖ", "∂ℓᵢ/∂pᵢₖ = −yᵢₖ / pᵢₖ"]
    if conv.ce_probs == "keras":
        lines.insert(0, f"pᵢ ← clip(pᵢ / Σₖ pᵢₖ, ε, 1 − ε), ε = {conv.eps:g}")
        lines[2] = "∂ℓᵢ/∂pᵢₖ = −yᵢₖ / pᵢₖ + Σⱼ yᵢⱼ / Σⱼ pᵢⱼ  (0 from the clip where it is active)"
    return lines


def ce_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool,
               labels: Array | None, **opts: Any) -> list[Reason]:
    """Where `conv`'s ce departs from the exact one: Keras' row normalisation and clip, TF's fused gradient."""
    rules: list[Reason] = []
    if from_logits and conv.ce_logits == "fused":
        sy = y2.sum(axis=1, keepdims=True) if labels is None else np.ones((p2.shape[0], 1))
        rules.append((np.broadcast_to(np.abs(sy - 1) > 1e-12, p2.shape),
                      lambda i: f"row {i[0]}'s targets sum to {_g(sy[i[0], 0])}, not 1: TF's fused kernel gives "
                                "softmax − y where the true gradient is softmax·Σy − y"))
    if from_logits or conv.ce_probs != "keras":
        return rules
    eps = conv.eps
    assert eps is not None  # (Keras' form clips)
    s = p2.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # (a row of zeros: its NaNs are no reason to report)
        q = p2 / s
    rules.append((np.broadcast_to(np.abs(s - 1) > 1e-12, p2.shape),
                  lambda i: f"row {i[0]} sums to {_g(s[i[0], 0])}: {conv.name} divides it by its sum first"))
    rules.append(((q < eps) | (q > 1 - eps), lambda i: f"p = {_g(p2[i])} is outside [ε, 1 − ε] after the row "
                                                       f"is normalised, so {conv.name} clips it: its gradient is 0"))
    if labels is not None and conv.ce_probs_index:
        rules.append((np.ones_like(p2, dtype=bool),
                      lambda i: f"with class-index labels {conv.name} takes log(clip(p)) as logits of a softmax, "
                                "so every class gets a gradient"))
    else:
        rules.append((np.ones_like(p2, dtype=bool),
                      lambda i: f"{conv.name} divides each row by its sum, which adds Σy/Σp to every class's "
                                "gradient"))
    return rules


CE = register(
    Loss(
        name="ce",
        summary="softmax cross entropy, on probability rows or (--from-logits) on logits; index or one-hot targets",
        kind="rows",
        compute=ce_compute,
        check=ce_check,
        formulas=ce_formulas,
        has_logits=True,
        link="softmax",
        reference="keras.losses.categorical_crossentropy, torch.nn.functional.cross_entropy, "
        "optax.losses.softmax_cross_entropy",
        params=(SMOOTHING, IGNORE, WEIGHTS),
        zero_hint=ZERO_HINT,
        reasons=ce_reasons,
    )
)


# ---------------------------------------------------------------- nll


def nll_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                ignore_index: int | None = None, class_weights: Any = None) -> Parts:
    """Negative log-likelihood of log-probability rows: -sum_k w_k y_k logp_k, gradient -w y (PyTorch's nll_loss
    takes class indexes and gathers; the arithmetic is the same)."""
    w = _weighted_targets(y, labels, class_weights)
    y = y if w is None else w
    with np.errstate(invalid="ignore"):
        losses = -xlogy(y, p).sum(axis=1) + 0  # (p: the log-probabilities)
    return Parts(losses=losses, grad=-y + 0)


def nll_check(y: Array, p: Array, from_logits: bool) -> None:
    first_bad("target", y < 0, y, "is negative; nll targets are class indexes or probability rows")
    first_bad("pred", p > 0, p, "is positive; nll predictions are log-probabilities (log softmax), at most 0")


def nll_formulas(from_logits: bool, conv: Convention, ignore_index: int | None = None,
                 class_weights: Any = None) -> list[str]:
    return ["ℓᵢ = −Σₖ yᵢₖ·log pᵢₖ  (the predictions are log pᵢₖ)", "∂ℓᵢ/∂(log pᵢₖ) = −yᵢₖ"]


NLL = register(
    Loss(
        name="nll",
        summary="negative log-likelihood of log-probability rows (log softmax outputs); index or one-hot targets",
        kind="rows",
        compute=nll_compute,
        check=nll_check,
        formulas=nll_formulas,
        has_logits=False,
        reference="torch.nn.functional.nll_loss",
        params=(IGNORE, WEIGHTS),
    )
)
