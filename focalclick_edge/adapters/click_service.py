"""Stateless clicks -> mask over the stateful runtime, for tools that resend every point on each call.

CVAT and Label Studio send the frame and *all* points so far on every call (CVAT as two unordered
lists, positives and negatives). FocalClick's answer depends on the click order and on the previous
mask, so replaying every point per call would cost O(n) clicks per call and lose the order. Instead the
Session state after every click prefix is kept, keyed by (image digest, run): a call whose points are a
cached prefix plus one point continues from that prefix (one click of work), and the new point is the
one the prefix lacks, which recovers the order the user clicked in. A call with no usable prefix
replays its points in the order given (CVAT: positives then negatives, as CVAT's RITM function does).

Memory is bounded in bytes, least recently used image first. Snapshots share their arrays (a prefix's
snapshot holds the states of all shorter prefixes), so an image's cost is counted as the bytes each
snapshot adds over the one it continued from, which sums to the distinct bytes actually held.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from ..runtime import Session, SessionSnapshot
from .images import decode_image_bytes

Click = tuple[int, int, bool]  # (x, y, positive)
DEFAULT_MAX_BYTES = int(float(os.environ.get("FOCALCLICK_EDGE_ADAPTER_CACHE_MB", "1024")) * (1 << 20))


@dataclass
class ServiceStats:
    """Counters for tests, benchmarks and metrics; ``clicks_run`` counts ``Session.add_click`` calls."""

    calls: int = 0
    clicks_run: int = 0
    prefix_hits: int = 0  # calls that continued from a cached prefix of one click or more
    images_decoded: int = 0
    evicted_images: int = 0


@dataclass
class ServiceResult:
    prob: np.ndarray  # float32 HxW
    mask: np.ndarray  # bool HxW (the Session's mask)
    clicks: list[Click]  # the order the answer was computed in
    reused: int  # clicks taken from the cache
    computed: int  # clicks run by this call


@dataclass
class ImageHandle:
    """An image the service knows: its cache key, its size, and its clicked-nothing snapshot."""

    key: tuple[str, str]  # (image digest, run id)
    height: int
    width: int
    root: SessionSnapshot


@dataclass
class _Entry:
    root: SessionSnapshot
    prefixes: dict[tuple[Click, ...], SessionSnapshot] = field(default_factory=dict)
    nbytes: int = 0


def image_digest(image: bytes | np.ndarray) -> str:
    """sha256 of the encoded bytes (a repeated frame is recognised without decoding it) or of the
    array's shape, dtype and pixels."""
    h = hashlib.sha256()
    if isinstance(image, bytes | bytearray | memoryview):
        h.update(b"bytes:")
        h.update(image)
    else:
        arr = np.ascontiguousarray(image)
        h.update(f"array:{arr.shape}:{arr.dtype.str}:".encode())
        h.update(arr.data)
    return h.hexdigest()


def _is_sub_multiset(small: Counter, big: Counter) -> bool:
    return all(big[k] >= n for k, n in small.items())


