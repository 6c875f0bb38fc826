"""Record PyTorch's CPU results on a processor with AVX2 only (torch.backends.cpu.get_cpu_capability() "AVX2") for
tests/golden/avx2_torch.json (read by tests/test_avx2_torch.py), or (--sweep) compare lossgrad's torch convention
with PyTorch live on this machine.

Under AVX2 a float32 register holds 8 floats (16 with AVX-512), a float16 or bfloat16 register 16: log_softmax sums a
row in 8 lanes, and cpu_kernel_vec's loops leave a different scalar remainder (σ's, huber's backward, pow's). Every
loss the torch convention reproduces, in float32, float16 and bfloat16 (and under torch.autocast where its CPU policy
runs the loss in float32), with its options, over rows of 3 to 1,025 classes and element counts about multiples of
16 and 32 and about 32,768 (where PyTorch splits an operation between its threads). Each record: the case (loss,
dtype, reduction, autocast, lossgrad's options), its inputs (targets, predictions, further inputs, sample weights) and
PyTorch's losses (reduction "none"), value, gradient and further inputs' gradients, every number the shortest string
that reads back to the same float32. The versions, the threads and the capability are recorded.

    python3 scripts/golden_avx2_torch.py            # writes tests/golden/avx2_torch.json (on an AVX2 machine)
    python3 scripts/golden_avx2_torch.py --sweep 5  # 5 rounds of random cases against PyTorch, as this machine runs it
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT)]  # (this checkout's lossgrad, not another one installed)
from golden_weights_torch_more import APART  # noqa: E402
from make_golden import torch_meta, torchvision_focal, torchvision_version  # noqa: E402

F = torch.nn.functional
OUT = ROOT / "tests" / "golden" / "avx2_torch.json"
DTYPES = ("float32", "float16", "bfloat16")
TORCH = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
IGNORE = -100
# the further inputs lossgrad takes (and differentiates: FURTHER) of each loss
INPUTS = {"gaussian-nll": ("var",), "margin-ranking": ("other",), "triplet": ("negative",),
          "cosine-embedding": ("label",)}
FURTHER = {"gaussian-nll": ("var",), "margin-ranking": ("other",), "triplet": ("target", "negative"),
           "cosine-embedding": ("target",)}
AUTOCAST = ("ce", "nll", "bce", "mse", "mae", "huber", "smooth-l1", "poisson", "kl", "cosine")
WEIGHABLE = ("ce", "nll", "mse", "mae", "huber", "smooth-l1", "poisson", "kl", "focal", "gaussian-nll",
             "margin-ranking", "triplet", "cosine-embedding", "cosine", "dice", "tversky")
# row widths about the registers' 8 and 16 floats and 16 and 32 halves, and wide rows
CLASSES = (3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 100, 129, 257, 1000, 1025)
# element counts about multiples of 16 and 32, and past 32,768 (two threads)
COUNTS = (1, 7, 15, 16, 17, 23, 31, 32, 33, 47, 48, 49, 63, 64, 65, 95, 96, 97, 127, 128, 129, 231, 1000)
LONG = (32767, 32768, 32769, 32785, 32800, 40031, 65539)


def held(a: Any, dtype: str) -> np.ndarray:
    """a as the dtype holds it, in float64."""
    return torch.tensor(np.asarray(a, dtype=np.float64)).to(TORCH[dtype]).double().numpy()


def short(a: Any) -> Any:
    """Numbers as the shortest strings that read back to the same float32 (every value here is one)."""
    flat = np.asarray(a, dtype=np.float32)
    if flat.ndim == 0:
        return str(flat)
    return np.vectorize(lambda v: str(np.float32(v)), otypes=[object])(flat).tolist()


# ---------------------------------------------------------------- inputs


def case_inputs(rng: np.random.Generator, case: dict) -> dict:
    """Targets, predictions, further inputs and sample weights of a case, float64 as the dtypes hold them
    (predictions in the dtype; targets in float32 under autocast, class indexes whole)."""
    loss, dtype, opts = case["loss"], case["dtype"], case["options"]
    rows, cols = case["shape"]
    tdt = "float32" if case["autocast"] else dtype
    scale = rng.choice([0.01, 0.1, 1.0, 5.0, 20.0], (rows, 1))
    extra: dict[str, np.ndarray] = {}
    if loss in ("ce", "nll"):
        z = rng.standard_normal((rows, cols)) * scale
        if loss == "nll":
            z = z - z.max(axis=1, keepdims=True)
            z = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        p = held(z, dtype)
        if opts.get("labels") == "onehot":
            y = rng.random((rows, cols)) ** 3
            y = held(y / y.sum(axis=1, keepdims=True), tdt)
        else:
            labels = rng.integers(0, cols, rows)
            if opts.get("ignore_index") is not None:
                labels[rng.random(rows) < 0.3] = IGNORE
            y = labels.astype(np.float64)[:, None]
    elif loss in ("bce", "focal", "dice", "tversky"):
        logits = opts.get("from_logits", loss == "focal")
        y = rng.random((rows, cols))
        y = held(np.where(rng.random((rows, cols)) < 0.6, np.round(y), y), tdt)  # (most of them hard)
        if logits and case.get("apart"):  # (logits whose σ tells PyTorch's registers from its scalar loop)
            p = held(rng.choice(APART, (rows, cols)), dtype)
        elif logits:
            p = held(rng.standard_normal((rows, cols)) * rng.choice([0.3, 1.0, 5.0, 30.0], (rows, cols)), dtype)
        else:
            p = held(np.clip(rng.random((rows, cols)), 1e-4, 1 - 1e-4), dtype)
    elif loss == "poisson":
        y = held(rng.poisson(3.0, (rows, cols)) * rng.choice([1.0, 0.5], (rows, cols)), tdt)
        p = held(rng.standard_normal((rows, cols)) * 2 if opts.get("from_logits") else rng.random((rows, cols)) * 6,
                 dtype)
    elif loss == "kl":
        q = rng.random((rows, cols)) + 0.01
        p = held(np.log(q / q.sum(axis=1, keepdims=True)), dtype)
        t = rng.random((rows, cols)) + 0.01
        t = t / t.sum(axis=1, keepdims=True)
        y = held(np.log(t) if opts.get("log_target") else t, tdt)
    elif loss in ("triplet", "cosine", "cosine-embedding"):
        s = rng.choice([0.01, 1.0, 30.0])
        a = rng.standard_normal((rows, cols)) * s
        b = a * rng.uniform(-1, 1) + rng.standard_normal((rows, cols)) * s * rng.uniform(0.01, 2)
        p, y = held(a, dtype), held(b, tdt)
        if loss == "triplet":
            extra["negative"] = held(a + rng.standard_normal((rows, cols)) * s * rng.uniform(0.1, 2), dtype)
        if loss == "cosine-embedding":
            extra["label"] = np.where(rng.random((rows, 1)) < 0.5, 1.0, -1.0)
    elif loss == "margin-ranking":
        p = held(rng.standard_normal((rows, cols)) * scale, dtype)
        extra["other"] = held(rng.standard_normal((rows, cols)) * scale, dtype)
        y = np.where(rng.random((rows, cols)) < 0.5, 1.0, -1.0)
    elif loss == "gaussian-nll":
        y = held(rng.standard_normal((rows, cols)) * scale, tdt)
        p = held(y + rng.standard_normal((rows, cols)) * rng.choice([0.01, 0.5, 2.0], (rows, cols)), dtype)
        per_sample = case.get("var") == "sample"
        v = rng.random((rows, 1 if per_sample else cols)) * rng.choice([1e-7, 0.1, 3.0])
        extra["var"] = held(v, dtype)
    else:  # (mse, mae, huber, smooth-l1)
        y = held(rng.standard_normal((rows, cols)) * scale, tdt)
        p = held(y + rng.standard_normal((rows, cols)) * rng.choice([0.01, 0.5, 2.0, 10.0], (rows, cols)), dtype)
    w = held(rng.random(rows) * 2, dtype) if case.get("weighted") else None
    return {"target": y, "pred": p, "extra": extra, "sample_weight": w}


# ---------------------------------------------------------------- PyTorch


def _torch_loss(case: dict, t: dict, reduction: str) -> torch.Tensor:
    loss, opts = case["loss"], case["options"]
    kind = t["pred"].dtype if not case["autocast"] else torch.float32  # (the dtype of targets and weights)
    cw = opts.get("class_weights")
    weight = None if cw is None else torch.tensor(cw, dtype=kind)
    if loss in ("ce", "nll"):
        target = t["target"] if opts.get("labels") == "onehot" else t["target"][:, 0].long()
        if loss == "nll":
            return F.nll_loss(t["pred"], target, weight=weight, reduction=reduction, ignore_index=IGNORE)
        return F.cross_entropy(t["pred"], target, weight=weight, reduction=reduction, ignore_index=IGNORE,
                               label_smoothing=opts.get("label_smoothing", 0.0))
    if loss == "bce":
        w = t.get("bce_weight")
        if not opts.get("from_logits"):
            return F.binary_cross_entropy(t["pred"], t["target"], weight=w, reduction=reduction)
        pw = opts.get("pos_weight")
        return F.binary_cross_entropy_with_logits(t["pred"], t["target"], weight=w, reduction=reduction,
                                                  pos_weight=None if pw is None else torch.tensor(pw, dtype=kind))
    if loss == "mse":
        return F.mse_loss(t["pred"], t["target"], reduction=reduction)
    if loss == "mae":
        return F.l1_loss(t["pred"], t["target"], reduction=reduction)
    if loss == "huber":
        return F.huber_loss(t["pred"], t["target"], reduction=reduction, delta=opts.get("delta", 1.0))
    if loss == "smooth-l1":
        return F.smooth_l1_loss(t["pred"], t["target"], reduction=reduction, beta=opts.get("beta", 1.0))
    if loss == "poisson":
        return F.poisson_nll_loss(t["pred"], t["target"], log_input=bool(opts.get("from_logits")),
                                  full=bool(opts.get("full")), reduction=reduction)
    if loss == "kl":
        return F.kl_div(t["pred"], t["target"], reduction=reduction, log_target=bool(opts.get("log_target")))
    if loss == "gaussian-nll":
        return F.gaussian_nll_loss(t["pred"], t["target"], t["var"], full=bool(opts.get("full")),
                                   eps=opts.get("var_eps", 1e-6), reduction=reduction)
    if loss == "margin-ranking":
        return F.margin_ranking_loss(t["pred"], t["other"], t["target"], margin=opts.get("margin", 0.0),
                                     reduction=reduction)
    if loss == "triplet":
        return F.triplet_margin_loss(t["pred"], t["target"], t["negative"], margin=opts.get("margin", 1.0),
                                     p=opts.get("norm_degree", 2.0), swap=bool(opts.get("swap")),
                                     reduction=reduction)
    if loss in ("cosine", "cosine-embedding"):
        label = t["label"][:, 0] if "label" in t else torch.ones(t["pred"].shape[0], dtype=kind)
        return F.cosine_embedding_loss(t["pred"], t["target"], label, margin=opts.get("margin", 0.0),
                                       reduction=reduction)
    if loss == "focal":
        alpha = opts.get("alpha")
        return torchvision_focal()(t["pred"], t["target"], alpha=-1 if alpha is None else alpha,
                                   gamma=opts.get("gamma", 2.0), reduction=reduction)
    from monai.losses import DiceLoss, TverskyLoss

    smooth = {"smooth_nr": opts["smooth"], "smooth_dr": opts["smooth"]} if "smooth" in opts else {}
    if loss == "dice":
        fn = DiceLoss(sigmoid=bool(opts.get("from_logits")), squared_pred=bool(opts.get("squared")),
                      reduction=reduction, **smooth)
    else:
        fn = TverskyLoss(sigmoid=bool(opts.get("from_logits")), alpha=opts.get("alpha", 0.5),
                         beta=opts.get("beta", 0.5), reduction=reduction, **smooth)
    out = fn(t["pred"][:, None, :], t["target"][:, None, :])
    return out.reshape(-1) if reduction == "none" else out


def pytorchs(case: dict, x: dict) -> dict:
    """PyTorch's losses (reduction "none"), value and gradients of a case; sample weights as users weigh a loss,
    (loss(reduction="none") · w).mean() or .sum(), bce's its weight= (one per sample)."""
    dtype, reduction, loss = case["dtype"], case["reduction"], case["loss"]
    kind = TORCH[dtype]
    tkind = torch.float32 if case["autocast"] else kind
    further = FURTHER.get(loss, ())
    if loss in ROWS and case["options"].get("labels") != "onehot":
        tkind = torch.float64  # (class indexes, whole)
    t = {"pred": torch.tensor(x["pred"]).to(kind).requires_grad_(),
         "target": torch.tensor(x["target"]).to(tkind).requires_grad_("target" in further)}
    for name, a in x["extra"].items():
        t[name] = torch.tensor(a).to(kind).requires_grad_(name in further)
    w = x["sample_weight"]
    if w is not None and loss == "bce":
        t["bce_weight"] = torch.tensor(w).to(kind)[:, None]
    with torch.autocast("cpu", dtype=kind, enabled=case["autocast"]):
        if w is None or loss == "bce":
            out = _torch_loss(case, t, reduction)
        else:
            per = _torch_loss(case, t, "none")
            weighted = per * torch.tensor(w).to(per.dtype).view(-1, *(1,) * (per.dim() - 1))
            out = weighted if reduction == "none" else weighted.sum()
            if reduction == "mean":  # (with ignore_index: over the samples counted)
                out = out / (t["target"] != IGNORE).sum() if case["options"].get("ignore_index") is not None \
                    else weighted.mean()
    (out.sum() if reduction == "none" else out).backward()
    value = out.detach().float().numpy()
    return {"losses": short(value) if reduction == "none" else None,
            "value": None if reduction == "none" else short(value),
            "grad": short(t["pred"].grad.float().numpy()),
            "grads": {name: short(t[name].grad.float().numpy()) for name in further}}


