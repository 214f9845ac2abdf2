"""Record the exact tensors a live ``Session`` feeds its two graphs.

The recorder is a feed observer (``Session.add_feed_observer``): the session's own code (crops, disks,
RoIAlign, ...) produces the calibration tensors, and nothing here can drift from what the runtime really
computes.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np


class FeedRecorder:
    """Copies of every feed one graph role received while enabled."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.records: list[dict[str, np.ndarray]] = []
        self.enabled = True

    def __call__(self, role: str, feeds: dict[str, np.ndarray]) -> None:
        if self.enabled and role == self.role:
            # Copies: the session reuses its input buffers on every click.
            self.records.append({k: np.array(v, copy=True) for k, v in feeds.items()})


@contextlib.contextmanager
def recording(session: Any) -> Iterator[tuple[FeedRecorder, FeedRecorder]]:
    """Within the block, every ``add_click`` of ``session`` records its Segmentor and Refiner feeds."""
    recorders = FeedRecorder("segmentor"), FeedRecorder("refiner")
    removers = [session.add_feed_observer(r) for r in recorders]
    try:
        yield recorders
    finally:
        for remove in removers:
            remove()
