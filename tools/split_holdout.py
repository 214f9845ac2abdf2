"""Split an ``images/`` + ``masks/`` dataset folder into a fixed validation part and the rest, as two folders
of symbolic links (nothing copied). The validation part is ``count`` names evenly spaced over the sorted
stems, so the split is the same on every machine and in every session:

    python tools/split_holdout.py /work/data/DUTS-TE 100   # -> DUTS-TE-val (100), DUTS-TE-rest (4,919)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def holdout_stems(stems: list[str], count: int) -> set[str]:
    stems = sorted(stems)
    idx = np.unique(np.linspace(0, len(stems) - 1, num=min(count, len(stems))).round().astype(int))
    return {stems[i] for i in idx}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("count", type=int)
    args = ap.parse_args(argv)
    images = {p.stem: p for p in (args.root / "images").iterdir() if p.is_file()}
    masks = {p.stem: p for p in (args.root / "masks").iterdir() if p.is_file()}
    stems = sorted(set(images) & set(masks))
    if not stems:
        print(f"error: no image/mask pairs under {args.root}/images + masks", file=sys.stderr)
        return 2
    val = holdout_stems(stems, args.count)
    for part, keep in (("val", val), ("rest", set(stems) - val)):
        dest = args.root.parent / f"{args.root.name}-{part}"
        for sub, src in (("images", images), ("masks", masks)):
            (dest / sub).mkdir(parents=True, exist_ok=True)
            for stem in keep:
                link = dest / sub / src[stem].name
                if not link.exists():
                    link.symlink_to(src[stem].resolve())
        print(json.dumps({"folder": str(dest), "pairs": len(keep)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
