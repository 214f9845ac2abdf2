"""OpenVINO IR (FP32, FP16-compressed) of both graphs: files, card, agreement with ONNX Runtime."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_quantization import _sample, int8_export

from focalclick_edge.errors import UserError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return int8_export(tmp_path_factory)[0]


def test_ir_files_and_card_entries(model_dir):
    card = json.loads((model_dir / "model_card.json").read_text())
    for role in ("segmentor", "refiner"):
        for precision in ("fp32", "fp16"):
            (entry,) = [f for f in card["files"]
                        if (f["role"], f["backend"], f["precision"]) == (role, "openvino", precision)]
            assert entry["path"] == f"openvino/{role}.{precision}.xml"
            assert entry["weights_path"] == f"openvino/{role}.{precision}.bin"
            assert (model_dir / entry["weights_path"]).stat().st_size == entry["weights_size_bytes"]
    sizes = {f["path"]: f["weights_size_bytes"] for f in card["files"] if f["backend"] == "openvino"}
    # FP16 compression halves the weights of the (weight-dominated) segmentor.
    assert sizes["openvino/segmentor.fp16.xml"] < 0.6 * sizes["openvino/segmentor.fp32.xml"]
    assert "read_model" in card["openvino"]["ir"]


def test_ir_matches_onnx_runtime_on_recorded_inputs(model_dir):
    card = json.loads((model_dir / "model_card.json").read_text())
    diffs = card["verification"]["openvino_vs_onnx_max_abs_diff"]
    assert "recorded per-click" in card["verification"]["openvino_inputs"]
    for role, outputs in (("segmentor", ("coarse_logits", "feature")), ("refiner", ("refined_logits",))):
        assert set(diffs[role]["fp32"]) == set(outputs)
        assert max(diffs[role]["fp32"].values()) < 1e-3
        assert max(diffs[role]["fp16"].values()) < 5e-2
        assert max(diffs[role]["fp16"].values()) > max(diffs[role]["fp32"].values())  # really FP16 weights


def test_openvino_session_follows_onnx_runtime(model_dir):
    from focalclick_edge.calibration import run_noc_session
    from focalclick_edge.runtime.session import Session

    image, gt = _sample()
    runs = {}
    for backend, precision in (("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "fp16")):
        s = Session(model_dir, backend, precision)
        s.set_image(image)
        clicks = None if not runs else runs[("onnxruntime", "fp32")].clicks
        runs[(backend, precision)] = run_noc_session(s, gt, 3, clicks=clicks)
    ref = runs[("onnxruntime", "fp32")]
    for a, b in zip(runs[("openvino", "fp32")].masks, ref.masks, strict=True):
        assert np.mean(a != b) < 1e-4  # FP32 IR: identical up to float rounding at the threshold
    for a, b in zip(runs[("openvino", "fp16")].masks, ref.masks, strict=True):
        assert np.mean(a != b) < 5e-3


def test_check_refuses_an_ir_that_disagrees(model_dir, tmp_path, monkeypatch):
    from focalclick_edge.export import openvino_export as oe

    work = tmp_path / "m"
    (work / "openvino").mkdir(parents=True)
    shutil.copy(model_dir / "refiner.fp32.onnx", work / "refiner.fp32.onnx")
    for ext in ("xml", "bin"):
        # The FP16 IR in the FP32 slot: it must be caught at FP32 tolerance.
        shutil.copy(model_dir / "openvino" / f"refiner.fp16.{ext}", work / "openvino" / f"refiner.fp32.{ext}")
    rng = np.random.default_rng(0)
    feed = {"image_focus": rng.random((1, 3, 256, 256), np.float32),
            "click_maps_focus": np.zeros((1, 2, 256, 256), np.float32),
            "cropped_feature": rng.random((1, 256, 32, 32), np.float32) * 3,
            "cropped_logits": rng.normal(0, 4, (1, 1, 256, 256)).astype(np.float32)}
    monkeypatch.setitem(oe.TOLERANCE, "fp32", (1e-9, 0.0))
    with pytest.raises(UserError, match="differs from ONNX Runtime"):
        oe.check_openvino_ir(work, "refiner", [feed], precisions=("fp32",))


def test_float_tail_is_the_refiner_blend(model_dir):
    import onnx
    import openvino as ov

    from focalclick_edge.quantization.scope import onnx_float_tail, ov_float_tail

    onnx_tail = onnx_float_tail(onnx.load(str(model_dir / "refiner.fp32.onnx")))
    kinds = {n.name: n.op_type for n in onnx.load(str(model_dir / "refiner.fp32.onnx")).graph.node}
    # The fused detail/boundary heads give one 2-channel Resize, split by two Slices, then Eq. 1.
    assert sorted(kinds[n] for n in onnx_tail) == ["Add", "Mul", "Mul", "Resize", "Sigmoid", "Slice", "Slice", "Sub"]
    ov_model = ov.Core().read_model(str(model_dir / "openvino" / "refiner.fp32.xml"))
    ov_kinds = {op.get_friendly_name(): op.get_type_name() for op in ov_model.get_ordered_ops()}
    assert sorted(ov_kinds[n] for n in ov_float_tail(ov_model)) == [
        "Add", "Interpolate", "Multiply", "Multiply", "Sigmoid", "Slice", "Slice", "Subtract"]


def test_an_fp16_ir_outside_its_tolerance_is_left_out_and_the_rest_is_exported(tmp_path, monkeypatch):
    """FP16 is optional: its IR failing the check drops only the ov-fp16 run (reason in the card and the
    log); FP32 graphs are written and segment."""
    from conftest import write_official_checkpoint

    from focalclick_edge.export import openvino_export as oe
    from focalclick_edge.export.exporter import export_variant
    from focalclick_edge.runtime.model_dir import ModelDir
    from focalclick_edge.runtime.session import Session

    monkeypatch.setitem(oe.TOLERANCE, "fp16", (0.0, 0.0))  # every real FP16 IR differs somewhat
    ckpt = write_official_checkpoint("b0-s1", tmp_path / "b0-s1.pth")
    logs: list[str] = []
    export_variant(None, tmp_path / "model", checkpoint=ckpt, log=logs.append)
    md = ModelDir.open(tmp_path / "model")
    assert "ov-fp16" not in md.runs() and {"ort-fp32", "ov-fp32"} <= set(md.runs())
    assert not list((tmp_path / "model" / "openvino").glob("*fp16*"))
    assert md.card["openvino"]["fp16"].startswith("not exported: OpenVINO fp16 segmentor output")
    assert any(line.startswith("note: OpenVINO FP16 left out") for line in logs)
    image, mask = _sample()
    s = Session(tmp_path / "model", backend="openvino", precision="fp32", threads=1)
    s.set_image(image)
    assert s.add_click(image.shape[1] // 2, image.shape[0] // 2).mask.shape == mask.shape
