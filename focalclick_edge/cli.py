"""`focalclick-edge` command line. Heavy imports happen inside each subcommand so that
`focalclick-edge variants` and the runtime commands work without the [export] extra."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .variants import VARIANTS

# Packages only the [export] extra installs (export, quantization, training, --vs-torch).
_EXPORT_EXTRA = {"torch", "onnx", "onnxslim", "nncf"}
_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def _command(name: str):
    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        _COMMANDS[name] = fn
        return fn

    return register


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


@_command("variants")
def _cmd_variants(args: argparse.Namespace) -> int:
    print(format_variants_table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="focalclick-edge",
        description="FocalClick interactive segmentation on CPUs: export, quantize, run, evaluate, benchmark.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("variants", help="list the six published FocalClick variants")
    from . import cli_commands

    cli_commands.add_subcommands(sub, _command)
    return p


def _terminate_as_interrupt() -> None:
    """SIGTERM (a killed CI job, `timeout`) unwinds like Ctrl-C, so atomic writers clean up their
    temporary files instead of leaving half-written model directories behind."""
    import signal

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    _terminate_as_interrupt()
    try:
        return _COMMANDS[args.command](args)
    except UserError as exc:
        print(f"focalclick-edge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in _EXPORT_EXTRA:
            print(
                f"focalclick-edge {args.command}: error: this command needs {exc.name.split('.')[0]}, which the "
                "runtime-only install leaves out; pip install \"focalclick-edge[export]\"",
                file=sys.stderr,
            )
            return 2
        raise
    except KeyboardInterrupt:
        print(f"focalclick-edge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