# ---------------------------------------------------------------- lossgrad


def lossgrads(case: dict, x: dict, cpu: str | None = None) -> dict | str:
    """lossgrad's results for a case under the torch convention (cpu: the capability reproduced; None: this
    machine's), or why it refuses the case."""
    import lossgrad

    opts = dict(case["options"])
    for k in ("class_weights", "pos_weight"):
        if k in opts:
            opts[k] = list(opts[k])
    try:
        r = lossgrad.evaluate(case["loss"], x["target"], x["pred"], sample_weight=x["sample_weight"],
                              convention="torch", dtype=case["dtype"], reduction=case["reduction"],
                              autocast=case["autocast"], cpu=cpu, **x["extra"], **opts)
    except ValueError as e:
        return str(e)
    return {"losses": None if case["reduction"] != "none" else short(r.losses),
            "value": None if case["reduction"] == "none" else short(r.value),
            "grad": short(r.grad), "grads": {k: short(r.grads[k]) for k in FURTHER.get(case["loss"], ())}}


def apart(got: dict, want: dict) -> list[str]:
    """The results whose bits differ (NaN against NaN: alike; −0 and +0 apart), each with its count of elements
    apart and the largest distance in float32 places."""
    out = []
    pairs = [(k, got[k], want[k]) for k in ("losses", "value", "grad")]
    pairs += [(f"grad_{k}", got["grads"][k], want["grads"][k]) for k in want["grads"]]
    for name, g, w in pairs:
        if w is None:
            continue
        a = np.asarray(np.array(g, dtype=np.float64), dtype=np.float32).reshape(-1)
        b = np.asarray(np.array(w, dtype=np.float64), dtype=np.float32).reshape(-1)
        if a.shape != b.shape:
            out.append(f"{name}: shape {a.shape} != {b.shape}")
            continue
        nan = np.isnan(a) & np.isnan(b)
        ia, ib = a.view(np.int32).astype(np.int64), b.view(np.int32).astype(np.int64)
        differ = (ia != ib) & ~nan
        if differ.any():
            oa = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
            ob = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
            out.append(f"{name}: {int(differ.sum())} of {a.size} apart, up to {int(np.abs(oa - ob)[differ].max())} "
                       f"float32 places")
    return out


