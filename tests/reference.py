"""High-precision reference values (mpmath, 800 digits) for every loss, gradient and grad_logits of the exact
convention, and the ulp error of a float against them. For tests and benchmarks/accuracy.py; needs mpmath
(`pip install mpmath`, part of the `test` extra), which lossgrad itself never imports.
"""

from __future__ import annotations

import functools
import math

import numpy as np

DIGITS = 800  # enough for every double: a subnormal next to 1 needs about 330 digits


def _mp():
    import mpmath

    mpmath.mp.dps = DIGITS
    return mpmath


def _exp(mp, x):
    """e^x at the working precision, remembered: the tests ask for the same few exponentials many times, and
    e^(−10³⁰⁰) takes mpmath a tenth of a second."""
    return _exp_at(x, mp.mp.prec)


@functools.lru_cache(maxsize=1 << 14)
def _exp_at(x, prec: int):
    import mpmath

    with mpmath.workprec(prec):
        return mpmath.exp(x)


def _sigmoid(mp, x):
    return 1 / (1 + _exp(mp, -x))


def smoothed(y, s: float, k: int):
    """Label smoothing's target y(1 - s) + s/K, at the oracle's precision (not rounded to a double)."""
    mp = _mp()
    return mp.mpf(y) * (1 - mp.mpf(s)) + mp.mpf(s) / k


def bce_logits(y: float, z: float):
    """(loss, d loss/dz) for one element: max(z,0) - z*y + log(1 + e^-|z|) and sigma(z) - y (y: a float, or an
    mpf such as smoothed()'s).

    Arranged so that nothing small is added to something large before the large parts cancel: the sum of
    mpmath numbers is exact only to its 60 digits.
    """
    mp = _mp()
    y, z = mp.mpf(y), mp.mpf(z)
    one_y = mp.fsub(1, y, exact=True)
    linear = mp.fmul(z, one_y, exact=True) if z >= 0 else mp.fmul(-z, y, exact=True)
    loss = linear + mp.log1p(_exp(mp, -abs(z)))
    # sigma(z) - y = (1 - y) sigma(z) - y sigma(-z): no 1 - tiny that 60 digits would round to 1
    grad = one_y * _sigmoid(mp, z) - y * _sigmoid(mp, -z)
    return loss, grad


def bce_logits_weighted(y: float, z: float, w: float):
    """(loss, d loss/dz) with PyTorch's pos_weight w: w y log(1 + e^-z) + (1 - y) log(1 + e^z)."""
    mp = _mp()
    y, z, w = mp.mpf(y), mp.mpf(z), mp.mpf(w)
    one_y = mp.fsub(1, y, exact=True)

    def softplus(x):
        return (x if x > 0 else mp.mpf(0)) + mp.log1p(_exp(mp, -abs(x)))

    return w * y * softplus(-z) + one_y * softplus(z), one_y * _sigmoid(mp, z) - w * y * _sigmoid(mp, -z)


def bce_probs(y: float, p: float):
    """(loss, d/dp, d/dz of the logits behind p) for one element."""
    mp = _mp()
    y, p = mp.mpf(y), mp.mpf(p)
    one_y, one_p = mp.fsub(1, y, exact=True), mp.fsub(1, p, exact=True)
    t1 = mp.mpf(0) if y == 0 else (y * mp.log(p) if p != 0 else -mp.inf)
    t2 = mp.mpf(0) if one_y == 0 else (one_y * mp.log1p(-p) if p != 1 else -mp.inf)
    loss = -(t1 + t2)
    diff = mp.fsub(p, y, exact=True)
    if p == 0 or p == 1:
        grad = (mp.mpf(1) if p == 0 else mp.mpf(-1)) if p == y else diff * mp.inf
    else:
        grad = diff / (p * one_p)
    return loss, grad, diff


def ce_logits(y_row, z_row):
    """(loss, gradient row) for one sample: -sum y log softmax(z), softmax * sum(y) - y."""
    mp = _mp()
    y = [mp.mpf(v) for v in y_row]
    z = [mp.mpf(v) for v in z_row]
    k = max(range(len(z)), key=lambda i: z[i])
    s = [mp.fsub(v, z[k], exact=True) for v in z]
    rest = mp.fsum(_exp(mp, v) for i, v in enumerate(s) if i != k)
    lse = mp.log1p(rest)
    loss = -mp.fsum(a * (b - lse) for a, b in zip(y, s, strict=True) if a != 0)
    sy = mp.fsum(y)
    sm = [_exp(mp, b) / (1 + rest) for b in s]
    grad = [b * sy - a for a, b in zip(y, sm, strict=True)]
    # the dominant class: softmax_k * sum(y) - y_k without the 1 - tiny that 60 digits would lose
    grad[k] = mp.fsum(a for i, a in enumerate(y) if i != k) - sy * rest / (1 + rest)
    return loss, grad


