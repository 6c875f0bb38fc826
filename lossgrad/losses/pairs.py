"""Losses of more than a target and a prediction: the Gaussian negative log-likelihood (a variance per
prediction), the triplet margin loss (an anchor, a positive and a negative), the margin ranking loss (a pair and
which of it should rank higher) and the cosine embedding loss (a pair of vectors and whether they should align).

The further arrays are the loss's extra inputs (base.Input): compute and check take them by name, and return the
gradient with respect to each in Parts.extra_grads. The exact forms work in long double and, where even that
cancels, in decimal; the frameworks' in their own order of operations.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import precise
from ._ops import Array
from .base import Input, Loss, Param, Parts, Reason, _g, first_bad, register

if TYPE_CHECKING:
    from decimal import Decimal

    from ..conventions import Convention

TORCH_VAR_EPS = 1e-6  # gaussian_nll_loss's eps
TORCH_DIST_EPS = 1e-6  # triplet_margin_loss's eps (pairwise_distance)
TORCH_COS_EPS = float.fromhex("0x1.197998p-40")  # cosine_embedding_loss's EPSILON: float32(1e-12)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
HALF_LOG_2PI_LONG = "0.918938533204672741780329736405617639861"  # ½ log 2π to 39 digits, for long double


def _long(a: Array) -> Array:
    return a.astype(precise._long() or np.float64)


def _hinge_grad(x: Array, tie: float) -> Array:
    """d max(0, x)/dx: 1 above the kink, `tie` at it, 0 below."""
    return np.where(x > 0, 1.0, np.where(x == 0, tie, 0.0)).astype(x.dtype)


# ---------------------------------------------------------------- gaussian-nll

VAR = Input("var", "The variances: one per prediction, or one per sample for all its outputs.", per_sample=True)


def _gauss_terms(y: Any, p: Any, v: Any, full: bool) -> tuple[Any, Any]:
    """½(log v + (p − y)²/v) [+ ½ log 2π] and the size of its terms, in the arrays' arithmetic."""
    e = p - y
    q = e * e / v
    half_log = np.log(v) / 2 if isinstance(v, np.ndarray) else v.ln() / 2
    c = 0 if not full else (v.dtype.type(HALF_LOG_2PI_LONG) if isinstance(v, np.ndarray) else _dec_half_log_2pi())
    return half_log + q / 2 + c, abs(half_log) + q / 2 + c


def _dec_half_log_2pi() -> Decimal:
    from decimal import Decimal, getcontext

    # 2π from the series for arctan: π = 16 atan(1/5) − 4 atan(1/239), at the context's precision
    def atan_inv(n: int) -> Decimal:
        x, total, k, sign = Decimal(1) / n, Decimal(0), 1, 1
        term = x
        while term > Decimal(10) ** -(getcontext().prec + 5):
            total += sign * term / k
            x /= n * n
            term, k, sign = x, k + 2, -sign
        return total

    pi = 16 * atan_inv(5) - 4 * atan_inv(239)
    return (2 * pi).ln() / 2


def _gauss_exact(y: Array, p: Array, v: Array, full: bool) -> tuple[Array, Array, Array]:
    """Loss, d/dp = (p − y)/v and d/dv = (v − (p − y)²)/(2v²): long double, decimal where they cancel."""
    from decimal import Decimal

    yl, pl, vl = _long(y), _long(p), _long(np.broadcast_to(v, p.shape))
    loss_l, scale = _gauss_terms(yl, pl, vl, full)
    losses = precise.refine(loss_l.astype(np.float64), scale.astype(np.float64),
                            lambda a, b, c: _gauss_terms(a, b, c, full),
                            lambda a, b, c: _gauss_terms(Decimal(a), Decimal(b), Decimal(c), full), y, p, vl)
    e = pl - yl
    grad = (e / vl).astype(np.float64)
    sq = e * e
    gv = ((vl - sq) / (2 * vl * vl)).astype(np.float64)
    gv = precise.refine(gv, ((vl + sq) / (2 * vl * vl)).astype(np.float64), _gauss_var_grad,
                        lambda a, b, c: _gauss_var_grad(Decimal(a), Decimal(b), Decimal(c)), y, p, vl)
    return losses, grad, gv


