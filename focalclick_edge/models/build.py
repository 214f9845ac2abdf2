"""A variant's PyTorch model, randomly initialised (the checkpoint loader fills it)."""
from __future__ import annotations

from ..variants import Variant, get_variant


def build_model(variant: Variant | str):
    """A randomly initialised model of the variant, in eval mode."""
    if isinstance(variant, str):
        variant = get_variant(variant)
    p = variant.model_params
    if variant.family == "hrnet":
        from .hrnet import HRNetModel

        model = HRNetModel(width=p["width"], ocr_width=p["ocr_width"], small=p["small"],
                           pipeline_version=p["pipeline_version"])
    else:
        from .segformer import SegFormerModel

        model = SegFormerModel(model_version=p["model_version"], pipeline_version=p["pipeline_version"])
    model.variant = variant
    return model.eval()