def ce_probs(y_row, p_row):
    """(loss, gradient row, grad_logits row) for one sample: -sum y log p, -y/p, p/sum(p) * sum(y) - y."""
    mp = _mp()
    y = [mp.mpf(v) for v in y_row]
    p = [mp.mpf(v) for v in p_row]
    loss = -mp.fsum((a * mp.log(b) if b != 0 else -mp.inf) for a, b in zip(y, p, strict=True) if a != 0)
    grad = [mp.mpf(0) if a == 0 else (-a / b if b != 0 else -mp.inf) for a, b in zip(y, p, strict=True)]
    s, sy = mp.fsum(p), mp.fsum(y)
    return loss, grad, [b / s * sy - a for a, b in zip(y, p, strict=True)]


def mse(y: float, p: float):
    mp = _mp()
    d = mp.fsub(mp.mpf(p), mp.mpf(y), exact=True)
    return d * d, 2 * d


def mae(y: float, p: float):
    mp = _mp()
    d = mp.fsub(mp.mpf(p), mp.mpf(y), exact=True)
    return abs(d), mp.sign(d)


def huber(y: float, p: float, delta: float = 1.0):
    mp = _mp()
    d = mp.fsub(mp.mpf(p), mp.mpf(y), exact=True)
    delta = mp.mpf(delta)
    if abs(d) <= delta:
        return d * d / 2, d
    return delta * (abs(d) - delta / 2), delta * mp.sign(d)


def smooth_l1(y: float, p: float, beta: float = 1.0):
    mp = _mp()
    d = mp.fsub(mp.mpf(p), mp.mpf(y), exact=True)
    beta = mp.mpf(beta)
    if abs(d) < beta:
        return d * d / (2 * beta), d / beta
    return abs(d) - beta / 2, mp.sign(d)


def logcosh(y: float, p: float):
    mp = _mp()
    d = mp.fsub(mp.mpf(p), mp.mpf(y), exact=True)
    return mp.log(mp.cosh(d)), mp.tanh(d)


def kl(y_row, q_row, log_input=False, log_target=False):
    """(loss, gradient row) for one sample: sum t (log t - log q), d/dq = -t/q (or -t for log-probabilities)."""
    mp = _mp()
    y = [mp.mpf(v) for v in y_row]
    q = [mp.mpf(v) for v in q_row]
    t = [_exp(mp, v) for v in y] if log_target else y
    terms = []
    for a, tl, b in zip(t, y, q, strict=True):
        if a == 0:
            terms.append(mp.mpf(0))
            continue
        logt = tl if log_target else mp.log(a)
        if not log_input and b == 0:
            terms.append(mp.inf)
            continue
        terms.append(a * (logt - (b if log_input else mp.log(b))))
    grad = [-a if log_input else (mp.mpf(0) if a == 0 else (-a / b if b != 0 else -mp.inf))
            for a, b in zip(t, q, strict=True)]
    return mp.fsum(terms), grad


def poisson(y: float, p: float, log_input=False, full=False):
    """(loss, gradient): p - y log p and 1 - y/p on rates; e^z - y z and e^z - y on log rates; `full`: plus
    log Gamma(y + 1) (the gradient is the same)."""
    mp = _mp()
    y, p = mp.mpf(y), mp.mpf(p)
    term = mp.loggamma(y + 1) if full else mp.mpf(0)
    if log_input:
        e = _exp(mp, p)
        return e - y * p + term, e - y
    if p == 0:
        return (term if y == 0 else mp.inf), (mp.mpf(1) if y == 0 else -mp.inf)
    return p - (y * mp.log(p) if y != 0 else 0) + term, mp.fsub(p, y, exact=True) / p


