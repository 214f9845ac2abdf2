"""The FocalClick Refiner: a ~0.01 M-parameter depthwise-separable head on the Focus Crop."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def blend_eq1(detail: torch.Tensor, boundary: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """Eq. 1 of the paper, applied to logits as the official code does: r = s(b)*d + (1 - s(b))*coarse."""
    gate = torch.sigmoid(boundary)
    return detail * gate + coarse * (1.0 - gate)


class ConvModule(nn.Module):
    """ClickSEG's local ConvModule (conv with bias, BN, ReLU); the child names fix the checkpoint keys."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)
        self.norm = nn.BatchNorm2d(cout)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv(x)))


class XConvBnRelu(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 + BN + ReLU (the paper's "Xception" convolution)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv3x3 = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=True)
        self.conv1x1 = nn.Conv2d(cin, cout, 1, bias=True)
        self.norm = nn.BatchNorm2d(cout)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv1x1(self.conv3x3(x))))


class Refiner(nn.Module):
    """Inputs are the already RoIAligned Segmentor outputs, so the module itself is a plain CNN; the
    RoIAlign lives in ``FocalClickBase.refine`` (torch) and ``runtime.geometry`` (NumPy)."""

    def __init__(self, feature_channels: int, mid_channels: int = 32, with_feature_gate: bool = False) -> None:
        super().__init__()
        self.image_conv1 = ConvModule(6, mid_channels, 3, stride=2, padding=1)
        self.image_conv2 = XConvBnRelu(mid_channels, mid_channels)
        self.image_conv3 = XConvBnRelu(mid_channels, mid_channels)
        self.refine_fusion = ConvModule(feature_channels, mid_channels, 1)
        self.refine_fusion2 = XConvBnRelu(mid_channels, mid_channels)
        self.refine_fusion3 = XConvBnRelu(mid_channels, mid_channels)
        if with_feature_gate:
            # Present in the SegFormer checkpoints, never used by the forward pass: kept for strict loading.
            self.feature_gate = nn.Sequential(nn.Conv2d(mid_channels, 1, 1), nn.Sigmoid())
        self.refine_pred = nn.Conv2d(mid_channels, 1, 3, padding=1)
        self.refine_trimap = nn.Conv2d(mid_channels, 1, 3, padding=1)

    def trunk(
        self,
        image_focus: torch.Tensor,
        click_maps_focus: torch.Tensor,
        cropped_feature: torch.Tensor,
        cropped_logits: torch.Tensor,
    ) -> torch.Tensor:
        """Everything before the two 1-channel heads: 32 channels at half the focus size."""
        x = torch.cat((image_focus, click_maps_focus, torch.sigmoid(cropped_logits)), dim=1)
        x = self.image_conv3(self.image_conv2(self.image_conv1(x)))
        f = self.refine_fusion(cropped_feature)
        f = F.interpolate(f, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return self.refine_fusion3(self.refine_fusion2(x + f))

    def forward(
        self,
        image_focus: torch.Tensor,
        click_maps_focus: torch.Tensor,
        cropped_feature: torch.Tensor,
        cropped_logits: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """image_focus: raw [0,1] RGB (the official refine() never normalises it), (B,3,256,256);
        click_maps_focus: (B,2,256,256) disks of radius 5; cropped_feature: (B,C,F,F);
        cropped_logits: (B,1,256,256) RoIAligned coarse logits."""
        size = image_focus.shape[-2:]
        x = self.trunk(image_focus, click_maps_focus, cropped_feature, cropped_logits)
        detail_low = self.refine_pred(x)
        boundary_low = self.refine_trimap(x)
        detail = F.interpolate(detail_low, size=size, mode="bilinear", align_corners=True)
        trimap = F.interpolate(boundary_low, size=size, mode="bilinear", align_corners=True)
        return {
            "instances_refined": blend_eq1(detail, trimap, cropped_logits),
            "trimap": trimap,
            "detail_lowres": detail_low,
            "boundary_lowres": boundary_low,
        }
