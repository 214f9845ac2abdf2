"""The stateless clicks -> mask service: prefix reuse, order recovery, byte-bounded LRU, thread safety."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from conftest import FIXTURES  # noqa: E402

from focalclick_edge.adapters.click_service import ClickService  # noqa: E402
from focalclick_edge.adapters.images import decode_image_bytes  # noqa: E402
from focalclick_edge.errors import UserError  # noqa: E402
from focalclick_edge.runtime import Session  # noqa: E402
from focalclick_edge.runtime.images import read_image  # noqa: E402

TEDDY = FIXTURES / "images" / "teddy.png"
BOOK = FIXTURES / "images" / "book.png"
# In the order the user clicked them: signs interleaved, so "positives then negatives" is a different order.
TEDDY_CLICKS = [(145, 179, True), (150, 300, False), (140, 200, True), (60, 60, False), (200, 250, True)]


@pytest.fixture(scope="module")
def session(b0s1_fp32_model_dir) -> Session:
    return Session(b0s1_fp32_model_dir)


@pytest.fixture(scope="module")
def teddy_bytes() -> bytes:
    return TEDDY.read_bytes()


def reference_masks(session: Session, image: np.ndarray, clicks) -> list[np.ndarray]:
    s = session.spawn()
    s.set_image(image)
    return [s.add_click(x, y, p).mask for x, y, p in clicks]


def cvat_order(clicks):
    """What CVAT sends: the positives, then the negatives, each in the order they were placed."""
    return [c for c in clicks if c[2]] + [c for c in clicks if not c[2]]


def test_growing_ordered_clicks_give_the_masks_of_a_session_and_one_click_of_work_each(session, teddy_bytes):
    svc = ClickService(session)
    expected = reference_masks(session, read_image(TEDDY), TEDDY_CLICKS)
    for n in range(1, len(TEDDY_CLICKS) + 1):
        before = svc.stats.clicks_run
        res = svc.segment(svc.open_image(teddy_bytes), TEDDY_CLICKS[:n], ordered=True)
        assert svc.stats.clicks_run - before == 1 and res.computed == 1 and res.reused == n - 1
        assert np.array_equal(res.mask, expected[n - 1]), f"click {n}"
    assert svc.stats.images_decoded == 1 and svc.stats.clicks_run == len(TEDDY_CLICKS)


def test_unordered_point_sets_recover_the_click_order_from_the_cached_prefix(session, teddy_bytes):
    svc = ClickService(session)
    expected = reference_masks(session, read_image(TEDDY), TEDDY_CLICKS)
    for n in range(1, len(TEDDY_CLICKS) + 1):
        res = svc.segment(svc.open_image(teddy_bytes), cvat_order(TEDDY_CLICKS[:n]), ordered=False)
        assert res.clicks == TEDDY_CLICKS[:n] and res.computed == 1
        assert np.array_equal(res.mask, expected[n - 1]), f"click {n}"
    assert svc.stats.clicks_run == len(TEDDY_CLICKS)


def test_a_cold_unordered_call_replays_positives_then_negatives(session, teddy_bytes):
    svc = ClickService(session)
    points = cvat_order(TEDDY_CLICKS)
    res = svc.segment(svc.open_image(teddy_bytes), points, ordered=False)
    assert res.computed == len(points) and res.reused == 0 and res.clicks == points
    assert np.array_equal(res.mask, reference_masks(session, read_image(TEDDY), points)[-1])


def test_a_removed_point_continues_from_the_longest_prefix_still_valid(session, teddy_bytes):
    svc = ClickService(session)
    h = svc.open_image(teddy_bytes)
    for n in range(1, 4):
        svc.segment(h, cvat_order(TEDDY_CLICKS[:n]), ordered=False)
    # The user deletes the 2nd point and adds the 4th: only click 1 is still a valid prefix.
    now = [TEDDY_CLICKS[0], TEDDY_CLICKS[2], TEDDY_CLICKS[3]]
    res = svc.segment(h, cvat_order(now), ordered=False)
    assert res.reused == 1 and res.computed == 2
    expected = reference_masks(session, read_image(TEDDY), [TEDDY_CLICKS[0]] + cvat_order(now[1:]))
    assert np.array_equal(res.mask, expected[-1])


def test_repeating_a_call_runs_no_click(session, teddy_bytes):
    svc = ClickService(session)
    first = svc.segment(svc.open_image(teddy_bytes), TEDDY_CLICKS[:2])
    again = svc.segment(svc.open_image(teddy_bytes), TEDDY_CLICKS[:2])
    assert again.computed == 0 and np.array_equal(first.mask, again.mask) and svc.stats.clicks_run == 2


def test_cached_bytes_are_the_distinct_bytes_held_and_eviction_keeps_them_under_the_cap(session, teddy_bytes):
    unbounded = ClickService(session, max_bytes=1 << 40)
    h = unbounded.open_image(teddy_bytes)
    for n in range(1, 4):
        unbounded.segment(h, TEDDY_CLICKS[:n])
    s = session.spawn()
    s.set_image(read_image(TEDDY))
    for c in TEDDY_CLICKS[:3]:
        s.add_click(*c)
    # The 3-click snapshot references every shorter prefix's state: it alone holds all the cache holds.
    one_image = s.snapshot().nbytes
    assert unbounded.cached_bytes == one_image

    cap = int(one_image * 1.5)
    svc = ClickService(session, max_bytes=cap)
    book = BOOK.read_bytes()
    for img, clicks in [(teddy_bytes, TEDDY_CLICKS[:3]), (book, [(320, 240, True), (100, 100, False)]),
                        (teddy_bytes, TEDDY_CLICKS[:3])]:
        h = svc.open_image(img)
        for n in range(1, len(clicks) + 1):
            svc.segment(h, clicks[:n])
            assert svc.cached_bytes <= cap
    assert svc.stats.evicted_images >= 1 and svc.cached_images >= 1
    # teddy was evicted by book, so its second visit decoded it again and replayed from scratch.
    assert svc.stats.images_decoded == 3


def test_an_image_larger_than_the_cap_is_served_and_not_kept(session, teddy_bytes):
    svc = ClickService(session, max_bytes=1000)
    res = svc.segment(svc.open_image(teddy_bytes), TEDDY_CLICKS[:2])
    assert res.mask.shape == (398, 284) and svc.cached_bytes == 0 and svc.cached_images == 0


def test_concurrent_calls_on_two_images_give_each_its_own_session_masks(session, teddy_bytes):
    svc = ClickService(session)
    book = BOOK.read_bytes()
    book_clicks = [(320, 240, True), (100, 100, False), (400, 300, True)]
    want = {"teddy": reference_masks(session, read_image(TEDDY), TEDDY_CLICKS[:3]),
            "book": reference_masks(session, read_image(BOOK), book_clicks)}
    got: dict[str, list[np.ndarray]] = {"teddy": [], "book": []}
    errors: list[BaseException] = []

    def annotate(name: str, data: bytes, clicks) -> None:
        try:
            for n in range(1, len(clicks) + 1):
                got[name].append(svc.segment(svc.open_image(data), clicks[:n]).mask)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=annotate, args=("teddy", teddy_bytes, TEDDY_CLICKS[:3])),
               threading.Thread(target=annotate, args=("book", book, book_clicks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for name in want:
        assert all(np.array_equal(a, b) for a, b in zip(got[name], want[name], strict=True)), name
    assert svc.stats.clicks_run == 6


def test_points_outside_the_image_are_refused_before_any_click_runs(session, teddy_bytes):
    svc = ClickService(session)
    with pytest.raises(UserError, match="outside the 284x398 image"):
        svc.segment(svc.open_image(teddy_bytes), [(10, 10, True), (284, 5, True)])
    assert svc.stats.clicks_run == 0


def test_unknown_run_and_undecodable_bytes_are_user_errors(session):
    svc = ClickService({"ort-fp32": session})
    with pytest.raises(UserError, match="unknown run 'ov-int8'"):
        svc.open_image(b"\x89PNG", run="ov-int8")
    with pytest.raises(UserError, match="cannot decode image"):
        svc.open_image(b"not an image")


@pytest.mark.parametrize("kind", ["gray", "rgba", "16bit"])
def test_decoded_bytes_equal_the_segment_commands_file_reader(tmp_path, kind):
    bgr = cv2.imread(str(TEDDY))
    img = {"gray": cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY),
           "rgba": np.dstack([bgr, np.full(bgr.shape[:2], 128, np.uint8)]),
           "16bit": bgr.astype(np.uint16) * 257}[kind]
    path = tmp_path / f"{kind}.png"
    cv2.imwrite(str(path), img)
    decoded = decode_image_bytes(path.read_bytes())
    assert decoded.dtype == np.uint8 and decoded.shape == (*bgr.shape[:2], 3)
    assert np.array_equal(decoded, read_image(path))
