"""Keep the calibration cache bounded: least recently used files go first.

One 32-image b0-s1 record set is ~0.5 GB, and every new checkpoint, calibration set or seed adds one;
without a bound a few exports fill a laptop's disk. Use counts as "recently used": a cache hit touches
its file.
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_LIMIT_MB = 2048
ENV = "FOCALCLICK_EDGE_CACHE_MAX_MB"


def limit_bytes() -> int:
    """The cache's size bound: ``$FOCALCLICK_EDGE_CACHE_MAX_MB`` (0 keeps only the newest set) or 2 GiB."""
    raw = os.environ.get(ENV)
    try:
        mb = float(raw) if raw else DEFAULT_LIMIT_MB
    except ValueError:
        mb = DEFAULT_LIMIT_MB
    return int(max(mb, 0.0) * 1024 * 1024)


def touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only cache still serves hits


def prune(cache_dir: Path, keep: Path, limit: int | None = None, pattern: str = "calib-*.npz") -> list[Path]:
    """Delete the least recently used ``pattern`` files in ``cache_dir`` until the rest fit in ``limit``
    bytes; ``keep`` (the set just written or used) is never deleted. Returns what was deleted."""
    limit = limit_bytes() if limit is None else limit
    files = []
    for p in cache_dir.glob(pattern):
        try:
            st = p.stat()
        except OSError:
            continue
        files.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in files)
    removed = []
    for _, size, p in sorted(files):  # oldest use first
        if total <= limit:
            break
        if p.resolve() == keep.resolve():
            continue
        try:
            p.unlink()
        except OSError:
            continue
        total -= size
        removed.append(p)
    return removed
