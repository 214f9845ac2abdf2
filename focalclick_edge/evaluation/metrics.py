"""NoC / NoF / mIoU@k as the official RITM / ClickSEG evaluation computes them.

Conventions (all follow ``isegm.inference.utils`` of the official code):

- IoU leaves out ignore pixels (gt == -1) from both intersection and union.
- Per-sample IoU arrays are float32, as ``evaluate_sample`` returns them, and thresholds are compared
  in float32 too, so an IoU that rounds to ``float32(0.9)`` counts as reaching 0.90 exactly as it does
  there.
- NoC@thr of a sample = 1-based index of the first click with IoU >= thr, else ``max_clicks``.
- NoF@thr (the official ``>=20@90`` column) = number of samples whose NoC equals ``max_clicks``. A
  sample that first reaches thr exactly at the last click counts as a failure there; pass
  ``strict=True`` to :func:`nof` to count only samples that never reach thr.
- The official loop stops a sample early once IoU >= the target IoU (``--target-iou``, 0.90). For the
  mIoU@k curve an early-stopped sample keeps its last IoU for the remaining clicks: the annotator is
  done and the mask stays as it is. (With ``--iou-analysis`` the official code runs all clicks
  instead; with a target above 1 both agree.)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IGNORE_LABEL = -1
DEFAULT_THRESHOLDS = (0.85, 0.90, 0.95)


def iou(gt: np.ndarray, pred_mask: np.ndarray) -> float:
    """IoU of a binary prediction against ``gt`` (1 object, 0 background, -1 ignore; or bool).
    Two empty masks give 1.0 (the official code divides 0 by 0 there)."""
    gt = np.asarray(gt)
    pred = np.asarray(pred_mask, dtype=bool)
    if gt.shape != pred.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from gt shape {gt.shape}.")
    if gt.dtype == bool:
        obj, valid = gt, np.ones_like(gt, dtype=bool)
    else:
        obj, valid = gt == 1, gt != IGNORE_LABEL
    inter = np.count_nonzero(pred & obj & valid)
    union = np.count_nonzero((pred | obj) & valid)
    return 1.0 if union == 0 else inter / union


def _as_ious(ious: Sequence[float] | np.ndarray, max_clicks: int) -> np.ndarray:
    # Clicks past max_clicks do not exist in the protocol, so they must not rescue a sample.
    return np.asarray(ious, dtype=np.float32).reshape(-1)[:max_clicks]


def noc(ious: Sequence[float] | np.ndarray, thr: float, max_clicks: int = 20) -> int:
    """Number of clicks to reach IoU >= thr (1-based), or ``max_clicks`` if never reached."""
    reached = _as_ious(ious, max_clicks) >= np.float32(thr)
    return int(np.argmax(reached)) + 1 if reached.any() else max_clicks


def nof(ious_per_sample: Sequence[Sequence[float] | np.ndarray], thr: float, max_clicks: int = 20,
        strict: bool = False) -> int:
    """Number of failed samples. Official (default): NoC == max_clicks. ``strict``: never reached."""
    if strict:
        return sum(not (_as_ious(s, max_clicks) >= np.float32(thr)).any() for s in ious_per_sample)
    return sum(noc(s, thr, max_clicks) == max_clicks for s in ious_per_sample)


def miou_curve(ious_per_sample: Sequence[Sequence[float] | np.ndarray], max_clicks: int = 20) -> np.ndarray:
    """mIoU after k = 1..max_clicks clicks, averaged over samples. A sample that stopped early (or ran
    fewer clicks) carries its last IoU forward; a sample with no IoU at all counts as 0."""
    if len(ious_per_sample) == 0:
        return np.zeros(max_clicks, dtype=np.float64)
    table = np.zeros((len(ious_per_sample), max_clicks), dtype=np.float64)
    for row, sample in zip(table, ious_per_sample, strict=True):
        vals = _as_ious(sample, max_clicks)
        if vals.size:
            row[: vals.size] = vals
            row[vals.size:] = vals[-1]
    return table.mean(axis=0)


def _key(thr: float) -> str:
    return f"{round(thr * 100):d}"


def summarize(ious_per_sample: list[np.ndarray], thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
              max_clicks: int = 20) -> dict:
    """``noc85``/``noc90``/``noc95`` (mean NoC), ``nof85``/... (official NoF counts), ``miou`` (list of
    max_clicks floats, mIoU@k for k = 1..max_clicks) and ``n_samples``."""
    out: dict = {"n_samples": len(ious_per_sample), "max_clicks": max_clicks}
    for thr in thresholds:
        nocs = [noc(s, thr, max_clicks) for s in ious_per_sample]
        out[f"noc{_key(thr)}"] = float(np.mean(nocs)) if nocs else float("nan")
        out[f"nof{_key(thr)}"] = int(sum(n == max_clicks for n in nocs))
    out["miou"] = [float(v) for v in miou_curve(ious_per_sample, max_clicks)]
    return out
