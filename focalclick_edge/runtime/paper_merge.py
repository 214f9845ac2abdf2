"""``--merge paper``: Progressive Merge as the FocalClick paper describes it, opt-in.

The paper: once the object is mostly right, a click should only change the region it is about, so the
new prediction is merged into the previous mask -- only the connected changed region that contains
the click is updated -- for annotation from scratch after the first 10 clicks, and from the first
click when correcting an initial mask. The official code differs (see runtime/geometry.py and the
reference README): it merges only with an initial mask, and when the click is not on a changed pixel
it takes label 0 of ``connectedComponents`` -- every unchanged pixel -- which with a background click
turns on every pixel where prediction and mask agree (the "label-0 flood").

Here: ``diff = pred XOR prev``; if the click is on a diff pixel, its 8-connected diff component is
removed from (click inside ``prev``) or added to (click outside) ``prev``; if it is not, the mask stays
as it was. As in the official merge, the merged mask is what the user sees, what the clicker and the
Zoom-In see, and the network keeps receiving its own unmerged probabilities as the previous mask.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from .pipeline_config import OFFICIAL_PIPELINE
from .session import ClickResult, SessionSnapshot

MERGE_MODES = ("official", "paper")
PAPER_MERGE_AFTER = OFFICIAL_PIPELINE.keep_prev_after  # from scratch: merge from click 11 on


def paper_progressive_merge(pred_mask: np.ndarray, prev_mask: np.ndarray, click_yx: Sequence[int]) -> np.ndarray:
    """The paper's merge of ``pred_mask`` into ``prev_mask`` at the click (bool HxW); a new array."""
    pred = np.asarray(pred_mask, dtype=bool)
    prev = np.asarray(prev_mask, dtype=bool)
    y, x = int(click_yx[0]), int(click_yx[1])
    diff = pred ^ prev
    if not diff[y, x]:
        return prev.copy()
    h, w = diff.shape
    ff = np.zeros((h + 2, w + 2), np.uint8)
    cv2.floodFill(diff.astype(np.uint8), ff, (x, y), 1, 0, 0, 8 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    comp = ff[1:-1, 1:-1].view(np.bool_)
    return prev & ~comp if prev[y, x] else prev | comp


class PaperMergeSession:
    """A Session whose masks follow the paper's Progressive Merge; every other attribute is the Session's.

    The merged mask lives in the session state (snapshot / undo / spawn see it); the Session's own
    official merge result, where it makes one, is replaced."""

    def __init__(self, session: Any) -> None:
        self._inner = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def spawn(self) -> PaperMergeSession:
        return PaperMergeSession(self._inner.spawn())

    def add_click(self, x: int, y: int, positive: bool = True) -> ClickResult:
        s = self._inner
        prev_merged = s.snapshot().state.merged  # before this click: None until merging starts
        result = s.add_click(x, y, positive)
        snap = s.snapshot()
        st = snap.state
        if prev_merged is not None:
            merged = paper_progressive_merge(result.prob > s.pipeline.mask_thresh, prev_merged, (int(y), int(x)))
            result = replace(result, mask=merged)
            st = replace(st, merged=merged, zoom_prev=merged, result=result)
        elif len(st.clicks) >= PAPER_MERGE_AFTER:
            # Click 10 from scratch: its mask becomes the mask that click 11 merges into.
            st = replace(st, merged=result.mask)
        s.restore(SessionSnapshot(snap.image, st, snap.history))
        return result


def wrap_session(session: Any, merge: str = "official", cfr: Any = None) -> Any:
    """``session`` with the paper's merge and / or cascade-forward refinement (``runtime.cfr.CFRSpec``)."""
    if merge not in MERGE_MODES:
        from ..errors import UserError

        raise UserError(f"--merge {merge!r}: choose one of {', '.join(MERGE_MODES)}")
    if merge == "paper":
        session = PaperMergeSession(session)
    if cfr is not None:
        from .cfr import CFRSession

        session = CFRSession(session, cfr)
    return session


__all__ = ["MERGE_MODES", "PAPER_MERGE_AFTER", "PaperMergeSession", "paper_progressive_merge", "wrap_session"]
