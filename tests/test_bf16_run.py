"""ov-bf16: OpenVINO's FP32 IR computed in bf16, a run only where the CPU has native bf16 (AVX512-BF16 / AMX)."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from conftest import FIXTURES

from focalclick_edge.assets import MODELS_DIR, sample_image_paths
from focalclick_edge.cli import main
from focalclick_edge.errors import UserError
from focalclick_edge.quantization.agreement import mask_iou
from focalclick_edge.runtime import Session, backends
from focalclick_edge.runtime.model_dir import ModelDir
from focalclick_edge.runtime.run_choice import _fingerprint, choose_run
from focalclick_edge.runtime.runs import gated_pairs, get_run, select_available
from focalclick_edge.serve.settings import resolve_run

HAS_BF16 = "BF16" in backends.cpu_features()
CLICKS = [(160, 110, True), (40, 30, False), (200, 120, True)]


@pytest.fixture()
def no_bf16_cpu(monkeypatch):
    """This process sees a CPU whose OpenVINO plugin reports no BF16 (an AVX2 / AVX512-VNNI-only machine)."""
    monkeypatch.setattr(backends, "_CPU_FEATURES", {"FP32", "FP16", "INT8"})


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no native bf16")
def test_ov_bf16_computes_in_bf16_and_its_masks_follow_fp32():
    """On the shipped (trained) b0-s1 and its sample: stand-in weights' near-zero logits flip whole regions."""
    image_path, _ = sample_image_paths()
    img = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    model = MODELS_DIR / "b0-s1"
    fp32, bf16 = Session(model, run="ov-fp32"), Session(model, run="ov-bf16")
    assert (bf16.backend, bf16.precision, bf16.refiner_precision) == ("openvino", "bf16", "bf16")
    logits = {}
    for name, s in (("fp32", fp32), ("bf16", bf16)):
        s.add_feed_observer(lambda role, feeds, name=name: logits.setdefault(
            name, {k: v.copy() for k, v in feeds.items()}) if role == "segmentor" else None)
        s.set_image(img)
    for x, y, positive in CLICKS:
        a, b = fp32.add_click(x, y, positive), bf16.add_click(x, y, positive)
        assert mask_iou(a.mask, b.mask) > 0.95
    # Same inputs on the first click, different arithmetic: the bf16 graph's logits are close, not equal
    # (0.09 of their spread here: bf16's 8-bit mantissa through the SegFormer attention).
    feeds = logits["fp32"]
    out32 = np.array(fp32._segmentor.run(feeds)[0], copy=True)
    out16 = np.array(bf16._segmentor.run(feeds)[0], copy=True)
    err = np.abs(out16 - out32).mean() / out32.std()
    assert 0 < err < 0.15