# ---------------------------------------------------------------- cases


def _options(rng: np.random.Generator, loss: str, dtype: str, cols: int) -> dict:
    """Random options of a loss (the class weights and pos_weight as the dtype holds them)."""
    pick = rng.random
    if loss == "ce":
        o: dict = {"from_logits": True, "labels": "onehot" if pick() < 0.3 else "index"}
        if o["labels"] == "index" and pick() < 0.4:
            o["ignore_index"] = IGNORE
        if pick() < 0.4:
            o["class_weights"] = held(rng.random(cols) * 2 + 0.05, dtype).tolist()
        if pick() < 0.4:
            o["label_smoothing"] = float(rng.choice([0.1, 0.25]))
        return o
    if loss == "nll":
        o = {"labels": "index"}
        if pick() < 0.4:
            o["ignore_index"] = IGNORE
        if pick() < 0.4:
            o["class_weights"] = held(rng.random(cols) * 2 + 0.05, dtype).tolist()
        return o
    if loss == "bce":
        o = {"from_logits": bool(pick() < 0.7)}
        if o["from_logits"] and pick() < 0.4:
            o["pos_weight"] = held(rng.random(cols) * 3 + 0.05, dtype).tolist()
        return o
    return dict(rng.choice(np.array(OPTIONS[loss], dtype=object)))


