"""The box-local Session (tiled state, work within the boxes a click changes) gives bit for bit the
probabilities, masks and boxes of the full-image Session it replaced (tests/full_image_session.py)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from conftest import FIXTURES  # noqa: E402
from full_image_session import FullImageSession  # noqa: E402

from focalclick_edge.evaluation.clicker import Clicker  # noqa: E402
from focalclick_edge.runtime import Session, tiled_map  # noqa: E402


def _image_and_gt(name: str, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    img = cv2.cvtColor(cv2.imread(str(FIXTURES / "images" / f"{name}.png")), cv2.COLOR_BGR2RGB)
    gt = cv2.imread(str(FIXTURES / "images" / f"{name}.gt.png"), cv2.IMREAD_GRAYSCALE) > 127
    if scale != 1.0:
        size = (round(img.shape[1] * scale), round(img.shape[0] * scale))
        img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
        gt = cv2.resize(gt.view(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    return img, gt


def _reference(s: Session) -> FullImageSession:
    return FullImageSession.from_graphs(s.variant, {
        "net_input_size": s.net_size, "segmentor_feed_size": s.feed_size, "refiner_input_size": s.ref_size,
        "segmentor_disk_radius": s.seg_radius, "refiner_disk_radius": s.ref_radius, "feature_size": s.feature_size,
    }, s._segmentor, s._refiner, s.backend, s.precision, s.pipeline)


def _assert_same(a, b, k: int) -> None:
    assert a.target_box == b.target_box and a.focus_box == b.focus_box, f"click {k}: boxes differ"
    assert np.array_equal(a.mask, b.mask), f"click {k}: masks differ"  # first: before prob computes tiles
    assert np.array_equal(a.prob, b.prob), f"click {k}: probabilities differ"


@pytest.mark.parametrize(("name", "scale", "tile", "init", "lazy"), [
    ("teddy", 1.0, 256, False, False),
    ("book", 1.0, 64, False, False),      # many partial tiles
    ("elefant", 1.6, 96, False, False),   # upscaled, tiles not a divisor of the size
    ("music", 1.0, 64, True, False),      # Progressive Merge from an initial mask
    ("book", 1.0, 64, False, True),       # every box lazy: tiles computed where read, masks from bounds
    ("elefant", 1.6, 96, False, True),
    ("music", 1.0, 64, True, True),
])
def test_box_local_session_is_bit_identical_to_the_full_image_session_over_20_clicks(
        b0s1_fp32_model_dir, monkeypatch, name, scale, tile, init, lazy):
    """20 official-clicker clicks (past click 10, where the map outside the focus box is round-tripped
    through logit/sigmoid lazily), then undo and snapshot/restore: every probability map, mask and box
    equals the full-image implementation's bit for bit -- also with every box evaluated lazily per tile
    (as on large photos)."""
    monkeypatch.setattr(tiled_map, "TILE", tile)
    if lazy:
        monkeypatch.setattr(tiled_map, "LAZY_MIN_PIXELS", 0)
    img, gt = _image_and_gt(name, scale)
    s = Session(b0s1_fp32_model_dir)
    ref = _reference(s)
    s.set_image(img)
    ref.set_image(img)
    if init:
        init_mask = cv2.erode(gt.view(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
        init_mask[: img.shape[0] // 3] = True  # a wrong band, so clicks remove as well as add
        s.set_mask(init_mask)
        ref.set_mask(init_mask)
    clicker = Clicker(gt)
    pred = init_mask if init else np.zeros(gt.shape, bool)
    results = []
    for k in range(20):
        c = clicker.make_next_click(pred)
        a, b = s.add_click(c.x, c.y, c.positive), ref.add_click(c.x, c.y, c.positive)
        _assert_same(a, b, k + 1)
        pred = a.mask
        results.append(b)
        if k == 11:
            snap = s.snapshot()
    for k in range(19, 14, -1):  # undo back to click 15: the earlier results again
        s.undo()
        _assert_same(s.result, results[k - 1], k)
    s.restore(snap)
    assert np.array_equal(s.result.mask, results[11].mask)
    c = clicker.clicks[12]
    ref2 = _reference(s)
    ref2.set_image(img)
    if init:
        ref2.set_mask(init_mask)
    for prior in clicker.clicks[:12]:
        ref2.add_click(prior.x, prior.y, prior.positive)
    _assert_same(s.add_click(c.x, c.y, c.positive), ref2.add_click(c.x, c.y, c.positive), 13)


def test_a_click_builds_new_tiles_only_over_its_box_and_shares_the_rest(b0s1_fp32_model_dir, monkeypatch):
    """Undo history holds box diffs: each click's map has new data only in the tiles its box touches (the
    Target Crop up to click 10, the Focus Crop after); every other tile is the previous map's (or zero, or
    its lazy round trip, which holds no data until read)."""
    monkeypatch.setattr(tiled_map, "TILE", 64)
    img, gt = _image_and_gt("book", 2.0)
    s = Session(b0s1_fp32_model_dir)
    s.set_image(img)
    clicker = Clicker(gt)
    pred = np.zeros(gt.shape, bool)
    for k in range(1, 15):
        before = s.snapshot().state.prev_prob
        c = clicker.make_next_click(pred)
        r = s.add_click(c.x, c.y, c.positive)
        pred = r.mask
        after = s.snapshot().state.prev_prob
        y1, y2, x1, x2 = r.focus_box if k > 10 else r.target_box
        for ty, row in enumerate(after.grid):
            for tx, tile in enumerate(row):
                touches = ty * 64 < y2 and (ty + 1) * 64 > y1 and tx * 64 < x2 and (tx + 1) * 64 > x1
                if touches:
                    continue
                old = before.grid[ty][tx]
                if k > 10:
                    assert tile is None or tile is old or tile is old.roundtripped()
                else:
                    assert tile is None


@pytest.mark.parametrize("lazy", [False, True])
def test_history_keeps_no_masks_of_replaced_tiles_and_undo_recomputes_the_same(b0s1_fp32_model_dir, monkeypatch,
                                                                              lazy):
    """A replaced tile (reachable only by undo) forgets its memoised masks and, if lazy, its values, so
    the history costs tiles, not one mask per click; undo then computes the same masks bit for bit."""
    monkeypatch.setattr(tiled_map, "TILE", 64)
    if lazy:
        monkeypatch.setattr(tiled_map, "LAZY_MIN_PIXELS", 0)
    img, gt = _image_and_gt("book", 1.5)
    s = Session(b0s1_fp32_model_dir)
    s.set_image(img)
    clicker = Clicker(gt)
    pred = np.zeros(gt.shape, bool)
    masks = []
    for _ in range(6):
        c = clicker.make_next_click(pred)
        pred = s.add_click(c.x, c.y, c.positive).mask
        masks.append(pred.copy())
    snap = s.snapshot()
    live = {id(t) for m in (snap.state.prev_prob, snap.state.zoom_prev) if m is not None for t in m.tiles()}
    replaced = [t for st in snap.history for m in (st.prev_prob, st.zoom_prev) if m is not None
                for t in m.tiles() if id(t) not in live]
    assert replaced  # every click here changes a box
    assert all(not t._masks for t in replaced)
    if lazy:
        assert all(t._data is None for t in replaced if t._gen is not None)
    for k in range(4, -1, -1):
        assert np.array_equal(s.undo().mask, masks[k])


@pytest.mark.slow
def test_12mp_session_without_working_resolution_equals_the_full_image_session(b0s1_fp32_model_dir):
    """A 12 MP photo with the working resolution turned off runs the official pipeline at full resolution:
    masks (and boxes) bit-identical to the full-image Session's."""
    img, gt = _image_and_gt("book", (12e6 / (480 * 640)) ** 0.5)
    s = Session(b0s1_fp32_model_dir, working_resolution=False)
    ref = _reference(s)
    s.set_image(img)
    ref.set_image(img)
    assert s.working_size == s.image_size == img.shape[:2]
    clicker = Clicker(gt)
    pred = np.zeros(gt.shape, bool)
    for k in range(3):
        c = clicker.make_next_click(pred)
        a, b = s.add_click(c.x, c.y, c.positive), ref.add_click(c.x, c.y, c.positive)
        assert a.target_box == b.target_box and a.focus_box == b.focus_box
        assert np.array_equal(a.mask, b.mask), f"click {k + 1}: masks differ"
        pred = b.mask