class ClickService:
    """Thread-safe clicks -> mask over one or more runs (``run id -> Session``); graph runs are serialised.

    The service works on its own ``spawn()`` of each Session, so the Sessions passed in are left alone.
    """

    def __init__(self, runs: Session | Mapping[str, Session], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if isinstance(runs, Session):
            runs = {"default": runs}
        if not runs:
            raise UserError("ClickService needs at least one Session")
        self._workers = {run: s.spawn() for run, s in runs.items()}
        self.default_run = next(iter(runs))
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()
        self.stats = ServiceStats()

    @property
    def runs(self) -> list[str]:
        return list(self._workers)

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    @property
    def cached_images(self) -> int:
        return len(self._entries)

    def _worker(self, run: str | None) -> tuple[str, Session]:
        run = run or self.default_run
        try:
            return run, self._workers[run]
        except KeyError:
            raise UserError(f"unknown run {run!r}; this service has: {', '.join(self._workers)}") from None

    # ----------------------------------------------------------------------------------- images
    def open_image(self, image: bytes | np.ndarray, run: str | None = None) -> ImageHandle:
        """Look an image up by digest, decoding (bytes) and setting it only when it is not cached."""
        run, worker = self._worker(run)
        key = (image_digest(image), run)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                root = entry.root
        if entry is None:
            # Decoding runs outside the lock: it is the slow part of a cold call and needs no graph.
            rgb = decode_image_bytes(bytes(image)) if not isinstance(image, np.ndarray) else image
            with self._lock:
                self.stats.images_decoded += 1
                entry = self._entries.get(key)  # another thread may have set the same image meanwhile
                if entry is not None:
                    root = entry.root
                else:
                    worker.set_image(rgb)
                    root = worker.snapshot()
                    self._insert_entry(key, root)
                    self._evict()
        h, w = root.image.shape[1:] if root.image is not None else (0, 0)
        return ImageHandle(key, int(h), int(w), root)

    def _insert_entry(self, key: tuple[str, str], root: SessionSnapshot) -> _Entry:
        entry = _Entry(root=root, nbytes=root.nbytes)
        self._entries[key] = entry
        self._bytes += entry.nbytes
        return entry

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._entries:
            _, old = self._entries.popitem(last=False)
            self._bytes -= old.nbytes
            self.stats.evicted_images += 1

    # ----------------------------------------------------------------------------------- clicks
    def _best_prefix(self, entry: _Entry, clicks: Sequence[Click], ordered: bool) -> tuple[Click, ...]:
        """The longest cached prefix usable for ``clicks``: a sequence prefix of them (``ordered``) or,
        for unordered point lists, a sub-multiset of them. Ties go to the most recently cached."""
        best: tuple[Click, ...] = ()
        want = Counter(clicks)
        for prefix in entry.prefixes:
            if len(prefix) > len(clicks) or len(prefix) < len(best):
                continue
            ok = tuple(clicks[: len(prefix)]) == prefix if ordered else _is_sub_multiset(Counter(prefix), want)
            if ok:
                best = prefix
        return best

    def segment(self, handle: ImageHandle, clicks: Sequence[Click], ordered: bool = True) -> ServiceResult:
        """The mask after ``clicks`` on the image of ``handle``.

        ``ordered``: the clicks are in the order the user made them (Label Studio's keypoints). Otherwise
        they are an unordered point set (CVAT): the cached prefix that the set extends fixes the order,
        and points it lacks are run in the order given.
        """
        clicks = [(int(x), int(y), bool(p)) for x, y, p in clicks]
        if not clicks:
            raise UserError("no clicks: send at least one positive point")
        for x, y, _ in clicks:
            if not (0 <= x < handle.width and 0 <= y < handle.height):
                raise UserError(f"point ({x}, {y}) is outside the {handle.width}x{handle.height} image")
        _, worker = self._worker(handle.key[1])
        with self._lock:
            self.stats.calls += 1
            entry = self._entries.get(handle.key)
            if entry is None:  # evicted since open_image: the handle still holds the image
                entry = self._insert_entry(handle.key, handle.root)
            self._entries.move_to_end(handle.key)
            prefix = self._best_prefix(entry, clicks, ordered)
            if prefix:
                self.stats.prefix_hits += 1
            rest = list(clicks)
            if ordered:
                rest = rest[len(prefix):]
            else:
                for c in prefix:
                    rest.remove(c)
            done = list(prefix)
            snap = entry.prefixes[prefix] if prefix else entry.root
            worker.restore(snap)
            result = worker.result
            for x, y, positive in rest:
                result = worker.add_click(x, y, positive)
                self.stats.clicks_run += 1
                done.append((x, y, positive))
                key = tuple(done)
                cached = entry.prefixes.get(key)
                if cached is not None:  # reached another way before: keep one copy, so counts stay exact
                    worker.restore(cached)
                    snap = cached
                    continue
                new = worker.snapshot()
                # The new snapshot holds everything the one it continued from holds, plus one state.
                added = new.nbytes - snap.nbytes
                entry.prefixes[key] = new
                entry.nbytes += added
                self._bytes += added
                snap = new
            assert result is not None
            self._evict()
        return ServiceResult(prob=result.prob, mask=result.mask, clicks=done, reused=len(prefix),
                             computed=len(rest))
