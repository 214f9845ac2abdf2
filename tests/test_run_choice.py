"""``--run auto``: the fastest run whose recorded accuracy passes, INT8 never when slower than FP32."""
from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("torch")

from focalclick_edge.runtime import Session  # noqa: E402
from focalclick_edge.runtime.run_choice import (  # noqa: E402
    OV_INT8_REFINER_KEY,
    _fingerprint,
    choose_run,
    describe_choice,
)


def _card_with(tmp_path, src, graphs_ms, agreement):
    """A copy of an exported directory's card that also lists INT8 graphs, with recorded timings from
    this very CPU (so nothing is re-timed) and the given recorded agreement."""
    d = tmp_path / "model"
    shutil.copytree(src, d)
    card = json.loads((d / "model_card.json").read_text())
    for role, backend, precision in [("segmentor", "onnxruntime", "int8"), ("refiner", "onnxruntime", "int8"),
                                     ("segmentor", "openvino", "int8"), ("refiner", "openvino", "int8")]:
        card["files"].append({"role": role, "backend": backend, "precision": precision, "path": "absent",
                              "sha256": "0"})
    card["run_timings"] = {"fingerprint": _fingerprint(), "graphs_ms": graphs_ms}
    card.setdefault("quantization", {})["agreement"] = agreement
    (d / "model_card.json").write_text(json.dumps(card))
    return d


MS = {"onnxruntime/segmentor/fp32": 10.0, "onnxruntime/refiner/fp32": 4.0, "onnxruntime/refiner/int8": 6.0,
      "onnxruntime/segmentor/int8": 7.0, "openvino/segmentor/fp32": 8.0, "openvino/refiner/fp32": 3.0,
      "openvino/segmentor/fp16": 8.5, "openvino/refiner/fp16": 3.1, "openvino/segmentor/int8": 6.0,
      "openvino/refiner/int8": 5.0}
GOOD = {k: {"stepwise_mean_iou": 0.99} for k in ("onnxruntime/int8", "openvino/int8", "openvino/fp16")}


def test_auto_picks_the_fastest_passing_run_and_pairs_openvino_int8_with_the_faster_refiner(
        tmp_path, b0s1_fp32_model_dir):
    d = _card_with(tmp_path, b0s1_fp32_model_dir, MS, GOOD)
    spec, report = choose_run(d)
    # ov-int8: segmentor 6 + the FP32 refiner (3 < 5) = 9 < ort-int8 7 + 4 = 11 < ov-fp32 11
    assert (spec.id, spec.refiner_precision) == ("ov-int8", "fp32")
    assert report["source"] == "export timings (same CPU)" and report["per_click_graph_ms"]["ov-int8"] == 9.0
    assert "ov-int8" in describe_choice(report)


@pytest.mark.parametrize(("pairing_iou", "expected"), [(0.99, "int8"), (0.85, "fp32"), (None, "fp32")])
def test_auto_takes_the_faster_int8_refiner_only_when_its_own_pairing_agrees(
        tmp_path, b0s1_fp32_model_dir, pairing_iou, expected):
    """The INT8 Refiner times faster here, but it draws the boundary: auto pairs it with the INT8
    Segmentor only when that pairing's recorded agreement passes too (missing counts as failing)."""
    ms = {**MS, "openvino/refiner/int8": 2.0}
    agreement = dict(GOOD)
    if pairing_iou is not None:
        agreement[OV_INT8_REFINER_KEY] = {"stepwise_mean_iou": pairing_iou}
    spec, report = choose_run(_card_with(tmp_path, b0s1_fp32_model_dir, ms, agreement))
    run_id = "ov-int8" if expected == "fp32" else "ov-int8+refiner-int8"  # the id names a non-default Refiner
    assert (spec.id, spec.refiner_precision) == (run_id, expected)
    assert report["chosen"] == run_id and report["per_click_graph_ms"][run_id] == (8.0 if expected == "int8" else 9.0)


def test_int8_slower_than_its_fp32_baseline_or_failing_accuracy_is_never_chosen(tmp_path, b0s1_fp32_model_dir):
    slow = {**MS, "openvino/segmentor/int8": 20.0, "onnxruntime/segmentor/int8": 1.0}
    bad = {**GOOD, "onnxruntime/int8": {"stepwise_mean_iou": 0.5}}
    spec, report = choose_run(_card_with(tmp_path, b0s1_fp32_model_dir, slow, bad))
    assert spec.id == "ov-fp32"
    assert "not faster than ov-fp32" in report["excluded"]["ov-int8"]
    assert "0.500" in report["excluded"]["ort-int8"]


def test_session_run_auto_retimes_on_a_cpu_unlike_the_exports(tmp_path, b0s1_fp32_model_dir):
    """A card recorded on another CPU is re-timed here (real graphs, a ~1 s budget) and the Session opens
    the chosen run."""
    d = tmp_path / "model"
    shutil.copytree(b0s1_fp32_model_dir, d)
    card = json.loads((d / "model_card.json").read_text())
    card["run_timings"] = {"fingerprint": {"model": "some other CPU"}, "graphs_ms": {}}
    (d / "model_card.json").write_text(json.dumps(card))
    s = Session(d, run="auto", threads=1)
    rep = s.run_choice
    assert rep["source"] == "re-timed on this CPU" and not rep["same_cpu_as_export"]
    assert (s.backend, s.precision) == {"ort-fp32": ("onnxruntime", "fp32"), "ov-fp32": ("openvino", "fp32"),
                                        "ov-fp16": ("openvino", "fp16")}[rep["chosen"]]
    assert rep["per_click_graph_ms"][rep["chosen"]] == min(rep["per_click_graph_ms"].values())
