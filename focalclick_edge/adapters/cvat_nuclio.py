"""CVAT's interactor protocol, as run inside the nuclio function that ``cvat-function`` writes.

CVAT's lambda manager posts ``{"image": <base64 frame>, "pos_points": [[x, y], ...], "neg_points": [...],
"obj_bbox": ..., "threshold": ...}`` (threshold only when the user set one) and its interactors answer
``{"mask": <rows of 0/1 over the whole frame>}``. Points are floats in frame pixels.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .click_service import Click, ClickService
from .images import decode_base64


def load_service(model_dir: str | Path, run: str, threads: int | None = None) -> ClickService:
    from ..runtime import Session

    return ClickService({run: Session(model_dir, run=run, threads=threads)})


def _points(value: Any, name: str, width: int, height: int) -> list[tuple[int, int]]:
    """CVAT's [[x, y], ...] floats -> the pixels they fall in (a point on the far edge counts as inside)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserError(f"{name} must be a list of [x, y] points, got {type(value).__name__}")
    out = []
    for p in value:
        if (not isinstance(p, list | tuple) or len(p) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in p)):
            raise UserError(f"{name} must hold [x, y] pairs of numbers, got {json.dumps(p)[:60]}")
        x, y = float(p[0]), float(p[1])
        if not (0 <= x <= width and 0 <= y <= height):
            raise UserError(f"{name} point [{x:g}, {y:g}] is outside the {width}x{height} frame")
        out.append((min(int(x), width - 1), min(int(y), height - 1)))
    return out


def mask_rows_json(mask: np.ndarray) -> str:
    """``json.dumps(mask.astype(int).tolist())`` without building a million Python ints: the text is
    laid out in one uint8 array (digit, comma, digit, ...) per row."""
    h, w = mask.shape
    cells = np.empty((h, w, 2), np.uint8)
    cells[..., 0] = np.where(mask, ord("1"), ord("0"))
    cells[..., 1] = ord(",")
    rows = np.empty((h, 2 * w + 2), np.uint8)  # "[d,d,...,d],"
    rows[:, 0] = ord("[")
    rows[:, 1:2 * w + 1] = cells.reshape(h, 2 * w)
    rows[:, 2 * w] = ord("]")
    rows[:, 2 * w + 1] = ord(",")
    return "[" + rows.tobytes()[:-1].decode("ascii") + "]"


def handle(service: ClickService, body: Any) -> tuple[int, str]:
    """(HTTP status, JSON text) for one interactor call; bad input is a 400 with ``{"error": ...}``."""
    try:
        return 200, _handle(service, body)
    except UserError as exc:
        return 400, json.dumps({"error": str(exc)})


def _handle(service: ClickService, body: Any) -> str:
    if isinstance(body, bytes | bytearray | str):
        try:
            body = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError("request body is not JSON; send CVAT's interactor request "
                            '{"image": ..., "pos_points": [...], "neg_points": [...]}') from None
    if not isinstance(body, dict):
        raise UserError("request body must be a JSON object with image, pos_points and neg_points")
    if "image" not in body:
        raise UserError("missing image: send the frame as base64 in \"image\"")
    threshold = body.get("threshold", 0.5)
    if threshold is None:
        threshold = 0.5
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 < threshold < 1:
        raise UserError(f"threshold must be a number between 0 and 1, got {json.dumps(threshold)[:40]}")
    bbox = body.get("obj_bbox")
    if bbox is not None and not isinstance(bbox, list):
        raise UserError("obj_bbox must be null or [[x1, y1], [x2, y2]]")  # accepted; FocalClick uses clicks only
    raw_pos = body.get("pos_points")
    if not isinstance(raw_pos, list) or not raw_pos:
        raise UserError("pos_points must be a non-empty list of [x, y]: FocalClick needs a positive point first")
    handle_ = service.open_image(decode_base64(body["image"]))
    w, h = handle_.width, handle_.height
    pos = _points(raw_pos, "pos_points", w, h)
    neg = _points(body.get("neg_points"), "neg_points", w, h)
    # CVAT sends the points as two unordered lists; the service recovers the click order from its cache
    # and replays a cold call as positives then negatives (CVAT's RITM function's order).
    clicks: list[Click] = [(x, y, True) for x, y in pos] + [(x, y, False) for x, y in neg]
    result = service.segment(handle_, clicks, ordered=False)
    return '{"mask": ' + mask_rows_json(result.prob > np.float32(threshold)) + "}"
