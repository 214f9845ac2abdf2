"""Real-image tensors for checking exported graphs against PyTorch (and for the model card)."""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..assets import sample_image_paths
from ..variants import Variant


def _disks(points_yx: list[tuple[float, float]], size: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.zeros((size, size), np.float32)
    for y, x in points_yx:
        out[(yy - y) ** 2 + (xx - x) ** 2 <= radius * radius] = 1.0
    return out


def real_verify_inputs(model: Any, variant: Variant) -> dict[str, dict[str, np.ndarray]]:
    """Segmentor and Refiner inputs built from the bundled sample image the way a second click of a
    session builds them: a Target Crop around the object, a soft previous mask, one click of each sign."""
    import torch
    import torch.nn.functional as F

    from ..models.roi_align import roi_align

    img_path, gt_path = sample_image_paths()
    rgb = cv2.cvtColor(cv2.imread(str(img_path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    gt = (cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE) > 127).astype(np.float32)
    ys, xs = np.nonzero(gt)
    cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    hh, hw = 0.7 * (ys.max() - ys.min() + 1), 0.7 * (xs.max() - xs.min() + 1)
    h, w = gt.shape
    y1, y2 = int(max(0, cy - hh)), int(min(h, cy + hh))
    x1, x2 = int(max(0, cx - hw)), int(min(w, cx + hw))
    prev = cv2.GaussianBlur(gt, (0, 0), 3.0) * 0.9
    full = torch.from_numpy(np.concatenate([rgb, prev[..., None]], axis=2)).permute(2, 0, 1)[None]
    n = variant.net_input_size
    image_nd = F.interpolate(full[:, :, y1:y2, x1:x2], size=(n, n), mode="bilinear", align_corners=True)
    dist = cv2.distanceTransform(np.pad(gt, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    py, px = np.unravel_index(int(np.argmax(dist)), dist.shape)
    ny, nx = (y1 + y2) // 2 if gt[(y1 + y2) // 2, x1].item() == 0 else y1, x1
    sy, sx = n / (y2 - y1), n / (x2 - x1)
    r = variant.segmentor_disk_radius
    click_maps = np.stack(
        [_disks([((py - y1) * sy, (px - x1) * sx)], n, r), _disks([((ny - y1) * sy, (nx - x1) * sx)], n, r)]
    )[None]
    clicks_t = torch.from_numpy(click_maps.astype(np.float32))
    with torch.no_grad():
        out = model(image_nd, clicks_t)
    # The exported Segmentor takes the crop at the backbone size (S1: the official 256 -> 128 resize
    # is done by the runtime), see export/graphs.py.
    s = variant.segmentor_input_size
    if s != n:
        image_nd = F.interpolate(image_nd, size=(s, s), mode="bilinear", align_corners=True)
        clicks_t = F.interpolate(clicks_t, size=(s, s), mode="bilinear", align_corners=True)
    image_nd_np = image_nd.numpy().astype(np.float32)
    click_maps = clicks_t.numpy()
    logits, feature = out["instances"], out["feature"]
    # A focus box of half the target crop around the positive click, as in a later click.
    fy, fx = (py - y1) * sy, (px - x1) * sx
    roi = torch.tensor(
        [[0.0, max(0.0, fx - n / 4), max(0.0, fy - n / 4), min(n, fx + n / 4), min(n, fy + n / 4)]],
        dtype=torch.float32,
    )
    rs = variant.refiner_input_size
    gy1 = int(y1 + roi[0, 2] / sy)
    gy2 = int(y1 + roi[0, 4] / sy)
    gx1 = int(x1 + roi[0, 1] / sx)
    gx2 = int(x1 + roi[0, 3] / sx)
    image_focus = F.interpolate(full[:, :3, gy1:gy2, gx1:gx2], size=(rs, rs), mode="bilinear", align_corners=True)
    with torch.no_grad():
        cropped_feature = roi_align(feature, roi, tuple(feature.shape[-2:]), feature.shape[-1] / n)
        cropped_logits = roi_align(logits, roi, (rs, rs), 1.0)
    focus_click = ((py - gy1) * rs / (gy2 - gy1), (px - gx1) * rs / (gx2 - gx1))
    click_focus = np.stack([_disks([focus_click], rs, 5), np.zeros((rs, rs), np.float32)])[None]
    return {
        "segmentor": {"image_nd": image_nd_np, "click_maps": click_maps.astype(np.float32)},
        "refiner": {
            "image_focus": image_focus.numpy().astype(np.float32),
            "click_maps_focus": click_focus.astype(np.float32),
            "cropped_feature": cropped_feature.numpy().astype(np.float32),
            "cropped_logits": cropped_logits.numpy().astype(np.float32),
        },
    }
