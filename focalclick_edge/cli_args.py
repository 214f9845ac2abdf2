"""Argument types and checks shared by every subcommand (one spelling of each rule and message).

Types raise ``argparse.ArgumentTypeError``; the CLI's parser prints that as its usual one line
(``focalclick-edge CMD: error: ...``, exit 2), like every ``UserError``.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import UserError
from .runtime.runs import backend_name, parse_run_list

CLICK_FLAGS = ("--click",)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _user_error_as_type_error(fn: Any, text: str) -> Any:
    try:
        return fn(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_list(text: str) -> list[str]:
    """``ort-fp32,ov-int8`` -> run ids of the run table (runtime/runs.py)."""
    return _user_error_as_type_error(parse_run_list, text)


def backend(text: str) -> str:
    """``ort`` / ``ov`` / ``onnxruntime`` / ``openvino`` -> the backend name."""
    return _user_error_as_type_error(backend_name, text)


def click(text: str) -> tuple[int, int, bool]:
    """``X,Y,+`` / ``X,Y,-`` (pixels) -> ``(x, y, positive)``; range checks are the Session's."""
    parts = text.replace(" ", "").split(",")
    if len(parts) != 3 or parts[2] not in {"+", "-", "pos", "neg", "1", "0"}:
        raise argparse.ArgumentTypeError(f"click {text!r} must look like X,Y,+ or X,Y,- (pixels)")
    try:
        x, y = int(parts[0]), int(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"click {text!r}: X and Y must be integer pixel coordinates") from None
    return x, y, parts[2] in {"+", "pos", "1"}


def name_path(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` -> (name, path); e.g. ``GrabCut=data/GrabCut``."""
    name, sep, path = text.partition("=")
    name, path = name.strip(), path.strip()
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r} must be NAME=PATH, e.g. GrabCut=data/GrabCut")
    return name, Path(path).expanduser()


def join_negative_values(argv: Sequence[str], flags: Sequence[str] = CLICK_FLAGS) -> list[str]:
    """``--click -5,10,+`` -> ``--click=-5,10,+``: argparse would read a value starting with ``-`` as an
    option; joined, it reaches the click type and then the Session's "outside the image" error."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in flags:
            value = next(it, None)
            if value is not None and value.startswith("-") and value[1:2].isdigit():
                out.append(f"{arg}={value}")
                continue
            out.append(arg)
            if value is not None:
                out.append(value)
            continue
        out.append(arg)
    return out


def check_writable(path: str | Path | None, flag: str, directory: bool = False) -> None:
    """A one-line error now, before any work, when ``path`` (a file; a directory with ``directory``)
    cannot be written."""
    if path is None:
        return
    p = Path(path).expanduser()
    if p.is_dir() and not directory:
        raise UserError(f"{flag} {p} is a directory; pass a file name")
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{flag} {p}: {parent} is not a directory; pick a writable path")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UserError(f"{flag} {p} is not writable; pick a writable path")


class DeprecatedAlias(argparse.Action):
    """An old flag name that still works for one release: stores into the new flag's ``dest`` and says
    so on one line of stderr."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", type: Any = None,  # noqa: A002
                 **kwargs: Any) -> None:
        kwargs.setdefault("help", f"deprecated spelling of {new}")
        super().__init__(option_strings, dest, type=type, **kwargs)
        self.new = new

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: note: {option_string} is deprecated and goes away in the next release; "
              f"use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors as one line (``PROG: error: ...``, exit 2), like every other bad input."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


__all__ = ["DeprecatedAlias", "OneLineErrorParser", "backend", "check_writable", "click", "join_negative_values",
           "name_path", "non_negative_int", "positive_int", "run_list"]
