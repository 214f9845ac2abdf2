"""`focalclick-edge eval`: NoC / NoF / mIoU@k and per-click latency of every run of a model directory."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..cli_args import DeprecatedAlias, check_writable, name_path, positive_int
from ..errors import UserError
from ..runtime.runs import RUN_IDS

EPILOG = f"""\
runs: {", ".join(RUN_IDS)} (default: every run the model directory has).
Sessions run until IoU >= --stop-iou (0.95) or --max-clicks, so NoC85/90/95 come from one pass; the
official scripts stop at 0.90, which gives the same NoC85/NoC90 but a different mIoU@k curve.
With --max-noc-drop X the exit status is 1 when an INT8 (or bf16) run's NoC90 exceeds that of the FP32 run
of the same backend (ort-int8 vs ort-fp32, ov-int8 and ov-bf16 vs ov-fp32) by more than X clicks (--max-drop:
the old name).
"""


def _resolve_runs(text: str | None, model_dir: str) -> list[str]:
    from ..runtime.model_dir import ModelDir
    from ..runtime.runs import parse_run_list, select_available

    md = ModelDir.open(model_dir)  # a one-line error for a missing / broken directory before anything else
    requested = None if text is None else parse_run_list(text)
    return select_available(requested, md.runs(), str(model_dir))


def _open_datasets(specs: list[tuple[str, Path]]) -> list[tuple[str, Any]]:
    """``--dataset NAME=PATH`` values (the name picks the layout: GrabCut, Berkeley, DAVIS, ...)."""
    from .datasets import load_dataset

    out: list[tuple[str, Any]] = []
    for name, path in specs:
        if any(name == n for n, _ in out):
            raise UserError(f"--dataset {name} is given twice; give each dataset a distinct NAME")
        try:
            ds = load_dataset(name, path)
        except ValueError as exc:  # the loaders' messages already say what is wrong and what to do
            raise UserError(f"--dataset {name}: {exc}") from None
        out.append((name, ds))
    return out


def _handle(args: argparse.Namespace) -> int:
    from .report import (
        build_report,
        check_gate_runs,
        format_table,
        max_drop_failures,
        require_matplotlib,
        summarize_results,
        write_plot,
        write_report_json,
    )
    from .runner import EvalSettings, evaluate

    # Every check that can fail runs before the evaluation, which can take a long time.
    if not args.dataset:
        raise UserError("pass at least one --dataset NAME=PATH")
    if args.max_noc_drop is not None and args.max_noc_drop < 0:
        raise UserError(f"--max-noc-drop is a number of NoC90 clicks, >= 0; got {args.max_noc_drop:g}")
    check_writable(args.json, "--json")
    check_writable(args.plot, "--plot")
    if not 0 < args.stop_iou <= 1.01:
        raise UserError(f"--stop-iou must be in (0, 1.01], got {args.stop_iou:g} (1.01: always run every click)")
    if not args.from_init_mask and (args.init_mask_seed is not None or args.cache_dir is not None):
        raise UserError("--init-mask-seed and --cache-dir only apply with --from-init-mask")
    if not 0 <= args.misleading <= args.max_clicks - 1:
        raise UserError(f"--misleading must be in [0, {args.max_clicks - 1}] (clicks 2..{args.max_clicks} can "
                        f"mislead), got {args.misleading}")
    from ..runtime.cfr import parse_cfr

    parse_cfr(args.cfr)  # a bad spec: one line, before anything runs
    if args.seed is not None and not args.misleading:
        raise UserError("--seed only applies with --misleading K")
    if args.ray_address and args.engine != "ray":
        raise UserError("--ray-address only applies with --engine ray")
    if args.engine == "ray":
        from .ray_engine import import_ray

        import_ray()  # not installed: say so before anything runs
    if args.run is not None:
        if args.runs:
            raise UserError("pass --run or --runs, not both")
        from ..runtime.run_choice import resolve_run_arg

        args.runs = resolve_run_arg(args.run, args.model, args.threads, log=lambda m: print(m, file=sys.stderr))
    runs = _resolve_runs(args.runs, args.model)
    if args.max_noc_drop is not None:
        check_gate_runs(runs)
    if args.plot:
        require_matplotlib()
    datasets = _open_datasets(args.dataset)

    settings = EvalSettings(
        model_dir=str(args.model), runs=tuple(runs), max_clicks=args.max_clicks, stop_iou=args.stop_iou,
        from_init_mask=args.from_init_mask, init_mask_seed=args.init_mask_seed or 0,
        cache_dir=str(args.cache_dir) if args.cache_dir else None, threads=args.threads, workers=args.workers,
        limit=args.limit, engine=args.engine, ray_address=args.ray_address,
        misleading=args.misleading, misleading_seed=args.seed or 0, cfr=args.cfr, merge=args.merge,
    )
    res = evaluate(datasets, settings, progress=not args.no_progress)
    summaries = summarize_results(res)
    print(format_table(res, summaries))
    print(f"evaluated in {res.wall_s:.1f} s")
    if args.json:
        write_report_json(args.json, build_report(res, summaries))
        print(f"wrote {args.json}")
    if args.plot:
        write_plot(args.plot, res, summaries)
        print(f"wrote {args.plot}")
    if args.max_noc_drop is not None:
        failures = max_drop_failures(summaries, args.max_noc_drop)
        if failures:
            for line in failures:
                print(f"focalclick-edge eval: max-noc-drop FAILED: {line}", file=sys.stderr)
            return 1
        print(f"max-noc-drop {args.max_noc_drop:g}: every INT8 / bf16 run is within {args.max_noc_drop:g} NoC90 clicks "
              "of its FP32 run")
    return 0


def add_parser(sub: Any) -> Any:
    p = sub.add_parser("eval", help="NoC/NoF/mIoU@k and per-click latency of exported runs on benchmark datasets",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="DIR", help="model directory written by `export`")
    p.add_argument("--dataset", action="append", type=name_path, metavar="NAME=PATH",
                   help="dataset folder; NAME picks the layout (GrabCut, Berkeley, DAVIS, COCO_MVal, SBD, or any "
                        "name for images/+masks/); repeat for several")
    p.add_argument("--runs", metavar="IDS", help="comma-separated run ids (default: every run the model directory has)")
    p.add_argument("--run", metavar="ID", help="one run id, or auto: the fastest run on this CPU whose recorded "
                                               "accuracy passes")
    p.add_argument("--from-init-mask", action="store_true",
                   help="Interactive Mask Correction: start every session from a generated defective mask "
                        "(the same cached mask for every run)")
    p.add_argument("--init-mask-seed", type=int, default=None, metavar="S",
                   help="seed of the initial masks (default 0)")
    p.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help="initial-mask cache (default: $FOCALCLICK_EDGE_CACHE/init_masks, else $XDG_CACHE_HOME or "
                        "~/.cache, then focalclick-edge/init_masks)")
    p.add_argument("--misleading", type=int, default=0, metavar="K",
                   help="misleading clicks per sample (FDRN protocol: repetitive or label-flipped), drawn per "
                        "sample from --seed, the same for every run (default 0: the standard protocol)")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="seed of the misleading clicks (default 0)")
    p.add_argument("--cfr", default=None, metavar="SPEC",
                   help="cascade-forward refinement after each click: N (CFR-N), aN (A-CFR-N: stop once <= 20 "
                        "pixels change), optionally @K for the first K clicks only (e.g. 1, a4, a4@1)")
    p.add_argument("--merge", choices=("official", "paper"), default="official",
                   help="Progressive Merge: official (only with --from-init-mask, label-0 flood) or paper "
                        "(from scratch after click 10, no flood)")
    p.add_argument("--max-clicks", type=positive_int, default=20, metavar="N", help="clicks per session (default 20)")
    p.add_argument("--stop-iou", type=float, default=0.95, metavar="IOU",
                   help="stop a session at this IoU (default 0.95 so NoC95 is measured; official: 0.90)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="only the first N samples of each dataset")
    p.add_argument("--workers", type=positive_int, default=1, metavar="K",
                   help="parallel processes (results do not depend on it)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process or a process pool (default); ray: actors on a Ray cluster")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="Ray cluster to join (auto, ray://HOST:10001, HOST:6379; default: start a local Ray)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="T",
                   help="threads per session (default: backend default with 1 worker, else cores / workers)")
    p.add_argument("--json", metavar="OUT.json",
                   help="write the full report (summaries, per-sample IoU curves, settings) here")
    p.add_argument("--plot", metavar="OUT.png",
                   help="write a PNG of mIoU vs clicks, one line per run (needs matplotlib)")
    p.add_argument("--max-noc-drop", type=float, default=None, metavar="CLICKS",
                   help="exit 1 when an INT8 (or bf16) run's NoC90 exceeds its FP32 run's by more than this many "
                        "clicks")
    p.add_argument("--max-drop", dest="max_noc_drop", type=float, action=DeprecatedAlias, new="--max-noc-drop")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return _handle
