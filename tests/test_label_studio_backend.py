"""The Label Studio ML backend router on a FastAPI app of its own (the serve app mounts the same router),
with task images served over real HTTP by a small file server that checks Label Studio's token."""
from __future__ import annotations

import http.server
import threading
import uuid

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
brush = pytest.importorskip("label_studio_converter.brush")

from conftest import FIXTURES  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from focalclick_edge.adapters.click_service import ClickService  # noqa: E402
from focalclick_edge.adapters.label_studio import label_studio_router  # noqa: E402
from focalclick_edge.adapters.label_studio_config import EXAMPLE_CONFIG, parse_label_config  # noqa: E402
from focalclick_edge.adapters.label_studio_images import LabelStudioSettings  # noqa: E402
from focalclick_edge.adapters.label_studio_protocol import percent_to_pixel  # noqa: E402
from focalclick_edge.errors import UserError  # noqa: E402
from focalclick_edge.runtime import Session  # noqa: E402
from focalclick_edge.runtime.images import read_image  # noqa: E402

TEDDY = FIXTURES / "images" / "teddy.png"
TOKEN = "test-token-" + uuid.uuid4().hex[:8]
W, H = 284, 398
# Keypoints in percent of the image, in the order they were placed (the third is negative).
KEYPOINTS = [(51.2, 45.1, True), (49.3, 50.2, True), (52.8, 75.4, False)]


