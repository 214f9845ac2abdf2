"""The serve API against the real app (FastAPI over a real exported b0-s1 model), every bad input included."""
from __future__ import annotations

import base64
import io
import struct
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from pycocotools import mask as coco_mask  # noqa: E402

from focalclick_edge.assets import sample_image_paths  # noqa: E402
from focalclick_edge.errors import UserError  # noqa: E402
from focalclick_edge.runtime import Session  # noqa: E402
from focalclick_edge.runtime.images import read_image, read_mask  # noqa: E402
from focalclick_edge.runtime.runs import get_run  # noqa: E402
from focalclick_edge.serve.app import create_app  # noqa: E402
from focalclick_edge.serve.settings import ServeSettings, resolve_run  # noqa: E402
from focalclick_edge.serve.store import SessionGone, SessionStore, SessionUnknown  # noqa: E402

IMAGE, GT = sample_image_paths()
CLICKS = [(160, 110, True), (60, 40, False), (200, 150, True)]


def make_client(model_dir: Path, **kw) -> TestClient:
    kw.setdefault("warmup", False)
    return TestClient(create_app(ServeSettings(model_dir=model_dir, **kw)))


@pytest.fixture(scope="module")
def client(b0s1_fp32_model_dir) -> TestClient:
    return make_client(b0s1_fp32_model_dir, warmup=True)


@pytest.fixture(scope="module")
def reference(b0s1_fp32_model_dir) -> Session:
    return Session(b0s1_fp32_model_dir, backend="onnxruntime", precision="fp32")


def new_session(client: TestClient, data: bytes | None = None, ctype: str = "image/jpeg") -> str:
    r = client.post("/v1/sessions", content=IMAGE.read_bytes() if data is None else data,
                    headers={"Content-Type": ctype})
    assert r.status_code == 201, r.text
    return r.json()["session"]


def png_mask(b64: str) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_UNCHANGED)
    assert arr.ndim == 2 and set(np.unique(arr)) <= {0, 255}
    return arr > 0


def session_masks(session: Session, rgb: np.ndarray, clicks, init: np.ndarray | None = None) -> list[np.ndarray]:
    session.set_image(rgb)
    if init is not None:
        session.set_mask(init)
    return [session.add_click(x, y, p).mask for x, y, p in clicks]


def click(client: TestClient, sid: str, x: int, y: int, positive: bool, query: str = ""):
    return client.post(f"/v1/sessions/{sid}/clicks{query}", json={"x": x, "y": y, "positive": positive})