def _gauss_var_grad(y: Any, p: Any, v: Any) -> tuple[Any, Any]:
    """(v − e²)/(2v²) and the size of its terms."""
    sq = (p - y) * (p - y)
    return (v - sq) / (2 * v * v), (abs(v) + sq) / (2 * v * v)


def _gauss_torch(y: Array, p: Array, v: Array, full: bool) -> tuple[Array, Array, Array]:
    """gaussian_nll_loss as PyTorch computes it, and its autograd (log's 1/v, then div's −(e²/v)/v)."""
    half = p.dtype.type(0.5)
    e = p - y
    sq = e * e
    losses = half * (np.log(v) + sq / v)
    if full:
        losses = losses + p.dtype.type(HALF_LOG_2PI)
    grad = (half / v) * (2 * e)  # (autograd's order: the upstream ½ through div's 1/v, then pow's 2e)
    gv = half / v + (-half) * (sq / v / v)
    return losses, grad, gv


def gaussian_nll_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                         full: bool = False, var_eps: float | None = None, var: Array | None = None) -> Parts:
    assert var is not None
    floor = var_eps if var_eps is not None else (TORCH_VAR_EPS if conv.pairs == "torch" else None)
    if floor is None:
        first_bad("var", var == 0, var,
                  "is 0: the exact convention takes the variance as given (a Gaussian of variance 0 has no density); "
                  "give {var_eps} to clamp it as PyTorch does")
        v = var
    else:
        v = np.maximum(var, var.dtype.type(floor))
    if conv.pairs == "torch":
        losses, grad, gv = _gauss_torch(y, p, v, full)
    else:
        losses, grad, gv = _gauss_exact(y, p, v, full)
        # the clamp max(var, ε) is flat below ε: its derivative there is 0 (PyTorch passes it straight through)
        gv = np.where(np.broadcast_to(var, p.shape) < (floor or 0), 0.0, gv)
    gv = gv.astype(p.dtype)
    if var.shape != p.shape:  # one variance per sample: the sum of its outputs' derivatives
        gv = gv.sum(axis=1, keepdims=True)
    return Parts(losses=losses, grad=grad, extra_grads={"var": gv})


def gaussian_nll_check(y: Array, p: Array, from_logits: bool, full: bool = False,
                       var: Array | None = None) -> None:
    assert var is not None
    first_bad("var", var < 0, var, "is negative: a variance is at least 0")


def gaussian_nll_formulas(from_logits: bool, conv: Convention, full: bool = False,
                          var_eps: float | None = None) -> list[str]:
    floor = var_eps if var_eps is not None else (TORCH_VAR_EPS if conv.pairs == "torch" else None)
    v = "vᵢ = varᵢ" if floor is None else f"vᵢ = max(varᵢ, ε), ε = {floor:g}"
    lines = [v, "ℓᵢ = ½(log vᵢ + (pᵢ − yᵢ)²/vᵢ)" + (" + ½ log 2π" if full else ""),
             "∂ℓᵢ/∂pᵢ = (pᵢ − yᵢ)/vᵢ", "∂ℓᵢ/∂varᵢ = (vᵢ − (pᵢ − yᵢ)²)/(2vᵢ²)"]
    if floor is not None:
        lines[-1] += (", passed straight through the clamp (PyTorch clamps a copy under no_grad)"
                      if conv.pairs == "torch" else ", 0 where varᵢ < ε")
    return lines


def gaussian_nll_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool,
                         labels: Array | None, **opts: Any) -> list[Reason]:
    if conv.pairs != "torch":
        return []
    return [(np.ones_like(p2, dtype=bool), lambda i: f"{conv.name} clamps each variance at ε = {TORCH_VAR_EPS:g} "
             "(the exact convention takes it as given), and forms ½(log v + e²/v) in its own order")]


GAUSSIAN_NLL = register(
    Loss(
        name="gaussian-nll",
        summary="Gaussian negative log-likelihood ½(log var + (p − y)²/var), gradients for p and --var",
        kind="elementwise",
        compute=gaussian_nll_compute,
        check=gaussian_nll_check,
        formulas=gaussian_nll_formulas,
        has_logits=False,
        reference="torch.nn.functional.gaussian_nll_loss",
        params=(Param("full", False, "Add the constant ½ log 2π (PyTorch's full=True).", flag=True),
                Param("var_eps", None, "Clamp the variances at this floor (PyTorch's eps; torch's default 1e-6, "
                      "exact: no clamp).")),
        reasons=gaussian_nll_reasons,
        inputs=(VAR,),
    )
)


