"""Record PyTorch's CPU results for tests/golden/lowp_focal.json (read by tests/test_lowp_focal.py):
torchvision.ops.sigmoid_focal_loss in float32, float16 and bfloat16 over every special exponent of torch.pow and
others, smooth_l1_loss in float16 and bfloat16, and the two facts behind what lossgrad leaves alone: float32's
square root (MKL's, not correctly rounded) and ctc_loss's refusal of half dtypes.

Each record: loss, dtype, reduction, lossgrad's options, inputs already representable in the dtype, and torch's
losses (none) or reduced value, with the gradient of the result (of the losses' sum for none), numbers as the
shortest strings that read back to the same value of the dtype. Inputs: random (hard and soft labels, logits from
0.1 to 20 in scale), and adversarial ones: logits of ±30 to ±100 whose σ saturates to the label (1 − p_t = 0, where
pow's derivative is 0·∞), and smooth-l1 differences exactly at ±β and at quotients x/β on a tie of the dtype.
Every tensor holds fewer than 32768 elements (PyTorch splits larger ones among its threads). torchvision is read
from its source file (scripts/make_golden.py's torchvision_focal). The torch version, the torchvision version
and the instruction set are recorded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_lowp_more import DTYPES, REDUCTIONS, rounded, short  # noqa: E402
from make_golden import torchvision_focal, torchvision_version, versions  # noqa: E402

F = torch.nn.functional
OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_focal.json"
HALVES = ("float16", "bfloat16")
GAMMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 0.3)  # (torch.pow's special exponents for γ and γ − 1, and others)
SHAPES = ((7, 33), (5, 50), (3, 61), (48, 1))  # (sizes whose scalar loops differ by the width of a register)


def record(loss: str, dtype: str, reduction: str, y: np.ndarray, p: np.ndarray, run, options: dict,
           name: str) -> dict:
    """torch's results for run(pred tensor, target tensor): the losses (none) or the value, and the gradient."""
    kind = DTYPES[dtype]
    pt = torch.tensor(p, dtype=kind, requires_grad=True)
    out = run(pt, torch.tensor(y, dtype=kind))
    (out.sum() if reduction == "none" else out).backward()
    value = out.detach().to(torch.float64).numpy()
    return {"loss": loss, "dtype": dtype, "reduction": reduction, "options": options, "target": short(y, dtype),
            "pred": short(p, dtype), "losses": short(value, dtype) if reduction == "none" else None,
            "value": None if reduction == "none" else short(value, dtype),
            "grad": short(pt.grad.to(torch.float64).numpy(), dtype), "name": name}


def focal_inputs(rng, dtype: str, shape: tuple[int, int], soft: bool, name: str) -> tuple[np.ndarray, np.ndarray]:
    z = rng.standard_normal(shape) * rng.choice([0.1, 1.0, 4.0, 20.0], shape)
    y = rng.random(shape) if soft else (rng.random(shape) < 0.3).astype(np.float64)
    if name == "saturated":  # (σ(z) rounds to the label: 1 − p_t = 0)
        y = (rng.random(shape) < 0.5).astype(np.float64)
        z = np.where(y == 1, 1, -1) * rng.uniform(30, 100, shape)
        z.reshape(-1)[::5] *= -1  # (and some confidently wrong: bce large)
    return rounded(y, dtype), rounded(z, dtype)


def focal_records(rng, mkl: bool = False) -> list[dict]:
    """Every dtype, γ, reduction and kind of input, but float32 at γ = ½ and 1.5, whose √ is MKL's (see
    float32_sqrt); `mkl`: those only, marked "mkl" (lossgrad reproduces them where MKL is installed)."""
    focal = torchvision_focal()
    out, i = [], 0
    for dtype in ("float32",) if mkl else DTYPES:
        for gamma in (0.5, 1.5) if mkl else GAMMAS:
            if not mkl and dtype == "float32" and gamma in (0.5, 1.5):
                continue
            for reduction in REDUCTIONS:
                for name in ("random", "saturated"):
                    # (cycling through the shapes, α and the labels: hard or soft in turn on random logits)
                    shape, alpha, soft = SHAPES[i % 4], (None, 0.25, 0.3)[i % 3], name == "random" and i % 5 < 2
                    i += 1
                    y, z = focal_inputs(rng, dtype, shape, soft, name)
                    options = {"gamma": gamma} if alpha is None else {"gamma": gamma, "alpha": alpha}

                    def run(pt, yt, alpha=alpha, gamma=gamma, reduction=reduction):
                        return focal(pt, yt, alpha=-1 if alpha is None else alpha, gamma=gamma, reduction=reduction)
                    out.append(record("focal", dtype, reduction, y, z, run, options, name) | ({"mkl": True} if mkl
                                                                                            else {}))
    return out


