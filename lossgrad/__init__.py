"""lossgrad: loss functions and their gradients, as the frameworks compute them and as they truly are.

    >>> import lossgrad
    >>> r = lossgrad.bce([0, 1], [-2.0, 3.0], from_logits=True)
    >>> r.value, r.grad
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import (
                      Result,
                      bce,
                      categorical_focal,
                      ce,
                      contrastive,
                      cosine,
                      cosine_embedding,
                      ctc,
                      dice,
                      evaluate,
                      focal,
                      gaussian_nll,
                      hinge,
                      huber,
                      kl,
                      logcosh,
                      mae,
                      margin_ranking,
                      mse,
                      nll,
                      poisson,
                      smooth_l1,
                      squared_hinge,
                      triplet,
                      tversky,
    )
    from .conventions import CONVENTIONS
    from .errors import DomainError, InputError, LossgradError, OptionError
    from .losses import LOSSES

# each name's module, imported on first use: the command line imports the package before it can install its
# signal handlers, so the package itself imports nothing heavy
_HOME = {**dict.fromkeys(["Result", "bce", "ce", "cosine", "evaluate", "focal", "hinge", "huber", "kl", "logcosh",
                          "mae", "mse", "nll", "poisson", "smooth_l1", "squared_hinge", "ctc", "categorical_focal",
                          "dice", "tversky", "contrastive"], "api"),
         "CONVENTIONS": "conventions", "LOSSES": "losses",
         **dict.fromkeys(["DomainError", "InputError", "LossgradError", "OptionError"], "errors"),
         **dict.fromkeys(["gaussian_nll", "triplet", "margin_ranking", "cosine_embedding"], "api")}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value


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
    "ctc",
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
    "gaussian_nll",
    "triplet",
    "margin_ranking",
    "cosine_embedding",
    "categorical_focal",
    "dice",
    "tversky",
    "contrastive",
]