# ---------------------------------------------------------------- triplet

NEGATIVE = Input("negative", "The negatives: one row per sample, as far from the anchor (--pred) as it may be.")


def _norm_grad(x: Array, d: Array, q: float) -> Array:
    """∂‖x‖_q/∂x = sign(x)|x|^(q−1)/‖x‖^(q−1), taken as 0 where ‖x‖ = 0 and, for q ≤ 1, where x = 0 (|x|^q has
    no derivative there; 0 is the subgradient PyTorch's norm backward takes)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if q == 2:
            g = x / d[:, None]
        elif q == 1:
            g = np.sign(x)
        else:
            g = np.sign(x) * np.abs(x) ** (q - 1) / (d ** (q - 1))[:, None]
    return np.where((d[:, None] > 0) & (x != 0), g, 0)


def _norm(x: Array, q: float) -> Array:
    out: Array = np.sqrt((x * x).sum(axis=1)) if q == 2 else (np.abs(x) ** q).sum(axis=1) ** (1 / q)
    return out


def _triplet_dec(a: list[float], p: list[float], n: list[float], q: float, margin: float,
                 swap: bool) -> tuple[Decimal, Decimal]:
    from decimal import Decimal

    def norm(u: list[float], v: list[float]) -> Decimal:
        s = sum((abs(Decimal(x) - Decimal(y)) ** Decimal(q) for x, y in zip(u, v, strict=True)), Decimal(0))
        return s.sqrt() if q == 2 else (s.ln() / Decimal(q)).exp() if s else Decimal(0)

    dp, dn = norm(a, p), norm(a, n)
    if swap:
        dn = min(dn, norm(p, n))
    return dp - dn + Decimal(margin), dp + dn + Decimal(margin)


def _grad_diff_dec(x1: list[float], v1: list[float], x2: list[float], v2: list[float], q: float,
                   j: int) -> tuple[Decimal, Decimal]:
    """∇ⱼ‖x1 − v1‖_q − ∇ⱼ‖x2 − v2‖_q at the context's precision, and the size of its two terms."""
    from decimal import Decimal

    def term(x: list[float], v: list[float]) -> Decimal:
        d = [Decimal(a) - Decimal(b) for a, b in zip(x, v, strict=True)]
        s = sum((abs(e) ** Decimal(q) for e in d), Decimal(0))
        if s == 0:
            return Decimal(0)
        norm = s.sqrt() if q == 2 else (s.ln() / Decimal(q)).exp()
        e = d[j]
        if e == 0:  # (the subgradient 0, as _norm_grad takes it)
            return Decimal(0)
        return (e / norm if q == 2 else (1 if e > 0 else -1 if e < 0 else 0) * abs(e) ** Decimal(q - 1)
                / norm ** Decimal(q - 1))

    t1, t2 = term(x1, v1), term(x2, v2)
    return t1 - t2, abs(t1) + abs(t2)


def _difference(t1: Array, t2: Array, arrays: tuple[Array, ...], rows: Array, q: float) -> Array:
    """t1 − t2 (two norms' gradients, long double) rounded; where they cancel in `rows`, in decimal from `arrays`
    (x1, v1, x2, v2: the two differences' ends)."""
    out = (t1 - t2).astype(np.float64)
    risky = (np.abs(t1 - t2) < precise.LONG_ENOUGH * (np.abs(t1) + np.abs(t2))).any(axis=1) & rows
    for i in np.nonzero(risky)[0]:
        ends = [[float(v) for v in a[i]] for a in arrays]
        out[i] = [float(precise._adaptive(_grad_diff_dec, *ends, q, j)) for j in range(out.shape[1])]
    return out


