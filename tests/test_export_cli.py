"""The main command end to end: `focalclick-edge export ... --int8`, then every produced run loads."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import cv2
import pytest

pytest.importorskip("torch")

from conftest import FIXTURES, SHARED  # noqa: E402

from focalclick_edge.assets import default_checkpoint  # noqa: E402
from focalclick_edge.runtime import Session  # noqa: E402

RUNS = [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "fp16"),
        ("openvino", "int8")]


def _check_all_runs_segment(model_dir) -> None:
    img = cv2.cvtColor(cv2.imread(str(FIXTURES / "images" / "teddy.png")), cv2.COLOR_BGR2RGB)
    for backend, precision in RUNS:
        s = Session(model_dir, backend=backend, precision=precision, threads=2)
        s.set_image(img)
        assert s.add_click(145, 179, True).mask.shape == img.shape[:2]


@pytest.mark.slow
def test_export_int8_without_checkpoint_uses_the_shipped_default(tmp_path):
    if default_checkpoint("b0-s1") is None:
        pytest.skip("no b0-s1 checkpoint ships in this build")
    out = tmp_path / "b0-s1"
    proc = subprocess.run([sys.executable, "-m", "focalclick_edge", "export", "--variant", "b0-s1", "--int8",
                           "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads((out / "model_card.json").read_text())
    assert card["source_checkpoint"]["path"].endswith("b0-s1.pth")
    assert {(f["backend"], f["precision"]) for f in card["files"]} == set(RUNS)
    _check_all_runs_segment(out)


@pytest.mark.slow
def test_export_int8_of_official_checkpoint_with_32_coco_images_fits_in_ten_minutes(tmp_path):
    ckpt = SHARED / "reference" / "b0-s1" / "official_format_checkpoint.pth"
    coco = SHARED / "data" / "COCO_MVal"
    if not ckpt.exists() or not coco.exists():
        pytest.skip("../shared is not beside this clone")
    out = tmp_path / "b0-s1"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "focalclick_edge", "export", "--variant", "b0-s1", "--int8",
                           "--checkpoint", str(ckpt), "--calib-data", str(coco), "--calib-size", "32",
                           "--out", str(out)], capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-2000:]
    print(proc.stdout)
    assert wall < 600, f"export took {wall:.0f} s"
    card = json.loads((out / "model_card.json").read_text())
    assert card["calibration"]["count"] >= 8
    _check_all_runs_segment(out)
