"""The two graphs we deploy per variant, with fixed names and static shapes.

RoIAlign stays outside the Refiner graph (NumPy, runtime/geometry.py): the graph then is a plain CNN
that quantizes cleanly, and calibration records exactly what the graph sees.
"""
from __future__ import annotations

import torch
from torch import nn

from ..variants import Variant

SEGMENTOR_INPUTS = ("image_nd", "click_maps")
SEGMENTOR_OUTPUTS = ("coarse_logits", "feature")
REFINER_INPUTS = ("image_focus", "click_maps_focus", "cropped_feature", "cropped_logits")
REFINER_OUTPUTS = ("refined_logits",)


class SegmentorGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image_nd: torch.Tensor, click_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(image_nd, click_maps)
        return out["instances"], out["feature"]


class RefinerGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.refiner = model.refiner

    def forward(
        self,
        image_focus: torch.Tensor,
        click_maps_focus: torch.Tensor,
        cropped_feature: torch.Tensor,
        cropped_logits: torch.Tensor,
    ) -> torch.Tensor:
        return self.refiner(image_focus, click_maps_focus, cropped_feature, cropped_logits)["instances_refined"]


def input_shapes(variant: Variant) -> dict[str, dict[str, tuple[int, ...]]]:
    n, f, c = variant.net_input_size, variant.feature_size, variant.feature_channels
    r = variant.refiner_input_size
    return {
        "segmentor": {"image_nd": (1, 4, n, n), "click_maps": (1, 2, n, n)},
        "refiner": {
            "image_focus": (1, 3, r, r),
            "click_maps_focus": (1, 2, r, r),
            "cropped_feature": (1, c, f, f),
            "cropped_logits": (1, 1, r, r),
        },
    }


def output_shapes(variant: Variant) -> dict[str, dict[str, tuple[int, ...]]]:
    n, f, c = variant.net_input_size, variant.feature_size, variant.feature_channels
    return {
        "segmentor": {"coarse_logits": (1, 1, n, n), "feature": (1, c, f, f)},
        "refiner": {"refined_logits": (1, 1, variant.refiner_input_size, variant.refiner_input_size)},
    }
