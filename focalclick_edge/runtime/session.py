"""Per-image interactive state, like SamPredictor: ``set_image`` once, then ``add_click`` per click.

The flow follows the official FocalPredictor + evaluation loop step by step (see runtime/geometry.py
for the exact rules): Target Crop → Segmentor → inverse Zoom-In → Focus Crop → RoIAlign → Refiner →
paste-back → (initial-mask mode) Progressive Merge.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import geometry as g
from .backends import compile_model
from .images import to_rgb_uint8
from .model_dir import ModelDir

STAGES = ("preprocess", "segmentor", "focus_crop", "refiner", "merge", "total")
MASK_THRESH = 0.5
KEEP_PREV_AFTER = 10


@dataclass
class ClickResult:
    prob: np.ndarray  # float32 HxW: the predictor's probability map
    mask: np.ndarray  # bool HxW: prob > 0.5, or the Progressive-Merge mask when an initial mask was set
    timings: dict[str, float]  # stage -> milliseconds
    target_box: tuple[int, int, int, int] = (0, 0, 0, 0)  # global_roi (y1, y2, x1, x2), exclusive
    focus_box: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass
class _State:
    clicks: list[tuple[int, int, bool]] = field(default_factory=list)
    prev_prob: np.ndarray | None = None
    zoom_prev: np.ndarray | None = None  # what Zoom-In thresholds: prev probs, or the merged mask
    object_roi: tuple[int, int, int, int] | None = None  # inclusive, kept stale like the official ZoomIn
    merged: np.ndarray | None = None  # Progressive-Merge mask (initial-mask mode only)
    result: ClickResult | None = None


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32, copy=False)


def _logit(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p / (1.0 - p)).astype(np.float32, copy=False)


class Session:
    """Interactive segmentation of one image at a time with an exported model directory."""

    def __init__(
        self,
        model_dir: str | Path,
        backend: str = "onnxruntime",
        precision: str = "fp32",
        threads: int | None = None,
    ) -> None:
        t0 = time.perf_counter()
        self.model_dir = ModelDir.open(model_dir)
        self.backend, self.precision = backend, precision
        pre = self.model_dir.preprocessing
        self.net_size = int(pre["net_input_size"])
        self.ref_size = int(pre["refiner_input_size"])
        self.seg_radius = float(pre["segmentor_disk_radius"])
        self.ref_radius = float(pre["refiner_disk_radius"])
        self.feature_size = int(pre["feature_size"])
        seg_path = self.model_dir.graph_file("segmentor", backend, precision)
        ref_path = self.model_dir.graph_file("refiner", backend, precision)
        self._segmentor = compile_model(seg_path, backend, precision, threads)
        self._refiner = compile_model(ref_path, backend, precision, threads)
        self.load_ms = (time.perf_counter() - t0) * 1e3
        self._image: np.ndarray | None = None
        self._state = _State()
        self._history: list[_State] = []

    @property
    def variant(self) -> str:
        return self.model_dir.variant

    # ----------------------------------------------------------------------------------- per image
    def set_image(self, image: np.ndarray) -> None:
        rgb = to_rgb_uint8(image)
        self._image = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
        self.reset()

    def set_mask(self, mask: np.ndarray) -> None:
        """Start from an existing mask: it becomes the previous mask, and every click is then
        written back with Progressive Merge (only the changed region at the click is updated)."""
        img = self._require_image()
        mask = np.asarray(mask)
        if mask.ndim == 3:
            mask = mask[..., 0]
        if mask.shape != img.shape[:2]:
            raise UserError(
                f"initial mask is {mask.shape[0]}x{mask.shape[1]} but the image is {img.shape[0]}x{img.shape[1]}"
            )
        binary = mask > (0.5 if mask.dtype.kind == "f" else 0)
        if not binary.any():
            raise UserError("initial mask is empty; start from scratch (no --init-mask) or pass a non-empty mask")
        self.reset()
        self._state.prev_prob = binary.astype(np.float32)
        self._state.zoom_prev = self._state.prev_prob
        self._state.merged = binary

    def reset(self) -> None:
        img = self._require_image()
        self._state = _State(prev_prob=np.zeros(img.shape[:2], np.float32))
        self._history.clear()

    def undo(self) -> ClickResult | None:
        """Drop the last click; returns the result now current (None when no click is left)."""
        if not self._history:
            raise UserError("nothing to undo: no click has been added since set_image / set_mask")
        self._state = self._history.pop()
        return self._state.result

    @property
    def clicks(self) -> list[tuple[int, int, bool]]:
        """Clicks so far as (y, x, positive)."""
        return list(self._state.clicks)

    def _require_image(self) -> np.ndarray:
        if self._image is None:
            raise UserError("call set_image(image) before adding clicks or masks")
        return self._image

    # ----------------------------------------------------------------------------------- per click
    def add_click(self, x: int, y: int, positive: bool = True) -> ClickResult:
        img = self._require_image()
        h, w = img.shape[:2]
        if not (0 <= int(x) < w and 0 <= int(y) < h) or int(x) != x or int(y) != y:
            raise UserError(f"click ({x}, {y}) is outside the {w}x{h} image; x must be in [0, {w - 1}], "
                            f"y in [0, {h - 1}] (integers)")
        prev = self._state
        st = _State(
            clicks=prev.clicks + [(int(y), int(x), bool(positive))],
            prev_prob=prev.prev_prob, zoom_prev=prev.zoom_prev, object_roi=prev.object_roi, merged=prev.merged,
        )
        t = {}
        t0 = time.perf_counter()

        # Target Crop (official Zoom-In: no crop on click 1; recomputed every later click).
        clicks_arr = np.array([(cy, cx, 1.0 if cp else 0.0) for cy, cx, cp in st.clicks], np.float64)
        crop = None
        if len(st.clicks) > 1 and st.zoom_prev is not None:
            crop = g.zoom_in_box(st.zoom_prev, clicks_arr, (h, w))
            if crop is not None:
                st.object_roi = crop
        input_box = crop if crop is not None else (0, h - 1, 0, w - 1)
        global_roi = g.zoom_in_global_roi(st.object_roi, (h, w))
        y1, y2, x1, x2 = input_box[0], input_box[1] + 1, input_box[2], input_box[3] + 1
        n = self.net_size
        rgb_crop = g.crop_resize_align_corners(img, (y1, y2, x1, x2), (n, n))
        prev_crop = g.crop_resize_align_corners(st.prev_prob, (y1, y2, x1, x2), (n, n))
        image_nd = np.empty((1, 4, n, n), np.float32)
        image_nd[0, :3] = rgb_crop.transpose(2, 0, 1)
        image_nd[0, 3] = prev_crop
        pts = g.map_clicks_to_crop(clicks_arr, input_box, n)
        net_points = np.concatenate([pts, clicks_arr[:, 2:3]], axis=1)
        click_maps = g.click_disks(net_points, (n, n), self.seg_radius)[None]
        t1 = time.perf_counter()

        coarse256, feature = self._segmentor.run({"image_nd": image_nd, "click_maps": click_maps})
        coarse256 = np.array(coarse256, dtype=np.float32, copy=True)
        feature = np.array(feature, dtype=np.float32, copy=True)
        t2 = time.perf_counter()

        # Inverse Zoom-In: probabilities back to the input crop, then into the (possibly stale) box.
        prob_in = g.resize_bilinear_align_corners(_sigmoid(coarse256[0, 0]), (y2 - y1, x2 - x1))
        coarse_prob = np.zeros((h, w), np.float32)
        if st.object_roi is None:
            coarse_prob = prob_in if prob_in.shape == (h, w) else g.resize_bilinear_align_corners(prob_in, (h, w))
        else:
            r0, r1, c0, c1 = st.object_roi
            g.paste_resized(coarse_prob, prob_in, (r0, r1 + 1, c0, c1 + 1))
        coarse_logit = _logit(coarse_prob)
        cy, cx = st.clicks[-1][0], st.clicks[-1][1]
        focus = g.focus_crop_box(coarse_logit, st.prev_prob, global_roi, (cy, cx))
        fy1, fy2, fx1, fx2 = focus
        roi = g.focus_roi_in_target_frame(focus, global_roi, n)
        r = self.ref_size
        image_focus = g.crop_resize_align_corners(img, focus, (r, r)).transpose(2, 0, 1)[None]
        fpts = g.map_clicks_to_focus(clicks_arr, focus, r)
        ref_points = np.concatenate([fpts, clicks_arr[:, 2:3]], axis=1)
        click_focus = g.click_disks(ref_points, (r, r), self.ref_radius)[None]
        fs = self.feature_size
        cropped_feature = g.roi_align_aligned(feature[0], roi, (fs, fs), fs / n)[None]
        cropped_logits = g.roi_align_aligned(coarse256[0], roi, (r, r), 1.0)[None]
        t3 = time.perf_counter()

        (refined,) = self._refiner.run({
            "image_focus": np.ascontiguousarray(image_focus, dtype=np.float32),
            "click_maps_focus": click_focus.astype(np.float32, copy=False),
            "cropped_feature": np.ascontiguousarray(cropped_feature, dtype=np.float32),
            "cropped_logits": np.ascontiguousarray(cropped_logits, dtype=np.float32),
        })
        refined = np.array(refined, dtype=np.float32, copy=True)
        t4 = time.perf_counter()

        # Paste-back; from click 11 on the official predictor keeps the previous map outside the focus box.
        if len(st.clicks) > KEEP_PREV_AFTER:
            coarse_logit = _logit(st.prev_prob)
        g.paste_resized(coarse_logit, refined[0, 0], focus)
        prob = _sigmoid(coarse_logit)
        st.prev_prob = prob
        st.zoom_prev = prob
        if st.merged is not None:
            st.merged = g.progressive_merge(prob > MASK_THRESH, st.merged, (cy, cx))
            st.zoom_prev = st.merged
            mask = st.merged
        else:
            mask = prob > MASK_THRESH
        t5 = time.perf_counter()

        t = {
            "preprocess": (t1 - t0) * 1e3,
            "segmentor": (t2 - t1) * 1e3,
            "focus_crop": (t3 - t2) * 1e3,
            "refiner": (t4 - t3) * 1e3,
            "merge": (t5 - t4) * 1e3,
            "total": (t5 - t0) * 1e3,
        }
        st.result = ClickResult(prob=prob, mask=mask, timings=t, target_box=global_roi,
                                focus_box=(fy1, fy2, fx1, fx2))
        self._history.append(prev)
        self._state = st
        return st.result