def _triplet_exact(a: Array, p: Array, n: Array, q: float, margin: float, swap: bool) -> tuple[Array, list[Array]]:
    """‖a − p‖ − ‖a − n‖ + margin (with swap, ‖p − n‖ for ‖a − n‖ where smaller) in long double, decimal where it
    cancels; the gradients likewise, a sum of two unit vectors in decimal where they cancel."""
    al, pl, nl = _long(a), _long(p), _long(n)

    def long_rows(a_: Array, p_: Array, n_: Array) -> tuple[Array, Array]:
        dp_, dn_ = _norm(a_ - p_, q), _norm(a_ - n_, q)
        if swap:
            dn_ = np.minimum(dn_, _norm(p_ - n_, q))
        return dp_ - dn_ + margin, dp_ + dn_ + margin

    x, scale = long_rows(al, pl, nl)
    x = precise.refine_rows(x.astype(np.float64), scale.astype(np.float64), long_rows,
                            lambda u, v, w: _triplet_dec(u, v, w, q, margin, swap), a, p, n)
    dn, ds = _norm(al - nl, q), _norm(pl - nl, q)
    use_s = (swap & (ds < dn))[:, None]
    u, w, s = _norm_grad(al - pl, _norm(al - pl, q), q), _norm_grad(al - nl, dn, q), _norm_grad(pl - nl, ds, q)
    ga = np.where(use_s, u.astype(np.float64), _difference(u, w, (a, p, a, n), ~use_s[:, 0], q))
    # with swap: ∂/∂pos = −∇‖a − pos‖ − ∇‖pos − neg‖ = −(∇‖a − pos‖ − ∇‖neg − pos‖)
    gpos = np.where(use_s, -_difference(u, -s, (a, p, n, p), use_s[:, 0], q), -u.astype(np.float64))
    return x, [ga, gpos, np.where(use_s, s, w).astype(np.float64)]


def _triplet_framework(a: Array, p: Array, n: Array, q: float, margin: float, form: str,
                       swap: bool) -> tuple[Array, list[Array]]:
    """PyTorch: ‖a − p + ε‖_q (pairwise_distance), with swap min(‖a − n + ε‖, ‖p − n + ε‖) (minimum's gradient
    halved at a tie); optax: (Σ(a − p)^q + ε)^(1/q), no |.|; autodiff."""
    eps = a.dtype.type(TORCH_DIST_EPS)
    if form == "torch":
        u, v = a - p + eps, a - n + eps
        dp, dn = _norm(u, q), _norm(v, q)
        gp, gn = _norm_grad(u, dp, q), _norm_grad(v, dn, q)
        if swap:
            sv = p - n + eps
            ds = _norm(sv, q)
            gs = _norm_grad(sv, ds, q)
            wn = np.where(dn < ds, 1, np.where(dn == ds, 0.5, 0)).astype(a.dtype)[:, None]
            d_neg = np.minimum(dn, ds)
            return dp - d_neg + a.dtype.type(margin), [gp - wn * gn, -gp - (1 - wn) * gs, wn * gn + (1 - wn) * gs]
    else:
        k = int(q) if float(q).is_integer() else q  # (a fractional q is a power of its own, NaN below 0)
        sp, sn = (a - p) ** k, (a - n) ** k
        tp, tn = sp.sum(axis=1) + eps, sn.sum(axis=1) + eps
        inv = a.dtype.type(1 / q)
        dp, dn = tp ** inv, tn ** inv
        gp = (a - p) ** (k - 1) * (inv * tp ** (inv - 1) * k)[:, None]
        gn = (a - n) ** (k - 1) * (inv * tn ** (inv - 1) * k)[:, None]
    return dp - dn + a.dtype.type(margin), [gp - gn, -gp, gn]


def triplet_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                    margin: float = 1.0, norm_degree: float = 2.0, swap: bool = False,
                    negative: Array | None = None) -> Parts:
    """y is the positive, p the anchor: max(0, d(a, pos) − d(a, neg) + margin) per sample."""
    assert negative is not None
    if conv.pairs == "exact":
        x, (ga, gpos, gneg) = _triplet_exact(p, y, negative, norm_degree, margin, swap)
    else:
        x, (ga, gpos, gneg) = _triplet_framework(p, y, negative, norm_degree, margin, conv.pairs, swap)
    on = _hinge_grad(x, conv.pairs_tie)[:, None]
    losses = np.maximum(x, 0).astype(p.dtype)
    # (+ 0: no −0 where the kink multiplies by 0)
    return Parts(losses=losses, grad=(ga * on).astype(p.dtype) + 0,
                 extra_grads={"target": (gpos * on).astype(p.dtype) + 0, "negative": (gneg * on).astype(p.dtype) + 0})


