"""`focalclick-edge` command line.

One convention for every subcommand: its module exposes ``add_parser(subparsers) -> handler``, where
``handler(args) -> exit status``; shared argument types live in cli_args.py. Heavy imports happen inside
each handler, so that `focalclick-edge variants` and the runtime commands work without the [export] extra.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .cli_args import OneLineErrorParser, join_negative_values
from .variants import VARIANTS

Handler = Callable[[argparse.Namespace], int]
# Packages only the [export] extra installs (export, quantization, training, --vs-torch).
_EXPORT_EXTRA = {"torch", "onnx", "onnxslim", "nncf"}
# The subcommand modules, in help order; a module a partial install lacks is left out.
COMMAND_MODULES = (
    "focalclick_edge.export.cli",  # export
    "focalclick_edge.runtime.cli",  # segment
    "focalclick_edge.evaluation.cli",  # eval
    "focalclick_edge.bench.cli",  # bench
    "focalclick_edge.training.cli",  # train
    "focalclick_edge.serve.cli",  # serve
    "focalclick_edge.adapters.cvat_cli",  # cvat-function
)


def format_variants_table() -> str:
    head = (
        f"{'variant':<12} {'segmentor':<11} {'seg in':>6} {'ref in':>6} {'seg params':>10} {'ref params':>10} "
        f"{'seg GMAC':>8} {'ref GMAC':>8} {'paper CPU ms (seg+ref)':>23}"
    )
    lines = [head, "-" * len(head)]
    for v in VARIANTS.values():
        ms = f"{v.paper_cpu_ms_segmentor:g} + {v.paper_cpu_ms_refiner:g} = {v.paper_budget_ms:g}"
        lines.append(
            f"{v.id:<12} {v.backbone:<11} {v.segmentor_input_size:>6} {v.refiner_input_size:>6} "
            f"{v.params_segmentor_m:>9.2f}M {v.params_refiner_m:>9.3f}M {v.gmac_segmentor:>8.2f} "
            f"{v.gmac_refiner:>8.3f} {ms:>23}"
        )
    lines.append(
        "seg in: backbone input (the predictor always builds a 256x256 Target Crop; S1 nets halve it). "
        "Params/GMAC: official code; CPU ms: the paper (4-core 2.4 GHz i5)."
    )
    return "\n".join(lines)


def _add_variants_parser(sub: Any) -> Handler:
    sub.add_parser("variants", help="list the six published FocalClick variants")

    def handler(args: argparse.Namespace) -> int:
        print(format_variants_table())
        return 0

    return handler


def _command_adders() -> list[Callable[[Any], Handler]]:
    adders = [_add_variants_parser]
    for name in COMMAND_MODULES:
        try:
            adders.append(importlib.import_module(name).add_parser)
        except ModuleNotFoundError as exc:  # a partial install without that subpackage
            if not (exc.name and exc.name.startswith("focalclick_edge")):
                raise
    return adders


def build_parser() -> argparse.ArgumentParser:
    p = OneLineErrorParser(
        prog="focalclick-edge",
        description="FocalClick interactive segmentation on CPUs: export, quantize, run, evaluate, benchmark.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for add in _command_adders():
        before = set(sub.choices)
        handler = add(sub)
        for name in set(sub.choices) - before:
            sub.choices[name].set_defaults(handler=handler)
    return p


_TERMINATED: list[int] = []  # the signal that stopped this run, once one has


def _terminate_as_interrupt() -> None:
    """SIGTERM (a killed CI job, `timeout`) unwinds like Ctrl-C, so atomic writers clean up their
    temporary files instead of leaving half-written model directories behind. Only the first one
    interrupts: a second must not cut that cleanup short."""
    import signal

    def handler(signum: int, _frame: object) -> None:
        if not _TERMINATED:
            _TERMINATED.append(signum)
            raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    except SystemExit as exc:  # a usage error (already printed as one line) or --help
        return exc.code if isinstance(exc.code, int) else 2
    _terminate_as_interrupt()
    prog = f"focalclick-edge {args.command}"
    try:
        return _run(args, prog)
    except BaseException:
        # An interrupt that landed inside a C extension comes back as whatever that extension makes of
        # it (an interrupted `import openvino` raises ImportError "initialization failed"): still an
        # interrupt, not a crash.
        if _TERMINATED:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        raise


def _run(args: argparse.Namespace, prog: str) -> int:
    from .errors import UserError

    try:
        return args.handler(args)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in _EXPORT_EXTRA:
            print(
                f"{prog}: error: this command needs {exc.name.split('.')[0]}, which the "
                "runtime-only install leaves out; pip install \"focalclick-edge[export]\"",
                file=sys.stderr,
            )
            return 2
        raise
    except (PermissionError, IsADirectoryError, NotADirectoryError) as exc:  # an output that cannot be written
        print(f"{prog}: error: cannot write {exc.filename}: {exc.strerror}; pick a writable path", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
