"""`focalclick-edge cvat-function`: write a nuclio function directory for CVAT's serverless interactors."""
from __future__ import annotations

import argparse
from collections.abc import Callable

from ..runtime.runs import RUN_IDS


def add_parser(subparsers: argparse._SubParsersAction) -> Callable[[argparse.Namespace], int]:
    p = subparsers.add_parser(
        "cvat-function", help="write a nuclio function directory that serves a model to CVAT as an interactor")
    p.add_argument("--model", required=True, help="model directory written by `export`")
    p.add_argument("--run", default="ort-fp32",
                   help=f"backend and precision: {', '.join(RUN_IDS)} (default ort-fp32)")
    p.add_argument("--out", required=True, help="function directory to write (replaced if it exists)")
    p.add_argument("--package", default=None,
                   help="what the image pip-installs: a requirement (default: this focalclick-edge version) or a "
                        "local .whl, copied into the directory")
    p.add_argument("--threads", type=int, default=None, help="backend threads and the function's CPU limit")
    p.add_argument("--name", default=None, help="nuclio function name (default focalclick-edge-VARIANT-RUN)")
    return _run


def _run(args: argparse.Namespace) -> int:
    from .cvat_function import write_function_dir

    out = write_function_dir(args.model, args.run, args.out, package=args.package, threads=args.threads,
                             name=args.name)
    print(f"wrote {out}: deploy with `nuctl deploy --project-name cvat --path {out} --platform local` "
          "(or CVAT's serverless/deploy_cpu.sh)")
    return 0