def smooth_inputs(rng, dtype: str, shape: tuple[int, int], beta: float, name: str) -> tuple[np.ndarray, np.ndarray]:
    y = rounded(rng.standard_normal(shape) * rng.choice([0.01, 1.0, 10.0], shape), dtype)
    p = rounded(y + rng.standard_normal(shape) * rng.choice([0.001, 0.1, 1.0, 5.0], shape), dtype)
    if name == "adversarial":
        b = rounded(np.array([beta]), dtype)[0]
        p.reshape(-1)[::7] = rounded(y.reshape(-1)[::7] + b, dtype)  # (at β, when the sum is exact)
        p.reshape(-1)[3::7] = rounded(y.reshape(-1)[3::7] - b, dtype)
        ties = rounded(rng.uniform(-beta, beta, p.size), dtype).reshape(shape)  # (near β: quotients x/β on ties)
        p.reshape(-1)[1::4] = rounded(y.reshape(-1)[1::4] + ties.reshape(-1)[1::4], dtype)
    return y, p


def smooth_records(rng) -> list[dict]:
    out = []
    for dtype in HALVES:
        for beta in (1.0, 0.5, 0.3, 0.1, 2.0):
            for reduction in REDUCTIONS:
                wide = (((64, 129), "random"),) if beta == 0.3 and reduction == "mean" else ()
                for shape, name in ((SHAPES[0], "random"), (SHAPES[1], "adversarial"), ((3, 61), "adversarial"),
                                    ((48, 1), "random")) + wide:
                    y, p = smooth_inputs(rng, dtype, shape, beta, name)

                    def run(pt, yt, beta=beta, reduction=reduction):
                        return F.smooth_l1_loss(pt, yt, beta=beta, reduction=reduction)
                    out.append(record("smooth-l1", dtype, reduction, y, p, run, {"beta": beta}, name))
    return out


def float32_sqrt(rng) -> dict:
    """float32 √x as torch forms it (MKL's in its builds): inputs where it is not the correctly rounded root, the
    reason float32 focal with γ = ½ or 1.5 needs MKL (lossgrad.mkl) to be reproduced."""
    x = rng.random(20000).astype(np.float32)
    got = torch.sqrt(torch.from_numpy(x)).numpy()
    exact = np.sqrt(x)
    differ = np.nonzero(got != exact)[0]
    return {"x": short(x[differ[:40]]), "sqrt": short(got[differ[:40]]), "differ_from_rounded": int(differ.size),
            "of": int(x.size)}


def ctc_refusal() -> dict:
    """What F.ctc_loss says to float16 and bfloat16 log-probabilities on the CPU."""
    said = {}
    for dtype in HALVES:
        lp = torch.randn(5, 2, 4).log_softmax(2).to(DTYPES[dtype])
        try:
            F.ctc_loss(lp, torch.tensor([[1, 2], [1, 1]]), torch.tensor([5, 5]), torch.tensor([2, 2]))
            said[dtype] = None
        except (NotImplementedError, RuntimeError) as e:
            said[dtype] = f"{type(e).__name__}: {e}"
    return said


def main() -> None:
    rng = np.random.default_rng(20261204)
    torch.set_num_threads(1)
    records = focal_records(rng) + smooth_records(rng)
    meta = {**versions(), "torchvision": torchvision_version(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    sqrt = float32_sqrt(rng)
    records += focal_records(np.random.default_rng(20261205), mkl=True)
    OUT.write_text(json.dumps({"versions": meta, "records": records, "float32_sqrt": sqrt,
                               "ctc": ctc_refusal()}, separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(records)} records, {OUT.stat().st_size} bytes, {meta}")


if __name__ == "__main__":
    main()
