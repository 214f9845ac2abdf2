"""Training samples: augmentation, Target Crop and Focus Crop simulation.

One sample is built as the FocalClick predictor will see it at inference:

1. **Target Crop** (the Segmentor input, 256x256): either the whole image squeezed to 256x256 with a
   random scale in [0.75, 1.4] (>1 crops a random window, <1 pads) -- the first click of a session --
   or a box around the object, expanded by a random 1.15-2.0 per axis with its centre jittered and
   clamped to the image -- the Zoom-In crop of later clicks. Both keep the aspect distortion of the
   official non-aspect-preserving resize.
2. **Focus Crop** (the Refiner input): a box in the 256 frame, either the whole object expanded by
   1.1-1.7 with a random bias (``sampling_roi_full_object``) or, for objects over 80x80 px and with
   probability 0.4, a 1/1.5-1/4 window around a random boundary pixel (``sampling_roi_on_boundary``).
   Unlike the official trainer, which upsamples the focus window out of the already 256-sized image,
   the focus image and mask are resampled from the *source* image, as the predictor does at inference
   (its Focus Crop comes from the full-resolution image), so the Refiner learns real detail.
3. **Boundary target**: the 256-frame mask downsampled x8 (the coarse output's resolution for S1),
   resized back, XOR the mask, dilated 3x3 twice (ClickSEG ``get_trimap``), then cropped like the focus
   mask.

Augmentation: horizontal flip, colour jitter (brightness +-0.25, contrast -0.15..+0.4, RGB shift +-10,
each with p=0.75), and copy-paste: an object cut out of another training image pasted onto this one
(25% of samples); the target is then the pasted object or, sometimes, the partly occluded original.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .clicks import sample_initial_clicks

SIZE = 256
MIN_FRACTION = 0.01  # object share of the 256 frame (official: 1000 px of 256^2 = 1.5%)
MAX_FRACTION = 0.85  # as the official ISDataset: nearly-full masks teach nothing about clicks


@dataclass
class TrainSet:
    """A training dataset opened through the evaluation loaders (every layout they read)."""

    name: str
    path: Path
    dataset: object  # focalclick_edge.evaluation.datasets.SegmentationDataset
    skipped: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


def open_datasets(specs: Sequence[tuple[str, str | Path]], check_masks: bool = True) -> list[TrainSet]:
    """Open ``NAME=PATH`` datasets. Images without masks and (with ``check_masks``, which reads every mask
    once) empty masks are skipped and counted."""
    from ..evaluation.datasets import load_dataset

    out = []
    for name, path in specs:
        ds = load_dataset(name, path, check_masks=check_masks)
        out.append(TrainSet(name, Path(path), ds, {k: list(v) for k, v in ds.skipped.items()}))
    return out


class SamplePool:
    """Uniform sampling over the union of datasets, returning (image uint8 RGB, binary mask bool)."""

    def __init__(self, sets: Sequence[TrainSet]) -> None:
        self.sets = list(sets)
        self.index = [(si, i) for si, s in enumerate(self.sets) for i in range(len(s))]
        self.unreadable = 0

    def __len__(self) -> int:
        return len(self.index)

    def load(self, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        si, i = self.index[k]
        try:
            sample = self.sets[si].dataset[i]  # type: ignore[index]
        except (ValueError, OSError):
            self.unreadable += 1
            return None
        gt = sample.gt == 1  # ignore pixels (-1) count as background for training
        if gt.sum() < 64:
            self.unreadable += 1
            return None
        return sample.image, gt

    def random(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        for _ in range(20):
            got = self.load(int(rng.integers(len(self.index))))
            if got is not None:
                return got
        raise RuntimeError("20 unreadable samples in a row; check the training data")


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys = np.nonzero(mask.any(axis=1))[0]
    xs = np.nonzero(mask.any(axis=0))[0]
    if len(ys) == 0:
        return None
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def _warp(img: np.ndarray, box: tuple[float, float, float, float], out: int, interp: int) -> np.ndarray:
    """Resample the box (y0, x0, h, w) of ``img`` (may extend outside: zero padding) to out x out."""
    y0, x0, h, w = box
    sy, sx = out / h, out / w
    # Pixel centres map to pixel centres: dst + 0.5 = (src + 0.5 - origin) * scale.
    m = np.array([[sx, 0.0, (0.5 - x0) * sx - 0.5], [0.0, sy, (0.5 - y0) * sy - 0.5]], np.float64)
    return cv2.warpAffine(img, m, (out, out), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _copy_paste(image: np.ndarray, mask: np.ndarray, donor: tuple[np.ndarray, np.ndarray],
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paste the donor's object onto ``image``; returns the new image and the new target mask."""
    d_img, d_mask = donor
    box = _bbox(d_mask)
    if box is None:
        return image, mask
    y1, y2, x1, x2 = box
    obj_img, obj_mask = d_img[y1:y2, x1:x2], d_mask[y1:y2, x1:x2].astype(np.float32)
    h, w = mask.shape
    scale = rng.uniform(0.25, 0.7) * max(h, w) / max(y2 - y1, x2 - x1)
    nh, nw = max(8, int(round((y2 - y1) * scale))), max(8, int(round((x2 - x1) * scale)))
    nh, nw = min(nh, h), min(nw, w)
    obj_img = cv2.resize(obj_img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.resize(obj_mask, (nw, nh), interpolation=cv2.INTER_LINEAR)
    # A 1-2 px soft edge hides the cut line, so the net cannot find pasted objects by their seam.
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0.8)[..., None]
    oy, ox = int(rng.integers(0, h - nh + 1)), int(rng.integers(0, w - nw + 1))
    out = image.astype(np.float32).copy()
    region = out[oy:oy + nh, ox:ox + nw]
    out[oy:oy + nh, ox:ox + nw] = region * (1 - alpha) + obj_img.astype(np.float32) * alpha
    pasted = np.zeros_like(mask)
    pasted[oy:oy + nh, ox:ox + nw] = alpha[..., 0] > 0.5
    remaining = mask & ~pasted
    if rng.random() < 0.3 and remaining.sum() >= 0.5 * mask.sum():
        target = remaining
    else:
        target = pasted
    return np.clip(out, 0, 255).astype(np.uint8), target


