"""Overlap losses for segmentation, one per sample over its outputs (pixels): Dice and Tversky.

Dice is 1 − (2·Σpy + s)/(Σp + Σy + s), Tversky 1 − (TP + s)/(TP + α·FP + β·FN + s) with TP = Σpy,
FP = Σp(1 − y), FN = Σ(1 − p)y. The exact forms never take 1 − a quotient: the loss is the quotient of its
non-negative remainder (FP + FN, Σ(p − y)², α·FP + β·FN) over the denominator, summed in long double. Keras 3
(`keras.losses.Dice`, `Tversky`) adds ε to the denominator only and weighs Σ(1 − p)y by α (the paper's and MONAI's
α weighs Σp(1 − y)); PyTorch's are MONAI's `DiceLoss` and `TverskyLoss`, with smooth_nr = smooth_dr = 1e−5.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import precise
from ..errors import OptionError
from ._ops import Array, sigmoid_pair
from .base import Loss, Param, Parts, Reason, first_bad, register

if TYPE_CHECKING:
    from ..conventions import Convention

MONAI_SMOOTH = 1e-5  # DiceLoss' and TverskyLoss' smooth_nr and smooth_dr

SQUARED = Param("squared", False, "dice: the denominator Σp² + Σy² (MONAI's squared_pred=True) instead of Σp + Σy.",
                flag=True)
JACCARD = Param("jaccard", False, "dice: the Jaccard (IoU) loss 1 − (2Σpy + s)/(2(Σp + Σy − Σpy) + s), MONAI's "
                "jaccard=True (with --squared, of Σp² + Σy²).", flag=True)
SMOOTH = Param("smooth", None, "dice, tversky: s added to the numerator and the denominator (MONAI's smooth_nr = "
               "smooth_dr) [default: the convention's: 0 for exact, 1e-5 for torch (MONAI); Keras adds ε = 1e-7 "
               "to the denominator only, see --eps].", positive=False)
SMOOTH_DR = Param("smooth_dr", None, "dice, tversky: the s added to the denominator where it differs from the "
                  "numerator's --smooth (MONAI's smooth_dr apart from smooth_nr) [default: --smooth's].",
                  positive=False)
OVER_BATCH = Param("over_batch", False, "dice, tversky: one loss over the whole batch, its sums over every sample's "
                   "outputs together (Keras 3's default axis=None, MONAI's batch=True), instead of one loss per "
                   "sample.", flag=True)
TV_ALPHA = Param("alpha", 0.5, "tversky: the weight α of the false positives Σp(1 − y) (Keras 3's alpha weighs "
                 "the false negatives Σ(1 − p)y: lossgrad swaps them for -c keras).", positive=False)
TV_BETA = Param("beta", 0.5, "tversky: the weight β of the false negatives Σ(1 − p)y.", positive=False)


def _smooth(conv: Convention, smooth: float | None, smooth_dr: float | None = None) -> tuple[float, float]:
    """(s added to the numerator, s added to the denominator) under `conv`: --smooth for both unless --smooth-dr
    gives the denominator's."""
    if conv.segmentation == "keras":
        for name, given in (("smooth", smooth), ("smooth_dr", smooth_dr)):
            if given is not None:
                raise OptionError(name, "Keras' dice and tversky add ε to the denominator only: set it with {eps}")
        return 0.0, conv.eps or 0.0
    s = smooth if smooth is not None else (MONAI_SMOOTH if conv.segmentation == "monai" else 0.0)
    return s, s if smooth_dr is None else smooth_dr


def _probs(p: Array, from_logits: bool) -> tuple[Array, Array, Array | None]:
    """The probabilities, dp/dx, and σ (from logits)."""
    if not from_logits:
        return p, np.ones_like(p), None
    s, sn, _ = sigmoid_pair(p)
    return s, s * sn, s


def _undefined(d: Array, p: Array, over_batch: bool = False, why: str = "predictions and targets all 0",
               remedy: str = "") -> None:
    """A row whose denominator is 0 (all zeros, and no smoothing) has the quotient 0/0: no loss to give."""
    all_zero = "predictions and targets all 0"
    where = (f"starts a row where the overlap's denominator is 0 ({why})" if not over_batch else
             "the whole batch's predictions and targets are all 0 ({over_batch}), so the overlap's denominator is 0"
             if why == all_zero else f"the whole batch's overlap's denominator is 0 ({{over_batch}}: {why})")
    first_bad("pred", np.broadcast_to(d == 0, p.shape), p, f"{where}: the loss is 0/0 there; give {{smooth}} "
              f"(MONAI's default is 1e-5){remedy}")