def focal(y: float, x: float, from_logits: bool, gamma: float = 2.0, alpha=None):
    """(loss, gradient) of alpha_t (1 - p_t)^gamma bce for one element."""
    mp = _mp()
    y, x, g = mp.mpf(y), mp.mpf(x), mp.mpf(gamma)
    if from_logits:
        s, sn = _sigmoid(mp, x), _sigmoid(mp, -x)
        bce, dbce = bce_logits(float(y), float(x))
        m = (1 - y) * s + y * sn
        dm = (1 - 2 * y) * s * sn
    else:
        bce, dbce, _ = bce_probs(float(y), float(x))
        m = (1 - y) * x + y * (1 - x)
        dm = 1 - 2 * y
    f = m ** g
    at = 1 if alpha is None else mp.mpf(alpha) * y + (1 - mp.mpf(alpha)) * (1 - y)
    if at == 0:
        return mp.mpf(0), mp.mpf(0)  # a class weighed 0: the loss is 0 for every p
    if mp.isinf(dbce) and f:
        # p = 0 or 1 against a target that is not: bce's 1/p (or 1/(1 - p)) outgrows the factor's log p
        return at * f * bce, at * f * dbce
    t1 = g * m ** (g - 1) * dm * bce if (gamma and m and dm) else mp.mpf(0)
    t2 = f * dbce if f else mp.mpf(0)
    return at * f * bce, at * (t1 + t2)


def cosine(y_row, p_row):
    """(loss, gradient row): 1 - cos(y, p) and -(A y - C p) / (A sqrt(A B))."""
    mp = _mp()
    y = [mp.mpf(v) for v in y_row]
    p = [mp.mpf(v) for v in p_row]
    A, B, C = mp.fsum(a * a for a in p), mp.fsum(b * b for b in y), mp.fsum(a * b for a, b in zip(p, y, strict=True))
    root = mp.sqrt(A * B)
    return 1 - C / root, [-(A * b - C * a) / (A * root) for a, b in zip(p, y, strict=True)]


def gaussian_nll(y: float, p: float, v: float):
    """(loss, gradient, variance's gradient) of ½(log v + (p − y)²/v): (p − y)/v and (v − (p − y)²)/(2v²)."""
    mp = _mp()
    y, p, v = mp.mpf(y), mp.mpf(p), mp.mpf(v)
    e = p - y
    return (mp.log(v) + e * e / v) / 2, e / v, (v - e * e) / (2 * v * v)


def triplet(a_row, pos_row, neg_row, margin: float = 1.0):
    """(loss, anchor's, positive's and negative's gradient rows) of max(0, ‖a − pos‖ − ‖a − neg‖ + margin)."""
    mp = _mp()
    a, pos, neg = ([mp.mpf(v) for v in r] for r in (a_row, pos_row, neg_row))
    dp = mp.sqrt(mp.fsum((x - z) ** 2 for x, z in zip(a, pos, strict=True)))
    dn = mp.sqrt(mp.fsum((x - z) ** 2 for x, z in zip(a, neg, strict=True)))
    x = dp - dn + mp.mpf(margin)
    on = 1 if x > 0 else 0
    gp = [(u - v) / dp * on for u, v in zip(a, pos, strict=True)]
    gn = [(u - v) / dn * on for u, v in zip(a, neg, strict=True)]
    return max(x, 0), [u - v for u, v in zip(gp, gn, strict=True)], [-u for u in gp], gn


def margin_ranking(y: float, x1: float, x2: float, margin: float = 0.0):
    """(loss, x1's gradient, x2's gradient) of max(0, −y(x1 − x2) + margin) (away from the kink)."""
    mp = _mp()
    x = -mp.mpf(y) * (mp.mpf(x1) - mp.mpf(x2)) + mp.mpf(margin)
    on = 1 if x > 0 else 0
    return max(x, 0), -mp.mpf(y) * on, mp.mpf(y) * on


def cosine_embedding(y_row, p_row, label: float, margin: float = 0.0):
    """(loss, gradient row of p, of y): 1 − cos(y, p) for label 1, max(0, cos − margin) for −1."""
    if label > 0:
        loss, g_p = cosine(y_row, p_row)
        return loss, g_p, cosine(p_row, y_row)[1]
    one_minus, g_p = cosine(y_row, p_row)
    g_y = cosine(p_row, y_row)[1]
    on = 1 if 1 - one_minus - margin > 0 else 0
    return max(1 - one_minus - margin, 0), [-g * on for g in g_p], [-g * on for g in g_y]


