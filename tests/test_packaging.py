"""The wheel carries the shipped model and the serve page and stays within the 50 MB budget."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_model_and_page_within_50_mb(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("focalclick_edge-*.whl")
    assert wheel.stat().st_size <= 50e6, f"wheel is {wheel.stat().st_size / 1e6:.1f} MB"
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("focalclick_edge/assets/models/b0-s1/model_card.json",
                   "focalclick_edge/assets/models/b0-s1/openvino/segmentor.int8.bin",
                   "focalclick_edge/assets/models/b0-s1/segmentor.fp32.onnx",
                   "focalclick_edge/serve/static/index.html", "focalclick_edge/serve/static/app.js"):
        assert needed in names


def test_the_shipped_model_holds_exactly_the_default_runs():
    from focalclick_edge.assets import shipped_model_dir
    from focalclick_edge.runtime.model_dir import ModelDir

    model = ModelDir.open(shipped_model_dir("b0-s1"))
    assert model.variant == "b0-s1"
    assert model.available() == [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"),
                                 ("openvino", "int8")]
    for f in model.card["files"]:
        model.graph_file(f["role"], f["backend"], f["precision"])  # present, sha256 as recorded
    on_disk = {p.relative_to(model.path).as_posix() for p in model.path.rglob("*") if p.is_file()}
    listed = {f[k] for f in model.card["files"] for k in ("path", "weights_path") if k in f}
    assert on_disk == listed | {"model_card.json"}