def triplet_check(y: Array, p: Array, from_logits: bool, swap: bool = False, negative: Array | None = None) -> None:
    return None


def triplet_formulas(from_logits: bool, conv: Convention, margin: float = 1.0, norm_degree: float = 2.0,
                     swap: bool = False) -> list[str]:
    q = f"{norm_degree:g}"
    dist = {"exact": f"d(u, v) = ‖u − v‖_{q}",
            "torch": f"d(u, v) = ‖u − v + ε‖_{q}, ε = {TORCH_DIST_EPS:g} (pairwise_distance)",
            "optax": f"d(u, v) = (Σₖ(uₖ − vₖ)^{q} + ε)^(1/{q}), ε = {TORCH_DIST_EPS:g}"}[conv.pairs]
    tie = {0.0: "0", 1.0: "the gradient passes", 0.5: "half of it"}.get(conv.pairs_tie, _g(conv.pairs_tie))
    neg = "min(d(aᵢ, negᵢ), d(posᵢ, negᵢ)) (swap)" if swap else "d(aᵢ, negᵢ)"
    lines = [f"aᵢ = pᵢ (anchor), posᵢ = yᵢ, negᵢ = --negative row, margin = {margin:g}", dist,
             f"ℓᵢ = max(0, d(aᵢ, posᵢ) − {neg} + margin)",
             "∂ℓᵢ/∂aᵢ = ∇d(aᵢ, posᵢ) − ∇d(aᵢ, negᵢ), ∂ℓᵢ/∂posᵢ = −∇d(aᵢ, posᵢ), ∂ℓᵢ/∂negᵢ = ∇d(aᵢ, negᵢ) "
             f"where ℓᵢ > 0 (at ℓᵢ = 0 from the kink: {tie})"]
    if swap:
        lines.append("where d(posᵢ, negᵢ) is the smaller: ∂ℓᵢ/∂aᵢ = ∇d(aᵢ, posᵢ), ∂ℓᵢ/∂posᵢ = −∇d(aᵢ, posᵢ) − "
                     "∇d(posᵢ, negᵢ), ∂ℓᵢ/∂negᵢ = ∇d(posᵢ, negᵢ)")
    return lines


def _margin_reasons(what: dict[str, str]) -> Any:
    def reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool, labels: Array | None,
                **opts: Any) -> list[Reason]:
        if conv.pairs == "exact":
            return []
        rules = []
        if opts.get("other") is not None:  # (margin-ranking: the hinge's argument, for its kink)
            x = -y2 * (p2 - opts["other"]) + (0.0 if opts.get("margin") is None else opts["margin"])
            rules.append(_kink(conv, x == 0))
        return rules + [(np.ones_like(p2, dtype=bool), lambda i: f"{conv.name} {what[conv.pairs]}")]
    return reasons


def _kink(conv: Convention, at: Array) -> Reason:
    """The hinge's kink, where a framework's autodiff passes some of the gradient and the exact convention none."""
    tie = {1.0: "all of the gradient", 0.5: "half of the gradient"}.get(conv.pairs_tie, f"{conv.pairs_tie:g} of it")
    return (at, lambda i: f"the loss is at the hinge's kink (its argument is exactly 0): {conv.name}'s autodiff "
                          f"passes {tie} there, the exact convention none (any share is a subgradient)")


