"""Agreement of the working resolution with full-resolution processing (README, *Large photos*).

    python tools/working_resolution_agreement.py --model DIR --mp 12 --working-mp 2 --images 4 --clicks 6

GrabCut and Berkeley images (``--images`` of each, evenly spaced over the sorted names) and their masks are upscaled to
``--mp`` megapixels; a full-resolution Session plays the official clicker; a working-resolution Session
replays the same clicks; the IoU of the two masks after every click is reported (mean, worst, and the first
click's, which both sessions take from the same empty state) as JSON. ``--floor-run RUN`` replays the clicks
into a full-resolution Session of another run too: how far two runs that are on by default already are apart.

    python tools/working_resolution_agreement.py --model DIR --run ov-fp32 --working-mp 6 --floor-run ov-int8
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from focalclick_edge.bench.image_size import upscale_to_mp
from focalclick_edge.evaluation.clicker import Clicker
from focalclick_edge.evaluation.datasets import load_dataset
from focalclick_edge.runtime.session import Session


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--run", default="ov-int8")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    p.add_argument("--mp", type=float, default=12.0)
    p.add_argument("--working-mp", type=float, default=2.0)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--clicks", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--floor-run", default=None, help="also compare a full-resolution Session of this run")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    full = Session(a.model, run=a.run, threads=a.threads)
    work = Session(a.model, run=a.run, threads=a.threads, working_resolution=True, working_mp=a.working_mp)
    floor = None if a.floor_run is None else Session(a.model, run=a.floor_run, threads=a.threads)
    per_click: list[float] = []
    first: list[float] = []
    floor_ious: list[float] = []
    floor_first: list[float] = []
    rows = []
    for name in ("GrabCut", "Berkeley"):
        ds = load_dataset(name, Path(a.data) / name, check_masks=False)
        for i in np.linspace(0, len(ds) - 1, min(a.images, len(ds))).round().astype(int):
            sample = ds[int(i)]
            img, gt = upscale_to_mp(sample.image, sample.gt == 1, a.mp)
            for s in (full, work, floor):
                if s is not None:
                    s.set_image(img)
            clicker = Clicker(gt)
            pred = np.zeros(gt.shape, bool)
            ious, fl = [], []
            for _ in range(a.clicks):
                c = clicker.make_next_click(pred)
                pred = full.add_click(c.x, c.y, c.positive).mask
                ious.append(_iou(pred, work.add_click(c.x, c.y, c.positive).mask))
                if floor is not None:
                    fl.append(_iou(pred, floor.add_click(c.x, c.y, c.positive).mask))
            per_click += ious
            first.append(ious[0])
            row = {"dataset": name, "sample": sample.name, "ious": [round(v, 4) for v in ious]}
            if fl:
                floor_ious += fl
                floor_first.append(fl[0])
                row["floor_ious"] = [round(v, 4) for v in fl]
            rows.append(row)
            print(f"{name} {sample.name}: " + " ".join(f"{v:.3f}" for v in ious), file=sys.stderr, flush=True)
    out = {"run": a.run, "mp": a.mp, "working_mp": a.working_mp, "clicks": a.clicks,
           "mean_iou": round(float(np.mean(per_click)), 4), "worst_iou": round(float(np.min(per_click)), 4),
           "first_click_mean_iou": round(float(np.mean(first)), 4),
           "first_click_worst_iou": round(float(np.min(first)), 4)}
    if floor_ious:
        out["floor"] = {"run": a.floor_run, "mean_iou": round(float(np.mean(floor_ious)), 4),
                        "worst_iou": round(float(np.min(floor_ious)), 4),
                        "first_click_mean_iou": round(float(np.mean(floor_first)), 4)}
    out["samples"] = rows
    print(json.dumps({k: v for k, v in out.items() if k != "samples"}))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
