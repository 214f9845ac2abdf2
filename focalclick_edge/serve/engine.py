"""The compiled model shared by every HTTP session, and the per-session click state kept as snapshots.

One Session compiles the graphs; ``spawn()`` gives further Sessions over the same graphs. A click takes
a worker Session from a small pool, ``restore``s the HTTP session's snapshot into it, clicks, and takes
a new snapshot (by reference: no arrays are copied). With one worker the pool is a lock around the graph
runs. More workers are safe only on ONNX Runtime (``InferenceSession.run`` may be called from several
threads; each spawned Session has its own input buffers); OpenVINO Sessions share one infer request.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..runtime import ClickResult, Session, SessionSnapshot


@dataclass
class ClickOutcome:
    mask: np.ndarray
    n_clicks: int
    timings: dict[str, float]  # the Session's stages (ms) plus "wait" for a worker
    target_box: tuple[int, int, int, int] | None  # (x1, y1, x2, y2), exclusive
    focus_box: tuple[int, int, int, int] | None


@dataclass
class ImageState:
    """One HTTP session's image and clicks (``snap``) and where `reset` returns to (``base``)."""

    height: int
    width: int
    base: SessionSnapshot
    base_mask: np.ndarray
    snap: SessionSnapshot
    clicks: list[tuple[int, int, bool]] = field(default_factory=list)  # (x, y, positive) in ``snap``
    mask: np.ndarray | None = None  # the mask of ``snap`` (None: ``base_mask``)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one request at a time per session
    _nbytes: int = field(default=0, repr=False)
    _nbytes_of: SessionSnapshot | None = field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        """Bytes of this session's arrays, computed once per state (the store sums it over all sessions)."""
        if self._nbytes_of is not self.snap:
            self._nbytes, self._nbytes_of = self.snap.nbytes + self.base_mask.nbytes, self.snap
        return self._nbytes

    def current_mask(self) -> np.ndarray:
        return self.base_mask if self.mask is None else self.mask

    def state(self) -> tuple[SessionSnapshot, list[tuple[int, int, bool]], np.ndarray | None]:
        return self.snap, self.clicks, self.mask

    def set_state(self, state: tuple[SessionSnapshot, list[tuple[int, int, bool]], np.ndarray | None]) -> None:
        self.snap, self.clicks, self.mask = state


class FairPool:
    """Hands items out first come, first served. A plain lock or ``queue.Queue`` wakes an arbitrary
    waiter: under 16 clients some waited 40x the median for the graphs (p99 23 s vs p50 0.6 s)."""

    def __init__(self, items: list) -> None:
        self._free = list(items)
        self._waiters: deque[tuple[threading.Event, list]] = deque()
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._free and not self._waiters:
                return self._free.pop()
            ready, slot = threading.Event(), []
            self._waiters.append((ready, slot))
        ready.wait()
        return slot[0]

    def put(self, item) -> None:
        with self._lock:
            if self._waiters:
                ready, slot = self._waiters.popleft()
                slot.append(item)
                ready.set()
            else:
                self._free.append(item)


def _yxyx_to_xyxy(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    y1, y2, x1, x2 = (int(v) for v in box)
    return x1, y1, x2, y2


class Engine:
    def __init__(self, model_dir: str | Path, backend: str, precision: str, threads: int | None,
                 workers: int = 1, cfr: str | None = None, merge: str = "official",
                 refiner_precision: str | None = None) -> None:
        if workers > 1 and backend != "onnxruntime":
            raise UserError(f"--graph-workers {workers} needs the onnxruntime backend ({backend}'s Sessions share one "
                            "infer request); use --graph-workers 1")
        from ..runtime.cfr import parse_cfr
        from ..runtime.paper_merge import wrap_session

        # CFR / the paper's merge wrap the Session; their spawns and snapshots are the wrapped Session's.
        session = Session(model_dir, backend=backend, precision=precision, threads=threads,
                          refiner_precision=refiner_precision)
        self.root = wrap_session(session, merge, parse_cfr(cfr))
        self.backend, self.precision, self.variant = backend, precision, self.root.variant
        self._pool = FairPool([self.root] + [self.root.spawn() for _ in range(workers - 1)])
        self._empty = self.root.spawn().snapshot()  # what an idle worker holds: no image, no references
        self.workers = workers

    @contextlib.contextmanager
    def _worker(self) -> Iterator[tuple[Session, float]]:
        t0 = time.perf_counter()
        s = self._pool.get()
        try:
            yield s, (time.perf_counter() - t0) * 1e3
        finally:
            s.restore(self._empty)  # so an idle worker keeps no evicted session's arrays alive
            self._pool.put(s)

    def warm_up(self) -> None:
        """One click on a blank image: the first inference of a compiled graph is slow on both backends."""
        with self._worker() as (s, _):
            s.set_image(np.full((64, 64, 3), 128, np.uint8))
            s.add_click(32, 32, True)

    def new_image(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> ImageState:
        # set_image / set_mask run no graph: a Session of its own, so clicks need not wait for them.
        s = self.root.spawn()
        s.set_image(rgb)
        if mask is not None:
            s.set_mask(mask)
        snap = s.snapshot()
        h, w = rgb.shape[:2]
        base_mask = mask.astype(bool, copy=False) if mask is not None else np.zeros((h, w), np.bool_)
        return ImageState(h, w, snap, base_mask, snap)

    def click(self, st: ImageState, x: int, y: int, positive: bool) -> tuple[ClickOutcome, tuple]:
        """A click on ``st``: its outcome and the state after it, which the caller stores with
        ``ImageState.set_state`` (or drops, for a preview): ``st`` itself is not changed."""
        with self._worker() as (s, wait_ms):
            s.restore(st.snap)
            res = s.add_click(x, y, positive)
            after = (s.snapshot(), s.clicks, res.mask)
        return self._outcome(res, len(after[1]), wait_ms, st), after

    def undo(self, st: ImageState) -> tuple[ClickOutcome, tuple]:
        if not st.clicks:
            raise UserError("nothing to undo: the session has no clicks since it was created or reset")
        s = self.root.spawn()  # undo runs no graph either
        s.restore(st.snap)
        res = s.undo()
        after = (s.snapshot(), s.clicks, None if res is None else res.mask)
        return self._outcome(res, len(after[1]), 0.0, st), after

    def reset(self, st: ImageState) -> tuple[ClickOutcome, tuple]:
        return self._outcome(None, 0, 0.0, st), (st.base, [], None)

    @staticmethod
    def _outcome(res: ClickResult | None, n: int, wait_ms: float, st: ImageState) -> ClickOutcome:
        if res is None:
            return ClickOutcome(st.base_mask, n, {"wait": wait_ms, "total": 0.0}, None, None)
        return ClickOutcome(res.mask, n, {**res.timings, "wait": wait_ms}, _yxyx_to_xyxy(res.target_box),
                            _yxyx_to_xyxy(res.focus_box))