def triplet_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool, labels: Array | None,
                    norm_degree: float = 2.0, margin: float = 1.0, swap: bool = False, negative: Array | None = None,
                    **opts: Any) -> list[Reason]:
    """Where PyTorch's and optax's triplet margin loss depart from ‖a − pos‖_q − ‖a − neg‖_q + margin: PyTorch's ε
    added to each difference (which, where a difference is 0, puts |·| off its kink), optax's powers of the
    differences without |·| (a signed sum for an odd q, NaN for a fractional one), and the hinge's kink."""
    if conv.pairs == "exact" or negative is None:
        return []
    q, a, pos, neg = 2.0 if norm_degree is None else norm_degree, p2, y2, negative
    margin = 1.0 if margin is None else margin
    rows = np.ones_like(p2, dtype=bool)
    with np.errstate(all="ignore"):
        x, _ = _triplet_framework(a, pos, neg, q, margin, conv.pairs, swap)
    rules: list[Reason] = [_kink(conv, np.broadcast_to((x == 0)[:, None], p2.shape))]
    if conv.pairs == "torch":
        zero = np.asarray((a == pos) | (a == neg) | ((pos == neg) & swap))
        slope = "1" if q == 1 else f"ε^{q - 1:g}/‖·‖^{q - 1:g}"
        exact = "takes the subgradient 0 at 0" if q <= 1 else "has the derivative 0 there"
        rules.append((zero, lambda i: f"a difference is 0 here: {conv.name} adds ε = {TORCH_DIST_EPS:g} to it "
                                      f"before its norm, where |·|^{q:g} has the slope {slope}; the exact convention "
                                      f"{exact}"))
        rules.append((rows, lambda i: f"{conv.name} adds ε = {TORCH_DIST_EPS:g} to each difference before its norm"))
        return rules
    dp, dn = a - pos, a - neg
    negative_rows = np.asarray(((dp < 0) | (dn < 0)).any(axis=1))
    if q != int(q):
        bad = np.broadcast_to(negative_rows[:, None], p2.shape)
        rules.append((bad, lambda i: f"{conv.name} raises the differences to the power {q:g} without |·| "
                                     "(jnp.power): a negative difference's fractional power is NaN"))
    elif int(q) % 2 == 1:
        sp, sn = (dp ** int(q)).sum(axis=1), (dn ** int(q)).sum(axis=1)
        signed = np.broadcast_to(negative_rows[:, None], p2.shape)
        root = "" if q == 1 else ", and the root of a negative sum is NaN"
        rules.append((signed, lambda i: f"{conv.name} takes (Σ(a − v)^{q:g} + ε)^(1/{q:g}) without |·|: for the odd "
                                        f"degree {q:g} a signed sum, not a norm (here Σ(a − pos)^{q:g} = "
                                        f"{_g(sp[i[0]])}, Σ(a − neg)^{q:g} = {_g(sn[i[0]])}){root}"))
    rules.append((rows, lambda i: f"{conv.name} adds ε = {TORCH_DIST_EPS:g} to the sum of powers under the root"))
    return rules


TRIPLET = register(
    Loss(
        name="triplet",
        summary="triplet margin loss max(0, d(p, y) − d(p, --negative) + margin): anchor p, positive y",
        kind="elementwise",
        compute=triplet_compute,
        check=triplet_check,
        formulas=triplet_formulas,
        has_logits=False,
        reference="torch.nn.functional.triplet_margin_loss, optax.losses.triplet_margin_loss",
        params=(Param("margin", 1.0, "How much nearer the positive than the negative must be (PyTorch: above 0).",
                      positive=False, signed=True),
                Param("norm_degree", 2.0, "The distance's norm: 2 Euclidean, 1 Manhattan (PyTorch's p)."),
                Param("swap", False, "Take d(positive, negative) for the negative's distance where it is smaller "
                      "(PyTorch's swap=True).", flag=True)),
        last_axis="vector",
        reasons=triplet_reasons,
        inputs=(NEGATIVE,),
        target_grad=True,
    )
)


# ---------------------------------------------------------------- margin-ranking

OTHER = Input("other", "The second member of each pair (x2; --pred is x1), one per prediction.")


def _ranking_dec(y: float, x1: float, x2: float, margin: float) -> tuple[Decimal, Decimal]:
    from decimal import Decimal
    d = Decimal(y) * (Decimal(x1) - Decimal(x2))
    return Decimal(margin) - d, abs(d) + abs(Decimal(margin))


