"""Per-click geometry of the official FocalClick (ClickSEG) pipeline, in NumPy + OpenCV only.

Everything here is pure (no I/O, no torch, no inference backend) and reproduces the official code's
integer results *exactly* -- boxes, masks and disk maps are compared bit for bit against the recorded
official outputs in ``tests/fixtures/reference`` -- and its float results (resizes, RoIAlign) to float32
rounding.

Conventions used throughout (they follow the official code, which mixes them):

* Points and clicks are ``(y, x)`` = (row, col).
* Zoom-In ("Target Crop") boxes are ``(rmin, rmax, cmin, cmax)`` with **inclusive** ends, as
  ``ZoomIn._object_roi`` stores them. ``global_roi`` is the same box with exclusive ends.
* Focus Crop boxes and ``global_roi`` are ``(y1, y2, x1, x2)`` with **exclusive** ends.
* RoIAlign boxes are ``(x1, y1, x2, y2)`` -- x before y -- as torchvision's ``roi_align`` takes them.

This module is on the per-click hot path, so it avoids full-image float work where a window or crop is
enough: disks only touch a window around each point, resizes gather just the two source rows / columns
each output sample needs, and connected components are found with a single ``cv2.floodFill`` from the
click instead of labelling the whole image.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

import numpy as np

from ..optional_modules import optional_import

cv2 = optional_import("cv2", "opencv-python-headless")

__all__ = [
    "ZOOM_PROB_THRESH",
    "FOCUS_THRESH",
    "click_disks",
    "zoom_in_box",
    "zoom_in_global_roi",
    "map_clicks_to_crop",
    "map_clicks_to_focus",
    "focus_roi_in_target_frame",
    "focus_crop_box",
    "focus_crop_box_from_masks",
    "progressive_merge",
    "resize_bilinear_align_corners",
    "crop_resize_align_corners",
    "paste_resized",
    "roi_align_aligned",
]

#: ``ZoomIn.prob_thresh``: the previous probability map is thresholded here to find the object.
ZOOM_PROB_THRESH = 0.49
#: ``get_focus_cropv1`` applies 0.49 to the coarse *logits* (p > 0.62) and to the previous probabilities.
FOCUS_THRESH = 0.49
#: ``crop_local.get_bbox_from_mask`` treats masks with fewer pixels than this as "no box" (whole image).
_FOCUS_MIN_MASK_PIXELS = 10

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
                expansion: float = 1.4, min_crop_size: int = 10) -> Box4 | None:
    """The official Zoom-In object box ``(rmin, rmax, cmin, cmax)``, inclusive, or None for "no crop".

    ``prev_mask_bool`` is the previous mask: a bool array, or a probability map, which is then
    thresholded at ``ZOOM_PROB_THRESH`` (0.49) as ``ZoomIn`` does with ``_prev_probs``. In
    Progressive-Merge runs the official loop passes the merged bool mask here. ``clicks`` are rows
    ``(y, x, is_positive)`` in image pixels; rows with ``is_positive <= 0`` or negative coordinates
    (padding) are ignored, because the official code only paints positive clicks into the mask.

    Steps (``ZoomIn.transform`` + ``get_object_roi``): empty mask -> None; paint every positive click
    pixel; inclusive bbox; expand about the centre to ``expansion * (extent + 1)``, at least
    ``min_crop_size``; new ends ``int(round(centre -/+ size/2))`` with Python's half-to-even round;
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
    mask = prev_mask_bool if prev_mask_bool.dtype == np.bool_ else prev_mask_bool > ZOOM_PROB_THRESH
    box = _bbox_inclusive(_as_u8(mask))
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


# --------------------------------------------------------------------------------------------------
# Focus Crop
# --------------------------------------------------------------------------------------------------
def _crop_local_bbox(count: int, rect: Rect, hw: tuple[int, int]) -> Box4:
    """``crop_local.get_bbox_from_mask``: whole image ``(0, H, 0, W)`` under 10 px, else inclusive.

    Note the mixed convention: the fallback has exclusive ends while the normal result is inclusive;
    the official extents ``y2 - y1`` are taken from whichever it returned.
    """
    if count < _FOCUS_MIN_MASK_PIXELS:
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
                   click_yx: Sequence[int], ratio: float = 1.4) -> Box4:
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
    return focus_crop_box_from_masks(coarse_logits_full > FOCUS_THRESH, prev_probs > FOCUS_THRESH,
                                     global_roi, click_yx, ratio)


