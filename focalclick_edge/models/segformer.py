"""FocalClick SegFormer Segmentor (MiT-B0 / MiT-B3 encoder + SegFormer head).

Module and parameter names follow the official ClickSEG ``SegFormerModel`` so that official
checkpoints load with ``strict=True``. Numerics follow it too: LayerNorm eps 1e-6 in the blocks and
stage norms but 1e-5 in the patch embeddings and the attention's spatial-reduction norm, exact-erf
GELU, and the click features added to the stage-1 output only after that output was handed to the
decoder.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import FocalClickBase

__all__ = ["MiTConfig", "MIT_CONFIGS", "MixVisionTransformer", "SegFormerHead", "SegFormerModel"]

# The blocks and stage norms of MiT use eps 1e-6; everything else keeps PyTorch's 1e-5.
_BLOCK_LN_EPS = 1e-6


@dataclass(frozen=True)
class MiTConfig:
    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    decoder_dim: int
    num_heads: tuple[int, int, int, int] = (1, 2, 5, 8)
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)
    mlp_ratio: int = 4


MIT_CONFIGS: dict[str, MiTConfig] = {
    "b0": MiTConfig(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2), decoder_dim=256),
    "b3": MiTConfig(embed_dims=(64, 128, 320, 512), depths=(3, 4, 18, 3), decoder_dim=512),
}


class ScaleLayer(nn.Module):
    """ISModel's learnable scalar gain; only here so the unused ``maps_transform`` weights load."""

    def __init__(self, init_value: float = 0.05) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.abs()


def _tokens_to_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[2], x.shape[3]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class Attention(nn.Module):
    """Efficient self-attention: keys/values come from a strided-conv reduced map (sr_ratio > 1)."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.sr_ratio = sr_ratio
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        if self.sr_ratio > 1:
            x = self.norm(self.sr(_tokens_to_map(x, h, w)).flatten(2).transpose(1, 2))
        kv = self.kv(x).reshape(b, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        # Plain matmul + softmax (not SDPA) exports to a simple ONNX graph that quantizers handle.
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class DWConv(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.dwconv(_tokens_to_map(x, h, w)).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()  # exact erf form, as in the official MiT
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), h, w)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, sr_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=_BLOCK_LN_EPS)
        self.attn = Attention(dim, num_heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=_BLOCK_LN_EPS)
        self.mlp = Mlp(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x), h, w)


class MixVisionTransformer(nn.Module):
    """MiT encoder with ClickSEG's side patch embedding for the 3 coordinate channels."""

    def __init__(self, cfg: MiTConfig, in_chans: int = 3, side_chans: int = 3) -> None:
        super().__init__()
        dims = cfg.embed_dims
        self.patch_embed1 = OverlapPatchEmbed(in_chans, dims[0], 7, 4)
        self.patch_embed2 = OverlapPatchEmbed(dims[0], dims[1], 3, 2)
        self.patch_embed3 = OverlapPatchEmbed(dims[1], dims[2], 3, 2)
        self.patch_embed4 = OverlapPatchEmbed(dims[2], dims[3], 3, 2)
        self.patch_embed_side1 = OverlapPatchEmbed(side_chans, dims[0], 7, 4)
        for i in range(4):
            blocks = nn.ModuleList(
                Block(dims[i], cfg.num_heads[i], cfg.mlp_ratio, cfg.sr_ratios[i])
                for _ in range(cfg.depths[i])
            )
            setattr(self, f"block{i + 1}", blocks)
            setattr(self, f"norm{i + 1}", nn.LayerNorm(dims[i], eps=_BLOCK_LN_EPS))

    def _stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        tokens, h, w = getattr(self, f"patch_embed{i}")(x)
        for blk in getattr(self, f"block{i}"):
            tokens = blk(tokens, h, w)
        return _tokens_to_map(getattr(self, f"norm{i}")(tokens), h, w)

    def forward(self, x: torch.Tensor, side: torch.Tensor) -> list[torch.Tensor]:
        c1 = self._stage(1, x)
        side_tokens, h, w = self.patch_embed_side1(side)
        # The decoder gets c1 without click information; only stages 2-4 see the clicks.
        x = c1 + _tokens_to_map(side_tokens, h, w)
        c2 = self._stage(2, x)
        c3 = self._stage(3, c2)
        c4 = self._stage(4, c3)
        return [c1, c2, c3, c4]


class MLPProj(nn.Module):
    """Per-pixel Linear on a feature map (SegFormer head's ``MLP``)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        return _tokens_to_map(self.proj(x.flatten(2).transpose(1, 2)), h, w)


class ConvBNReLU(nn.Module):
    """mmcv ``ConvModule`` with BN and ReLU: children named ``conv`` (no bias), ``bn``, ``activate``."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class SegFormerHead(nn.Module):
    def __init__(self, in_dims: tuple[int, int, int, int], dim: int, num_classes: int = 1) -> None:
        super().__init__()
        self.linear_c4 = MLPProj(in_dims[3], dim)
        self.linear_c3 = MLPProj(in_dims[2], dim)
        self.linear_c2 = MLPProj(in_dims[1], dim)
        self.linear_c1 = MLPProj(in_dims[0], dim)
        self.linear_fuse = ConvBNReLU(4 * dim, dim)
        self.linear_pred = nn.Conv2d(dim, num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits, fused feature), both at the c1 resolution."""
        c1, c2, c3, c4 = feats
        size = c1.shape[2:]

        def up(t: torch.Tensor) -> torch.Tensor:
            # mmseg's resize with align_corners=False (unlike the rest of FocalClick).
            return F.interpolate(t, size=size, mode="bilinear", align_corners=False)

        fused = self.linear_fuse(
            torch.cat(
                [up(self.linear_c4(c4)), up(self.linear_c3(c3)), up(self.linear_c2(c2)), self.linear_c1(c1)],
                dim=1,
            )
        )
        # Dropout2d of the official head is the identity at eval time, so it is left out.
        return self.linear_pred(fused), fused


class SegFormerNet(nn.Module):
    def __init__(self, cfg: MiTConfig) -> None:
        super().__init__()
        self.backbone = MixVisionTransformer(cfg)
        self.decode_head = SegFormerHead(cfg.embed_dims, cfg.decoder_dim)

    def forward(self, image: torch.Tensor, coord_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode_head(self.backbone(image, coord_features))


class SegFormerModel(FocalClickBase):
    """ClickSEG ``SegFormerModel``: the FocalClick Segmentor with a MiT backbone, plus the Refiner."""

    def __init__(self, model_version: str = "b0", pipeline_version: str = "s1") -> None:
        super().__init__(pipeline_version)
        if model_version not in MIT_CONFIGS:
            choices = ", ".join(MIT_CONFIGS)
            raise ValueError(f"unknown SegFormer version {model_version!r}; choose one of: {choices}")
        self.model_version = model_version
        cfg = MIT_CONFIGS[model_version]
        # Unused in forward, but official checkpoints carry it (first in the state dict).
        self.maps_transform = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(16, 32, 3, padding=1),
            ScaleLayer(),
        )
        self.feature_extractor = SegFormerNet(cfg)
        self._init_refiner(cfg.decoder_dim, with_feature_gate=True)

    def backbone_forward(
        self, image: torch.Tensor, coord_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, feature = self.feature_extractor(image, coord_features)
        # SegFormer has no auxiliary head; the official model returns the same map twice.
        return logits, logits, feature
