"""The torch-free runtime on exported ONNX reproduces the official per-click masks."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from conftest import variant_params, write_official_checkpoint  # noqa: E402
from session_replay import replay  # noqa: E402

from focalclick_edge.export.exporter import export_variant  # noqa: E402
from focalclick_edge.runtime import Session  # noqa: E402

MIN_IOU = 0.98


@pytest.fixture(scope="module")
def exported(tmp_path_factory, request):
    cache: dict[str, object] = {}

    def get(variant: str):
        if variant == "b0-s1":
            model_dir = request.getfixturevalue("b0s1_fp32_model_dir")
            return model_dir, json.loads((model_dir / "model_card.json").read_text())
        if variant not in cache:
            root = tmp_path_factory.mktemp(variant)
            ckpt = write_official_checkpoint(variant, root / "ckpt.pth")
            card = export_variant(None, root / "model", checkpoint=ckpt, log=lambda _m: None)
            cache[variant] = (root / "model", card)
        return cache[variant]

    return get


@pytest.mark.parametrize("variant", variant_params())
def test_onnx_session_reproduces_official_masks_from_scratch_and_initial_mask(exported, variant):
    model_dir, card = exported(variant)
    diffs = card["verification"]["onnx_vs_torch_max_abs_diff"]
    limits = card["verification"]["onnx_vs_torch_tolerance"]
    for graph, per_output in diffs.items():
        for output, diff in per_output.items():
            assert diff <= limits[graph][output], (graph, output, diff)
            # Only hrnet32-s2's stand-in weights (logits of +-100) need the std-scaled bound.
            assert diff <= 1e-3 or variant == "hrnet32-s2", (graph, output, diff)
    ious = replay(Session(model_dir), variant)
    worst = {name: min(v) for name, v in ious.items()}
    assert all(w >= MIN_IOU for w in worst.values()), worst
