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

The Session does the merge itself (``PipelineConfig.progressive_merge``, within the window the masks
occupy, like the official one); this module turns it on and composes it with CFR.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from .crop_rules import paper_progressive_merge
from .pipeline_config import MERGE_MODES, OFFICIAL_PIPELINE

PAPER_MERGE_AFTER = OFFICIAL_PIPELINE.keep_prev_after  # from scratch: merge from click 11 on


def with_merge(session: Any, merge: str) -> Any:
    """``session`` (a Session) set to Progressive Merge mode ``merge`` for its next images."""
    if merge not in MERGE_MODES:
        from ..errors import UserError

        raise UserError(f"--merge {merge!r}: choose one of {', '.join(MERGE_MODES)}")
    if session.pipeline.progressive_merge != merge:
        session.pipeline = replace(session.pipeline, progressive_merge=merge)
    return session


def wrap_session(session: Any, merge: str = "official", cfr: Any = None) -> Any:
    """``session`` with the paper's merge and / or cascade-forward refinement (``runtime.cfr.CFRSpec``)."""
    session = with_merge(session, merge)
    if cfr is not None:
        from .cfr import CFRSession

        session = CFRSession(session, cfr)
    return session


__all__ = ["MERGE_MODES", "PAPER_MERGE_AFTER", "paper_progressive_merge", "with_merge", "wrap_session"]
