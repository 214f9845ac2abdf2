"""The SegFormer decode head, refactored for inference: same function, a fraction of the arithmetic.

The official head projects each backbone stage c1..c4 to ``D`` channels (a per-pixel Linear), upsamples
c2..c4 to the c1 grid (bilinear), concatenates them (4D channels) and fuses them with a 1x1 conv
(4D -> D, no bias) + BatchNorm + ReLU. That fuse conv runs at the c1 resolution on 4D channels and is most
of the Segmentor's arithmetic (b0: 268 of ~430 M MACs at 128x128; b3: 9.7 of 12.7 G MACs at 256x256).

Everything between the stage outputs and the ReLU is linear, and a bilinear resize is a per-channel
convex combination of pixels (weights sum to one), so it commutes with any per-pixel affine map:

    BN(W [up(L4 c4), up(L3 c3), up(L2 c2), L1 c1]) = sum_i up(A_i c_i + a_i) + t,
    A_i = s * W_i @ L_i.weight,  a_i = s * W_i @ L_i.bias,  s, t from BN (eval),

where W_i is W's block for stage i. Each stage then needs one 1x1 conv at its own resolution
(c4 at 1/32 of the input) and only the D-channel sums are upsampled. The fused weights are formed in
float64; the result equals the official head to float32 rounding, which the export checks against the
unmodified PyTorch model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _fold(w_block: torch.Tensor, linear: nn.Linear, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    weight = scale[:, None] * (w_block @ linear.weight.double())
    bias = scale * (w_block @ linear.bias.double())
    return weight, bias


class FoldedSegFormerHead(nn.Module):
    """Drop-in for ``models.segformer.SegFormerHead`` in eval mode: ``(logits, fused feature)``."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        fuse = head.linear_fuse
        dim = fuse.conv.out_channels
        bn = fuse.bn
        with torch.no_grad():
            w = fuse.conv.weight[:, :, 0, 0].double()
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            shift = bn.bias.double() - bn.running_mean.double() * scale
            # The official concatenation order is c4, c3, c2, c1.
            blocks = dict(zip(("c4", "c3", "c2", "c1"), w.split(dim, dim=1), strict=True))
            self.proj = nn.ModuleDict()
            for name in ("c1", "c2", "c3", "c4"):
                linear = getattr(head, f"linear_{name}").proj
                weight, bias = _fold(blocks[name], linear, scale)
                if name == "c1":
                    bias = bias + shift  # the BN shift once, on the term that is not resized
                conv = nn.Conv2d(linear.in_features, dim, 1)
                conv.weight.copy_(weight.float()[:, :, None, None])
                conv.bias.copy_(bias.float())
                self.proj[name] = conv
        self.linear_pred = head.linear_pred

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        c1, c2, c3, c4 = feats
        size = c1.shape[2:]
        z = self.proj["c1"](c1)
        for name, c in (("c2", c2), ("c3", c3), ("c4", c4)):
            # align_corners=False, as mmseg's resize in the official head.
            z = z + F.interpolate(self.proj[name](c), size=size, mode="bilinear", align_corners=False)
        fused = F.relu(z)
        return self.linear_pred(fused), fused