OPTIONS: dict[str, tuple[dict, ...]] = {
    "mse": ({},), "mae": ({},), "huber": ({"delta": 1.0}, {"delta": 0.3}),
    "smooth-l1": ({"beta": 1.0}, {"beta": 0.3}, {"beta": 2.7}),
    "poisson": ({"from_logits": True}, {"from_logits": False}, {"from_logits": True, "full": True},
                {"from_logits": False, "full": True}),
    "kl": ({"log_input": True}, {"log_input": True, "log_target": True}),
    "gaussian-nll": ({}, {"full": True}, {"var_eps": 0.01}),
    "margin-ranking": ({"margin": 0.0}, {"margin": 0.5}),
    "triplet": ({"margin": 1.0}, {"margin": 0.5, "norm_degree": 1.0, "swap": True}, {"margin": 2.0, "swap": True}),
    "cosine": ({},), "cosine-embedding": ({"margin": 0.0}, {"margin": 0.3}),
    "focal": tuple({"from_logits": True, **o} for o in ({"gamma": 2.0}, {"gamma": 2.0, "alpha": 0.25}, {"gamma": 0.0},
                                                          {"gamma": 1.0, "alpha": 0.3}, {"gamma": 3.0})),
    "dice": ({}, {"squared": True}, {"from_logits": True}, {"from_logits": True, "squared": True, "smooth": 1.0}),
    "tversky": ({"alpha": 0.3, "beta": 0.7}, {"alpha": 0.7, "beta": 0.3, "smooth": 1.0, "from_logits": True}),
}
ROWS = ("ce", "nll")
PAIRS = ("triplet", "cosine", "cosine-embedding")
LOSSES = ("ce", "nll", "bce", "mse", "mae", "huber", "smooth-l1", "poisson", "kl", "gaussian-nll", "margin-ranking",
          "triplet", "cosine", "cosine-embedding", "focal", "dice", "tversky")


