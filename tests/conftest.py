from __future__ import annotations

import json
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = FIXTURES / "reference"
SHARED = Path(__file__).resolve().parents[2] / "shared"
VARIANT_IDS = ["hrnet18s-s1", "hrnet18s-s2", "hrnet32-s2", "b0-s1", "b0-s2", "b3-s2"]
LARGE_VARIANTS = {"hrnet32-s2", "b3-s2"}


def variant_params(ids=VARIANT_IDS):
    """Parametrise over variants, marking the large ones slow."""
    return [pytest.param(v, marks=pytest.mark.slow) if v in LARGE_VARIANTS else v for v in ids]


def load_manifest(variant: str) -> dict:
    return json.loads((REFERENCE / variant / "manifest.json").read_text())


def reference_weights(variant: str) -> dict[str, np.ndarray]:
    sys.path.insert(0, str(REFERENCE))
    try:
        from make_weights import make_weights
    finally:
        sys.path.pop(0)
    m = load_manifest(variant)
    return make_weights(m["state_dict"], seed=m["seed"])


def write_official_checkpoint(variant: str, path: Path) -> Path:
    """An official-format checkpoint with the make_weights weights (as make_checkpoint.py writes)."""
    import torch

    m = load_manifest(variant)
    sd = OrderedDict((k, torch.from_numpy(v)) for k, v in reference_weights(variant).items())
    config = json.loads(json.dumps(m["checkpoint_config"]))
    nms = config["params"].get("norm_mean_std")
    if nms is not None and isinstance(nms["value"], list):
        nms["value"] = tuple(nms["value"])
    torch.save({"state_dict": sd, "config": config}, path)
    return path


def within_tolerance(actual: np.ndarray, expected: np.ndarray, atol: float = 1e-4, rtol: float = 1e-3) -> bool:
    """abs 1e-4 OR rel 1e-3, element-wise (the parity contract)."""
    return bool(np.all(np.abs(actual - expected) <= np.maximum(atol, rtol * np.abs(expected))))


@pytest.fixture(scope="session")
def model_io_inputs() -> dict[str, np.ndarray]:
    return dict(np.load(REFERENCE / "model_io_inputs.npz"))


@pytest.fixture(scope="session")
def b0s1_fp32_model_dir(tmp_path_factory):
    """One FP32 export of the make_weights b0-s1 checkpoint, shared by every test that only reads it."""
    from focalclick_edge.export.exporter import export_variant

    root = tmp_path_factory.mktemp("b0s1_fp32")
    ckpt = write_official_checkpoint("b0-s1", root / "b0-s1.pth")
    export_variant(None, root / "model", checkpoint=ckpt, log=lambda _m: None)
    return root / "model"
