"""The per-click geometry with the official ClickSEG constants bound: one import for code that compares
with the official pipeline (the parity tests, benchmarks, notebooks).

The rules live in three modules, one job each -- ``crop_rules`` (disks, Zoom-In, Focus Crop, click
mappings, Progressive Merge), ``resize`` (torch-compatible bilinear kernels, crop / paste) and
``roi_align`` (torchvision RoIAlign) -- and the crop rules take their constants explicitly, from a
``PipelineConfig``. ``Session`` passes the config its model card records; this module binds
``OFFICIAL_PIPELINE`` (the ClickSEG values) for callers that mean "what the official code does".
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from . import crop_rules
from .crop_rules import (
    Box4,
    click_disks,
    focus_roi_in_target_frame,
    map_clicks_to_crop,
    map_clicks_to_focus,
    progressive_merge,
    zoom_in_global_roi,
)
from .pipeline_config import OFFICIAL_PIPELINE, PipelineConfig
from .resize import (
    crop_resize_align_corners,
    crop_resize_twice_align_corners,
    paste_resized,
    resize_bilinear_align_corners,
    resize_sparse_align_corners,
)
from .roi_align import roi_align_aligned

#: ``ZoomIn.prob_thresh`` and ``get_focus_cropv1``'s 0.49 (on logits and previous probabilities).
ZOOM_PROB_THRESH = OFFICIAL_PIPELINE.target_prob_thresh
FOCUS_THRESH = OFFICIAL_PIPELINE.focus_logit_thresh


def _official(**values: float) -> PipelineConfig:
    """The official config, with the official functions' keyword arguments (``ratio``, ...) applied."""
    changed = {k: v for k, v in values.items() if getattr(OFFICIAL_PIPELINE, k) != v}
    return replace(OFFICIAL_PIPELINE, **changed) if changed else OFFICIAL_PIPELINE


def zoom_in_box(prev_mask_bool: np.ndarray, clicks: Iterable[Sequence[float]], image_hw: tuple[int, int],
                expansion: float = OFFICIAL_PIPELINE.target_expansion,
                min_crop_size: int = OFFICIAL_PIPELINE.target_min_crop_size) -> Box4 | None:
    """``crop_rules.zoom_in_box`` with the official constants (``ZoomIn``'s own keyword arguments)."""
    cfg = _official(target_expansion=expansion, target_min_crop_size=min_crop_size)
    return crop_rules.zoom_in_box(prev_mask_bool, clicks, image_hw, cfg)


def focus_crop_box(coarse_logits_full: np.ndarray, prev_probs: np.ndarray, global_roi: Box4,
                   click_yx: Sequence[int], ratio: float = OFFICIAL_PIPELINE.focus_ratio) -> Box4:
    """``crop_rules.focus_crop_box`` with the official constants (``get_focus_cropv1``'s ``ratio``)."""
    return crop_rules.focus_crop_box(coarse_logits_full, prev_probs, global_roi, click_yx,
                                     _official(focus_ratio=ratio))


def focus_crop_box_from_masks(pred: np.ndarray, prev: np.ndarray, global_roi: Box4, click_yx: Sequence[int],
                              ratio: float = OFFICIAL_PIPELINE.focus_ratio) -> Box4:
    """``crop_rules.focus_crop_box_from_masks`` with the official constants."""
    return crop_rules.focus_crop_box_from_masks(pred, prev, global_roi, click_yx, _official(focus_ratio=ratio))


__all__ = [
    "FOCUS_THRESH",
    "ZOOM_PROB_THRESH",
    "click_disks",
    "crop_resize_align_corners",
    "crop_resize_twice_align_corners",
    "focus_crop_box",
    "focus_crop_box_from_masks",
    "focus_roi_in_target_frame",
    "map_clicks_to_crop",
    "map_clicks_to_focus",
    "paste_resized",
    "progressive_merge",
    "resize_bilinear_align_corners",
    "resize_sparse_align_corners",
    "roi_align_aligned",
    "zoom_in_box",
    "zoom_in_global_roi",
]
