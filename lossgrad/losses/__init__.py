"""The losses, registered by name. Importing this package registers them all."""

from ..errors import DomainError
from .base import LOSSES, Loss, Param, Parts

# isort: off
# (each module registers its losses as it is imported, in the order lossgrad lists them)
from . import regression, classification, margin, poisson, divergence, focal, pairs, ctc  # noqa: F401
from . import segmentation  # noqa: F401
from . import contrastive  # noqa: F401
# isort: on

__all__ = ["LOSSES", "DomainError", "Loss", "Param", "Parts"]
