"""HRNet-OCR Segmentor parity with the official ClickSEG outputs (fixtures in tests/fixtures/reference)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from focalclick_edge.models.hrnet import HRNetModel  # noqa: E402

REF = Path(__file__).parent / "fixtures" / "reference"
VARIANTS = [
    "hrnet18s-s1",
    "hrnet18s-s2",
    "hrnet32-s2",
]


def _make_weights():
    spec = importlib.util.spec_from_file_location("_ref_make_weights", REF / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_weights


def _manifest(variant: str) -> dict:
    return json.loads((REF / variant / "manifest.json").read_text())


def _build(manifest: dict) -> HRNetModel:
    p = manifest["model_params"]
    return HRNetModel(width=p["width"], ocr_width=p["ocr_width"], small=p["small"],
                      pipeline_version=p["pipeline_version"])


# Absolute floor of the element-wise tolerance, as a multiple of the reference tensor's std (None: a fixed
# 1e-4). hrnet32-s2 needs a floor that follows the output scale: its logits/features have std 50-150, and
# the stored official outputs themselves carry float32 rounding of ~5e-6 x std (a float64 run of this
# model misses them by up to 3.5e-4 on instances_aux and 6.6e-4 on the feature). Elements that sit
# near a zero crossing therefore fail a fixed 1e-4 / rel 1e-3 bar for any float32 implementation,
# including the official code run in another process with another thread count. The hrnet18s variants
# (std <= 3.5) pass the fixed bar with a >10x margin.
ATOL_PER_STD = {"hrnet18s-s1": None, "hrnet18s-s2": None, "hrnet32-s2": 1e-4}


def _tolerance(variant: str, ref: np.ndarray) -> np.ndarray:
    per_std = ATOL_PER_STD[variant]
    atol = 1e-4 if per_std is None else max(1e-4, per_std * float(ref.std()))
    return np.maximum(atol, 1e-3 * np.abs(ref))


@pytest.fixture(scope="module")
def run_official_inputs():
    cache: dict[str, dict[str, np.ndarray]] = {}

    def run(variant: str) -> dict[str, np.ndarray]:
        if variant not in cache:
            manifest = _manifest(variant)
            model = _build(manifest)
            weights = _make_weights()(manifest["state_dict"], seed=manifest["seed"])
            model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
            model.eval()
            inputs = np.load(REF / "model_io_inputs.npz")
            io = np.load(REF / variant / "model_io.npz")
            image_nd = torch.from_numpy(inputs["seg_in_image_nd"])
            click_map = torch.from_numpy(io["seg_out_click_map"].astype(np.float32))
            with torch.no_grad():
                out = model(image_nd, click_map)
            cache[variant] = {k: v.numpy() for k, v in out.items()}
        return cache[variant]

    return run


@pytest.mark.parametrize("variant", VARIANTS)
def test_hrnet_state_dict_keys_and_shapes_equal_official_manifest(variant: str) -> None:
    manifest = _manifest(variant)
    state = _build(manifest).state_dict()
    ours = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in state.items()]
    # Same order too, so the official checkpoint's key order (and make_weights' RNG stream) lines up.
    assert ours == [[k, list(s), d] for k, s, d in manifest["state_dict"]]


@pytest.mark.parametrize("variant", VARIANTS)
def test_hrnet_segmentor_matches_official_outputs(variant: str, run_official_inputs) -> None:
    out = run_official_inputs(variant)
    io = np.load(REF / variant / "model_io.npz")
    feature = out["feature"]
    assert list(feature.shape) == io["seg_out_feature_shape"].tolist()
    checks = {
        "instances": (out["instances"], io["seg_out_instances"]),
        "instances_aux": (out["instances_aux"], io["seg_out_instances_aux"]),
        "feature_head": (feature[:, : io["seg_out_feature_head"].shape[1]], io["seg_out_feature_head"]),
        "feature_channel_mean": (feature.mean(axis=(0, 2, 3)), io["seg_out_feature_channel_mean"]),
    }
    errors = {name: float(np.max(np.abs(a - b))) for name, (a, b) in checks.items()}
    bad = [
        name
        for name, (a, b) in checks.items()
        if a.shape != b.shape or not np.all(np.abs(a - b) <= _tolerance(variant, b))
    ]
    assert not bad, f"{variant}: outputs out of tolerance {bad}; max abs errors {errors}"