def focus_crop_box_from_masks(pred: np.ndarray, prev: np.ndarray, global_roi: Box4, click_yx: Sequence[int],
                              ratio: float = 1.4) -> Box4:
    """``focus_crop_box`` given its two thresholded masks, bool ``(H, W)``: ``pred = logits > 0.49`` and
    ``prev = prev_probs > 0.49``.

    The runtime keeps the coarse logits only inside the Target Crop (outside it they are ``-inf``,
    hence never above the threshold), so it builds ``pred`` from that box alone instead of
    materialising and thresholding a full-image logit map.
    """
    hw = pred.shape[:2]
    pred_u8 = _as_u8(pred)
    pred_box = _crop_local_bbox(int(cv2.countNonZero(pred_u8)), cv2.boundingRect(pred_u8), hw)
    if not prev.any():
        y1, y2, x1, x2 = pred_box
    else:
        cy, cx = int(click_yx[0]), int(click_yx[1])
        _, count, rect = _component_at(np.logical_xor(pred, prev), cy, cx)
        y1, y2, x1, x2 = _crop_local_bbox(count, rect, hw)
        hd, wd = y2 - y1, x2 - x1
        hp, wp = pred_box[1] - pred_box[0], pred_box[3] - pred_box[2]
        if hd < hp / 3 or wd < wp / 3:
            r = max(hp, wp) * 0.2
            y1, y2, x1, x2 = cy - r, cy + r, cx - r, cx + r
    fy1, fy2, fx1, fx2 = _focus_expand(y1, y2, x1, x2, ratio, hw)
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
    y, x = int(click_yx[0]), int(click_yx[1])
    diff = np.logical_xor(pred, prev)
    comp, _, _ = _component_at(diff, y, x)
    if comp is None:
        comp = ~diff
    if prev[y, x]:
        return prev & ~comp
    return prev | comp


# --------------------------------------------------------------------------------------------------
# Resizing (align_corners=True), crop/paste
# --------------------------------------------------------------------------------------------------
def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cached taps are shared between calls: make them read-only so no caller can change them."""
    for a in arrays:
        a.flags.writeable = False
    return arrays


# The taps depend only on the two sizes; a session meets the same few sizes again and again (the network
# sizes are fixed, crop sizes repeat), and building them costs ~30 us each, 18 times per click.
@functools.lru_cache(maxsize=512)
def _ac_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source taps of torch's bilinear ``align_corners=True`` along one axis, in its float32 arithmetic.

    ``src = float32((n_in-1)/(n_out-1)) * i``; ``i0 = int(src)``; ``i1 = i0 + (i0 < n_in-1)``;
    ``l1 = src - i0``, ``l0 = 1 - l1``. Output size 1 samples index 0 (scale 0), as torch does.
    """
    scale = np.float32(n_in - 1) / np.float32(n_out - 1) if (n_out > 1 and n_in > 1) else np.float32(0)
    src = np.float32(scale) * np.arange(n_out, dtype=np.float32)
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = i0 + (i0 < n_in - 1)
    l1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    return _frozen(i0, i1, (np.float32(1) - l1), l1)


Taps = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


# Separable filter taps along one axis: (source indices per tap, float32 weights per tap).
TapList = tuple[list[np.ndarray], list[np.ndarray]]


def _two_taps(t: Taps) -> TapList:
    return [t[0], t[1]], [t[2], t[3]]


