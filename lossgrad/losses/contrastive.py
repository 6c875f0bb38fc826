"""The contrastive loss of the InfoNCE family: each anchor (a row of the predictions) against every positive (the
rows of the targets), row i's own positive the one to pick out of the batch.

With sᵢⱼ = sim(aᵢ, pⱼ)/τ (cosine, or the dot product), ℓᵢ = −log softmaxⱼ(sᵢⱼ)[i] (InfoNCE, CLIP's image→text
half); --symmetric averages it with the positives' own (CLIP); --ntxent is SimCLR's loss over the 2B rows [a; p],
each row's pair its positive and itself left out of the denominator (optax.ntxent), the two losses of a pair
averaged so there is still one per sample. Every row's loss depends on the whole batch: the batch is evaluated at
once. The exact form works in long double, the log-sum-exp through the row's own positive (no cancellation
between it and the positive's similarity); optax's in its dtype, in its own order of operations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import precise
from ..errors import OptionError
from ._ops import Array
from .base import Loss, Param, Parts, register

if TYPE_CHECKING:
    from ..conventions import Convention


def _unit(x: Array, eps: float) -> tuple[Array, Array]:
    """x/‖x‖ and ‖x‖ per row (the squared norm clipped at eps first, as optax's cosine_similarity does)."""
    norm = np.sqrt(np.maximum((x * x).sum(axis=1, keepdims=True), x.dtype.type(eps)))
    return x / norm, norm


def _unit_back(g: Array, u: Array, norm: Array) -> Array:
    """The gradient through x ↦ x/‖x‖: (g − u(u·g))/‖x‖."""
    result: Array = (g - u * (u * g).sum(axis=1, keepdims=True)) / norm
    return result


def _softmax_loss(s: Array, pos: Array) -> tuple[Array, Array]:
    """−log softmax(sᵢ)[posᵢ] per row, as log Σⱼ exp(sᵢⱼ − sᵢ,posᵢ) (a row's −inf terms left out), and
    ∂/∂s = softmax − onehot(pos), its positive entry −Σ of the others so nothing cancels."""
    rows = np.arange(s.shape[0])
    d = s - s[rows, pos][:, None]
    d[rows, pos] = -np.inf
    m = np.maximum(d.max(axis=1), 0)
    e = np.exp(d - m[:, None])
    rest = e.sum(axis=1)
    # m = 0: log(1 + Σ) by log1p; else m + log(e^(−m) + Σ)
    loss = np.where(m == 0, np.log1p(rest), m + np.log(np.exp(-m) + rest))
    p = e / (np.exp(-m) + rest)[:, None]
    p[rows, pos] = -p.sum(axis=1)
    return loss, p


def _matrix_grads(s: Array, variant: str) -> tuple[Array, Array]:
    """Each sample's loss from the similarity matrix, and ∂Σℓ/∂s."""
    b = s.shape[0]
    if variant == "ntxent":
        pos = np.concatenate([np.arange(b // 2, b), np.arange(b // 2)])
        loss, g = _softmax_loss(s, pos)
        return (loss[: b // 2] + loss[b // 2:]) / 2, g / 2
    loss, g = _softmax_loss(s, np.arange(b))
    if variant == "clip":
        back, gt = _softmax_loss(s.T.copy(), np.arange(b))
        return (loss + back) / 2, (g + gt.T) / 2
    return loss, g


def _variant(symmetric: bool, ntxent: bool) -> str:
    if symmetric and ntxent:
        raise OptionError("ntxent", "cannot go with {symmetric}: they are two different losses; give one")
    return "ntxent" if ntxent else "clip" if symmetric else "infonce"


def _contrastive(a: Array, p: Array, tau: float, dot: bool, variant: str, eps: float) -> tuple[Array, Array, Array]:
    """Loss per sample and the gradients with respect to the anchors and the positives, in a's arithmetic."""
    if dot:
        ua, up, na, npos = a, p, None, None
    else:
        (ua, na), (up, npos) = _unit(a, eps), _unit(p, eps)
    t = a.dtype.type(tau)
    if variant == "ntxent":
        e = np.concatenate([ua, up])
        s = (e @ e.T) / t
        s[np.diag_indices_from(s)] = -np.inf
        loss, g = _matrix_grads(s, variant)
        g[np.diag_indices_from(g)] = 0
        ge = (g + g.T) @ e / t
        ga, gp = ge[: a.shape[0]], ge[a.shape[0]:]
    else:
        loss, g = _matrix_grads((ua @ up.T) / t, variant)
        ga, gp = g @ up / t, g.T @ ua / t
    if not dot:
        assert na is not None and npos is not None
        ga, gp = _unit_back(ga, ua, na), _unit_back(gp, up, npos)
    return loss, ga, gp


def _optax_losses(a: Array, p: Array, tau: float) -> Array:
    """optax.ntxent's per-row terms in its own order: cosines with the norms clipped at the dtype's ε, shifted by
    the row's maximum, numer − log(Σ exp(negatives) + exp(numer)); a sample's loss the mean of its two rows'."""
    eps = float(np.finfo(a.dtype).eps)
    e = np.concatenate([_unit(a, eps)[0], _unit(p, eps)[0]])
    n, b = e.shape[0], a.shape[0]
    s = (e @ e.T) / a.dtype.type(tau)
    pos = (np.arange(n) + b) % n
    numer_s = s[np.arange(n), pos]
    neg = s.copy()
    neg[np.arange(n), pos] = -np.inf
    neg[np.diag_indices(n)] = -np.inf
    m = np.maximum(neg.max(axis=1), numer_s)
    numer = numer_s - m
    denom = np.exp(neg - m[:, None]).sum(axis=1) + np.exp(numer)
    rows = -(numer - np.log(denom))
    result: Array = (rows[:b] + rows[b:]) / 2
    return result


def contrastive_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                        temperature: float = 0.07, dot: bool = False, symmetric: bool = False,
                        ntxent: bool = False) -> Parts:
    variant = _variant(symmetric, ntxent)
    if conv.pairs == "optax":
        assert variant == "ntxent" and not dot  # (conventions.py: optax lacks the others)
        loss, ga, gp = _contrastive(p, y, temperature, False, variant, float(np.finfo(p.dtype).eps))
        loss = _optax_losses(p, y, temperature)
    else:
        wide = precise._long() or np.float64
        loss, ga, gp = _contrastive(p.astype(wide), y.astype(wide), temperature, dot, variant, 0.0)
    return Parts(losses=loss.astype(p.dtype), grad=ga.astype(p.dtype),
                 extra_grads={"target": gp.astype(p.dtype)})


def contrastive_check(y: Array, p: Array, from_logits: bool, temperature: float = 0.07, dot: bool = False,
                      symmetric: bool = False, ntxent: bool = False) -> None:
    if y.shape != p.shape:
        raise OptionError("target", f"shape {y.shape} does not match the anchors' {p.shape}: row i of the targets "
                          "is row i's positive")
    if not dot:
        for name, x in (("pred", p), ("target", y)):
            zero = np.flatnonzero(~(x != 0).any(axis=1))
            if zero.size:
                raise OptionError(name, f"row {zero[0]} is all zeros: its cosine with anything is undefined "
                                  "(give {dot} for dot-product similarities)")


def contrastive_formulas(from_logits: bool, conv: Convention, temperature: float = 0.07, dot: bool = False,
                         symmetric: bool = False, ntxent: bool = False) -> list[str]:
    sim = "aᵢ·pⱼ" if dot else "aᵢ·pⱼ/(‖aᵢ‖‖pⱼ‖)"
    if conv.pairs == "optax":
        sim = "aᵢ·pⱼ/(sqrt(max(‖aᵢ‖², ε))·sqrt(max(‖pⱼ‖², ε))), ε = the dtype's machine epsilon"
    lines = [f"sᵢⱼ = {sim}/τ, τ = {temperature:g} (aᵢ: row i of the predictions, pⱼ: row j of the targets)"]
    variant = "ntxent" if ntxent else "clip" if symmetric else "infonce"
    if variant == "ntxent":
        lines += ["over the 2B rows e = [a; p]: ℓₖ = −log(exp(sₖ,ₖ₊B)/Σⱼ≠ₖ exp(sₖⱼ)) (k + B taken mod 2B)",
                  "each sample's loss ½(ℓᵢ + ℓᵢ₊B): the mean over B is optax's mean over 2B"]
    else:
        lines.append("ℓᵢ = −log(exp(sᵢᵢ)/Σⱼ exp(sᵢⱼ)) = log Σⱼ exp(sᵢⱼ − sᵢᵢ)")
        if variant == "clip":
            lines.append("symmetric: ½(ℓᵢ + log Σⱼ exp(sⱼᵢ − sᵢᵢ))")
    lines.append("∂Σℓ/∂sᵢⱼ = softmax − one-hot; through the normalisation ∂/∂a = (g − â(â·g))/‖a‖"
                 if not dot else "∂Σℓ/∂sᵢⱼ = softmax − one-hot; ∂/∂aᵢ = Σⱼ ∂Σℓ/∂sᵢⱼ pⱼ/τ")
    return lines


CONTRASTIVE = register(
    Loss(
        name="contrastive",
        summary="contrastive InfoNCE loss: each anchor (--pred row) against all positives (--target rows)",
        kind="elementwise",
        compute=contrastive_compute,
        check=contrastive_check,
        formulas=contrastive_formulas,
        has_logits=False,
        reference="optax.losses.ntxent (--ntxent); CLIP's and van den Oord's InfoNCE",
        params=(Param("temperature", 0.07, "The temperature τ the similarities are divided by (optax's default)."),
                Param("dot", False, "Dot-product similarities rather than cosines.", flag=True),
                Param("symmetric", False, "CLIP's symmetric loss: the mean of anchors→positives and back.",
                      flag=True),
                Param("ntxent", False, "SimCLR's NT-Xent over the 2B rows [pred; target] (optax.ntxent).",
                      flag=True)),
        last_axis="vector",
        target_grad=True,
        whole_batch=True,
    )
)
