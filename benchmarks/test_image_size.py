"""pytest-benchmark: per-click cost against image size (the image and its mask upscaled).

    FCE_BENCH_IMAGE_MP=0.4,12,48 python -m pytest benchmarks/test_image_size.py --benchmark-only

Per size: one click (click 5 of an official-clicker session) around ``add_click`` + reading ``.mask``
and then ``undo``, and ``set_image`` of the upscaled array (decoding excluded). The targets (12 MP <= 1.5x
and 48 MP <= 2x the 0.4 MP click, ``set_image`` at 48 MP <= 300 ms, peak RSS of a 48 MP session <= 1 GB)
are checked by ``focalclick-edge bench --image-mp 0.4,12,48``, which runs each size in its own process
(peak RSS is per process) and reports the ratios within one run.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from bench_support import BENCH_CLICK, open_run

from focalclick_edge.bench.image_size import upscale_to_mp
from focalclick_edge.evaluation.clicker import Clicker

SIZES = [float(v) for v in os.environ.get("FCE_BENCH_IMAGE_MP", "0.4,12").split(",")]


@pytest.fixture(scope="module", params=SIZES, ids=lambda mp: f"{mp:g}MP")
def sized(request, model_dir, image_and_gt, threads):
    image, gt = upscale_to_mp(*image_and_gt, request.param)
    s = open_run(model_dir, os.environ.get("FCE_BENCH_RUN", "ort-fp32"), threads)
    s.set_image(image)
    clicker = Clicker(gt)
    pred = np.zeros(gt.shape, bool)
    clicks = []
    for _ in range(BENCH_CLICK + 1):
        c = clicker.make_next_click(pred)
        clicks.append((c.x, c.y, c.positive))
        pred = s.add_click(c.x, c.y, c.positive).mask
    return s, image, clicks


def test_click_with_mask(benchmark, sized):
    s, image, clicks = sized
    s.set_image(image)
    for x, y, p in clicks[:BENCH_CLICK]:
        s.add_click(x, y, p)
    x, y, p = clicks[BENCH_CLICK]

    def click() -> None:
        _ = s.add_click(x, y, p).mask
        s.undo()

    benchmark(click)


def test_set_image(benchmark, sized):
    s, image, _ = sized
    benchmark(s.set_image, image)