def _jitter_params(rng: np.random.Generator) -> tuple[float, float, np.ndarray]:
    b = rng.uniform(-0.25, 0.25) if rng.random() < 0.75 else 0.0
    c = rng.uniform(-0.15, 0.4) if rng.random() < 0.75 else 0.0
    shift = rng.uniform(-10, 10, size=3) / 255.0 if rng.random() < 0.75 else np.zeros(3)
    return b, c, shift


def _jitter(img: np.ndarray, params: tuple[float, float, np.ndarray]) -> np.ndarray:
    """img float32 HxWx3 in [0,1]; same parameters for the Target and Focus crops of a sample."""
    b, c, shift = params
    mean = img.mean()
    out = (img - mean) * (1.0 + c) + mean + b + shift.astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def boundary_map(mask256: np.ndarray) -> np.ndarray:
    """ClickSEG ``get_trimap``: pixels that a x8 down-and-up-sampled mask gets wrong, dilated twice."""
    h, w = mask256.shape
    m = (mask256 > 0.5).astype(np.uint8) * 255
    small = (cv2.resize(m, (w // 8, h // 8), interpolation=cv2.INTER_LINEAR) > 128).astype(np.uint8) * 255
    back = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) > 128
    diff = np.logical_xor(mask256 > 0.5, back).astype(np.uint8)
    return cv2.dilate(diff, np.ones((3, 3), np.uint8), iterations=2).astype(np.float32)


def _target_box(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float, float]:
    h, w = mask.shape
    if rng.random() < 0.4:
        s = rng.uniform(0.75, 1.4)
        ch, cw = h / s, w / s
        y0 = rng.uniform(min(0.0, h - ch), max(0.0, h - ch))
        x0 = rng.uniform(min(0.0, w - cw), max(0.0, w - cw))
        return y0, x0, ch, cw
    y1, y2, x1, x2 = _bbox(mask)  # type: ignore[misc]
    bh, bw = y2 - y1, x2 - x1
    rh, rw = rng.uniform(1.15, 2.0), rng.uniform(1.15, 2.0)
    ch, cw = max(16.0, bh * rh), max(16.0, bw * rw)
    cy = (y1 + y2) / 2 + rng.uniform(-0.15, 0.15) * bh
    cx = (x1 + x2) / 2 + rng.uniform(-0.15, 0.15) * bw
    # Zoom-In clamps its box to the image, so the crop never shows padding.
    ty1, ty2 = max(0.0, cy - ch / 2), min(float(h), cy + ch / 2)
    tx1, tx2 = max(0.0, cx - cw / 2), min(float(w), cx + cw / 2)
    return ty1, tx1, max(4.0, ty2 - ty1), max(4.0, tx2 - tx1)


def _largest_cc_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return 0, mask.shape[0], 0, mask.shape[1]
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = stats[k, :4]
    return int(y), int(y + h), int(x), int(x + w)


def _focus_box(mask256: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) integer focus box in the 256 frame."""
    if mask256.sum() >= 3600 and rng.random() < 0.4:
        ch = int(SIZE / rng.uniform(1.5, 4.0))
        cw = int(SIZE / rng.uniform(1.5, 4.0))
        m = mask256.astype(np.uint8)
        boundary = (cv2.dilate(m, np.ones((5, 5), np.uint8)) > 0) & (m == 0)
        ys, xs = np.nonzero(boundary)
        k = int(rng.integers(len(ys))) if len(ys) else 0
        cy, cx = (int(ys[k]), int(xs[k])) if len(ys) else (SIZE // 2, SIZE // 2)
        y1 = int(np.clip(cy - ch // 2, 0, SIZE - ch))
        x1 = int(np.clip(cx - cw // 2, 0, SIZE - cw))
        return x1, y1, x1 + cw, y1 + ch
    y1, y2, x1, x2 = _largest_cc_box(mask256)
    ratio = rng.uniform(1.1, 1.7)
    out = []
    for lo, hi in ((y1, y2), (x1, x2)):
        size = max(32.0, (hi - lo) * ratio)
        centre = (lo + hi) / 2 + rng.uniform(-0.3, 0.3) * (size - (hi - lo)) / 2
        a = int(np.clip(round(centre - size / 2), 0, SIZE - 1))
        b = int(np.clip(round(centre + size / 2), a + 1, SIZE))
        out.append((a, b))
    (fy1, fy2), (fx1, fx2) = out
    return fx1, fy1, fx2, fy2


@dataclass
class TrainSample:
    image: np.ndarray  # (3, 256, 256) float32 [0,1], the Target Crop
    mask: np.ndarray  # (256, 256) float32 0/1
    image_focus: np.ndarray  # (3, 256, 256)
    mask_focus: np.ndarray  # (256, 256)
    boundary_focus: np.ndarray  # (256, 256)
    roi: np.ndarray  # (4,) x1, y1, x2, y2 in the 256 frame
    points: np.ndarray  # (N, 3) initial clicks in the 256 frame


def make_sample(pool: SamplePool, rng: np.random.Generator, copy_paste_prob: float = 0.25) -> TrainSample:
    """One augmented sample; retries until the object occupies a usable share of the Target Crop."""
    for _ in range(30):
        image, mask = pool.random(rng)
        if rng.random() < copy_paste_prob:
            image, mask = _copy_paste(image, mask, pool.random(rng), rng)
        if mask.sum() < 64:
            continue
        if rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        image = np.ascontiguousarray(image)
        mask_f = np.ascontiguousarray(mask, dtype=np.float32)
        box = _target_box(mask, rng)
        mask256 = _warp(mask_f, box, SIZE, cv2.INTER_LINEAR) > 0.5
        frac = mask256.mean()
        if not MIN_FRACTION <= frac <= MAX_FRACTION:
            continue
        jit = _jitter_params(rng)
        img_f = image.astype(np.float32) * np.float32(1.0 / 255.0)
        img256 = _jitter(_warp(img_f, box, SIZE, cv2.INTER_LINEAR), jit)
        fx1, fy1, fx2, fy2 = _focus_box(mask256, rng)
        ty0, tx0, th, tw = box
        sy, sx = th / SIZE, tw / SIZE
        fbox = (ty0 + fy1 * sy, tx0 + fx1 * sx, (fy2 - fy1) * sy, (fx2 - fx1) * sx)
        img_focus = _jitter(_warp(img_f, fbox, SIZE, cv2.INTER_LINEAR), jit)
        mask_focus = (_warp(mask_f, fbox, SIZE, cv2.INTER_LINEAR) > 0.5).astype(np.float32)
        bnd = boundary_map(mask256.astype(np.float32))
        bnd_focus = (_warp(bnd, (fy1, fx1, fy2 - fy1, fx2 - fx1), SIZE, cv2.INTER_LINEAR) > 0.5)
        return TrainSample(
            image=img256.transpose(2, 0, 1).copy(),
            mask=mask256.astype(np.float32),
            image_focus=img_focus.transpose(2, 0, 1).copy(),
            mask_focus=mask_focus,
            boundary_focus=bnd_focus.astype(np.float32),
            roi=np.array([fx1, fy1, fx2, fy2], np.float32),
            points=sample_initial_clicks(mask256, rng),
        )
    raise RuntimeError("could not build a training sample in 30 tries; objects too small or too large?")
