"""The page in a real headless Chromium (Debian's package, driven by Playwright) against a real server:
open an image, click positive and negative, see the overlay change, undo, download the mask, and check
that it equals a Session's mask for the same clicks.

FCE_SERVE_MODEL picks another model directory (default: the test export); FCE_SERVE_SCREENSHOT=PATH
also saves the page there (docs/serve_page.png is made this way with the shipped model).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

sync_api = pytest.importorskip("playwright.sync_api")
from serve_server import running_server  # noqa: E402

from focalclick_edge.assets import sample_image_paths  # noqa: E402
from focalclick_edge.runtime import Session  # noqa: E402
from focalclick_edge.runtime.images import read_image  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (.ci/run does: apt-get install -y chromium)")
        pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


def canvas_digest(page) -> int:
    return page.evaluate("""() => { const c = document.getElementById('view');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let h = 0; for (let i = 0; i < d.length; i += 7) h = (h * 31 + d[i]) | 0; return h; }""")


def settled(page, clicks: int) -> None:
    page.wait_for_function(f"""() => {{ const v = document.getElementById('view');
        return v.dataset.clicks === '{clicks}' && v.dataset.busy === '0'; }}""", timeout=60_000)


def click_image(page, x: int, y: int, **kw) -> None:
    """Click image pixel (x, y), wherever the canvas is drawn and however it is scaled."""
    box = page.locator("#view").bounding_box()
    w, h = page.evaluate("[state.w, state.h]")
    page.mouse.click(box["x"] + (x + 0.5) * box["width"] / w, box["y"] + (y + 0.5) * box["height"] / h, **kw)


def test_page_clicks_undo_and_download_match_a_session(browser, b0s1_fp32_model_dir, tmp_path):
    model = Path(os.environ.get("FCE_SERVE_MODEL") or b0s1_fp32_model_dir)
    image, _ = sample_image_paths()
    with running_server("--model", str(model), "--run", "ort-fp32") as (url, _line, _pid):
        page = browser.new_page(viewport={"width": 1100, "height": 720}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: errors.append(r.url) if not r.url.startswith((url, "data:", "blob:")) else None)
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='1']")
        assert "run ort-fp32" in page.inner_text("#info")

        page.set_input_files("#file", str(image))
        page.wait_for_function("() => document.getElementById('view').dataset.session")
        settled(page, 0)
        blank = canvas_digest(page)

        click_image(page, 160, 110)  # left click: positive
        settled(page, 1)
        one = canvas_digest(page)
        pixels_one = int(page.get_attribute("#view", "data-mask-pixels"))
        assert one != blank and pixels_one > 0

        click_image(page, 60, 40, button="right")  # right click: negative
        settled(page, 2)
        assert canvas_digest(page) != one
        assert page.evaluate("state.clicks") == [[160, 110, True], [60, 40, False]]
        assert "Segmentor" in page.inner_text("#timings")

        page.keyboard.press("Control+z")  # undo
        settled(page, 1)
        assert int(page.get_attribute("#view", "data-mask-pixels")) == pixels_one

        page.keyboard.down("Shift")  # Shift+click: negative too
        click_image(page, 60, 40)
        page.keyboard.up("Shift")
        settled(page, 2)
        clicks = [tuple(c) for c in page.evaluate("state.clicks")]
        assert clicks == [(160, 110, True), (60, 40, False)]

        page.mouse.move(10, 10)
        box = page.locator("#view").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.6)  # rest: live preview
        page.wait_for_function("() => state.preview !== null", timeout=30_000)

        with page.expect_download() as dl:
            page.click("#download")
        path = tmp_path / "mask.png"
        dl.value.save_as(path)
        shot = os.environ.get("FCE_SERVE_SCREENSHOT")
        if shot:
            page.screenshot(path=shot)
        assert not errors, errors

    got = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    session = Session(model, backend="onnxruntime", precision="fp32")
    session.set_image(read_image(image))
    for x, y, p in clicks:
        expected = session.add_click(x, y, p).mask
    assert got.shape == expected.shape and set(np.unique(got)) <= {0, 255}
    assert np.array_equal(got > 0, expected)
