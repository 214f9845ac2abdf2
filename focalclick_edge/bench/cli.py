"""`focalclick-edge bench` argument parsing; the work is in runner.py / report.py (imported on use)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..cli_args import check_writable, non_negative_int, positive_int, run_list
from ..errors import UserError
from ..runtime.runs import RUN_IDS, TORCH_REFERENCE_RUN


def _handle(args: argparse.Namespace) -> int:
    from .report import format_table, write_json, write_plot
    from .runner import BenchConfig, run_bench

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
    p.add_argument("--json", type=Path, help="write the full result as JSON")
    p.add_argument("--plot", type=Path, help="write stacked stage bars with the budget line as PNG")
    return _handle