def test_working_resolution_processes_a_large_image_downscaled_and_answers_at_full_size(b0s1_fp32_model_dir):
    """Above ``working_mp`` the pipeline runs on a downscaled copy; clicks are given and masks returned at
    full resolution; undo and snapshot/restore keep working. (Agreement with full-resolution processing
    needs trained weights: measured with the shipped model, README.)"""
    img, gt = _image_and_gt("teddy", 3.0)  # 0.99 MP
    s = Session(b0s1_fp32_model_dir, working_resolution=True, working_mp=0.3)
    s.set_image(img)
    assert s.image_size == img.shape[:2] and s.working_size[0] * s.working_size[1] <= 0.31e6
    clicker = Clicker(gt)
    pred = np.zeros(gt.shape, bool)
    masks = []
    for _ in range(4):
        c = clicker.make_next_click(pred)
        r = s.add_click(c.x, c.y, c.positive)
        pred = r.mask
        assert r.mask.shape == r.prob.shape == img.shape[:2]
        assert np.array_equal(r.mask, s.result.mask)
        masks.append(r.mask.copy())
        if len(masks) == 2:
            snap = s.snapshot()
    assert s.clicks[-1] == (clicker.clicks[-1].x, clicker.clicks[-1].y, clicker.clicks[-1].positive)
    assert np.array_equal(s.undo().mask, masks[2])
    s.restore(snap)
    assert np.array_equal(s.result.mask, masks[1]) and s.image_size == img.shape[:2]
