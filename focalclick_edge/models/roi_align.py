"""RoIAlign (torchvision semantics, aligned=True, adaptive sampling) as two interpolation matrices.

FocalClick's boxes always lie inside the 256 frame and their size never exceeds the output size, so
torchvision's adaptive grid ``ceil(roi / out)`` is one sample per bin. Under that condition the op is
separable: ``out = Wy @ X @ Wx^T``. Written with plain matmuls it exports to any ONNX opset and runs
identically in ONNX Runtime and OpenVINO, with no torchvision (whose CPU wheel is broken here).
"""
from __future__ import annotations

import torch


def _axis_weights(start: torch.Tensor, end: torch.Tensor, out: int, size: int, scale: float) -> torch.Tensor:
    """(B, out, size) bilinear weights of one axis, following torchvision's CPU kernel rules."""
    start = start * scale - 0.5
    end = end * scale - 0.5
    bin_size = (end - start) / out  # (B,)
    idx = torch.arange(out, dtype=start.dtype, device=start.device)
    pos = start[:, None] + (idx[None, :] + 0.5) * bin_size[:, None]  # (B, out)
    valid = ((pos >= -1.0) & (pos <= float(size))).to(pos.dtype)
    pos = pos.clamp(min=0.0)
    low = torch.floor(pos)
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    frac = torch.where(at_edge, torch.zeros_like(pos), pos - low)
    grid = torch.arange(size, dtype=start.dtype, device=start.device)[None, None, :]
    w = (grid == low[..., None]).to(pos.dtype) * (1.0 - frac)[..., None]
    w = w + (grid == high[..., None]).to(pos.dtype) * frac[..., None]
    return w * valid[..., None]


def roi_align(
    x: torch.Tensor, rois: torch.Tensor, output_size: tuple[int, int], spatial_scale: float
) -> torch.Tensor:
    """torchvision.ops.roi_align(x, rois, output_size, spatial_scale, sampling_ratio=-1, aligned=True)
    for one RoI per image: rois (B,5) = [batch_index, x1, y1, x2, y2]; batch index i is image i."""
    oh, ow = int(output_size[0]), int(output_size[1])
    h, w = x.shape[-2], x.shape[-1]
    wy = _axis_weights(rois[:, 2], rois[:, 4], oh, h, spatial_scale)  # (B, oh, h)
    wx = _axis_weights(rois[:, 1], rois[:, 3], ow, w, spatial_scale)  # (B, ow, w)
    out = torch.matmul(wy[:, None], x)  # (B, C, oh, w)
    return torch.matmul(out, wx[:, None].transpose(-1, -2))  # (B, C, oh, ow)
