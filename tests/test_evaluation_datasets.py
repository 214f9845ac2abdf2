from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from focalclick_edge.evaluation.datasets import (
    SegmentationDataset,
    detect_layout,
    load_dataset,
    read_image_rgb,
)

DATA = Path(__file__).parent / "fixtures" / "data"
REFERENCE = Path(__file__).parent / "fixtures" / "reference"


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _image(h: int = 12, w: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _one_line_value_error(excinfo: pytest.ExceptionInfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


# -- the real layouts (fixture copies of the benchmark files) ------------------------------------------
def test_grabcut_fixture_gives_rgb_images_and_int8_gt_with_ignore_band():
    ds = load_dataset("GrabCut", DATA / "GrabCut")
    assert ds.layout.name == "grabcut"
    assert ds.names == ["227092", "teddy"]
    assert len(ds) == 2 and ds.skipped == {"no_mask": [], "empty_mask": []}
    s = ds["227092"]
    assert s.image.dtype == np.uint8 and s.image.shape == (481, 321, 3)
    bgr = cv2.imread(str(DATA / "GrabCut" / "data_GT" / "227092.jpg"))
    np.testing.assert_array_equal(s.image, bgr[:, :, ::-1])
    assert s.gt.dtype == np.int8 and s.gt.shape == (481, 321)
    assert set(np.unique(s.gt)) == {-1, 0, 1}
    raw = cv2.imread(str(DATA / "GrabCut" / "boundary_GT" / "227092.bmp"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(s.gt == -1, raw == 128)
    np.testing.assert_array_equal(s.gt == 1, raw == 255)


def test_grabcut_teddy_equals_the_gt_and_image_of_the_official_session_fixture():
    ref = np.load(REFERENCE / "b0-s1" / "session.npz")
    assert str(ref["scratch0_image_name"]) == "teddy.jpg"
    s = load_dataset("GrabCut", DATA / "GrabCut")["teddy"]
    h, w = s.gt.shape

    def unpack(a: np.ndarray) -> np.ndarray:
        return np.unpackbits(a)[: h * w].reshape(h, w).astype(bool)

    np.testing.assert_array_equal(s.gt == 1, unpack(ref["scratch0_gt_packbits"]))
    np.testing.assert_array_equal(s.gt == -1, unpack(ref["scratch0_ignore_packbits"]))
    assert hashlib.sha256(s.image.tobytes()).hexdigest() == str(ref["scratch0_image_rgb_u8_sha256"])


def test_berkeley_fixture_reads_channel_zero_of_three_channel_masks():
    ds = load_dataset("Berkeley", DATA / "Berkeley")
    assert ds.layout.name == "berkeley" and ds.names == ["271031", "3096"]
    for s in ds:
        raw = cv2.imread(str(DATA / "Berkeley" / "masks" / f"{s.name}.png"))
        assert raw.ndim == 3
        np.testing.assert_array_equal(s.gt == 1, raw[:, :, 0] > 128)
        assert s.image.shape[:2] == s.gt.shape


def test_berkeley_rule_uses_only_channel_zero_and_128_is_ignore(tmp_path):
    mask = np.zeros((12, 16, 3), np.uint8)
    mask[2:6, 2:6, 0] = 255
    mask[6:8, 2:6, 0] = 128
    mask[9:11, 9:11, 0] = 127
    mask[0:2, 10:16, 1:] = 255  # other channels are ignored by the official loader
    _write(tmp_path / "images" / "a.jpg", _image())
    _write(tmp_path / "masks" / "a.png", mask)
    gt = load_dataset("Berkeley", tmp_path)["a"].gt
    assert (gt[2:6, 2:6] == 1).all() and (gt[6:8, 2:6] == -1).all()
    assert (gt[9:11, 9:11] == 0).all() and (gt[0:2, 10:16] == 0).all()


def test_coco_mval_fixture_keeps_names_with_spaces_and_binary_gt():
    ds = load_dataset("COCO_MVal", DATA / "COCO_MVal")
    assert ds.layout.name == "coco_mval"
    assert ds.names == ["bird04_000000098261", "hair drier06_000000315219"]
    s = ds["hair drier06_000000315219"]
    assert set(np.unique(s.gt)) == {0, 1}
    raw = cv2.imread(str(DATA / "COCO_MVal" / "gt" / "hair drier06_000000315219.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(s.gt == 1, raw > 0)


def test_davis_counts_any_nonzero_channel_as_object(tmp_path):
    mask = np.zeros((12, 16, 3), np.uint8)
    mask[1:3, 1:3] = (0, 0, 1)  # a faint red pixel (BGR) is still object, like np.max(...) > 0
    mask[5:9, 5:9] = 255
    _write(tmp_path / "img" / "f.jpg", _image())
    _write(tmp_path / "gt" / "f.png", mask)
    gt = load_dataset("DAVIS", tmp_path)["f"].gt
    assert gt.sum() == 4 + 16 and (gt[1:3, 1:3] == 1).all() and gt.min() == 0


def test_generic_layout_binarises_above_127(tmp_path):
    mask = np.zeros((12, 16), np.uint8)
    mask[:, :4] = 127
    mask[:, 4:8] = 128
    _write(tmp_path / "images" / "g.png", _image())
    _write(tmp_path / "masks" / "g.png", mask)
    ds = load_dataset("generic", tmp_path)
    gt = ds["g"].gt
    assert (gt[:, :4] == 0).all() and (gt[:, 4:8] == 1).all() and (gt[:, 8:] == 0).all()


def test_sbd_layout_lists_every_instance_of_every_image(tmp_path):
    savemat = pytest.importorskip("scipy.io").savemat
    seg = np.zeros((12, 16), np.uint8)
    seg[1:4, 1:4] = 1
    seg[6:10, 8:14] = 3
    (tmp_path / "inst").mkdir()
    savemat(tmp_path / "inst" / "2008_000001.mat",
            {"GTinst": {"Segmentation": seg, "Boundaries": np.zeros(1), "Categories": np.array([[5], [7]])}})
    _write(tmp_path / "img" / "2008_000001.jpg", _image())
    (tmp_path / "val.txt").write_text("2008_000001\n")
    ds = load_dataset("SBD", tmp_path)
    assert ds.names == ["2008_000001#1", "2008_000001#3"]
    np.testing.assert_array_equal(ds["2008_000001#3"].gt, (seg == 3).astype(np.int8))


# -- layout detection ------------------------------------------------------------------------------------
def test_unknown_name_detects_the_layout_from_the_subfolders(tmp_path):
    shutil.copytree(DATA / "GrabCut", tmp_path / "mine")
    shutil.copytree(DATA / "COCO_MVal", tmp_path / "other")
    grabcut = load_dataset("auto", tmp_path / "mine")
    assert grabcut.layout.name == "grabcut" and grabcut.name == "mine" and len(grabcut) == 2
    davis_like = load_dataset("my-set", tmp_path / "other")
    assert davis_like.layout.name == "davis" and davis_like.name == "my-set"
    assert detect_layout(tmp_path / "other") == "davis"


def test_unknown_name_prefers_a_known_folder_name(tmp_path):
    # images/ + masks/ alone would be the generic layout; the folder name says Berkeley.
    assert load_dataset("auto", DATA / "Berkeley").layout.name == "berkeley"
    shutil.copytree(DATA / "Berkeley", tmp_path / "plain")
    assert load_dataset("auto", tmp_path / "plain").layout.name == "generic"


def test_undetectable_layout_raises_one_line_value_error(tmp_path):
    (tmp_path / "pictures").mkdir()
    with pytest.raises(ValueError) as exc:
        load_dataset("auto", tmp_path)
    assert "pictures" in _one_line_value_error(exc)


# -- image decoding --------------------------------------------------------------------------------------
def test_grey_rgba_and_16_bit_images_become_8_bit_rgb(tmp_path):
    grey = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    _write(tmp_path / "grey.png", grey)
    rgb = read_image_rgb(tmp_path / "grey.png")
    assert rgb.shape == (12, 16, 3) and (rgb == grey[:, :, None]).all()

    bgra = np.dstack([_image(), np.full((12, 16), 7, np.uint8)])
    _write(tmp_path / "rgba.png", bgra)
    np.testing.assert_array_equal(read_image_rgb(tmp_path / "rgba.png"), bgra[:, :, 2::-1])

    deep = (_image().astype(np.uint16) * 257 + 3).astype(np.uint16)
    _write(tmp_path / "deep.png", deep)
    np.testing.assert_array_equal(read_image_rgb(tmp_path / "deep.png"), (deep >> 8)[:, :, ::-1])


# -- problems: clear errors or skip-and-count ------------------------------------------------------------
def test_missing_dataset_folder_raises_one_line_value_error(tmp_path):
    with pytest.raises(ValueError) as exc:
        load_dataset("GrabCut", tmp_path / "nope")
    assert "nope" in _one_line_value_error(exc) and "does not exist" in str(exc.value)


def test_missing_subfolder_names_the_folder_and_the_layout(tmp_path):
    (tmp_path / "data_GT").mkdir()
    with pytest.raises(ValueError) as exc:
        load_dataset("GrabCut", tmp_path)
    assert "boundary_GT" in _one_line_value_error(exc)


def test_folder_without_images_raises(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError) as exc:
        load_dataset("generic", tmp_path)
    assert "no images" in _one_line_value_error(exc)


def test_images_without_mask_and_empty_masks_are_skipped_and_counted(tmp_path):
    full = np.zeros((12, 16), np.uint8)
    full[3:8, 3:8] = 255
    for name in ("a", "b", "c"):
        _write(tmp_path / "images" / f"{name}.jpg", _image())
    _write(tmp_path / "masks" / "a.png", full)
    _write(tmp_path / "masks" / "b.png", np.zeros((12, 16), np.uint8))
    ds = load_dataset("generic", tmp_path)
    assert ds.names == ["a"]
    assert ds.skipped == {"no_mask": ["c"], "empty_mask": ["b"]}


def test_dataset_with_no_usable_sample_raises(tmp_path):
    _write(tmp_path / "images" / "a.jpg", _image())
    _write(tmp_path / "masks" / "a.png", np.zeros((12, 16), np.uint8))
    _write(tmp_path / "images" / "b.jpg", _image())
    with pytest.raises(ValueError) as exc:
        load_dataset("generic", tmp_path)
    msg = _one_line_value_error(exc)
    assert "1 without a mask" in msg and "1 with an empty mask" in msg


def test_images_load_lazily_and_an_unreadable_one_raises_on_access(tmp_path):
    mask = np.full((12, 16), 255, np.uint8)
    _write(tmp_path / "images" / "good.jpg", _image())
    _write(tmp_path / "masks" / "good.png", mask)
    (tmp_path / "images" / "broken.jpg").write_bytes(b"definitely not a jpeg")
    _write(tmp_path / "masks" / "broken.png", mask)
    ds = load_dataset("generic", tmp_path)  # opening never decodes images
    assert ds.names == ["broken", "good"]
    assert ds["good"].image.shape == (12, 16, 3)
    with pytest.raises(ValueError) as exc:
        ds["broken"]
    assert "broken.jpg" in _one_line_value_error(exc)


def test_unreadable_mask_raises_when_the_dataset_is_opened(tmp_path):
    _write(tmp_path / "images" / "a.jpg", _image())
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError) as exc:
        load_dataset("generic", tmp_path)
    assert "a.png" in _one_line_value_error(exc)


def test_mask_of_another_size_raises_on_access(tmp_path):
    _write(tmp_path / "images" / "a.jpg", _image(12, 16))
    _write(tmp_path / "masks" / "a.png", np.full((10, 16), 255, np.uint8))
    with pytest.raises(ValueError) as exc:
        load_dataset("generic", tmp_path)[0]
    assert "must match" in _one_line_value_error(exc)


def test_indexing_by_position_name_and_errors():
    ds = SegmentationDataset(DATA / "COCO_MVal", "coco_mval")
    assert ds[-1].name == ds.names[-1] == ds[1].name
    assert ds.load_gt("bird04_000000098261").dtype == np.int8
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(KeyError):
        ds["missing"]
    with pytest.raises(ValueError):
        SegmentationDataset(DATA / "COCO_MVal", "pascal")


def test_two_images_sharing_a_stem_keep_distinct_names(tmp_path):
    mask = np.full((12, 16), 255, np.uint8)
    _write(tmp_path / "images" / "a.jpg", _image())
    _write(tmp_path / "images" / "a.png", _image())
    _write(tmp_path / "masks" / "a.png", mask)
    assert load_dataset("generic", tmp_path).names == ["a.jpg", "a.png"]
