"""`cvat-function`: the nuclio function directory, its main.py run by nuclio-sdk's test platform with
requests shaped as CVAT's lambda manager shapes them (cvat/apps/lambda_manager/views.py)."""
from __future__ import annotations

import base64
import importlib.util
import json
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
nuclio_sdk = pytest.importorskip("nuclio_sdk")
yaml = pytest.importorskip("yaml")
from conftest import FIXTURES  # noqa: E402
from nuclio_sdk.test import Platform  # noqa: E402

from focalclick_edge.adapters.cvat_nuclio import mask_rows_json  # noqa: E402
from focalclick_edge.cli import main as cli_main  # noqa: E402
from focalclick_edge.runtime import Session  # noqa: E402
from focalclick_edge.runtime.images import read_image  # noqa: E402

TEDDY = FIXTURES / "images" / "teddy.png"
# The user's click order; CVAT only keeps two unordered lists of it.
CLICKS = [(145.6, 179.2, True), (150.0, 300.9, False), (140.3, 200.0, True), (60.0, 60.0, False)]


@pytest.fixture(scope="module")
def function_dir(b0s1_fp32_model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cvat") / "focalclick-fn"
    assert cli_main(["cvat-function", "--model", str(b0s1_fp32_model_dir), "--run", "ort-fp32",
                     "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def function_main(function_dir):
    """The generated main.py imported as nuclio's python wrapper imports a handler module."""
    name = f"cvat_main_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, function_dir / "main.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the test platform finds init_context through sys.modules
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(name, None)


def lambda_manager_payload(image: bytes, clicks, threshold=None) -> dict:
    """What LambdaFunction.invoke posts for an interactor (no startswith_box): threshold only when set."""
    payload = {} if not threshold else {"threshold": threshold}
    payload.update({
        "image": base64.b64encode(image).decode("utf-8"),
        "pos_points": [[x, y] for x, y, p in clicks if p],
        "neg_points": [[x, y] for x, y, p in clicks if not p],
        "obj_bbox": None,
    })
    return payload


def call(platform: Platform, main, body) -> tuple[int, dict]:
    event = nuclio_sdk.Event(body=body, content_type="application/json", method="POST", path="/")
    response = platform.call_handler(main.handler, event)
    assert response.content_type == "application/json"
    return response.status_code, json.loads(response.body)


def test_function_yaml_has_the_annotations_cvats_lambda_manager_reads(function_dir):
    cfg = yaml.safe_load((function_dir / "function.yaml").read_text())
    meta = cfg["metadata"]["annotations"]
    assert meta["type"] == "interactor" and meta["framework"] == "focalclick-edge"
    assert int(meta["min_pos_points"]) == 1 and int(meta["min_neg_points"]) == 0
    assert json.loads(meta.get("spec") or "[]") == [] and meta["name"] and meta["help_message"]
    assert cfg["spec"]["handler"] == "main:handler" and cfg["spec"]["description"]
    steps = " ".join(d["value"] for d in cfg["spec"]["build"]["directives"]["postCopy"])
    assert "pip install" in steps and "focalclick-edge" in steps
    # The model travels in the directory, holding only the run's graphs, and opens as a model directory.
    assert {p.name for p in (function_dir / "model").iterdir()} == {
        "model_card.json", "segmentor.fp32.onnx", "refiner.fp32.onnx"}
    Session(function_dir / "model")


def test_growing_point_sets_give_the_masks_of_a_session_that_saw_the_clicks_in_order(function_main):
    platform = Platform()
    image = TEDDY.read_bytes()
    ref = Session(Path(function_main.MODEL_DIR))
    ref.set_image(read_image(TEDDY))
    contexts = []
    for n in range(1, len(CLICKS) + 1):
        x, y, p = CLICKS[n - 1]
        expected = ref.add_click(int(x), int(y), p).mask
        event = nuclio_sdk.Event(body=lambda_manager_payload(image, CLICKS[:n]), content_type="application/json")
        response = platform.call_handler_with_context_mutation(
            function_main.handler, event, lambda ctx: contexts.append(ctx) or ctx)
        assert response.status_code == 200
        mask = np.array(json.loads(response.body)["mask"], dtype=np.uint8)
        assert mask.shape == expected.shape and np.array_equal(mask.astype(bool), expected), f"click {n}"
    stats = contexts[-1].user_data.service.stats
    assert stats.clicks_run == len(CLICKS) and stats.images_decoded == 1


def test_threshold_and_a_cold_call_replay_positives_then_negatives(function_main):
    platform = Platform()
    image = TEDDY.read_bytes()
    # A fresh point set (not a prefix extension) replays positives then negatives.
    clicks = [(30.0, 30.0, False), (150.0, 200.0, True), (100.0, 150.0, True)]
    status, body = call(platform, function_main, lambda_manager_payload(image, clicks, threshold=0.8))
    assert status == 200
    ref = Session(Path(function_main.MODEL_DIR))
    ref.set_image(read_image(TEDDY))
    for x, y, p in [c for c in clicks if c[2]] + [c for c in clicks if not c[2]]:
        r = ref.add_click(int(x), int(y), p)
    assert np.array_equal(np.array(body["mask"], bool), r.prob > 0.8)


@pytest.mark.parametrize("body, message", [
    ({"pos_points": [[1, 1]], "neg_points": []}, "missing image"),
    ({"image": "***", "pos_points": [[1, 1]], "neg_points": []}, "not valid base64"),
    ({"image": base64.b64encode(b"plain text").decode(), "pos_points": [[1, 1]], "neg_points": []},
     "cannot decode image"),
    ("TEDDY", "pos_points must be a non-empty list"),
    (b"{not json", "not JSON"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_requests_answer_400_with_an_error(function_main, body, message):
    if body == "TEDDY":
        body = {"image": base64.b64encode(TEDDY.read_bytes()).decode(), "pos_points": [], "neg_points": []}
    status, answer = call(Platform(), function_main, body)
    assert status == 400 and message in answer["error"]


@pytest.mark.parametrize("change, message", [
    ({"pos_points": [[500, 10]]}, "outside the 284x398 frame"),
    ({"neg_points": [["a", 3]]}, "pairs of numbers"),
    ({"threshold": 2}, "threshold must be a number between 0 and 1"),
    ({"obj_bbox": "box"}, "obj_bbox must be null"),
])
def test_bad_points_and_options_answer_400(function_main, change, message):
    body = lambda_manager_payload(TEDDY.read_bytes(), CLICKS[:2])
    body.update(change)
    status, answer = call(Platform(), function_main, body)
    assert status == 400 and message in answer["error"]


def test_mask_rows_json_is_the_json_of_the_rows_of_0_and_1():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (3, 7), (64, 33)]:
        mask = rng.random(shape) > 0.5
        assert mask_rows_json(mask) == json.dumps(mask.astype(int).tolist(), separators=(",", ":"))


def test_a_bad_model_directory_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "fn"
    assert cli_main(["cvat-function", "--model", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists() and list(tmp_path.iterdir()) == []
