"""Simulated click sessions (the NoC clicker) that record the real per-click graph inputs.

Per calibration image, two sessions run through the real ``runtime.Session`` with the FP32 ONNX models:
one from scratch and one from a generated defective initial mask (Interactive Mask Correction). The
first clicks of a session see the most varied inputs (empty previous mask, whole-image crop, then a
Target Crop around the object), so a few clicks per session cover the input distribution better than
long sessions on fewer images.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cache_dirs import cache_dir as default_cache_dir
from ..errors import UserError
from ..fileio import atomic_file
from . import cache_limit
from .dataset import MIN_RECORDS, CalibrationSet, too_few
from .recorder import recording

RECIPE_VERSION = 1  # bump when the recorded tensors change for the same models and images
SCRATCH_CLICKS = 3
INIT_MASK_CLICKS = 2
ROLES = ("segmentor", "refiner")

Click = tuple[int, int, bool]  # (x, y, positive)


@dataclass
class SessionRun:
    clicks: list[Click]
    masks: list[np.ndarray]  # bool HxW after each click


def run_noc_session(
    session: Any,
    gt: np.ndarray,
    n_clicks: int,
    init_mask: np.ndarray | None = None,
    clicks: Sequence[Click] | None = None,
) -> SessionRun:
    """One session on the image already set on ``session`` (the session player, evaluation/player.py):
    the NoC clicker places ``n_clicks`` clicks, or ``clicks`` are replayed. ``init_mask`` starts from a mask."""
    from ..evaluation.player import play_session

    played = play_session(session, gt, init_mask=init_mask, clicks=clicks, max_clicks=n_clicks, keep_masks=True)
    return SessionRun(played.clicks, played.masks)


@dataclass
class CalibrationRecords:
    """Stacked per-click inputs: ``inputs[role][name]`` has shape (n, *graph input shape[1:])."""

    inputs: dict[str, dict[str, np.ndarray]]
    meta: dict[str, Any] = field(default_factory=dict)

    def count(self, role: str) -> int:
        arrays = self.inputs.get(role) or {}
        return min((len(a) for a in arrays.values()), default=0)

    def feeds(self, role: str, indices: Sequence[int] | None = None) -> Iterator[dict[str, np.ndarray]]:
        """One feed dict per recorded call, batch dimension 1, exactly as the session passed it."""
        idx = range(self.count(role)) if indices is None else indices
        for i in idx:
            yield {k: a[i:i + 1] for k, a in self.inputs[role].items()}

    def feed_list(self, role: str, indices: Sequence[int] | None = None) -> list[dict[str, np.ndarray]]:
        return list(self.feeds(role, indices))

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        for role, d in self.inputs.items():
            for k, a in d.items():
                if a.dtype == np.float32 and _is_binary(a):
                    # Click maps are exactly 0/1: bit-packing them is lossless and 32x smaller.
                    arrays[f"{role}__{k}{_PACKED}"] = np.packbits(a.astype(bool).ravel())
                    arrays[f"{role}__{k}{_SHAPE}"] = np.array(a.shape, np.int64)
                else:
                    arrays[f"{role}__{k}"] = a
        arrays["meta_json"] = np.array(json.dumps(self.meta))
        # Uncompressed: the records are mostly image-derived floats that deflate poorly, and a
        # compressed write of a few hundred MB costs tens of seconds on a small CPU. The temporary file
        # keeps the .npz suffix so np.savez does not append one.
        with atomic_file(path) as tmp:
            np.savez(tmp, **arrays)

    @classmethod
    def load(cls, path: Path) -> CalibrationRecords:
        with np.load(path, allow_pickle=False) as z:
            inputs: dict[str, dict[str, np.ndarray]] = {r: {} for r in ROLES}
            meta = json.loads(str(z["meta_json"]))
            for key in z.files:
                if key == "meta_json" or key.endswith(_SHAPE):
                    continue
                role, name = key.split("__", 1)
                if name.endswith(_PACKED):
                    name = name[: -len(_PACKED)]
                    shape = tuple(int(v) for v in z[f"{role}__{name}{_SHAPE}"])
                    bits = np.unpackbits(z[key], count=int(np.prod(shape)))
                    inputs[role][name] = bits.reshape(shape).astype(np.float32)
                else:
                    inputs[role][name] = z[key]
        return cls(inputs, meta)


_PACKED, _SHAPE = "__bits", "__shape"


def _is_binary(a: np.ndarray) -> bool:
    return bool(np.all((a == 0) | (a == 1)))


def cache_key(model_sha256: dict[str, str], cal_set: CalibrationSet) -> str:
    """Same FP32 graphs + same images + same size + same seed + same recipe → same records."""
    blob = json.dumps({
        "recipe": RECIPE_VERSION, "clicks": [SCRATCH_CLICKS, INIT_MASK_CLICKS], "models": model_sha256,
        "set": cal_set.identity(),
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _stack(records: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not records:
        return {}
    return {k: np.concatenate([r[k] for r in records], axis=0) for k in records[0]}


def record_calibration(
    model_dir: Path,
    cal_set: CalibrationSet,
    model_sha256: dict[str, str],
    cache_dir: Path | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> CalibrationRecords:
    """Run the calibration sessions on ``model_dir``'s FP32 ONNX graphs and return (or load from the
    cache) the recorded inputs. Raises a one-line UserError below MIN_RECORDS inputs per graph."""
    from tqdm import tqdm

    from ..evaluation.initial_masks import make_initial_mask
    from ..runtime.session import Session

    cache_dir = default_cache_dir("calibration") if cache_dir is None else Path(cache_dir)
    key = cache_key(model_sha256, cal_set)
    cache_file = cache_dir / f"calib-{key[:32]}.npz"
    if cache_file.is_file():
        try:
            recs = CalibrationRecords.load(cache_file)
            if recs.meta.get("key") == key and recs.count("segmentor") >= MIN_RECORDS:
                recs.meta["cache"] = {"hit": True, "file": str(cache_file)}
                cache_limit.touch(cache_file)
                if log:
                    log(f"calibration: reusing {recs.count('segmentor')} recorded inputs from {cache_file}")
                return recs
        except (OSError, ValueError, KeyError):
            pass  # a corrupt or foreign cache file is simply recomputed and overwritten

    t0 = time.perf_counter()
    session = Session(model_dir, "onnxruntime", "fp32")
    problems: dict[str, list[str]] = {"unreadable": [], "failed": []}
    per_role: dict[str, list[dict[str, np.ndarray]]] = {r: [] for r in ROLES}
    init_ious = []
    bar = tqdm(cal_set.indices, desc="calibration sessions", unit="img", disable=not progress, leave=False)
    for i in bar:
        try:
            sample = cal_set.dataset[i]
        except ValueError:  # unreadable image or mask, or their sizes differ
            problems["unreadable"].append(cal_set.dataset.names[i])
            continue
        try:
            session.set_image(sample.image)
            init, info = make_initial_mask(sample.image, sample.gt, cal_set.seed, name=sample.name)
            init_ious.append(float(info["iou"]))
            with recording(session) as (rec_seg, rec_ref):
                run_noc_session(session, sample.gt, SCRATCH_CLICKS)
                run_noc_session(session, sample.gt, INIT_MASK_CLICKS, init_mask=init)
        except (UserError, ValueError):
            problems["failed"].append(sample.name)
            continue
        per_role["segmentor"].extend(rec_seg.records)
        per_role["refiner"].extend(rec_ref.records)
        bar.set_postfix(records=len(per_role["segmentor"]))
    bar.close()
    found = min(len(v) for v in per_role.values())
    if found < MIN_RECORDS:
        n = len(cal_set.indices)
        why = [f"{n} image(s) selected from {cal_set.source}"]
        if problems["unreadable"]:
            why.append(f"{len(problems['unreadable'])} unreadable (e.g. {problems['unreadable'][0]})")
        if problems["failed"]:
            why.append(f"{len(problems['failed'])} failed in a session (e.g. {problems['failed'][0]})")
        skipped = {k: len(v) for k, v in cal_set.skipped.items() if v}
        if skipped:
            why.append("skipped: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items()))
        if not problems["unreadable"] and not problems["failed"]:
            per_image = SCRATCH_CLICKS + INIT_MASK_CLICKS
            why.append(f"each image gives {per_image}; use more images (--calib-size)")
        raise too_few(found, "; ".join(why))
    meta = {
        "key": key,
        "recipe_version": RECIPE_VERSION,
        "recipe": (f"per image: one NoC-clicker session from scratch ({SCRATCH_CLICKS} clicks) and one "
                   f"from a generated initial mask ({INIT_MASK_CLICKS} clicks, FocalClick DAVIS-585 recipe, "
                   "IoU 0.75-0.85), run through runtime.Session with the FP32 ONNX graphs; every Segmentor "
                   "and Refiner call recorded"),
        "images_used": len(cal_set.indices) - len(problems["unreadable"]) - len(problems["failed"]),
        "unreadable": problems["unreadable"],
        "failed": problems["failed"],
        "initial_mask_iou_mean": round(float(np.mean(init_ious)), 4) if init_ious else None,
        "records": {r: len(v) for r, v in per_role.items()},
        "record_s": round(time.perf_counter() - t0, 2),
    }
    recs = CalibrationRecords({r: _stack(v) for r, v in per_role.items()}, meta)
    try:
        recs.save(cache_file)
        removed = cache_limit.prune(cache_dir, keep=cache_file)
        recs.meta["cache"] = {"hit": False, "file": str(cache_file), "evicted": len(removed),
                              "limit_mb": cache_limit.limit_bytes() // (1024 * 1024)}
        if removed and log:
            log(f"calibration cache: removed {len(removed)} least recently used record set(s) to stay under "
                f"{cache_limit.limit_bytes() // (1024 * 1024)} MB (${cache_limit.ENV})")
    except OSError as exc:  # a read-only home must not fail the export; the records are in memory
        recs.meta["cache"] = {"hit": False, "file": None, "error": exc.strerror}
    return recs
