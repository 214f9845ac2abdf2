from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focalclick_edge.evaluation.clicker import Click, Clicker, next_click
from focalclick_edge.evaluation.metrics import iou

REFERENCE = Path(__file__).parent / "fixtures" / "reference"
VARIANTS = ["hrnet18s-s1", "hrnet18s-s2", "hrnet32-s2", "b0-s1", "b0-s2", "b3-s2"]
RUNS = ["scratch0", "scratch1", "scratch2", "init0", "long0"]


@pytest.fixture(scope="module")
def official_cases() -> dict[str, np.ndarray]:
    return dict(np.load(REFERENCE / "pipeline_functions.npz"))


def test_matches_the_official_clicker_on_all_40_reference_cases(official_cases):
    gt = official_cases["clicker_gt"]
    n, h, w = gt.shape
    preds = np.unpackbits(official_cases["clicker_pred"], axis=1)[:, : h * w].reshape(n, h, w).astype(bool)
    prev = official_cases["clicker_prev_clicks_yx_pos"]  # rows of (-1, -1, -1) are padding
    expected = official_cases["clicker_out_yx_pos"]
    assert n == 40 and (gt == -1).any(axis=(1, 2)).sum() > 0
    for i in range(n):
        clicker = Clicker(gt[i])
        for row in prev[i]:
            if row[0] >= 0:
                clicker.add_click(Click(*row))
        got = clicker.make_next_click(preds[i])
        assert (got.y, got.x, int(got.positive)) == tuple(expected[i]), f"case {i}"
        clicked = np.zeros((h, w), bool)
        for row in prev[i]:
            if row[0] >= 0:
                clicked[row[0], row[1]] = True
        assert next_click(gt[i], preds[i], clicked) == got


@pytest.mark.parametrize("variant", VARIANTS)
def test_replays_the_official_sessions_click_for_click_with_their_ious(variant):
    ref = np.load(REFERENCE / variant / "session.npz")
    for run in RUNS:
        h, w = (int(v) for v in ref[f"{run}_image_hw"])

        def unpack(a: np.ndarray, h=h, w=w) -> np.ndarray:
            return np.unpackbits(a, axis=-1)[..., : h * w].reshape(*a.shape[:-1], h, w).astype(bool)

        gt = unpack(ref[f"{run}_gt_packbits"]).astype(np.int8)
        gt[unpack(ref[f"{run}_ignore_packbits"])] = -1
        masks = unpack(ref[f"{run}_mask_packbits"])
        prev = unpack(ref["init0_init_mask_packbits"]) if run == "init0" else np.zeros((h, w), bool)
        clicker = Clicker(gt)
        for i, expected in enumerate(ref[f"{run}_clicks_yx_pos"]):
            click = clicker.make_next_click(prev)
            assert (click.y, click.x, int(click.positive)) == tuple(expected), f"{run} click {i + 1}"
            # The official loop stores IoUs as float32.
            assert np.float32(iou(gt, masks[i])) == np.float32(ref[f"{run}_iou"][i])
            prev = masks[i]


def test_first_click_goes_to_the_interior_most_point_of_the_object():
    gt = np.zeros((64, 80), np.int8)
    cv2.circle(gt, (47, 30), 12, 1, -1)
    click = next_click(gt, np.zeros_like(gt, dtype=bool))
    assert click == Click(30, 47, True)


def test_ties_in_distance_go_to_the_first_pixel_in_raster_order():
    gt = np.zeros((40, 60), np.int8)
    gt[10:19, 20:40] = 1  # 9 rows: the middle row 14 is deepest, equally along many columns
    click = next_click(gt, np.zeros_like(gt, dtype=bool))
    dt = cv2.distanceTransform(np.pad(gt.astype(np.uint8), 1), cv2.DIST_L2, 0)[1:-1, 1:-1]
    ys, xs = np.nonzero(dt == dt.max())
    assert len(ys) > 1 and click == Click(int(ys[0]), int(xs[0]), True)


def test_negative_click_lands_inside_a_false_positive_blob():
    gt = np.zeros((64, 80), np.int8)
    gt[5:15, 5:15] = 1
    pred = gt.astype(bool)
    pred[30:51, 40:61] = True  # 21x21 spill, centre (40, 50)
    assert next_click(gt, pred) == Click(40, 50, False)


def test_equal_error_regions_give_a_negative_click():
    gt = np.zeros((30, 60), np.int8)
    gt[10:17, 5:12] = 1
    pred = np.zeros(gt.shape, bool)
    pred[10:17, 40:47] = True  # same 7x7 shape as the missed object: a tie
    click = next_click(gt, pred)
    assert not click.positive and (click.y, click.x) == (13, 43)


