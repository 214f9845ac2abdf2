"""Where focalclick-edge caches things (calibration records, initial masks): one rule for all.

``$FOCALCLICK_EDGE_CACHE/<kind>`` when that is set, else ``$XDG_CACHE_HOME/focalclick-edge/<kind>``,
else ``~/.cache/focalclick-edge/<kind>``. Nothing is created here.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = "FOCALCLICK_EDGE_CACHE"


def cache_dir(kind: str) -> Path:
    """The cache folder for ``kind`` (e.g. ``"calibration"``, ``"init_masks"``)."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser() / kind
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "focalclick-edge" / kind


__all__ = ["ENV", "cache_dir"]
