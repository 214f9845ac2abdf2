"""Calibration data: recorded tensors are exactly what a live Session feeds; cache; refusals."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FIXTURES
from test_quantization import int8_export

from focalclick_edge.errors import UserError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return int8_export(tmp_path_factory)[0]


def _shas(model_dir: Path) -> dict[str, str]:
    from focalclick_edge.fileio import sha256_file

    return {r: sha256_file(model_dir / f"{r}.fp32.onnx") for r in ("segmentor", "refiner")}


class _Spy:
    """An independent stand-in for the recorder: wraps ``run`` and keeps the feed dicts as given."""

    def __init__(self, inner):
        self.inner, self.feeds = inner, []

    def run(self, feeds):
        self.feeds.append({k: np.array(v, copy=True) for k, v in feeds.items()})
        return self.inner.run(feeds)


def test_recorded_inputs_are_the_live_session_feeds(model_dir, tmp_path):
    from focalclick_edge.calibration import open_calibration_set, record_calibration, run_noc_session
    from focalclick_edge.calibration.sessions import SCRATCH_CLICKS
    from focalclick_edge.runtime.session import Session

    cal = open_calibration_set(FIXTURES / "data" / "COCO_MVal", 2, seed=0)
    recs = record_calibration(model_dir, cal, _shas(model_dir), cache_dir=tmp_path)
    assert recs.count("segmentor") == recs.count("refiner") == 10

    # A live session, spied on without the calibration code: the same image and the same NoC clicks.
    s = Session(model_dir, "onnxruntime", "fp32")
    seg, ref = _Spy(s._segmentor), _Spy(s._refiner)
    s._segmentor, s._refiner = seg, ref
    sample = cal.dataset[cal.indices[0]]
    s.set_image(sample.image)
    run_noc_session(s, sample.gt, SCRATCH_CLICKS)
    for role, spy in (("segmentor", seg), ("refiner", ref)):
        recorded = recs.feed_list(role, range(SCRATCH_CLICKS))
        assert len(spy.feeds) == SCRATCH_CLICKS
        for live, rec in zip(spy.feeds, recorded, strict=True):
            assert live.keys() == rec.keys()
            for k in live:
                assert rec[k].shape == live[k].shape, (role, k)
                assert rec[k].dtype == live[k].dtype == np.float32, (role, k)
                np.testing.assert_array_equal(rec[k], live[k], err_msg=f"{role}.{k}")

    # Value ranges over every record (scratch and initial-mask sessions).
    seg_in, ref_in = recs.inputs["segmentor"], recs.inputs["refiner"]
    # b0-s1's Segmentor graph takes the backbone size (128; the runtime does the official 256 -> 128).
    assert seg_in["image_nd"].shape[1:] == (4, 128, 128) and seg_in["click_maps"].shape[1:] == (2, 128, 128)
    assert ref_in["image_focus"].shape[1:] == (3, 256, 256)
    for a in (seg_in["image_nd"], ref_in["image_focus"], seg_in["click_maps"]):
        assert 0.0 <= a.min() and a.max() <= 1.0  # RGB / 255, previous probability map, resized disks
    assert set(np.unique(ref_in["click_maps_focus"])) <= {0.0, 1.0}  # disks drawn at the Refiner's size
    for a in (seg_in["click_maps"], ref_in["click_maps_focus"]):
        assert (a[:, 0] == 1.0).any()  # positive click present (disk centres stay 1 after the resize)
    assert seg_in["image_nd"][0, 3].max() == 0.0  # click 1 from scratch: empty previous mask
    assert seg_in["image_nd"][SCRATCH_CLICKS, 3].max() > 0.5  # initial-mask session: the mask is prev
    assert np.isfinite(ref_in["cropped_logits"]).all() and np.isfinite(ref_in["cropped_feature"]).all()
    assert ref_in["cropped_feature"].shape[1:] == (256, 32, 32)  # b0-s1: C=256, F=128/4


def test_records_are_cached_and_round_trip_exactly(model_dir, tmp_path):
    from focalclick_edge.calibration import open_calibration_set, record_calibration

    cal = open_calibration_set(FIXTURES / "data" / "COCO_MVal", 2, seed=3)
    first = record_calibration(model_dir, cal, _shas(model_dir), cache_dir=tmp_path)
    assert first.meta["cache"]["hit"] is False
    again = record_calibration(model_dir, cal, _shas(model_dir), cache_dir=tmp_path)
    assert again.meta["cache"]["hit"] is True
    for role in ("segmentor", "refiner"):
        for k, a in first.inputs[role].items():
            b = again.inputs[role][k]
            assert b.dtype == a.dtype and np.array_equal(a, b), (role, k)
    # The key covers the models and the set: another seed (initial masks differ) or other graphs mean
    # other records.
    other = open_calibration_set(FIXTURES / "data" / "COCO_MVal", 2, seed=4)
    again_other = record_calibration(model_dir, other, _shas(model_dir), cache_dir=tmp_path)
    assert again_other.meta["cache"]["hit"] is False
    changed = {**_shas(model_dir), "refiner": "0" * 64}
    assert record_calibration(model_dir, cal, changed, cache_dir=tmp_path).meta["cache"]["hit"] is False


@pytest.mark.parametrize("name,layout", [("GrabCut", "grabcut"), ("Berkeley", "berkeley"),
                                         ("COCO_MVal", "coco_mval")])
def test_standard_layouts_open(name, layout):
    from focalclick_edge.calibration import open_calibration_set

    cal = open_calibration_set(FIXTURES / "data" / name, 8, seed=0)
    assert cal.layout == layout and len(cal.indices) == 2 and cal.holdout == []
    sample = cal.dataset[cal.indices[0]]
    assert sample.image.dtype == np.uint8 and sample.gt.dtype == np.int8


def test_name_equals_path_picks_the_layout():
    from focalclick_edge.calibration import open_calibration_set

    path = FIXTURES / "data" / "COCO_MVal"
    assert open_calibration_set(f"DAVIS={path}", 2, 0).layout == "davis"
    cal = open_calibration_set(f"COCO_MVal={path}", 2, 0)
    assert cal.layout == "coco_mval" and cal.source == f"COCO_MVal={path}"


def test_builtin_set_keeps_images_for_held_out_checks():
    from focalclick_edge.calibration import open_calibration_set

    cal = open_calibration_set(None, None, seed=0)
    assert cal.source == "built-in" and len(cal.indices) == 12 and len(cal.holdout) == 4
    assert set(cal.indices).isdisjoint(cal.holdout)
    assert open_calibration_set(None, None, seed=0).indices == cal.indices  # seeded


def _one_line_user_error(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_refuses_empty_folder_and_folder_without_masks(tmp_path):
    from focalclick_edge.calibration import open_calibration_set

    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as e:
        open_calibration_set(tmp_path / "empty", 4, 0)
    msg = _one_line_user_error(e)
    assert "found 0 recorded inputs" in msg and "empty folder" in msg

    nomask = tmp_path / "nomask"
    shutil.copytree(FIXTURES / "data" / "COCO_MVal" / "img", nomask / "images")
    (nomask / "masks").mkdir()
    with pytest.raises(UserError) as e:
        open_calibration_set(nomask, 4, 0)
    msg = _one_line_user_error(e)
    assert "found 0 recorded inputs" in msg and "mask" in msg

    with pytest.raises(UserError, match="does not exist"):
        open_calibration_set(tmp_path / "missing", 4, 0)


def test_refuses_unreadable_images_and_too_few_inputs(model_dir, tmp_path):
    from focalclick_edge.calibration import open_calibration_set, record_calibration

    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "masks").mkdir()
    for name in ("a", "b"):
        (bad / "images" / f"{name}.jpg").write_bytes(b"not a jpeg")
        mask = np.zeros((40, 50), np.uint8)
        mask[10:30, 10:40] = 255
        cv2.imwrite(str(bad / "masks" / f"{name}.png"), mask)
    cal = open_calibration_set(bad, 8, 0)
    with pytest.raises(UserError) as e:
        record_calibration(model_dir, cal, _shas(model_dir), cache_dir=tmp_path / "c")
    msg = _one_line_user_error(e)
    assert "found 0 recorded inputs" in msg and "2 unreadable" in msg

    # One readable image gives 5 inputs per graph: fewer than the 8 quantization needs.
    cal = open_calibration_set(FIXTURES / "data" / "COCO_MVal", 1, 0)
    with pytest.raises(UserError) as e:
        record_calibration(model_dir, cal, _shas(model_dir), cache_dir=tmp_path / "c")
    msg = _one_line_user_error(e)
    assert "found 5 recorded inputs" in msg and "needs at least 8" in msg and "--calib-size" in msg


def test_calibration_cache_drops_least_recently_used_sets_beyond_its_limit(tmp_path, monkeypatch):
    import os

    from focalclick_edge.calibration import cache_limit

    files = []
    for i, name in enumerate(["old", "mid", "new", "kept"]):
        p = tmp_path / f"calib-{name}.npz"
        p.write_bytes(b"x" * 1000)
        os.utime(p, (1000 + i, 1000 + i))
        files.append(p)
    (tmp_path / "init_masks.png").write_bytes(b"y" * 5000)  # not a record set: never touched
    os.utime(files[3], (10, 10))  # the set in use is the oldest by mtime, yet must stay
    removed = cache_limit.prune(tmp_path, keep=files[3], limit=2500)
    assert removed == [files[0], files[1]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib-kept.npz", "calib-new.npz", "init_masks.png"]
    monkeypatch.setenv(cache_limit.ENV, "1.5")
    assert cache_limit.limit_bytes() == int(1.5 * 1024 * 1024)
    monkeypatch.setenv(cache_limit.ENV, "lots")
    assert cache_limit.limit_bytes() == cache_limit.DEFAULT_LIMIT_MB * 1024 * 1024
