from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focalclick_edge.evaluation.metrics import iou, miou_curve, noc, nof, summarize


def test_iou_leaves_out_ignore_pixels():
    gt = np.array([[1, 1, -1, 0]], np.int8)
    pred = np.array([[1, 0, 1, 1]], bool)
    # intersection 1; union over non-ignored pixels {0, 1, 3} = 3; the ignored spill does not count
    assert iou(gt, pred) == pytest.approx(1 / 3)
    assert iou(gt == 1, pred) == pytest.approx(1 / 4)  # a bool gt has no ignore region


def test_iou_of_two_empty_masks_is_one_and_shape_mismatch_is_rejected():
    assert iou(np.zeros((3, 3), np.int8), np.zeros((3, 3), bool)) == 1.0
    with pytest.raises(ValueError):
        iou(np.zeros((3, 3), np.int8), np.zeros((3, 4), bool))


def test_noc_is_the_first_click_reaching_the_threshold_else_max_clicks():
    ious = [0.5, 0.86, 0.84, 0.91, 0.96]
    assert noc(ious, 0.85) == 2
    assert noc(ious, 0.90) == 4
    assert noc(ious, 0.95) == 5
    assert noc(ious, 0.99) == 20
    assert noc([], 0.9) == 20
    assert noc([0.2] * 20 + [0.95], 0.9) == 20  # clicks past max_clicks do not exist


def test_noc_compares_in_float32_like_the_official_arrays():
    # 0.89999999 is below 0.9 in float64 but rounds to float32(0.9): the official code counts it.
    assert noc([0.5, 0.89999999], 0.9) == 2
    assert noc([0.5, 0.8999], 0.9) == 20


def test_nof_counts_noc_equal_to_max_clicks_unless_strict():
    never = [0.5] * 20
    at_last_click = [0.5] * 19 + [0.95]
    early = [0.95]
    samples = [never, at_last_click, early]
    assert nof(samples, 0.9) == 2  # the official ">=20@90" column
    assert nof(samples, 0.9, strict=True) == 1


def test_miou_curve_carries_the_last_iou_of_early_stopped_samples_forward():
    curve = miou_curve([np.array([0.5, 0.92], np.float32), np.array([0.2, 0.4, 0.6, 0.8])], max_clicks=5)
    expected = [(0.5 + 0.2) / 2, (0.92 + 0.4) / 2, (0.92 + 0.6) / 2, (0.92 + 0.8) / 2, (0.92 + 0.8) / 2]
    np.testing.assert_allclose(curve, expected, rtol=1e-6)
    assert miou_curve([], max_clicks=3).tolist() == [0.0, 0.0, 0.0]


def test_summarize_reports_noc_nof_and_the_miou_curve():
    samples = [np.array([0.8, 0.86, 0.91, 0.96]), np.array([0.3] * 20), np.array([0.97])]
    out = summarize(samples, max_clicks=20)
    assert out["n_samples"] == 3
    assert out["noc85"] == pytest.approx((2 + 20 + 1) / 3)
    assert out["noc90"] == pytest.approx((3 + 20 + 1) / 3)
    assert out["noc95"] == pytest.approx((4 + 20 + 1) / 3)
    assert (out["nof85"], out["nof90"], out["nof95"]) == (1, 1, 1)
    assert len(out["miou"]) == 20
    assert out["miou"][0] == pytest.approx((0.8 + 0.3 + 0.97) / 3, rel=1e-6)
    assert out["miou"][-1] == pytest.approx((0.96 + 0.3 + 0.97) / 3, rel=1e-6)
    custom = summarize(samples, thresholds=(0.8,), max_clicks=5)
    assert set(custom) == {"n_samples", "max_clicks", "noc80", "nof80", "miou"}
    assert custom["noc80"] == pytest.approx((1 + 5 + 1) / 3)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=0, max_size=25), st.floats(0.5, 0.99), st.floats(0.5, 0.99))
def test_noc_never_decreases_as_the_threshold_rises(ious, a, b):
    lo, hi = sorted((a, b))
    assert 1 <= noc(ious, lo) <= noc(ious, hi) <= 20