def _resize_taps_2d(a: np.ndarray, ty: TapList, tx: TapList, out: np.ndarray | None) -> np.ndarray:
    """One ``(H, W)`` or ``(H, W, C)`` separable resize: rows first, ``sum_k w_k * a[i_k]`` in float32
    (gathered in the source dtype, then converted), then the same over columns; any number of taps
    (two for a bilinear resize, four for two resizes composed).

    The row gather uses fancy indexing, which reads only the rows it needs from a crop view;
    ``np.take`` first copies a non-contiguous source whole, which cost more than the resize itself.
    The fresh rows are C-contiguous, so the column gather is a fast ``np.take``. Both gathers return
    new arrays: the in-place weighting never touches the source.
    """
    (iy, wy), (ix, wx) = ty, tx
    extra = (None,) * (a.ndim - 2)
    rows = a[iy[0]].astype(np.float32, copy=False)
    rows *= wy[0][(slice(None), None, *extra)]
    for idx, w in zip(iy[1:], wy[1:], strict=True):
        tmp = a[idx].astype(np.float32, copy=False)
        tmp *= w[(slice(None), None, *extra)]
        rows += tmp
    res = np.take(rows, ix[0], axis=1)
    res *= wx[0][(slice(None), *extra)]
    for k, (idx, w) in enumerate(zip(ix[1:], wx[1:], strict=True), start=2):
        tmp = np.take(rows, idx, axis=1)
        tmp *= w[(slice(None), *extra)]
        # The last sum goes straight into ``out``: no extra pass to copy the result there.
        np.add(res, tmp, out=out if (k == len(ix) and out is not None) else res)
    if out is None:
        return res
    if len(ix) == 1:
        np.copyto(out, res)
    return out


def _resize_ac(a: np.ndarray, out_hw: tuple[int, int], channels_first: bool, out: np.ndarray | None) -> np.ndarray:
    """Separable align_corners resize of the spatial axes; float32 result (into ``out`` when given)."""
    oh, ow = int(out_hw[0]), int(out_hw[1])
    h, w = a.shape[-2:] if channels_first else a.shape[:2]
    if (oh, ow) == (h, w):
        if out is None:
            return a.astype(np.float32, copy=True)
        np.copyto(out, a, casting="unsafe")
        return out
    ty, tx = _two_taps(_ac_taps(h, oh)), _two_taps(_ac_taps(w, ow))
    if not channels_first:
        return _resize_taps_2d(a, ty, tx, out)
    # Plane by plane: every temporary stays C-contiguous and each plane lands in its slot of the
    # (C, oh, ow) output; a 3-D fancy gather comes back in a transposed layout that made the
    # element-wise passes ~2x slower (and copying an HWC result to CHW costs another pass).
    if out is None:
        out = np.empty((a.shape[0], oh, ow), np.float32)
    for c in range(a.shape[0]):
        _resize_taps_2d(a[c], ty, tx, out[c])
    return out


def resize_bilinear_align_corners(img: np.ndarray, out_hw: tuple[int, int], out: np.ndarray | None = None,
                                  channels_first: bool = False) -> np.ndarray:
    """Bilinear resize with ``align_corners=True`` semantics (torch ``F.interpolate``); float32 out.

    ``img`` is ``(H, W)``, ``(H, W, C)``, or ``(C, H, W)`` with ``channels_first``; any real dtype
    (gathered in its own dtype, then converted, so a uint8 image is never converted as a whole).
    ``out`` (float32, the output shape) receives the result instead of a new array -- the runtime
    writes straight into its reused network input buffers. cv2.resize/remap cannot be used: resize
    uses half-pixel centres and remap quantises coordinates to 1/32 px. Separable two-tap gathers
    cost O(out_h * W + out_h * out_w) per channel -- cheaper than interpolation matrices, and a
    shrink never reads the rows it skips. Agrees with torch to float32 rounding (torch forms the 2-D
    weights as products; the separable sum rounds differently by ~1 ulp). The layout does not change
    the arithmetic: every output value is the same float32 expression in all three layouts.
    """
    a = np.asarray(img)
    return _resize_ac(a, out_hw, channels_first, out)


def resize_sparse_align_corners(planes: np.ndarray, out_hw: tuple[int, int], out: np.ndarray) -> np.ndarray:
    """``resize_bilinear_align_corners(planes, out_hw, out, channels_first=True)`` for mostly-zero planes
    (click disks): only output rows that read a non-zero source row are computed, the others are set to
    zero -- which is exactly what the full resize gives them (0 * w + 0 * w). Bit-identical to it."""
    oh, ow = int(out_hw[0]), int(out_hw[1])
    y0, y1, wy0, wy1 = _ac_taps(planes.shape[1], oh)
    tx = _two_taps(_ac_taps(planes.shape[2], ow))
    out[...] = 0.0
    for c in range(planes.shape[0]):
        nz = planes[c].any(axis=1)
        need = np.flatnonzero(nz[y0] | nz[y1])
        if need.size:
            out[c, need] = _resize_taps_2d(planes[c], ([y0[need], y1[need]], [wy0[need], wy1[need]]), tx, None)
    return out


