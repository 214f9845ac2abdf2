"""`focalclick-edge serve` as a real process: it binds, prints its URL, answers; bad flags exit 2."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

pytest.importorskip("uvicorn")
from serve_server import ROOT, running_server  # noqa: E402

from focalclick_edge.runtime.model_dir import ModelDir  # noqa: E402


def test_serve_prints_its_url_and_answers_healthz_and_the_page(b0s1_fp32_model_dir):
    with running_server("--model", str(b0s1_fp32_model_dir)) as (url, line, _pid):
        assert f"{url}/" in line and ("run ort-fp32" in line or "run ov-fp32" in line)
        with urllib.request.urlopen(url + "/healthz") as r:
            h = json.load(r)
        assert f"run {h['run']}," in line and h["auth"] is False
        with urllib.request.urlopen(url + "/") as r:
            page = r.read().decode()
        assert "<canvas" in page and "/static/app.js" in page
        assert "http" not in page.replace("http-equiv", "")  # no CDN: nothing is loaded from elsewhere


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "focalclick_edge", "serve", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(("args", "needle"), [
    (["--host", "0.0.0.0"], "--token"),
    (["--model", "/nonexistent/model"], "does not exist"),
    (["--run", "tpu-int4"], "unknown run"),
    (["--max-sessions", "0"], "--max-sessions must be positive"),
])
def test_bad_serve_flags_exit_2_with_one_line(b0s1_fp32_model_dir, args, needle):
    if "--model" not in args:
        args = ["--model", str(b0s1_fp32_model_dir), *args]
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


SHIPPED_NO_TORCH = """
import sys
from fastapi.testclient import TestClient
from focalclick_edge.assets import sample_image_paths
from focalclick_edge.serve.app import create_app
from focalclick_edge.serve.settings import ServeSettings
c = TestClient(create_app(ServeSettings()))
h = c.get("/healthz").json()
sid = c.post("/v1/sessions", content=sample_image_paths()[0].read_bytes(),
             headers={"Content-Type": "image/jpeg"}).json()["session"]
r = c.post(f"/v1/sessions/{sid}/clicks", json={"x": 160, "y": 110, "positive": True})
print(h["model"], h["run"], r.status_code, "torch" in sys.modules)
"""


def test_without_model_serve_uses_the_shipped_b0s1_and_never_imports_torch():
    r = subprocess.run([sys.executable, "-c", SHIPPED_NO_TORCH], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    # auto: the fastest run here among those whose recorded accuracy passes (which one depends on this
    # CPU's timings; the accuracy gate depends only on the card).
    from focalclick_edge.assets import MODELS_DIR
    from focalclick_edge.runtime.run_choice import choose_run
    from focalclick_edge.runtime.runs import base_id, get_run

    words = r.stdout.split()
    assert words[:2] == ["b0-s1", "(shipped)"] and words[3:] == ["200", "False"]
    _, report = choose_run(MODELS_DIR / "b0-s1", retime=False)
    failing = {rid for rid, why in report["excluded"].items() if "stepwise" in why or "agreement" in why}
    served = get_run(words[2])  # a run of the table, or one with another Refiner (ov-int8+refiner-bf16)
    assert base_id(served.id) in ModelDir.open(MODELS_DIR / "b0-s1").runs() and base_id(served.id) not in failing


def test_segment_without_model_uses_the_shipped_b0s1(tmp_path):
    from focalclick_edge.assets import sample_image_paths

    out = tmp_path / "mask.png"
    r = subprocess.run([sys.executable, "-m", "focalclick_edge", "segment", str(sample_image_paths()[0]),
                        "--click", "160,110,+", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    import cv2

    mask = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (212, 320) and 0.02 < (mask > 0).mean() < 0.9  # the real model finds the bear
