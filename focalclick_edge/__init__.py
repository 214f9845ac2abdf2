"""focalclick-edge: FocalClick interactive segmentation on laptops and edge boxes."""
from __future__ import annotations

__version__ = "0.1.0"

from .variants import VARIANTS, Variant, get_variant  # noqa: E402


def create_model(variant_id: str):  # -> torch.nn.Module; torch is imported lazily
    """Build the PyTorch model of a variant (randomly initialised). Needs the [export] extra.

    Defined here, above both ``variants`` and ``models``, so that neither imports the other back."""
    from .models import build_model

    return build_model(get_variant(variant_id))


__all__ = ["VARIANTS", "Variant", "create_model", "get_variant", "__version__"]