def margin_ranking_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                           margin: float = 0.0, other: Array | None = None) -> Parts:
    """max(0, −y(x1 − x2) + margin): the exact one rounded once (long double, decimal where it cancels)."""
    assert other is not None
    if conv.pairs == "exact":
        def long_fn(y_: Array, a: Array, b: Array) -> tuple[Array, Array]:
            d = y_ * (a - b)
            return margin - d, np.abs(d) + abs(margin)

        x_l, scale = long_fn(_long(y), _long(p), _long(other))
        x = precise.refine(x_l.astype(np.float64), scale.astype(np.float64), long_fn,
                           lambda a, b, c: _ranking_dec(a, b, c, margin), y, p, other).astype(p.dtype)
    else:
        x = -y * (p - other) + p.dtype.type(margin)
    on = _hinge_grad(x, conv.pairs_tie)
    return Parts(losses=np.maximum(x, 0), grad=-y * on + 0, extra_grads={"other": y * on + 0})


def margin_ranking_check(y: Array, p: Array, from_logits: bool, other: Array | None = None) -> None:
    first_bad("target", (y != 1) & (y != -1), y, "is not a ranking label: 1 (pred should rank higher) or −1 "
                                                 "({other} should)")


def margin_ranking_formulas(from_logits: bool, conv: Convention, margin: float = 0.0) -> list[str]:
    tie = {0.0: "0", 1.0: "the gradient passes", 0.5: "half of it"}.get(conv.pairs_tie, _g(conv.pairs_tie))
    return [f"x1ᵢ = pᵢ, x2ᵢ = --other, yᵢ ∈ {{1, −1}}, margin = {margin:g}",
            "ℓᵢ = max(0, −yᵢ(x1ᵢ − x2ᵢ) + margin)",
            f"∂ℓᵢ/∂x1ᵢ = −yᵢ, ∂ℓᵢ/∂x2ᵢ = yᵢ where ℓᵢ > 0, else 0 (at the kink: {tie})"]


MARGIN_RANKING = register(
    Loss(
        name="margin-ranking",
        summary="margin ranking loss max(0, −y(p − --other) + margin), y = 1 or −1",
        kind="elementwise",
        compute=margin_ranking_compute,
        check=margin_ranking_check,
        formulas=margin_ranking_formulas,
        has_logits=False,
        reference="torch.nn.functional.margin_ranking_loss",
        params=(Param("margin", 0.0, "How far ahead the higher-ranked member must be (any sign).", positive=False,
                      signed=True),),
        reasons=_margin_reasons({"torch": "forms −y(x1 − x2) + margin with two roundings"}),
        inputs=(OTHER,),
    )
)


# ---------------------------------------------------------------- cosine-embedding

LABEL = Input("label", "The pairs' labels, one per sample: 1 (alike: 1 − cos) or −1 (unlike: max(0, cos − margin)).",
              per_sample=True, differentiated=False, per_prediction=False)


def _cos_minus_margin_dec(y: list[float], p: list[float], margin: float) -> tuple[Decimal, Decimal]:
    """cos − margin from the exact sums, square root in decimal."""
    from decimal import Decimal

    from .divergence import _cosine_sums

    _, _, A, B, C = _cosine_sums(y, p)

    def dec(f: Any) -> Decimal:
        return Decimal(f.numerator) / Decimal(f.denominator)

    cos = dec(C) / (dec(A) * dec(B)).sqrt()
    return cos - Decimal(margin), abs(cos) + abs(Decimal(margin))


def _cosine_embedding_exact(y: Array, p: Array, margin: float) -> tuple[Array, Array, Array, Array]:
    """1 − cos with its gradients (divergence's exact cosine), and cos − margin (long double, decimal where it
    cancels)."""
    from .divergence import _cosine_exact

    one_minus, g_p = _cosine_exact(y, p)
    _, g_y = _cosine_exact(p, y)

    def long_rows(y_: Array, p_: Array) -> tuple[Array, Array]:
        # each row scaled by a power of 2 (exact) so that the sums neither overflow nor underflow
        ys = np.ldexp(y_, -np.frexp(np.abs(y_).max(axis=1, keepdims=True))[1])
        ps = np.ldexp(p_, -np.frexp(np.abs(p_).max(axis=1, keepdims=True))[1])
        cos = (ys * ps).sum(axis=1) / np.sqrt((ys * ys).sum(axis=1) * (ps * ps).sum(axis=1))
        return cos - margin, np.abs(cos) + abs(margin)

    h, scale = long_rows(_long(y), _long(p))
    h = precise.refine_rows(h.astype(np.float64), scale.astype(np.float64), long_rows,
                            lambda a, b: _cos_minus_margin_dec(a, b, margin), y, p)
    return one_minus, h, g_p, g_y


