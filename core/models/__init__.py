"""Model compositions (δ models) and the variant registry."""

from .delta import DeltaModel, DeltaOutput
from .registry import VARIANTS, Variant, get_variant

__all__ = ["VARIANTS", "DeltaModel", "DeltaOutput", "Variant", "get_variant"]
