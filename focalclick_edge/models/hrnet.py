"""HRNet + OCR FocalClick Segmentor (ClickSEG ``HRNetModel``: W18-small and W32).

Module names and registration order mirror the official code, so ``state_dict()`` keys (and their order)
equal those of the published checkpoints and load with ``strict=True``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import FocalClickBase

__all__ = ["HRNetModel", "HighResolutionNet", "ScaleLayer"]


def _upsample_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    # The official HRNet-OCR uses align_corners=True for every internal resize; sizes come from shapes so
    # ONNX export records them as shape-derived rather than baked-in scale factors.
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=True)


class ScaleLayer(nn.Module):
    """Learnable scalar gain; ``abs`` keeps the click features from flipping sign (official ScaleLayer)."""

    def __init__(self, init_value: float = 0.05, lr_mult: float = 1.0) -> None:
        super().__init__()
        self.lr_mult = lr_mult
        self.scale = nn.Parameter(torch.full((1,), init_value / lr_mult, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.abs(self.scale * self.lr_mult)


class BasicBlock(nn.Module):
    """ResNet-v1b basic block (two 3x3 convs)."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """ResNet-v1b bottleneck (stride on the 3x3 conv), used only by ``layer1``."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def _make_blocks(block: type[nn.Module], inplanes: int, planes: int, num_blocks: int) -> nn.Sequential:
    downsample = None
    if inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * block.expansion, 1, bias=False),
            nn.BatchNorm2d(planes * block.expansion),
        )
    layers = [block(inplanes, planes, 1, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """One exchange unit: parallel residual branches, then every branch fuses all the others (sum)."""

    def __init__(self, channels: list[int], num_blocks: int) -> None:
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList([_make_blocks(BasicBlock, c, c, num_blocks) for c in channels])
        fuse_layers = []
        for i in range(n):
            row: list[nn.Module | None] = []
            for j in range(n):
                if j > i:
                    # Lower resolution -> 1x1 channel match; the upsampling happens in forward().
                    row.append(_conv_bn(channels[j], channels[i], 1, 1, relu=False))
                elif j == i:
                    row.append(None)
                else:
                    # Higher resolution -> chain of stride-2 3x3 convs; only the last one changes the
                    # channel count and it has no ReLU (the sum is activated afterwards).
                    steps = [
                        _conv_bn(channels[j], channels[j], 3, 2, relu=True) for _ in range(i - j - 1)
                    ]
                    steps.append(_conv_bn(channels[j], channels[i], 3, 2, relu=False))
                    row.append(nn.Sequential(*steps))
            fuse_layers.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse_layers)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            # Same summation order as the official code (j = 0, 1, ...), to keep float rounding close.
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, len(xs)):
                if j == i:
                    y = y + xs[j]
                elif j > i:
                    y = y + _upsample_to(row[j](xs[j]), xs[i])
                else:
                    y = y + row[j](xs[j])
            out.append(self.relu(y))
        return out


