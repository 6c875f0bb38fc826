"""Record what PyTorch and optax return for the losses of more than a target and a prediction (gaussian-nll,
triplet, margin-ranking, cosine-embedding): values, per-sample losses, and the gradients with respect to every
input. Needs torch, jax and optax (see scripts/make_golden.py for the versions).

    python3 scripts/golden_losses_b.py

writes tests/golden/<loss>.json (float64, the case format tests/test_golden.py reads, with the extra inputs under
"inputs" and their gradients under "grads"; the positive of triplet and the second vector of cosine-embedding are
the targets, their gradient "target") and tests/golden/losses_b_float32.json (the same in float32, read by
tests/test_pairs.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import versions  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden"
REDUCTIONS = ("mean", "sum", "none")


def _torch(fn, arrays: dict, dtype: str, reduction: str, grad_of: tuple[str, ...], **kw) -> dict:
    """fn(**tensors, reduction=...) -> loss; the gradient of the value (of the sum, for 'none') w.r.t. grad_of."""
    import torch

    t = {k: torch.tensor(v, dtype=getattr(torch, dtype), requires_grad=k in grad_of) for k, v in arrays.items()}
    out = fn(**t, reduction=reduction, **kw)
    total = out.sum() if reduction == "none" else out
    total.backward()
    none = fn(**{k: v.detach() for k, v in t.items()}, reduction="none", **kw)
    return {"value": None if reduction == "none" else float(out), "losses": none.double().numpy().tolist(),
            "grads": {k: t[k].grad.double().numpy().tolist() for k in grad_of}}


def _optax_triplet(arrays: dict, dtype: str, reduction: str, margin: float, norm_degree: int) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    jax.config.update("jax_enable_x64", True)
    args = [jnp.asarray(np.asarray(arrays[k], dtype=dtype)) for k in ("anchor", "positive", "negative")]

    def per_sample(a, p, n):
        return optax.losses.triplet_margin_loss(a, p, n, margin=margin, norm_degree=norm_degree)

    def total(a, p, n):
        losses = per_sample(a, p, n)
        return jnp.mean(losses) if reduction == "mean" else jnp.sum(losses)

    grads = jax.grad(total, argnums=(0, 1, 2))(*args)
    return {"value": None if reduction == "none" else float(total(*args)),
            "losses": np.asarray(per_sample(*args), dtype=np.float64).tolist(),
            "grads": dict(zip(("anchor", "positive", "negative"), (np.asarray(g, np.float64).tolist() for g in grads),
                              strict=True))}


def _case(convention: str, reduction: str, target, pred, inputs: dict, params: dict, rec: dict, renames: dict,
          dtype: str) -> dict:
    """A case in test_golden's format: `rec`'s gradients renamed to lossgrad's (pred's is `grad`)."""
    grads = {renames[k]: v for k, v in rec["grads"].items()}
    return {"convention": convention, "from_logits": False, "labels": None, "params": params, "reduction": reduction,
            "dtype": dtype, "target": target, "pred": pred, "inputs": inputs, "value": rec["value"],
            "losses": rec["losses"], "grad": grads.pop("grad"), "grads": grads}


def gaussian_cases(rng, dtype: str) -> list[dict]:
    import torch.nn.functional as F

    y, p = rng.normal(size=(6, 3)).round(3), rng.normal(size=(6, 3)).round(3)
    var = np.abs(rng.normal(size=(6, 3))) + 0.05
    var[0, 0], var[1, 2], var[2, 1] = 1e-8, 0.0, 1e-6  # below, at and on PyTorch's clamp
    per_sample = np.abs(rng.normal(size=6)) + 0.1
    out = []
    for reduction in REDUCTIONS:
        for v, params in ((var, {}), (per_sample, {}), (var, {"full": True}), (var, {"var_eps": 0.01})):
            kw = {"full": params.get("full", False), "eps": params.get("var_eps", 1e-6)}
            vt = v if v.ndim == 2 else v
            rec = _torch(lambda input, target, var, **k: F.gaussian_nll_loss(input, target, var, **k),
                         {"input": p, "target": y, "var": vt}, dtype, reduction, ("input", "var"), **kw)
            out.append(_case("torch", reduction, y.tolist(), p.tolist(), {"var": v.tolist()}, params, rec,
                             {"input": "grad", "var": "var"}, dtype))
    return out


def triplet_cases(rng, dtype: str) -> list[dict]:
    import torch.nn.functional as F

    a, pos, neg = (rng.normal(size=(6, 4)).round(3) for _ in range(3))
    pos[0] = a[0] + 0.01  # a near positive, so the loss is large
    neg[1] = pos[1] + 0.2  # the negative nearer the positive than the anchor: swap takes d(pos, neg)
    out = []
    for reduction in REDUCTIONS:
        for margin, q, swap in ((1.0, 2, False), (0.5, 1, False), (2.0, 3, False), (1.0, 2, True)):
            params = {"margin": margin, "norm_degree": float(q)} | ({"swap": True} if swap else {})
            rec = _torch(lambda anchor, positive, negative, **k: F.triplet_margin_loss(anchor, positive, negative, **k),
                         {"anchor": a, "positive": pos, "negative": neg}, dtype, reduction,
                         ("anchor", "positive", "negative"), margin=margin, p=q, swap=swap)
            names = {"anchor": "grad", "positive": "target", "negative": "negative"}
            out.append(_case("torch", reduction, pos.tolist(), a.tolist(), {"negative": neg.tolist()}, params, rec,
                             names, dtype))
            if swap:  # (optax has none)
                continue
            rec = _optax_triplet({"anchor": a, "positive": pos, "negative": neg}, dtype, reduction, margin, q)
            out.append(_case("optax", reduction, pos.tolist(), a.tolist(), {"negative": neg.tolist()}, params, rec,
                             names, dtype))
    return out


def _pair_torch_cases(fn, x1, x2, y, dtype: str, margins, target, extra, names) -> list[dict]:
    """A PyTorch loss of a pair and a ±1 label (margin_ranking_loss, cosine_embedding_loss) under each reduction
    and margin: `target`, `extra` what lossgrad takes as its target and further input, `names` where the
    gradients of input1 and input2 go."""
    out = []
    for reduction in REDUCTIONS:
        for margin in margins:
            rec = _torch(lambda input1, input2, target, **k: fn(input1, input2, target, **k),
                         {"input1": x1, "input2": x2, "target": y}, dtype, reduction, ("input1", "input2"),
                         margin=margin)
            out.append(_case("torch", reduction, target, x1.tolist(), extra, {"margin": margin}, rec, names, dtype))
    return out


def ranking_cases(rng, dtype: str) -> list[dict]:
    import torch.nn.functional as F

    x1, x2 = rng.normal(size=8).round(3), rng.normal(size=8).round(3)
    y = np.where(rng.random(8) < 0.5, -1.0, 1.0)
    x1[0], x2[0], y[0] = 0.5, 0.25, 1.0  # exactly at the kink for margin 0.25: −(0.5 − 0.25) + 0.25 = 0
    return _pair_torch_cases(F.margin_ranking_loss, x1, x2, y, dtype, (0.0, 0.25), y.tolist(),
                             {"other": x2.tolist()}, {"input1": "grad", "input2": "other"})


def cosine_cases(rng, dtype: str) -> list[dict]:
    import torch.nn.functional as F

    x1, x2 = rng.normal(size=(6, 3)).round(3), rng.normal(size=(6, 3)).round(3)
    x2[1] = 2 * x1[1]  # parallel
    label = np.array([1.0, 1.0, -1.0, -1.0, 1.0, -1.0])
    return _pair_torch_cases(F.cosine_embedding_loss, x1, x2, label, dtype, (0.0, 0.3), x2.tolist(),
                             {"label": label.tolist()}, {"input1": "grad", "input2": "target"})


BUILDERS = {"gaussian-nll": gaussian_cases, "triplet": triplet_cases, "margin-ranking": ranking_cases,
            "cosine-embedding": cosine_cases}


def main() -> None:
    meta = {"versions": versions(), "made_by": "scripts/golden_losses_b.py"}
    float32 = []
    for i, (loss, build) in enumerate(BUILDERS.items()):
        cases = build(np.random.default_rng(100 + i), "float64")
        (OUT / f"{loss}.json").write_text(json.dumps(meta | {"cases": cases}, indent=1) + "\n")
        float32 += [c | {"loss": loss} for c in build(np.random.default_rng(100 + i), "float32")]
    (OUT / "losses_b_float32.json").write_text(json.dumps(meta | {"cases": float32}, indent=1) + "\n")


if __name__ == "__main__":
    main()
