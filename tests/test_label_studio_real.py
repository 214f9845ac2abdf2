"""Against a real Label Studio (PyPI ``label-studio``): a brush + smart-keypoint project, a task, our backend
connected through its API, and interactive predictions asked for as its frontend asks on each keypoint.

Label Studio pins its own NumPy, so it runs from a separate virtual environment, created once under the
user cache directory (FOCALCLICK_EDGE_LS_VENV overrides the place) and reused. It is started offline on
127.0.0.1 with a temporary sqlite data directory: empty SENTRY_DSN / FRONTEND_SENTRY_DSN keep its error
reporting from calling out, LATEST_VERSION_CHECK / COLLECT_ANALYTICS off keep it from calling home, and
USE_DEFAULT_BANNED_SUBNETS=false lets it reach an ML backend on 127.0.0.0/8.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("torch")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
brush = pytest.importorskip("label_studio_converter.brush")

from conftest import FIXTURES  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from focalclick_edge.adapters.click_service import ClickService  # noqa: E402
from focalclick_edge.adapters.label_studio import label_studio_router  # noqa: E402
from focalclick_edge.adapters.label_studio_config import EXAMPLE_CONFIG  # noqa: E402
from focalclick_edge.adapters.label_studio_images import LabelStudioSettings  # noqa: E402
from focalclick_edge.adapters.label_studio_protocol import percent_to_pixel  # noqa: E402
from focalclick_edge.runtime import Session  # noqa: E402
from focalclick_edge.runtime.images import read_image  # noqa: E402

LABEL_STUDIO = "label-studio==1.23.2"
TEDDY = FIXTURES / "images" / "teddy.png"
W, H = 284, 398
KEYPOINTS = [(51.2, 45.1, True), (49.3, 50.2, True), (52.8, 75.4, False)]


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "focalclick-edge"


@pytest.fixture(scope="module")
def ls_python() -> Path:
    """The Label Studio venv's python, installing it on first use (about 5 minutes, ~1 GB)."""
    venv = Path(os.environ.get("FOCALCLICK_EDGE_LS_VENV") or _cache_dir() / "label-studio-venv")
    python = venv / "bin" / "python"
    marker = venv / f".installed-{LABEL_STUDIO}"
    if not marker.is_file():
        shutil.rmtree(venv, ignore_errors=True)  # a half-made venv from an interrupted install
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", LABEL_STUDIO],
                       check=True, timeout=40 * 60)
        marker.write_text("ok\n")
    return python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, proc: subprocess.Popen | None, timeout_s: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:] if log else ''}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise RuntimeError(f"{url} did not come up in {timeout_s:.0f} s:\n{log.read_text()[-3000:] if log else ''}")


@pytest.fixture(scope="module")
def label_studio(ls_python, tmp_path_factory):
    """(base URL, legacy API token) of a fresh Label Studio on 127.0.0.1."""
    data = tmp_path_factory.mktemp("label-studio-data")
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ, "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "USE_DEFAULT_BANNED_SUBNETS": "false",
           "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false", "LABEL_STUDIO_BASE_DATA_DIR": str(data)}
    log = data / "label-studio.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(ls_python.parent / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1",
             "-p", str(port), "--data-dir", str(data), "--username", "test@example.com",
             "--password", uuid.uuid4().hex, "--user-token", token, "--enable-legacy-api-token"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        # ~40 s on a fresh sqlite dir on an idle machine; minutes on a loaded 2-core one.
        _wait_up(f"http://127.0.0.1:{port}/health", proc, 15 * 60, log)
        yield f"http://127.0.0.1:{port}", token
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def backend(b0s1_fp32_model_dir, label_studio):
    """Our ML backend (the Label Studio router) served by uvicorn on 127.0.0.1."""
    ls_url, token = label_studio
    service = ClickService({"ort-fp32": Session(b0s1_fp32_model_dir)})
    app = FastAPI()
    app.include_router(label_studio_router(service, LabelStudioSettings(url=ls_url, api_key=token)),
                       prefix="/label-studio")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/label-studio"
    _wait_up(url + "/health", None, 60)
    yield url, service
    server.should_exit = True
    thread.join(30)