def _tversky_why(tp: Array, alpha: float, beta: float) -> tuple[str, str]:
    """Why a tversky denominator TP + α·FP + β·FN is 0, and what else would give it a value: with α and β both
    positive only where predictions and targets are all 0; else no overlap, and what a zero α or β leaves out."""
    if alpha > 0 and beta > 0:
        return "predictions and targets all 0", ""
    zero = [name for name, v in (("{alpha}", alpha), ("{beta}", beta)) if v == 0]
    left = {"{alpha}": "false positives", "{beta}": "false negatives"}
    return (f"no overlap, TP = Σpy = 0, and {' and '.join(f'{n} = 0' for n in zero)} "
            f"{'leave' if len(zero) > 1 else 'leaves'} out the {' and '.join(left[n] for n in zero)}",
            f", or a nonzero {' or '.join(zero)}")


def _dice_exact(y: Array, p: Array, squared: bool, s: float, jaccard: bool = False,
                s_dr: float | None = None, over_batch: bool = False) -> tuple[Array, Array]:
    """ℓ = E'/D, E' = E + s_dr − s, E = Σ(p(1 − y) + y(1 − p)) (Σ(p − y)² squared), D = Σp + Σy + s_dr
    (Σp² + Σy² + s_dr): non-negative sums when s_dr = s; ∂ℓ/∂p_k = (N·d_k − 2y_k·D)/D², N = 2Σpy + s = D − E',
    d_k = 1 (2p_k squared). Jaccard's denominator is J = 2(Σp + Σy − Σpy) + s_dr = D + E, so ℓ = (2E + s_dr − s)/J
    and ∂ℓ/∂p_k = (2(N·d_k − 2y_k·D) + 2y_k(s_dr − s))/J²."""
    work = precise._long() or p.dtype
    yl, pl = y.astype(work), p.astype(work)
    dr = s if s_dr is None else s_dr
    off = yl.dtype.type(dr) - yl.dtype.type(s)  # (s_dr − s in the working precision: exact in long double)
    n = 2 * (pl * yl).sum(axis=1, keepdims=True) + s
    if squared:
        e = ((pl - yl) ** 2).sum(axis=1, keepdims=True)
        d = (pl * pl).sum(axis=1, keepdims=True) + (yl * yl).sum(axis=1, keepdims=True) + dr
        # 2(p_k·N − y_k·D) = 2(D·(p_k − y_k) − p_k·E): near p = y the first form's terms agree to E/D, where N
        # is far below D (a small overlap) the second's; each element takes the form that keeps more of its terms
        a1, b1 = pl * n, yl * d
        a2, b2 = d * (pl - yl), pl * (e + off)
        first = np.abs(a1 - b1) * (np.abs(a2) + np.abs(b2)) >= np.abs(a2 - b2) * (np.abs(a1) + np.abs(b1))
        top = 2 * np.where(first, a1 - b1, a2 - b2)
    else:
        e = (pl * (1 - yl) + yl * (1 - pl)).sum(axis=1, keepdims=True)
        d = pl.sum(axis=1, keepdims=True) + yl.sum(axis=1, keepdims=True) + dr
        top = n - 2 * yl * d
    _undefined(d, p, over_batch)
    if jaccard:
        e, top, d = 2 * e, 2 * top, d + e
        if dr != s:
            top = top + 2 * yl * off
    if dr != s:
        e = e + off
    with np.errstate(divide="ignore", invalid="ignore"):
        return (e / d)[:, 0].astype(p.dtype), (top / (d * d)).astype(p.dtype)


def _tversky_exact(y: Array, p: Array, alpha: float, beta: float, s: float,
                   s_dr: float | None = None, over_batch: bool = False) -> tuple[Array, Array]:
    """ℓ = U'/D, U = α·FP + β·FN, U' = U + s_dr − s, D = TP + U + s_dr; ∂ℓ/∂p_k = (U'_k·(TP + s) − U'·y_k)/D²,
    U'_k = α(1 − y_k) − β·y_k."""
    work = precise._long() or p.dtype
    yl, pl = y.astype(work), p.astype(work)
    a, b = yl.dtype.type(alpha), yl.dtype.type(beta)
    tp = (pl * yl).sum(axis=1, keepdims=True)
    u = a * (pl * (1 - yl)).sum(axis=1, keepdims=True) + b * ((1 - pl) * yl).sum(axis=1, keepdims=True)
    dr = s if s_dr is None else s_dr
    d = tp + u + dr
    du = a * (1 - yl) - b * yl
    _undefined(d, p, over_batch, *_tversky_why(tp, alpha, beta))
    if dr != s:  # (s_dr − s in the working precision)
        u = u + (yl.dtype.type(dr) - yl.dtype.type(s))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (u / d)[:, 0].astype(p.dtype), ((du * (tp + s) - u * yl) / (d * d)).astype(p.dtype)