def random_case(rng: np.random.Generator, loss: str, dtype: str, autocast: bool, long: bool = False) -> dict:
    """A case of `loss`: rows of CLASSES for ce and nll, of 3 to 40 features for the pairs, else COUNTS elements
    (LONG ones: `long`) in one column or a few."""
    if loss in ROWS:
        cols = int(rng.choice(CLASSES))
        rows = int(rng.choice([1, 2, 5, 16, 40])) if cols < 300 else int(rng.choice([1, 2, 3]))
    elif loss in PAIRS:
        cols, rows = int(rng.integers(3, 41)), int(rng.choice([1, 7, 16, 33]))
    else:
        n = int(rng.choice(LONG if long else COUNTS))
        cols = 1 if n < 8 or rng.random() < 0.5 else int(rng.choice([c for c in (2, 3, 4, 5, 7, 8) if n % c == 0]
                                                                      or [1]))
        rows = n // cols
    case = {"loss": loss, "dtype": dtype, "reduction": str(rng.choice(["mean", "sum", "none"])), "autocast": autocast,
            "shape": [rows, cols], "options": _options(rng, loss, "float32" if autocast else dtype, cols)}
    if loss == "gaussian-nll" and rng.random() < 0.4:
        case["var"] = "sample"
    opts = case["options"]
    if loss in WEIGHABLE and not autocast and rng.random() < 0.25 and not opts.get("class_weights") \
            and not opts.get("label_smoothing"):
        case["weighted"] = True
    if loss == "bce" and not autocast and rng.random() < 0.3:
        case["weighted"] = True
    return case


