"""pytest-benchmark: the per-click hot path per run, each graph alone, and each pure stage.

    python -m pytest benchmarks/ --benchmark-only [--benchmark-json out.json]

Inputs are those of a real click (the 5th of a NoC-clicker session on the sample image), so the
pure stages see realistic box sizes. `focalclick-edge bench` is the end-to-end, per-process
measurement; this suite is for before/after comparisons of one function at a time.
"""
from __future__ import annotations

import numpy as np
import pytest
from bench_support import BENCH_CLICK, ClickInputs, open_run, run_params

from focalclick_edge.evaluation.player import play_session
from focalclick_edge.runtime import geometry as g
from focalclick_edge.runtime.session import _logit, _sigmoid


# ------------------------------------------------------------------------------------ whole click
@pytest.mark.parametrize("run", run_params())
def test_click(benchmark, run, model_dir, image_and_gt, click_list, threads):
    """One ``add_click`` (click 5 of the session) followed by ``undo``, which only pops a state."""
    s = open_run(model_dir, run, threads)
    play_session(s, image=image_and_gt[0], clicks=click_list[:BENCH_CLICK])
    x, y, p = click_list[BENCH_CLICK]

    def click() -> None:
        s.add_click(x, y, p)
        s.undo()

    benchmark(click)


@pytest.mark.parametrize("run", run_params())
@pytest.mark.parametrize("graph", ["segmentor", "refiner"])
def test_graph(benchmark, run, graph, model_dir, click_inputs: ClickInputs, threads):
    """One inference of a graph alone, on the inputs of a real click."""
    s = open_run(model_dir, run, threads)
    ci = click_inputs
    rng = np.random.default_rng(0)
    if graph == "segmentor":
        feeds = {k: v.copy() for k, v in ci.segmentor_feeds.items()}
        model = s._segmentor
    else:
        r, fs = ci.ref_size, ci.feature_size
        feeds = {"image_focus": rng.random((1, 3, r, r), dtype=np.float32),
                 "click_maps_focus": np.zeros((1, 2, r, r), np.float32),
                 "cropped_feature": np.ascontiguousarray(ci.feature[:, :, :fs, :fs]),
                 "cropped_logits": rng.standard_normal((1, 1, r, r)).astype(np.float32)}
        model = s._refiner
    benchmark(model.run, feeds)


# ------------------------------------------------------------------------------------ pure stages
def test_stage_zoom_in_box(benchmark, click_inputs: ClickInputs):
    ci = click_inputs
    benchmark(g.zoom_in_box, ci.prev_prob, ci.clicks, ci.prev_prob.shape)


def test_stage_target_crop_inputs(benchmark, click_inputs: ClickInputs):
    """Image + previous-mask crops resized into the Segmentor's input, and the click disks (the
    session's own code: for S1 the composed 256 -> 128 filter)."""
    ci = click_inputs
    benchmark(ci.session._segmentor_feeds, ci.image, ci.prev_map, ci.input_box, ci.clicks)


def test_stage_click_disks(benchmark, click_inputs: ClickInputs):
    ci = click_inputs
    pts = np.concatenate([g.map_clicks_to_crop(ci.clicks, ci.input_box, ci.net_size), ci.clicks[:, 2:3]], axis=1)
    out = np.empty((2, ci.net_size, ci.net_size), np.float32)
    benchmark(g.click_disks, pts, (ci.net_size, ci.net_size), ci.seg_radius, out)


def test_stage_inverse_zoom(benchmark, click_inputs: ClickInputs):
    """sigmoid -> resize to the Target Crop -> logit (only inside global_roi)."""
    ci = click_inputs
    gy1, gy2, gx1, gx2 = ci.global_roi

    def inverse_zoom() -> np.ndarray:
        prob = g.resize_bilinear_align_corners(_sigmoid(ci.coarse256[0, 0]), (gy2 - gy1, gx2 - gx1))
        return _logit(prob)

    benchmark(inverse_zoom)


def test_stage_focus_crop_box(benchmark, click_inputs: ClickInputs):
    ci = click_inputs
    h, w = ci.prev_prob.shape
    gy1, gy2, gx1, gx2 = ci.global_roi
    click = (int(ci.clicks[-1, 0]), int(ci.clicks[-1, 1]))

    def focus() -> tuple[int, int, int, int]:
        pred = np.zeros((h, w), bool)
        np.greater(ci.logit_box, g.FOCUS_THRESH, out=pred[gy1:gy2, gx1:gx2])
        return g.focus_crop_box_from_masks(pred, ci.prev_prob > g.FOCUS_THRESH, ci.global_roi, click)

    benchmark(focus)


def test_stage_focus_inputs(benchmark, click_inputs: ClickInputs):
    """Focus image crop + refiner disks + both RoIAligns: everything the Refiner is fed."""
    ci = click_inputs
    r, fs, n = ci.ref_size, ci.feature_size, ci.net_size
    image_focus = np.empty((3, r, r), np.float32)
    maps = np.empty((2, r, r), np.float32)

    def focus_inputs() -> None:
        g.crop_resize_align_corners(ci.image, ci.focus, (r, r), out=image_focus, channels_first=True,
                                    scale=np.float32(1 / 255))
        pts = np.concatenate([g.map_clicks_to_focus(ci.clicks, ci.focus, r), ci.clicks[:, 2:3]], axis=1)
        g.click_disks(pts, (r, r), ci.ref_radius, out=maps)
        g.roi_align_aligned(ci.feature[0], ci.roi, (fs, fs), fs / n)
        g.roi_align_aligned(ci.coarse256[0], ci.roi, (r, r), 1.0)

    benchmark(focus_inputs)


def test_stage_roi_align_feature(benchmark, click_inputs: ClickInputs):
    ci = click_inputs
    fs = ci.feature_size
    benchmark(g.roi_align_aligned, ci.feature[0], ci.roi, (fs, fs), fs / ci.net_size)


def test_stage_roi_align_logits(benchmark, click_inputs: ClickInputs):
    ci = click_inputs
    benchmark(g.roi_align_aligned, ci.coarse256[0], ci.roi, (ci.ref_size, ci.ref_size), 1.0)


def test_stage_paste_back(benchmark, click_inputs: ClickInputs):
    """Refined logits into the focus box of the target-box logits, then sigmoid of the box."""
    ci = click_inputs
    gy1, gy2, gx1, gx2 = ci.global_roi
    fy1, fy2, fx1, fx2 = ci.focus
    h, w = ci.prev_prob.shape

    def paste() -> np.ndarray:
        logit_box = ci.logit_box.copy()
        g.paste_resized(logit_box, ci.refined[0, 0], (fy1 - gy1, fy2 - gy1, fx1 - gx1, fx2 - gx1))
        prob = np.zeros((h, w), np.float32)
        _sigmoid(logit_box, out=prob[gy1:gy2, gx1:gx2])
        return prob > 0.5

    benchmark(paste)


def test_stage_paste_back_after_click_10(benchmark, click_inputs: ClickInputs):
    """From click 11 on: logit of the whole previous map, paste, sigmoid of the whole image."""
    ci = click_inputs

    def paste() -> np.ndarray:
        full = _logit(ci.prev_prob)
        g.paste_resized(full, ci.refined[0, 0], ci.focus)
        return _sigmoid(full, out=full) > 0.5

    benchmark(paste)


def test_stage_progressive_merge(benchmark, click_inputs: ClickInputs):
    ci = click_inputs
    click = (int(ci.clicks[-1, 0]), int(ci.clicks[-1, 1]))
    benchmark(g.progressive_merge, ci.pred, ci.prev_mask, click)
