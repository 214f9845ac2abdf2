"""Session behaviour that does not depend on parity: torch-free operation, bad input, undo/reset."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from conftest import FIXTURES, write_official_checkpoint  # noqa: E402

from focalclick_edge.cli import main as cli_main  # noqa: E402
from focalclick_edge.errors import UserError  # noqa: E402
from focalclick_edge.export.exporter import export_variant  # noqa: E402
from focalclick_edge.runtime import STAGES, Session  # noqa: E402

TEDDY = FIXTURES / "images" / "teddy.png"


@pytest.fixture(scope="module")
def model_dir(b0s1_fp32_model_dir) -> Path:
    return b0s1_fp32_model_dir


@pytest.fixture()
def teddy() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(TEDDY)), cv2.COLOR_BGR2RGB)


TORCH_FREE = r"""
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked in this test)", name=name)
sys.meta_path.insert(0, NoTorch())
import cv2, numpy as np
from focalclick_edge.runtime import Session
s = Session(sys.argv[1])
img = cv2.cvtColor(cv2.imread(sys.argv[2]), cv2.COLOR_BGR2RGB)
s.set_image(img)
r1 = s.add_click(145, 179, True)
r2 = s.add_click(150, 300, False)
s.set_mask(r2.mask)
r3 = s.add_click(140, 200, True)
assert "torch" not in sys.modules
print(int(r1.mask.sum()), int(r2.mask.sum()), int(r3.mask.sum()))
"""


def test_full_session_runs_with_torch_impossible_to_import(model_dir, tmp_path):
    script = tmp_path / "torch_free.py"
    script.write_text(TORCH_FREE)
    out = subprocess.run([sys.executable, str(script), str(model_dir), str(TEDDY)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert all(int(v) > 0 for v in out.stdout.split())


def test_click_result_has_prob_mask_and_every_stage_timing(model_dir, teddy):
    s = Session(model_dir)
    s.set_image(teddy)
    r = s.add_click(145, 179, True)
    assert r.prob.dtype == np.float32 and r.prob.shape == teddy.shape[:2]
    assert r.mask.dtype == np.bool_ and r.mask.shape == teddy.shape[:2]
    assert set(r.timings) == set(STAGES) and all(v >= 0 for v in r.timings.values())
    assert np.array_equal(r.mask, r.prob > 0.5)


def test_undo_restores_the_previous_result_and_reset_clears_clicks(model_dir, teddy):
    s = Session(model_dir)
    s.set_image(teddy)
    r1 = s.add_click(145, 179, True)
    s.add_click(150, 300, False)
    back = s.undo()
    assert np.array_equal(back.mask, r1.mask) and len(s.clicks) == 1
    r1_again = s.add_click(150, 300, False)
    assert r1_again.mask.shape == r1.mask.shape
    s.reset()
    assert s.clicks == []
    with pytest.raises(UserError, match="nothing to undo"):
        s.undo()


def test_grayscale_rgba_and_16bit_images_are_converted(model_dir, teddy):
    s = Session(model_dir)
    gray = cv2.cvtColor(teddy, cv2.COLOR_RGB2GRAY)
    s.set_image(gray)
    assert s.add_click(145, 179, True).mask.shape == gray.shape
    rgba = np.dstack([teddy, np.full(teddy.shape[:2], 255, np.uint8)])
    s.set_image(rgba)
    a = s.add_click(145, 179, True).mask
    s.set_image(teddy.astype(np.uint16) * 257)
    b = s.add_click(145, 179, True).mask
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "image,match",
    [
        (np.zeros((10, 10, 3), np.float32), "dtype float32; pass uint8"),
        (np.zeros((10, 10, 5), np.uint8), "shape"),
        (np.zeros((10, 10), bool), "boolean mask"),
    ],
)
def test_unusable_images_are_refused_with_a_clear_message(model_dir, image, match):
    with pytest.raises(UserError, match=match):
        Session(model_dir).set_image(image)


def test_click_outside_the_image_and_wrong_mask_size_are_clear_errors(model_dir, teddy):
    s = Session(model_dir)
    with pytest.raises(UserError, match="set_image"):
        s.add_click(1, 1, True)
    s.set_image(teddy)
    with pytest.raises(UserError, match=r"outside the 284x398 image"):
        s.add_click(284, 10, True)
    with pytest.raises(UserError, match=r"outside"):
        s.add_click(-1, 10, True)
    with pytest.raises(UserError, match="initial mask is 10x10 but the image is 398x284"):
        s.set_mask(np.ones((10, 10), bool))
    with pytest.raises(UserError, match="initial mask is empty"):
        s.set_mask(np.zeros(teddy.shape[:2], bool))


def test_model_directory_with_missing_or_corrupt_file_names_that_file(model_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "refiner.fp32.onnx").unlink()
    with pytest.raises(UserError, match=r"refiner.fp32.onnx is missing"):
        Session(broken)
    shutil.copy(model_dir / "refiner.fp32.onnx", broken / "refiner.fp32.onnx")
    with open(broken / "segmentor.fp32.onnx", "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00" * 64)
    with pytest.raises(UserError, match=r"segmentor.fp32.onnx is corrupt"):
        Session(broken)
    (broken / "model_card.json").write_text("{not json")
    with pytest.raises(UserError, match="model_card.json is corrupt"):
        Session(broken)
    with pytest.raises(UserError, match="does not exist"):
        Session(tmp_path / "nope")


def test_model_card_lists_files_with_sha256_and_verification(model_dir):
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["variant"] == "b0-s1" and len(card["source_checkpoint"]["sha256"]) == 64
    onnx = [f for f in card["files"] if f["backend"] == "onnxruntime" and f["precision"] == "fp32"]
    assert {f["role"] for f in onnx} == {"segmentor", "refiner"}
    for f in onnx:
        assert f["size_bytes"] == (model_dir / f["path"]).stat().st_size and len(f["sha256"]) == 64
    # The Segmentor graph runs at the backbone size (b0-s1: 128) and returns logits at 1/4 of it.
    assert card["graphs"]["segmentor"]["inputs"][0] == {"name": "image_nd", "shape": [1, 4, 128, 128],
                                                         "dtype": "float32"}
    assert card["graphs"]["segmentor"]["outputs"][0] == {"name": "coarse_logits", "shape": [1, 1, 32, 32],
                                                          "dtype": "float32"}
    assert card["preprocessing"]["segmentor_feed_size"] == 128
    assert card["preprocessing"]["segmentor_disk_radius"] == 3
    assert "torch" in card["tools"] and "onnxruntime" in card["tools"]


def test_segment_cli_writes_mask_and_overlay(model_dir, tmp_path, capsys):
    mask, overlay = tmp_path / "m.png", tmp_path / "o.png"
    rc = cli_main(["segment", str(TEDDY), "--model", str(model_dir), "--click", "145,179,+",
                   "--click", "150,300,-", "--out", str(mask), "--overlay", str(overlay)])
    assert rc == 0
    m = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
    assert m.shape == (398, 284) and set(np.unique(m)) <= {0, 255}
    assert cv2.imread(str(overlay)).shape == (398, 284, 3)


def test_segment_cli_reports_a_click_outside_the_image_in_one_line(model_dir, tmp_path, capsys):
    rc = cli_main(["segment", str(TEDDY), "--model", str(model_dir), "--click", "999,5,+",
                   "--out", str(tmp_path / "m.png")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "outside the 284x398 image" in err
    assert not (tmp_path / "m.png").exists()


def test_failed_export_leaves_no_model_directory(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    rc = cli_main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "m")])
    assert rc == 2
    assert list(tmp_path.iterdir()) == [bad]


def test_export_without_checkpoint_names_what_is_missing(tmp_path, capsys):
    rc = cli_main(["export", "--variant", "hrnet32-s2", "--out", str(tmp_path / "m")])
    assert rc == 2 and "pass --checkpoint" in capsys.readouterr().err


def test_export_interrupted_midway_leaves_no_partial_directory(tmp_path, monkeypatch):
    import focalclick_edge.export.onnx_export as onnx_export

    ckpt = write_official_checkpoint("b0-s1", tmp_path / "ckpt.pth")

    def boom(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "_simplify", boom)
    with pytest.raises(KeyboardInterrupt):
        export_variant(None, tmp_path / "out", checkpoint=ckpt, log=lambda _m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth"]


def test_unknown_variant_is_a_one_line_error(tmp_path, capsys):
    rc = cli_main(["export", "--variant", "b1-s1", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown variant 'b1-s1'" in err and len(err.strip().splitlines()) == 1


def test_export_without_the_export_extra_says_which_extra_to_install(tmp_path):
    script = tmp_path / "no_torch_export.py"
    script.write_text(TORCH_FREE.split("import cv2")[0] + (
        "from focalclick_edge.cli import main\n"
        f"sys.exit(main(['export', '--variant', 'b0-s1', '--checkpoint', 'x.pth', '--out', {str(tmp_path / 'm')!r}]))\n"
    ))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().endswith('pip install "focalclick-edge[export]"') and "Traceback" not in out.stderr


def test_export_killed_with_sigterm_leaves_no_partial_directory(tmp_path):
    import signal
    import time

    ckpt = write_official_checkpoint("b0-s1", tmp_path / "ckpt.pth")
    out = tmp_path / "models"
    proc = subprocess.Popen([sys.executable, "-m", "focalclick_edge", "export", "--checkpoint", str(ckpt),
                             "--out", str(out / "b0-s1")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not (out.exists() and any(out.iterdir())):
        time.sleep(0.1)
    assert out.exists() and any(out.iterdir()), "export never started writing"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert list(out.iterdir()) == []


def test_runtime_imports_without_torch_opencv_or_backends_and_names_what_to_install(tmp_path):
    blocked = ("torch", "cv2", "onnxruntime", "openvino")
    script = tmp_path / "bare.py"
    script.write_text(TORCH_FREE.split("import cv2")[0].replace(
        'name == "torch" or name.startswith("torch.")',
        f"name.split('.')[0] in {blocked!r}",
    ) + (
        "import numpy as np\n"
        "import focalclick_edge.runtime\n"
        "from focalclick_edge.errors import UserError\n"
        "from focalclick_edge.runtime import geometry\n"
        "from focalclick_edge.runtime.backends import compile_model\n"
        "z = np.zeros((5, 5), np.float32)\n"
        "for call in (lambda: geometry.focus_crop_box(z, z, (0, 5, 0, 5), (2, 2)),\n"
        "             lambda: compile_model('x.onnx', 'onnxruntime')):\n"
        "    try:\n"
        "        call()\n"
        "    except UserError as exc:\n"
        "        print(exc)\n"
    ))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert "pip install opencv-python-headless" in lines[0] and "pip install onnxruntime" in lines[1]



def test_snapshot_restore_and_spawn_reproduce_the_same_masks(model_dir, teddy):
    """A snapshot taken after click 1 and restored (here or on a spawned Session over the same graphs)
    continues exactly as an uninterrupted session; clicks read back as (x, y, positive)."""
    s = Session(model_dir)
    s.set_image(teddy)
    h, w = teddy.shape[:2]
    s.add_click(w // 2, h // 2, True)
    snap = s.snapshot()
    ref = s.add_click(w // 3, h // 3, False).mask.copy()
    assert s.clicks == [(w // 2, h // 2, True), (w // 3, h // 3, False)]
    s.restore(snap)
    assert s.clicks == [(w // 2, h // 2, True)]
    assert np.array_equal(s.add_click(w // 3, h // 3, False).mask, ref)
    other = s.spawn()
    assert other.image_size is None
    other.restore(snap)
    assert np.array_equal(other.add_click(w // 3, h // 3, False).mask, ref)
    assert snap.nbytes > 0
