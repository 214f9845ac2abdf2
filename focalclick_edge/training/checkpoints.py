"""Writing checkpoints in the official ClickSEG format, plus our separate resume file.

The model file is exactly what ``isegm.utils.misc.save_checkpoint`` writes: ``{'state_dict', 'config'}``
with the ``@serialize`` config dict, tensors and plain Python values only, so both the official loader
and ``torch.load(weights_only=True)`` (and therefore ``focalclick_edge.models.load_checkpoint``) read it.
Optimiser and RNG state live in a second file so that the shipped ``.pth`` stays small and official.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_file
from ..variants import Variant, get_variant

_MEAN_STD = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def _param(value: Any, specified: bool, kind: str = "builtin") -> dict[str, Any]:
    return {"type": kind, "value": value, "specified": specified}


def official_config(variant: Variant | str) -> dict[str, Any]:
    """The ``config`` entry ClickSEG's ``@serialize`` writes for the variant's model class.

    Key order and the specified/unspecified split follow the official constructors (checked against the
    reference manifests for b0-s1 and hrnet18s-s1)."""
    v = get_variant(variant) if isinstance(variant, str) else variant
    p = v.model_params
    if v.family == "segformer":
        params = {
            "pipeline_version": _param(p["pipeline_version"], True),
            "model_version": _param(p["model_version"], True),
            "use_leaky_relu": _param(p["use_leaky_relu"], True),
            "use_rgb_conv": _param(p["use_rgb_conv"], True),
            "use_disks": _param(p["use_disks"], True),
            "norm_radius": _param(p["norm_radius"], True),
            "binary_prev_mask": _param(p["binary_prev_mask"], True),
            "with_prev_mask": _param(p["with_prev_mask"], True),
            "with_aux_output": _param(p["with_aux_output"], True),
            "feature_stride": _param(4, False),
            "backbone_lr_mult": _param(0.1, False),
            "norm_layer": _param("torch.nn.modules.batchnorm.BatchNorm2d", False, "class"),
            "cpu_dist_maps": _param(False, False),
            "clicks_groups": _param(None, False),
            "conv_extend": _param(False, False),
            "norm_mean_std": _param(_MEAN_STD, False),
        }
    else:
        params = {
            "pipeline_version": _param(p["pipeline_version"], True),
            "width": _param(p["width"], True),
            "ocr_width": _param(p["ocr_width"], True),
            "small": _param(p["small"], True),
            "with_aux_output": _param(p["with_aux_output"], True),
            "use_leaky_relu": _param(p["use_leaky_relu"], True),
            "use_rgb_conv": _param(p["use_rgb_conv"], True),
            "use_disks": _param(p["use_disks"], True),
            "norm_radius": _param(p["norm_radius"], True),
            "with_prev_mask": _param(p["with_prev_mask"], True),
            "backbone_lr_mult": _param(0.1, False),
            "norm_layer": _param("torch.nn.modules.batchnorm.BatchNorm2d", False, "class"),
            "feature_stride": _param(4, False),
            "cpu_dist_maps": _param(False, False),
            "clicks_groups": _param(None, False),
            "binary_prev_mask": _param(False, False),
            "conv_extend": _param(False, False),
            "norm_mean_std": _param(_MEAN_STD, False),
        }
    return {"class": v.official_class, "params": params}


def _atomic_save(obj: Any, path: Path) -> None:
    # Write then rename: a job killed mid-save never leaves a truncated checkpoint behind.
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def save_official_checkpoint(model: torch.nn.Module, variant: Variant | str, path: str | Path) -> Path:
    """Save fp32 CPU weights as ``{'state_dict', 'config'}`` (the official format)."""
    state = {k: t.detach().to("cpu", copy=True).contiguous() for k, t in model.state_dict().items()}
    state = {k: (t.float() if t.is_floating_point() else t) for k, t in state.items()}
    path = Path(path)
    _atomic_save({"state_dict": state, "config": official_config(variant)}, path)
    return path


def save_resume(state: dict[str, Any], path: str | Path) -> Path:
    """Optimiser, step and RNG state; tensors and plain containers only (``weights_only`` loadable)."""
    path = Path(path)
    _atomic_save(state, path)
    return path


def load_resume(path: str | Path) -> dict[str, Any]:
    return torch.load(Path(path), map_location="cpu", weights_only=True)