def keypoint(x: float, y: float, positive: bool) -> dict:
    """A smart keypoint region as the frontend puts it in the interactive-annotating context."""
    return {"id": uuid.uuid4().hex[:10], "type": "keypointlabels", "from_name": "tag2", "to_name": "image",
            "origin": "manual", "original_width": W, "original_height": H, "image_rotation": 0,
            "is_positive": positive, "value": {"x": x, "y": y, "width": 0.5, "keypointlabels": ["Object"]}}


def test_label_studio_connects_our_backend_and_gets_the_sessions_masks_as_brush_rle(
        label_studio, backend, b0s1_fp32_model_dir, ls_python, tmp_path):
    ls_url, token = label_studio
    backend_url, service = backend
    ls = httpx.Client(base_url=ls_url, headers={"Authorization": f"Token {token}"}, timeout=120)
    assert ls.get("/api/jwt/settings").json()["legacy_api_tokens_enabled"] is True

    project = ls.post("/api/projects", json={"title": "FocalClick test", "label_config": EXAMPLE_CONFIG})
    assert project.status_code == 201, project.text
    pid = project.json()["id"]
    imported = ls.post(f"/api/projects/{pid}/import", files={"file": ("teddy.png", TEDDY.read_bytes(), "image/png")})
    assert imported.status_code == 201, imported.text
    (task,) = ls.get("/api/tasks", params={"project": pid}).json()["tasks"]
    assert task["data"]["image"].startswith("/data/upload/")  # fetched back from Label Studio with the token

    ml = ls.post("/api/ml", json={"url": backend_url, "project": pid, "is_interactive": True, "title": "FocalClick"})
    assert ml.status_code == 201, ml.text
    assert ml.json()["readable_state"] == "Connected" and ml.json()["model_version"] == "focalclick-edge-ort-fp32"

    ref = Session(b0s1_fp32_model_dir)
    ref.set_image(read_image(TEDDY))
    placed: list[dict] = []
    rles = []
    for n, (x, y, positive) in enumerate(KEYPOINTS, 1):
        placed.append(keypoint(x, y, positive))
        expected = ref.add_click(percent_to_pixel(x, W), percent_to_pixel(y, H), positive).mask
        answer = ls.post(f"/api/ml/{ml.json()['id']}/interactive-annotating",
                         json={"task": task["id"], "context": {"result": placed}})
        assert answer.status_code == 200 and "errors" not in answer.json(), answer.text
        (region,) = answer.json()["data"]["result"]
        assert region["type"] == "brushlabels" and region["value"]["brushlabels"] == ["Object"]
        assert (region["from_name"], region["to_name"]) == ("tag", "image")
        rgba = brush.decode_rle(region["value"]["rle"]).reshape(H, W, 4)
        assert np.array_equal(rgba[..., 3] > 0, expected), f"keypoint {n}"
        rles.append((region["value"]["rle"], expected))
    assert service.stats.clicks_run == len(KEYPOINTS)  # one click of work per keypoint

    # Label Studio's own SDK (in its venv) reads the last mask back the same.
    rle, expected = rles[-1]
    (tmp_path / "rle.json").write_text(json.dumps(rle))
    script = ("import json, sys, numpy as np; from label_studio_sdk.converter.brush import decode_rle; "
              f"a = decode_rle(json.load(open(sys.argv[1]))).reshape({H}, {W}, 4); "
              "np.save(sys.argv[2], a[..., 3] > 0)")
    subprocess.run([str(ls_python), "-c", script, str(tmp_path / "rle.json"), str(tmp_path / "m.npy")],
                   check=True, timeout=300)
    assert np.array_equal(np.load(tmp_path / "m.npy"), expected)
