"""The contrastive loss of the InfoNCE family: each anchor (a row of the predictions) against every positive (the
rows of the targets), row i's own positive the one to pick out of the batch.

With sᵢⱼ = sim(aᵢ, pⱼ)/τ (cosine, or the dot product), ℓᵢ = −log softmaxⱼ(sᵢⱼ)[i] (InfoNCE, CLIP's image→text
half); --symmetric averages it with the positives' own (CLIP); --ntxent is SimCLR's loss over the 2B rows [a; p],
each row's pair its positive and itself left out of the denominator (optax.ntxent), the two losses of a pair
averaged so there is still one per sample; --decoupled (DCL, Yeh et al.) leaves each row's positive out of its own
denominator too, so only the negatives are there. Every row's loss depends on the whole batch: the batch is evaluated at
once. The exact form works in long double, the log-sum-exp through the row's own positive (no cancellation
between it and the positive's similarity); optax's in its dtype, in its own order of operations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import precise
from ..errors import DomainError, OptionError
from ._ops import Array
from .base import Loss, Param, Parts, register

if TYPE_CHECKING:
    from decimal import Decimal

    from ..conventions import Convention


def _unit(x: Array, eps: float) -> tuple[Array, Array, Array]:
    """x/‖x‖ and ‖x‖ per row (the squared norm clipped at eps first, as optax's cosine_similarity does), and the
    share w of the norm's slope that passes the clip: 1 above eps, 0 below, ½ at it (jax.grad's max at a tie)."""
    squared = (x * x).sum(axis=1, keepdims=True)
    norm = np.sqrt(np.maximum(squared, x.dtype.type(eps)))
    share = np.where(squared > eps, 1.0, np.where(squared == eps, 0.5, 0.0)).astype(x.dtype)
    return x / norm, norm, share


def _unit_back(g: Array, u: Array, norm: Array, share: Array) -> Array:
    """The gradient through x ↦ x/‖x‖ with ‖x‖ = sqrt(max(Σx², eps)): (g − w·u(u·g))/‖x‖, w the clip's share (a
    clipped norm is a constant: g/‖x‖ alone)."""
    result: Array = (g - share * u * (u * g).sum(axis=1, keepdims=True)) / norm
    return result


def _softmax_loss(s: Array, pos: Array, decoupled: bool = False) -> tuple[Array, Array]:
    """−log softmax(sᵢ)[posᵢ] per row, as log Σⱼ exp(sᵢⱼ − sᵢ,posᵢ) (a row's −inf terms left out), and
    ∂/∂s = softmax − onehot(pos), its positive entry −Σ of the others so nothing cancels. Decoupled: the positive
    left out of the sum, ℓᵢ = log Σⱼ≠posᵢ exp(sᵢⱼ − sᵢ,posᵢ), and ∂/∂s the negatives' softmax, −1 at the positive."""
    rows = np.arange(s.shape[0])
    d = s - s[rows, pos][:, None]
    d[rows, pos] = -np.inf
    if decoupled:
        m = d.max(axis=1)
        e = np.exp(d - m[:, None])
        rest = e.sum(axis=1)
        p = e / rest[:, None]
        p[rows, pos] = -1
        return m + np.log(rest), p
    m = np.maximum(d.max(axis=1), 0)
    e = np.exp(d - m[:, None])
    rest = e.sum(axis=1)
    # m = 0: log(1 + Σ) by log1p; else m + log(e^(−m) + Σ)
    loss = np.where(m == 0, np.log1p(rest), m + np.log(np.exp(-m) + rest))
    p = e / (np.exp(-m) + rest)[:, None]
    p[rows, pos] = -p.sum(axis=1)
    return loss, p


def _matrix_grads(s: Array, variant: str, decoupled: bool = False) -> tuple[Array, Array]:
    """Each sample's loss from the similarity matrix, and ∂Σℓ/∂s."""
    b = s.shape[0]
    if variant == "ntxent":
        pos = np.concatenate([np.arange(b // 2, b), np.arange(b // 2)])
        loss, g = _softmax_loss(s, pos, decoupled)
        return (loss[: b // 2] + loss[b // 2:]) / 2, g / 2
    loss, g = _softmax_loss(s, np.arange(b), decoupled)
    if variant == "clip":
        back, gt = _softmax_loss(s.T.copy(), np.arange(b), decoupled)
        return (loss + back) / 2, (g + gt.T) / 2
    return loss, g


def _variant(symmetric: bool, ntxent: bool) -> str:
    if symmetric and ntxent:
        raise OptionError("ntxent", "cannot go with {symmetric}: they are two different losses; give one")
    return "ntxent" if ntxent else "clip" if symmetric else "infonce"


def _contrastive(a: Array, p: Array, tau: float, dot: bool, variant: str, eps: float,
                 decoupled: bool = False) -> tuple[Array, Array, Array]:
    """Loss per sample and the gradients with respect to the anchors and the positives, in a's arithmetic."""
    if dot:
        ua, up, na, npos = a, p, None, None
    else:
        (ua, na, wa), (up, npos, wp) = _unit(a, eps), _unit(p, eps)
    t = a.dtype.type(tau)
    if variant == "ntxent":
        e = np.concatenate([ua, up])
        s = (e @ e.T) / t
        s[np.diag_indices_from(s)] = -np.inf
        loss, g = _matrix_grads(s, variant, decoupled)
        g[np.diag_indices_from(g)] = 0
        ge = (g + g.T) @ e / t
        ga, gp = ge[: a.shape[0]], ge[a.shape[0]:]
    else:
        s = (ua @ up.T) / t
        loss, g = _matrix_grads(s, variant, decoupled)
        ga, gp = g @ up / t, g.T @ ua / t
    if not dot:
        assert na is not None and npos is not None
        ga, gp = _unit_back(ga, ua, na, wa), _unit_back(gp, up, npos, wp)
    if eps == 0:  # the exact form: cancelling cells again (the framework form is the framework's arithmetic)
        b = a.shape[0]
        ones = np.ones((b, 1), dtype=a.dtype)
        nx = np.concatenate([ones, ones] if dot else [na, npos])
        if variant == "ntxent":
            x = np.concatenate([a, p])
            sides = [(x, e, nx, x, e, g + g.T)]
        else:
            sides = [(a, ua, nx[:b], p, up, g), (p, up, nx[b:], a, ua, g.T)]
        refined = [_refine_parallel(grad, *side, t, dot) for grad, side in
                   zip([np.concatenate([ga, gp])] if variant == "ntxent" else [ga, gp], sides, strict=True)]
        grad, scale = np.concatenate([r[0] for r in refined]), np.concatenate([r[1] for r in refined])
        grad = _refine_cells(grad, scale, a, p, tau, dot, variant, decoupled)
        ga, gp = grad[:b], grad[b:]
        if decoupled:
            loss = _refine_losses(loss, np.abs(s[np.isfinite(s)]).max(), a, p, tau, dot, variant)
    return loss, ga, gp


NEAR = 2.0**-17  # 1 − |cos| below this: sin θ < 2⁻⁸, the part of a partner orthogonal to the row cancels


def _refine_parallel(grad: Array, x: Array, u: Array, nx: Array, y: Array, v: Array, m: Array, t: Any,
                     dot: bool) -> tuple[Array, Array]:
    """Rows k with a nearly (anti)parallel partner j (one with mₖⱼ ≠ 0): their gradient Σⱼ mₖⱼ wₖⱼ/(τ‖xₖ‖), wₖⱼ =
    v̂ⱼ − cos(xₖ, yⱼ) ûₖ the partner's unit vector less its part along row k, formed from exact sums for the
    nearly parallel partners (it is a small difference of large terms there) and in the wide type for the rest.
    Also the size of each cell's terms, for _refine_cells."""
    # sizes and the test for nearness in float64 (BLAS); a refined row's cosines again in the wide type
    am, cos = np.abs(m).astype(np.float64), u.astype(np.float64) @ v.T.astype(np.float64)
    scale = (am @ np.abs(v).astype(np.float64) / float(t)).astype(grad.dtype)
    if dot:
        return grad, scale
    scale = (scale + (am * np.abs(cos)).sum(axis=1, keepdims=True) * np.abs(u) / t) / nx
    near = (1 - np.abs(cos) < NEAR) & (m != 0)
    rows = np.nonzero(near.any(axis=1))[0]
    grad = grad.copy()
    for k in rows:
        w = v - (v @ u[k])[:, None] * u[k]
        for j in np.nonzero(near[k])[0]:
            w[j] = _orthogonal_exact(x[k], y[j], grad.dtype)
        grad[k] = (m[k][:, None] * w).sum(axis=0) / (t * nx[k, 0])
        scale[k] = (am[k][:, None] * np.abs(w)).sum(axis=0) / (t * nx[k, 0])
    return grad, scale


def _orthogonal_exact(x: Array, y: Array, dtype: Any) -> Array:
    """ŷ − (x̂·ŷ)x̂ = (‖x‖²y − (x·y)x)/(‖x‖²‖y‖): the numerator exactly (rationals, after scaling both rows by
    powers of 2 to a largest element near 1), rounded to the wide type once, then divided by the norms."""
    from fractions import Fraction

    xs = [Fraction(float(c)) for c in np.ldexp(x, -np.frexp(np.abs(x).max())[1])]
    ys = [Fraction(float(c)) for c in np.ldexp(y, -np.frexp(np.abs(y).max())[1])]
    aa = sum((c * c for c in xs), Fraction(0))
    xy = sum((c * d for c, d in zip(xs, ys, strict=True)), Fraction(0))
    num = [(aa * d - xy * c) / aa for c, d in zip(xs, ys, strict=True)]
    hi = np.array([float(q) for q in num], dtype=np.float64)
    lo = np.array([float(q - Fraction(h)) for q, h in zip(num, hi.tolist(), strict=True)], dtype=np.float64)
    ysl = np.array([float(c) for c in ys], dtype=dtype)
    result: Array = (hi.astype(dtype) + lo.astype(dtype)) / np.sqrt((ysl * ysl).sum())
    return result


DECIMAL_BUDGET = 50_000  # similarity terms (rows × columns × D) a batch may take in decimal (about ¼ s)


def _refine_cells(grad: Array, scale: Array, a: Array, p: Array, tau: float, dot: bool, variant: str,
                  decoupled: bool = False) -> Array:
    """Cells of the stacked gradient [anchors; positives] that cancel beyond the wide type's margin (below
    LONG_ENOUGH of their terms' size), again from the batch in decimal, at growing precision until each stands
    clear of the rounding; only for batches within DECIMAL_BUDGET (every cell depends on the whole batch)."""
    from decimal import localcontext

    with np.errstate(invalid="ignore"):
        todo = list(zip(*np.nonzero(np.abs(grad) < _margin() * scale), strict=True))
    rows = _decimal_batch(a, p)
    if not todo or rows is None:
        return grad
    grad = grad.copy()
    for prec in precise.DIGITS:
        with localcontext() as ctx:
            ctx.prec = prec
            cell = _dec_cells(*rows, tau, dot, variant, decoupled)
            left = []
            for k, d in todo:
                r, sc = cell(int(k), int(d))
                if r == 0 and sc == 0 or _clear(r, sc, prec):
                    grad[k, d] = float(r)
                else:
                    left.append((k, d))
                    grad[k, d] = float(r)
            todo = left
        if not todo:
            break
    return grad


def _margin() -> float:
    """Below this fraction of its terms a result may have lost digits to cancellation in the wide type."""
    return precise.LONG_ENOUGH if precise._long() is not None else precise.RISKY


def _decimal_batch(a: Array, p: Array) -> tuple[list[list[float]], list[list[float]]] | None:
    """The batch's rows as Python floats for the decimal passes (None beyond DECIMAL_BUDGET's similarity terms)."""
    if (2 * a.shape[0]) ** 2 * a.shape[1] > DECIMAL_BUDGET:
        return None
    return [[float(v) for v in r] for r in a], [[float(v) for v in r] for r in p]


def _clear(r: Decimal, size: Decimal, prec: int) -> bool:
    """Whether a decimal result at `prec` digits stands clear of its terms' rounding (as precise._adaptive)."""
    from decimal import Decimal

    return bool(abs(r) > size * Decimal(10) ** (25 - prec))


def _refine_losses(loss: Array, scale: Any, a: Array, p: Array, tau: float, dot: bool, variant: str) -> Array:
    """The decoupled loss is the log of the negatives' sum relative to the positive, a difference of similarities
    that may cancel to far below them (a positive barely ahead of its one negative): the samples whose loss falls
    below LONG_ENOUGH of the largest similarity again from the batch in decimal, as _refine_cells does the cells."""
    from decimal import localcontext

    todo = np.nonzero(np.abs(loss) < _margin() * scale)[0]
    rows = _decimal_batch(a, p)
    if not todo.size or rows is None:
        return loss
    loss = loss.copy()
    for prec in precise.DIGITS:
        with localcontext() as ctx:
            ctx.prec = prec
            exact, size = _dec_losses(*rows, tau, dot, variant)
            loss[todo] = [float(exact[i]) for i in todo]
            todo = np.array([i for i in todo if not _clear(exact[i], size, prec)], dtype=int)
        if not todo.size:
            break
    return loss


def _dec_cos(a: list[list[float]], p: list[list[float]], dot: bool) -> tuple[list[list[Decimal]], list[Decimal],
                                                                              list[list[Decimal]]]:
    """The stacked rows x = [a; p], their norms (1 with dot similarities) and the similarities between them, in
    decimal at the context's precision."""
    from decimal import Decimal

    x = [[Decimal(v) for v in r] for r in a + p]
    norms = [Decimal(1) if dot else sum((v * v for v in r), Decimal(0)).sqrt() for r in x]
    u = [[v / nr for v in r] for r, nr in zip(x, norms, strict=True)]
    return x, norms, [[sum((q * w for q, w in zip(uk, uj, strict=True)), Decimal(0)) for uj in u] for uk in u]


def _dec_losses(a: list[list[float]], p: list[list[float]], tau: float, dot: bool,
                variant: str) -> tuple[list[Decimal], Decimal]:
    """Each sample's decoupled loss in decimal, log Σ over a row's negatives of exp(sₖⱼ − sₖ,positive) (NT-Xent and
    CLIP: the mean of a sample's two rows'), and the largest similarity."""
    from decimal import Decimal

    b, t = len(a), Decimal(tau)
    s = [[c / t for c in r] for r in _dec_cos(a, p, dot)[2]]
    n = 2 * b

    def row(k: int, pos: int, others: list[int]) -> Decimal:
        return sum(((s[k][j] - s[k][pos]).exp() for j in others), Decimal(0)).ln()

    if variant == "ntxent":
        ell = [row(k, (k + b) % n, [j for j in range(n) if j not in (k, (k + b) % n)]) for k in range(n)]
        losses = [(ell[i] + ell[i + b]) / 2 for i in range(b)]
    else:
        losses = [row(i, b + i, [b + j for j in range(b) if j != i]) for i in range(b)]
        if variant == "clip":
            back = [row(b + i, i, [j for j in range(b) if j != i]) for i in range(b)]
            losses = [(x + y) / 2 for x, y in zip(losses, back, strict=True)]
    return losses, max(abs(v) for r in s for v in r)


def _dec_cells(a: list[list[float]], p: list[list[float]], tau: float, dot: bool, variant: str,
               decoupled: bool = False) -> Callable[[int, int], tuple[Decimal, Decimal]]:
    """cell(k, d) -> (∂Σℓ/∂xₖ_d, the size of its terms) in decimal at the context's precision, xₖ row k of [a; p]:
    Σⱼ mₖⱼ (ûⱼ − cosₖⱼ ûₖ)_d/(τ‖xₖ‖) (with dot similarities Σⱼ mₖⱼ xⱼ_d/τ), m = ∂Σℓ/∂s between partners."""
    from decimal import Decimal

    x, norms, cos = _dec_cos(a, p, dot)
    b, n, t = len(a), 2 * len(a), Decimal(tau)
    u = [[v / nr for v in r] for r, nr in zip(x, norms, strict=True)]
    m = _dec_m(cos, b, t, variant, decoupled)

    def cell(k: int, d: int) -> tuple[Decimal, Decimal]:
        terms = [(m[k][j] * x[j][d], Decimal(0)) if dot else (m[k][j] * u[j][d], m[k][j] * cos[k][j] * u[k][d])
                 for j in range(n) if m[k][j]]
        den = t * norms[k]
        return (sum((v - w for v, w in terms), Decimal(0)) / den,
                sum((abs(v) + abs(w) for v, w in terms), Decimal(0)) / den)

    return cell


def _dec_m(cos: list[list[Decimal]], b: int, t: Decimal, variant: str,
           decoupled: bool = False) -> list[list[Decimal]]:
    """∂Σℓ/∂sₖⱼ between the stacked rows [a; p] (symmetric, 0 between rows that are not partners), in decimal."""
    from decimal import Decimal

    def softmax_grad(s: list[list[Decimal]], pos: list[int], keep: Callable[[int, int], bool]) -> list[list[Decimal]]:
        out = []
        for k, row in enumerate(s):
            e = [(row[j] - row[pos[k]]).exp() if keep(k, j) and not (decoupled and j == pos[k]) else Decimal(0)
                 for j in range(len(row))]
            z = sum(e, Decimal(0))
            g = [v / z for v in e]
            # (no cancellation; decoupled, the negatives' softmax sums to 1)
            g[pos[k]] = Decimal(-1) if decoupled else -sum((v for j, v in enumerate(g) if j != pos[k]), Decimal(0))
            out.append(g)
        return out

    n = 2 * b
    if variant == "ntxent":
        g = softmax_grad([[c / t for c in r] for r in cos], [(k + b) % n for k in range(n)], lambda k, j: k != j)
        return [[(g[k][j] + g[j][k]) / 2 for j in range(n)] for k in range(n)]
    s = [[cos[i][b + j] / t for j in range(b)] for i in range(b)]
    g = softmax_grad(s, list(range(b)), lambda k, j: True)
    if variant == "clip":
        back = softmax_grad([list(c) for c in zip(*s, strict=True)], list(range(b)), lambda k, j: True)
        g = [[(g[i][j] + back[j][i]) / 2 for j in range(b)] for i in range(b)]
    m = [[Decimal(0)] * n for _ in range(n)]
    for i in range(b):
        for j in range(b):
            m[i][b + j] = m[b + j][i] = g[i][j]
    return m


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


def _zero_rows(y: Array, p: Array) -> None:
    """The cosine of a row of zeros is undefined (optax's ntxent clips the norm, so it has one: its own)."""
    for name, x in (("pred", p), ("target", y)):
        zero = np.flatnonzero(~(x != 0).any(axis=1))
        if zero.size:
            row = int(zero[0])
            raise DomainError(name, row, 0, float(x[row, 0]), "starts a row of zeros: its cosine with anything is "
                              "undefined (give {dot} for dot-product similarities; optax's ntxent clips the norm: "
                              "{convention} optax {ntxent})")


def contrastive_compute(y: Array, p: Array, from_logits: bool, conv: Convention, labels: Array | None = None,
                        temperature: float = 0.07, dot: bool = False, symmetric: bool = False,
                        ntxent: bool = False, decoupled: bool = False) -> Parts:
    variant = _variant(symmetric, ntxent)
    if conv.pairs == "optax":
        assert variant == "ntxent" and not dot  # (conventions.py: optax lacks the others)
        loss, ga, gp = _contrastive(p, y, temperature, False, variant, float(np.finfo(p.dtype).eps))
        loss = _optax_losses(p, y, temperature)
    else:
        if not dot:
            _zero_rows(y, p)
        wide = precise._long() or np.float64
        loss, ga, gp = _contrastive(p.astype(wide), y.astype(wide), temperature, dot, variant, 0.0, decoupled)
    return Parts(losses=loss.astype(p.dtype), grad=ga.astype(p.dtype),
                 extra_grads={"target": gp.astype(p.dtype)})


def contrastive_check(y: Array, p: Array, from_logits: bool, temperature: float = 0.07, dot: bool = False,
                      symmetric: bool = False, ntxent: bool = False, decoupled: bool = False) -> None:
    if y.shape != p.shape:
        raise OptionError("target", f"shape {y.shape} does not match the anchors' {p.shape}: row i of the targets "
                          "is row i's positive")
    if decoupled and p.shape[0] < 2:
        raise OptionError("decoupled", "leaves a batch of one sample no negatives, and each row's denominator "
                          "empty (its loss −∞): give at least 2 samples, or drop {decoupled}")


def contrastive_formulas(from_logits: bool, conv: Convention, temperature: float = 0.07, dot: bool = False,
                         symmetric: bool = False, ntxent: bool = False, decoupled: bool = False) -> list[str]:
    sim = "aᵢ·pⱼ" if dot else "aᵢ·pⱼ/(‖aᵢ‖‖pⱼ‖)"
    if conv.pairs == "optax":
        sim = "aᵢ·pⱼ/(sqrt(max(‖aᵢ‖², ε))·sqrt(max(‖pⱼ‖², ε))), ε = the dtype's machine epsilon"
    lines = [f"sᵢⱼ = {sim}/τ, τ = {temperature:g} (aᵢ: row i of the predictions, pⱼ: row j of the targets)"]
    variant = "ntxent" if ntxent else "clip" if symmetric else "infonce"
    if variant == "ntxent":
        over = "j ≠ k, k + B" if decoupled else "j ≠ k"
        lines += [f"over the 2B rows e = [a; p]: ℓₖ = −log(exp(sₖ,ₖ₊B)/Σ_({over}) exp(sₖⱼ)) (k + B taken mod 2B)",
                  "each sample's loss ½(ℓᵢ + ℓᵢ₊B)" + ("" if decoupled else
                                                        ": the mean over B is optax's mean over 2B")]
    else:
        over = "j ≠ i" if decoupled else "j"
        lines.append(f"ℓᵢ = −log(exp(sᵢᵢ)/Σ_({over}) exp(sᵢⱼ)) = log Σ_({over}) exp(sᵢⱼ − sᵢᵢ)")
        if variant == "clip":
            lines.append(f"symmetric: ½(ℓᵢ + log Σ_({over}) exp(sⱼᵢ − sᵢᵢ))")
    if decoupled:
        lines.append("decoupled (DCL, Yeh et al.): the positive is not in its own denominator, so ℓ < 0 where the "
                     "positive outscores the negatives together")
    grad = ("the negatives' softmax, −1 at the positive" if decoupled else "softmax − one-hot")
    lines.append(f"∂Σℓ/∂sᵢⱼ = {grad}; through the normalisation ∂/∂a = (g − â(â·g))/‖a‖"
                 if not dot else f"∂Σℓ/∂sᵢⱼ = {grad}; ∂/∂aᵢ = Σⱼ ∂Σℓ/∂sᵢⱼ pⱼ/τ")
    return lines


CONTRASTIVE = register(
    Loss(
        name="contrastive",
        summary="contrastive InfoNCE loss: each anchor (--pred row) against all positives (--target rows); "
                "--symmetric, --ntxent, --decoupled",
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
                      flag=True),
                Param("decoupled", False, "DCL's (Yeh et al.'s decoupled contrastive loss): each row's positive "
                      "left out of its own denominator, only its negatives there.", flag=True)),
        last_axis="vector",
        target_grad=True,
        whole_batch=True,
    )
)
