"""`focalclick-edge bench` argument parsing; the work is in runner.py / report.py (imported on use)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..cli_args import check_writable, non_negative_int, positive_int, run_list
from ..errors import UserError
from ..runtime.runs import RUN_IDS, TORCH_REFERENCE_RUN


def _mp_list(text: str) -> list[float]:
    try:
        mps = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        mps = []
    if not mps or any(not 0.01 <= v <= 200 for v in mps):
        raise argparse.ArgumentTypeError(f"{text!r}: give a comma list of megapixels in [0.01, 200], e.g. 0.4,12,48")
    return mps


def _handle_image_size(args: argparse.Namespace) -> int:
    from ..assets import sample_image_paths
    from ..fileio import write_json_atomic
    from ..hardware import available_cpus
    from .image_size import format_image_size_table, run_image_size_bench, write_image_size_plot

    if (args.image is None) != (args.mask is None):
        raise UserError("--image and --mask go together: give both, or neither for the bundled sample")
    check_writable(args.json, "--json")
    check_writable(args.plot, "--plot")
    image, mask = (args.image, args.mask) if args.image else sample_image_paths()
    runs = args.runs or ["ov-int8"]
    if len(runs) != 1:
        raise UserError("--image-mp measures one run: pass a single --runs id (or --run)")
    kwargs = {"working_resolution": True} if args.working_resolution else {}
    result = run_image_size_bench(args.model, runs[0], args.image_mp, args.threads or available_cpus(), image, mask,
                                  rounds=args.rounds, session_kwargs=kwargs,
                                  log=lambda msg: print(msg, file=sys.stderr))
    print(format_image_size_table(result))
    if args.json:
        write_json_atomic(args.json, result)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot:
        write_image_size_plot(result, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def _handle(args: argparse.Namespace) -> int:
    from .report import format_table, write_json, write_plot
    from .runner import BenchConfig, run_bench

    if args.run is not None:
        from ..runtime.run_choice import resolve_run_arg

        if args.runs:
            raise UserError("pass --run or --runs, not both")
        args.runs = [resolve_run_arg(args.run, args.model, args.threads, log=lambda m: print(m, file=sys.stderr))]
    if args.image_mp:
        return _handle_image_size(args)
    if args.checkpoint is not None and not args.vs_torch:
        raise UserError("--checkpoint is the PyTorch reference's checkpoint; add --vs-torch or drop it")
    check_writable(args.json, "--json")
    check_writable(args.plot, "--plot")
    cfg = BenchConfig(
        model_dir=Path(args.model), runs=args.runs, threads=args.threads, clicks=args.clicks,
        sessions=args.sessions, warmup=args.warmup, rounds=args.rounds, image=args.image, mask=args.mask,
        vs_torch=args.vs_torch, checkpoint=args.checkpoint,
    )
    # Progress goes to stderr so that stdout carries only the table.
    result = run_bench(cfg, log=lambda msg: print(msg, file=sys.stderr))
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot:
        write_plot(result, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def add_parser(sub: Any) -> Any:
    p = sub.add_parser(
        "bench",
        help="per-click latency per stage vs the paper's CPU budgets (every runtime configuration)",
        description=(
            "Runs realistic click sessions (NoC clicker against a ground-truth mask) with each backend / "
            "precision of a model directory, one process per run, warm-up excluded, and reports per-stage "
            "p50/p90, load time, peak RSS and the paper's Segmentor/Refiner budgets."
        ),
    )
    p.add_argument("--model", required=True, type=Path, help="model directory written by `export`")
    p.add_argument("--runs", type=run_list, default=None,
                   help=f"comma list of {', '.join(RUN_IDS)} (default: all the model directory has)")
    p.add_argument("--run", default=None, metavar="ID",
                   help="one run id, or auto: the fastest run on this CPU whose recorded accuracy passes")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads for every backend (default: all CPUs this process may use)")
    p.add_argument("--clicks", type=positive_int, default=20, help="clicks per session (default 20)")
    p.add_argument("--sessions", type=positive_int, default=3, help="timed sessions per run (default 3)")
    p.add_argument("--warmup", type=non_negative_int, default=3, help="untimed warm-up clicks per run (default 3)")
    p.add_argument("--rounds", type=positive_int, default=1,
                   help="repeat all runs this many times, interleaved, and pool each run's clicks: spreads a "
                        "shared machine's drift over every run (default 1)")
    p.add_argument("--image", type=Path, help="image to click on (default: the bundled sample)")
    p.add_argument("--mask", type=Path, help="its ground-truth mask, nonzero = object (needed with --image)")
    p.add_argument("--vs-torch", action="store_true",
                   help=f"also run our PyTorch FP32 eager models ({TORCH_REFERENCE_RUN}) on the same clicks and "
                        "report speed-ups")
    p.add_argument("--checkpoint", type=Path,
                   help="checkpoint for --vs-torch (default: the model card's source_checkpoint.path)")
    p.add_argument("--image-mp", type=_mp_list, default=None,
                   help="instead: per-click cost against image size, the image (and mask) upscaled to each of "
                        "these megapixels, e.g. 0.4,12,48 (one run; p50 of clicks 2-8, set_image, peak RSS)")
    p.add_argument("--working-resolution", action="store_true",
                   help="with --image-mp: process large images at the working resolution (see README)")
    p.add_argument("--json", type=Path, help="write the full result as JSON")
    p.add_argument("--plot", type=Path, help="write stacked stage bars with the budget line as PNG")
    return _handle