def _dice_keras(y: Array, p: Array, eps: float) -> tuple[Array, Array]:
    """keras.losses.dice along each sample: 1 − 2·Σyp/(Σy + Σp + ε), and TensorFlow's autodiff of it."""
    a = 2 * (y * p).sum(axis=1, keepdims=True)
    b = y.sum(axis=1, keepdims=True) + p.sum(axis=1, keepdims=True) + p.dtype.type(eps)
    return (1 - a / b)[:, 0], -(2 * y) / b + a / b / b


def _tversky_keras(y: Array, p: Array, alpha: float, beta: float, eps: float) -> tuple[Array, Array]:
    """keras.losses.tversky along each sample: 1 − TP/(TP + α·Σ(1 − p)y + β·Σp(1 − y) + ε), and its autodiff."""
    t = p.dtype.type
    tp = (y * p).sum(axis=1, keepdims=True)
    fp = ((1 - p) * y).sum(axis=1, keepdims=True)
    fn = (p * (1 - y)).sum(axis=1, keepdims=True)
    den = tp + fp * t(alpha) + fn * t(beta) + t(eps)
    g = tp / den / den
    return (1 - tp / den)[:, 0], y * (-1 / den + g) - y * (g * t(alpha)) + (1 - y) * (g * t(beta))


def _dice_monai(y: Array, p: Array, squared: bool, s: float, jaccard: bool = False,
                s_dr: float | None = None) -> tuple[Array, Array]:
    """MONAI's DiceLoss (one channel): tp = Σpy, fp = Σp − tp, fn = Σy − tp (squared: from the norms),
    1 − (2tp + s)/(2(tp + fp/2 + fn/2) + s) (jaccard: fp and fn not halved), differentiated as autodiff does."""
    t = p.dtype.type
    if squared:
        po, go = np.sqrt((p * p).sum(axis=1, keepdims=True)) ** 2, np.sqrt((y * y).sum(axis=1, keepdims=True)) ** 2
        tp = (po + go - np.sqrt(((p - y) ** 2).sum(axis=1, keepdims=True)) ** 2) / 2
        dtp, dden = y, 2 * p  # d tp/dp = (2p − 2(p − y))/2; d(po + go)/dp = 2p
    else:
        po, go = p.sum(axis=1, keepdims=True), y.sum(axis=1, keepdims=True)
        tp = (p * y).sum(axis=1, keepdims=True)
        dtp, dden = y, np.ones_like(p)
    half = t(1.0 if jaccard else 0.5)
    fp, fn = (po - tp) * half, (go - tp) * half
    num, den = 2 * tp + t(s), 2 * (tp + fp + fn) + t(s if s_dr is None else s_dr)
    if jaccard:  # (d den/dp = 2(d(po + go)/dp − d tp/dp))
        dden = 2 * (dden - dtp)
    return (1 - num / den)[:, 0], -(2 * dtp) / den + num / den / den * dden


def _tversky_monai(y: Array, p: Array, alpha: float, beta: float, s: float,
                   s_dr: float | None = None) -> tuple[Array, Array]:
    """MONAI's TverskyLoss (one channel): 1 − (tp + s)/(tp + α·Σp(1 − y) + β·Σ(1 − p)y + s), and its autodiff."""
    t = p.dtype.type
    tp = (p * y).sum(axis=1, keepdims=True)
    fp = (p * (1 - y)).sum(axis=1, keepdims=True) * t(alpha)
    fn = ((1 - p) * y).sum(axis=1, keepdims=True) * t(beta)
    num, den = tp + t(s), tp + fp + fn + t(s if s_dr is None else s_dr)
    g = num / den / den
    return (1 - num / den)[:, 0], -y / den + g * (y + t(alpha) * (1 - y) - t(beta) * y)


