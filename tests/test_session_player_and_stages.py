"""The one session player, the Session's feed observers and its per-stage timings."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import FIXTURES

from focalclick_edge.evaluation.player import play_session
from focalclick_edge.evaluation.protocol import evaluate_sample
from focalclick_edge.runtime import STAGES, Session


@pytest.fixture(scope="module")
def teddy():
    image = cv2.cvtColor(cv2.imread(str(FIXTURES / "images" / "teddy.png")), cv2.COLOR_BGR2RGB)
    gt = np.zeros(image.shape[:2], np.int8)
    gt[120:240, 90:200] = 1
    return image, gt


def test_replaying_the_clickers_clicks_gives_the_same_masks_and_clicks_read_back_as_x_y_positive(
        b0s1_fp32_model_dir, teddy):
    image, gt = teddy
    s = Session(b0s1_fp32_model_dir)
    first = play_session(s, gt, image=image, max_clicks=4, keep_masks=True)
    assert len(first.clicks) == len(first.masks) == len(first.ious) == len(first.timings) == 4
    assert s.clicks == first.clicks  # the Session reads back the same (x, y, positive) list
    x, y, positive = first.clicks[0]
    assert positive and gt[y, x] == 1  # the first click is inside the object, in (x, y) order
    again = play_session(s, image=image, clicks=first.clicks, keep_masks=True)
    assert again.ious == [] and again.clicks == first.clicks
    for a, b in zip(first.masks, again.masks, strict=True):
        np.testing.assert_array_equal(a, b)
    # The eval protocol is the player with a stop IoU.
    sample = evaluate_sample(s, image, gt, max_clicks=4, stop_iou=1.01)
    assert sample.clicks == first.clicks and sample.ious == first.ious


def test_feed_observers_see_every_graph_input_until_removed(b0s1_fp32_model_dir, teddy):
    image, _ = teddy
    s = Session(b0s1_fp32_model_dir)
    seen: list[tuple[str, dict]] = []
    remove = s.add_feed_observer(lambda role, feeds: seen.append((role, {k: v.copy() for k, v in feeds.items()})))
    s.set_image(image)
    r = s.add_click(145, 179, True)
    assert [role for role, _ in seen] == ["segmentor", "refiner"]
    assert set(seen[0][1]) == {"image_nd", "click_maps"}
    assert set(seen[1][1]) == {"image_focus", "click_maps_focus", "cropped_feature", "cropped_logits"}
    # The Refiner's feeds really are its inputs: running the graph on the recorded copy gives the result.
    (refined,) = s._refiner.run(seen[1][1])
    assert refined.shape[-2:] == seen[1][1]["image_focus"].shape[-2:]
    assert set(r.timings) == set(STAGES)
    assert r.timings["total"] >= max(v for k, v in r.timings.items() if k != "total")
    other = s.spawn()  # a spawn shares the graphs, not the observers
    other.set_image(image)
    other.add_click(145, 179, True)
    assert len(seen) == 2
    remove()
    s.add_click(150, 150, False)
    assert len(seen) == 2


@pytest.mark.parametrize("shape", [(2, 2, 3), (212, 320, 3), (37, 1, 3), (1, 5, 3), (50, 60, 4)])
def test_the_session_keeps_exactly_the_image_planes_channels_first(shape):
    """set_image's channels-first copy (OpenCV channel extraction) holds the same bytes as NumPy's
    transpose, for contiguous, one-pixel-wide and RGBA (non-contiguous RGB view) inputs."""
    from focalclick_edge.runtime.session import _channels_first

    a = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)[..., :3]
    planes = _channels_first(a)
    assert planes.flags.c_contiguous and np.array_equal(planes, a.transpose(2, 0, 1))
