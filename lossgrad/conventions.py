"""Whose numbers to reproduce: each framework's choices, as data.

A convention is the full set of choices one framework makes for a loss: where it clips, what it adds inside a
logarithm, where it clamps, how its autodiff treats a clip at the boundary. The losses read these fields; they
never test a convention's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Convention:
    name: str
    title: str
    # clip p to [eps, 1 - eps] before taking logs (Keras); None: no clip
    eps: float | None = None
    # gradient of the clip when p is exactly eps or 1 - eps: TF passes it (1), PyTorch 0, JAX 0.5
    clip_tie_grad: float = 1.0
    # tf-keras adds eps again inside both logs of bce: log(p + eps), log(1 - p + eps)
    log_eps: bool = False
    # PyTorch clamps each log of bce at -100 ...
    log_clamp: float | None = None
    # ... and its backward divides by max(p(1 - p), floor); the floor is the float 1e-12 (float32 in the kernel)
    grad_floor: float | None = None
    # bce on probabilities: "exact" (true log1p), "keras" (log(1 - p) after the clip), "torch" (log1p, clamped)
    bce_probs: str | None = "exact"
    # bce from logits: "exact" (split on sign, no cancellation), or the framework's own arrangement of
    # max(z,0) - z*y + log1p(e^-|z|) and its gradient: "tf", "torch", "optax"
    bce_logits: str | None = "exact"
    # ce on probabilities: "exact" (-sum y log p) or "keras" (rows divided by their sum, then clipped)
    ce_probs: str | None = "exact"
    # ce from logits: "exact", "autodiff" (softmax * sum(y) - y) or "fused" (TF's kernel: softmax - y)
    ce_logits: str | None = "exact"
    # ce on probabilities with class-index targets, where it differs from ce_probs: "keras-sparse" (Keras'
    # sparse_categorical_crossentropy: log(clip(p)) as logits of a softmax, so renormalised after the clip)
    ce_probs_index: str | None = None
    # Keras takes the mean over each sample's outputs before the batch reduction
    last_axis_mean: bool = False
    # huber: "exact", "keras" (|e| <= delta quadratic; delta |e| - delta^2/2), "torch" (|e| < delta;
    # delta (|e| - delta/2)), "optax" (0.5 q^2 + delta (|e| - q), q = min(|e|, delta))
    huber: str = "exact"
    # logcosh: "exact", "keras" (x + softplus(-2x) - log 2), "optax" (logaddexp(x, -x) - log 2)
    logcosh: str = "exact"
    # the log 2 that logcosh subtracts: Keras computes it in float32 and casts it up
    logcosh_log2: float | None = None
    # losses the framework computes in float32 whatever the input's dtype (tf-keras casts huber to floatx)
    floatx_losses: frozenset[str] = frozenset()
    # losses whose label smoothing the framework has (Keras: bce and ce; PyTorch: cross_entropy only; optax:
    # optax.smooth_labels, for ce); `sparse_smoothing`: also with class-index targets (Keras' sparse ce has none)
    smoothing: frozenset[str] = frozenset({"bce", "ce"})
    sparse_smoothing: bool = True
    # losses that can leave out the samples of one class (PyTorch's ignore_index, Keras' sparse ignore_class)
    ignoring: frozenset[str] = frozenset({"ce", "nll"})
    # losses that take class-index targets only (PyTorch's nll_loss): one-hot rows are read as their class, soft
    # rows are refused
    index_targets: frozenset[str] = frozenset()
    # bce from logits with a positive-class weight (PyTorch's pos_weight)
    pos_weight: bool = True
    # class weights: "sum-of-weights" (PyTorch's weight=: each class's term weighted inside the loss, label
    # smoothing's too; the mean over class indexes divides by the sum of the samples' weights, over probability
    # rows by N), "n" (Keras' fit(class_weight=...): float32 sample weights, a row's argmax class for one-hot and
    # soft rows, the mean divides by N), None (the framework has none)
    class_weights: str | None = "sum-of-weights"
    # the hinge's gradient at its kink (1 - y p = 0), as a fraction of -y: TF's maximum passes it all (1), JAX's
    # splits it (0.5); exact takes 0
    hinge_tie: float = 0.0
    # kl: "exact", "keras" (y and p clipped to [eps, 1], y log(y / p)), "torch" (kl_div: xlogy(y, y) - y log q),
    # "optax" (y (log y - log q)); losses whose per-element terms the framework's mean divides by the number of
    # elements rather than summing them per sample first (PyTorch's kl_div reduction='mean')
    kl: str = "exact"
    elementwise_mean: frozenset[str] = frozenset()
    # poisson: "exact" (p - y log p; e^z - y z from log rates), "keras" (p - y log(p + eps)), "torch"
    # (poisson_nll_loss: p - y log(p + 1e-8); e^z - y z)
    poisson: str = "exact"
    # focal: "exact" (long double, no cancellation), or how the framework forms 1 - p_t: "subtract" (1 - (y p +
    # (1 - y)(1 - p)), Keras and torchvision) or "log-space" (optax: exp(γ·logsumexp of log σ(±z)), whose
    # gradient is finite wherever the logits are); the bce under it is the convention's own
    focal_factor: str = "exact"
    # the gradient of x^0: TensorFlow's pow gives 0·x^(−1), NaN where x is 0; PyTorch's returns zeros
    pow0_grad_literal: bool = False
    # cosine: "exact" (1 - cos, no cancellation), "keras" (-sum of x * min(rsqrt(sum x^2), 1/eps)), "tf-keras"
    # (-sum of x * rsqrt(max(sum x^2, 1e-12))), "torch" (cosine_embedding_loss: 1 - sum(p y) /
    # sqrt((sum p^2 + 1e-12)(sum y^2 + 1e-12))), "optax" (cosine_distance: 1 - cos, NaN for a zero vector)
    cosine: str = "exact"
    # the weighted mean under --sample-weight: "sum-of-weights" (sum w l / sum w) or "n" (sum w l / N: Keras'
    # sum_over_batch_size, and (loss * w).mean() in PyTorch and optax)
    sample_weight_mean: str = "n"
    # --dtype float32: True computes in float64 and rounds the results (the float32-rounded truth, for the
    # exact convention); False evaluates the formulas in float32 as a float32 framework does
    float32_via_float64: bool = False
    # why the framework computes NaN for a loss, where it does (the result is reported, with this as the warning's
    # reason; a loss not named here: the usual 0·log 0 taken as 0·(−∞))
    nan_why: dict[str, str] = field(default_factory=dict)
    # a short reason for each (loss, mode) the framework lacks, shown as the error
    lacks: dict[tuple[str, str], str] = field(default_factory=dict)
    # the losses of more than a target and a prediction (gaussian-nll, triplet, margin-ranking, cosine-embedding):
    # "exact", or the framework's arithmetic: "torch" (gaussian_nll_loss clamps var at eps and passes the gradient
    # straight through the clamp; pairwise_distance adds eps to the difference; cosine_embedding_loss adds 1e-12 to
    # each squared norm), "optax" (triplet_margin_loss adds eps to the sum of powers, and raises without |.|)
    pairs: str = "exact"
    # their gradient at a hinge's kink (max(0, x) at x = 0), as a fraction: PyTorch's clamp_min passes it (1),
    # JAX's maximum splits it (0.5); exact takes 0
    pairs_tie: float = 0.0
    # ctc: "exact" (long double), or the framework's own, in its dtype: "torch" (its backward returns e^x − γ, the
    # gradient with respect to the logits behind log_softmax), "tf" (tf.nn.ctc_loss under Keras), "optax",
    # "tf-keras" (ctc_batch_cost: probabilities e^x, log(e^x + ε) as logits, the gradient with respect to e^x)
    ctc: str = "exact"
    # ctc's mean: "n" (the sum over the batch size), "target-length" (PyTorch: each loss divided by its target
    # length first)
    ctc_mean: str = "n"
    # whose CPU kernels are reproduced bit for bit (kernels.BACKENDS: "torch", "tf", "tf-keras", "xla"); None:
    # the formulas in the dtype, and no half dtypes
    kernels: str | None = None
    # poisson --full's log y! term: "exact" (log Γ(y + 1)), "stirling" (PyTorch: y log y − y + ½ log(2πy) for
    # y > 1, else 0)
    poisson_full: str = "exact"
    # categorical-focal: "exact" (log space, nothing subtracted from 1), "keras" (rows divided by their sum,
    # clipped to [eps, 1 - eps], 1 - q by subtraction)
    categorical_focal: str = "exact"
    # Keras 3 takes a list of class weights α_k as a float32 tensor (one number stays exact)
    alpha_list_float32: bool = False
    # dice and tversky: "exact" (the non-negative remainder over the denominator), "keras" (Keras 3: ε in the
    # denominator only, Tversky's alpha on the false negatives), "monai" (MONAI's DiceLoss and TverskyLoss)
    segmentation: str = "exact"
    # the losses whose `kernels` are reproduced in float64 too (elsewhere float64 is the formulas in float64)
    kernels_float64: frozenset[str] = frozenset()


EXACT = Convention(name="exact", title="exact mathematics", float32_via_float64=True,
                   sample_weight_mean="sum-of-weights")

def _keras_lacks(who: str) -> dict[tuple[str, str], str]:
    return {
        ("kl", "log_input"): f"{who}' kl_divergence takes probabilities, not log-probabilities (drop {{log_input}})",
        ("kl", "log_target"): f"{who}' kl_divergence takes probability targets (drop {{log_target}})",
        ("poisson", "logits"): f"{who}' poisson takes rates, not log rates (drop {{from_logits}}; TF's "
        "tf.nn.log_poisson_loss is PyTorch's formula: {convention} torch)",
        ("nll", "probs"): f"{who} has no nll loss on log-probabilities (use ce)",
        ("smooth-l1", "probs"): "Keras has no smooth L1 loss (huber with {delta} is the same up to a factor)",
        ("gaussian-nll", "probs"): f"{who} has no Gaussian negative log-likelihood loss",
        ("triplet", "probs"): f"{who} has no triplet margin loss",
        ("margin-ranking", "probs"): f"{who} has no margin ranking loss",
        ("cosine-embedding", "probs"): f"{who} has no cosine embedding loss with labels and a margin (cosine is "
        "its cosine_similarity)",
        ("ctc", "probs"): f"{who}' ctc takes logits (log_softmax is applied inside); pass logits with {{from_logits}}",
        ("ctc", "zero_infinity"): f"{who} has no zero_infinity for ctc",
        ("poisson", "full"): f"{who}' poisson has no log y! term (drop {{full}}; PyTorch's poisson_nll_loss(full=True) "
        "is {convention} torch)",
        ("dice", "logits"): f"{who}' dice takes probabilities (drop {{from_logits}})",
        ("tversky", "logits"): f"{who}' tversky takes probabilities (drop {{from_logits}})",
        ("dice", "squared"): f"{who}' dice has no squared denominator (MONAI's squared_pred: {{convention}} torch)",
        ("dice", "jaccard"): f"{who} has no Jaccard loss (MONAI's DiceLoss(jaccard=True): {{convention}} torch)",

        ("contrastive", "probs"): f"{who} has no contrastive loss: CLIP's recipe is categorical_crossentropy on the "
        "similarity logits; give those logits to lossgrad ce",
    }


KERAS = Convention(
    pos_weight=False,
    hinge_tie=1.0,
    name="keras",
    title="Keras 3 (keras 3.x, tf.keras in TF >= 2.16)",
    eps=1e-7,
    clip_tie_grad=1.0,
    bce_probs="keras",
    bce_logits="tf",
    ce_probs="keras",
    ce_probs_index="keras-sparse",
    ce_logits="fused",
    last_axis_mean=True,
    huber="keras",
    logcosh="keras",
    logcosh_log2=float.fromhex("0x1.62e430p-1"),  # float32(log 2) = 0.6931471824645996
    sparse_smoothing=False,
    class_weights="n",
    kl="keras",
    poisson="keras",
    focal_factor="subtract",
    pow0_grad_literal=True,
    nan_why={"focal": "TensorFlow differentiates (1 − p_t)^γ as γ·(1 − p_t)^(γ−1): at 1 − p_t = 0 that is 0·∞ for "
             "γ = 0, and for γ < 1 an infinity that meets a 0 in the product rule for p_t"},
    cosine="keras",
    lacks=_keras_lacks("Keras"),
    floatx_losses=frozenset({"ctc"}),  # keras.ops.ctc_loss casts float64 to float32 for tf.nn.ctc_loss
    ctc="tf",
    categorical_focal="keras",
    alpha_list_float32=True,
    segmentation="keras",
    kernels="tf",
    kernels_float64=frozenset({"dice", "tversky", "categorical-focal"}),  # (TensorFlow's double kernels)
)

# Keras 2 is Keras 3 with a few differences of its own
TF_KERAS = replace(
    KERAS,
    name="tf-keras",
    title="tf-keras (Keras 2, tf.keras in TF <= 2.15)",
    log_eps=True,
    floatx_losses=frozenset({"huber"}),
    cosine="tf-keras",
    lacks={k: v for k, v in _keras_lacks("tf-keras").items() if k != ("ctc", "probs")} | {
        ("ctc", "logits"): "tf-keras' ctc_batch_cost takes softmax probabilities: give their logarithms "
        "(log-probabilities, without {from_logits})",
        ("dice", "probs"): "tf-keras has no Dice loss (Keras 3 has: {convention} keras)",
        ("dice", "logits"): "tf-keras has no Dice loss (Keras 3 has: {convention} keras)",
        ("tversky", "probs"): "tf-keras has no Tversky loss (Keras 3 has: {convention} keras)",
        ("tversky", "logits"): "tf-keras has no Tversky loss (Keras 3 has: {convention} keras)",
    },
    alpha_list_float32=False,
    ctc="tf-keras",  # ctc_batch_cost: the probabilities' log(y + ε) as the logits of the CTC op
    kernels="tf-keras",
    kernels_float64=frozenset({"categorical-focal", "ctc"}),  # (ctc: the CTCLoss op in double)
)

TORCH = Convention(
    name="torch",
    title="PyTorch (torch.nn.functional)",
    log_clamp=-100.0,
    grad_floor=float.fromhex("0x1.197998p-40"),  # float32(1e-12) = 9.99999996e-13, as the CPU kernel has it
    bce_probs="torch",
    bce_logits="torch",
    ce_probs=None,
    ce_logits="autodiff",
    huber="torch",
    kl="torch",
    elementwise_mean=frozenset({"kl"}),
    poisson="torch",
    focal_factor="subtract",
    cosine="torch",
    smoothing=frozenset({"ce"}),
    ignoring=frozenset({"ce", "nll"}),
    index_targets=frozenset({"nll"}),
    kernels="torch",
    poisson_full="stirling",
    segmentation="monai",
    nan_why={"focal": "torchvision's (1 − p_t)^γ has the derivative γ·(1 − p_t)^(γ−1), infinite at 1 − p_t = 0 for "
             "γ < 1, and autodiff multiplies it by a 0 in the product rule for p_t",
             "ctc": "ctc_loss's backward divides by the probability 0 of a sequence with no alignment; "
             "{zero_infinity} gives 0",
             "dice": "MONAI's quotient is 0/0 where a sample's sums and smoothing are all 0, or its terms overflow "
             "the dtype (∞/∞, ∞ − ∞)",
             "tversky": "MONAI's quotient is 0/0 where a sample's sums and smoothing are all 0, or its terms "
             "overflow the dtype (∞/∞, ∞ − ∞)",
             "triplet": "a distance overflows the dtype, so the margin term is ∞ − ∞"},
    lacks={
        ("ce", "probs"): "PyTorch has no cross entropy on probabilities (F.cross_entropy takes logits); "
        "pass logits with {from_logits}",
        ("logcosh", "probs"): "PyTorch has no log-cosh loss",
        ("hinge", "probs"): "PyTorch has no hinge loss of this form (hinge_embedding_loss is another loss)",
        ("squared-hinge", "probs"): "PyTorch has no squared hinge loss",
        ("focal", "probs"): "PyTorch's focal loss (torchvision.ops.sigmoid_focal_loss) takes logits; pass logits "
        "with {from_logits}",
        ("ctc", "logits"): "PyTorch's ctc_loss takes log-probabilities (log_softmax outputs); drop {from_logits}",
        ("categorical-focal", "probs"): "PyTorch has no softmax focal loss (torchvision's sigmoid_focal_loss is focal)",
        ("categorical-focal", "logits"): "PyTorch has no softmax focal loss (torchvision's sigmoid_focal_loss is "
        "focal)",
        ("contrastive", "probs"): "PyTorch has no contrastive loss: CLIP's recipe is F.cross_entropy on the "
        "similarity logits; give those logits to lossgrad ce",
    },
    pairs="torch",
    pairs_tie=1.0,
    ctc="torch",
    ctc_mean="target-length",
    kernels_float64=frozenset({"ctc", "dice", "tversky", "triplet", "cosine-embedding", "cosine", "gaussian-nll",
                                "poisson", "margin-ranking"}),
)

OPTAX = Convention(
    pos_weight=False,
    hinge_tie=0.5,
    name="optax",
    title="optax (JAX)",
    bce_probs=None,
    bce_logits="optax",
    ce_probs=None,
    ce_logits="autodiff",
    huber="optax",
    logcosh="optax",
    kl="optax",
    focal_factor="log-space",
    cosine="optax",
    smoothing=frozenset({"ce"}),
    ignoring=frozenset(),
    class_weights=None,
    nan_why={"cosine": "cosine_distance divides a zero vector by its norm, 0/0",
             "triplet": "triplet_margin_loss takes jnp.power of the differences without |·|: a fractional "
             "norm_degree's power of a negative difference, or an odd one's root of a negative sum, is NaN"},
    lacks={
        ("nll", "probs"): "optax has no nll loss on log-probabilities (use ce)",
        ("mae", "probs"): "optax has no absolute-error loss",
        ("squared-hinge", "probs"): "optax has no squared hinge loss",
        ("poisson", "probs"): "optax has no Poisson loss",
        ("poisson", "logits"): "optax has no Poisson loss",
        ("focal", "probs"): "optax's sigmoid_focal_loss takes logits; pass logits with {from_logits}",
        ("smooth-l1", "probs"): "optax has no smooth L1 loss (huber_loss with {delta} is the same up to a factor)",
        ("bce", "probs"): "optax has no bce on probabilities (only sigmoid_binary_cross_entropy on logits); "
        "pass logits with {from_logits}",
        ("ce", "probs"): "optax has no cross entropy on probabilities (softmax_cross_entropy takes logits); "
        "pass logits with {from_logits}",
        ("gaussian-nll", "probs"): "optax has no Gaussian negative log-likelihood loss",
        ("triplet", "swap"): "optax's triplet_margin_loss has no swap (drop {swap})",
        ("margin-ranking", "probs"): "optax has no margin ranking loss (ranking_softmax_loss is another loss)",
        ("cosine-embedding", "probs"): "optax has no cosine embedding loss (cosine_distance is cosine)",
        ("ctc", "probs"): "optax's ctc_loss takes logits (log_softmax is applied inside); pass logits with "
        "{from_logits}",
        ("ctc", "zero_infinity"): "optax has no zero_infinity for ctc",
        ("categorical-focal", "probs"): "optax has no softmax focal loss (its sigmoid_focal_loss is focal)",
        ("categorical-focal", "logits"): "optax has no softmax focal loss (its sigmoid_focal_loss is focal)",
        ("dice", "probs"): "optax has no Dice loss",
        ("dice", "logits"): "optax has no Dice loss",
        ("tversky", "probs"): "optax has no Tversky loss",
        ("tversky", "logits"): "optax has no Tversky loss",
        ("contrastive", "symmetric"): "optax's only contrastive loss is ntxent (drop {symmetric}, give {ntxent})",
        ("contrastive", "dot"): "optax's ntxent takes cosine similarities (drop {dot})",
        ("contrastive", "decoupled"): "optax's ntxent keeps each row's positive in its denominator: it has no "
        "decoupled loss (drop {decoupled})",
        ("contrastive", "no_ntxent"): "optax's only contrastive loss is ntxent, SimCLR's (give {ntxent})",
    },
    pairs="optax",
    pairs_tie=0.5,
    ctc="optax",
    kernels="xla",
    # (JAX with jax_enable_x64, op by op and under jit: triplet, lowp_xla64; contrastive --ntxent, lowp_xla64_ntxent;
    # ctc, lowp_xla_ctc.float64_parts)
    kernels_float64=frozenset({"triplet", "contrastive", "ctc"}),
)

CONVENTIONS: dict[str, Convention] = {c.name: c for c in (EXACT, KERAS, TF_KERAS, TORCH, OPTAX)}


class UnsupportedError(ValueError):
    """The chosen convention has no such loss or mode."""


def get(name: str) -> Convention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise UnsupportedError(
            f"unknown convention {name!r}; choose one of {', '.join(CONVENTIONS)}"
        ) from None


def jit_applies(conv: Convention, dtype: str, loss: str) -> bool:
    """Whether the convention's numbers differ under jax.jit and op by op (--jit, --no-jit): XLA's kernels, in
    float32, float16 and bfloat16, and in float64 for the losses they reproduce there."""
    return conv.kernels == "xla" and (dtype != "float64" or loss in conv.kernels_float64)


def require(conv: Convention, loss: str, mode: str) -> None:
    """Raise when `conv` lacks `loss` in `mode` ('probs', 'logits', or a switch such as 'log_input')."""
    reason = conv.lacks.get((loss, mode))
    if reason:
        raise UnsupportedError(reason)


def with_eps(conv: Convention, eps: float | None) -> Convention:
    """`conv` with its clipping epsilon overridden by --eps."""
    if eps is None:
        return conv
    return replace(conv, eps=eps)
