"""A bool mask -> what the API returns: PNG (0/255), COCO RLE (pycocotools) or OpenCV polygons."""
from __future__ import annotations

import base64

import cv2
import numpy as np
from pycocotools import mask as coco_mask

# Masks are long runs of 0 and 255: no PNG row filter plus zlib's run-length strategy is ~5x faster than
# OpenCV's defaults at a similar size (0.4 MP: 1.2 vs 9.5 ms; 12 MP: 57 vs 229 ms, loaded 2-core machine).
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
              cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
FORMATS = ("png", "rle", "polygon")


def mask_png(mask: np.ndarray) -> bytes:
    """8-bit grayscale PNG, 0 = background, 255 = object, full size."""
    ok, buf = cv2.imencode(".png", mask.view(np.uint8) * np.uint8(255) if mask.dtype == np.bool_ else mask,
                           PNG_PARAMS)
    if not ok:  # pragma: no cover - OpenCV encodes any 2-D uint8 array
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def mask_rle(mask: np.ndarray) -> dict:
    """COCO RLE ``{"size": [h, w], "counts": str}`` (what ``pycocotools.mask.decode`` takes).

    COCO runs go down the columns, so pycocotools wants the mask in Fortran order, i.e. its transpose in
    C order. Only the object's bounding box is non-zero, so only that box is transposed (by OpenCV, ~4x
    faster than NumPy's strided copy) into a zeroed (w, h) array. 12 MP on a loaded 2-core machine:
    29-62 ms against 35-168 ms for NumPy's box copy; pycocotools' own pass is ~25 ms of it.
    """
    h, w = mask.shape
    transposed = np.zeros((w, h), np.uint8)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size:
        y1, y2 = rows[0], rows[-1] + 1
        cols = np.flatnonzero(mask[y1:y2].any(axis=0))
        x1, x2 = cols[0], cols[-1] + 1
        box = mask[y1:y2, x1:x2]
        transposed[x1:x2, y1:y2] = cv2.transpose(box.view(np.uint8) if box.dtype == np.bool_ else box)
    rle = coco_mask.encode(transposed.T)
    return {"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")}


def mask_polygons(mask: np.ndarray) -> dict:
    """Outer contours and holes (``cv2.findContours``, RETR_CCOMP, CHAIN_APPROX_SIMPLE) as [[x, y], ...]."""
    contours, hierarchy = cv2.findContours(mask.view(np.uint8) if mask.dtype == np.bool_ else mask,
                                           cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    outer, holes = [], []
    for i, c in enumerate(contours):
        pts = c[:, 0, :].tolist()
        (holes if hierarchy[0][i][3] >= 0 else outer).append(pts)
    return {"polygons": outer, "holes": holes}


def encode_mask(mask: np.ndarray, fmt: str) -> dict:
    """The response fields for ``fmt`` (one of FORMATS)."""
    if fmt == "rle":
        return {"mask_rle": mask_rle(mask)}
    if fmt == "polygon":
        return {"mask_polygons": mask_polygons(mask)}
    return {"mask_png": base64.b64encode(mask_png(mask)).decode("ascii")}
