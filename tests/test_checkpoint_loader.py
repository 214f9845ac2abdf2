from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import SHARED, load_manifest, write_official_checkpoint  # noqa: E402

from focalclick_edge.models import CheckpointError, load_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def b0_s1_ckpt(tmp_path_factory) -> Path:
    return write_official_checkpoint("b0-s1", tmp_path_factory.mktemp("ckpt") / "b0s1.pth")


def test_loader_infers_variant_from_official_config_and_loads_every_tensor(b0_s1_ckpt):
    model = load_checkpoint(b0_s1_ckpt)
    assert model.variant.id == "b0-s1"
    sd = torch.load(b0_s1_ckpt, weights_only=True)["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    assert not model.training


@pytest.mark.parametrize("variant", ["b0-s1", "hrnet18s-s1"])
def test_loader_reads_checkpoint_written_by_official_save_checkpoint(variant):
    path = SHARED / "reference" / variant / "official_format_checkpoint.pth"
    if not path.exists():
        pytest.skip("../shared/reference is not beside this clone")
    model = load_checkpoint(path)
    assert model.variant.id == variant


def test_loader_names_the_real_variant_when_the_wrong_one_is_requested(b0_s1_ckpt):
    with pytest.raises(CheckpointError, match=r"is a b0-s1 checkpoint, not b0-s2; pass --variant b0-s1"):
        load_checkpoint(b0_s1_ckpt, variant="b0-s2")


def test_loader_refuses_a_checkpoint_whose_unpickling_would_run_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "config": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused to load .*could run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_loader_reports_a_truncated_file(b0_s1_ckpt, tmp_path):
    data = b0_s1_ckpt.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(cut)


@pytest.mark.parametrize(
    "content,match",
    [(b"hello, this is text\n", "not a PyTorch checkpoint"), (b"\x89PNG\r\n\x1a\n....", "not a PyTorch checkpoint")],
)
def test_loader_reports_a_file_that_is_not_a_checkpoint(tmp_path, content, match):
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_loader_reports_a_zip_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(CheckpointError, match="no data.pkl"):
        load_checkpoint(path)


def test_loader_lists_missing_and_unexpected_keys(b0_s1_ckpt, tmp_path):
    obj = torch.load(b0_s1_ckpt, weights_only=True)
    del obj["state_dict"]["refiner.refine_pred.weight"]
    obj["state_dict"]["extra.weight"] = torch.zeros(2)
    path = tmp_path / "keys.pth"
    torch.save(obj, path)
    expected = r"1 missing keys \(refiner.refine_pred.weight\).*1 unexpected keys \(extra"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(path)


def test_loader_reports_shape_mismatches(b0_s1_ckpt, tmp_path):
    obj = torch.load(b0_s1_ckpt, weights_only=True)
    obj["state_dict"]["refiner.refine_pred.weight"] = torch.zeros(1, 32, 5, 5)
    path = tmp_path / "shape.pth"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=r"1 shape mismatches \(refiner.refine_pred.weight: file \(1, 32, 5, 5\)"):
        load_checkpoint(path)


def test_loader_needs_a_variant_for_a_bare_state_dict(b0_s1_ckpt, tmp_path):
    obj = torch.load(b0_s1_ckpt, weights_only=True)
    path = tmp_path / "bare.pth"
    torch.save(obj["state_dict"], path)
    with pytest.raises(CheckpointError, match="pass --variant"):
        load_checkpoint(path)
    assert load_checkpoint(path, variant="b0-s1").variant.id == "b0-s1"


def test_loader_rejects_a_config_of_an_unpublished_architecture(b0_s1_ckpt, tmp_path):
    obj = torch.load(b0_s1_ckpt, weights_only=True)
    cfg = json.loads(json.dumps(load_manifest("b0-s1")["checkpoint_config"]))
    cfg["params"]["model_version"]["value"] = "b5"
    obj["config"] = cfg
    path = tmp_path / "b5.pth"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="none of the six published"):
        load_checkpoint(path)


def test_loader_reports_a_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pth")
