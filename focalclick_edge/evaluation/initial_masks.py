"""Defective initial masks for the Interactive Mask Correction protocol (FocalClick paper, Algorithm 1,
the DAVIS-585 recipe), torch-free and self-contained.

Recipe, per sample:

1. draw a superpixel count from {50, 100, 200, 300, 500, 700} and over-segment the image (a compact
   SLIC: k-means in (Lab, xy) on a grid, run at <= 256 px and then re-assigned at full resolution along
   the superpixel edges, so edges follow the full-resolution image);
2. start from the GT and apply defects one superpixel at a time, the type drawn with probabilities
   boundary 0.65 / external false positive 0.25 / internal hole 0.10:
   - boundary: a superpixel touching the GT contour (within ``BOUNDARY_BAND`` px) is added (it spills
     outside) or removed (it bites into the object), 50/50;
   - external FP: a superpixel with no object pixel, within about 0.35 x sqrt(object area) of the
     object, is added (a nearby false-positive blob or bulge);
   - internal hole: a superpixel wholly inside the object and off the contour band is removed;
3. stop as soon as the IoU with GT (ignore pixels excluded, as in the NoC metric) is in [0.75, 0.85].
   A step that would drop below 0.75 is undone and its superpixel set aside; when no step fits, the
   attempt restarts with a new superpixel count (finer ones first once the drawn ones failed). If
   every count fails, the GT is dilated or eroded (``info["fallback"]``) until the IoU fits.

The mask is a pure function of (image, gt, seed, name): the random stream is seeded from the seed and
a stable hash of the sample name. Each superpixel is modified at most once, and IoU is tracked per
superpixel in O(1) per step, so the cost is the superpixel computation (see ``slic``).
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np

from .metrics import iou

SUPERPIXEL_COUNTS = (50, 100, 200, 300, 500, 700)
DEFECT_TYPES = ("boundary", "external_fp", "internal_hole")
DEFECT_PROBS = (0.65, 0.25, 0.10)
IOU_RANGE = (0.75, 0.85)
BOUNDARY_BAND = 3  # px either side of the GT contour
ALGORITHM_VERSION = "v1"  # part of the cache key: bump whenever the generated masks change

_ORIG, _ON, _OFF = 0, 1, 2


# ---------------------------------------------------------------------------------------------------
# Superpixels
# ---------------------------------------------------------------------------------------------------
def _lab(image_rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image_rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _assign(feat: np.ndarray, ys: np.ndarray, xs: np.ndarray, centers: np.ndarray, grid: tuple[int, int],
            cell: tuple[float, float], xy_weight: float) -> np.ndarray:
    """Nearest centre among the 3x3 grid cells around each pixel (SLIC's 2S search window).
    feat (N,3) Lab, ys/xs (N,) in the frame of ``centers`` (K,5 = L,a,b,y,x)."""
    gh, gw = grid
    cy = np.minimum((ys / cell[0]).astype(np.int32), gh - 1)
    cx = np.minimum((xs / cell[1]).astype(np.int32), gw - 1)
    best = np.full(ys.shape, np.inf, dtype=np.float32)
    label = np.zeros(ys.shape, dtype=np.int32)
    for dy in (-1, 0, 1):
        ny = cy + dy
        oky = (ny >= 0) & (ny < gh)
        for dx in (-1, 0, 1):
            nx = cx + dx
            ok = oky & (nx >= 0) & (nx < gw)
            idx = np.where(ok, ny * gw + nx, 0)
            c = centers[idx]
            d = ((feat - c[:, :3]) ** 2).sum(axis=1)
            d += xy_weight * ((ys - c[:, 3]) ** 2 + (xs - c[:, 4]) ** 2)
            d[~ok] = np.inf
            better = d < best
            best[better] = d[better]
            label[better] = idx[better]
    return label


def slic(image_rgb: np.ndarray, n_segments: int, compactness: float = 10.0, n_iter: int = 8,
         work_side: int = 256) -> np.ndarray:
    """Over-segment ``image_rgb`` (uint8 HxWx3) into about ``n_segments`` superpixels; int32 HxW labels.

    k-means runs on a copy whose longest side is ``work_side``; the labels are then upsampled and only
    pixels on a superpixel edge are re-assigned at full resolution. Labels are not forced to be
    connected: a rare detached fragment is harmless for defect simulation."""
    h_full, w_full = image_rgb.shape[:2]
    scale = min(1.0, work_side / max(h_full, w_full))
    if scale < 1.0:
        small = cv2.resize(image_rgb, (max(1, round(w_full * scale)), max(1, round(h_full * scale))),
                           interpolation=cv2.INTER_AREA)
    else:
        small = image_rgb
    h, w = small.shape[:2]
    step = max(1.0, np.sqrt(h * w / max(1, n_segments)))
    gh, gw = max(1, round(h / step)), max(1, round(w / step))
    cell = (h / gh, w / gw)
    xy_weight = (compactness / step) ** 2

    lab = _lab(small).reshape(-1, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ys, xs = yy.ravel(), xx.ravel()
    gy, gx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    cy_pix = np.minimum(((gy + 0.5) * cell[0]).astype(np.int32), h - 1).ravel()
    cx_pix = np.minimum(((gx + 0.5) * cell[1]).astype(np.int32), w - 1).ravel()
    centers = np.concatenate([lab[cy_pix * w + cx_pix], cy_pix[:, None], cx_pix[:, None]], axis=1)
    centers = centers.astype(np.float32)
    k = gh * gw
    label = np.zeros(h * w, dtype=np.int32)
    for _ in range(n_iter):
        label = _assign(lab, ys, xs, centers, (gh, gw), cell, xy_weight)
        counts = np.bincount(label, minlength=k).astype(np.float32)
        alive = counts > 0
        for j, vals in enumerate((lab[:, 0], lab[:, 1], lab[:, 2], ys, xs)):
            sums = np.bincount(label, weights=vals, minlength=k)
            centers[alive, j] = sums[alive] / counts[alive]
    labels = label.reshape(h, w)
    if scale >= 1.0:
        return labels

    # Full resolution: nearest-upsampled labels, refined on the pixels next to a label change.
    up = cv2.resize(labels, (w_full, h_full), interpolation=cv2.INTER_NEAREST)
    edge = np.zeros((h_full, w_full), dtype=bool)
    edge[:-1] |= up[:-1] != up[1:]
    edge[1:] |= up[:-1] != up[1:]
    edge[:, :-1] |= up[:, :-1] != up[:, 1:]
    edge[:, 1:] |= up[:, :-1] != up[:, 1:]
    edge = cv2.dilate(edge.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    py, px = np.nonzero(edge)
    feat = _lab(image_rgb)[py, px]
    sy, sx = h / h_full, w / w_full
    # Pixel centres in the working frame (same convention as cv2.resize).
    ys_w = ((py + 0.5) * sy - 0.5).astype(np.float32)
    xs_w = ((px + 0.5) * sx - 0.5).astype(np.float32)
    up[py, px] = _assign(feat, np.clip(ys_w, 0, h - 1), np.clip(xs_w, 0, w - 1), centers, (gh, gw),
                         cell, xy_weight)
    return up


# ---------------------------------------------------------------------------------------------------
# Defects
# ---------------------------------------------------------------------------------------------------
def _stable_seed(seed: int, name: str) -> np.random.SeedSequence:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int.from_bytes(digest[:8], "little")])


def _split_gt(gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt = np.asarray(gt)
    if gt.dtype == bool:
        return gt, np.zeros_like(gt)
    return gt == 1, gt == -1


class _Attempt:
    """Defect simulation on one superpixel map, with per-superpixel counts for O(1) IoU updates."""

    def __init__(self, labels: np.ndarray, obj: np.ndarray, ignore: np.ndarray, band: np.ndarray,
                 near: np.ndarray) -> None:
        k = int(labels.max()) + 1
        flat = labels.ravel()
        self.n_obj = np.bincount(flat, weights=obj.ravel(), minlength=k)
        self.n_bg = np.bincount(flat, weights=(~obj & ~ignore).ravel(), minlength=k)
        n_all = np.bincount(flat, minlength=k)
        in_band = np.bincount(flat, weights=band.ravel(), minlength=k) > 0
        in_near = np.bincount(flat, weights=near.ravel(), minlength=k) > 0
        self.state = np.zeros(k, dtype=np.uint8)
        self.blocked = np.zeros(k, dtype=bool)
        # Candidate superpixels per (defect type, operation).
        self.cands = {
            ("boundary", _ON): in_band & (self.n_bg > 0),
            ("boundary", _OFF): in_band & (self.n_obj > 0),
            ("external_fp", _ON): in_near & (self.n_obj == 0) & (self.n_bg > 0),
            ("internal_hole", _OFF): (self.n_obj == n_all) & (n_all > 0) & ~in_band,
        }
        self.inter = float(obj.sum())
        self.union = float(obj.sum())

    def candidates(self, kind: str, op: int) -> np.ndarray:
        c = self.cands.get((kind, op))
        if c is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(c & (self.state == _ORIG) & ~self.blocked)

    def iou_after(self, sp: int, op: int) -> float:
        inter, union = self.inter, self.union
        if op == _ON:
            union += self.n_bg[sp]
        else:
            inter -= self.n_obj[sp]
        return inter / union if union else 1.0

    def apply(self, sp: int, op: int) -> None:
        if op == _ON:
            self.union += self.n_bg[sp]
        else:
            self.inter -= self.n_obj[sp]
        self.state[sp] = op

    @property
    def iou(self) -> float:
        return self.inter / self.union if self.union else 1.0


def _run_attempt(att: _Attempt, rng: np.random.Generator, lo: float, hi: float) -> list[str] | None:
    """Apply defects until IoU is in [lo, hi]; the list of defect types used, or None if stuck."""
    used: list[str] = []
    while att.iou > hi:
        kind = DEFECT_TYPES[rng.choice(len(DEFECT_TYPES), p=DEFECT_PROBS)]
        ops = [_ON, _OFF] if kind == "boundary" else [_ON if kind == "external_fp" else _OFF]
        if len(ops) == 2 and rng.random() < 0.5:
            ops.reverse()
        for op in ops:
            cand = att.candidates(kind, op)
            if cand.size:
                break
        if not cand.size:
            # This type is exhausted; stop when every type is.
            if not any(att.candidates(t, o).size for t, o in att.cands):
                return None
            continue
        sp = int(cand[rng.integers(cand.size)])
        if att.iou_after(sp, op) < lo:
            att.blocked[sp] = True  # too big a bite for the remaining budget
            continue
        att.apply(sp, op)
        used.append(kind)
    return used if att.iou >= lo else None


def _morph_fallback(obj: np.ndarray, gt: np.ndarray, lo: float, hi: float) -> np.ndarray:
    for r in range(1, 200):
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        for op in (cv2.dilate, cv2.erode):
            m = op(obj.astype(np.uint8), kernel).astype(bool)
            if lo <= iou(gt, m) <= hi:
                return m
    return obj.copy()


def make_initial_mask(image: np.ndarray, gt: np.ndarray, seed: int, name: str = "",
                      iou_range: tuple[float, float] = IOU_RANGE, max_attempts: int = 6
                      ) -> tuple[np.ndarray, dict]:
    """A defective copy of ``gt`` (int8 with -1 ignore, or bool) with IoU in ``iou_range``.

    Returns ``(mask, info)``: mask bool HxW; info has ``defects`` (types in the order applied),
    ``defect_counts``, ``iou``, ``n_superpixels``, ``attempts`` and ``fallback``. Deterministic in
    (image, gt, seed, name)."""
    obj, ignore = _split_gt(gt)
    if image.shape[:2] != obj.shape:
        raise ValueError(f"image {image.shape[:2]} and gt {obj.shape} differ in size.")
    if not obj.any():
        raise ValueError("gt has no object pixel; an initial mask needs a non-empty object.")
    lo, hi = iou_range
    rng = np.random.default_rng(_stable_seed(seed, name))

    obj_u8 = obj.astype(np.uint8)
    pad = lambda m: np.pad(m, 1, mode="edge")  # noqa: E731 - keep the border from looking like contour
    d_out = cv2.distanceTransform(pad(1 - obj_u8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    d_in = cv2.distanceTransform(pad(obj_u8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    band = ((d_out > 0) & (d_out <= BOUNDARY_BAND)) | ((d_in > 0) & (d_in <= BOUNDARY_BAND))
    near = (d_out > 0) & (d_out <= max(8.0, 0.35 * np.sqrt(obj.sum())))

    drawn = [int(rng.choice(SUPERPIXEL_COUNTS)) for _ in range(max_attempts)]
    # After the drawn counts, finer over-segmentations take smaller bites and usually fit.
    schedule = drawn + sorted(set(SUPERPIXEL_COUNTS), reverse=True)
    superpixels: dict[int, np.ndarray] = {}
    for attempt, n_sp in enumerate(schedule, start=1):
        if n_sp not in superpixels:
            superpixels[n_sp] = slic(image, n_sp)
        labels = superpixels[n_sp]
        att = _Attempt(labels, obj, ignore, band, near)
        used = _run_attempt(att, rng, lo, hi)
        if used is None:
            continue
        state = att.state[labels]
        mask = np.where(state == _ORIG, obj, state == _ON)
        info = {"defects": used, "defect_counts": {t: used.count(t) for t in DEFECT_TYPES},
                "iou": float(att.iou), "n_superpixels": n_sp, "attempts": attempt, "fallback": False}
        return mask, info
    gt_i8 = obj.astype(np.int8)
    gt_i8[ignore] = -1
    mask = _morph_fallback(obj, gt_i8, lo, hi)
    info = {"defects": ["boundary"], "defect_counts": {"boundary": 1, "external_fp": 0, "internal_hole": 0},
            "iou": float(iou(gt_i8, mask)), "n_superpixels": 0, "attempts": len(schedule), "fallback": True}
    return mask, info


# ---------------------------------------------------------------------------------------------------
# Disk cache
# ---------------------------------------------------------------------------------------------------
def _safe(part: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._") or "x"
    if clean == part:
        return part
    # Sanitising can merge two names; a short hash of the original keeps them apart.
    return f"{clean}-{hashlib.sha1(part.encode('utf-8')).hexdigest()[:8]}"


class InitialMaskCache:
    """PNG cache of initial masks at ``cache_dir/<version>/<dataset>/<name>__seed<seed>.png``.

    Writes are atomic (temporary file in the same folder, then ``os.replace``), so parallel workers and
    interrupted runs never leave a half-written mask behind."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.root = Path(cache_dir) / ALGORITHM_VERSION

    def path(self, dataset: str, name: str, seed: int) -> Path:
        return self.root / _safe(dataset) / f"{_safe(name)}__seed{int(seed)}.png"

    def get(self, dataset: str, name: str, seed: int) -> np.ndarray | None:
        p = self.path(dataset, name, seed)
        if not p.is_file():
            return None
        img = cv2.imdecode(np.fromfile(str(p), dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise ValueError(f"cached initial mask {p} is unreadable; delete it to regenerate.")
        return img > 127

    def put(self, dataset: str, name: str, seed: int, mask: np.ndarray) -> Path:
        p = self.path(dataset, name, seed)
        p.parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(".png", np.asarray(mask, dtype=bool).astype(np.uint8) * 255)
        if not ok:
            raise ValueError(f"could not encode the initial mask for {dataset}/{name}.")
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buf.tobytes())
            os.replace(tmp, p)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return p

    def get_or_create(self, dataset: str, name: str, image: np.ndarray, gt: np.ndarray, seed: int
                      ) -> np.ndarray:
        """The cached mask, or a new one from :func:`make_initial_mask` (stored before returning)."""
        mask = self.get(dataset, name, seed)
        if mask is None:
            mask, _ = make_initial_mask(image, gt, seed, name=name)
            self.put(dataset, name, seed, mask)
        return mask
