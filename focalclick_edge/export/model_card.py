"""model_card.json: what a model directory holds and how it was made. The runtime reads it to find
files, shapes and preprocessing; people read it to know where the numbers came from."""
from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ..fileio import sha256_file
from ..runtime.model_dir import CARD_NAME
from ..runtime.pipeline_config import OFFICIAL_PIPELINE
from ..variants import Variant
from .graphs import input_shapes, output_shapes

CARD_VERSION = 1
__all__ = ["CARD_NAME", "CARD_VERSION", "base_card", "file_entry", "tool_versions"]


def tool_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("focalclick-edge", "torch", "onnx", "onnxslim", "onnxruntime", "openvino", "nncf", "numpy",
                "opencv-python-headless"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def file_entry(root: Path, rel: str, role: str, backend: str, precision: str, **extra: Any) -> dict[str, Any]:
    path = root / rel
    entry = {
        "role": role, "backend": backend, "precision": precision, "path": rel,
        "size_bytes": path.stat().st_size, "sha256": sha256_file(path),
    }
    if backend == "openvino":
        weights = path.with_suffix(".bin")
        entry["weights_path"] = str(Path(rel).with_suffix(".bin"))
        entry["weights_size_bytes"] = weights.stat().st_size
        entry["weights_sha256"] = sha256_file(weights)
    entry.update(extra)
    return entry


def base_card(variant: Variant, checkpoint: Path, checkpoint_sha256: str) -> dict[str, Any]:
    ins, outs = input_shapes(variant), output_shapes(variant)
    return {
        "card_version": CARD_VERSION,
        "variant": variant.id,
        "source_checkpoint": {"path": str(checkpoint), "sha256": checkpoint_sha256},
        "graphs": {
            role: {
                "inputs": [{"name": k, "shape": list(s), "dtype": "float32"} for k, s in ins[role].items()],
                "outputs": [{"name": k, "shape": list(s), "dtype": "float32"} for k, s in outs[role].items()],
            }
            for role in ("segmentor", "refiner")
        },
        "preprocessing": {
            "image": "RGB uint8 / 255 (channels 0-2 of image_nd and image_focus); mean/std is inside the segmentor",
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "refiner_image_normalised": False,
            "prev_mask": "channel 3 of image_nd: previous probability map, not binarised",
            "resize": "bilinear, align_corners=True",
            "segmentor_io": ("image_nd / click_maps at segmentor_feed_size: the Target Crop built at "
                             "net_input_size and (S1) resized to the backbone size by the runtime; "
                             "coarse_logits at 1/4 of it, upsampled to net_input_size by the runtime"),
            **variant.runtime_sizes(),
        },
        # Read back by runtime.Session (PipelineConfig.from_card): the card is what the runtime does.
        "pipeline": OFFICIAL_PIPELINE.to_card(),
        "files": [],
        "tools": tool_versions(),
    }
