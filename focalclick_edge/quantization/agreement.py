"""How closely a quantized model directory follows FP32: IoU of session masks, click by click.

The FP32 ONNX session runs the NoC clicker (from scratch and from a generated initial mask) on
held-out images; every other backend / precision replays exactly those clicks, and each of its masks
is compared with the FP32 mask after the same click. Replaying (instead of letting each model pick its
own clicks) isolates the numerical difference from the clicker's reaction to it.

A replayed session still feeds its own masks back (previous mask channel, Zoom-In box from the
thresholded mask), so on models with weak, near-zero logits a small difference at click 2 can move the
crop and make later clicks diverge; FP16 weights alone then already lose a few IoU points. The
``stepwise`` figures give every click the FP32 history instead, which measures the numerical effect of
one step alone. Both are reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration.sessions import SessionRun, run_noc_session

AGREEMENT_IMAGES = 4
SCRATCH_CLICKS = 5
INIT_MASK_CLICKS = 3


@dataclass
class ReferenceSession:
    name: str
    image: np.ndarray
    gt: np.ndarray
    init_mask: np.ndarray | None
    run: SessionRun


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; two empty masks agree perfectly (1.0)."""
    inter = np.count_nonzero(a & b)
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else inter / union


def holdout_indices(cal_set: Any, n: int | None = None) -> tuple[Any, list[int], bool]:
    """(dataset, indices, held_out): ``n`` (default AGREEMENT_IMAGES) images of the calibration source
    not used for calibration; when the source is used up, the built-in set's unused images; failing
    that, calibration images."""
    n = AGREEMENT_IMAGES if n is None else n
    if cal_set.holdout:
        return cal_set.dataset, list(cal_set.holdout[:n]), True
    if cal_set.source != "built-in":
        from ..calibration.dataset import open_calibration_set

        builtin = open_calibration_set(None, None, cal_set.seed)
        return builtin.dataset, list(builtin.holdout[:n]), True
    return cal_set.dataset, list(cal_set.indices[:n]), False


def reference_sessions(
    model_dir: Path, dataset: Any, indices: list[int], seed: int
) -> tuple[list[ReferenceSession], dict[str, list[dict[str, np.ndarray]]]]:
    """FP32 ONNX Runtime sessions driven by the NoC clicker: their clicks and masks, and the graph
    inputs they fed (for per-graph output checks on the same held-out clicks)."""
    from ..calibration.recorder import recording
    from ..evaluation.initial_masks import make_initial_mask
    from ..runtime.session import Session

    session = Session(model_dir, "onnxruntime", "fp32")
    refs = []
    with recording(session) as (rec_seg, rec_ref):
        for i in indices:
            try:
                s = dataset[i]
            except ValueError:
                continue
            session.set_image(s.image)
            run = run_noc_session(session, s.gt, SCRATCH_CLICKS)
            refs.append(ReferenceSession(s.name, s.image, s.gt, None, run))
            init, _ = make_initial_mask(s.image, s.gt, seed, name=s.name)
            run = run_noc_session(session, s.gt, INIT_MASK_CLICKS, init_mask=init)
            refs.append(ReferenceSession(s.name, s.image, s.gt, init, run))
    return refs, {"segmentor": rec_seg.records, "refiner": rec_ref.records}


def output_error(model: Any, reference: Any, feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """First output (the logits) of ``model`` vs ``reference`` on ``feeds``: mean |error| relative to the
    reference logits' spread, and the fraction of pixels whose sign (mask at 0.5) flips."""
    rel, flip = [], []
    for f in feeds:
        r = np.array(reference.run(f)[0], dtype=np.float32, copy=True)
        o = np.array(model.run(f)[0], dtype=np.float32, copy=True)
        rel.append(float(np.mean(np.abs(o - r)) / max(float(np.std(r)), 1e-6)))
        flip.append(float(np.mean((o > 0) != (r > 0))))
    return {"rel_mean_abs_err": round(float(np.mean(rel)), 5),
            "sign_flip_rate": round(float(np.mean(flip)), 6), "inputs": len(feeds)}


def replay_agreement(session: Any, refs: list[ReferenceSession]) -> dict[str, Any]:
    """Replay every reference session on ``session``; IoU with the FP32 mask after each click."""
    per_click: list[float] = []
    pixels: list[float] = []
    final: list[float] = []
    current = None
    for ref in refs:
        if current != ref.name:
            session.set_image(ref.image)
            current = ref.name
        run = run_noc_session(session, ref.gt, 0, init_mask=ref.init_mask, clicks=ref.run.clicks)
        ious = [mask_iou(a, b) for a, b in zip(run.masks, ref.run.masks, strict=True)]
        per_click.extend(ious)
        pixels.extend(float(np.mean(a == b)) for a, b in zip(run.masks, ref.run.masks, strict=True))
        final.append(ious[-1])
    if not per_click:
        return {"sessions": 0, "clicks": 0, "mean_iou": None, "min_iou": None, "final_mean_iou": None}
    return {
        "sessions": len(refs),
        "clicks": len(per_click),
        "mean_iou": round(float(np.mean(per_click)), 5),
        "min_iou": round(float(np.min(per_click)), 5),
        "final_mean_iou": round(float(np.mean(final)), 5),
        # Pixel agreement stays meaningful where IoU is not: on near-empty masks a few pixels swing IoU.
        "mean_pixel_agreement": round(float(np.mean(pixels)), 5),
    }


def stepwise_agreement(reference: Any, session: Any, refs: list[ReferenceSession]) -> dict[str, Any]:
    """Each click of each reference session, given the FP32 session's exact history: before every click
    ``session`` gets a copy of ``reference``'s state (previous mask, Zoom-In box, merge mask), so the IoU
    measures what the numbers change in one step, without the feedback of a diverged history."""
    ious: list[float] = []
    for ref in refs:
        for s in (reference, session):
            s.set_image(ref.image)
            if ref.init_mask is not None:
                s.set_mask(ref.init_mask)
        for x, y, positive in ref.run.clicks:
            # Snapshots hold references only; no click state is ever modified in place, so sharing is safe.
            session.restore(reference.snapshot())
            a = reference.add_click(x, y, positive).mask
            b = session.add_click(x, y, positive).mask
            ious.append(mask_iou(a, b))
    if not ious:
        return {"stepwise_mean_iou": None, "stepwise_min_iou": None}
    return {"stepwise_mean_iou": round(float(np.mean(ious)), 5),
            "stepwise_min_iou": round(float(np.min(ious)), 5)}


def measure(model_dir: Path, backend: str, precision: str, refs: list[ReferenceSession],
            refiner_precision: str | None = None) -> dict[str, Any]:
    """Replayed-session agreement (``mean_iou`` ...) and one-step agreement (``stepwise_*``) of the run's
    Session (its run-table Refiner pairing unless ``refiner_precision`` says otherwise)."""
    from ..runtime.session import Session

    session = Session(model_dir, backend, precision, refiner_precision=refiner_precision)
    out = replay_agreement(session, refs)
    out.update(stepwise_agreement(Session(model_dir, "onnxruntime", "fp32"), session, refs))
    return out