def ctc(z, labels, blank=0, log_probs=False):
    """−log p(l|x) and its gradient with respect to the logits, by the α/β recursions in probability space at
    800 digits (no logarithms until the end); `log_probs`: z are log-probabilities, taken as they are."""
    mp = _mp()
    t_max = len(z)
    y = []
    for row in z:
        e = [_exp(mp, mp.mpf(float(v))) for v in row]
        s = 1 if log_probs else mp.fsum(e)
        y.append([v / s for v in e])
    ext = [blank]
    for lab in labels:
        ext += [lab, blank]
    n = len(ext)
    skip = [s >= 2 and ext[s] != blank and ext[s] != ext[s - 2] for s in range(n)]
    a = [[mp.mpf(0)] * n for _ in range(t_max)]
    b = [[mp.mpf(0)] * n for _ in range(t_max)]
    a[0][0], a[0][1] = y[0][ext[0]], y[0][ext[1]]
    for t in range(1, t_max):
        for s in range(n):
            v = a[t - 1][s] + (a[t - 1][s - 1] if s else 0) + (a[t - 1][s - 2] if skip[s] else 0)
            a[t][s] = v * y[t][ext[s]]
    b[-1][-1], b[-1][-2] = y[-1][ext[-1]], y[-1][ext[-2]]
    for t in range(t_max - 2, -1, -1):
        for s in range(n):
            v = b[t + 1][s] + (b[t + 1][s + 1] if s + 1 < n else 0) + (
                b[t + 1][s + 2] if s + 2 < n and skip[s + 2] else 0)
            b[t][s] = v * y[t][ext[s]]
    p = a[-1][-1] + a[-1][-2]
    gamma = [[mp.fsum(a[t][s] * b[t][s] for s in range(n) if ext[s] == k) / (y[t][k] * p)
              for k in range(len(z[0]))] for t in range(t_max)]
    if log_probs:  # ∂ℓ/∂(log y) = −γ
        return -mp.log(p), [[-g for g in row] for row in gamma]
    return -mp.log(p), [[y[t][k] - gamma[t][k] for k in range(len(z[0]))] for t in range(t_max)]


def ulps(got: float, truth, dtype=np.float64) -> float:
    """|got - truth| in units in the last place of truth rounded to `dtype` (0 when both are the same inf)."""
    mp = _mp()
    got = float(got)
    if mp.isinf(truth) or (isinstance(truth, float) and math.isinf(truth)):
        return 0.0 if math.isinf(got) and (got > 0) == (truth > 0) else math.inf
    info = np.finfo(dtype)
    fits = abs(truth) <= float(info.max) * (1 + float(info.eps) / 2)
    t = dtype(float(truth)) if fits else dtype(math.copysign(math.inf, truth))
    if math.isinf(float(t)):
        # the truth overflows the type: only an infinity of the right sign is right
        return 0.0 if math.isinf(got) and (got > 0) == (truth > 0) else math.inf
    if math.isinf(got) or math.isnan(got):
        return math.inf
    unit = float(np.spacing(np.abs(t)))
    return float(abs(mp.mpf(got) - truth) / unit)


# ---------------------------------------------------------------- the adversarial grid

LOGITS = [0.0, -0.0, 1e-300, -1e-300, 1e-20, -1e-20, 1e-8, -1e-8, 0.5, -0.5, 1.0, -1.0, 10.0, -10.0, 36.0, -36.0,
          37.0, -37.0, 40.0, -40.0, 100.0, -100.0, 700.0, -700.0, 745.0, -745.0, 1000.0, -1000.0, 1e10, -1e10,
          1e300, -1e300, 0.4054651081081644, 1.0986122886681098, -2.1972245773362196]
PROBS = [5e-324, 1e-310, 1e-300, 1e-100, 1e-20, 1e-8, 0.1, 0.25, 0.5, 0.6, 0.7310585786300049, 0.9, 1 - 1e-8,
         1 - 2**-52, 1 - 2**-53, 0.0, 1.0]
LABELS = [0.0, 1.0, 0.5, 0.6, 0.25, 0.75, 0.9, 0.999, 1e-10, 1e-300, 1 - 2**-53, 0.7310585786300049]