def error_of(r, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and body["error"]
    return body["error"]


def png_bytes(arr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", arr)
    assert ok
    return buf.tobytes()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose valid IHDR claims ``width`` x ``height`` (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------------------------- happy path
def test_clicks_return_the_mask_a_session_computes_for_the_same_clicks(client, reference):
    sid = new_session(client)
    expected = session_masks(reference, read_image(IMAGE), CLICKS)
    for i, (x, y, p) in enumerate(CLICKS):
        r = click(client, sid, x, y, p)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["click"] == i + 1
        assert np.array_equal(png_mask(body["mask_png"]), expected[i])
        assert {"preprocess", "segmentor", "focus_crop", "refiner", "merge", "total", "encode", "server"} <= set(
            body["timings"])
        x1, y1, x2, y2 = body["focus_box"]
        assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 212
    got = client.get(f"/v1/sessions/{sid}/mask.png")
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert np.array_equal(cv2.imdecode(np.frombuffer(got.content, np.uint8), cv2.IMREAD_UNCHANGED) > 0, expected[-1])
    assert client.get(f"/v1/sessions/{sid}").json()["clicks"] == [list(c) for c in CLICKS]


def test_session_create_answers_id_and_size_for_raw_and_multipart_uploads(client):
    r = client.post("/v1/sessions", content=IMAGE.read_bytes(), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 201 and r.json()["width"] == 320 and r.json()["height"] == 212
    r = client.post("/v1/sessions", files={"image": ("x.jpg", IMAGE.read_bytes(), "image/jpeg")})
    assert r.status_code == 201 and r.json()["session"]


def test_rle_decodes_with_pycocotools_to_the_png_mask(client):
    sid = new_session(client)
    png = png_mask(click(client, sid, *CLICKS[0]).json()["mask_png"])
    rle = click(client, sid, *CLICKS[1], query="?format=rle").json()["mask_rle"]
    assert rle["size"] == [212, 320] and isinstance(rle["counts"], str)
    decoded = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
    client.post(f"/v1/sessions/{sid}/undo")
    again = png_mask(click(client, sid, *CLICKS[1]).json()["mask_png"])
    assert png.any() and np.array_equal(decoded, again)


def test_polygons_fill_back_to_the_mask(client):
    sid = new_session(client)
    mask = png_mask(click(client, sid, *CLICKS[0]).json()["mask_png"])
    client.post(f"/v1/sessions/{sid}/undo")
    poly = click(client, sid, *CLICKS[0], query="?format=polygon").json()["mask_polygons"]
    filled = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(filled, [np.array(p, np.int32).reshape(-1, 1, 2) for p in poly["polygons"]], 1)
    cv2.fillPoly(filled, [np.array(p, np.int32).reshape(-1, 1, 2) for p in poly["holes"]], 0)
    inter, union = np.logical_and(filled, mask).sum(), np.logical_or(filled, mask).sum()
    assert poly["polygons"] and inter / union > 0.97


def test_preview_gives_the_next_clicks_mask_and_leaves_the_session_unchanged(client):
    sid = new_session(client)
    click(client, sid, *CLICKS[0])
    before = client.get(f"/v1/sessions/{sid}/mask.png").content
    preview = click(client, sid, *CLICKS[1], query="?preview=1").json()
    assert preview["click"] == 2
    assert client.get(f"/v1/sessions/{sid}/mask.png").content == before
    assert client.get(f"/v1/sessions/{sid}").json()["clicks"] == [list(CLICKS[0])]
    real = click(client, sid, *CLICKS[1]).json()
    assert real["click"] == 2 and real["mask_png"] == preview["mask_png"]


def test_undo_and_reset_answer_like_a_click(client, reference):
    sid = new_session(client)
    expected = session_masks(reference, read_image(IMAGE), CLICKS[:2])
    click(client, sid, *CLICKS[0])
    click(client, sid, *CLICKS[1])
    r = client.post(f"/v1/sessions/{sid}/undo")
    assert r.status_code == 200 and r.json()["click"] == 1
    assert np.array_equal(png_mask(r.json()["mask_png"]), expected[0])
    r = client.post(f"/v1/sessions/{sid}/undo?format=rle")
    assert r.json()["click"] == 0 and not coco_mask.decode({**r.json()["mask_rle"], "counts": r.json()[
        "mask_rle"]["counts"].encode()}).any()
    assert "nothing to undo" in error_of(client.post(f"/v1/sessions/{sid}/undo"), 409)
    click(client, sid, *CLICKS[0])
    r = client.post(f"/v1/sessions/{sid}/reset")
    assert r.status_code == 200 and r.json()["click"] == 0 and not png_mask(r.json()["mask_png"]).any()
    assert np.array_equal(png_mask(click(client, sid, *CLICKS[0]).json()["mask_png"]), expected[0])


def test_an_uploaded_mask_is_corrected_as_a_session_with_set_mask_does(client, reference):
    gt = read_mask(GT)
    files = {"image": ("x.jpg", IMAGE.read_bytes(), "image/jpeg"),
             "mask": ("m.png", png_bytes(gt.astype(np.uint8) * 255), "image/png")}
    r = client.post("/v1/sessions", files=files)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]
    expected = session_masks(reference, read_image(IMAGE), [(60, 40, False)], init=gt)
    assert np.array_equal(png_mask(click(client, sid, 60, 40, False).json()["mask_png"]), expected[0])
    r = client.post(f"/v1/sessions/{sid}/reset")
    assert np.array_equal(png_mask(r.json()["mask_png"]), gt)  # reset returns to the uploaded mask


@pytest.mark.parametrize("kind", ["gray", "rgba", "gray16", "rgb16"])
def test_gray_rgba_and_16_bit_uploads_decode_as_segment_reads_them(client, reference, tmp_path, kind):
    bgr = cv2.imread(str(IMAGE))
    arr = {"gray": cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY),
           "rgba": cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
           "gray16": cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257,
           "rgb16": bgr.astype(np.uint16) * 257}[kind]
    path = tmp_path / f"{kind}.png"
    data = png_bytes(arr)
    path.write_bytes(data)
    sid = new_session(client, data, "image/png")
    expected = session_masks(reference, read_image(path), CLICKS[:1])
    assert np.array_equal(png_mask(click(client, sid, *CLICKS[0]).json()["mask_png"]), expected[0])


@pytest.mark.parametrize("fmt", [".bmp", ".webp", ".png"])
def test_bmp_webp_png_bodies_are_accepted(client, fmt):
    ok, buf = cv2.imencode(fmt, cv2.imread(str(IMAGE)))
    sid = new_session(client, buf.tobytes(), {".bmp": "image/bmp", ".webp": "image/webp", ".png": "image/png"}[fmt])
    assert click(client, sid, *CLICKS[0]).status_code == 200


def test_delete_answers_204_and_the_session_is_gone(client):
    sid = new_session(client)
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    assert "no session" in error_of(client.get(f"/v1/sessions/{sid}/mask.png"), 404)
    error_of(client.delete(f"/v1/sessions/{sid}"), 404)


def test_concurrent_clicks_on_many_sessions_match_sequential_sessions(client, reference):
    """Shared compiled graphs under concurrent requests: every answer equals a lone Session's."""
    rgb = read_image(IMAGE)
    plans = [[(40 + 20 * i, 50 + 10 * i, True), (150, 100, i % 2 == 0)] for i in range(6)]
    expected = [session_masks(reference, rgb, plan) for plan in plans]
    sids = [new_session(client) for _ in plans]
    got: dict[int, list[np.ndarray]] = {}
    errors: list[str] = []

    def run(i: int) -> None:
        try:
            got[i] = [png_mask(click(client, sids[i], *c).json()["mask_png"]) for c in plans[i]]
        except Exception as exc:  # surfaced below
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(plans))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(len(plans)):
        assert all(np.array_equal(a, b) for a, b in zip(got[i], expected[i], strict=True))


# ------------------------------------------------------------------------------------------- bad input
def test_clicks_outside_the_image_or_not_integers_are_refused(client):
    sid = new_session(client)
    assert "outside the 320x212 image" in error_of(click(client, sid, 320, 5, True), 400)
    assert "outside" in error_of(click(client, sid, -1, 5, True), 400)
    assert "valid integer" in error_of(client.post(f"/v1/sessions/{sid}/clicks", json={"x": 2.5, "y": 1}), 422)
    assert "x" in error_of(client.post(f"/v1/sessions/{sid}/clicks", json={"y": 1}), 422)
    error_of(client.post(f"/v1/sessions/{sid}/clicks", json={"x": "3", "y": 1}), 422)
    error_of(client.post(f"/v1/sessions/{sid}/clicks", json={"x": 3, "y": 1, "positive": "yes"}), 422)
    assert "not valid JSON" in error_of(client.post(
        f"/v1/sessions/{sid}/clicks", content=b"{x", headers={"Content-Type": "application/json"}), 400)
    assert "format=rle" in error_of(click(client, sid, 5, 5, True, "?format=jpeg"), 400)
    assert client.get(f"/v1/sessions/{sid}").json()["clicks"] == []


def test_unknown_sessions_and_routes_get_404_and_wrong_methods_405(client):
    assert "POST /v1/sessions" in error_of(click(client, "nope", 1, 1, True), 404)
    error_of(client.get("/v2/anything"), 404)
    error_of(client.put("/v1/sessions"), 405)


def test_non_images_truncated_files_and_other_formats_are_refused(client):
    png = png_bytes(cv2.imread(str(IMAGE)))
    jpg = IMAGE.read_bytes()
    assert "not a readable image" in error_of(client.post("/v1/sessions", content=b"GIF89a not really",
                                                          headers={"Content-Type": "image/png"}), 400)
    error_of(client.post("/v1/sessions", content=b"", headers={"Content-Type": "image/png"}), 400)
    error_of(client.post("/v1/sessions", content=png[: len(png) // 2], headers={"Content-Type": "image/png"}), 400)
    error_of(client.post("/v1/sessions", content=jpg[: len(jpg) // 2], headers={"Content-Type": "image/jpeg"}), 400)
    assert "Content-Type text/plain" in error_of(client.post("/v1/sessions", content=b"hi",
                                                             headers={"Content-Type": "text/plain"}), 415)
    gif = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    assert "GIF" in error_of(client.post("/v1/sessions", content=gif.getvalue(),
                                         headers={"Content-Type": "image/png"}), 415)
    assert "field 'image'" in error_of(client.post("/v1/sessions", files={"picture": ("a.jpg", jpg)}), 400)
    assert "field 'image'" in error_of(client.post("/v1/sessions", data={"image": "text"},
                                                   files={"other": ("a", b"x")}), 400)


def test_bad_masks_are_refused(client):
    jpg = IMAGE.read_bytes()

    def post(mask_bytes: bytes) -> object:
        return client.post("/v1/sessions", files={"image": ("x.jpg", jpg), "mask": ("m.png", mask_bytes)})

    assert "100x100 but the image is 320x212" in error_of(post(png_bytes(np.full((100, 100), 255, np.uint8))), 400)
    assert "empty" in error_of(post(png_bytes(np.zeros((212, 320), np.uint8))), 400)
    ok, buf = cv2.imencode(".jpg", np.full((212, 320), 255, np.uint8))
    assert "send a PNG" in error_of(post(buf.tobytes()), 415)
    error_of(post(b"not a png"), 400)


@pytest.fixture(scope="module")
def tight(b0s1_fp32_model_dir) -> TestClient:
    # 320x212 = 68 kP: 0.1 MP admits the sample; 4 B/px (uint8 image + base mask) -> 0.27 MB a session
    # before clicks, and a click covering the whole image keeps 4 B/px of probability tiles in the history
    # (plus 1 B/px of mask while it is the latest click).
    return make_client(b0s1_fp32_model_dir, max_sessions=3, max_upload_mb=0.2, max_image_mp=0.1, max_memory_mb=2.0)


def test_uploads_over_the_limit_get_413_declared_or_chunked(tight):
    big = b"\0" * int(0.3 * 2**20)
    assert "--max-upload-mb 0.2" in error_of(tight.post("/v1/sessions", content=big,
                                                        headers={"Content-Type": "image/png"}), 413)

    def chunks():
        for _ in range(40):
            yield b"\0" * 16384

    error_of(tight.post("/v1/sessions", content=chunks(), headers={"Content-Type": "image/png"}), 413)


def test_images_over_max_image_mp_are_refused_from_the_header(tight):
    big = png_bytes(np.zeros((400, 400, 3), np.uint8))  # 0.16 MP
    assert "--max-image-mp 0.1" in error_of(tight.post("/v1/sessions", content=big,
                                                       headers={"Content-Type": "image/png"}), 413)
    bomb = png_header_only(100_000, 100_000)  # 10 GP claimed by a 100-byte file: never decoded
    assert len(bomb) < 200
    error_of(tight.post("/v1/sessions", content=bomb, headers={"Content-Type": "image/png"}), 413)


def test_past_max_sessions_the_least_recently_used_is_evicted_and_gets_410(tight):
    a, b, c = (new_session(tight) for _ in range(3))
    assert click(tight, a, *CLICKS[0]).status_code == 200  # a is now the most recent: b is evicted next
    d = new_session(tight)
    assert "session expired" in error_of(click(tight, b, *CLICKS[0]), 410)
    for sid in (a, c, d):
        assert tight.get(f"/v1/sessions/{sid}").status_code == 200
    metrics = tight.get("/metrics").text
    assert 'focalclick_session_evictions_total{reason="lru"} 1.0' in metrics


def test_past_the_memory_cap_the_least_recently_used_sessions_are_evicted(tight):
    sids = [new_session(tight) for _ in range(3)]
    for _ in range(6):  # each click keeps its probability tiles in the undo history (~0.27 MB here)
        assert click(tight, sids[-1], *CLICKS[0]).status_code == 200
    alive = [tight.get(f"/v1/sessions/{s}").status_code for s in sids]
    assert alive[-1] == 200 and 410 in alive
    assert tight.app.state.store.nbytes <= 2.0 * 2**20
    assert 'focalclick_session_evictions_total{reason="memory"}' in tight.get("/metrics").text


def test_a_session_whose_history_alone_passes_the_cap_is_refused_and_kept_as_it_was(tight):
    sid = new_session(tight)
    statuses = [click(tight, sid, *CLICKS[i % 3]).status_code for i in range(14)]
    assert statuses[0] == 200 and 413 in statuses
    n_ok = statuses.index(413)
    assert "reset the session" in error_of(click(tight, sid, *CLICKS[0]), 413)
    assert len(tight.get(f"/v1/sessions/{sid}").json()["clicks"]) == n_ok
    assert tight.post(f"/v1/sessions/{sid}/reset").status_code == 200
    assert click(tight, sid, *CLICKS[0]).status_code == 200


def test_sessions_unused_past_the_ttl_expire_with_410(b0s1_fp32_model_dir):
    c = make_client(b0s1_fp32_model_dir, session_ttl=0.5)
    sid = new_session(c)
    time.sleep(0.8)
    assert "session expired" in error_of(click(c, sid, *CLICKS[0]), 410)


def test_store_expires_by_ttl_and_remembers_evicted_ids():
    class Held:  # the store only reads .nbytes
        nbytes = 1000

    now = [0.0]
    reasons: list[str] = []
    store = SessionStore(2, ttl_s=10, max_bytes=10**9, on_evict=reasons.append, clock=lambda: now[0])
    a = store.add(Held())
    now[0] = 5
    b = store.add(Held())
    now[0] = 12  # a unused for 12 s, b for 7 s
    store.get(b)
    with pytest.raises(SessionGone):
        store.get(a)
    with pytest.raises(SessionUnknown):
        store.get("never-issued")
    c = store.add(Held())
    store.add(Held())  # over max_sessions 2: b (least recently used) goes
    with pytest.raises(SessionGone):
        store.get(b)
    store.get(c)
    assert reasons == ["ttl", "lru"]


# ------------------------------------------------------------------------------------------- security, metrics
def test_a_token_is_required_when_set(b0s1_fp32_model_dir):
    c = make_client(b0s1_fp32_model_dir, token="s3cret")
    assert "Bearer" in error_of(c.post("/v1/sessions", content=IMAGE.read_bytes(),
                                       headers={"Content-Type": "image/jpeg"}), 401)
    error_of(c.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401)
    r = c.post("/v1/sessions", content=IMAGE.read_bytes(),
               headers={"Content-Type": "image/jpeg", "Authorization": "Bearer s3cret"})
    assert r.status_code == 201
    assert c.get("/healthz").json()["auth"] is True and c.get("/").status_code == 200


def test_other_hosts_need_a_token_or_insecure():
    with pytest.raises(UserError, match="--token"):
        ServeSettings(host="0.0.0.0").check()
    ServeSettings(host="0.0.0.0", token="t").check()
    ServeSettings(host="0.0.0.0", insecure=True).check()
    ServeSettings(host="::1").check()


def test_no_cors_headers_unless_an_origin_is_allowed(client, b0s1_fp32_model_dir):
    h = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/sessions", headers=h).headers
    assert "access-control-allow-origin" not in client.get("/healthz", headers=h).headers
    c = make_client(b0s1_fp32_model_dir, cors=("http://ok.example",))
    r = c.get("/healthz", headers={"Origin": "http://ok.example"})
    assert r.headers["access-control-allow-origin"] == "http://ok.example"
    assert "access-control-allow-origin" not in c.get("/healthz", headers=h).headers


def test_metrics_count_clicks_stages_sessions_and_errors(b0s1_fp32_model_dir):
    c = make_client(b0s1_fp32_model_dir)
    sid = new_session(c)
    click(c, sid, *CLICKS[0])
    click(c, sid, *CLICKS[1], query="?preview=1")
    click(c, sid, 9999, 0, True)
    c.post(f"/v1/sessions/{sid}/undo")
    text = c.get("/metrics").text
    assert 'focalclick_clicks_total{kind="click"} 1.0' in text
    assert 'focalclick_clicks_total{kind="preview"} 1.0' in text
    assert 'focalclick_clicks_total{kind="undo"} 1.0' in text
    assert 'focalclick_click_stage_seconds_count{stage="segmentor"} 2.0' in text
    assert 'focalclick_http_errors_total{status="400"} 1.0' in text
    assert "focalclick_sessions 1.0" in text


def test_healthz_reports_model_run_and_cpu(client):
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["variant"] == "b0-s1"
    # the fixture export has no INT8: auto takes the faster FP32 run on this CPU
    assert h["run"] in ("ort-fp32", "ov-fp32") and h["run_choice"] == "auto"
    assert h["cpu"] and h["limits"]["max_sessions"] == 32


def test_run_ids_choose_backend_and_precision(b0s1_fp32_model_dir):
    c = make_client(b0s1_fp32_model_dir, run="ov-fp32")
    h = c.get("/healthz").json()
    assert (h["run"], h["backend"], h["precision"], h["run_choice"]) == ("ov-fp32", "openvino", "fp32", "explicit")
    sid = new_session(c)
    assert click(c, sid, *CLICKS[0]).status_code == 200
    with pytest.raises(UserError, match="no onnxruntime int8"):
        create_app(ServeSettings(model_dir=b0s1_fp32_model_dir, run="ort-int8"))
    with pytest.raises(UserError, match="unknown run"):
        create_app(ServeSettings(model_dir=b0s1_fp32_model_dir, run="tpu-int4"))


def test_auto_serves_the_run_that_run_choice_picks_and_says_why(b0s1_fp32_model_dir):
    from focalclick_edge.runtime.model_dir import ModelDir
    from focalclick_edge.runtime.run_choice import choose_run

    lines = []
    got = resolve_run(ModelDir.open(b0s1_fp32_model_dir), "auto", None, "fp32", log=lines.append)
    spec, report = choose_run(b0s1_fp32_model_dir)
    assert got.id in ("ort-fp32", "ov-fp32") and got == get_run(got.id)
    assert set(report["per_click_graph_ms"]) == {"ort-fp32", "ov-fp32"}
    assert lines and lines[0].startswith("--run auto chose " + got.id)
    model = ModelDir.open(b0s1_fp32_model_dir)
    assert resolve_run(model, "auto", "ov", "fp32") == get_run("ov-fp32")
    h = make_client(b0s1_fp32_model_dir).get("/healthz").json()
    assert h["run_choice"] == "auto" and h["run_choice_reason"].startswith("--run auto chose " + h["run"])


def test_serve_app_speaks_the_label_studio_ml_backend_protocol_under_its_prefix(client):
    """`focalclick-edge serve` is what a Label Studio project connects to: /label-studio/health and /setup
    answer as its ML-backend client expects (the protocol itself: tests/test_label_studio_*.py)."""
    from focalclick_edge.adapters.label_studio_config import EXAMPLE_CONFIG

    health = client.get("/label-studio/health")
    assert health.status_code == 200 and health.json()["status"] == "UP"
    setup = client.post("/label-studio/setup", json={"project": "1.1", "schema": EXAMPLE_CONFIG})
    assert setup.status_code == 200 and "model_version" in setup.json()
    bad = client.post("/label-studio/predict", json={"tasks": "nope"})
    assert bad.status_code == 400 and "error" in bad.json()


def test_serve_with_cfr_answers_the_masks_of_a_cfr_session(b0s1_fp32_model_dir, reference):
    """`serve --cfr 1`: each click's mask is the one a CFR-1 Session gives for the same clicks."""
    from focalclick_edge.runtime.cfr import parse_cfr
    from focalclick_edge.runtime.paper_merge import wrap_session

    http = make_client(b0s1_fp32_model_dir, cfr="1")
    assert http.get("/healthz").json()["cfr"] == "1"
    made = http.post("/v1/sessions", content=IMAGE.read_bytes(), headers={"content-type": "image/jpeg"})
    sid = made.json()["session"]
    cfr = wrap_session(reference.spawn(), "official", parse_cfr("1"))
    cfr.set_image(read_image(IMAGE))
    for x, y, p in CLICKS:
        got = http.post(f"/v1/sessions/{sid}/clicks", json={"x": x, "y": y, "positive": p}).json()
        mask = cv2.imdecode(np.frombuffer(base64.b64decode(got["mask_png"]), np.uint8), cv2.IMREAD_GRAYSCALE) > 0
        assert np.array_equal(mask, cfr.add_click(x, y, p).mask)
    with pytest.raises(UserError, match="cfr"):
        ServeSettings(model_dir=b0s1_fp32_model_dir, cfr="x9").check()


def test_auto_skips_an_int8_run_whose_recorded_agreement_is_under_the_floor(tmp_path):
    """`--run auto` considers ov-int8 only when the export's recorded stepwise agreement with FP32 passes."""
    import json
    import shutil

    from focalclick_edge.assets import shipped_model_dir
    from focalclick_edge.runtime.run_choice import ACCURACY_FLOOR, choose_run

    model = tmp_path / "m"
    shutil.copytree(shipped_model_dir("b0-s1"), model)
    card_path = model / "model_card.json"
    card = json.loads(card_path.read_text())
    for value, refused in ((ACCURACY_FLOOR - 0.01, True), (ACCURACY_FLOOR + 0.01, False)):
        card["quantization"]["agreement"]["openvino/int8"]["stepwise_mean_iou"] = value
        card_path.write_text(json.dumps(card))
        report = choose_run(model)[1]
        why = report["excluded"].get("ov-int8", "")
        assert ("floor" in why) is refused, report
        offered = any(r.split("+")[0] == "ov-int8" for r in report["per_click_graph_ms"])  # any Refiner pairing
        assert refused or offered or "not faster" in why

