"""Which float32 probabilities can cross a threshold under repeated logit -> sigmoid round trips?

From click 11 on, the official predictor round-trips the previous map outside the Focus Crop once per
click, which moves values by ulps (the round trip is not idempotent: ~2.5M float32 values in [0, 1]
change on a second pass). The Session applies those round trips lazily, and skips them when it only
needs a tile's ``> thresh`` mask, as long as the tile has no value whose orbit can cross ``thresh``
(tiled_map.UNSTABLE_BANDS). This script finds those values exhaustively: every float32 in [0.25, 0.75],
iterated until no value changes or ``--steps`` round trips (a few values cycle), recording which ever
land on the other side of each threshold. Run: ``python tools/roundtrip_orbits.py``.
"""
from __future__ import annotations

import argparse

import numpy as np

from focalclick_edge.runtime.tiled_map import roundtrip


def crossing_hull(thresh: float, lo: float = 0.25, hi: float = 0.75, steps: int = 500) -> tuple[float, float] | None:
    """(smallest, largest) start value in [lo, hi] whose orbit crosses ``thresh``, None if none does."""
    start = np.arange(np.float32(lo).view(np.uint32), np.float32(hi).view(np.uint32) + 1,
                      dtype=np.uint32).view(np.float32)
    t = np.float32(thresh)
    side = start > t
    crossed = np.zeros(start.shape, bool)
    q = start
    for _ in range(steps):
        nq = roundtrip(q)
        crossed |= (nq > t) != side
        if np.array_equal(nq, q):
            break
        q = nq
    idx = np.flatnonzero(crossed)
    return None if idx.size == 0 else (float(start[idx[0]]), float(start[idx[-1]]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--thresholds", default="0.49,0.5")
    ap.add_argument("--steps", type=int, default=500)
    args = ap.parse_args()
    for t in (float(v) for v in args.thresholds.split(",")):
        print(f"{t}: crossing start values {crossing_hull(t, steps=args.steps)}")


if __name__ == "__main__":
    main()
