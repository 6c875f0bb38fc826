"""Mixed precision as the frameworks run it: which of a loss's ops each framework's policy runs in float32, and
what it hands back to the low-precision predictions.

A mixed-precision model's predictions come out in float16 or bfloat16; its loss is then computed as the policy
says. Every loss lossgrad computes under a policy runs in float32 on the predictions as the low dtype holds them
(a widening cast is exact), so its result is the convention's float32 result on rounded predictions: the same
evaluation as `dtype float32`, bit for bit where that is (PyTorch's kernels, lossgrad.lowp). The gradient flows back
through the widening cast, whose backward rounds it to the low dtype; the loss itself stays float32. Targets are
data, not the model's output: they come in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .losses import Parts

# PyTorch's CPU policy: aten/src/ATen/autocast_mode.cpp, TORCH_LIBRARY_IMPL(aten, AutocastCPU, m), "fp32 cast
# policy" block: these ops cast every floating input to float32 first (cross_entropy_loss whole, so its
# log_softmax runs in float32 too). The lossgrad loss each op computes:
TORCH_FP32 = {
    "ce": "cross_entropy_loss", "nll": "nll_loss", "bce": "binary_cross_entropy_with_logits",
    "mse": "mse_loss", "mae": "l1_loss", "huber": "huber_loss", "smooth-l1": "smooth_l1_loss",
    "poisson": "poisson_nll_loss", "kl": "kl_div", "cosine": "cosine_embedding_loss",
}
# on probabilities bce is binary_cross_entropy, in the same CPU fp32 block; CUDA's and XPU's autocast ban it
# (binary_cross_entropy_banned in the same file) with this message
TORCH_BCE_PROBS = "binary_cross_entropy"
TORCH_CUDA_BAN = ("torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast. Many "
                  "models use a sigmoid layer right before the binary cross entropy layer. In this case, combine "
                  "the two layers using torch.nn.functional.binary_cross_entropy_with_logits or "
                  "torch.nn.BCEWithLogitsLoss.  binary_cross_entropy_with_logits and BCEWithLogits are safe to "
                  "autocast.")
# not in AutocastCPU's lists (CUDA's AT_FORALL_FP32 / AT_FORALL_FP32_SET_OPT_DTYPE in autocast_mode.h list them):
# on CPU they run in their input's dtype, so a log_softmax or sigmoid a user calls before the loss stays low
TORCH_CPU_LOW = ("log_softmax", "softmax", "log", "sigmoid")
# Python compositions of such ops: under CPU autocast they run piecemeal in the low dtype, not reproduced
TORCH_NOT_CAST = {"gaussian-nll": "gaussian_nll_loss", "focal": "torchvision's sigmoid_focal_loss"}

# Keras 3 (keras/src/losses/loss.py, Loss.__init__ and __call__): a loss's dtype policy is floatx (float32) whatever
# the global mixed_bfloat16 / mixed_float16 policy, and __call__ converts y_pred and y_true to it
KERAS = "Keras 3 casts y_pred to the loss's float32 (keras/src/losses/loss.py, Loss.__call__)"
# tf-keras (tf_keras/src/losses.py): each loss function takes y_pred's dtype and casts y_true to it, so a
# bfloat16 output would be a bfloat16 loss; its mixed precision guide ends the model in a float32 layer
# (Activation("linear", dtype="float32")), and that layer's cast is what this reproduces
TF_KERAS = ("tf-keras computes the loss in y_pred's dtype (tf_keras/src/losses.py); the mixed precision guide's "
            "float32 output layer, Activation('linear', dtype='float32'), casts the predictions")

# each convention's policy, in a line (REFUSED: the conventions without one, and why)
POLICIES: dict[str, str] = {
    "torch": "torch.autocast('cpu'): the loss op casts its inputs to float32 (aten/src/ATen/autocast_mode.cpp)",
    "keras": KERAS,
    "tf-keras": TF_KERAS,
}
REFUSED = {
    "exact": "the exact convention is the mathematics (rounded once to the dtype), which no autocast changes; "
             "choose {convention} torch, keras or tf-keras",  # (options.py names those that take this loss)
    "optax": "JAX has no autocast: mixed precision there is casting by hand (jmp's policies, for one), so there is "
             "no framework policy to reproduce",
}


def refused(convention: str, loss: str, kind: str, has_inputs: bool) -> str | None:
    """Why this convention's mixed precision is not reproduced for this loss (None: it is)."""
    if convention in REFUSED:
        return REFUSED[convention]
    if convention not in POLICIES:
        return f"the {convention} convention has no autocast policy"
    if has_inputs or kind == "sequence":
        return f"{loss}'s further inputs (lengths, variances, second vectors) under a mixed policy are not reproduced"
    if convention == "torch" and loss not in TORCH_FP32:
        op = TORCH_NOT_CAST.get(loss, loss)
        return (f"{op} is not in PyTorch's CPU autocast lists (aten/src/ATen/autocast_mode.cpp): its ops would run "
                f"piecemeal in the low dtype, which is not reproduced")
    return None


def torch_op(loss: str, from_logits: bool) -> str:
    """The aten op PyTorch's CPU autocast casts to float32 for this loss."""
    return TORCH_BCE_PROBS if loss == "bce" and not from_logits else TORCH_FP32[loss]


def note(convention: str, loss: str, from_logits: bool) -> str:
    """What the policy does with this loss, in a line (--explain)."""
    back = "; the gradient is rounded to the predictions' dtype on its way back through the cast"
    if convention == "torch":
        op = torch_op(loss, from_logits)
        extra = (f" (CUDA's autocast raises instead: \"{TORCH_CUDA_BAN.split('. ')[0]}.\")"
                 if op == TORCH_BCE_PROBS else "")
        return f"torch.autocast('cpu') runs {op} in float32 on the low-precision predictions{extra}{back}"
    return f"{POLICIES[convention]}{back}"


def predictions(p: np.ndarray, half: Any) -> np.ndarray:
    """The predictions as the model's low dtype holds them, widened to float32 (exactly)."""
    with np.errstate(over="ignore"):
        out: np.ndarray = np.asarray(p).astype(half).astype(np.float32)
    return out


def returned(parts: Parts, half: Any) -> Parts:
    """The float32 parts as the low-precision predictions receive them: the loss as is, each gradient through the
    widening cast's backward (rounded to `half`), the mean's gradient divided in float32 first."""
    def rounded(a: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            out: np.ndarray = np.asarray(a, dtype=np.float32).astype(half).astype(np.float32)
        return out

    unit, own = parts.grad, parts.mean_grad
    parts.grad = rounded(unit)
    parts.mean_grad = (lambda n: rounded(own(n))) if own is not None else (
        lambda n: rounded(unit / np.float32(n)))
    return parts
