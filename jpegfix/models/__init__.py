"""Networks and the registry. Each method module registers its specs when imported here."""

from jpegfix.models.registry import MODELS, METHODS, ModelSpec, Registry
from jpegfix.models import qgcn  # noqa: F401  (registers qgcn-*)
from jpegfix.models import qgcn_unet  # noqa: F401  (registers qgcn-unet-*)
from jpegfix.models import qgcn_dct  # noqa: F401  (registers qgcn-dct-*)
from jpegfix.models import contrastive  # noqa: F401  (registers contrastive-*)
from jpegfix.models import cqr  # noqa: F401  (registers cqr-*)
from jpegfix.models import one_to_many  # noqa: F401  (registers one-to-many-*)

__all__ = ["MODELS", "METHODS", "ModelSpec", "Registry"]
