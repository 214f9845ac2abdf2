"""The run table drives file names and pairings; the pipeline config round-trips through the model card
and is what the Session runs with."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from conftest import FIXTURES

from focalclick_edge.errors import UserError
from focalclick_edge.runtime import Session
from focalclick_edge.runtime.backends import cpu_features
from focalclick_edge.runtime.model_dir import ModelDir
from focalclick_edge.runtime.pipeline_config import OFFICIAL_PIPELINE, PipelineConfig
from focalclick_edge.runtime.runs import (
    RUN_IDS,
    RUNS,
    gated_pairs,
    get_run,
    parse_run_list,
    refiner_precision_for,
    run_for,
    select_available,
)


@pytest.fixture(scope="module")
def teddy() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(FIXTURES / "images" / "teddy.png")), cv2.COLOR_BGR2RGB)


def test_every_run_id_is_one_row_with_its_graph_files_and_baseline():
    assert RUN_IDS == ("ort-fp32", "ort-int8", "ov-fp32", "ov-fp16", "ov-int8", "ov-bf16")
    assert len({(r.backend, r.precision) for r in RUNS}) == len(RUNS)
    ort_int8 = get_run("ort-int8")
    # Both INT8 runs pair their Segmentor with the FP32 Refiner (faster, and it holds NoC).
    assert ort_int8.files == {"segmentor": "segmentor.int8.onnx", "refiner": "refiner.fp32.onnx"}
    assert get_run("ov-int8").files == {"segmentor": "openvino/segmentor.int8.xml",
                                        "refiner": "openvino/refiner.fp32.xml"}
    assert refiner_precision_for("onnxruntime", "int8") == "fp32"
    assert refiner_precision_for("openvino", "int8") == "fp32"
    assert run_for("openvino", "fp16").id == "ov-fp16" and run_for("torch", "fp32") is None
    assert gated_pairs(RUN_IDS) == [("ort-int8", "ort-fp32"), ("ov-int8", "ov-fp32"), ("ov-bf16", "ov-fp32")]
    # bf16 is a compile setting: the run loads the FP32 IR.
    assert get_run("ov-bf16").files == {"segmentor": "openvino/segmentor.fp32.xml",
                                        "refiner": "openvino/refiner.fp32.xml"}


def test_run_lists_are_parsed_and_checked_against_what_a_directory_has():
    assert parse_run_list(" ov-fp32,ort-fp32,ov-fp32 ") == ["ov-fp32", "ort-fp32"]
    with pytest.raises(UserError, match="unknown run 'trt-int4'"):
        parse_run_list("ort-fp32,trt-int4")
    with pytest.raises(UserError, match="names no run"):
        parse_run_list(" , ")
    assert select_available(None, ["ort-fp32", "ov-fp32"], "m") == ["ort-fp32", "ov-fp32"]
    with pytest.raises(UserError, match="m has no ov-int8 model"):
        select_available(["ov-int8"], ["ort-fp32"], "m")


def test_model_dir_files_are_where_the_run_table_says(b0s1_fp32_model_dir):
    md = ModelDir.open(b0s1_fp32_model_dir)
    bf16 = ["ov-bf16"] if "BF16" in cpu_features() else []  # only where the CPU computes bf16 natively
    assert md.runs() == ["ort-fp32", "ov-fp32", "ov-fp16", *bf16]
    for run in md.runs():
        spec = get_run(run)
        for role in ("segmentor", "refiner"):
            path = md.graph_file(role, spec.backend, spec.precision_of(role), verify=False)
            assert path == md.path / spec.graph_file(role)


def test_pipeline_config_round_trips_through_the_card_and_old_cards_get_the_defaults():
    cfg = PipelineConfig(mask_thresh=0.7, focus_ratio=1.6, keep_prev_after=4)
    assert PipelineConfig.from_card(json.loads(json.dumps(cfg.to_card()))) == cfg
    assert PipelineConfig.from_card(None) == OFFICIAL_PIPELINE
    # A card written before focus_crop.min_mask_pixels existed.
    old = {"target_crop": {"expansion": 1.4, "min_crop_size": 10, "skip_clicks": 1, "prob_thresh": 0.49},
           "focus_crop": {"ratio": 1.4, "coarse_logit_thresh": 0.49, "prev_prob_thresh": 0.49},
           "mask_thresh": 0.5, "keep_prev_outside_focus_after_clicks": 10}
    assert PipelineConfig.from_card(old) == OFFICIAL_PIPELINE
    with pytest.raises(UserError, match="not a number"):
        PipelineConfig.from_card({"mask_thresh": "high"})


def test_the_exported_card_records_the_pipeline_the_session_runs_with(b0s1_fp32_model_dir, teddy, tmp_path):
    card = json.loads((b0s1_fp32_model_dir / "model_card.json").read_text())
    assert PipelineConfig.from_card(card["pipeline"]) == OFFICIAL_PIPELINE
    assert Session(b0s1_fp32_model_dir).pipeline == OFFICIAL_PIPELINE

    # The card is read, not decoration: another mask threshold there changes the Session's masks.
    other = tmp_path / "model"
    shutil.copytree(b0s1_fp32_model_dir, other)
    card["pipeline"]["mask_thresh"] = 0.8
    (other / "model_card.json").write_text(json.dumps(card))
    s = Session(other)
    assert s.pipeline.mask_thresh == 0.8
    s.set_image(teddy)
    r = s.add_click(145, 179, True)
    np.testing.assert_array_equal(r.mask, r.prob > 0.8)
    ref = Session(b0s1_fp32_model_dir)
    ref.set_image(teddy)
    np.testing.assert_array_equal(ref.add_click(145, 179, True).prob, r.prob)
