"""Worst error, in ulps, of every loss and gradient against mpmath (800 digits), over a fixed adversarial grid
plus random samples; the same for PyTorch and optax (float64) when they are installed.

    python benchmarks/accuracy.py [--random N] [--seed S]
    python benchmarks/accuracy.py --half [--rounds N] [--seed S]   (float16 and bfloat16: benchmarks/half.py)

Needs mpmath (the `test` extra). Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# lossgrad from this checkout, and the mpmath oracle, which is test code and lives in tests/ (not a package)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import lossgrad  # noqa: E402
import reference as R  # noqa: E402  (found through the sys.path entries above)
from lossgrad.reduction import Total  # noqa: E402

# ---------------------------------------------------------------- inputs


def bce_logit_pairs(rng, n):
    grid = [(y, z) for y in R.LABELS for z in R.LOGITS]
    y = np.where(rng.random(n) < 0.5, rng.integers(0, 2, n).astype(float), rng.random(n))
    z = rng.normal(size=n) * 10.0 ** rng.uniform(-3, 3, n)
    # soft labels at their own logit: the cancelling case
    near = (rng.random(n) < 0.2) & (y > 0) & (y < 1)
    z[near] = np.log(y[near] / (1 - y[near])) * (1 + rng.normal(scale=1e-6, size=near.sum()))
    z = np.nan_to_num(z, posinf=50.0, neginf=-50.0)
    return grid + list(zip(y.tolist(), z.tolist(), strict=True))


def bce_prob_pairs(rng, n):
    grid = [(y, p) for y in R.LABELS for p in R.PROBS]
    y = np.where(rng.random(n) < 0.5, rng.integers(0, 2, n).astype(float), rng.random(n))
    small = 10.0 ** rng.uniform(-300, 0, n)
    p = np.where(rng.random(n) < 0.5, small, 1 - 10.0 ** rng.uniform(-16, 0, n))
    return grid + list(zip(y.tolist(), np.clip(p, 0, 1).tolist(), strict=True))


def mse_pairs(rng, n):
    y = rng.normal(size=n) * 10.0 ** rng.uniform(-5, 5, n)
    p = np.where(rng.random(n) < 0.3, y * (1 + rng.normal(scale=1e-9, size=n)),
                 rng.normal(size=n) * 10.0 ** rng.uniform(-5, 5, n))
    return [(0.0, 0.0), (1e-300, -1e-300), (1e150, -1e150)] + list(zip(y.tolist(), p.tolist(), strict=True))


def ce_logit_rows(rng, n):
    rows = R.ce_rows()
    for _ in range(n):
        z = rng.normal(size=3) * 10.0 ** rng.uniform(-2, 3)
        y = np.eye(3)[rng.integers(0, 3)] if rng.random() < 0.5 else rng.dirichlet(np.ones(3))
        rows.append((y.tolist(), z.tolist()))
    return rows


def ce_prob_rows(rng, n):
    rows = R.ce_prob_rows()
    for _ in range(n):
        p = rng.dirichlet(np.ones(3) * 0.3)
        y = np.eye(3)[rng.integers(0, 3)] if rng.random() < 0.5 else rng.dirichlet(np.ones(3))
        rows.append((y.tolist(), p.tolist()))
    return rows


def kl_rows(rng, n):
    rows = [([0.2, 0.3, 0.5], [0.2000001, 0.2999999, 0.5]), ([0.0, 1.0, 0.0], [0.05, 0.95, 1e-300]),
            ([0.5, 0.5, 0.0], [1e-300, 1 - 1e-16, 1e-20]), ([1e-300, 1 - 1e-300, 0.0], [0.5, 0.25, 0.25])]
    for _ in range(n):
        y = rng.dirichlet(np.ones(3) * 0.5)
        if rng.random() < 0.3:  # a prediction a hair from the target: the row's terms cancel
            q = y * (1 + rng.normal(scale=1e-7, size=3))
            q = np.clip(q / q.sum(), 1e-300, 1)
        else:
            q = np.clip(rng.dirichlet(np.ones(3) * 0.5), 1e-300, 1)
        rows.append((y.tolist(), q.tolist()))
    return rows


def poisson_pairs(rng, n):
    grid = [(y, p) for y in (0.0, 1.0, 3.0, 2.5, 1e-10, 1e6) for p in
            (1e-300, 1e-8, 0.5, 1.0, 2.718281828459045, 3.0, 2.5, 1e6, 1e300)]
    y = np.where(rng.random(n) < 0.5, rng.integers(0, 20, n).astype(float),
                 rng.random(n) * 10.0 ** rng.uniform(-3, 3, n))
    p = np.where(rng.random(n) < 0.3, y * (1 + rng.normal(scale=1e-3, size=n)), 10.0 ** rng.uniform(-5, 5, n))
    return grid + list(zip(y.tolist(), np.maximum(p, 1e-300).tolist(), strict=True))


def poisson_log_pairs(rng, n):
    y = np.where(rng.random(n) < 0.5, rng.integers(0, 20, n).astype(float),
                 rng.random(n) * 10.0 ** rng.uniform(-3, 3, n))
    z = np.where(rng.random(n) < 0.3, np.log(np.maximum(y, 1e-3)) + rng.normal(scale=1e-9, size=n),
                 rng.normal(scale=5, size=n))
    return [(3.0, math.log(3.0)), (0.0, 700.0), (1e6, math.log(1e6))] + list(zip(y.tolist(), z.tolist(), strict=True))


def cosine_rows(rng, n):
    rows = [([1.0, 2.0, 3.0], [2.0, 4.0, 6.000000001]), ([1.0, 0.0, 0.0], [1.0, 1e-10, 0.0]),
            ([1e-300, 2e-300, 0.0], [1e300, 2e300, 1.0])]
    for _ in range(n):
        y = rng.normal(size=3) * 10.0 ** rng.uniform(-3, 3)
        if rng.random() < 0.4:  # nearly parallel: 1 - cos cancels
            p = y * rng.uniform(0.1, 10) + rng.normal(scale=10.0 ** rng.uniform(-12, -4), size=3) * np.abs(y).max()
        else:
            p = rng.normal(size=3)
        rows.append((y.tolist(), p.tolist()))
    return rows


SMOOTHING = 0.1  # the label smoothing of the *-smoothed families
BETAS = {"smooth-l1-big": 1e300, "smooth-l1-small": 1e-300}


def _smooth_l1_pairs(beta):
    def make(rng, n):
        """Errors on both sides of β, and targets of β's size: ½e²/β with e² out of range."""
        y = rng.normal(size=n) * beta * 10.0 ** rng.uniform(-3, 0, n)
        ratio = rng.choice([-1, 1], n) * 10.0 ** rng.uniform(-150, 0.5, n)
        p = y + beta * ratio
        grid = [(0.0, beta * r) for r in (1e-100, 0.1, 0.5, 0.999, 1.0, 2.0)]
        return grid + [(a, b) for a, b in zip(y.tolist(), p.tolist(), strict=True) if math.isfinite(b)]

    return make


