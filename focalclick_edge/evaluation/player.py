"""One session player: the click loop shared by eval, calibration, bench, agreement (and serving adapters).

A session is played on a ``runtime.Session`` (or anything with ``set_image`` / ``set_mask`` / ``reset`` /
``add_click``): either the standard NoC clicker places each click from the current mask against the
ground truth (ClickSEG ``evaluate_sample``), or a given click list is replayed. Clicks are
``(x, y, positive)`` in and out. The loop stops after ``max_clicks`` clicks (clicker) or the replayed
list, or earlier once IoU >= ``stop_iou`` -- compared in float32, the way ``metrics.noc`` compares, so
a session stops at exactly the click that NoC counts.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .clicker import Clicker
from .metrics import iou

Click = tuple[int, int, bool]  # (x, y, positive)


@dataclass
class Playback:
    """What one played session produced, click by click."""

    clicks: list[Click] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)  # with a ground truth: IoU after each click (ignore left out)
    timings: list[dict[str, float]] = field(default_factory=list)  # Session stage -> ms, per click
    masks: list[np.ndarray] = field(default_factory=list)  # with keep_masks: bool copies after each click
    init_iou: float | None = None  # IoU of the initial mask (with a ground truth and an initial mask)
    kinds: list[str] | None = None  # per click, from a clicker that labels them (evaluation.misleading)


def play_session(
    session: Any,
    gt: np.ndarray | None = None,
    *,
    image: np.ndarray | None = None,
    init_mask: np.ndarray | None = None,
    clicks: Sequence[Sequence[Any]] | None = None,
    max_clicks: int = 20,
    stop_iou: float | None = None,
    keep_masks: bool = False,
    clicker: Any | None = None,
) -> Playback:
    """Play one session. ``image``: set it first (otherwise the image already set is used, from a fresh
    state). ``init_mask``: start from it (Interactive Mask Correction). ``clicks``: replay these instead
    of running the clicker (which needs ``gt``); ``gt`` (int8 1/0/-1, or bool) also gives the IoUs.
    ``clicker``: a fresh clicker for ``gt`` instead of the standard one (e.g. misleading.MisleadingClicker);
    its ``kinds``, where it has them, are copied into the playback."""
    if clicks is None and gt is None:
        raise ValueError("play_session needs gt (for the clicker) or clicks (to replay)")
    if clicks is None and max_clicks < 1:
        raise ValueError(f"max_clicks must be >= 1, got {max_clicks}")
    gt = None if gt is None else np.asarray(gt)
    if image is not None:
        session.set_image(image)
    out = Playback()
    if init_mask is not None:
        pred = np.asarray(init_mask, dtype=bool)
        session.set_mask(pred)
        if gt is not None:
            out.init_iou = float(iou(gt, pred))
    else:
        if image is None:
            session.reset()
        pred = np.zeros(gt.shape[:2], dtype=bool) if gt is not None else None
    if clicks is not None:
        clicker = None
    elif clicker is None:
        clicker = Clicker(gt)
    stop = None if stop_iou is None else np.float32(stop_iou)
    for k in range(max_clicks if clicks is None else len(clicks)):
        if clicker is not None:
            c = clicker.make_next_click(pred)
            click = (c.x, c.y, c.positive)
        else:
            x, y, positive = clicks[k]
            click = (int(x), int(y), bool(positive))
        result = session.add_click(*click)
        pred = np.asarray(result.mask, dtype=bool)
        out.clicks.append(click)
        out.timings.append(dict(result.timings))
        if keep_masks:
            out.masks.append(np.array(pred, dtype=bool, copy=True))
        if gt is not None:
            value = float(iou(gt, pred))
            out.ious.append(value)
            if stop is not None and np.float32(value) >= stop:
                break
    if clicker is not None and hasattr(clicker, "kinds"):
        out.kinds = list(clicker.kinds)
    return out


__all__ = ["Click", "Playback", "play_session"]
