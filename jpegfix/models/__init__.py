"""Networks and the registry. Each method module registers its specs when imported here."""

from jpegfix.models.registry import MODELS, METHODS, ModelSpec, Registry
from jpegfix.models import qgcn  # noqa: F401  (registers qgcn-*)

__all__ = ["MODELS", "METHODS", "ModelSpec", "Registry"]
