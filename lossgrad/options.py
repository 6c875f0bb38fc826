"""Set-up: every choice a user makes, checked once, in one frozen Setup that the later stages only read.

Messages name the library's parameters as `{name}` templates (see errors.py): `from_logits=True` to a Python
caller, `--from-logits` on the command line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, TypeVar

import numpy as np

from . import autocast as mixed, conventions
from .conventions import Convention
from .errors import OptionError
from .inputs import parse_inline, to_array
from .losses import LOSSES, Loss, Param


class Reduction(str, Enum):
    MEAN = "mean"
    SUM = "sum"
    NONE = "none"


class Labels(str, Enum):
    AUTO = "auto"
    INDEX = "index"
    ONEHOT = "onehot"


class Dtype(str, Enum):
    FLOAT64 = "float64"
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"


class Format(str, Enum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


E = TypeVar("E", bound=Enum)


def choose(kind: type[E], name: str, value: object, what: str) -> E:
    """`value` as a member of `kind`, or an OptionError naming parameter `name` and the choices."""
    for member in kind:
        if value == member.value or value is member:
            return member
    choices = ", ".join(str(m.value) for m in kind)
    raise OptionError(name, f"unknown {what} {value!r}; choose one of {choices}")


def switch(name: str, value: object) -> bool:
    """An on/off parameter: True or False only (a string such as 'no' is not read as either)."""
    if not isinstance(value, (bool, np.bool_)):
        raise OptionError(name, f"takes True or False, got {value!r}")
    return bool(value)


def choose_loss(name: object) -> Loss:
    if not isinstance(name, str) or name not in LOSSES:
        raise OptionError("loss", f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


@dataclass(frozen=True)
class Setup:
    """A loss with all its options, validated: what evaluate, reduce and render read."""

    loss: Loss
    conv: Convention
    from_logits: bool = False
    reduction: Reduction = Reduction.MEAN
    dtype: Dtype = Dtype.FLOAT64
    labels: Labels = Labels.AUTO
    sample_weight: bool = False  # per-sample weights come with the samples
    params: Mapping[str, Any] = field(default_factory=dict)  # the loss's own numbers, defaults filled in
    batchmean: bool = False  # PyTorch's kl_div reduction: the mean over samples, whatever the convention's mean
    autocast: bool = False  # the half dtype is the predictions'; the loss runs as the framework's mixed policy says
    jit: bool | None = None  # JAX's results under jax.jit (True), op by op (False); None: not said (jit)
    # what the kernels take of the whole batch a slice is part of: their sums over it, and the slice's place in it
    batch: Mapping[str, Any] = field(default_factory=dict)

    @property
    def np_dtype(self) -> Any:
        """The numpy type results are rounded to (float16, or ml_dtypes' bfloat16, for the half dtypes)."""
        if self.half is not None and not self.autocast:
            return self.half
        return np.float64 if self.dtype is Dtype.FLOAT64 else np.float32

    @property
    def half(self) -> Any:
        """The half dtype's numpy type, whose values are carried in float32 arrays; None for float32 and float64."""
        if self.dtype not in (Dtype.FLOAT16, Dtype.BFLOAT16):
            return None
        from . import lowp  # (the kernels' module loads only for a low-precision run)
        return lowp.half_dtype(self.dtype.value)

    @property
    def lowp(self) -> bool:
        """The convention's own CPU kernels are reproduced bit for bit in this dtype (lossgrad.lowp)."""
        float64 = (self.dtype is Dtype.FLOAT64 and self.loss.name not in self.conv.kernels_float64
                   and not self.float32_kernels)
        return self.conv.kernels is not None and not float64 and self.kernels_lacking is None

    @property
    def kernels_lacking(self) -> str | None:
        """Why the convention's kernels are not reproduced in this dtype (None: they are, or it has none)."""
        if self.conv.kernels is None:
            return None
        dtype = "float32" if self.autocast or self.float32_kernels else self.dtype.value  # (the float32 kernels)
        from . import kernels  # (the backends load only where a low-precision kernel may run)
        return kernels.unsupported(self.conv.kernels, dtype, self.loss.name, self.from_logits, self.kernel_params,
                                   self.switches, self.sample_weight)

    @property
    def float32_kernels(self) -> bool:
        """float64 inputs of a sequence loss the framework computes in float32 (Keras' ctc): its float32 kernels."""
        return (self.dtype is Dtype.FLOAT64 and self.loss.kind == "sequence"
                and self.loss.name in self.conv.floatx_losses)

    @property
    def float32(self) -> Setup:
        """Under autocast, the set-up the loss runs in: the same loss and convention in float32."""
        return replace(self, dtype=Dtype.FLOAT32, autocast=False)

    @property
    def rows_loss(self) -> bool:
        """One loss per sample over C classes (ce, nll), targets possibly class indexes."""
        return self.loss.kind == "rows"

    @property
    def keeps_elements(self) -> bool:
        """The framework's mean divides a per-sample sum's terms by the element count (PyTorch's kl_div)."""
        return self.loss.name in self.conv.elementwise_mean and not self.batchmean

    def per_sample_for(self, outputs: int) -> bool:
        """One loss per sample (rather than per element) for predictions with `outputs` columns."""
        if self.loss.last_axis == "vector" or (self.loss.last_axis == "sum" and not self.keeps_elements):
            return True
        return self.rows_loss or (self.conv.last_axis_mean and outputs > 1 and self.loss.last_axis is None)

    @property
    def work_dtype(self) -> Any:
        """The dtype the formulas run in: float64 for the exact convention (rounded at the end), float32 where
        the framework casts the loss to float32 whatever its input."""
        if self.dtype is not Dtype.FLOAT64 and self.conv.float32_via_float64:
            return np.float64
        if self.loss.name in self.conv.floatx_losses:
            return np.float32
        return self.np_dtype

    @property
    def weight_note(self) -> str | None:
        """Under sample weights, what the mean divides by."""
        if not self.sample_weight:
            return None
        if self.conv.sample_weight_mean == "sum-of-weights":
            return "the sum of the sample weights"
        return "the weighted sum over N"

    @property
    def jit_mode(self) -> bool | None:
        """Whether the XLA kernels reproduce JAX under jit (the default) or op by op; None where no XLA kernels
        run (conventions.jit_applies: optax in float32, float16 and bfloat16, and its float64 kernels)."""
        applies = conventions.jit_applies(self.conv, self.dtype.value, self.loss.name)
        return self.jit is not False if applies else None

    @property
    def kernel_params(self) -> dict[str, Any]:
        """The parameters a kernels backend reads: the loss's own, and the epsilon --eps gives the convention."""
        given = self.conv.eps != conventions.get(self.conv.name).eps
        return {**self.params, **({"eps": self.conv.eps} if given else {})}

    @property
    def kernel_switches(self) -> dict[str, bool]:
        """The switches a kernels backend reads: the loss's own, jit, and whether the reduction is the mean."""
        return {**self.switches, "jit": self.jit is not False, "mean": self.reduction is Reduction.MEAN}

    @property
    def switches(self) -> dict[str, bool]:
        """The loss's on/off parameters (kl's log_input), as its domain check takes them."""
        return {p.name: self.params[p.name] for p in self.loss.params if p.flag}

    def with_labels(self, labels: Labels | str | None) -> Setup:
        """The same set-up with the label layout the input turned out to have."""
        return self if not labels else replace(self, labels=Labels(labels))


def setup(loss: str, *, from_logits: object = False, reduction: object = "mean", convention: object = "exact",
          eps: object = None, dtype: object = "float64", labels: object = "auto", sample_weight: bool = False,
          autocast: object = False, jit: object = None, **params: Any) -> Setup:
    """Every option checked, as one Setup; an OptionError names the first that cannot be used."""
    the_loss = choose_loss(loss)
    values = loss_params(the_loss, params)
    batchmean = reduction == "batchmean"
    if batchmean and the_loss.name != "kl":
        raise OptionError("reduction", f"batchmean is PyTorch's kl_div reduction (the sum over the batch size); for "
                                       f"{the_loss.name} use mean")
    reduction = REDUCTION_ALIASES.get(reduction, reduction) if isinstance(reduction, str) else reduction
    chosen = (choose(Reduction, "reduction", reduction, "reduction"), choose(Dtype, "dtype", dtype, "dtype"),
              choose(Labels, "labels", labels, "label layout"))
    if chosen[2] is not Labels.AUTO and the_loss.kind != "rows":
        raise OptionError("labels", f"applies to ce only, not to {the_loss.name}")
    logits = switch("from_logits", from_logits)
    conv = weighed_convention(_convention(the_loss, logits, convention, eps), the_loss, sample_weight)
    s = Setup(loss=the_loss, conv=conv, from_logits=logits,
              reduction=chosen[0], dtype=chosen[1], labels=chosen[2], sample_weight=sample_weight, params=values,
              batchmean=batchmean, autocast=switch("autocast", autocast),
              jit=None if jit is None else switch("jit", jit))
    _check_combinations(s)
    return s


def per_length(s: Setup) -> str:
    """The convention, in words, whose mean divides each sequence's loss by its target length (PyTorch's ctc);
    else empty."""
    return s.conv.title if s.loss.kind == "sequence" and s.conv.ctc_mean == "target-length" else ""


def weighed_convention(conv: Convention, loss: Loss, sample_weight: bool) -> Convention:
    """The convention as it reduces `loss` under sample weights or without them: weighed by sequence, a mean is
    (ctc_loss(reduction="none") * w).mean(), as PyTorch users write it; reduction="mean"'s division by the target
    lengths takes no weights, so it is left out."""
    return replace(conv, ctc_mean="n") if sample_weight and loss.kind == "sequence" else conv


# what people type for a convention or a reduction, and the name lossgrad gives it
CONVENTION_ALIASES = {"pytorch": "torch", "jax": "optax", "tf.keras": "tf-keras", "tf_keras": "tf-keras",
                      "keras2": "tf-keras", "keras3": "keras"}
REDUCTION_ALIASES = {"sum_over_batch_size": "mean", "batchmean": "mean"}


def convention_name(name: object) -> str:
    """A convention's name from what a user typed (pytorch, jax, tf.keras, keras2, keras3 ...)."""
    if not isinstance(name, str):
        raise OptionError("convention", f"takes a name, got {name!r}")
    key = name.strip().lower()
    if key in ("tensorflow", "tf"):
        raise OptionError("convention", "TensorFlow's losses are Keras': TF 2.16 and later come with Keras 3 "
                                        "({convention} keras), TF 2.15 and earlier (or TF_USE_LEGACY_KERAS=1) with "
                                        "tf.keras, Keras 2 ({convention} tf-keras)")
    return CONVENTION_ALIASES.get(key, key)


def _convention(loss: Loss, from_logits: bool, name: object, eps: object) -> Convention:
    if from_logits and not loss.has_logits:
        raise OptionError("from_logits", f"{loss.name} takes no logits; drop {{from_logits}}")
    if not isinstance(name, str):
        raise OptionError("convention", f"takes a convention's name, got {name!r}; choose one of "
                                        f"{', '.join(conventions.CONVENTIONS)}")
    try:
        conv = conventions.get(convention_name(name))
        conventions.require(conv, loss.name, "logits" if from_logits else "probs")
    except conventions.UnsupportedError as e:
        raise OptionError("convention", str(e)) from None
    if eps is None:
        return conv
    if conv.eps is None:
        clipping = [c.name for c in conventions.CONVENTIONS.values() if c.eps is not None]
        raise OptionError("eps", f"the {conv.name} convention does not clip; {{eps}} applies to {', '.join(clipping)}")
    if isinstance(eps, float) and not math.isfinite(eps):
        raise OptionError("eps", f"must be a finite number, got {eps!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (0 < eps < 0.5):
        raise OptionError("eps", f"must be in (0, 0.5), got {eps!r}")
    return conventions.with_eps(conv, float(eps))


def _check_combinations(s: Setup) -> None:
    """Options that exist but not together, or not in this convention."""
    _check_convention_has(s)
    _check_autocast(s)
    _check_half(s)
    if s.jit is not None and s.jit_mode is None:
        raise OptionError("jit" if s.jit else "no_jit", "chooses between JAX's results under jax.jit and op by op, "
                          "for optax ({convention} optax) in float32, float16 or bfloat16 (and triplet, "
                          "contrastive --ntxent and ctc in float64); drop it here")
    p, conv = s.params, s.conv
    if p.get("pos_weight") is not None:
        if not s.from_logits:
            raise OptionError("pos_weight", "applies to bce from logits ({from_logits}), as PyTorch's pos_weight")
        if not conv.pos_weight:
            raise OptionError("pos_weight", f"{conv.title} has no pos_weight for bce (TF's "
                              "weighted_cross_entropy_with_logits is PyTorch's formula: {convention} torch)")
    if s.sample_weight and p.get("over_batch"):
        raise OptionError("over_batch", "gives the whole batch one loss, which a weight per sample cannot weigh; "
                                        "drop {sample_weight}, or {over_batch} for one loss per sample")
    if s.sample_weight and p.get("class_weights") is not None:
        raise OptionError("sample_weight", "cannot be combined with {class_weights}; fold the class weights "
                                           "into the sample weights")
    if p.get("class_weights") is not None and conv.class_weights is None:
        raise OptionError("class_weights", f"{conv.title} has no class weights")
    if p.get("ignore_index") is not None and s.loss.name not in conv.ignoring:
        raise OptionError("ignore_index", f"{conv.title} has no ignore_index for {s.loss.name}")
    if p.get("label_smoothing") and s.loss.name not in conv.smoothing:
        raise OptionError("label_smoothing", f"{conv.title} has no label smoothing for {s.loss.name}")
    if s.loss.name == "triplet" and conv.pairs == "torch" and (p.get("margin") is not None and p["margin"] <= 0):
        raise OptionError("margin", f"PyTorch's triplet_margin_loss refuses a margin of {p['margin']:g} (ValueError: "
                                    "margin must be greater than 0); optax and the exact convention take it")


def _check_autocast(s: Setup) -> None:
    """Autocast: a half dtype (the predictions'), and a convention whose mixed policy covers the loss."""
    if not s.autocast:
        return
    if s.half is None:
        raise OptionError("autocast", f"needs {{dtype}} float16 or bfloat16, the model's predictions' dtype (got "
                                      f"{s.dtype.value})")
    why = mixed.refused(s.conv.name, s.loss.name, s.loss.kind, bool(s.loss.inputs))
    if why is not None and s.conv.name == "exact":
        why = why.split("; choose")[0] + _policies_taking(s)
    if why is not None:
        raise OptionError("autocast", why)


def _policies_taking(s: Setup) -> str:
    """The conventions whose mixed policy is reproduced for this loss with these options, as a choice (or that
    none is)."""
    names = []
    for name in mixed.POLICIES:
        try:
            conv = conventions.get(name)
            conventions.require(conv, s.loss.name, "logits" if s.from_logits else "probs")
            _check_combinations(replace(s, conv=conv))
        except (OptionError, conventions.UnsupportedError):
            continue
        names.append(name)
    if not names:
        return f"; no framework's mixed policy is reproduced for {s.loss.name} with these options"
    return "; choose {convention} " + ", ".join(names[:-1]) + (" or " if len(names) > 1 else "") + names[-1]


def _check_half(s: Setup) -> None:
    """A half dtype: the exact convention (the truth rounded once), or PyTorch's kernels where they are
    reproduced; anything else would be numbers no framework gives (autocast: float32, on rounded predictions)."""
    if s.half is None or s.conv.float32_via_float64 or s.autocast:
        return
    name = s.dtype.value
    if s.conv.kernels is None:
        raise OptionError("dtype", f"{name} is computed by the exact convention (the truth rounded once) and as "
                          f"PyTorch's and TensorFlow's CPU kernels do ({{convention}} torch, keras, tf-keras); "
                          f"{s.conv.title} in {name} is not reproduced")
    from . import kernels  # (the backends load only where a low-precision kernel may run)
    refused = kernels.refused(s.conv.kernels, name, s.loss.name)
    if refused is not None:
        raise OptionError("dtype", f"{refused}; {_instead(s)}")
    why = kernels.unsupported(s.conv.kernels, name, s.loss.name, s.from_logits, s.kernel_params, s.switches,
                              s.sample_weight)
    if why is not None:
        raise OptionError("dtype", f"{kernels.TITLES[s.conv.kernels]} {name} kernels are reproduced for "
                          f"{kernels.supported(s.conv.kernels)}, with no other options; not "
                          f"for {why}; {_instead(s)}")


def _instead(s: Setup) -> str:
    """What to use instead of a half dtype whose kernels are not reproduced here: float32 or float64 where the
    convention takes these options there, the exact convention where it takes them (not with --eps, which it has
    no use for). Where neither does, the options are the convention's own refusal in every dtype: that is raised."""
    def fits(alternative: Setup) -> bool:
        try:
            _check_combinations(alternative)
        except OptionError:
            return False
        return True

    dtypes = [d.value for d in (Dtype.FLOAT32, Dtype.FLOAT64) if fits(replace(s, dtype=d))]
    eps_given = s.conv.eps != conventions.get(s.conv.name).eps
    exact = not eps_given and fits(replace(s, conv=conventions.get("exact")))
    if not dtypes:
        _check_combinations(replace(s, dtype=Dtype.FLOAT32))  # (raises: the options the convention lacks)
    ways = ([f"{{dtype}} {' or '.join(dtypes)}"] if dtypes else []) + (["{convention} exact"] if exact else [])
    return f"use {', or '.join(ways)}"


def _check_convention_has(s: Setup) -> None:
    """The switches that are on (kl's log_input) exist in the convention, and those left off ("no_" + name: optax's
    contrastive loss is ntxent only) too."""
    for param in s.loss.params:
        if param.flag:
            try:
                on = bool(s.params.get(param.name))
                conventions.require(s.conv, s.loss.name, param.name if on else "no_" + param.name)
            except conventions.UnsupportedError as e:
                raise OptionError("convention", str(e)) from None


def loss_params(loss: Loss, given: Mapping[str, Any]) -> dict[str, Any]:
    """The loss's own numbers (huber's delta): defaults filled in, others refused, values checked."""
    known = {p.name: p for p in loss.params}
    out: dict[str, Any] = {name: p.default for name, p in known.items()}
    for name, value in given.items():
        if value is None or value is False:  # an option not given (a switch left off)
            continue
        if name not in known:
            users = [x.name for x in LOSSES.values() if any(p.name == name for p in x.params)]
            raise OptionError(name, f"applies to {', '.join(users) or 'no loss'}, not to {loss.name}")
        out[name] = param_value(known[name], value)
    return out


def param_value(param: Param, value: Any) -> Any:
    """One loss parameter's value, checked: a switch, a class index, one number per class, or a size."""
    name = param.name
    if param.flag:
        return switch(name, value)
    if param.vector:
        return _per_class(name, value)
    number = _number(name, value)
    if not np.isfinite(number):
        raise OptionError(name, f"must be a finite number, got {number!r}")
    if param.integer:
        if number != int(number):
            raise OptionError(name, f"must be a whole number (a class index), got {value!r}")
        return int(number)
    if param.signed:
        return number
    if number < 0 or (param.positive and number == 0):
        raise OptionError(name, f"must be {'positive' if param.positive else 'zero or more'}, got {number!r}")
    if param.fraction and number > 1:
        raise OptionError(name, f"must be in [0, 1], got {number!r}")
    return number


def _number(name: str, value: Any) -> float:
    # (the command line passes numbers already; a string here is a caller's mistake, not text to parse)
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise OptionError(name, f"takes a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise OptionError(name, f"takes a number, got {value!r}") from None
    return number


def _per_class(name: str, value: Any) -> np.ndarray:
    v = parse_inline(value, "{" + name + "}") if isinstance(value, str) else to_array(value, name)
    if v.ndim != 1 or (v < 0).any() or not np.isfinite(v).all():
        raise OptionError(name, "takes one non-negative number per class, comma separated")
    return v
