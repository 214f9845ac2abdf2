"""`focalclick-edge export`: checkpoint -> model directory (the work is in exporter.py)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cli_args import DeprecatedAlias, check_writable, positive_int
from ..errors import UserError

# Flags that only mean something for the INT8 stage: without --int8 they are an error, not ignored.
_INT8_ONLY = (("calib_data", "--calib-data"), ("calib_size", "--calib-size"), ("seed", "--seed"),
              ("max_iou_drop", "--max-iou-drop"))


def _handle(args: argparse.Namespace) -> int:
    from .exporter import export_variant

    if not args.int8:
        given = [flag for dest, flag in _INT8_ONLY if getattr(args, dest) is not None]
        if given:
            verb = "apply" if len(given) > 1 else "applies"
            raise UserError(f"{', '.join(given)} only {verb} to the INT8 export; add --int8 or drop it")
    out = args.out or Path("models") / (args.variant or Path(args.checkpoint or "model").stem)
    check_writable(out, "--out", directory=True)
    export_variant(args.variant, out, checkpoint=args.checkpoint, progress=True, int8=args.int8,
                   calib_data=args.calib_data, calib_size=args.calib_size,
                   seed=0 if args.seed is None else args.seed, max_drop=args.max_iou_drop)
    return 0


def add_parser(sub: Any) -> Any:
    p = sub.add_parser("export", help="checkpoint -> ONNX / OpenVINO (FP32, FP16, INT8) model directory")
    p.add_argument("--variant", help="variant id (see `variants`); read from the checkpoint when omitted")
    p.add_argument("--checkpoint", help="official-format .pth (default: the checkpoint shipped for the variant)")
    p.add_argument("--out", help="model directory to write (default: models/<variant>)")
    p.add_argument("--int8", action="store_true", help="also write INT8 models, calibrated on click sessions")
    p.add_argument("--calib-data", help="with --int8: calibration images: GrabCut / Berkeley / DAVIS / COCO_MVal / "
                   "images+masks folder (default: the built-in set)")
    p.add_argument("--calib-size", type=positive_int, default=None, help="with --int8: number of calibration images")
    p.add_argument("--max-iou-drop", type=float, default=None, metavar="DROP",
                   help="with --int8: accuracy-controlled INT8, the allowed drop of mean session IoU vs FP32 "
                        "(an absolute IoU fraction, e.g. 0.02)")
    p.add_argument("--max-drop", dest="max_iou_drop", type=float, action=DeprecatedAlias, new="--max-iou-drop")
    p.add_argument("--seed", type=int, default=None, help="with --int8: calibration image selection seed (default 0)")
    return _handle