# (y, p, var): ordinary, the loss cancelling (log v ≈ −e²/v), the var gradient cancelling (v ≈ e²), extremes
GAUSS_GRID = [(0.0, 0.3, 0.7), (1.0, 1.5, 0.5), (0.0, 0.5, 0.36787944117144233 * 0.5), (0.0, 1e-8, 1e-16 * 1.0001),
              (0.0, 0.1, 0.010000000000000002), (2.0, 2.0 + 2**-30, 1.0000001), (1e200, -1e200, 1e300),
              (0.0, 3.0, 9.0 * (1 + 2**-40)), (0.5, 0.25, 1e-300), (0.0, 1e-150, 0.9999999999999999)]


def ce_rows():
    """(targets, logits) rows: spreads of +-745 and more, one class holding all but 1e-300, soft targets."""
    z = [[0.0, 1.0, 2.0], [745.0, -745.0, 0.0], [1000.0, -1000.0, 3.0], [0.0, -690.7755278982137, -700.0],
         [1e300, -1e300, 0.0], [-1e-300, 1e-300, 0.0], [40.0, 0.0, -2.0], [0.0, 0.0, 0.0], [5.0, 5.0, -5.0]]
    ys = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5], [0.9, 0.05, 0.05],
          [1 - 1e-300, 1e-300, 0.0], [1 / 3, 1 / 3, 1 / 3]]
    rows = [(y, r) for r in z for y in ys]
    # targets equal to the softmax itself: every gradient cell cancels
    for r in z[:3] + z[6:]:
        e = [math.exp(v - max(r)) for v in r]
        rows.append(([v / sum(e) for v in e], r))
    return rows


def ce_prob_rows():
    p = [[0.2, 0.3, 0.5], [1e-300, 0.5, 0.5], [5e-324, 1 - 2**-53, 1e-20], [1 / 3, 1 / 3, 1 / 3],
         [0.9, 0.09, 0.01], [1.0, 0.0, 0.0]]
    ys = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5], [0.9, 0.05, 0.05], [1 / 3, 1 / 3, 1 / 3]]
    return [(y, r) for r in p for y in ys]


def categorical_focal(y_row, x_row, from_logits: bool, gamma: float = 2.0, alpha=None):
    """(loss, gradient row) of sum_k alpha_k (1 - q_k)^gamma (-y_k log q_k), q = softmax(x) or x itself."""
    mp = _mp()
    y = [mp.mpf(v) for v in y_row]
    x = [mp.mpf(v) for v in x_row]
    a = [mp.mpf(1)] * len(x) if alpha is None else [mp.mpf(v) for v in alpha]
    g = mp.mpf(gamma)
    if from_logits:
        top = max(x)
        e = [_exp(mp, v - top) for v in x]
        total = mp.fsum(e)
        q = [v / total for v in e]
        # 1 - q_k as the others' share: no 1 - (1 - 1e-300) at 800 digits
        m = [mp.fsum(v for i, v in enumerate(e) if i != k) / total for k in range(len(x))]
        nll = [mp.log(total) - (v - top) for v in x]
    else:
        q, m = x, [mp.fsub(1, v, exact=True) for v in x]
        nll = [-mp.log(v) if v else mp.inf for v in x]
    w = [ak * yk for ak, yk in zip(a, y, strict=True)]
    f = [mk ** g if mk else mp.mpf(0 if gamma else 1) for mk in m]
    ratio = [nk / mk if mk else mp.mpf(1) for nk, mk in zip(nll, m, strict=True)]
    loss = mp.fsum(wk * fk * nk for wk, fk, nk in zip(w, f, nll, strict=True) if wk)
    if not from_logits:
        grad = [(-(wk * fk * (g * rk + 1 / qk)) if qk else -mp.inf) if wk else mp.mpf(0)
                for wk, fk, rk, qk in zip(w, f, ratio, q, strict=True)]
        return loss, grad
    c = [wk * fk * (1 + g * qk * rk) for wk, fk, qk, rk in zip(w, f, q, ratio, strict=True)]
    grad = [q[j] * mp.fsum(ck for k, ck in enumerate(c) if k != j) - c[j] * m[j] for j in range(len(x))]
    return loss, grad


def dice(y_row, p_row, squared=False, smooth=0.0):
    """(loss, gradient row) of 1 - (2 sum p y + s)/(sum p + sum y + s) (squares in the denominator if `squared`)."""
    mp = _mp()
    y, p, s = [mp.mpf(v) for v in y_row], [mp.mpf(v) for v in p_row], mp.mpf(smooth)
    n = 2 * mp.fsum(a * b for a, b in zip(p, y, strict=True)) + s
    d = mp.fsum([a * a if squared else a for a in p] + [b * b if squared else b for b in y] + [s])
    return 1 - n / d, [(n * (2 * a if squared else 1) - 2 * b * d) / (d * d) for a, b in zip(p, y, strict=True)]


