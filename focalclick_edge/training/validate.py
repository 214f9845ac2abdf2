"""Quick NoC validation with the PyTorch model, without exporting to ONNX.

The click loop is the evaluation protocol over the runtime ``Session`` (the official FocalPredictor
flow) with its two graphs replaced by the torch modules (``export.torch_session``), so the number
measured during training is the one the exported model will get.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..evaluation.metrics import summarize
from ..evaluation.protocol import evaluate_sample
from ..export.torch_session import torch_session


def noc_validation(model: torch.nn.Module, samples: Sequence[tuple[np.ndarray, np.ndarray]],
                   max_clicks: int = 20, thresholds: Sequence[float] = (0.85, 0.90)) -> dict[str, float]:
    """Mean NoC@thr / NoF@thr (official clicker, max ``max_clicks``) and mIoU after 1 and 5 clicks."""
    was_training = model.training
    model.eval()
    session = torch_session(model)
    try:
        ious = [np.array(evaluate_sample(session, image, gt, max_clicks, stop_iou=max(thresholds)).ious)
                for image, gt in samples]
    finally:
        model.train(was_training)
    summary = summarize(ious, thresholds=tuple(thresholds), max_clicks=max_clicks)
    res: dict[str, float] = {}
    for thr in thresholds:
        pct = int(round(thr * 100))
        res[f"NoC@{pct}"] = float(summary[f"noc{pct}"])
        res[f"NoF@{pct}"] = float(summary[f"nof{pct}"])
    # A session that stopped at the top threshold keeps its last IoU for later clicks (metrics.miou_curve).
    res["mIoU@1"] = summary["miou"][0]
    res["mIoU@5"] = summary["miou"][min(4, max_clicks - 1)]
    res["samples"] = float(len(ious))
    return res
