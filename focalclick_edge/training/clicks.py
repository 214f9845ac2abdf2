"""Click simulation for training, following the RITM protocol that FocalClick trains with.

* Initial clicks (``MultiPointSampler``): ``1 + k`` positive clicks and ``k'`` negative ones, with
  ``P(k) ~ gamma**k`` (gamma 0.8, at most 24 of each). The first positive click sits near the object
  centre (the maximum of its distance transform), the others anywhere inside the object; negative
  clicks fall mostly in a band around the object (where users actually click) and sometimes anywhere
  in the background.
* Iterative clicks (``get_next_points``): the model's own prediction is thresholded at 0.49 and the new
  click goes to a random pixel of the larger error region that is deeper than half its maximum
  distance-transform value.

Points are rows ``(y, x, sign)`` in the 256 Target-Crop frame; sign 1 positive, 0 negative, -1 padding.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

MAX_POINTS = 24
GAMMA = 0.8


def _decay_probs(n: int, gamma: float) -> np.ndarray:
    p = gamma ** np.arange(n, dtype=np.float64)
    return p / p.sum()


_POS_PROBS = _decay_probs(MAX_POINTS, GAMMA)  # for k extra positives: 0..23
_NEG_PROBS = _decay_probs(MAX_POINTS + 1, GAMMA)  # 0..24 negatives


def _dist_inside(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask.astype(np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]


def _pick(rng: np.random.Generator, region: np.ndarray, n: int) -> np.ndarray:
    ys, xs = np.nonzero(region)
    if len(ys) == 0 or n <= 0:
        return np.zeros((0, 2), np.float32)
    idx = rng.choice(len(ys), size=min(n, len(ys)), replace=False)
    return np.stack([ys[idx], xs[idx]], axis=1).astype(np.float32)


def sample_initial_clicks(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 3) initial clicks for one binary mask (H, W)."""
    obj = mask > 0.5
    dt = _dist_inside(obj)
    n_pos = 1 + int(rng.choice(MAX_POINTS, p=_POS_PROBS))
    n_neg = int(rng.choice(MAX_POINTS + 1, p=_NEG_PROBS))
    # First click: near the centre, with a little freedom so it is not always the same pixel.
    first = _pick(rng, dt >= 0.85 * dt.max(), 1)
    inner = dt >= min(4.0, 0.5 * dt.max())
    others = _pick(rng, inner, n_pos - 1)
    pos = np.concatenate([first, others])
    bg = ~obj
    band_out = int(rng.integers(10, 41))
    dil_far = cv2.dilate(obj.astype(np.uint8), np.ones((2 * band_out + 1,) * 2, np.uint8)) > 0
    dil_near = cv2.dilate(obj.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    band = dil_far & ~dil_near
    n_band = int(rng.binomial(n_neg, 0.7))
    neg = np.concatenate([_pick(rng, band, n_band), _pick(rng, bg & ~dil_near, n_neg - n_band)])
    rows = [np.concatenate([pos, np.ones((len(pos), 1), np.float32)], 1),
            np.concatenate([neg, np.zeros((len(neg), 1), np.float32)], 1)]
    return np.concatenate(rows).astype(np.float32)


def pad_points(points: list[np.ndarray]) -> torch.Tensor:
    """Stack per-sample (N_i, 3) clicks into (B, max N, 3) with -1 padding rows."""
    n = max(1, max(len(p) for p in points))
    out = np.full((len(points), n, 3), -1.0, np.float32)
    for i, p in enumerate(points):
        out[i, :len(p)] = p
    return torch.from_numpy(out)


def next_clicks(prob: np.ndarray, gt: np.ndarray, rng: np.random.Generator, thresh: float = 0.49
                ) -> list[np.ndarray | None]:
    """One corrective click per sample (``None`` when the prediction has no error left).

    prob, gt: (B, H, W) probabilities and binary targets."""
    out: list[np.ndarray | None] = []
    for p, g in zip(prob, gt > 0.5, strict=True):
        fn = _dist_inside(g & (p < thresh))
        fp = _dist_inside(~g & (p > thresh))
        fn_max, fp_max = float(fn.max()), float(fp.max())
        if max(fn_max, fp_max) <= 0:
            out.append(None)
            continue
        positive = fn_max > fp_max
        dt = fn if positive else fp
        yx = _pick(rng, dt > max(fn_max, fp_max) / 2.0, 1)
        out.append(np.array([yx[0, 0], yx[0, 1], 1.0 if positive else 0.0], np.float32))
    return out


def disk_maps(points: torch.Tensor, size: tuple[int, int], radius: float) -> torch.Tensor:
    """(B, 2, H, W) click disks as the official ``DistMaps(use_disks=True)``: 1 where d^2 <= r^2.

    Batched in torch: the squared distance is separable (dy^2 + dx^2), so each point costs one
    (B, H, W) broadcast add; a running minimum per sign keeps memory at O(B*H*W)."""
    b = points.shape[0]
    h, w = size
    dev = points.device
    ys = torch.arange(h, device=dev, dtype=torch.float32)
    xs = torch.arange(w, device=dev, dtype=torch.float32)
    big = torch.full((b, h, w), 1e6, device=dev)
    best = [big, big.clone()]
    for j in range(points.shape[1]):
        y, x, sign = points[:, j, 0], points[:, j, 1], points[:, j, 2]
        d2 = (ys[None, :] - y[:, None]).square()[:, :, None] + (xs[None, :] - x[:, None]).square()[:, None, :]
        invalid = (sign < 0) | (torch.maximum(y, x) < 0)
        d2 = torch.where(invalid[:, None, None], big, d2)
        is_pos = (sign > 0)[:, None, None]
        best[0] = torch.where(is_pos, torch.minimum(best[0], d2), best[0])
        best[1] = torch.where(is_pos, best[1], torch.minimum(best[1], d2))
    r2 = float(radius) ** 2
    return torch.stack([(best[0] <= r2).float(), (best[1] <= r2).float()], dim=1)


def points_to_focus(points: torch.Tensor, rois: torch.Tensor, size: int = 256) -> torch.Tensor:
    """Map Target-Crop clicks into each sample's Focus Crop frame, as the official ``_get_refine``:
    ``(p - [y1, x1]) * size / [y2 - y1, x2 - x1]``; padding rows stay padding.

    rois: (B, 4) = x1, y1, x2, y2 in the Target-Crop frame."""
    x1, y1, x2, y2 = rois[:, 0:1], rois[:, 1:2], rois[:, 2:3], rois[:, 3:4]
    out = points.clone()
    out[..., 0] = (points[..., 0] - y1) * size / (y2 - y1)
    out[..., 1] = (points[..., 1] - x1) * size / (x2 - x1)
    pad = points[..., 2] < 0
    out[pad] = -1.0
    return out