def dice_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                 squared: bool = False, smooth: float | None = None, jaccard: bool = False,
                 smooth_dr: float | None = None, over_batch: bool = False) -> Parts:
    q, dq, prob = _probs(p, from_logits)
    nr, dr = _smooth(conv, smooth, smooth_dr)
    if conv.segmentation == "keras":
        losses, grad = _dice_keras(y, q, dr)
    elif conv.segmentation == "monai":
        losses, grad = _dice_monai(y, q, squared, nr, jaccard, dr)
    else:
        losses, grad = _dice_exact(y, q, squared, nr, jaccard, dr, over_batch)
    return Parts(losses=losses, grad=grad * dq, prob=prob)


def tversky_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                    alpha: float = 0.5, beta: float = 0.5, smooth: float | None = None,
                    smooth_dr: float | None = None, over_batch: bool = False) -> Parts:
    q, dq, prob = _probs(p, from_logits)
    nr, dr = _smooth(conv, smooth, smooth_dr)
    if conv.segmentation == "keras":
        # Keras' alpha weighs Σ(1 − p)y and its beta Σp(1 − y): the paper's (and lossgrad's) α and β, swapped
        losses, grad = _tversky_keras(y, q, beta, alpha, dr)
    elif conv.segmentation == "monai":
        losses, grad = _tversky_monai(y, q, alpha, beta, nr, dr)
    else:
        losses, grad = _tversky_exact(y, q, alpha, beta, nr, dr, over_batch)
    return Parts(losses=losses, grad=grad * dq, prob=prob)


def segmentation_check(y: Array, p: Array, from_logits: bool, **switches: bool) -> None:
    first_bad("target", (y < 0) | (y > 1), y, "is outside [0, 1]; the targets are masks (0 or 1) or soft masks")
    if not from_logits:
        first_bad("pred", (p < 0) | (p > 1), p, "is outside [0, 1]; the predictions are probabilities: pass logits "
                  "with {from_logits}")


def _smooth_line(conv: Convention, smooth: float | None, smooth_dr: float | None = None) -> str:
    nr, dr = _smooth(conv, smooth, smooth_dr)
    if conv.segmentation == "keras":
        return f"ε = {dr:g} in the denominator only  (as {conv.title} computes it)"
    if dr != nr:
        return f"s = {nr:g} in the numerator; in the denominator s is {dr:g}  (MONAI's smooth_nr and smooth_dr)"
    return f"s = {nr:g}" + ("  (MONAI's smooth_nr = smooth_dr)" if conv.segmentation == "monai" else "")


def _over_batch_line(over_batch: bool) -> list[str]:
    return ["over the batch: i is the whole batch, Σₖ runs over every sample's outputs together (one loss; Keras' "
            "axis=None, MONAI's batch=True)"] if over_batch else []


def dice_formulas(from_logits: bool, conv: Convention, squared: bool = False, smooth: float | None = None,
                  jaccard: bool = False, smooth_dr: float | None = None, over_batch: bool = False) -> list[str]:
    p = "σ(zᵢₖ)" if from_logits else "pᵢₖ"
    den = f"Σₖ {p}² + Σₖ yᵢₖ²" if squared else f"Σₖ {p} + Σₖ yᵢₖ"
    lines = [f"pᵢₖ = {p}" if from_logits else f"{_smooth_line(conv, smooth, smooth_dr)}"]
    if from_logits:
        lines.append(_smooth_line(conv, smooth, smooth_dr))
    lines += _over_batch_line(over_batch)
    if jaccard:
        return lines + _jaccard_formulas(den, squared, from_logits)
    if conv.segmentation == "keras":
        lines.append(f"ℓᵢ = 1 − 2·Σₖ yᵢₖpᵢₖ / ({den} + ε)")
    else:
        rest = "Σₖ (pᵢₖ − yᵢₖ)²" if squared else "Σₖ (pᵢₖ(1 − yᵢₖ) + yᵢₖ(1 − pᵢₖ))"
        lines.append(f"ℓᵢ = 1 − (2·Σₖ yᵢₖpᵢₖ + s) / (Dᵢ), Dᵢ = {den} + s; = {rest} / Dᵢ")
    d = "2pᵢₖ" if squared else "1"
    lines.append(f"∂ℓᵢ/∂pᵢₖ = ((2·Σ yp + s)·{d} − 2yᵢₖ·Dᵢ) / Dᵢ²" + ("·σ(z)σ(−z)" if from_logits else ""))
    return lines


