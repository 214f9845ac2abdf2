"""`focalclick-edge serve` as a real process: it binds, prints its URL, answers; bad flags exit 2."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

pytest.importorskip("uvicorn")
from serve_server import ROOT, running_server  # noqa: E402


def test_serve_prints_its_url_and_answers_healthz_and_the_page(b0s1_fp32_model_dir):
    with running_server("--model", str(b0s1_fp32_model_dir)) as (url, line):
        assert f"{url}/" in line and "run ort-fp32" in line
        with urllib.request.urlopen(url + "/healthz") as r:
            h = json.load(r)
        assert h["run"] == "ort-fp32" and h["auth"] is False
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