def sweep(rounds: int, seed: int, cpu: str | None, only: list[str] | None, long: bool, dump: Path | None) -> int:
    """Random cases of every loss, dtype and autocast against PyTorch live: the count apart of each, and what (the
    cases apart appended to `dump` as records, a line each)."""
    rng = np.random.default_rng(seed)
    tally: Counter = Counter()
    apart_of: Counter = Counter()
    refused: Counter = Counter()
    shown = 0
    for _ in range(rounds):
        for loss in only or LOSSES:
            for dtype in DTYPES:
                for autocast in (False, True) if dtype != "float32" and loss in AUTOCAST else (False,):
                    case = random_case(rng, loss, dtype, autocast, long)
                    x = case_inputs(rng, case)
                    key = f"{loss} {dtype}{' autocast' if autocast else ''}"
                    got = lossgrads(case, x, cpu)
                    if isinstance(got, str):
                        refused[key] += 1
                        continue
                    tally[key] += 1
                    diff = apart(got, pytorchs(case, x))
                    if diff:
                        apart_of[key] += 1
                        if dump is not None:
                            with dump.open("a") as f:
                                f.write(json.dumps(recorded(case, x, pytorchs(case, x))) + "\n")
                        if shown < 60:
                            shown += 1
                            shown_options = {k: v for k, v in case["options"].items() if not isinstance(v, list)}
                            print("APART", key, case["reduction"], case["shape"], shown_options,
                                  case.get("weighted", ""), case.get("var", ""), "|", "; ".join(diff), flush=True)
    for key in sorted(tally):
        print(f"{key:34s} {apart_of[key]:3d} apart of {tally[key]:3d}")
    for key in sorted(refused):
        print(f"{key:34s} refused {refused[key]}")
    print(f"total: {sum(apart_of.values())} apart of {sum(tally.values())} ({torch.backends.cpu.get_cpu_capability()}, "
          f"lossgrad cpu={cpu or 'this machine'})")
    return sum(apart_of.values())


# ---------------------------------------------------------------- the golden file


