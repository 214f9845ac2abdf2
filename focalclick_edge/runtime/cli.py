"""`focalclick-edge segment`: one image, a list of clicks, a mask PNG (and an overlay)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cli_args import backend, check_writable, click, positive_int
from ..errors import UserError
from .runs import PRECISIONS, RUN_IDS


def write_png_atomic(path: Path, image: Any) -> None:
    import cv2

    from ..fileio import atomic_file

    with atomic_file(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise UserError(f"cannot write {path}; use a .png or .jpg file name")


def _overlay(image: Any, mask: Any, clicks: list[tuple[int, int, bool]]) -> Any:
    import cv2
    import numpy as np

    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR).astype(np.float32)
    tint = np.zeros_like(bgr)
    tint[..., 2] = 255
    over = np.where(mask[..., None], 0.55 * bgr + 0.45 * tint, bgr).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(over, contours, -1, (255, 255, 255), 1)
    for x, y, positive in clicks:
        cv2.circle(over, (x, y), 5, (0, 200, 0) if positive else (0, 0, 220), -1)
        cv2.circle(over, (x, y), 5, (255, 255, 255), 1)
    return over


def _shipped_model() -> Path:
    from ..assets import shipped_model_dir

    path = shipped_model_dir("b0-s1")
    if path is None:
        raise UserError("this install ships no exported model; pass --model DIR (written by `focalclick-edge export`)")
    return path


def _handle(args: argparse.Namespace) -> int:
    import numpy as np

    from .images import read_image, read_mask
    from .session import Session, check_click

    check_writable(args.out, "--out")
    check_writable(args.overlay, "--overlay")
    image = read_image(args.image)
    for x, y, _ in args.click:  # before loading the model
        check_click(x, y, image.shape[:2])
    from .cfr import parse_cfr
    from .paper_merge import wrap_session

    spec = parse_cfr(args.cfr)
    session = Session(args.model or _shipped_model(), backend=args.backend, precision=args.precision,
                      threads=args.threads, working_resolution=args.working_resolution, run=args.run)
    if session.run_choice is not None:
        from .run_choice import describe_choice

        print(describe_choice(session.run_choice))
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
    write_png_atomic(Path(args.out), result.mask.astype(np.uint8) * 255)
    if args.overlay:
        write_png_atomic(Path(args.overlay), _overlay(image, result.mask, args.click))
    print(f"wrote {args.out}" + (f" and {args.overlay}" if args.overlay else ""))
    return 0


def add_parser(sub: Any) -> Any:
    p = sub.add_parser("segment", help="segment an image from clicks with an exported model")
    p.add_argument("image")
    p.add_argument("--model", default=None, help="model directory written by `export` (default: the shipped b0-s1)")
    p.add_argument("--click", action="append", type=click, required=True, metavar="X,Y,+|-",
                   help="a click in pixels; repeat in order")
    p.add_argument("--init-mask", help="start from this mask (PNG, nonzero = object)")
    p.add_argument("--backend", type=backend, default="onnxruntime", help="onnxruntime (ort) or openvino (ov)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    p.add_argument("--run", default=None,
                   help=f"a run id ({', '.join(RUN_IDS)}; overrides --backend/--precision) "
                        "or auto: the fastest run on this CPU whose recorded accuracy passes")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--cfr", default=None, metavar="SPEC",
                   help="cascade-forward refinement after each click: N (CFR-N) or aN (A-CFR-N), e.g. 1, a4")
    p.add_argument("--merge", choices=("official", "paper"), default="official",
                   help="Progressive Merge: official or paper (after click 10, no label-0 flood)")
    p.add_argument("--working-resolution", action="store_true",
                   help="process an image above 2 MP downscaled to 2 MP, the mask upsampled in each click's box "
                        "(faster on large photos; masks differ from full resolution, see README)")
    p.add_argument("--out", required=True, help="mask PNG to write (0 / 255)")
    p.add_argument("--overlay", help="also write the image with the mask and clicks drawn on it")
    return _handle
