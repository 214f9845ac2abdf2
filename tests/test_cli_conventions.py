"""One CLI convention: one-line errors (exit 2) for bad flags, negative clicks and unwritable outputs;
renamed flags with their deprecated spellings; flags that cannot take effect are errors."""
from __future__ import annotations

import argparse

from conftest import FIXTURES

from focalclick_edge import cli_args
from focalclick_edge.cli import build_parser, main

TEDDY = FIXTURES / "images" / "teddy.png"


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


def test_every_subcommand_module_exposes_add_parser_returning_its_handler():
    import importlib

    from focalclick_edge.cli import COMMAND_MODULES

    for name in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        handler = importlib.import_module(name).add_parser(sub)
        assert callable(handler) and len(sub.choices) == 1, name


def test_a_negative_click_is_the_one_line_outside_the_image_error(capsys, tmp_path):
    # The model is never opened: clicks are checked against the image first.
    rc = main(["segment", str(TEDDY), "--model", str(tmp_path / "none"), "--click", "-5,10,+",
               "--out", str(tmp_path / "m.png")])
    assert rc == 2
    _one_line_error(capsys, "click (-5, 10) is outside the 284x398 image")
    assert cli_args.join_negative_values(["--click", "-5,10,+", "--click", "3,4,-"]) == \
        ["--click=-5,10,+", "--click", "3,4,-"]


def test_an_unwritable_output_is_a_one_line_error_before_any_work(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc = main(["segment", str(TEDDY), "--model", str(tmp_path / "none"), "--click", "5,10,+",
               "--out", str(blocker / "mask.png")])
    assert rc == 2
    _one_line_error(capsys, "--out", "is not a directory")
    rc = main(["eval", "--model", str(tmp_path / "none"), "--dataset", f"GrabCut={tmp_path}",
               "--json", str(tmp_path)])
    assert rc == 2
    _one_line_error(capsys, "--json", "is a directory")


def test_usage_errors_are_one_line_too(capsys):
    assert main(["eval", "--model", "m", "--dataset", "no-equals-sign"]) == 2
    _one_line_error(capsys, "must be NAME=PATH")
    assert main(["bench", "--model", "m", "--runs", "ort-fp32,trt-int4"]) == 2
    _one_line_error(capsys, "unknown run 'trt-int4'")


def test_renamed_flags_keep_their_old_spelling_with_a_one_line_notice(capsys):
    args = build_parser().parse_args(["export", "--max-drop", "0.02"])
    assert args.max_iou_drop == 0.02
    assert "--max-drop is deprecated" in capsys.readouterr().err
    args = build_parser().parse_args(["eval", "--model", "m", "--dataset", "a=b", "--max-drop", "1.5"])
    assert args.max_noc_drop == 1.5
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "use --max-noc-drop" in err
    assert build_parser().parse_args(["export", "--max-iou-drop", "0.01"]).max_iou_drop == 0.01


def test_flags_that_cannot_take_effect_are_errors(capsys, tmp_path):
    assert main(["export", "--variant", "b0-s1", "--calib-size", "8", "--seed", "3", "--out", str(tmp_path / "m")]) == 2
    _one_line_error(capsys, "--calib-size, --seed only apply to the INT8 export; add --int8")
    assert not (tmp_path / "m").exists()
    assert main(["export", "--variant", "b0-s1", "--max-iou-drop", "0.02", "--out", str(tmp_path / "m")]) == 2
    _one_line_error(capsys, "--max-iou-drop only applies to the INT8 export")
    assert main(["bench", "--model", str(tmp_path), "--checkpoint", str(tmp_path / "x.pth")]) == 2
    _one_line_error(capsys, "add --vs-torch")


def test_one_cache_folder_rule_honours_focalclick_edge_cache(monkeypatch, tmp_path):
    from focalclick_edge.cache_dirs import cache_dir

    monkeypatch.setenv("FOCALCLICK_EDGE_CACHE", str(tmp_path / "c"))
    assert cache_dir("init_masks") == tmp_path / "c" / "init_masks"
    monkeypatch.delenv("FOCALCLICK_EDGE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir("calibration") == tmp_path / "x" / "focalclick-edge" / "calibration"


def test_sigterm_inside_a_c_extension_still_exits_as_interrupted(monkeypatch, capsys):
    """An interrupt that lands inside an extension's init comes back as that extension's error
    (`import openvino` raised ImportError "initialization failed" in CI): exit 130 and one line, not a
    traceback. The command's handler here signals itself and then fails the way that import did."""
    import os
    import signal

    from focalclick_edge import cli

    def interrupted_import(_args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs at the next bytecode boundary
            for _ in range(10_000):
                pass
        except KeyboardInterrupt:
            raise ImportError("initialization failed") from None
        raise AssertionError("SIGTERM did not interrupt")

    parser = cli.build_parser()
    args = parser.parse_args(["segment", "x.png", "--click", "1,1,+", "--out", "m.png"])
    monkeypatch.setattr(cli, "build_parser", lambda: _Fixed(args, interrupted_import))
    monkeypatch.setattr(cli, "_TERMINATED", [])
    old = signal.getsignal(signal.SIGTERM)
    try:
        assert main(["segment"]) == 130
    finally:
        signal.signal(signal.SIGTERM, old)
    assert capsys.readouterr().err.strip() == "focalclick-edge segment: interrupted"


class _Fixed:
    """A parser that returns fixed arguments with another handler."""

    def __init__(self, args: argparse.Namespace, handler) -> None:
        self._args, self._handler = args, handler

    def parse_args(self, _argv):
        self._args.handler = self._handler
        return self._args