def crop_resize_align_corners(img: np.ndarray, box_exclusive: Box4, out_hw: tuple[int, int],
                              out: np.ndarray | None = None, channels_first: bool = False) -> np.ndarray:
    """``img[y1:y2, x1:x2]`` resized with ``align_corners=True`` (Zoom-In and Focus Crop image inputs).

    Slicing is a view, so only the rows/columns the interpolation needs are ever read. With
    ``channels_first`` the image is ``(C, H, W)`` and the box applies to its last two axes.
    """
    y1, y2, x1, x2 = box_exclusive
    src = img[:, y1:y2, x1:x2] if channels_first else img[y1:y2, x1:x2]
    return resize_bilinear_align_corners(src, out_hw, out=out, channels_first=channels_first)


@functools.lru_cache(maxsize=256)
def _composed_taps(n_in: int, n_mid: int, n_out: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One axis of two align_corners resizes in a row (n_in -> n_mid -> n_out) as one 4-tap filter:
    indices into the input and float32 weights (products formed in float64)."""
    i0, i1, a0, a1 = _ac_taps(n_in, n_mid)
    j0, j1, b0, b1 = _ac_taps(n_mid, n_out)
    a0, a1, b0, b1 = (v.astype(np.float64) for v in (a0, a1, b0, b1))
    idx = [i0[j0], i1[j0], i0[j1], i1[j1]]
    wts = [(b0 * a0[j0]), (b0 * a1[j0]), (b1 * a0[j1]), (b1 * a1[j1])]
    return list(_frozen(*idx)), list(_frozen(*(w.astype(np.float32) for w in wts)))


def crop_resize_twice_align_corners(img: np.ndarray, box_exclusive: Box4, mid_hw: tuple[int, int],
                                    out_hw: tuple[int, int], out: np.ndarray) -> np.ndarray:
    """``img[:, y1:y2, x1:x2]`` (channels first) resized to ``mid_hw`` and then to ``out_hw``, both
    bilinear ``align_corners=True``, written into ``out`` (float32, ``(C, *out_hw)``).

    The official S1 predictor builds a 256 Target Crop and its network halves it again; composing the
    two resizes into one 4-tap filter per axis reads the source once and never builds the 256 crop.
    It equals the two-step result to float32 rounding (the weights are products, summed in another order).
    """
    y1, y2, x1, x2 = box_exclusive
    src = img[:, y1:y2, x1:x2]
    ty = _composed_taps(y2 - y1, int(mid_hw[0]), int(out_hw[0]))
    tx = _composed_taps(x2 - x1, int(mid_hw[1]), int(out_hw[1]))
    for c in range(src.shape[0]):
        _resize_taps_2d(src[c], ty, tx, out[c])
    return out


def paste_resized(dst: np.ndarray, src: np.ndarray, box_exclusive: Box4) -> np.ndarray:
    """Write ``src`` resized (``align_corners=True``) to the box size into ``dst[y1:y2, x1:x2]``, in place.

    Used for the Refiner paste-back (refined logits into the full coarse logit map) and for the
    Zoom-In inverse (crop probabilities into a zero map of the image size). Returns ``dst``.
    """
    y1, y2, x1, x2 = box_exclusive
    if dst.dtype == np.float32:  # straight into the box, no temporary of the box size
        resize_bilinear_align_corners(src, (y2 - y1, x2 - x1), out=dst[y1:y2, x1:x2])
    else:
        dst[y1:y2, x1:x2] = resize_bilinear_align_corners(src, (y2 - y1, x2 - x1))
    return dst


# --------------------------------------------------------------------------------------------------
# RoIAlign (torchvision, aligned=True, sampling_ratio=-1)
# --------------------------------------------------------------------------------------------------
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
