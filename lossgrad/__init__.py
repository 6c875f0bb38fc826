"""lossgrad: loss functions and their gradients, as the frameworks compute them and as they truly are.

    >>> import lossgrad
    >>> r = lossgrad.bce([0, 1], [-2.0, 3.0], from_logits=True)
    >>> r.value, r.grad
"""

from .api import (
                  Result,
                  bce,
                  ce,
                  cosine,
                  evaluate,
                  focal,
                  hinge,
                  huber,
                  kl,
                  logcosh,
                  mae,
                  mse,
                  nll,
                  poisson,
                  smooth_l1,
                  squared_hinge,
)
from .conventions import CONVENTIONS
from .errors import DomainError, InputError, LossgradError, OptionError
from .losses import LOSSES

__version__ = "0.1.0"

__all__ = [
    "CONVENTIONS",
    "DomainError",
    "InputError",
    "LOSSES",
    "LossgradError",
    "OptionError",
    "Result",
    "bce",
    "ce",
    "cosine",
    "evaluate",
    "focal",
    "hinge",
    "huber",
    "kl",
    "logcosh",
    "mae",
    "mse",
    "nll",
    "poisson",
    "smooth_l1",
    "squared_hinge",
]