def kl_log_target_rows(rng, n):
    """Log targets, some below exp's range (t < −745), against probabilities, some near the smallest float."""
    rows = [([-800.0, 0.0, -1e4], [1e-300, 1.0, 0.5]), ([-745.0, -1e-300, -900.0], [5e-324, 1.0, 1e-310]),
            ([-1000.0, -0.5, -1.0], [1e-320, 0.3, 0.7])]
    for _ in range(n):
        t = np.log(rng.dirichlet(np.ones(3) * 0.5))
        q = np.clip(rng.dirichlet(np.ones(3) * 0.5), 1e-300, 1)
        if rng.random() < 0.5:
            t[rng.integers(0, 3)] = -rng.uniform(700, 1100)
            q[rng.integers(0, 3)] = 10.0 ** rng.uniform(-323.5, -290)
        rows.append((t.tolist(), q.tolist()))
    return rows


def bce_prob_pairs_smoothed(rng, n):
    """As bce_prob_pairs, plus predictions at the smoothed target's nearest double (the gradient cancels)."""
    near = [float(R.smoothed(v, SMOOTHING, 2)) for v in (0.0, 1.0, 0.3)]
    return bce_prob_pairs(rng, n) + [(y, p) for y in (0.0, 1.0, 0.3) for p in near + [0.95, 0.05]]


def bce_logit_pairs_smoothed(rng, n):
    pairs = bce_logit_pairs(rng, n)
    mp = R._mp()
    own = [float(mp.log(R.smoothed(v, SMOOTHING, 2) / (1 - R.smoothed(v, SMOOTHING, 2)))) for v in (0.0, 1.0, 0.3)]
    return pairs + [(y, z) for y in (0.0, 1.0, 0.3) for z in own]


def ce_logit_rows_smoothed(rng, n):
    rows = ce_logit_rows(rng, n)
    for t in range(3):  # logits whose softmax is the smoothed one-hot target
        y = [1.0 if j == t else 0.0 for j in range(3)]
        rows.append((y, [math.log(float(R.smoothed(v, SMOOTHING, 3))) for v in y]))
    return rows


# ---------------------------------------------------------------- losses of more than a target and a prediction
# Their further inputs ride in the target row: gaussian-nll ([y, var], [p]), triplet ([positive, negative],
# anchor), margin-ranking ([label, x2], [x1]), cosine-embedding ([x1, label], x2), ctc (ctc.pack's row: C, input
# length, target length, labels; the frames' logits or log-probabilities flattened, padding past the length).

RANKING_MARGIN = 0.9000000000000001  # the tests' margin: 1 + 2⁻⁵² − 0.1 cancels against it
COSINE_MARGIN = 0.5
CTC_T, CTC_C, CTC_L = 12, 4, 4  # frames, classes (blank 0), labels at most
EXTRA = {"gaussian-nll": "var", "triplet": "negative", "margin-ranking": "other"}
TARGET_GRAD = ("triplet", "cosine-embedding")  # whose first argument is differentiated too