def recorded_cases() -> list[dict]:
    """Every loss × dtype (× autocast where the policy runs it in float32) × two shapes that tell AVX2's lanes
    and tails from AVX-512's, with options; and poisson in float32."""
    rng = np.random.default_rng(20261205)
    cases = []
    for loss in LOSSES:
        for dtype in DTYPES:
            for autocast in (False, True) if dtype != "float32" and loss in AUTOCAST else (False,):
                for k in range(2):
                    case = random_case(rng, loss, dtype, autocast)
                    if loss in ROWS:  # (rows of 24 and of 100 classes: 8 lanes and 16 sum them apart)
                        case["shape"] = [5, (24, 100)[k]]
                    elif loss not in PAIRS:  # (48 and 40 elements: tails of 16 and 32 apart from 32 and 64)
                        case["shape"] = [(48, 20)[k], (1, 2)[k]]
                    case["options"] = _options(rng, loss, "float32" if autocast else dtype, case["shape"][1])
                    cases.append(case)
    # cases that tell AVX2 from AVX-512 every time: rows of 100 classes (8 lanes or 16; under autocast the float32
    # losses of each row, which the gradient's rounding to the half dtype would hide), σ of float32 logits that
    # differ between the registers and the scalar loop at 48 elements (16 of them left to it by AVX-512's pairs of
    # registers, none by AVX2's)
    for dtype, autocast, labels in (("float32", False, "index"), ("float16", True, "index"),
                                    ("bfloat16", True, "onehot")):
        cases.append({"loss": "ce", "dtype": dtype, "reduction": "none" if autocast else "mean", "autocast": autocast,
                      "shape": [40, 100], "options": {"from_logits": True, "labels": labels}})
    for loss in ("bce", "focal"):
        cases.append({"loss": loss, "dtype": "float32", "reduction": "sum", "autocast": False, "shape": [48, 1],
                      "options": {"from_logits": True}, "apart": True})
    for log_rates in (True, False):  # (poisson in float32 without Stirling's term: MKL's e^x and log x alone)
        cases.append({"loss": "poisson", "dtype": "float32", "reduction": "mean", "autocast": False, "shape": [9, 5],
                      "options": {"from_logits": log_rates}})
    return cases


def recorded(case: dict, x: dict, want: dict) -> dict:
    """A case, its inputs and PyTorch's results as a record."""
    return {**case, "target": short(x["target"]), "pred": short(x["pred"]),
            "extra": {k: short(v) for k, v in x["extra"].items()},
            "sample_weight": None if x["sample_weight"] is None else short(x["sample_weight"]), **want}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", type=int, default=0, help="rounds of random cases compared live (no file written)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cpu", default=None, help="the capability lossgrad reproduces in the sweep (this machine's)")
    ap.add_argument("--loss", action="append", help="sweep these losses only")
    ap.add_argument("--long", action="store_true", help="sweep element counts about 32,768")
    ap.add_argument("--dump", type=Path, help="append the sweep's cases apart to this file, a record a line")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.sweep:
        sys.exit(1 if sweep(args.sweep, args.seed, args.cpu, args.loss, args.long, args.dump) else 0)
    if torch.backends.cpu.get_cpu_capability() != "AVX2":
        raise SystemExit("the records are of PyTorch's AVX2 kernels: run this on a processor without AVX-512")
    import monai

    rng = np.random.default_rng(20261206)
    records = []
    for case in recorded_cases():
        x = case_inputs(rng, case)
        want = pytorchs(case, x)
        got = lossgrads(case, x, "avx2")
        assert not isinstance(got, str), (case, got)
        assert not apart(got, want), (case, apart(got, want))
        records.append(recorded(case, x, want))
    meta = {**torch_meta(), "monai": monai.__version__, "torchvision": torchvision_version()}
    OUT.write_text(json.dumps({"versions": meta, "made_by": "scripts/golden_avx2_torch.py", "records": records},
                              separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(records)} records, {OUT.stat().st_size} bytes, {meta}")


if __name__ == "__main__":
    main()