def tversky(y_row, p_row, alpha=0.5, beta=0.5, smooth=0.0):
    """(loss, gradient row) of 1 - (TP + s)/(TP + alpha FP + beta FN + s)."""
    mp = _mp()
    y, p = [mp.mpf(v) for v in y_row], [mp.mpf(v) for v in p_row]
    a, b, s = mp.mpf(alpha), mp.mpf(beta), mp.mpf(smooth)
    tp = mp.fsum(u * v for u, v in zip(p, y, strict=True))
    u = a * mp.fsum(v * (1 - w) for v, w in zip(p, y, strict=True)) + b * mp.fsum((1 - v) * w for v, w in
                                                                              zip(p, y, strict=True))
    d = tp + u + s
    return u / d, [((a * (1 - w) - b * w) * (tp + s) - u * w) / (d * d) for w in y]


def contrastive(a_rows, p_rows, tau: float, variant: str = "infonce", dot: bool = False, decoupled: bool = False):
    """(per-sample losses, gradient rows of their sum w.r.t. the anchors a and the positives p) of InfoNCE
    ("infonce"), CLIP's symmetric form ("clip") or NT-Xent ("ntxent"), sᵢⱼ = sim(·,·)/τ, cosine unless `dot`;
    `decoupled`: each row's positive left out of its own denominator (DCL)."""
    mp = _mp()
    a = [[mp.mpf(v) for v in r] for r in a_rows]
    p = [[mp.mpf(v) for v in r] for r in p_rows]
    b, t = len(a), mp.mpf(tau)
    norms = [mp.mpf(1) if dot else mp.sqrt(mp.fsum(v * v for v in r)) for r in a + p]
    u = [[v / n for v in r] for r, n in zip(a + p, norms, strict=True)]
    rows, cols = (u, u) if variant == "ntxent" else (u[:b], u[b:])
    n = len(rows)
    s = [[mp.fsum(x * z for x, z in zip(r, c, strict=True)) / t for c in cols] for r in rows]

    def softmax_loss(mat, pos, kept):
        """−log softmax(row k)[pos k] and ∂/∂row k, over the kept entries."""
        def keep(k, j):
            return kept(k, j) and not (decoupled and j == pos[k])

        out, grad = [], []
        for k, row in enumerate(mat):
            z = mp.fsum(_exp(mp, row[j]) for j in range(len(row)) if keep(k, j))
            out.append(mp.log(z) - row[pos[k]])
            grad.append([(_exp(mp, row[j]) / z if keep(k, j) else 0) - (1 if j == pos[k] else 0)
                         for j in range(len(row))])
        return out, grad

    if variant == "ntxent":
        ell, g = softmax_loss(s, [(k + b) % n for k in range(n)], lambda k, j: k != j)
        losses = [(ell[i] + ell[i + b]) / 2 for i in range(b)]
        g = [[(g[k][j] + g[j][k]) / 2 for j in range(n)] for k in range(n)]  # s symmetric: both halves
        gu = [[mp.fsum(g[k][j] * u[j][d] for j in range(n)) / t for d in range(len(u[0]))] for k in range(n)]
    else:
        ell, g = softmax_loss(s, list(range(b)), lambda k, j: True)
        if variant == "clip":
            back, gb = softmax_loss([list(c) for c in zip(*s, strict=True)], list(range(b)), lambda k, j: True)
            ell = [(x + z) / 2 for x, z in zip(ell, back, strict=True)]
            g = [[(g[i][j] + gb[j][i]) / 2 for j in range(b)] for i in range(b)]
        losses = ell
        gu = [[mp.fsum(g[i][j] * u[b + j][d] for j in range(b)) / t for d in range(len(u[0]))] for i in range(b)]
        gu += [[mp.fsum(g[i][j] * u[i][d] for i in range(b)) / t for d in range(len(u[0]))] for j in range(b)]
    if not dot:  # through x ↦ x/‖x‖: (g − u(u·g))/‖x‖
        gu = [[(x - v * mp.fsum(q * w for q, w in zip(gr, ur, strict=True))) / nr for x, v in zip(gr, ur, strict=True)]
              for gr, ur, nr in zip(gu, u, norms, strict=True)]
    return losses, gu[:b], gu[b:]
