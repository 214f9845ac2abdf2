"""Subcommands other than `variants`; each imports what it needs only when it runs."""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from .errors import UserError

_RUNS = {
    "ort-fp32": ("onnxruntime", "fp32"),
    "ort-int8": ("onnxruntime", "int8"),
    "ov-fp32": ("openvino", "fp32"),
    "ov-fp16": ("openvino", "fp16"),
    "ov-int8": ("openvino", "int8"),
}
BACKEND_ALIASES = {"ort": "onnxruntime", "onnxruntime": "onnxruntime", "ov": "openvino", "openvino": "openvino"}


def parse_run_id(run: str) -> tuple[str, str]:
    try:
        return _RUNS[run]
    except KeyError:
        raise UserError(f"unknown run {run!r}; choose from: {', '.join(_RUNS)}") from None


def _parse_click(text: str) -> tuple[int, int, bool]:
    parts = text.replace(" ", "").split(",")
    if len(parts) != 3 or parts[2] not in {"+", "-", "pos", "neg", "1", "0"}:
        raise argparse.ArgumentTypeError(f"click {text!r} must look like X,Y,+ or X,Y,- (pixels)")
    try:
        x, y = int(parts[0]), int(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"click {text!r}: X and Y must be integer pixel coordinates") from None
    return x, y, parts[2] in {"+", "pos", "1"}


def _cmd_export(args: argparse.Namespace) -> int:
    from .export.exporter import export_variant

    kwargs: dict[str, Any] = {"progress": True}
    if args.int8:
        kwargs.update(int8=True, calib_data=args.calib_data, calib_size=args.calib_size, seed=args.seed,
                      max_drop=args.max_drop)
    out = args.out or Path("models") / (args.variant or Path(args.checkpoint).stem)
    export_variant(args.variant, out, checkpoint=args.checkpoint, **kwargs)
    return 0


def _write_png_atomic(path: Path, image: Any) -> None:
    import cv2

    from .fileio import atomic_file

    with atomic_file(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise UserError(f"cannot write {path}; use a .png or .jpg file name")


def _cmd_segment(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from .runtime import Session
    from .runtime.images import read_image, read_mask

    image = read_image(args.image)
    backend = BACKEND_ALIASES.get(args.backend)
    if backend is None:
        raise UserError(f"unknown backend {args.backend!r}; choose onnxruntime (ort) or openvino (ov)")
    from .runtime.cfr import parse_cfr
    from .runtime.paper_merge import wrap_session

    spec = parse_cfr(args.cfr)
    session = Session(args.model, backend=backend, precision=args.precision, threads=args.threads)
    session = wrap_session(session, args.merge, spec)
    session.set_image(image)
    if args.init_mask:
        session.set_mask(read_mask(args.init_mask, image.shape[:2]))
    result = None
    for i, (x, y, positive) in enumerate(args.click, 1):
        result = session.add_click(x, y, positive)
        t = result.timings
        print(f"click {i} ({x},{y},{'+' if positive else '-'}): {t['total']:.1f} ms "
              f"(segmentor {t['segmentor']:.1f}, refiner {t['refiner']:.1f}), mask {result.mask.mean():.1%} of image")
    assert result is not None
    _write_png_atomic(Path(args.out), result.mask.astype(np.uint8) * 255)
    if args.overlay:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR).astype(np.float32)
        tint = np.zeros_like(bgr)
        tint[..., 2] = 255
        m = result.mask[..., None]
        over = np.where(m, 0.55 * bgr + 0.45 * tint, bgr).astype(np.uint8)
        contours, _ = cv2.findContours(result.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(over, contours, -1, (255, 255, 255), 1)
        for x, y, positive in args.click:
            cv2.circle(over, (x, y), 5, (0, 200, 0) if positive else (0, 0, 220), -1)
            cv2.circle(over, (x, y), 5, (255, 255, 255), 1)
        _write_png_atomic(Path(args.overlay), over)
    print(f"wrote {args.out}" + (f" and {args.overlay}" if args.overlay else ""))
    return 0


def _optional(module: str, func: str, sub: Any, register: Any) -> None:
    """Subcommands whose modules may be absent from a partial install."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("focalclick_edge"):
            return
        raise
    getattr(mod, func)(sub, register)


def add_subcommands(sub: Any, register: Any) -> None:
    p = sub.add_parser("export", help="checkpoint -> ONNX / OpenVINO (FP32, FP16, INT8) model directory")
    p.add_argument("--variant", help="variant id (see `variants`); read from the checkpoint when omitted")
    p.add_argument("--checkpoint", help="official-format .pth (default: the checkpoint shipped for the variant)")
    p.add_argument("--out", help="model directory to write (default: models/<variant>)")
    p.add_argument("--int8", action="store_true", help="also write INT8 models, calibrated on click sessions")
    p.add_argument("--calib-data", help="calibration images: GrabCut / Berkeley / DAVIS / COCO_MVal / "
                   "images+masks folder (default: the built-in set)")
    p.add_argument("--calib-size", type=int, default=None, help="number of calibration images")
    p.add_argument("--max-drop", type=float, default=None,
                   help="accuracy-controlled INT8: allowed drop of session mIoU vs FP32")
    p.add_argument("--seed", type=int, default=0)
    register("export")(_cmd_export)

    p = sub.add_parser("segment", help="segment an image from clicks with an exported model")
    p.add_argument("image")
    p.add_argument("--model", required=True, help="model directory written by `export`")
    p.add_argument("--click", action="append", type=_parse_click, required=True, metavar="X,Y,+|-",
                   help="a click in pixels; repeat in order")
    p.add_argument("--init-mask", help="start from this mask (PNG, nonzero = object)")
    p.add_argument("--backend", default="onnxruntime", help="onnxruntime (ort) or openvino (ov)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cfr", default=None, metavar="SPEC",
                   help="cascade-forward refinement after each click: N (CFR-N) or aN (A-CFR-N), e.g. 1, a4")
    p.add_argument("--merge", choices=("official", "paper"), default="official",
                   help="Progressive Merge: official or paper (after click 10, no label-0 flood)")
    p.add_argument("--out", required=True, help="mask PNG to write (0 / 255)")
    p.add_argument("--overlay", help="also write the image with the mask and clicks drawn on it")
    register("segment")(_cmd_segment)

    _optional("focalclick_edge.evaluation.cli", "add_eval_subcommand", sub, register)
    _optional("focalclick_edge.bench.cli", "add_bench_subcommand", sub, register)
    _optional("focalclick_edge.training.cli", "add_train_subcommand", sub, register)
