"""``focalclick-edge train``: the argparse wiring for :func:`focalclick_edge.training.trainer.train`."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cli_args import name_path


def _name_path(text: str) -> tuple[str, str]:
    name, path = name_path(text)
    return name, str(path)


def add_parser(sub: Any) -> Any:
    """Add ``train`` to the CLI's subparsers; returns its handler."""
    p = sub.add_parser(
        "train",
        help="train a FocalClick model from scratch (official-format checkpoints)",
        description="Train with iterative click simulation, Target/Focus Crop simulation and the "
        "FocalClick losses. Never pass GrabCut, Berkeley or DAVIS as training data.",
    )
    p.add_argument("--variant", default="b0-s1", help="variant id (default b0-s1)")
    p.add_argument("--data", action="append", type=_name_path, default=[], metavar="NAME=PATH",
                   help="training dataset (repeatable); any layout the evaluation loaders read")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs); keep it outside the repo")
    p.add_argument("--iters", type=int, default=20000, help="total iterations (default 20000)")
    p.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    p.add_argument("--lr", type=float, default=6e-4, help="peak Adam learning rate (default 6e-4)")
    p.add_argument("--warmup", type=int, default=150, help="linear warm-up iterations (default 150)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pth + OUT/resume.pt")
    p.add_argument("--init", default="", metavar="CHECKPOINT",
                   help="start from these official-format weights with a fresh optimiser (when nothing is resumed)")
    p.add_argument("--schedule", choices=("step", "cosine"), default="step",
                   help="lr schedule: step decays at 83%%/92%% of --iters, or cosine to 2%% of --lr (default step)")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="keep an EMA of the weights (e.g. 0.999); validation and best.pth use it (default off)")
    p.add_argument("--val", action="append", type=_name_path, default=[], metavar="NAME=PATH",
                   help="held-out validation data for NoC (e.g. DUTS-TE); never an evaluation benchmark")
    p.add_argument("--val-every", type=int, default=300, help="validate every K iterations (default 300)")
    p.add_argument("--val-count", type=int, default=24,
                   help="validation images, evenly spaced over the names (0 = all of --val; default 24)")
    p.add_argument("--save-every", type=int, default=25,
                   help="save last.pth/resume.pt every N iterations (default 25)")
    p.add_argument("--autocast", choices=("off", "bf16"), default="off",
                   help="bf16: forwards under bfloat16 autocast (fast on CPUs with AVX512-BF16 or AMX; "
                        "losses stay float32)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--seed", type=int, default=0)

    def _cmd_train(args: argparse.Namespace) -> int:
        from ..errors import UserError
        from .trainer import TrainConfig, check_training_sets, train

        try:
            check_training_sets(args.data + args.val)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        cfg = TrainConfig(
            variant=args.variant, data=args.data, out=args.out, iters=args.iters, batch=args.batch,
            lr=args.lr, warmup=args.warmup, val=args.val, val_every=args.val_every, val_count=args.val_count,
            save_every=args.save_every, threads=args.threads, seed=args.seed, device=args.device,
            resume=args.resume, init=args.init, schedule=args.schedule, ema=args.ema, autocast=args.autocast,
        )
        if args.init and not Path(args.init).is_file():
            raise UserError(f"--init {args.init}: no such checkpoint file; pass an official-format .pth")
        if not 0.0 <= args.ema < 1.0:
            raise UserError(f"--ema {args.ema}: the decay must be in [0, 1), e.g. 0.999")
        try:
            summary = train(cfg)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        print(f"trained to step {summary['step']}; best NoC@90 {summary['best_noc90']}; "
              f"run folder {summary['out']}")
        return 0

    return _cmd_train
