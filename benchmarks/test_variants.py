"""pytest-benchmark: one click of every variant (the six of the registry), FP32 runs of both engines.

    python -m pytest benchmarks/test_variants.py --benchmark-only [--benchmark-json out.json]

Each variant is exported once (FP32, ``make_weights`` stand-in weights: speed does not depend on the
values) and clicks the bundled sample: click 5 of a NoC-clicker session, ``add_click`` then ``undo``.
The README's six-variant table (best run incl. INT8, against our PyTorch FP32 and the paper's budget) comes
from ``focalclick-edge bench --vs-torch`` per variant and ``tools/variant_table.py``; this suite is for
before/after comparisons of one change across all six.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from bench_support import BENCH_CLICK, open_run

from focalclick_edge.evaluation.player import play_session
from focalclick_edge.runtime import Session
from focalclick_edge.variants import variant_ids

TESTS = Path(__file__).resolve().parents[1] / "tests"


@pytest.fixture(scope="session")
def variant_dirs() -> dict[str, Path]:
    """FP32 stand-in model directories, exported on first use, one per variant."""
    return {}


def _export(variant: str, root: Path) -> Path:
    pytest.importorskip("torch")
    from focalclick_edge.export.exporter import export_variant

    spec = importlib.util.spec_from_file_location("fce_tests_conftest", TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    tests_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tests_conftest)
    ckpt = tests_conftest.write_official_checkpoint(variant, root / f"{variant}.pth")
    export_variant(None, root / variant, checkpoint=ckpt, log=lambda _m: None)
    return root / variant


@pytest.mark.parametrize("run", ["ort-fp32", "ov-fp32"])
@pytest.mark.parametrize("variant", variant_ids())
def test_variant_click(benchmark, variant, run, variant_dirs, tmp_path_factory, image_and_gt, threads):
    if variant not in variant_dirs:
        variant_dirs[variant] = _export(variant, tmp_path_factory.mktemp(f"bench-{variant}"))
    model_dir = variant_dirs[variant]
    image, gt = image_and_gt
    clicks = play_session(Session(model_dir, threads=threads), gt, image=image, max_clicks=BENCH_CLICK + 1).clicks
    s = open_run(model_dir, run, threads)
    play_session(s, image=image, clicks=clicks[:BENCH_CLICK])
    x, y, p = clicks[BENCH_CLICK]

    def click() -> None:
        s.add_click(x, y, p)
        s.undo()

    benchmark(click)
