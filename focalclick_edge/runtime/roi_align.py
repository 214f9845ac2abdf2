"""torchvision's RoIAlign (``aligned=True``, adaptive sampling) for one box, in NumPy.

Sample positions, range checks and bilinear taps follow the CPU kernel's float32 arithmetic, so the
integer tap choices are identical; sums are accumulated in another order, so results agree to float32
rounding (~1e-7 relative), not bit for bit.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["roi_align_aligned"]


def _roi_axis_samples(start: np.float32, end: np.float32, n_out: int, size: int,
                      sampling_ratio: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One axis of the torchvision CPU RoIAlign kernel: ``(grid, low, high, w_low, w_high)``.

    There are ``n_out * grid`` samples, output bin-major. Sample positions, range checks and bilinear
    taps use the kernel's float32 arithmetic and operation order, so the integer tap choices
    (``int(y)``, the ``[-1, size]`` drop, the ``size-1`` clamp) are identical. A dropped sample gets
    zero weights (the kernel's 2-D drop -- either coordinate out of range -- is the product of the
    per-axis indicators, so per-axis zeros reproduce it). ``grid == 0`` means an empty RoI.
    """
    f32 = np.float32
    roi_len = f32(end - start)
    bin_size = f32(roi_len / f32(n_out))
    grid = sampling_ratio if sampling_ratio > 0 else int(math.ceil(roi_len / f32(n_out)))
    if grid <= 0:
        empty_i, empty_w = np.zeros(0, np.int64), np.zeros(0, f32)
        return 0, empty_i, empty_i, empty_w, empty_w
    p = np.repeat(np.arange(n_out, dtype=f32), grid)
    i = np.tile(np.arange(grid, dtype=f32) + f32(0.5), n_out)
    v = (start + p * bin_size) + (i * bin_size) / f32(grid)
    valid = (v >= -1.0) & (v <= size)
    v = np.where(v <= 0, f32(0), v).astype(f32)
    low = v.astype(np.int64)
    top = low >= size - 1
    low = np.where(top, size - 1, low)
    high = np.where(top, low, low + 1)
    v = np.where(top, low.astype(f32), v)
    w_high = np.where(valid, v - low.astype(f32), f32(0)).astype(f32)
    w_low = np.where(valid, f32(1) - w_high, f32(0)).astype(f32)
    return grid, low, high, w_low, w_high


def _unit_offset(samples: tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], size: int) -> int | None:
    """``k`` when one axis samples exactly pixels ``k, k+1, ...`` with weight 1 each (then the RoIAlign of
    that axis is a plain slice), else None."""
    grid, low, _, w_low, w_high = samples
    n = len(low)
    if grid != 1 or n == 0 or low[0] + n > size:
        return None
    if np.any(w_high != 0) or np.any(w_low != 1) or np.any(low != low[0] + np.arange(n)):
        return None
    return int(low[0])


def _roi_axis_matrix(samples: tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], n_out: int,
                     size: int) -> np.ndarray:
    """One axis of the RoIAlign kernel (``_roi_axis_samples``) as an ``(n_out, size)`` interpolation matrix.

    Each row is divided by its grid count, so the product of the two matrices divides by
    ``grid_h * grid_w``; with no samples (empty RoI) the matrix is zero, which matches the kernel's
    ``max(count, 1)`` division of an empty sum.
    """
    grid, low, high, w_low, w_high = samples
    if grid <= 0:
        return np.zeros((n_out, size), np.float32)
    base = np.repeat(np.arange(n_out), grid) * size
    # bincount is a fast scatter-add (np.add.at is ~10x slower); float64 accumulation, then float32.
    idx = np.concatenate([base + low, base + high])
    wts = np.concatenate([w_low, w_high]).astype(np.float64) / grid
    return np.bincount(idx, wts, minlength=n_out * size).astype(np.float32).reshape(n_out, size)


