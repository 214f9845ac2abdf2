"""Record the exact tensors a live ``Session`` feeds its two graphs.

The recorder replaces the session's compiled models with a pass-through that copies every feed before
running the wrapped model, so the session's own code (crops, disks, RoIAlign, ...) produces the
calibration tensors and nothing here can drift from what the runtime really computes.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np


class FeedRecorder:
    """Duck-types ``runtime.backends.CompiledModel``: ``run(feeds)`` records a copy, then delegates."""

    def __init__(self, inner: Any, role: str) -> None:
        self.inner = inner
        self.role = role
        self.records: list[dict[str, np.ndarray]] = []
        self.enabled = True

    @property
    def backend(self) -> str:
        return getattr(self.inner, "backend", "")

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.enabled:
            # Copy before running: OpenVINO shares input memory, and the session reuses nothing, but a
            # copy keeps the record independent of either.
            self.records.append({k: np.array(v, copy=True) for k, v in feeds.items()})
        return self.inner.run(feeds)


@contextlib.contextmanager
def recording(session: Any) -> Iterator[tuple[FeedRecorder, FeedRecorder]]:
    """Within the block, every ``add_click`` of ``session`` records its Segmentor and Refiner feeds.

    Uses the session's ``_segmentor`` / ``_refiner`` attributes (the only hook point: Session calls
    ``.run(feeds)`` on them); they are restored on exit."""
    seg, ref = session._segmentor, session._refiner
    rec_seg, rec_ref = FeedRecorder(seg, "segmentor"), FeedRecorder(ref, "refiner")
    session._segmentor, session._refiner = rec_seg, rec_ref
    try:
        yield rec_seg, rec_ref
    finally:
        session._segmentor, session._refiner = seg, ref


@contextlib.contextmanager
def swapped_graph(session: Any, role: str, model: Any) -> Iterator[None]:
    """Run ``session`` with ``model`` (anything with ``run(feeds)``) in place of one of its graphs."""
    attr = "_segmentor" if role == "segmentor" else "_refiner"
    old = getattr(session, attr)
    setattr(session, attr, model)
    try:
        yield
    finally:
        setattr(session, attr, old)