def test_a_cpu_without_native_bf16_has_no_ov_bf16_run(b0s1_fp32_model_dir, no_bf16_cpu, capsys):
    md = ModelDir.open(b0s1_fp32_model_dir)
    assert "ov-bf16" not in md.runs() and "ov-fp32" in md.runs()
    with pytest.raises(UserError, match="native bf16 .*use the fp32 run"):
        Session(b0s1_fp32_model_dir, run="ov-bf16")
    with pytest.raises(UserError, match="ov-bf16 needs a CPU with native bf16 .* use ov-fp32"):
        select_available(["ov-bf16"], md.runs(), "m")
    code = main(["segment", str(FIXTURES / "images" / "teddy.png"), "--model", str(b0s1_fp32_model_dir),
                 "--click", "150,100,+", "--run", "ov-bf16", "--out", "unused.png"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "bf16" in err[0]


def test_onnx_runtime_has_no_bf16_mode(b0s1_fp32_model_dir):
    with pytest.raises(UserError, match="bf16 runs on OpenVINO only"):
        Session(b0s1_fp32_model_dir, backend="onnxruntime", precision="bf16")


def _card(tmp_path, src, agreement):
    d = tmp_path / "model"
    shutil.copytree(src, d)
    card = json.loads((d / "model_card.json").read_text())
    card["run_timings"] = {"fingerprint": _fingerprint(), "graphs_ms": {
        "onnxruntime/segmentor/fp32": 10.0, "onnxruntime/refiner/fp32": 4.0, "openvino/segmentor/fp32": 8.0,
        "openvino/refiner/fp32": 3.0, "openvino/segmentor/fp16": 8.5, "openvino/refiner/fp16": 3.1,
        "openvino/segmentor/bf16": 6.0, "openvino/refiner/bf16": 2.0}}
    card.setdefault("quantization", {})["agreement"] = agreement
    (d / "model_card.json").write_text(json.dumps(card))
    return d


@pytest.mark.parametrize(("bf16_iou", "expected"), [(0.99, "ov-bf16"), (0.8, "ov-fp32"), (None, "ov-fp32")])
def test_auto_takes_bf16_only_where_it_is_faster_and_its_recorded_agreement_passes(
        tmp_path, b0s1_fp32_model_dir, monkeypatch, bf16_iou, expected):
    monkeypatch.setattr(backends, "_CPU_FEATURES", {"FP32", "INT8", "BF16"})
    agreement = {"openvino/fp16": {"stepwise_mean_iou": 0.5}}
    if bf16_iou is not None:
        agreement["openvino/bf16"] = {"stepwise_mean_iou": bf16_iou}
    spec, report = choose_run(_card(tmp_path, b0s1_fp32_model_dir, agreement))
    assert spec.id == expected
    if expected == "ov-bf16":
        assert report["per_click_graph_ms"]["ov-bf16"] == 8.0 and spec.refiner_precision == "bf16"
    else:
        assert "ov-bf16" in report["excluded"]


def test_auto_never_offers_bf16_on_a_cpu_without_it(tmp_path, b0s1_fp32_model_dir, no_bf16_cpu):
    spec, report = choose_run(_card(tmp_path, b0s1_fp32_model_dir, {"openvino/bf16": {"stepwise_mean_iou": 0.99}}))
    assert spec.id == "ov-fp32" and "ov-bf16" not in report["per_click_graph_ms"]


def test_auto_pairs_openvino_int8_with_the_bf16_refiner_by_a_run_id_that_eval_bench_and_serve_run(
        tmp_path, b0s1_fp32_model_dir, monkeypatch):
    """The chosen pairing is a run id of its own (ov-int8+refiner-bf16), so every command that takes the
    auto choice runs that Refiner, not the table's FP32 one."""
    monkeypatch.setattr(backends, "_CPU_FEATURES", {"FP32", "INT8", "BF16"})
    d = _card(tmp_path, b0s1_fp32_model_dir, {"openvino/int8": {"stepwise_mean_iou": 0.99},
                                                "openvino/int8+refiner-bf16": {"stepwise_mean_iou": 0.99}})
    card = json.loads((d / "model_card.json").read_text())
    card["files"].append({"role": "segmentor", "backend": "openvino", "precision": "int8", "path": "absent",
                          "sha256": "0"})
    card["run_timings"]["graphs_ms"]["openvino/segmentor/int8"] = 4.0
    (d / "model_card.json").write_text(json.dumps(card))
    spec, report = choose_run(d)
    assert (spec.id, spec.precision, spec.refiner_precision) == ("ov-int8+refiner-bf16", "int8", "bf16")
    assert report["chosen"] == spec.id and report["per_click_graph_ms"][spec.id] == 6.0
    assert get_run(spec.id) == spec and spec.files["refiner"] == "openvino/refiner.fp32.xml"
    assert select_available([spec.id], ModelDir.open(d).runs(), "m") == [spec.id]
    assert gated_pairs([spec.id]) == [(spec.id, "ov-fp32")]
    assert resolve_run(ModelDir.open(d), "auto", None, "fp32") == spec
    with pytest.raises(UserError, match="unknown run 'ov-int8\\+refiner-int4'"):
        get_run("ov-int8+refiner-int4")


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no native bf16")
def test_a_refiner_pairing_id_opens_that_refiner(b0s1_fp32_model_dir):
    s = Session(b0s1_fp32_model_dir, run="ov-fp32+refiner-bf16")
    assert (s.precision, s.refiner_precision) == ("fp32", "bf16")
