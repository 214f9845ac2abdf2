"""The two graphs we deploy per variant, with fixed names and static shapes.

RoIAlign stays outside the Refiner graph (NumPy, runtime/geometry.py): the graph then is a plain CNN
that quantizes cleanly, and calibration records exactly what the graph sees.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.refiner import blend_eq1
from ..variants import Variant
from .head_folding import FoldedSegFormerHead

SEGMENTOR_INPUTS = ("image_nd", "click_maps")
SEGMENTOR_OUTPUTS = ("coarse_logits", "feature")
REFINER_INPUTS = ("image_focus", "click_maps_focus", "cropped_feature", "cropped_logits")
REFINER_OUTPUTS = ("refined_logits",)


class SegmentorGraph(nn.Module):
    """The Segmentor between its two fixed-size bilinear resizes, which the runtime does in NumPy.

    Input: the Target Crop at the backbone size (128 for S1, 256 for S2; ``image_nd`` RGB in [0, 1] +
    previous-mask probability, ``click_maps`` the disks). Output: ``coarse_logits`` at 1/4 of that size
    and ``feature``. The official S1 nets halve their 256 crop and every net upsamples its logits to 256
    (both bilinear, align_corners=True); in a graph those two resizes cost 15-20% of the b0-s1 Segmentor
    (OpenVINO per-op profile: Interpolate + the layout reorders they force), in NumPy a fraction of
    that, and only the pixels the next step reads are computed. The arithmetic is unchanged: the image
    normalisation, a per-channel affine map, commutes with the resize up to float rounding.
    """

    def __init__(self, model: nn.Module, fold_head: bool = True) -> None:
        """``fold_head``: SegFormer decode head in its folded form (export/head_folding.py: the same
        function with ~1/3 of the b0 Segmentor's arithmetic); False keeps the trained structure."""
        super().__init__()
        self.model = model
        head = getattr(getattr(model, "feature_extractor", None), "decode_head", None)
        self.folded_head = None
        if fold_head and head is not None and hasattr(head, "linear_fuse"):
            self.folded_head = FoldedSegFormerHead(head.eval())

    def forward(self, image_nd: torch.Tensor, click_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        image = (image_nd[:, :3] - m._mean) / m._std
        coord = torch.cat((image_nd[:, 3:4], click_maps), dim=1)
        if self.folded_head is not None:
            return self.folded_head(m.feature_extractor.backbone(image, coord))
        instances, _aux, feature = m.backbone_forward(image, coord)
        return instances, feature


class RefinerGraph(nn.Module):
    """The Refiner with its detail and boundary heads fused into one 2-channel conv and one 2-channel
    upsample: the same numbers, but 1-channel convs and resizes are the slowest ops per element in both
    runtimes (the fused graph cut the ORT refiner from ~8.7 to ~5.5 ms on b0-s1)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.refiner = model.refiner
        pred, trimap = self.refiner.refine_pred, self.refiner.refine_trimap
        self.heads = nn.Conv2d(pred.in_channels, 2, pred.kernel_size, padding=pred.padding)
        with torch.no_grad():
            self.heads.weight.copy_(torch.cat((pred.weight, trimap.weight), dim=0))
            self.heads.bias.copy_(torch.cat((pred.bias, trimap.bias), dim=0))

    def forward(
        self,
        image_focus: torch.Tensor,
        click_maps_focus: torch.Tensor,
        cropped_feature: torch.Tensor,
        cropped_logits: torch.Tensor,
    ) -> torch.Tensor:
        x = self.refiner.trunk(image_focus, click_maps_focus, cropped_feature, cropped_logits)
        heads = F.interpolate(self.heads(x), size=image_focus.shape[-2:], mode="bilinear", align_corners=True)
        return blend_eq1(heads[:, 0:1], heads[:, 1:2], cropped_logits)


def input_shapes(variant: Variant) -> dict[str, dict[str, tuple[int, ...]]]:
    s, f, c = variant.segmentor_input_size, variant.feature_size, variant.feature_channels
    r = variant.refiner_input_size
    return {
        "segmentor": {"image_nd": (1, 4, s, s), "click_maps": (1, 2, s, s)},
        "refiner": {
            "image_focus": (1, 3, r, r),
            "click_maps_focus": (1, 2, r, r),
            "cropped_feature": (1, c, f, f),
            "cropped_logits": (1, 1, r, r),
        },
    }


def output_shapes(variant: Variant) -> dict[str, dict[str, tuple[int, ...]]]:
    f, c = variant.feature_size, variant.feature_channels
    return {
        "segmentor": {"coarse_logits": (1, 1, f, f), "feature": (1, c, f, f)},
        "refiner": {"refined_logits": (1, 1, variant.refiner_input_size, variant.refiner_input_size)},
    }
