"""The losses, registered by name. Importing this package registers them all."""

from .base import LOSSES, DomainError, Loss, Param, Parts
from . import regression, classification, margin, poisson, divergence, focal  # noqa: F401  (each module registers its losses)

__all__ = ["LOSSES", "DomainError", "Loss", "Param", "Parts"]