class _Files(http.server.BaseHTTPRequestHandler):
    seen_auth: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).seen_auth.append(self.headers.get("Authorization"))
        if self.path == "/data/upload/1/teddy.png" and self.headers.get("Authorization") == f"Token {TOKEN}":
            self._send(200, TEDDY.read_bytes())
        elif self.path == "/public/teddy.png":
            self._send(200, TEDDY.read_bytes())
        elif self.path == "/redirect.png":
            self.send_response(302)
            self.send_header("Location", "http://example.invalid/x.png")
            self.end_headers()
        else:
            self._send(403 if self.path.startswith("/data/") else 404, b"no")

    def _send(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def file_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def session(b0s1_fp32_model_dir) -> Session:
    return Session(b0s1_fp32_model_dir)


def make_client(session, settings):
    service = ClickService({"ort-fp32": session})
    app = FastAPI()
    router = label_studio_router(service, settings)
    app.include_router(router, prefix="/label-studio")
    return TestClient(app), service


@pytest.fixture()
def client(session, file_server):
    return make_client(session, LabelStudioSettings(url=file_server, api_key=TOKEN))


def keypoint(x, y, positive, label="Object"):
    return {"id": uuid.uuid4().hex[:10], "type": "keypointlabels", "from_name": "tag2", "to_name": "image",
            "original_width": W, "original_height": H, "image_rotation": 0, "is_positive": positive,
            "value": {"x": x, "y": y, "width": 0.6, "keypointlabels": [label]}}


def predict_body(points, image="/data/upload/1/teddy.png", config=EXAMPLE_CONFIG):
    return {"tasks": [{"id": 1, "data": {"image": image}}], "label_config": config, "project": "1.1700000000",
            "params": {"login": None, "password": None,
                       "context": {"result": [keypoint(*p) for p in points]} if points is not None else None}}


def test_health_setup_and_webhook_answer_as_label_studio_expects(client):
    http, _ = client
    health = http.get("/label-studio/health").json()
    assert health["status"] == "UP" and health["model_version"] == "focalclick-edge-ort-fp32"
    setup = http.post("/label-studio/setup", json={"project": "1.1", "schema": EXAMPLE_CONFIG,
                                                   "hostname": "http://localhost:8080", "access_token": "x"})
    assert setup.status_code == 200 and setup.json() == {"model_version": "focalclick-edge-ort-fp32"}
    assert http.post("/label-studio/webhook", json={"action": "ANNOTATION_CREATED"}).status_code == 200
    bad = http.post("/label-studio/setup", json={"schema": "<View><Image name='i' value='$i'/></View>"})
    assert bad.status_code == 400 and "BrushLabels" in bad.json()["error"]


def test_growing_keypoints_give_brush_rle_of_the_sessions_masks_one_click_each(client, session):
    http, service = client
    ref = session.spawn()
    ref.set_image(read_image(TEDDY))
    for n in range(1, len(KEYPOINTS) + 1):
        x, y, p = KEYPOINTS[n - 1]
        expected = ref.add_click(percent_to_pixel(x, W), percent_to_pixel(y, H), p).mask
        answer = http.post("/label-studio/predict", json=predict_body(KEYPOINTS[:n]))
        assert answer.status_code == 200, answer.text
        (task,) = answer.json()["results"]
        assert task["model_version"] == "focalclick-edge-ort-fp32" and 0 < task["score"] <= 1
        (region,) = task["result"]
        assert set(region) == {"type", "from_name", "to_name", "original_width", "original_height",
                               "image_rotation", "value"}
        assert (region["type"], region["from_name"], region["to_name"]) == ("brushlabels", "tag", "image")
        assert (region["original_width"], region["original_height"], region["image_rotation"]) == (W, H, 0)
        assert region["value"]["format"] == "rle" and region["value"]["brushlabels"] == ["Object"]
        rgba = brush.decode_rle(region["value"]["rle"]).reshape(H, W, 4)
        assert np.array_equal(rgba[..., 3] > 0, expected), f"keypoint {n}"
    assert service.stats.clicks_run == len(KEYPOINTS)


def test_names_and_labels_come_from_the_label_config(client):
    http, _ = client
    config = """<View><Image name="photo" value="$img"/>
      <BrushLabels name="masks" toName="photo"><Label value="Cat"/><Label value="Dog"/></BrushLabels>
      <KeyPointLabels name="clicks" toName="photo" smart="true"><Label value="Dog" smart="true"/></KeyPointLabels>
    </View>"""
    body = predict_body(None, config=config)
    body["tasks"][0]["data"] = {"img": "/data/upload/1/teddy.png"}
    kp = keypoint(*KEYPOINTS[0], label="Dog")
    kp.update(from_name="clicks", to_name="photo")
    body["params"]["context"] = {"result": [kp]}
    (region,) = http.post("/label-studio/predict", json=body).json()["results"][0]["result"]
    assert (region["from_name"], region["to_name"], region["value"]["brushlabels"]) == ("masks", "photo", ["Dog"])


def test_keypoint_percent_maps_to_the_pixel_it_falls_in_clamped():
    assert percent_to_pixel(50.0, 284) == 142 and percent_to_pixel(49.99, 284) == 141
    assert percent_to_pixel(100.0, 284) == 283 and percent_to_pixel(-3.0, 284) == 0
    assert percent_to_pixel(0.3, 398) == 1  # floor(1.194)


def test_a_task_without_keypoints_gets_an_empty_prediction(client):
    http, service = client
    answer = http.post("/label-studio/predict", json=predict_body(None)).json()
    assert answer == {"results": [{"result": [], "model_version": "focalclick-edge-ort-fp32", "score": 0.0}]}
    assert service.stats.calls == 0


def test_absolute_urls_of_other_hosts_are_refused_unless_allowed(session, file_server):
    port = file_server.rsplit(":", 1)[1]
    other = f"http://localhost:{port}/public/teddy.png"  # same server, but not Label Studio's host name
    _Files.seen_auth.clear()
    http, _ = make_client(session, LabelStudioSettings(url=file_server, api_key=TOKEN))
    refused = http.post("/label-studio/predict", json=predict_body(KEYPOINTS[:1], image=other))
    assert refused.status_code == 400 and "FOCALCLICK_EDGE_LS_ALLOWED_HOSTS" in refused.json()["error"]
    assert _Files.seen_auth == []  # refused before any request was made
    http, _ = make_client(session, LabelStudioSettings(url=file_server, api_key=TOKEN,
                                                       allowed_hosts=frozenset({"localhost"})))
    ok = http.post("/label-studio/predict", json=predict_body(KEYPOINTS[:1], image=other))
    assert ok.status_code == 200 and ok.json()["results"][0]["result"]
    assert _Files.seen_auth == [None]  # Label Studio's token goes to Label Studio's host only


@pytest.mark.parametrize("image, settings, message", [
    ("/data/upload/1/teddy.png", LabelStudioSettings(), "set LABEL_STUDIO_URL"),
    ("file:///etc/passwd", None, "is not http(s)"),
    ("/etc/passwd", None, "not a Label Studio /data/... path"),
    ("/data/upload/1/missing.png", None, "answered HTTP 403; check LABEL_STUDIO_API_KEY"),
    ("/redirect.png", None, "not a Label Studio /data/... path"),
])
def test_unusable_image_references_answer_400(session, file_server, image, settings, message):
    http, _ = make_client(session, settings or LabelStudioSettings(url=file_server, api_key=TOKEN))
    answer = http.post("/label-studio/predict", json=predict_body(KEYPOINTS[:1], image=image))
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_redirects_are_not_followed(session, file_server):
    http, _ = make_client(session, LabelStudioSettings(url=file_server, api_key=TOKEN))
    answer = http.post("/label-studio/predict", json=predict_body(KEYPOINTS[:1], image=file_server + "/redirect.png"))
    assert answer.status_code == 400 and "answered HTTP 302" in answer.json()["error"]


@pytest.mark.parametrize("body, message", [
    (b"{nope", "not JSON"),
    (b'{"tasks": 3}', '"tasks"'),
    (b'{"tasks": [], "label_config": "<View"}', "not valid XML"),
])
def test_bad_predict_bodies_answer_400_with_an_error(client, body, message):
    http, _ = client
    answer = http.post("/label-studio/predict", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_label_config_without_smart_keypoints_is_refused():
    with pytest.raises(UserError, match="KeyPointLabels"):
        parse_label_config('<View><Image name="i" value="$i"/><BrushLabels name="b" toName="i">'
                           '<Label value="A"/></BrushLabels></View>')
    cfg = parse_label_config(EXAMPLE_CONFIG)
    assert (cfg.brush_from, cfg.to_name, cfg.image_key, cfg.brush_labels) == ("tag", "image", "image", ("Object",))