def gaussian_nll_rows(rng, n):
    """The tests' grid, then points of every size, a third where the variance's gradient cancels (v = (p − y)²) and
    a third where the loss does (½ log v = −½ e²/v, v < 1)."""
    rows = [([y, v], [p]) for y, p, v in R.GAUSS_GRID]
    y = rng.normal(size=n) * 10.0 ** rng.uniform(-3, 3, n)
    p = y + rng.normal(size=n) * 10.0 ** rng.uniform(-8, 3, n)
    v = 10.0 ** rng.uniform(-6, 6, n)
    kind = rng.integers(0, 3, n)
    v = np.where(kind == 0, np.maximum((p - y) ** 2, 1e-300), v)
    small = 10.0 ** rng.uniform(-12, -0.01, n)
    p = np.where(kind == 1, y + rng.choice([-1, 1], n) * np.sqrt(-small * np.log(small)), p)
    v = np.where(kind == 1, small, v)
    return rows + [([a, c], [b]) for a, b, c in zip(y.tolist(), p.tolist(), v.tolist(), strict=True)]


def triplet_rows(rng, n, d=4):
    """Anchors, positives and negatives of every size; a third with the negative a hair from the positive (the
    loss is the margin, nearly), a third with a − pos and a − neg nearly parallel (the anchor's unit vectors
    cancel), as in tests/test_pairs.py."""
    rows = []
    for _ in range(n):
        s = 10.0 ** rng.uniform(-3, 3)
        a, pos, neg = rng.normal(size=(3, d)) * s
        kind = rng.integers(0, 3)
        if kind == 1:
            neg = pos + rng.normal(size=d) * 1e-9 * s
        elif kind == 2:
            neg = a + (pos - a) * 1.5 + rng.normal(size=d) * 1e-10 * s
        rows.append((pos.tolist() + neg.tolist(), a.tolist()))
    return rows


def margin_ranking_rows(rng, n):
    """The tests' cancelling pair (x1 = 1 + 2⁻⁵², x2 = 0.1, for both labels), then pairs of every size, a third
    with −y(x1 − x2) within 1e−9 of the margin."""
    rows = [([y, 0.1], [1.0 + 2**-52]) for y in (1.0, -1.0)]
    for _ in range(n):
        y = float(rng.choice([-1.0, 1.0]))
        x1 = rng.normal() * 10.0 ** rng.uniform(-3, 3)
        x2 = x1 - y * RANKING_MARGIN * (1 + rng.normal() * 1e-9) if rng.random() < 1 / 3 else \
            rng.normal() * 10.0 ** rng.uniform(-3, 3)
        rows.append(([y, x2], [x1]))
    return rows


