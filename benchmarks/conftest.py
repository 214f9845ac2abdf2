"""Fixtures for the pytest-benchmark suite (not part of the default test run: pyproject's testpaths
is ``tests``). Run with ``python -m pytest benchmarks/ --benchmark-only``.

Environment:
  FCE_BENCH_MODEL   model directory to benchmark (default: a b0-s1 export with the deterministic
                    test weights, written once per run; needs torch)
  FCE_BENCH_IMAGE / FCE_BENCH_MASK   image and ground-truth mask (default: the bundled sample)
  FCE_BENCH_THREADS  backend threads (default: all available CPUs)
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from bench_support import BENCH_CLICK, ClickInputs

from focalclick_edge.evaluation.player import play_session
from focalclick_edge.hardware import available_cpus
from focalclick_edge.runtime import Session
from focalclick_edge.runtime import geometry as g
from focalclick_edge.runtime.images import read_image, read_mask

TESTS = Path(__file__).resolve().parents[1] / "tests"


@pytest.fixture(scope="session")
def threads() -> int:
    return int(os.environ.get("FCE_BENCH_THREADS") or available_cpus())


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    env = os.environ.get("FCE_BENCH_MODEL")
    if env:
        return Path(env)
    pytest.importorskip("torch")
    from focalclick_edge.export.exporter import export_variant

    # tests/conftest.py by path: the name ``conftest`` is this file's.
    spec = importlib.util.spec_from_file_location("fce_tests_conftest", TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    tests_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tests_conftest)
    write_official_checkpoint = tests_conftest.write_official_checkpoint

    root = tmp_path_factory.mktemp("bench-model")
    ckpt = write_official_checkpoint("b0-s1", root / "b0-s1.pth")
    export_variant(None, root / "model", checkpoint=ckpt, log=lambda _m: None)
    return root / "model"


@pytest.fixture(scope="session")
def image_and_gt() -> tuple[np.ndarray, np.ndarray]:
    if os.environ.get("FCE_BENCH_IMAGE"):
        img_path, mask_path = Path(os.environ["FCE_BENCH_IMAGE"]), Path(os.environ["FCE_BENCH_MASK"])
    else:
        from focalclick_edge.assets import sample_image_paths

        img_path, mask_path = sample_image_paths()
    image = read_image(img_path)
    return image, read_mask(mask_path, image.shape[:2])


@pytest.fixture(scope="session")
def click_list(model_dir, image_and_gt, threads) -> list[tuple[int, int, bool]]:
    """A realistic click sequence, (x, y, positive): the NoC clicker against the mask, driven by ort-fp32."""
    image, gt = image_and_gt
    return play_session(Session(model_dir, threads=threads), gt, image=image, max_clicks=BENCH_CLICK + 1).clicks


@pytest.fixture(scope="session")
def click_inputs(model_dir, image_and_gt, click_list, threads) -> ClickInputs:
    image, _ = image_and_gt
    s = Session(model_dir, threads=threads)
    s.set_image(image)
    play_session(s, clicks=click_list[:BENCH_CLICK])
    st = s._state
    planar = s._image
    h, w = planar.shape[1:]
    # The Target Crop's internal frame: (y, x, positive) rows.
    clicks = np.array([(cy, cx, float(cp)) for cx, cy, cp in [*st.clicks, click_list[BENCH_CLICK]]], np.float64)
    prev_map, prev_prob = st.prev_prob, st.prev_prob.to_array()  # the Session keeps tiled maps
    box = g.zoom_in_box(st.zoom_prev.to_array(), clicks, (h, w)) or (0, h - 1, 0, w - 1)
    result = s.add_click(*click_list[BENCH_CLICK])
    global_roi = result.target_box  # the (possibly stale) Zoom-In box, as the session used it
    n = s.net_size
    # The session's own Target Crop and logits upsampling (the graph may take the backbone size).
    feeds = {k: np.array(v) for k, v in s._segmentor_feeds(planar, prev_map, box, clicks).items()}
    coarse, feature = (np.array(o) for o in s._segmentor.run(feeds))
    coarse256 = np.array(s._logits_at_net_size(coarse))
    gy1, gy2, gx1, gx2 = global_roi
    from focalclick_edge.runtime.session import _logit, _sigmoid

    prob_in = g.resize_bilinear_align_corners(_sigmoid(coarse256[0, 0]), (gy2 - gy1, gx2 - gx1))
    logit_box = _logit(prob_in)
    pred = np.zeros((h, w), bool)
    pred[gy1:gy2, gx1:gx2] = logit_box > g.FOCUS_THRESH
    prev_mask = prev_prob > g.FOCUS_THRESH
    focus = result.focus_box
    roi = g.focus_roi_in_target_frame(focus, global_roi, n)
    refined = np.zeros((1, 1, s.ref_size, s.ref_size), np.float32) + 0.5
    return ClickInputs(planar, prev_prob, clicks, box, global_roi, coarse256, feature, logit_box, pred,
                       prev_mask, focus, roi, refined, n, s.ref_size, s.feature_size, s.seg_radius,
                       s.ref_radius, feeds, s, prev_map)
