"""Every crop, threshold and merge constant of the per-click pipeline, in one frozen object.

The exporter writes ``PipelineConfig().to_card()`` into ``model_card.json["pipeline"]``; a ``Session``
reads it back with ``PipelineConfig.from_card`` (cards written before a key existed get that key's
default), and hands it to the crop rules explicitly. The defaults are the official ClickSEG values.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import UserError

# Card layout: section -> {card key: field}. Kept as the card always spelled it, so that older cards
# read back the same and people reading a card see the pipeline's own vocabulary.
_CARD_LAYOUT: dict[str | None, dict[str, str]] = {
    "target_crop": {"expansion": "target_expansion", "min_crop_size": "target_min_crop_size",
                    "skip_clicks": "target_skip_clicks", "prob_thresh": "target_prob_thresh"},
    "focus_crop": {"ratio": "focus_ratio", "coarse_logit_thresh": "focus_logit_thresh",
                   "prev_prob_thresh": "focus_prev_thresh", "min_mask_pixels": "focus_min_mask_pixels"},
    None: {"mask_thresh": "mask_thresh", "keep_prev_outside_focus_after_clicks": "keep_prev_after",
           "progressive_merge": "progressive_merge"},
}


MERGE_MODES = ("official", "paper")


@dataclass(frozen=True)
class PipelineConfig:
    #: ``ZoomIn``: the object box is expanded to ``expansion * (extent + 1)``, at least ``min_crop_size``.
    target_expansion: float = 1.4
    target_min_crop_size: int = 10
    #: ``ZoomIn.skip_clicks``: the first click sees the whole image.
    target_skip_clicks: int = 1
    #: ``ZoomIn.prob_thresh``: the previous probability map is thresholded here to find the object.
    target_prob_thresh: float = 0.49
    #: ``get_focus_cropv1``: expansion of the changed region, and its two thresholds -- 0.49 applied to the
    #: coarse *logits* (p > 0.62) and to the previous probabilities.
    focus_ratio: float = 1.4
    focus_logit_thresh: float = 0.49
    focus_prev_thresh: float = 0.49
    #: ``crop_local.get_bbox_from_mask``: masks with fewer pixels have the whole image as their box.
    focus_min_mask_pixels: int = 10
    #: The mask is ``prob > mask_thresh`` (before Progressive Merge).
    mask_thresh: float = 0.5
    #: From click ``keep_prev_after + 1`` on, the previous map is kept outside the Focus Crop.
    keep_prev_after: int = 10
    #: Progressive Merge: "official" (ClickSEG: initial-mask mode only, label-0 flood) or "paper" (the
    #: paper's: also from scratch after ``keep_prev_after`` clicks, no flood; runtime/paper_merge.py).
    progressive_merge: str = "official"

    def __post_init__(self) -> None:
        if self.progressive_merge not in MERGE_MODES:
            raise UserError(f"progressive merge {self.progressive_merge!r}: choose one of {', '.join(MERGE_MODES)}")

    def to_card(self) -> dict[str, Any]:
        values = asdict(self)
        card: dict[str, Any] = {}
        for section, keys in _CARD_LAYOUT.items():
            target = card if section is None else card.setdefault(section, {})
            for key, name in keys.items():
                target[key] = values[name]
        return card

    @classmethod
    def from_card(cls, pipeline: dict[str, Any] | None) -> PipelineConfig:
        """The config a card's ``pipeline`` section describes; missing section or keys: the defaults."""
        if not pipeline:
            return cls()
        types = {f.name: type(getattr(cls(), f.name)) for f in fields(cls)}
        values: dict[str, Any] = {}
        for section, keys in _CARD_LAYOUT.items():
            src = pipeline if section is None else pipeline.get(section) or {}
            if not isinstance(src, dict):
                raise UserError(f"model card pipeline.{section} is not a mapping; re-export the model")
            for key, name in keys.items():
                if key in src:
                    try:
                        values[name] = types[name](src[key])
                    except (TypeError, ValueError):
                        raise UserError(f"model card pipeline value {key}={src[key]!r} is not a number; "
                                        "re-export the model") from None
        return cls(**values)


OFFICIAL_PIPELINE = PipelineConfig()

__all__ = ["MERGE_MODES", "OFFICIAL_PIPELINE", "PipelineConfig"]
