"""What every FocalClick model shares: input normalisation, the S1 halving, output upsampling,
and the Refiner call. Family modules (hrnet.py, segformer.py) only provide the backbone."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .refiner import Refiner
from .roi_align import roi_align

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FocalClickBase(nn.Module):
    """Subclasses set ``self.maps_transform`` *first* (the official state dict starts with it), then
    ``self.feature_extractor``, then call ``self._init_refiner(feature_channels, ...)``, and implement
    ``backbone_forward``."""

    def __init__(self, pipeline_version: str) -> None:
        super().__init__()
        self.pipeline_version = pipeline_version
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _init_refiner(self, feature_channels: int, with_feature_gate: bool) -> None:
        self.refiner = Refiner(feature_channels, with_feature_gate=with_feature_gate)

    def backbone_forward(self, image: torch.Tensor, coord_features: torch.Tensor):
        """image: normalised RGB at the backbone size; coord_features: (prev_mask, pos, neg) there.
        Returns (instances, instances_aux, feature), all at 1/4 of the backbone size."""
        raise NotImplementedError

    def forward(self, image_nd: torch.Tensor, click_maps: torch.Tensor) -> dict[str, torch.Tensor]:
        """The Segmentor. image_nd: (B,4,256,256) = RGB in [0,1] + previous-mask probability;
        click_maps: (B,2,256,256) positive/negative disks drawn at 256.
        Returns logits ``instances``/``instances_aux`` at 256 and ``feature`` at 1/4 backbone size."""
        image = image_nd[:, :3]
        prev_mask = image_nd[:, 3:4]
        size = image_nd.shape[-2:]
        coord = torch.cat((prev_mask, click_maps), dim=1)
        image = (image - self._mean) / self._std
        if self.pipeline_version == "s1":
            # The official S1 nets halve their 256 input; align_corners=True makes this size-based.
            half = (size[0] // 2, size[1] // 2)
            image = F.interpolate(image, size=half, mode="bilinear", align_corners=True)
            coord = F.interpolate(coord, size=half, mode="bilinear", align_corners=True)
        instances, aux, feature = self.backbone_forward(image, coord)
        instances = F.interpolate(instances, size=size, mode="bilinear", align_corners=True)
        aux = F.interpolate(aux, size=size, mode="bilinear", align_corners=True)
        return {"instances": instances, "instances_aux": aux, "feature": feature}

    def refine(
        self,
        image_focus: torch.Tensor,
        click_maps_focus: torch.Tensor,
        feature: torch.Tensor,
        coarse_logits: torch.Tensor,
        roi: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """The Refiner, as the official ``refine()``: RoIAligns the Segmentor feature and the
        256x256 coarse logits to the focus box ``roi`` = [[0, x1, y1, x2, y2]] (256 frame)."""
        scale = feature.shape[-1] / coarse_logits.shape[-1]
        cropped_feature = roi_align(feature, roi, tuple(feature.shape[-2:]), scale)
        cropped_logits = roi_align(coarse_logits, roi, tuple(image_focus.shape[-2:]), 1.0)
        out = self.refiner(image_focus, click_maps_focus, cropped_feature, cropped_logits)
        out["instances_coarse"] = cropped_logits
        out["cropped_feature"] = cropped_feature
        return out
