"""Record PyTorch's CPU ctc_loss in tests/golden/lowp_ctc.json (read by tests/test_lowp_ctc.py).

F.ctc_loss on log-probabilities ([T, B, C], as PyTorch takes them), in float32 and float64, for each case and
reduction: the per-sequence losses (none), those divided by their target lengths as the mean divides them, the
reduced value (sum, mean) and the gradient with respect to the log-probabilities of the value (of the losses'
sum for none), all as the raw bytes of the dtype. Cases: random batches (sequences of different input and target
lengths, padding frames past them, blank 0 or another class), and adversarial ones: repeated labels that need a
blank between them, exactly as many frames as the labels need, impossible alignments (∞ loss, NaN gradient; and
under zero_infinity), empty targets and sequences without frames, 200 frames, log-probabilities of large
magnitude and log-probabilities that are not normalised, and batches beyond torch.sum's registers. The torch
version, its CPU capability, its threads and the C library are recorded.
"""

from __future__ import annotations

import base64
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lowp_ctc.json"
DTYPES = {"float32": torch.float32, "float64": torch.float64}
REDUCTIONS = ("none", "sum", "mean")


def packed(a: np.ndarray, dtype: str) -> dict:
    """An array as its dtype's little-endian bytes in base64, with its shape."""
    raw = np.ascontiguousarray(a, dtype="<f4" if dtype == "float32" else "<f8").tobytes()
    return {"shape": list(a.shape), "packed": base64.b64encode(raw).decode()}


def labels_for(rng, b: int, lmax: int, c: int, blank: int, repeats: bool = False) -> np.ndarray:
    """Padded labels [B, L]: classes other than the blank (with repeats: neighbours often equal)."""
    lab = rng.integers(0, c - 1, (b, max(lmax, 1)))
    lab = np.where(lab >= blank, lab + 1, lab)
    if repeats:
        same = rng.random(lab.shape) < 0.5
        for j in range(1, lab.shape[1]):
            lab[:, j] = np.where(same[:, j], lab[:, j - 1], lab[:, j])
    return lab


def log_probs(rng, b: int, t: int, c: int, scale: float, normalised: bool = True) -> np.ndarray:
    """Log-probabilities of random logits (normalised: their log_softmax; else the logits themselves)."""
    z = rng.normal(0, scale, (b, t, c))
    if not normalised:
        return z
    top = z.max(-1, keepdims=True)
    return z - top - np.log(np.exp(z - top).sum(-1, keepdims=True))


def record(name: str, dtype: str, lp: np.ndarray, lab: np.ndarray, il, tl, blank: int, zero_infinity: bool) -> dict:
    """torch's results for every reduction on the inputs rounded to the dtype ([B, T, C] as lossgrad reads them)."""
    x = torch.tensor(lp, dtype=DTYPES[dtype])
    args = (torch.tensor(lab), torch.tensor(il), torch.tensor(tl))
    out = {"name": name, "dtype": dtype, "blank": blank, "zero_infinity": zero_infinity,
           "pred": packed(x.numpy(), dtype), "labels": lab.tolist(), "input_lengths": list(map(int, il)),
           "target_lengths": list(map(int, tl))}
    for reduction in REDUCTIONS:
        xt = x.permute(1, 0, 2).detach().clone().requires_grad_(True)
        v = torch.nn.functional.ctc_loss(xt, *args, blank=blank, reduction=reduction, zero_infinity=zero_infinity)
        (v.sum() if reduction == "none" else v).backward()
        res = {"grad": packed(xt.grad.permute(1, 0, 2).numpy(), dtype)}
        if reduction == "none":
            res["losses"] = packed(v.detach().numpy(), dtype)
            divided = v.detach() / torch.tensor(tl, dtype=DTYPES[dtype]).clamp_min(1)  # (ctc_loss_impl's mean)
            res["divided"] = packed(divided.numpy(), dtype)
        else:
            res["value"] = packed(v.detach().reshape(1).numpy(), dtype)
        out[reduction] = res
    return out


def random_case(rng, b: int, t: int, c: int, lmax: int, blank: int, scale: float = 3.0):
    lab = labels_for(rng, b, lmax, c, blank)
    il = rng.integers(max(1, t // 2), t + 1, b)
    il[0] = t
    tl = np.minimum(rng.integers(0, lmax + 1, b), (il - 1) // 2)
    tl[-1] = min(lmax, (t - 1) // 2) if b > 1 else tl[-1]
    return log_probs(rng, b, t, c, scale), lab, il, tl


def cases(rng) -> list[tuple]:
    """(name, log-probabilities [B, T, C], labels, input lengths, target lengths, blank, zero_infinity)."""
    out = []
    for i, (b, t, c, lmax) in enumerate(((5, 30, 8, 8), (3, 17, 5, 6), (1, 12, 4, 4), (16, 50, 20, 10),
                                         (37, 9, 6, 3), (7, 41, 33, 15))):
        blank = (0, 4, 0, 19, 2, 0)[i]
        out.append((f"random-{b}x{t}x{c}", *random_case(rng, b, t, c, lmax, blank), blank, i % 2 == 1))
    # repeated labels, at exactly the frames they need (one per label and a blank between equal neighbours)
    lab = labels_for(rng, 6, 7, 6, 0, repeats=True)
    tl = np.array([7, 6, 5, 7, 3, 1])
    need = np.array([tl[k] + np.count_nonzero(lab[k, 1:tl[k]] == lab[k, :tl[k] - 1]) for k in range(6)])
    il = need + np.array([0, 0, 1, 3, 0, 2])
    out.append(("repeats-tight", log_probs(rng, 6, int(il.max()), 6, 2.0), lab, il, tl, 0, False))
    # impossible alignments (too few frames) beside possible ones, with and without zero_infinity
    lab = np.array([[1, 1, 1, 2], [1, 2, 3, 4], [2, 2, 0, 0], [3, 0, 0, 0]])
    il, tl = np.array([5, 3, 2, 8]), np.array([4, 4, 2, 1])
    for zi in (False, True):
        out.append((f"impossible-zi{int(zi)}", log_probs(rng, 4, 8, 5, 1.5), lab, il, tl, 0, zi))
    # empty targets and sequences without frames (loss −0 without labels, ∞ with them)
    lab = np.array([[1, 2], [0, 0], [3, 3], [0, 0], [2, 0]])
    il, tl = np.array([6, 6, 0, 0, 3]), np.array([2, 0, 2, 0, 1])
    for zi in (False, True):
        out.append((f"empty-zi{int(zi)}", log_probs(rng, 5, 6, 4, 1.0), lab, il, tl, 0, zi))
    out.append(("long-200", *random_case(rng, 3, 200, 7, 40, 3), 3, False))
    out.append(("large-magnitude", *random_case(rng, 4, 40, 9, 12, 0, scale=60.0), 0, False))
    lp, lab, il, tl = random_case(rng, 5, 25, 6, 8, 1)
    out.append(("unnormalised", log_probs(rng, 5, 25, 6, 20.0, normalised=False), lab, il, tl, 1, True))
    return out


def main() -> None:
    rng = np.random.default_rng(20261202)
    records = [record(name, dtype, lp, lab, il, tl, blank, zi)
               for name, lp, lab, il, tl, blank, zi in cases(rng) for dtype in DTYPES]
    meta = {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "libc": " ".join(platform.libc_ver())}
    OUT.write_text(json.dumps({"versions": meta, "records": records}, indent=1) + "\n")
    print(f"{len(records)} records -> {OUT}")


if __name__ == "__main__":
    main()
