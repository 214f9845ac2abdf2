"""One sample of the NoC protocol through a runtime ``Session``: the official ``evaluate_sample`` loop.

Per click (ClickSEG ``isegm/inference/evaluation.py``):

1. ``clicker.make_next_click(pred_mask)``; ``pred_mask`` starts as zeros (from scratch) or as the
   initial mask (Interactive Mask Correction);
2. the predictor runs; the mask is ``prob > 0.5``, or the Progressive-Merge mask when an initial mask
   was given (``Session`` does both: ``ClickResult.mask``);
3. IoU against the GT with ignore pixels left out; stop once IoU >= the stop IoU or after
   ``max_clicks`` clicks.

The stop IoU defaults to 0.95, not the official ``--target-iou`` 0.90, so that NoC85/90/95 come out of
one pass. Clicks 1..k of a session do not depend on whether the session stops after k, so NoC85 and
NoC90 are exactly what a 0.90 run gives; only mIoU@k differs, because a sample that would have
stopped at 0.90 keeps clicking towards 0.95 here (pass ``stop_iou=0.90`` to reproduce the official
curve). The stop test is done in float32, the way ``metrics.noc`` compares, so a session stops at
exactly the click that NoC95 counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .player import play_session

DEFAULT_STOP_IOU = 0.95


@dataclass
class SampleResult:
    """What one session on one sample produced, click by click."""

    ious: list[float] = field(default_factory=list)  # IoU after each click (ignore pixels left out)
    clicks: list[tuple[int, int, bool]] = field(default_factory=list)  # (x, y, positive)
    timings: list[dict[str, float]] = field(default_factory=list)  # Session stage -> ms, per click
    init_iou: float | None = None  # IoU of the initial mask (initial-mask mode only)
    kinds: list[str] | None = None  # per click, with a misleading-click protocol (evaluation.misleading)

    @property
    def latency_ms(self) -> list[float]:
        """Per-click latency: the Session's own ``total`` (preprocessing + both graphs + paste/merge)."""
        return [t["total"] for t in self.timings]


def evaluate_sample(
    session: Any,
    image: np.ndarray,
    gt: np.ndarray,
    max_clicks: int = 20,
    stop_iou: float = DEFAULT_STOP_IOU,
    init_mask: np.ndarray | None = None,
    clicker: Any | None = None,
) -> SampleResult:
    """Run one simulated annotation session of ``image`` / ``gt`` (int8 1/0/-1, or bool) on ``session``
    (a ``runtime.Session`` or anything with ``set_image``/``set_mask``/``add_click``): the session player
    with the NoC clicker and the stop IoU. ``clicker``: a fresh clicker for ``gt`` to use instead of the
    standard one (e.g. ``misleading.MisleadingClicker``)."""
    played = play_session(session, gt, image=image, init_mask=init_mask, max_clicks=max_clicks, stop_iou=stop_iou,
                          clicker=clicker)
    return SampleResult(ious=played.ious, clicks=played.clicks, timings=played.timings, init_iou=played.init_iou,
                        kinds=played.kinds)


__all__ = ["DEFAULT_STOP_IOU", "SampleResult", "evaluate_sample"]