def _cosine_embedding_torch(y: Array, p: Array, margin: float) -> tuple[Array, Array, Array, Array]:
    """cosine_embedding_loss's arithmetic: cos = Σxy / sqrt((Σx² + ε)(Σy² + ε)), and its autograd."""
    e = p.dtype.type(TORCH_COS_EPS)
    C = (p * y).sum(axis=1)
    m1, m2 = (p * p).sum(axis=1) + e, (y * y).sum(axis=1) + e
    denom = np.sqrt(m1 * m2)
    cos = C / denom
    dcos_p = y / denom[:, None] - (C * m2 / denom ** 3)[:, None] * p
    dcos_y = p / denom[:, None] - (C * m1 / denom ** 3)[:, None] * y
    return 1 - cos, cos - p.dtype.type(margin), -dcos_p, -dcos_y


def cosine_embedding_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                             margin: float = 0.0, label: Array | None = None) -> Parts:
    """label 1: 1 − cos(p, y); label −1: max(0, cos(p, y) − margin); gradients for p and for y."""
    assert label is not None
    if conv.pairs == "exact":
        one_minus, h, g_p, g_y = _cosine_embedding_exact(y, p, margin)
    else:
        one_minus, h, g_p, g_y = _cosine_embedding_torch(y, p, margin)
    alike = label[:, 0] == 1
    losses = np.where(alike, one_minus, np.maximum(h, 0)).astype(p.dtype)
    # d max(0, cos − m) = −d(1 − cos) where it is above the kink
    f = np.where(alike, 1, -_hinge_grad(h, conv.pairs_tie)).astype(p.dtype)[:, None]
    return Parts(losses=losses, grad=(f * g_p).astype(p.dtype) + 0,
                 extra_grads={"target": (f * g_y).astype(p.dtype) + 0})


def cosine_embedding_check(y: Array, p: Array, from_logits: bool, label: Array | None = None) -> None:
    assert label is not None
    first_bad("label", (label != 1) & (label != -1), label, "is not a pair's label: 1 (alike) or −1 (unlike)")


def cosine_embedding_formulas(from_logits: bool, conv: Convention, margin: float = 0.0) -> list[str]:
    cos = ("cos(pᵢ, yᵢ) = Σₖ pᵢₖyᵢₖ / (‖pᵢ‖·‖yᵢ‖)" if conv.pairs == "exact"
           else "cos(pᵢ, yᵢ) = Σₖ pᵢₖyᵢₖ / sqrt((‖pᵢ‖² + 1e−12)(‖yᵢ‖² + 1e−12))")
    tie = {0.0: "0", 1.0: "the gradient passes", 0.5: "half of it"}.get(conv.pairs_tie, _g(conv.pairs_tie))
    return [cos, f"ℓᵢ = 1 − cos(pᵢ, yᵢ) for labelᵢ = 1, max(0, cos(pᵢ, yᵢ) − margin) for labelᵢ = −1, "
            f"margin = {margin:g}",
            "∂cos/∂pᵢ = (yᵢ/‖yᵢ‖ − cos·pᵢ/‖pᵢ‖)/‖pᵢ‖ (and for yᵢ with the roles swapped); ∂ℓᵢ = −∂cos for "
            f"label 1, ∂cos where cos > margin for label −1 (at the kink: {tie})"]


COSINE_EMBEDDING = register(
    Loss(
        name="cosine-embedding",
        summary="cosine embedding loss: 1 − cos(p, y) for --label 1, max(0, cos − margin) for −1",
        kind="elementwise",
        compute=cosine_embedding_compute,
        check=cosine_embedding_check,
        formulas=cosine_embedding_formulas,
        has_logits=False,
        reference="torch.nn.functional.cosine_embedding_loss",
        params=(Param("margin", 0.0, "The cosine below which unlike pairs cost nothing (any sign).", positive=False,
                      signed=True),),
        last_axis="vector",
        reasons=_margin_reasons({"torch": "adds 1e−12 to each squared norm"}),
        inputs=(LABEL,),
        target_grad=True,
    )
)