def roi_align_aligned(feature: np.ndarray, box_xyxy: Sequence[float], out_hw: tuple[int, int],
                      spatial_scale: float, sampling_ratio: int = -1) -> np.ndarray:
    """``torchvision.ops.roi_align(feature[None], [[0, *box]], out_hw, spatial_scale, sampling_ratio,
    aligned=True)[0]`` for one box, following the CPU kernel's rules exactly:

    box * scale - 0.5; bin = roi / out; adaptive grid ``ceil(roi / out)`` per axis when
    ``sampling_ratio <= 0``; samples with coordinate < -1 or > size contribute 0; coordinates <= 0
    clamp to 0; a low index >= size-1 clamps to size-1; the sum is divided by ``max(gh * gw, 1)``.

    ``feature`` is ``(C, H, W)`` float32 and ``box_xyxy`` is in the frame the feature map was computed
    from (``spatial_scale`` maps it onto the map); returns ``(C, oh, ow)`` float32.

    For a single-channel map with one sample per bin in both axes (the coarse logits in every
    FocalClick call) it is two separable two-tap gathers, like the resize. Otherwise it is ``Wy @ F @ Wx^T``
    with per-axis interpolation matrices restricted to the rows and columns the RoI touches. Sums are
    accumulated in a different order than the kernel, so results agree to float32 rounding (~1e-7
    relative), not bit for bit.
    """
    f = np.asarray(feature, dtype=np.float32)
    c, h, w = f.shape
    oh, ow = int(out_hw[0]), int(out_hw[1])
    f32 = np.float32
    s, off = f32(spatial_scale), f32(0.5)
    bx1, by1, bx2, by2 = (f32(v) for v in box_xyxy)
    ys, ye, xs, xe = by1 * s - off, by2 * s - off, bx1 * s - off, bx2 * s - off
    ay = _roi_axis_samples(ys, ye, oh, h, sampling_ratio)
    ax = _roi_axis_samples(xs, xe, ow, w, sampling_ratio)
    if ay[0] <= 0 or ax[0] <= 0:
        return np.zeros((c, oh, ow), np.float32)
    y0, x0 = _unit_offset(ay, h), _unit_offset(ax, w)
    if y0 is not None and x0 is not None:
        # Every sample on a pixel centre, one per bin, one pixel apart (the Focus Crop is the Target Crop,
        # as on most early clicks): the kernel returns those pixels as they are.
        return f[:, y0:y0 + oh, x0:x0 + ow].copy()
    if c == 1 and ay[0] == 1 and ax[0] == 1:
        # A single-channel map (the coarse logits) with one sample per bin -- always the case in
        # FocalClick, whose RoI is never larger than the output. Two-tap gathers, as in the resize, are
        # cheaper than one large matrix product, which OpenBLAS would also split over threads that then
        # compete with the inference backend's threads for the same cores (measured 4 -> 50 ms with
        # ORT's spinning workers on 2 cores). Many-channel features stay on the batched product: each
        # per-channel GEMM is small (single-threaded in BLAS) and 3x faster than gathers there.
        _, ylo, yhi, wyl, wyh = ay
        _, xlo, xhi, wxl, wxh = ax
        c0, c1 = int(min(xlo.min(), xhi.min())), int(max(xlo.max(), xhi.max())) + 1
        sub = f[:, :, c0:c1]  # only the columns the RoI touches
        rows = np.take(sub, ylo, axis=1)
        rows *= wyl[:, None]
        tmp = np.take(sub, yhi, axis=1)
        tmp *= wyh[:, None]
        rows += tmp
        out = np.take(rows, xlo - c0, axis=2)
        out *= wxl
        tmp = np.take(rows, xhi - c0, axis=2)
        tmp *= wxh
        out += tmp
        return out
    wy = _roi_axis_matrix(ay, oh, h)
    wx = _roi_axis_matrix(ax, ow, w)
    ry, rx = np.flatnonzero(wy.any(axis=0)), np.flatnonzero(wx.any(axis=0))
    if ry.size == 0 or rx.size == 0:
        return np.zeros((c, oh, ow), np.float32)
    r0, r1, c0, c1 = ry[0], ry[-1] + 1, rx[0], rx[-1] + 1
    tmp = np.matmul(wy[:, r0:r1], f[:, r0:r1, c0:c1])  # (C, oh, cols)
    return np.matmul(tmp, wx[:, c0:c1].T)
