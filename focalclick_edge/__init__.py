"""focalclick-edge: FocalClick interactive segmentation on laptops and edge boxes."""
from __future__ import annotations

__version__ = "0.1.0"

from .variants import VARIANTS, Variant, create_model, get_variant  # noqa: E402

__all__ = ["VARIANTS", "Variant", "create_model", "get_variant", "__version__"]