def _make_transition(prev: list[int], cur: list[int]) -> nn.ModuleList:
    layers: list[nn.Module | None] = []
    for i, c in enumerate(cur):
        if i < len(prev):
            layers.append(None if c == prev[i] else _conv_bn(prev[i], c, 3, 1, relu=True))
        else:
            # New lower-resolution branch(es), grown from the previous lowest-resolution one.
            steps = []
            for k in range(i + 1 - len(prev)):
                out_c = c if k == i - len(prev) else prev[-1]
                steps.append(_conv_bn(prev[-1], out_c, 3, 2, relu=True))
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class SpatialGatherModule(nn.Module):
    """OCR object regions: softmax of the aux logits over all pixels weights the pixel features."""

    def forward(self, feats: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        b, k = probs.shape[0], probs.shape[1]
        c = feats.shape[1]
        probs = F.softmax(probs.reshape(b, k, -1), dim=2)  # (b, k, hw)
        feats = feats.reshape(b, c, -1).permute(0, 2, 1)  # (b, hw, c)
        return torch.matmul(probs, feats).permute(0, 2, 1).unsqueeze(3)  # (b, c, k, 1)


def _conv_bnrelu(cin: int, cout: int) -> list[nn.Module]:
    # The official OCR wraps BN+ReLU in an inner Sequential, hence keys like ``f_pixel.1.0.weight``.
    return [nn.Conv2d(cin, cout, 1, bias=False), nn.Sequential(nn.BatchNorm2d(cout), nn.ReLU(inplace=True))]


class ObjectAttentionBlock2D(nn.Module):
    """Pixel-to-object attention (scale 1, so the official max-pool and re-upsampling are no-ops)."""

    def __init__(self, in_channels: int, key_channels: int) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.f_pixel = nn.Sequential(
            *_conv_bnrelu(in_channels, key_channels), *_conv_bnrelu(key_channels, key_channels)
        )
        self.f_object = nn.Sequential(
            *_conv_bnrelu(in_channels, key_channels), *_conv_bnrelu(key_channels, key_channels)
        )
        self.f_down = nn.Sequential(*_conv_bnrelu(in_channels, key_channels))
        self.f_up = nn.Sequential(*_conv_bnrelu(key_channels, in_channels))

    def forward(self, x: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        query = self.f_pixel(x).reshape(b, self.key_channels, -1).permute(0, 2, 1)  # (b, hw, kc)
        key = self.f_object(proxy).reshape(b, self.key_channels, -1)  # (b, kc, k)
        value = self.f_down(proxy).reshape(b, self.key_channels, -1).permute(0, 2, 1)  # (b, k, kc)
        # With one class the softmax runs over a single key, so it is exactly 1; computed anyway so
        # the graph stays the official one (and would stay correct for more classes).
        sim = F.softmax(torch.matmul(query, key) * (self.key_channels**-0.5), dim=-1)
        context = torch.matmul(sim, value).permute(0, 2, 1)  # (b, kc, hw)
        context = context.reshape(b, self.key_channels, x.shape[2], x.shape[3])
        return self.f_up(context)


class SpatialOCRModule(nn.Module):
    def __init__(self, in_channels: int, key_channels: int, out_channels: int, dropout: float = 0.05) -> None:
        super().__init__()
        self.object_context_block = ObjectAttentionBlock2D(in_channels, key_channels)
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(2 * in_channels, out_channels, 1, bias=False),
            nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)),
            nn.Dropout2d(dropout),
        )

    def forward(self, feats: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        context = self.object_context_block(feats, proxy)
        return self.conv_bn_dropout(torch.cat([context, feats], dim=1))


class HighResolutionNet(nn.Module):
    """HRNet-V2 backbone with the OCR head (one class). ``small`` is the W18-small layout: 2 blocks per
    branch and 1/3/2 modules in stages 2/3/4 (full: 4 blocks, 1/4/3 modules)."""

    def __init__(self, width: int, ocr_width: int, small: bool, num_classes: int = 1) -> None:
        super().__init__()
        num_blocks = 2 if small else 4
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _make_blocks(Bottleneck, 64, 64, num_blocks)

        ch2 = [width, 2 * width]
        ch3 = ch2 + [4 * width]
        ch4 = ch3 + [8 * width]
        self.transition1 = _make_transition([64 * Bottleneck.expansion], ch2)
        modules = (1, 3, 2) if small else (1, 4, 3)
        self.stage2 = nn.Sequential(*[HighResolutionModule(ch2, num_blocks) for _ in range(modules[0])])
        self.transition2 = _make_transition(ch2, ch3)
        self.stage3 = nn.Sequential(*[HighResolutionModule(ch3, num_blocks) for _ in range(modules[1])])
        self.transition3 = _make_transition(ch3, ch4)
        self.stage4 = nn.Sequential(*[HighResolutionModule(ch4, num_blocks) for _ in range(modules[2])])

        last_channels = sum(ch4)
        mid = 2 * ocr_width
        self.conv3x3_ocr = nn.Sequential(
            nn.Conv2d(last_channels, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
        )
        self.ocr_gather_head = SpatialGatherModule()
        self.ocr_distri_head = SpatialOCRModule(mid, ocr_width, mid)
        self.cls_head = nn.Conv2d(mid, num_classes, 1)
        self.aux_head = nn.Sequential(
            nn.Conv2d(last_channels, last_channels, 1),
            nn.BatchNorm2d(last_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(last_channels, num_classes, 1),
        )

    @staticmethod
    def _run_stage(
        transition: nn.ModuleList, stage: nn.Sequential, xs: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        inputs = []
        for i, t in enumerate(transition):
            # Branches beyond the previous stage's count are grown from its last (lowest-res) output.
            src = xs[min(i, len(xs) - 1)]
            inputs.append(src if t is None else t(src))
        for module in stage:
            inputs = module(inputs)
        return inputs

    def forward(
        self, x: torch.Tensor, additional_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        # Click/prev-mask features join at 1/2 resolution, between the two stem convs.
        x = x + additional_features
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)

        xs = self._run_stage(self.transition1, self.stage2, [x])
        xs = self._run_stage(self.transition2, self.stage3, xs)
        xs = self._run_stage(self.transition3, self.stage4, xs)
        feats = torch.cat([xs[0]] + [_upsample_to(t, xs[0]) for t in xs[1:]], dim=1)

        out_aux = self.aux_head(feats)
        feats = self.conv3x3_ocr(feats)
        context = self.ocr_gather_head(feats, out_aux)
        feats = self.ocr_distri_head(feats, context)
        out = self.cls_head(feats)
        return out, out_aux, feats


class HRNetModel(FocalClickBase):
    """FocalClick HRNet-OCR Segmentor (+ Refiner). Defaults are the W18-small S1 variant."""

    def __init__(
        self, width: int = 18, ocr_width: int = 48, small: bool = True, pipeline_version: str = "s1"
    ) -> None:
        super().__init__(pipeline_version)
        # Registration order is the checkpoint key order: maps_transform, feature_extractor, refiner.
        self.maps_transform = nn.Sequential(
            nn.Conv2d(3, 16, 1),
            nn.LeakyReLU(negative_slope=0.2),
            nn.Conv2d(16, 64, 3, stride=2, padding=1),
            ScaleLayer(init_value=0.05, lr_mult=1.0),
        )
        self.feature_extractor = HighResolutionNet(width=width, ocr_width=ocr_width, small=small)
        self._init_refiner(2 * ocr_width, with_feature_gate=False)

    def backbone_forward(
        self, image: torch.Tensor, coord_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.feature_extractor(image, self.maps_transform(coord_features))
