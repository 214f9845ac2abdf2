"""Quick NoC validation with the PyTorch model, without exporting to ONNX.

The click loop is the runtime ``Session`` (the official FocalPredictor flow: Zoom-In, Segmentor, Focus
Crop, RoIAlign, Refiner, paste-back) with its two ONNX graphs replaced by the torch modules, so the
number measured during training is the one the exported model will get.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..runtime.session import Session, _State


class _TorchSegmentor:
    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        dev = next(self.model.parameters()).device
        with torch.no_grad():
            out = self.model(torch.from_numpy(feeds["image_nd"]).to(dev),
                             torch.from_numpy(feeds["click_maps"]).to(dev))
        return [out["instances"].cpu().numpy(), out["feature"].cpu().numpy()]


class _TorchRefiner:
    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        dev = next(self.model.parameters()).device
        t = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dev) for k, v in feeds.items()}
        with torch.no_grad():
            out = self.model.refiner(t["image_focus"], t["click_maps_focus"], t["cropped_feature"],
                                     t["cropped_logits"])
        return [out["instances_refined"].cpu().numpy()]


class TorchSession(Session):
    """``Session`` driven by an in-memory PyTorch FocalClick model (eval mode)."""

    def __init__(self, model: torch.nn.Module) -> None:  # noqa: D107 - no model directory to open
        v = model.variant
        self.net_size = v.net_input_size
        self.ref_size = v.refiner_input_size
        self.seg_radius = float(v.segmentor_disk_radius)
        self.ref_radius = float(v.refiner_disk_radius)
        self.feature_size = v.feature_size
        self._segmentor = _TorchSegmentor(model)
        self._refiner = _TorchRefiner(model)
        self.backend, self.precision, self.load_ms = "torch", "fp32", 0.0
        self._image = None
        self._state = _State()
        self._history = []


def noc_validation(model: torch.nn.Module, samples: Sequence[tuple[np.ndarray, np.ndarray]],
                   max_clicks: int = 20, thresholds: Sequence[float] = (0.85, 0.90)) -> dict[str, float]:
    """Mean NoC@thr (official clicker, max ``max_clicks``) and mIoU after 1 and 5 clicks."""
    from ..evaluation.clicker import Clicker
    from ..evaluation.metrics import iou

    was_training = model.training
    model.eval()
    sess = TorchSession(model)
    top = max(thresholds)
    per_sample = []
    try:
        for image, gt in samples:
            sess.set_image(image)
            clicker = Clicker(gt)
            pred = np.zeros(gt.shape, bool)
            ious = []
            for _ in range(max_clicks):
                c = clicker.make_next_click(pred)
                pred = sess.add_click(c.x, c.y, c.positive).mask
                ious.append(iou(gt, pred))
                if ious[-1] >= top:
                    break
            per_sample.append(np.array(ious))
    finally:
        model.train(was_training)
    res: dict[str, float] = {}
    for thr in thresholds:
        nocs = []
        for ious in per_sample:
            hit = np.nonzero(ious >= thr)[0]
            nocs.append(int(hit[0]) + 1 if len(hit) else max_clicks)
        res[f"NoC@{int(round(thr * 100))}"] = float(np.mean(nocs))
        res[f"NoF@{int(round(thr * 100))}"] = float(np.sum(np.array(nocs) >= max_clicks))
    # Sessions stop at the top threshold; a stopped session keeps its last IoU for later clicks.
    res["mIoU@1"] = float(np.mean([s[0] for s in per_sample]))
    res["mIoU@5"] = float(np.mean([s[min(4, len(s) - 1)] for s in per_sample]))
    res["samples"] = float(len(per_sample))
    return res
