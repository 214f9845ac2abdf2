"""Label Studio's ML backend protocol over the click service, without the web framework.

Label Studio calls ``GET /health`` and ``POST /setup`` when the backend is connected, ``POST /predict``
for each smart keypoint (interactive annotating: ``params.context.result`` holds every keypoint so far,
in the order they were placed) and posts project events to ``/webhook``. Answers carry a brush mask as
Label Studio's RLE, encoded by Heartex's converter (``brush.mask2rle``).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import UserError
from .click_service import Click, ClickService
from .label_studio_config import LabelConfig, parse_label_config
from .label_studio_images import LabelStudioSettings, fetch_image_bytes, resolve_image_url


def percent_to_pixel(percent: float, size: int) -> int:
    """Label Studio's keypoint percent -> the pixel it falls in: floor(p * size / 100), clamped."""
    return min(max(math.floor(percent * size / 100.0), 0), size - 1)


def keypoint_clicks(context: Any, config: LabelConfig, width: int, height: int) -> tuple[list[Click], str | None]:
    """The clicks (x, y, positive) in the context's order, and the first positive keypoint's label."""
    if context is None:
        return [], None
    if not isinstance(context, dict) or not isinstance(context.get("result", []), list):
        raise UserError('params.context must be {"result": [keypointlabels ...]}')
    clicks: list[Click] = []
    label = None
    for item in context.get("result", []):
        if not isinstance(item, dict) or item.get("type") != "keypointlabels":
            continue
        if item.get("from_name") not in config.keypoint_from or item.get("to_name") != config.to_name:
            continue
        value = item.get("value")
        try:
            x, y = float(value["x"]), float(value["y"])
        except (TypeError, KeyError, ValueError):
            raise UserError('a keypoint in params.context has no numeric value.x / value.y (percent)') from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise UserError("a keypoint in params.context has a non-finite coordinate")
        positive = bool(item.get("is_positive", True))
        clicks.append((percent_to_pixel(x, width), percent_to_pixel(y, height), positive))
        names = value.get("keypointlabels") or []
        if positive and label is None and names:
            label = names[0]
    return clicks, label


def brush_result(mask: np.ndarray, config: LabelConfig, label: str) -> dict[str, Any]:
    from label_studio_converter import brush

    h, w = mask.shape
    return {
        "type": "brushlabels",
        "from_name": config.brush_from,
        "to_name": config.to_name,
        "original_width": int(w),
        "original_height": int(h),
        "image_rotation": 0,
        "value": {"format": "rle", "rle": brush.mask2rle(mask.astype(np.uint8) * 255), "brushlabels": [label]},
    }


class LabelStudioBackend:
    """The protocol without the web framework: dict in, dict out, UserError for bad input."""

    def __init__(self, service: ClickService, settings: LabelStudioSettings | None = None,
                 model_version: str | None = None) -> None:
        self.service = service
        self.settings = settings or LabelStudioSettings.from_env()
        self.model_version = model_version or f"focalclick-edge-{service.default_run}"

    def health(self) -> dict[str, Any]:
        return {"status": "UP", "model_class": "FocalClick", "model_version": self.model_version}

    def setup(self, body: Any) -> dict[str, Any]:
        if isinstance(body, dict) and body.get("schema"):
            parse_label_config(body["schema"])  # a project this backend cannot serve fails at connect time
        return {"model_version": self.model_version}

    def predict(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("tasks"), list):
            raise UserError('request must be {"tasks": [...], "label_config": ..., "params": {"context": ...}}')
        config = parse_label_config(body.get("label_config"))
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise UserError("params must be an object")
        return {"results": [self._predict_task(task, config, params.get("context")) for task in body["tasks"]]}

    def _predict_task(self, task: Any, config: LabelConfig, context: Any) -> dict[str, Any]:
        empty = {"result": [], "model_version": self.model_version, "score": 0.0}
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise UserError('each task must be an object with "data"')
        if context is None or (isinstance(context, dict) and not context.get("result")):
            return empty  # batch pre-annotation: nothing to click from
        if not isinstance(context, dict) or not isinstance(context["result"], list):
            raise UserError('params.context must be {"result": [keypointlabels ...]}')
        url, headers = resolve_image_url(task["data"].get(config.image_key), self.settings)
        handle = self.service.open_image(fetch_image_bytes(url, headers, self.settings))
        clicks, label = keypoint_clicks(context, config, handle.width, handle.height)
        if not clicks:
            return empty
        result = self.service.segment(handle, clicks, ordered=True)
        score = float(result.prob[result.mask].mean()) if result.mask.any() else 0.0
        return {"result": [brush_result(result.mask, config, config.brush_label_for(label))],
                "model_version": self.model_version, "score": score}