def cosine_embedding_rows(rng, n):
    """Alike pairs (label 1) as the cosine family's, nearly parallel among them; unlike pairs (−1), half of them
    at a cosine within 1e−9 of the margin (cos − margin cancels)."""
    rows = [(y + [1.0], p) for y, p in cosine_rows(rng, n // 2)]
    for _ in range(n - n // 2):
        u, w = np.linalg.qr(rng.normal(size=(3, 2)))[0].T
        c = COSINE_MARGIN * (1 + rng.normal() * 1e-9) if rng.random() < 0.5 else rng.uniform(-1, 1)
        s = 10.0 ** rng.uniform(-3, 3)
        p = (c * u + math.sqrt(1 - c * c) * w) * s
        rows.append(((u * s * rng.uniform(0.1, 10)).tolist() + [-1.0], p.tolist()))
    return rows


def _ctc_logits(rng):
    """One sequence as the tests' adversarial ones draw it: peaked (×30), very peaked (×300), at the fewest
    frames its labels need (repeats, or peaked on the path), one label over many frames, or ordinary."""
    kind = rng.integers(0, 5)
    labels = rng.integers(1, CTC_C, rng.integers(1, CTC_L + 1))
    if kind == 2:
        labels = np.full(3, rng.integers(1, CTC_C))
    if kind == 3:
        labels = labels[:1]
    need = len(labels) + int(np.count_nonzero(labels[1:] == labels[:-1]))
    t = need if kind == 2 else int(rng.integers(max(need, 1), CTC_T + 1))
    z = rng.normal(size=(CTC_T, CTC_C)) * (30.0, 300.0, 1.0, 5.0, 10.0 ** rng.uniform(-1, 1))[kind]
    if kind == 2 and rng.random() < 0.5:  # peaked on the path: each frame's label (or a blank between repeats)
        path = [x for i, lab in enumerate(labels) for x in ([0, lab] if i and lab == labels[i - 1] else [lab])]
        z[:len(path)] = 9.0 * np.eye(CTC_C)[path]
    return labels, t, z


def ctc_rows(rng, n):
    rows = []
    for _ in range(n):
        labels, t, z = _ctc_logits(rng)
        padded = np.zeros(CTC_L)
        padded[:len(labels)] = labels
        rows.append(([float(CTC_C), float(t), float(len(labels))] + padded.tolist(), z.reshape(-1).tolist()))
    return rows


def ctc_log_prob_rows(rng, n):
    """ctc_rows' logits as log-probabilities (log-softmax in float64), the input PyTorch's ctc_loss takes."""
    rows = []
    for y, z in ctc_rows(rng, n):
        z = np.asarray(z).reshape(CTC_T, CTC_C)
        m = z.max(axis=1, keepdims=True)
        rows.append((y, (z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))).reshape(-1).tolist()))
    return rows


# ---------------------------------------------------------------- a loss of the whole batch
# contrastive: one "row" is a whole batch of CON_B anchors and positives of CON_D values, ([τ] + the positives
# flattened, the anchors flattened); its truths are the batch's CON_B losses and both gradients, flattened.

CON_B, CON_D = 4, 3
CONTRASTIVE = {"contrastive": {}, "contrastive-symmetric": {"symmetric": True},
               "contrastive-ntxent": {"ntxent": True}, "contrastive-decoupled": {"decoupled": True},
               "contrastive-ntxent-decoupled": {"ntxent": True, "decoupled": True}}


def contrastive_batches(rng, n):
    """Batches of every size and temperatures from 0.01 to 100; a third with each positive a hair (1e−12 to
    1e−4) from its anchor's direction, a third with every vector near one direction (anchors 1e−6 to 1e−4 apart,
    distinct in float32 too; each positive a hair from its anchor; the softmax flat, the gradient a small
    difference of large terms)."""
    rows = []
    for _ in range(n):
        tau = 10.0 ** rng.uniform(-2, 2)
        a = rng.normal(size=(CON_B, CON_D)) * 10.0 ** rng.uniform(-3, 3)
        p = rng.normal(size=(CON_B, CON_D)) * 10.0 ** rng.uniform(-3, 3)
        kind, hair = rng.integers(0, 3), 10.0 ** rng.uniform(-12, -4)
        if kind == 1:
            p = a * rng.uniform(0.1, 10, (CON_B, 1)) + rng.normal(size=a.shape) * hair * np.abs(a).max()
        elif kind == 2:
            a = rng.normal(size=CON_D) + rng.normal(size=(CON_B, CON_D)) * 10.0 ** rng.uniform(-6, -4)
            p = a * rng.uniform(0.1, 10, (CON_B, 1)) + rng.normal(size=a.shape) * hair
        rows.append(([tau] + p.reshape(-1).tolist(), a.reshape(-1).tolist()))
    return rows


def run_lossgrad_contrastive(family, y, p, dtype):
    out = []
    for row, anchors in zip(y, p, strict=True):
        r = lossgrad.contrastive(row[1:].reshape(CON_B, CON_D), anchors.reshape(CON_B, CON_D), temperature=row[0],
                                 reduction="none", dtype=dtype, **CONTRASTIVE[family])
        out.append((r.losses, r.grad.reshape(-1), r.grads["target"].reshape(-1)))
    return [o[0] for o in out], [o[1] for o in out], None, None, [o[2] for o in out]


def truths_contrastive(family, y, p):
    kw = CONTRASTIVE[family]
    variant = "ntxent" if kw.get("ntxent") else "clip" if kw.get("symmetric") else "infonce"
    out = []
    for row, anchors in zip(y, p, strict=True):
        losses, ga, gp = R.contrastive(np.reshape(anchors, (CON_B, CON_D)).tolist(),
                                       np.reshape(row[1:], (CON_B, CON_D)).tolist(), row[0], variant,
                                       decoupled=kw.get("decoupled", False))
        out.append((losses, [v for r in ga for v in r], [v for r in gp for v in r]))
    return [o[0] for o in out], [o[1] for o in out], None, None, [o[2] for o in out]


# ---------------------------------------------------------------- implementations: (losses, grad, grad_logits)


def run_lossgrad(family, y, p, dtype):
    if family in MORE:
        return run_lossgrad_more(family, np.asarray(y), np.asarray(p), dtype)
    loss, kw = {"bce-logits": ("bce", {"from_logits": True}), "bce-probs": ("bce", {}), "mse": ("mse", {}),
                "ce-logits": ("ce", {"from_logits": True, "labels": "onehot"}),
                "ce-probs": ("ce", {"labels": "onehot"}), "kl": ("kl", {}), "poisson": ("poisson", {}),
                "poisson-log": ("poisson", {"from_logits": True}), "focal-logits": ("focal", {"from_logits": True}),
                "poisson-full": ("poisson", {"full": True}),
                "poisson-log-full": ("poisson", {"from_logits": True, "full": True}),
                "categorical-focal-logits": ("categorical-focal", {"from_logits": True, "labels": "onehot"}),
                "categorical-focal-probs": ("categorical-focal", {"labels": "onehot"}),
                "dice": ("dice", {}), "dice-squared": ("dice", {"squared": True}),
                "tversky": ("tversky", {"alpha": 0.3, "beta": 0.7}),
                "cosine": ("cosine", {}), "smooth-l1-big": ("smooth-l1", {"beta": BETAS["smooth-l1-big"]}),
                "smooth-l1-small": ("smooth-l1", {"beta": BETAS["smooth-l1-small"]}),
                "kl-log-target": ("kl", {"log_target": True}),
                "bce-probs-smoothed": ("bce", {"label_smoothing": SMOOTHING}),
                "bce-logits-smoothed": ("bce", {"from_logits": True, "label_smoothing": SMOOTHING}),
                "ce-logits-smoothed": ("ce", {"from_logits": True, "labels": "onehot",
                                              "label_smoothing": SMOOTHING})}[family]
    with np.errstate(all="ignore"):
        r = lossgrad.evaluate(loss, y, p, reduction="none", dtype=dtype, **kw)
    return r.losses, r.grad, r.grad_logits


def run_lossgrad_more(family, y, p, dtype):
    """(losses, grad, None, the further input's gradient, the target's) of the losses whose rows carry more."""
    if family in CONTRASTIVE:
        return run_lossgrad_contrastive(family, y, p, dtype)
    kw = {"reduction": "none", "dtype": dtype}
    with np.errstate(all="ignore"):
        if family.startswith("ctc"):
            r = lossgrad.ctc(y[:, 3:].astype(int), p.reshape(len(p), CTC_T, CTC_C), input_lengths=y[:, 1].astype(int),
                             target_lengths=y[:, 2].astype(int), from_logits=family == "ctc", **kw)
            return r.losses, r.grad.reshape(len(p), -1), None
        if family == "gaussian-nll":
            r = lossgrad.gaussian_nll(y[:, 0], p[:, 0], var=y[:, 1], **kw)
        elif family == "triplet":
            d = p.shape[1]
            r = lossgrad.triplet(y[:, :d], p, negative=y[:, d:], **kw)
        elif family == "margin-ranking":
            r = lossgrad.margin_ranking(y[:, 0], p[:, 0], other=y[:, 1], margin=RANKING_MARGIN, **kw)
        else:
            r = lossgrad.cosine_embedding(y[:, :-1], p, label=y[:, -1], margin=COSINE_MARGIN, **kw)
    extra = r.grads[EXTRA[family]] if family in EXTRA else None
    return r.losses, r.grad.reshape(len(p), -1), None, extra, r.grads["target"] if family in TARGET_GRAD else None


def truths_more(family, y, p):
    """The mpmath truths of run_lossgrad_more's quantities (tests/reference.py)."""
    if family in CONTRASTIVE:
        return truths_contrastive(family, y, p)
    if family.startswith("ctc"):
        out = []
        for a, b in zip(y, p, strict=True):
            t, k = int(a[1]), int(a[2])
            loss, grad = R.ctc(np.asarray(b).reshape(CTC_T, CTC_C)[:t], [int(v) for v in a[3:3 + k]],
                               log_probs=family != "ctc")
            out.append((loss, [g for row in grad for g in row] + [0.0] * (CTC_T - t) * CTC_C))
        return [o[0] for o in out], [o[1] for o in out], None
    if family == "gaussian-nll":
        out = [R.gaussian_nll(a[0], b[0], a[1]) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], None, [o[2] for o in out], None
    if family == "triplet":
        d = len(p[0])
        out = [R.triplet(b, a[:d], a[d:]) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], None, [o[3] for o in out], [o[2] for o in out]
    if family == "margin-ranking":
        out = [R.margin_ranking(a[0], b[0], a[1], RANKING_MARGIN) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], None, [o[2] for o in out], None
    out = [R.cosine_embedding(a[:-1], b, a[-1], COSINE_MARGIN) for a, b in zip(y, p, strict=True)]
    return [o[0] for o in out], [o[1] for o in out], None, None, [o[2] for o in out]


def quantities(family):
    """The names of the truths' entries: loss, grad, grad_logits, then the further input's and the target's."""
    return ("loss", "grad", "grad_logits", f'grads["{EXTRA.get(family)}"]', 'grads["target"]')


def run_torch(family, y, p):
    import torch
    import torch.nn.functional as F

    if family in MORE:
        return run_torch_more(family, y, p)
    pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    yt = torch.tensor(y, dtype=torch.float64)
    if family == "bce-logits":
        per = F.binary_cross_entropy_with_logits(pt, yt, reduction="none")
    elif family == "bce-probs":
        per = F.binary_cross_entropy(pt, yt, reduction="none")
    elif family == "mse":
        per = F.mse_loss(pt, yt, reduction="none")
    elif family == "ce-logits":
        per = F.cross_entropy(pt, yt, reduction="none")
    elif family == "kl":
        per = F.kl_div(torch.log(pt), yt, reduction="none").sum(dim=1)
    elif family == "kl-log-target":
        per = F.kl_div(torch.log(pt), yt, reduction="none", log_target=True).sum(dim=1)
    elif family in BETAS:
        per = F.smooth_l1_loss(pt, yt, reduction="none", beta=BETAS[family])
    elif family == "ce-logits-smoothed":
        per = F.cross_entropy(pt, yt, reduction="none", label_smoothing=SMOOTHING)
    elif family in ("poisson", "poisson-log", "poisson-full", "poisson-log-full"):
        per = F.poisson_nll_loss(pt, yt, log_input=family.startswith("poisson-log"), full=family.endswith("full"),
                                 reduction="none")
    elif family == "cosine":
        per = F.cosine_embedding_loss(pt, yt, torch.ones(pt.shape[0], dtype=torch.float64), reduction="none")
    elif family == "focal-logits":
        focal = _torchvision_focal()
        if focal is None:
            return None
        per = focal(pt, yt, alpha=-1, gamma=2.0, reduction="none")
    else:
        return None
    per.sum().backward()
    return per.detach().numpy(), pt.grad.numpy(), None


def run_torch_more(family, y, p):
    """run_lossgrad_more's quantities from PyTorch's own losses (float64, autograd)."""
    if family in CONTRASTIVE:  # (PyTorch has no contrastive loss)
        return None
    import torch
    import torch.nn.functional as F

    y, p = np.asarray(y), np.asarray(p)
    pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    d = p.shape[1]
    cols = [torch.tensor(c, dtype=torch.float64, requires_grad=True) for c in
            {"gaussian-nll": (y[:, :1], y[:, 1:]), "triplet": (y[:, :d], y[:, d:]),
             "margin-ranking": (y[:, :1], y[:, 1:]), "cosine-embedding": (y[:, :-1], y[:, -1])}.get(family, (y,))]
    if family.startswith("ctc"):
        z = pt.reshape(len(p), CTC_T, CTC_C)
        lp = F.log_softmax(z, dim=-1) if family == "ctc" else z
        lengths = torch.tensor(y[:, 1:3].astype(int))
        per = F.ctc_loss(lp.transpose(0, 1), torch.tensor(y[:, 3:].astype(int)), lengths[:, 0], lengths[:, 1],
                         reduction="none")
    elif family == "gaussian-nll":
        per = F.gaussian_nll_loss(pt, cols[0], cols[1], reduction="none")[:, 0]
    elif family == "triplet":
        per = F.triplet_margin_loss(pt, cols[0], cols[1], reduction="none")
    elif family == "margin-ranking":
        per = F.margin_ranking_loss(pt[:, 0], cols[1][:, 0], cols[0][:, 0], margin=RANKING_MARGIN, reduction="none")
    else:
        per = F.cosine_embedding_loss(cols[0], pt, cols[1], margin=COSINE_MARGIN, reduction="none")
    per.sum().backward()
    extra = {"gaussian-nll": cols[-1], "triplet": cols[-1], "margin-ranking": cols[-1]}.get(family)
    target = cols[0] if family in TARGET_GRAD else None
    return (per.detach().numpy(), pt.grad.numpy().reshape(len(p), -1), None,
            None if extra is None else extra.grad.numpy().reshape(len(p), -1), None if target is None else
            target.grad.numpy())


def _torchvision_focal():
    """torchvision's sigmoid_focal_loss, loaded from its source file as scripts/make_golden.py does; None without it."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from make_golden import torchvision_focal

    return torchvision_focal()


def run_optax(family, y, p):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    fn = {"bce-logits": optax.losses.sigmoid_binary_cross_entropy, "mse": lambda a, b: optax.losses.squared_error(a, b),
          "ce-logits": optax.losses.softmax_cross_entropy,
          "kl": lambda a, b: optax.losses.kl_divergence(jnp.log(a), b),
          "kl-log-target": lambda a, b: optax.losses.kl_divergence_with_log_targets(jnp.log(a), b),
          "ce-logits-smoothed": lambda a, b: optax.losses.softmax_cross_entropy(a, optax.smooth_labels(b, SMOOTHING)),
          "focal-logits": lambda a, b: optax.losses.sigmoid_focal_loss(a, b, gamma=2.0),
          "cosine": lambda a, b: optax.losses.cosine_distance(a, b)}.get(family)
    if fn is None:
        return None
    yj, pj = jnp.asarray(y), jnp.asarray(p, dtype=jnp.float64)
    per = fn(pj, yj)
    grad = jax.grad(lambda q: jnp.sum(fn(q, yj)))(pj)
    return np.asarray(per), np.asarray(grad), None


# ---------------------------------------------------------------- truth and errors


def truths(family, y, p):
    if family in MORE:
        return truths_more(family, y, p)
    if family in BETAS:
        out = [R.smooth_l1(a, b, BETAS[family]) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], None
    if family == "kl-log-target":
        out = [R.kl(a, b, log_target=True) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], None
    if family == "bce-probs-smoothed":
        out = [R.bce_probs(R.smoothed(a, SMOOTHING, 2), b) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]
    if family == "bce-logits-smoothed":
        out = [R.bce_logits(R.smoothed(a, SMOOTHING, 2), b) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], None
    if family == "ce-logits-smoothed":
        out = [R.ce_logits([R.smoothed(v, SMOOTHING, len(a)) for v in a], b) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], None
    if family == "bce-logits":
        out = [R.bce_logits(a, b) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], None
    if family == "bce-probs":
        out = [R.bce_probs(a, b) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]
    if family == "mse":
        out = [R.mse(a, b) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], None
    if family == "ce-logits":
        out = [R.ce_logits(a, b) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], None
    if family in ("kl", "cosine", "poisson", "poisson-log", "focal-logits", "poisson-full", "poisson-log-full"):
        fn = {"kl": R.kl, "cosine": R.cosine, "poisson": R.poisson,
              "poisson-log": lambda a, b: R.poisson(a, b, log_input=True),
              "poisson-full": lambda a, b: R.poisson(a, b, full=True),
              "poisson-log-full": lambda a, b: R.poisson(a, b, log_input=True, full=True),
              "focal-logits": lambda a, b: R.focal(a, b, True, 2.0)}[family]
        out = [fn(a, b) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], None
    if family.startswith(("dice", "tversky")):
        fn = {"dice": R.dice, "dice-squared": lambda a, b: R.dice(a, b, squared=True),
              "tversky": lambda a, b: R.tversky(a, b, 0.3, 0.7)}[family]
        out = [fn(a, b) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], None
    if family.startswith("categorical-focal"):
        out = [R.categorical_focal(a, b, family.endswith("logits"), 2.0) for a, b in zip(y, p, strict=True)]
        return [o[0] for o in out], [o[1] for o in out], None
    out = [R.ce_probs(a, b) for a, b in zip(y, p, strict=True)]
    return [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]


def worst(got, truth, inputs, dtype):
    """(worst ulps, the input where it happened)."""
    w, where = 0.0, None
    got = np.asarray(got, dtype=np.float64)
    for i, t in enumerate(truth):
        if isinstance(t, list):
            for j, tj in enumerate(t):
                e = R.ulps(got[i][j], tj, dtype)
                if not e <= w:
                    w, where = e, inputs[i]
        else:
            e = R.ulps(got.reshape(-1)[i], t, dtype)
            if not e <= w:
                w, where = e, inputs[i]
    return w, where


def mask_rows(rng, n):
    """Masks of 5 pixels, hard and soft, against predictions of every size, a third of them within 1e−9 of the mask
    (where the loss is far below its terms)."""
    # (padded with pixels that are 0 in both, which add nothing)
    rows = [([1.0, 1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0, 0.0]),
            ([1.0, 0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0 - 2**-52, 0.0, 0.0]),
            ([1.0, 1.0, 0.0, 0.0, 0.0], [1e-300, 5e-324, 0.0, 0.0, 0.0]),
            ([0.0, 0.0, 0.0, 1.0, 0.0], [1e-300, 0.5, 0.0, 1.0, 0.0])]
    for _ in range(n):
        y = (rng.random(5) < 0.5).astype(float) if rng.random() < 0.5 else rng.uniform(0, 1, 5)
        if not y.any():
            y[0] = 1.0
        p = np.clip(y + rng.normal(scale=1e-9, size=5), 0, 1) if rng.random() < 0.3 else \
            rng.uniform(0, 1, 5) ** rng.uniform(1, 30)
        rows.append((y.tolist(), p.tolist()))
    return rows


def poisson_full_pairs(rng, n):
    """Counts and rates up to 1e15, half of them at a rate within 1e−6 of the count (where the full loss is
    ½·log(2πy) out of terms of size y·log y)."""
    y = np.where(rng.random(n) < 0.5, rng.integers(0, 50, n).astype(float), 10.0 ** rng.uniform(-20, 15, n))
    p = np.where(rng.random(n) < 0.5, y * (1 + rng.normal(scale=1e-6, size=n)), 10.0 ** rng.uniform(-5, 15, n))
    grid = [(y, y) for y in (0.5, 1.0, 2.0, 9.999, 10.0, 1e6, 1e12, 1e15)]
    return grid + list(zip(y.tolist(), np.maximum(p, 1e-300).tolist(), strict=True))


def poisson_log_full_pairs(rng, n):
    return [(a, math.log(b)) for a, b in poisson_full_pairs(rng, n)]


FAMILIES = {"bce-logits": bce_logit_pairs, "bce-probs": bce_prob_pairs, "mse": mse_pairs,
            "ce-logits": ce_logit_rows, "ce-probs": ce_prob_rows, "focal-logits": bce_logit_pairs,
            "poisson": poisson_pairs, "poisson-log": poisson_log_pairs, "kl": kl_rows, "cosine": cosine_rows,
            "smooth-l1-big": _smooth_l1_pairs(BETAS["smooth-l1-big"]),
            "smooth-l1-small": _smooth_l1_pairs(BETAS["smooth-l1-small"]), "kl-log-target": kl_log_target_rows,
            "bce-probs-smoothed": bce_prob_pairs_smoothed, "bce-logits-smoothed": bce_logit_pairs_smoothed,
            "ce-logits-smoothed": ce_logit_rows_smoothed, "poisson-full": poisson_full_pairs,
            "poisson-log-full": poisson_log_full_pairs, "categorical-focal-logits": ce_logit_rows,
            "categorical-focal-probs": ce_prob_rows, "dice": mask_rows, "dice-squared": mask_rows,
            "tversky": mask_rows, "ctc": ctc_rows, "ctc-log-probs": ctc_log_prob_rows,
            "gaussian-nll": gaussian_nll_rows, "triplet": triplet_rows, "margin-ranking": margin_ranking_rows,
            "cosine-embedding": cosine_embedding_rows, "contrastive": contrastive_batches,
            "contrastive-symmetric": contrastive_batches, "contrastive-ntxent": contrastive_batches,
            "contrastive-decoupled": contrastive_batches, "contrastive-ntxent-decoupled": contrastive_batches}
# one loss per row of several values
ROWS = ("ce-logits", "ce-probs", "kl", "cosine", "kl-log-target", "ce-logits-smoothed", "categorical-focal-logits",
        "categorical-focal-probs", "dice", "dice-squared", "tversky", "ctc", "ctc-log-probs", "gaussian-nll", "triplet",
        "margin-ranking", "cosine-embedding", *CONTRASTIVE)
MORE = ("ctc", "ctc-log-probs", "gaussian-nll", "triplet", "margin-ranking", "cosine-embedding",
        *CONTRASTIVE)


def _fmt(w):
    return "inf" if math.isinf(w) else ("nan" if w != w else (f"{w:.2f}" if w < 1e4 else f"{w:.1e}"))


def reduction_table(rng):
    """The mean of a million elements under different chunkings, against math.fsum."""
    x = np.abs(rng.normal(size=1_000_000)) * 10.0 ** rng.uniform(-8, 8, 1_000_000)
    truth = math.fsum(x.tolist()) / x.size
    rows = []
    for chunk in (1_000, 65_536, 1_000_000):
        t = Total()
        for k in range(0, x.size, chunk):
            t.add(x[k:k + chunk])
        rows.append((chunk, R.ulps(t.value / x.size, truth)))
    naive = 0.0
    for k in range(0, x.size, 1_000):
        naive += float(np.sum(x[k:k + 1_000]))
    rows.append(("1,000 (plain running sum, for scale)", R.ulps(naive / x.size, truth)))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--random", type=int, default=2000, help="random samples per loss besides the grid")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", help="comma-separated losses (families) to measure, e.g. kl,cosine")
    ap.add_argument("--half", action="store_true", help="float16 and bfloat16 errors of ce, bce, mse and kl instead "
                    "(benchmarks/half.py), for lossgrad's conventions and the installed frameworks")
    ap.add_argument("--rounds", type=int, default=2, help="with --half: random draws per loss")
    args = ap.parse_args()
    if args.half:
        import half

        half.main(args.rounds, args.seed)
        return
    rng = np.random.default_rng(args.seed)
    impls = {"lossgrad float64": lambda f, y, p: run_lossgrad(f, y, p, "float64"),
             "lossgrad float32": lambda f, y, p: run_lossgrad(f, y, p, "float32")}
    for name, fn, mod in (("PyTorch float64", run_torch, "torch"), ("optax float64", run_optax, "optax")):
        try:
            __import__(mod)
            impls[name] = fn
        except ImportError:
            pass
    t0 = time.time()
    rows = []
    for family, make in FAMILIES.items():
        if args.only and family not in args.only.split(","):
            continue
        pairs = make(rng, args.random)
        y = [a for a, _ in pairs]
        p = [b for _, b in pairs]
        truth = truths(family, y, p)
        for q, label in enumerate(quantities(family)[:len(truth)]):
            if truth[q] is None:
                continue
            cells = []
            for name, fn in impls.items():
                dtype = np.float32 if "float32" in name else np.float64
                yy = np.asarray(y, dtype=np.float64)
                pp = np.asarray(p, dtype=np.float64)
                used = pairs
                if dtype is np.float32:
                    # float32 inputs are the float64 ones rounded (those that fit): the truth is taken there
                    with np.errstate(over="ignore"):
                        yy, pp = yy.astype(np.float32).astype(np.float64), pp.astype(np.float32).astype(np.float64)
                    if family in BETAS and not math.isfinite(np.float32(BETAS[family])) or \
                            np.float32(BETAS.get(family, 1.0)) == 0:
                        yy = pp = np.full_like(yy, np.inf)  # β itself is out of float32's range
                    fits = np.isfinite(yy).reshape(len(pairs), -1).all(axis=1) & \
                        np.isfinite(pp).reshape(len(pairs), -1).all(axis=1)
                    if family == "gaussian-nll":  # (a variance that rounds to 0 is no input)
                        fits &= yy.reshape(len(pairs), -1)[:, 1] > 0
                    yy, pp = yy[fits], pp[fits]
                    used = [pr for pr, f in zip(pairs, fits, strict=True) if f]
                    tq = truths(family, yy.tolist(), pp.tolist())[q]
                else:
                    tq = truth[q]
                if not used:  # no input fits float32 (β = 1e300)
                    cells.append(("—", None))
                    continue
                try:
                    out = fn(family, yy if family in ROWS else yy.reshape(-1), pp if family in ROWS else pp.reshape(-1))
                except Exception as e:  # a framework that refuses an input (optax's cosine of a zero vector)
                    out = None
                    print(f"{name} {family}: {type(e).__name__}: {e}", file=sys.stderr)
                if out is None or len(out) <= q or out[q] is None:
                    cells.append(("—", None))
                    continue
                w, where = worst(out[q], tq, used, dtype)
                cells.append((_fmt(w), where))
            rows.append((family, label, len(pairs), cells))
    print(f"Worst error in ulps against mpmath ({R.DIGITS} digits): the grid of tests/reference.py plus "
          f"{args.random} random samples per loss (seed {args.seed}); float32 in float32 ulps.\n")
    print("| loss | quantity | inputs | " + " | ".join(impls) + " |")
    print("|---|---|---|" + "---|" * len(impls))
    for family, label, n, cells in rows:
        print(f"| {family} | {label} | {n} | " + " | ".join(c for c, _ in cells) + " |")
    print("\nWhere the worst errors are (input: y, prediction):\n")
    for family, label, _n, cells in rows:
        for (c, where), name in zip(cells, impls, strict=True):
            if where is not None and c != "0.00" and (c == "inf" or float(c) > 4):
                print(f"- {name}, {family} {label}: {c} ulp at {where}")
    print("\nMean of 1,000,000 positive values spanning 16 decades, by chunk size (ulps against math.fsum):\n")
    for chunk, e in reduction_table(rng):
        print(f"- chunks of {chunk}: {_fmt(e)}")
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
