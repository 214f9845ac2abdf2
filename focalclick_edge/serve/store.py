"""Live HTTP sessions: least-recently-used order, a count cap, a memory cap and a TTL.

An evicted or expired id is remembered (boundedly) so that its next request can be told "expired"
(410) rather than "never existed" (404).
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from .engine import ImageState

GONE_MEMORY = 100_000  # how many evicted ids are remembered for 410s


class SessionGone(Exception):
    """The id was evicted or expired (410)."""


class SessionUnknown(Exception):
    """The id was never issued here (404)."""


class SessionStore:
    def __init__(self, max_sessions: int, ttl_s: float, max_bytes: int,
                 on_evict: Callable[[str], None] = lambda _reason: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_sessions, self.ttl_s, self.max_bytes = max_sessions, ttl_s, max_bytes
        self._live: OrderedDict[str, tuple[ImageState, float]] = OrderedDict()  # id -> (state, last used)
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._on_evict, self._clock = on_evict, clock

    def __len__(self) -> int:
        return len(self._live)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(st.nbytes for st, _ in self._live.values())

    def add(self, st: ImageState) -> str:
        sid = secrets.token_urlsafe(16)
        with self._lock:
            self._expire()
            while len(self._live) >= self.max_sessions:
                self._evict_oldest("lru")
            self._live[sid] = (st, self._clock())
            self._fit_memory(keep=sid)
        return sid

    def get(self, sid: str) -> ImageState:
        """The session, marked as just used."""
        with self._lock:
            self._expire()
            item = self._live.get(sid)
            if item is None:
                raise SessionGone(sid) if sid in self._gone else SessionUnknown(sid)
            self._live[sid] = (item[0], self._clock())
            self._live.move_to_end(sid)
            return item[0]

    def commit(self, sid: str, st: ImageState, state: tuple) -> bool:
        """Store ``state`` (after a click, undo or reset) in ``st`` and evict other sessions, least
        recently used first, while the memory cap is passed. One session over the cap by itself keeps
        its old state and gets False: the caller refuses the click."""
        with self._lock:
            old = st.state()
            st.set_state(state)
            if sid not in self._live:  # evicted meanwhile: nothing to account
                return True
            if st.nbytes > self.max_bytes:
                st.set_state(old)
                return False
            self._fit_memory(keep=sid)
            return True

    def delete(self, sid: str) -> None:
        with self._lock:
            if self._live.pop(sid, None) is None:
                raise SessionGone(sid) if sid in self._gone else SessionUnknown(sid)

    def _expire(self) -> None:
        now = self._clock()
        while self._live:
            sid, (_, used) = next(iter(self._live.items()))
            if now - used <= self.ttl_s:
                break
            self._evict_oldest("ttl")

    def _fit_memory(self, keep: str) -> None:
        # The session being used is never evicted by its own request: one image over the cap is refused
        # at upload instead (see app.py).
        total = sum(st.nbytes for st, _ in self._live.values())
        for sid in list(self._live):
            if total <= self.max_bytes:
                break
            if sid == keep:
                continue
            total -= self._live[sid][0].nbytes
            self._live.pop(sid)
            self._remember_gone(sid)
            self._on_evict("memory")

    def _evict_oldest(self, reason: str) -> None:
        sid, _ = self._live.popitem(last=False)
        self._remember_gone(sid)
        self._on_evict(reason)

    def _remember_gone(self, sid: str) -> None:
        self._gone[sid] = None
        while len(self._gone) > GONE_MEMORY:
            self._gone.popitem(last=False)