def test_image_border_counts_as_outside_the_error_region():
    # Without the 1-px zero frame a full-image error would have no zero pixel at all.
    gt = np.ones((21, 21), np.int8)
    assert next_click(gt, np.zeros(gt.shape, bool)) == Click(10, 10, True)


def test_perfect_prediction_gives_the_official_negative_click_at_the_origin():
    gt = np.zeros((10, 10), np.int8)
    gt[3:6, 3:6] = 1
    assert next_click(gt, gt == 1) == Click(0, 0, False)


def test_clicker_never_repeats_a_pixel_and_records_its_clicks():
    gt = np.zeros((32, 32), np.int8)
    cv2.circle(gt, (16, 16), 9, 1, -1)
    clicker = Clicker(gt)
    empty = np.zeros(gt.shape, bool)
    clicks = [clicker.make_next_click(empty) for _ in range(5)]
    assert clicker.clicks == clicks and len(clicker) == 5
    assert len({(c.y, c.x) for c in clicks}) == 5 and all(c.positive for c in clicks)
    assert clicks[0] == Click(16, 16, True)
    clicker.reset()
    assert clicker.clicks == [] and clicker.make_next_click(empty) == clicks[0]


@st.composite
def _cases(draw):
    h = draw(st.integers(4, 24))
    w = draw(st.integers(4, 24))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    gt = rng.choice(np.array([-1, 0, 1], np.int8), size=(h, w), p=[0.2, 0.5, 0.3])
    pred = rng.random((h, w)) < 0.4
    clicked = rng.random((h, w)) < 0.1
    return gt, pred, clicked


@settings(max_examples=150, deadline=None)
@given(_cases())
def test_the_ignore_band_and_clicked_pixels_are_never_clicked_while_errors_remain(case):
    gt, pred, clicked = case
    fn = (gt == 1) & ~pred & ~clicked
    fp = (gt == 0) & pred & ~clicked
    click = next_click(gt, pred, clicked)
    if fn.any() or fp.any():
        assert gt[click.y, click.x] != -1 and not clicked[click.y, click.x]
        assert (fn if click.positive else fp)[click.y, click.x]


def test_mismatched_prediction_shape_is_rejected():
    with pytest.raises(ValueError, match="differs from gt shape"):
        next_click(np.zeros((4, 4), np.int8), np.zeros((4, 5), bool))


def _exact_sq_distance(region: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Brute force: squared distance from each (y, x) to the nearest pixel outside ``region`` or the image."""
    outside = ~np.pad(region, 1)
    oy, ox = np.nonzero(outside)
    oy, ox = oy - 1, ox - 1
    return np.array([int(((oy - y) ** 2 + (ox - x) ** 2).min()) for y, x in zip(ys, xs, strict=True)])


def test_the_click_does_not_depend_on_opencvs_thread_count_and_is_the_exact_deepest_pixel():
    # An error region of GrabCut `bush` at click 5 (b0-s1): its deepest pixels tie, and OpenCV's precise
    # distance transform made (141, 341) or (142, 342) one ulp deeper with 2 threads or with 1.
    case = np.load(REFERENCE.parent / "clicker_tie_region.npz")
    shape = tuple(int(v) for v in case["shape"])
    region = np.unpackbits(case["region_packbits"])[: shape[0] * shape[1]].reshape(shape).astype(bool)
    gt = region.astype(np.int8)
    empty = np.zeros(shape, bool)
    before = cv2.getNumThreads()
    try:
        clicks = set()
        for threads in (1, 2, 4, 0):
            cv2.setNumThreads(threads)
            clicks.add(next_click(gt, empty))
    finally:
        cv2.setNumThreads(before)
    assert len(clicks) == 1
    (click,) = clicks
    # Exact squared distances of every pixel within an ulp-sized margin of OpenCV's deepest value.
    dt = cv2.distanceTransform(np.pad(region.astype(np.uint8), 1), cv2.DIST_L2, 0)[1:-1, 1:-1]
    ys, xs = np.nonzero(dt >= dt.max() - 1e-3)
    d2 = _exact_sq_distance(region, ys, xs)
    best = np.flatnonzero(d2 == d2.max())
    assert len(best) > 1  # a real tie
    assert click == Click(int(ys[best[0]]), int(xs[best[0]]), True)  # raster order: nonzero is row-major
