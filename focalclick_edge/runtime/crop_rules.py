"""The FocalClick crop rules, in NumPy + OpenCV only: click disks, Zoom-In (Target Crop), Focus Crop,
the click mappings between frames, and Progressive Merge.

Everything here is pure (no I/O, no torch, no inference backend) and reproduces the official code's
integer results *exactly* -- boxes, masks and disk maps are compared bit for bit against the recorded
official outputs in ``tests/fixtures/reference``. Every constant of the rules (expansions, thresholds,
the minimum mask size) comes from the ``PipelineConfig`` the caller passes: there are no hidden
defaults here (runtime/geometry.py binds the official values for code that compares with ClickSEG).

Conventions used throughout (they follow the official code, which mixes them):

* Points and clicks are ``(y, x)`` = (row, col): these are the internal frames of the official code;
  every public API of the package takes ``(x, y, positive)`` and converts once, in ``Session``.
* Zoom-In ("Target Crop") boxes are ``(rmin, rmax, cmin, cmax)`` with **inclusive** ends, as
  ``ZoomIn._object_roi`` stores them. ``global_roi`` is the same box with exclusive ends.
* Focus Crop boxes and ``global_roi`` are ``(y1, y2, x1, x2)`` with **exclusive** ends.

This module is on the per-click hot path: disks only touch a window around each point, and connected
components are found with a single ``cv2.floodFill`` from the click instead of labelling the whole image.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from ..optional_modules import optional_import
from .pipeline_config import PipelineConfig

cv2 = optional_import("cv2", "opencv-python-headless")

__all__ = [
    "Box4",
    "click_disks",
    "focus_crop_box",
    "focus_crop_box_from_masks",
    "focus_crop_box_in_window",
    "focus_roi_in_target_frame",
    "map_clicks_to_crop",
    "map_clicks_to_focus",
    "paper_merge_in_window",
    "paper_progressive_merge",
    "progressive_merge",
    "progressive_merge_in_window",
    "union_box",
    "zoom_in_box",
    "zoom_in_box_from_bbox",
    "zoom_in_global_roi",
]

Box4 = tuple[int, int, int, int]
Rect = tuple[int, int, int, int]  # OpenCV (x, y, w, h)


# --------------------------------------------------------------------------------------------------
# Clicks -> disk maps
# --------------------------------------------------------------------------------------------------
def click_disks(points_yx_pos: np.ndarray | Sequence[Sequence[float]], size_hw: tuple[int, int],
                radius: float, out: np.ndarray | None = None) -> np.ndarray:
    """Binary click disks as the official ``DistMaps(use_disks=True)`` draws them.

    ``points_yx_pos`` holds rows ``(y, x, is_positive)`` in the target frame (floats allowed);
    ``is_positive`` > 0 is a positive click, == 0 a negative one, < 0 a padding row. Returns
    ``(2, H, W)`` float32, channels ``[positive, negative]``, 1.0 where ``d^2 <= r^2`` on the integer
    grid (coordinates are not scaled: ``spatial_scale=1``).

    Exactness: the official code computes ``row - y`` into a float32 tensor (in float64 first when the
    points tensor is float64, as in the official evaluation loop) and then squares and adds in
    float32. Doing the subtraction in float64 and rounding once to float32 reproduces both the float32
    and the float64 points path bit for bit, so boundary pixels (d^2 == r^2) agree exactly.

    A point is invalid, as in DistMaps, when ``max(y, x) < 0``; a point with only one negative
    coordinate is still drawn (its disk may be partly visible).

    ``out``, a float32 ``(2, H, W)`` array, is cleared and drawn into (the per-click hot path reuses
    one input buffer per graph instead of allocating a new one).
    """
    h, w = int(size_hw[0]), int(size_hw[1])
    if out is None:
        out = np.zeros((2, h, w), np.float32)
    else:
        out[...] = 0.0
    pts = np.asarray(points_yx_pos, dtype=np.float64).reshape(-1, 3)
    r = float(radius)
    r2 = np.float32(r * r)
    for y, x, is_pos in pts:
        if is_pos < 0 or max(y, x) < 0:
            continue
        # Window with a 1 px margin so float32 rounding at the rim can never be clipped away.
        r0, r1 = max(math.floor(y - r) - 1, 0), min(math.ceil(y + r) + 1, h - 1)
        c0, c1 = max(math.floor(x - r) - 1, 0), min(math.ceil(x + r) + 1, w - 1)
        if r0 > r1 or c0 > c1:
            continue
        dy = (np.arange(r0, r1 + 1, dtype=np.float64) - y).astype(np.float32)
        dx = (np.arange(c0, c1 + 1, dtype=np.float64) - x).astype(np.float32)
        d2 = (dy * dy)[:, None] + (dx * dx)[None, :]  # float32, same rounding as the torch code
        out[0 if is_pos > 0 else 1, r0:r1 + 1, c0:c1 + 1][d2 <= r2] = 1.0
    return out


# --------------------------------------------------------------------------------------------------
# Bounding boxes
# --------------------------------------------------------------------------------------------------
def _as_u8(mask: np.ndarray) -> np.ndarray:
    """A uint8 view (no copy for contiguous bool) for OpenCV."""
    m = np.ascontiguousarray(mask)
    if m.dtype == np.bool_:
        return m.view(np.uint8)
    return (m != 0).astype(np.uint8)


def _bbox_inclusive(mask_u8: np.ndarray) -> Box4 | None:
    """``(rmin, rmax, cmin, cmax)`` of the non-zero pixels, or None when there are none."""
    x, y, bw, bh = cv2.boundingRect(mask_u8)
    if bw == 0 or bh == 0:
        return None
    return y, y + bh - 1, x, x + bw - 1


# --------------------------------------------------------------------------------------------------
# Zoom-In = Target Crop
# --------------------------------------------------------------------------------------------------
def zoom_in_box(prev_mask_bool: np.ndarray, clicks: Iterable[Sequence[float]], image_hw: tuple[int, int],
                cfg: PipelineConfig) -> Box4 | None:
    """The official Zoom-In object box ``(rmin, rmax, cmin, cmax)``, inclusive, or None for "no crop".

    ``prev_mask_bool`` is the previous mask: a bool array, or a probability map, which is then
    thresholded at ``cfg.target_prob_thresh`` (0.49) as ``ZoomIn`` does with ``_prev_probs``. In
    Progressive-Merge runs the official loop passes the merged bool mask here. ``clicks`` are rows
    ``(y, x, is_positive)`` in image pixels; rows with ``is_positive <= 0`` or negative coordinates
    (padding) are ignored, because the official code only paints positive clicks into the mask.

    Steps (``ZoomIn.transform`` + ``get_object_roi``): empty mask -> None; paint every positive click
    pixel; inclusive bbox; expand about the centre to ``cfg.target_expansion * (extent + 1)``, at least
    ``cfg.target_min_crop_size``; new ends ``int(round(centre -/+ size/2))`` with Python's half-to-even round;
    clamp to ``[0, H-1] x [0, W-1]``.

    What the caller must do to match the official predictor:

    * First click: no crop at all (``skip_clicks=1``) -- do not call this; use the full image.
    * None on a later click (the mask became empty): the official ``transform`` returns early **without
      resetting** ``_object_roi`` ("stale box" quirk). That click the Segmentor sees the *full* image
      (and its points are mapped with the full-image box), but the inverse paste, ``global_roi`` and
      hence the Refiner RoI and the Focus Crop intersection use the *previous* box, if there was one
      (the full-image prediction is squeezed into the stale box). The recorded session
      ``b0-s2/scratch2`` click 4 shows exactly this. With no earlier box, everything is full image.
    """
    mask = prev_mask_bool if prev_mask_bool.dtype == np.bool_ else prev_mask_bool > cfg.target_prob_thresh
    return zoom_in_box_from_bbox(_bbox_inclusive(_as_u8(mask)), clicks, image_hw, cfg)


def zoom_in_box_from_bbox(box: Box4 | None, clicks: Iterable[Sequence[float]], image_hw: tuple[int, int],
                          cfg: PipelineConfig) -> Box4 | None:
    """``zoom_in_box`` given the inclusive bounding box of the thresholded previous mask (None: empty);
    the Session keeps that box per tile of its map instead of thresholding the whole image."""
    if box is None:
        return None
    rmin, rmax, cmin, cmax = box
    h, w = int(image_hw[0]), int(image_hw[1])
    for y, x, is_pos in clicks:
        if is_pos > 0 and y >= 0 and x >= 0:
            # Painting the click pixel into the mask only ever grows the bbox to include it.
            yi, xi = int(y), int(x)
            rmin, rmax = min(rmin, yi), max(rmax, yi)
            cmin, cmax = min(cmin, xi), max(cmax, xi)
    rcenter = 0.5 * (rmin + rmax)
    ccenter = 0.5 * (cmin + cmax)
    expansion, min_crop_size = cfg.target_expansion, cfg.target_min_crop_size
    height = max(expansion * (rmax - rmin + 1), min_crop_size)
    width = max(expansion * (cmax - cmin + 1), min_crop_size)
    rmin = int(round(rcenter - 0.5 * height))
    rmax = int(round(rcenter + 0.5 * height))
    cmin = int(round(ccenter - 0.5 * width))
    cmax = int(round(ccenter + 0.5 * width))
    return max(rmin, 0), min(rmax, h - 1), max(cmin, 0), min(cmax, w - 1)


def zoom_in_global_roi(box: Box4 | None, image_hw: tuple[int, int]) -> Box4:
    """``predictor.global_roi`` for an inclusive Zoom-In box: exclusive ends; full image for None."""
    if box is None:
        return 0, int(image_hw[0]), 0, int(image_hw[1])
    rmin, rmax, cmin, cmax = box
    return rmin, rmax + 1, cmin, cmax + 1


def map_clicks_to_crop(clicks_yx: np.ndarray | Sequence[Sequence[float]], box: Box4,
                       out_size: int | tuple[int, int] | None = 256) -> np.ndarray:
    """Clicks ``(y, x)`` (extra columns ignored) mapped into the Segmentor frame of a Zoom-In box.

    ``box`` is the inclusive ``(rmin, rmax, cmin, cmax)``; pass ``(0, H-1, 0, W-1)`` for "no crop".
    ``ZoomIn`` shifts by the crop origin and ``ResizeTrans`` then multiplies by the ratio
    ``out_size / crop_h`` -- computed first, as the official code does, so the float64 result is bit
    identical. Note the ratio is S/H, not (S-1)/(H-1), although the image itself is resized with
    ``align_corners=True``. ``out_size=None`` returns only the shifted (ZoomIn) coordinates.
    Returns float64 ``(N, 2)``; the caller decides which rows are padding.
    """
    c = np.asarray(clicks_yx, dtype=np.float64).reshape(-1, np.shape(clicks_yx)[-1])[:, :2]
    rmin, rmax, cmin, cmax = box
    shifted = c - np.array([rmin, cmin], dtype=np.float64)
    if out_size is None:
        return shifted
    oh, ow = (out_size, out_size) if np.isscalar(out_size) else out_size
    ratio = np.array([oh / (rmax - rmin + 1), ow / (cmax - cmin + 1)], dtype=np.float64)
    return shifted * ratio


def map_clicks_to_focus(clicks_yx: np.ndarray | Sequence[Sequence[float]], focus_box: Box4,
                        out_size: int = 256) -> np.ndarray:
    """Refiner click coordinates: ``((y - y1) * S/(y2-y1), (x - x1) * S/(x2-x1))``, float64 ``(N, 2)``.

    ``focus_box`` is the exclusive ``(y1, y2, x1, x2)``. Clicks outside the box are kept (they may map
    outside ``[0, S)``), as in the official ``_get_refine``.
    """
    c = np.asarray(clicks_yx, dtype=np.float64).reshape(-1, np.shape(clicks_yx)[-1])[:, :2]
    y1, y2, x1, x2 = focus_box
    return (c - np.array([y1, x1], np.float64)) * np.array([out_size / (y2 - y1), out_size / (x2 - x1)])


def focus_roi_in_target_frame(focus_box: Box4, global_roi: Box4, size: int = 256) -> np.ndarray:
    """The Refiner's RoI: the focus box in the ``size`` x ``size`` Segmentor frame, ``(x1, y1, x2, y2)``.

    ``(v - g1) * size / (g2 - g1)``, clamped to ``[0, size]``; returned as float32 (the tensor dtype),
    x before y as ``roi_align`` expects (the batch index column is left to the caller).
    """
    fy1, fy2, fx1, fx2 = focus_box
    gy1, gy2, gx1, gx2 = global_roi
    sy, sx = size / (gy2 - gy1), size / (gx2 - gx1)
    v = np.array([(fx1 - gx1) * sx, (fy1 - gy1) * sy, (fx2 - gx1) * sx, (fy2 - gy1) * sy], np.float64)
    return np.clip(v, 0.0, float(size)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Connected component at the click (shared by Focus Crop and Progressive Merge)
# --------------------------------------------------------------------------------------------------
def _component_at(diff: np.ndarray, y: int, x: int) -> tuple[np.ndarray | None, int, Rect]:
    """The official ``labels == labels[y, x]`` of ``cv2.connectedComponents(diff)`` (8-connectivity).

    Returns ``(component_mask_or_None, pixel_count, (x, y, w, h) bounding rect)``. When the click is
    on a diff pixel, ``cv2.floodFill`` from it gives exactly that 8-connected component (plus its area
    and bounding rect) without labelling the whole image. When it is not, the official label is 0,
    the background label, so the "component" is *every* non-diff pixel, connected or not; None is
    returned for the mask and the caller uses ``~diff``.
    """
    du8 = _as_u8(diff)
    if du8[y, x]:
        h, w = du8.shape
        ff_mask = np.zeros((h + 2, w + 2), np.uint8)
        flags = 8 | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
        area, _, _, rect = cv2.floodFill(du8, ff_mask, (int(x), int(y)), 1, 0, 0, flags)
        return ff_mask[1:-1, 1:-1].view(np.bool_), int(area), tuple(int(v) for v in rect)
    not_diff = np.ascontiguousarray(du8 == 0).view(np.uint8)
    return None, int(cv2.countNonZero(not_diff)), tuple(int(v) for v in cv2.boundingRect(not_diff))


def _component_in_window(diff_w: np.ndarray, window: Box4, hw: tuple[int, int], y: int, x: int
                         ) -> tuple[np.ndarray | None, int, Rect]:
    """``_component_at`` of a full-image ``diff`` that is zero outside ``window`` (exclusive box), given
    only its window crop ``diff_w``. Count and rect are in image coordinates; the mask (None for label 0)
    is window-sized.

    Exact: a diff component never leaves the window (nothing outside it is set). Label 0, every non-diff
    pixel, includes every pixel outside the window; its count and bounding rect follow from the window's.
    """
    wy1, wy2, wx1, wx2 = window
    h, w = int(hw[0]), int(hw[1])
    inside = wy1 <= y < wy2 and wx1 <= x < wx2
    if inside and diff_w[y - wy1, x - wx1]:
        comp, count, (rx, ry, rw, rh) = _component_at(diff_w, y - wy1, x - wx1)
        return comp, count, (rx + wx1, ry + wy1, rw, rh)
    du8 = _as_u8(diff_w)
    count = h * w - int(cv2.countNonZero(du8)) if du8.size else h * w
    if count == 0:
        return None, 0, (0, 0, 0, 0)
    rows = np.ones(h, np.bool_)
    cols = np.ones(w, np.bool_)
    if du8.size:
        not_diff = du8 == 0
        if wx1 == 0 and wx2 == w:  # window rows span the image: they hold a non-diff pixel only inside it
            rows[wy1:wy2] = not_diff.any(axis=1)
        if wy1 == 0 and wy2 == h:
            cols[wx1:wx2] = not_diff.any(axis=0)
    ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
    return None, count, (int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1))


def union_box(*boxes: Box4 | None) -> Box4 | None:
    """The smallest exclusive box holding every given exclusive box (None entries skipped)."""
    given = [b for b in boxes if b is not None]
    if not given:
        return None
    return (min(b[0] for b in given), max(b[1] for b in given), min(b[2] for b in given), max(b[3] for b in given))


# --------------------------------------------------------------------------------------------------
# Focus Crop
# --------------------------------------------------------------------------------------------------
def _crop_local_bbox(count: int, rect: Rect, hw: tuple[int, int], min_pixels: int) -> Box4:
    """``crop_local.get_bbox_from_mask``: whole image ``(0, H, 0, W)`` under 10 px, else inclusive.

    Note the mixed convention: the fallback has exclusive ends while the normal result is inclusive;
    the official extents ``y2 - y1`` are taken from whichever it returned.
    """
    if count < min_pixels:
        return 0, hw[0], 0, hw[1]
    x, y, bw, bh = rect
    return y, y + bh - 1, x, x + bw - 1


def _focus_expand(y1: float, y2: float, x1: float, x2: float, ratio: float, hw: tuple[int, int]) -> Box4:
    """``crop_local`` expansion: centre -/+ ratio*(extent+1)/2, int()-truncated, clamped to [0,H]x[0,W]."""
    yc, xc = (y1 + y2) / 2, (x1 + x2) / 2
    hh = (y2 - y1 + 1) * ratio / 2
    hw_ = (x2 - x1 + 1) * ratio / 2
    ny1, ny2 = int(yc - hh), int(yc + hh)
    nx1, nx2 = int(xc - hw_), int(xc + hw_)
    return max(ny1, 0), min(ny2, hw[0]), max(nx1, 0), min(nx2, hw[1])


def focus_crop_box(coarse_logits_full: np.ndarray, prev_probs: np.ndarray, global_roi: Box4,
                   click_yx: Sequence[int], cfg: PipelineConfig) -> Box4:
    """The official ``get_focus_cropv1`` Focus Crop box ``(y1, y2, x1, x2)``, exclusive ends.

    * ``pred = coarse_logits_full > 0.49`` (a **logit** threshold, i.e. p > 0.62) and
      ``prev = prev_probs > 0.49``.
    * ``prev`` empty (first click from scratch): box of ``pred``.
    * Otherwise the 8-connected component of ``pred XOR prev`` at the click; if the click is not on a
      diff pixel that is label 0, i.e. all unchanged pixels. If its box extents ``y2-y1``/``x2-x1``
      are under a third of ``pred``'s box extents in either axis, use instead the float square of half
      side ``0.2 * max(hp, wp)`` centred on the click.
    * Masks under 10 px have the whole image ``(0, H, 0, W)`` as their box.
    * Expand about the centre to ``ratio * (extent + 1)``, truncate with ``int()``, clamp to
      ``[0, H] x [0, W]`` and intersect with ``global_roi`` (exclusive).

    The result can in principle be empty (a click far outside ``global_roi``); the official predictor
    would then fail on an empty crop, so callers should guard ``y2 > y1 and x2 > x1``.
    """
    return focus_crop_box_from_masks(coarse_logits_full > cfg.focus_logit_thresh,
                                     prev_probs > cfg.focus_prev_thresh, global_roi, click_yx, cfg)


def focus_crop_box_from_masks(pred: np.ndarray, prev: np.ndarray, global_roi: Box4, click_yx: Sequence[int],
                              cfg: PipelineConfig) -> Box4:
    """``focus_crop_box`` given its two thresholded masks, bool ``(H, W)``: ``pred = logits > 0.49`` and
    ``prev = prev_probs > 0.49``.

    The runtime keeps the coarse logits only inside the Target Crop (outside it they are ``-inf``,
    hence never above the threshold), so it builds ``pred`` from that box alone instead of
    materialising and thresholding a full-image logit map.
    """
    hw = pred.shape[:2]
    return focus_crop_box_in_window(pred, prev, (0, hw[0], 0, hw[1]), hw, global_roi, click_yx, cfg)


def focus_crop_box_in_window(pred_w: np.ndarray, prev_w: np.ndarray, window: Box4, image_hw: tuple[int, int],
                             global_roi: Box4, click_yx: Sequence[int], cfg: PipelineConfig) -> Box4:
    """``focus_crop_box_from_masks`` for two image masks that are False outside ``window`` (exclusive),
    given their window crops: the same box, from work proportional to the window."""
    wy1, _, wx1, _ = window
    pred_u8 = _as_u8(pred_w)
    px, py, pw, ph = cv2.boundingRect(pred_u8)
    pred_stats = (int(cv2.countNonZero(pred_u8)), None if pw == 0 else (py + wy1, py + wy1 + ph - 1, px + wx1,
                                                                        px + wx1 + pw - 1))
    diff_w = np.logical_xor(pred_w, prev_w) if prev_w.any() else None
    return focus_crop_box_from_diff(diff_w, window, image_hw, global_roi, click_yx, cfg, pred_stats)


def focus_crop_box_from_diff(diff_w: np.ndarray | None, window: Box4, image_hw: tuple[int, int], global_roi: Box4,
                             click_yx: Sequence[int], cfg: PipelineConfig, pred_stats: tuple[int, Box4 | None]
                             ) -> Box4:
    """``focus_crop_box_in_window`` from what it needs of the two masks: their XOR's window crop (None when
    ``prev`` is empty) and ``pred``'s (pixel count, inclusive bbox or None) -- which a tiled map gives
    without reading either mask densely (``TiledMap.xor_read``, ``TiledMap.bbox``)."""
    hw = (int(image_hw[0]), int(image_hw[1]))
    min_pixels = cfg.focus_min_mask_pixels
    count, b = pred_stats
    rect = (0, 0, 0, 0) if b is None else (b[2], b[0], b[3] - b[2] + 1, b[1] - b[0] + 1)
    pred_box = _crop_local_bbox(count, rect, hw, min_pixels)
    if diff_w is None:
        y1, y2, x1, x2 = pred_box
    else:
        cy, cx = int(click_yx[0]), int(click_yx[1])
        _, count, rect = _component_in_window(diff_w, window, hw, cy, cx)
        y1, y2, x1, x2 = _crop_local_bbox(count, rect, hw, min_pixels)
        hd, wd = y2 - y1, x2 - x1
        hp, wp = pred_box[1] - pred_box[0], pred_box[3] - pred_box[2]
        if hd < hp / 3 or wd < wp / 3:
            r = max(hp, wp) * 0.2
            y1, y2, x1, x2 = cy - r, cy + r, cx - r, cx + r
    fy1, fy2, fx1, fx2 = _focus_expand(y1, y2, x1, x2, cfg.focus_ratio, hw)
    gy1, gy2, gx1, gx2 = global_roi
    return max(fy1, int(gy1)), min(fy2, int(gy2)), max(fx1, int(gx1)), min(fx2, int(gx2))


# --------------------------------------------------------------------------------------------------
# Progressive Merge
# --------------------------------------------------------------------------------------------------
def progressive_merge(pred_mask: np.ndarray, prev_merged: np.ndarray, click_yx: Sequence[int]) -> np.ndarray:
    """The official ``evaluation.Progressive_Merge``: only the changed region at the click is merged.

    ``diff = pred XOR prev``; take the 8-connected diff component at the click; if ``prev`` is set at
    the click remove it (``prev AND NOT comp``), else add it (``prev OR comp``).

    Label-0 quirk, kept on purpose: when the click is not on a diff pixel the official label is 0, so
    the "component" is every unchanged pixel. With ``prev[y, x] == 0`` that turns on every pixel where
    pred and prev agree (a flood); with ``prev[y, x] == 1`` it keeps only ``prev AND diff``.
    Inputs are interpreted as bool (non-zero); returns a new bool mask.
    """
    pred = pred_mask if pred_mask.dtype == np.bool_ else pred_mask != 0
    prev = prev_merged if prev_merged.dtype == np.bool_ else prev_merged != 0
    merged, _ = progressive_merge_in_window(pred, prev, (0, prev.shape[0], 0, prev.shape[1]), click_yx)
    return merged


def progressive_merge_in_window(pred_w: np.ndarray, prev_w: np.ndarray, window: Box4, click_yx: Sequence[int]
                                ) -> tuple[np.ndarray, bool]:
    """``progressive_merge`` of two bool image masks that are False outside ``window`` (exclusive), given
    their window crops: ``(merged window crop, value of the merged mask outside the window)``. Outside,
    the merge keeps False except in the label-0 flood (click on no diff pixel, ``prev`` unset there),
    which turns every pixel outside on."""
    wy1, wy2, wx1, wx2 = window
    y, x = int(click_yx[0]), int(click_yx[1])
    inside = wy1 <= y < wy2 and wx1 <= x < wx2
    diff = np.logical_xor(pred_w, prev_w)
    comp = _component_at(diff, y - wy1, x - wx1)[0] if inside else None
    if comp is None:
        comp = ~diff
        if inside and prev_w[y - wy1, x - wx1]:
            return prev_w & ~comp, False
        return prev_w | comp, True
    if prev_w[y - wy1, x - wx1]:
        return prev_w & ~comp, False
    return prev_w | comp, False


def paper_progressive_merge(pred_mask: np.ndarray, prev_mask: np.ndarray, click_yx: Sequence[int]) -> np.ndarray:
    """The FocalClick paper's merge (``--merge paper``): the 8-connected component of ``pred XOR prev``
    under the click is removed from ``prev`` (click inside it) or added (click outside); a click on no
    changed pixel leaves ``prev`` as it was -- no label-0 flood. A new bool array."""
    pred = np.asarray(pred_mask, dtype=bool)
    prev = np.asarray(prev_mask, dtype=bool)
    y, x = int(click_yx[0]), int(click_yx[1])
    comp = _component_at(np.logical_xor(pred, prev), y, x)[0]
    if comp is None:
        return prev.copy()
    return prev & ~comp if prev[y, x] else prev | comp


def paper_merge_in_window(pred_w: np.ndarray, prev_w: np.ndarray, window: Box4, click_yx: Sequence[int]
                          ) -> np.ndarray:
    """``paper_progressive_merge`` of two bool image masks that are False outside ``window``, given their
    window crops: the merged window crop (the merged mask stays False outside, as the diff is)."""
    wy1, _, wx1, _ = window
    y, x = int(click_yx[0]) - wy1, int(click_yx[1]) - wx1
    if not (0 <= y < pred_w.shape[0] and 0 <= x < pred_w.shape[1]):
        return prev_w.copy()
    return paper_progressive_merge(pred_w, prev_w, (y, x))