def _jaccard_formulas(den: str, squared: bool, from_logits: bool) -> list[str]:
    rest = "Σₖ (pᵢₖ − yᵢₖ)²" if squared else "Σₖ (pᵢₖ(1 − yᵢₖ) + yᵢₖ(1 − pᵢₖ))"
    d = "2pᵢₖ" if squared else "1"
    return [f"Dᵢ = {den} + s, Eᵢ = {rest}, Nᵢ = 2·Σₖ yᵢₖpᵢₖ + s = Dᵢ − Eᵢ",
            "ℓᵢ = 1 − Nᵢ / Jᵢ, Jᵢ = 2·(union) + s = Dᵢ + Eᵢ; = 2Eᵢ / Jᵢ  (Jaccard: MONAI's jaccard=True)",
            f"∂ℓᵢ/∂pᵢₖ = 2·(Nᵢ·{d} − 2yᵢₖ·Dᵢ) / Jᵢ²" + ("·σ(z)σ(−z)" if from_logits else "")]


def tversky_formulas(from_logits: bool, conv: Convention, alpha: float = 0.5, beta: float = 0.5,
                     smooth: float | None = None, smooth_dr: float | None = None,
                     over_batch: bool = False) -> list[str]:
    lines = ["pᵢₖ = σ(zᵢₖ)"] if from_logits else []
    lines.append(f"TP = Σₖ pᵢₖyᵢₖ, FP = Σₖ pᵢₖ(1 − yᵢₖ), FN = Σₖ (1 − pᵢₖ)yᵢₖ, α = {alpha:g}, β = {beta:g}, "
                 + _smooth_line(conv, smooth, smooth_dr))
    lines += _over_batch_line(over_batch)
    if conv.segmentation == "keras":
        lines.append(f"ℓᵢ = 1 − TP / (TP + α·FP + β·FN + ε)  (Keras' own alpha weighs FN: Keras' alpha = {beta:g}, "
                     f"beta = {alpha:g})")
    else:
        lines.append("ℓᵢ = 1 − (TP + s) / Dᵢ = (α·FP + β·FN) / Dᵢ, Dᵢ = TP + α·FP + β·FN + s")
    lines.append("∂ℓᵢ/∂pᵢₖ = ((α(1 − yᵢₖ) − β·yᵢₖ)·(TP + s) − (α·FP + β·FN)·yᵢₖ) / Dᵢ²"
                 + ("·σ(z)σ(−z)" if from_logits else ""))
    return lines


def segmentation_reasons(conv: Convention, y2: Array, p2: Array, from_logits: bool,
                         labels: Array | None, **opts: Any) -> list[Reason]:
    if conv.segmentation == "keras":
        return [(np.ones_like(p2, dtype=bool), lambda i: f"{conv.name} adds ε = {conv.eps:g} to the denominator "
                                                         "only, and forms 1 − the quotient by subtraction")]
    if conv.segmentation == "monai":
        return [(np.ones_like(p2, dtype=bool), lambda i: f"{conv.name} (MONAI) adds smooth_nr = smooth_dr = "
                                                         f"{MONAI_SMOOTH:g} to the numerator and the denominator")]
    return []


DICE = register(
    Loss(
        name="dice",
        summary="Dice loss 1 − (2Σpy + s)/(Σp + Σy + s) along each sample's outputs (or --over-batch), --squared, "
                "--smooth, --jaccard",
        kind="elementwise",
        compute=dice_compute,
        check=segmentation_check,
        formulas=dice_formulas,
        has_logits=True,
        link="sigmoid",
        reference="keras.losses.Dice (Keras 3), monai.losses.DiceLoss",
        params=(SQUARED, SMOOTH, JACCARD, SMOOTH_DR, OVER_BATCH),
        last_axis="vector",
        reasons=segmentation_reasons,
    )
)

TVERSKY = register(
    Loss(
        name="tversky",
        summary="Tversky loss 1 − (TP + s)/(TP + α·FP + β·FN + s) along each sample's outputs (or --over-batch), "
                "--alpha, --beta",
        kind="elementwise",
        compute=tversky_compute,
        check=segmentation_check,
        formulas=tversky_formulas,
        has_logits=True,
        link="sigmoid",
        reference="keras.losses.Tversky (Keras 3), monai.losses.TverskyLoss",
        params=(TV_ALPHA, TV_BETA, SMOOTH, SMOOTH_DR, OVER_BATCH),
        last_axis="vector",
        reasons=segmentation_reasons,
    )
)
