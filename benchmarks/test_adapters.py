"""pytest-benchmark: the annotation-tool adapters against the Session click they wrap.

    python -m pytest benchmarks/test_adapters.py --benchmark-only

Targets (issue 16): a CVAT call whose points extend a cached prefix by one costs at most 1.5x one
Session click plus decoding the frame (compare ``test_cvat_call_extending_a_cached_prefix`` with
``test_session_click`` + ``test_decode_frame``); a cold replay of n clicks costs about n Session
clicks (``test_cold_replay`` against n x ``test_session_click``, n = BENCH_CLICK + 1).
"""
from __future__ import annotations

import base64

import cv2
import pytest
from bench_support import BENCH_CLICK

from focalclick_edge.adapters import cvat_nuclio
from focalclick_edge.adapters.click_service import ClickService
from focalclick_edge.adapters.images import decode_image_bytes
from focalclick_edge.runtime import Session


@pytest.fixture(scope="module")
def session(model_dir, threads) -> Session:
    return Session(model_dir, threads=threads)


@pytest.fixture(scope="module")
def frame(image_and_gt) -> bytes:
    """The sample image as CVAT sends frames: encoded (PNG here), then base64 in the JSON body."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(image_and_gt[0], cv2.COLOR_RGB2BGR))
    assert ok
    return png.tobytes()


@pytest.fixture(scope="module")
def clicks(click_list) -> list[tuple[int, int, bool]]:
    return [(x, y, p) for y, x, p in click_list[:BENCH_CLICK + 1]]  # click_list rows are (y, x, positive)


def cvat_body(frame: bytes, clicks) -> dict:
    return {"image": base64.b64encode(frame).decode(), "obj_bbox": None,
            "pos_points": [[x, y] for x, y, p in clicks if p], "neg_points": [[x, y] for x, y, p in clicks if not p]}


def test_session_click(benchmark, session, image_and_gt, clicks):
    """The baseline: click BENCH_CLICK + 1 of a session, then ``undo`` (which only pops a state)."""
    s = session.spawn()
    s.set_image(image_and_gt[0])
    for c in clicks[:-1]:
        s.add_click(*c)

    def click() -> None:
        s.add_click(*clicks[-1])
        s.undo()

    benchmark(click)


def test_decode_frame(benchmark, frame):
    benchmark(decode_image_bytes, frame)


def test_cvat_call_extending_a_cached_prefix(benchmark, session, frame, clicks):
    """The whole CVAT handler (base64, digest, cache look-up, one click, mask rows JSON) for a point set
    that is the cached prefix plus one point. Each round gets a service holding the prefix (untimed)."""
    body = cvat_body(frame, clicks)

    def setup():
        service = ClickService(session)
        for n in range(1, len(clicks)):
            cvat_nuclio.handle(service, cvat_body(frame, clicks[:n]))
        return (service, body), {}

    def call(service, body):
        status, _ = cvat_nuclio.handle(service, body)
        assert status == 200 and service.stats.clicks_run == len(clicks)

    benchmark.pedantic(call, setup=setup, rounds=15, warmup_rounds=1)


def test_cold_replay(benchmark, session, frame, clicks):
    """A point set no cache entry knows (a fresh service): decode, then every click in order."""
    body = cvat_body(frame, clicks)

    def setup():
        return (ClickService(session), body), {}

    def call(service, body):
        status, _ = cvat_nuclio.handle(service, body)
        assert status == 200 and service.stats.clicks_run == len(clicks)

    benchmark.pedantic(call, setup=setup, rounds=8, warmup_rounds=1)
