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
   A step that would drop below 0.75 is not taken and its superpixel is set aside; when no step fits, the
   attempt restarts with a new superpixel count (finer ones first once the drawn ones failed). If
   every count fails, the GT is dilated or eroded (``info["fallback"]``) until the IoU fits.

The mask is a pure function of (image, gt, seed, name): the random stream is seeded from the seed and
a stable hash of the sample name. Each superpixel is modified at most once, and IoU is tracked per
superpixel in O(1) per step, so the cost is the superpixel computation (see ``slic``).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import cv2
import numpy as np

from ..fileio import atomic_file
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
    """CIELab as float32 (L 0..100, a/b about -128..127), via the 8-bit conversion, which is several
    times faster than the float one and precise enough for clustering."""
    lab = cv2.cvtColor(np.ascontiguousarray(image_rgb, dtype=np.uint8), cv2.COLOR_RGB2Lab).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    return lab


def _neighbour_cells(ys: np.ndarray, xs: np.ndarray, grid: tuple[int, int], cell: tuple[float, float]
                     ) -> list[np.ndarray]:
    """For each pixel, the indices of the 3x3 grid cells around its own (SLIC's 2S search window);
    off-grid neighbours point at the sentinel centre ``gh * gw``, which sits infinitely far away."""
    gh, gw = grid
    cy = np.minimum((ys / cell[0]).astype(np.intp), gh - 1)
    cx = np.minimum((xs / cell[1]).astype(np.intp), gw - 1)
    out = []
    for dy in (-1, 0, 1):
        ny = cy + dy
        for dx in (-1, 0, 1):
            nx = cx + dx
            ok = (ny >= 0) & (ny < gh) & (nx >= 0) & (nx < gw)
            out.append(np.where(ok, ny * gw + nx, gh * gw))
    return out


def _assign(feat: list[np.ndarray], candidates: list[np.ndarray], centers: list[np.ndarray]) -> np.ndarray:
    """Nearest centre among each pixel's candidate centres. ``feat``/``centers``: 5 float32 arrays
    (L, a, b, scaled y, scaled x); the xy channels are pre-multiplied so plain squared distance is the
    SLIC distance. Channel-split arrays and in-place ops keep this ~6x faster than a gathered (N, 5)."""
    n = feat[0].shape[0]
    best = np.full(n, np.inf, dtype=np.float32)
    label = np.zeros(n, dtype=np.intp)
    d = np.empty(n, dtype=np.float32)
    t = np.empty(n, dtype=np.float32)
    for idx in candidates:
        np.subtract(feat[0], centers[0][idx], out=d)
        np.multiply(d, d, out=d)
        for f, c in zip(feat[1:], centers[1:], strict=True):
            np.subtract(f, c[idx], out=t)
            np.multiply(t, t, out=t)
            d += t
        better = d < best
        np.copyto(best, d, where=better)
        np.copyto(label, idx, where=better)
    return label


def _means(label: np.ndarray, feat: list[np.ndarray], k: int) -> tuple[list[np.ndarray], np.ndarray]:
    counts = np.bincount(label, minlength=k)[:k]
    safe = np.maximum(counts, 1)
    return [(np.bincount(label, weights=f, minlength=k)[:k] / safe).astype(np.float32) for f in feat], counts


def _enforce_connectivity(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Split every label into its 4-connected pieces and melt pieces under ``min_size`` px into their
    neighbours, so that adding or removing a superpixel adds or removes one blob. Returns compact
    labels 0..n-1."""
    h, w = labels.shape
    # On a 2x grid, pixel (2y, 2x) is the image pixel and the in-between cells are "on" only between
    # equal labels: 4-connected components there are exactly the same-label pieces.
    link = np.zeros((2 * h - 1, 2 * w - 1), dtype=np.uint8)
    link[::2, ::2] = 1
    link[1::2, ::2] = labels[:-1] == labels[1:]
    link[::2, 1::2] = labels[:, :-1] == labels[:, 1:]
    _, comp = cv2.connectedComponents(link, connectivity=4)
    pieces = comp[::2, ::2]
    sizes = np.bincount(pieces.ravel())
    small = sizes[pieces] < min_size
    if small.all():  # tiny image: keep the pieces as they are
        small[:] = False
    out = np.where(small, -1, pieces)
    # Grow the big pieces into the small ones, one pixel ring per pass.
    while (out < 0).any():
        before = out.copy()
        for src, dst in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                         ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
                         ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
                         ((slice(None, -1), slice(None)), (slice(1, None), slice(None)))):
            fill = (out[dst] < 0) & (before[src] >= 0)
            out[dst][fill] = before[src][fill]
    _, compact = np.unique(out, return_inverse=True)
    return compact.reshape(h, w).astype(np.int32)


def slic(image_rgb: np.ndarray, n_segments: int, compactness: float = 10.0, n_iter: int = 5,
         work_side: int = 256) -> np.ndarray:
    """Over-segment ``image_rgb`` (uint8 HxWx3) into about ``n_segments`` connected superpixels;
    int32 HxW labels 0..n-1.

    k-means in (Lab, xy) runs on a copy whose longest side is ``work_side``, small pieces are merged
    into their neighbours, and at full resolution the pixels next to a superpixel edge choose between
    the superpixels of their four nearest working-resolution pixels, so edges follow the image
    without blockiness."""
    h_full, w_full = image_rgb.shape[:2]
    scale = min(1.0, work_side / max(h_full, w_full))
    if scale < 1.0:
        small = cv2.resize(image_rgb, (max(1, round(w_full * scale)), max(1, round(h_full * scale))),
                           interpolation=cv2.INTER_AREA)
    else:
        small = image_rgb
    h, w = small.shape[:2]
    step = max(1.0, float(np.sqrt(h * w / max(1, n_segments))))
    gh, gw = max(1, round(h / step)), max(1, round(w / step))
    cell = (h / gh, w / gw)
    xy_scale = np.float32(compactness / step)  # SLIC: D^2 = d_lab^2 + (m / S)^2 d_xy^2

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lab = _lab(small)
    feat = [lab[..., 0].ravel(), lab[..., 1].ravel(), lab[..., 2].ravel(), yy.ravel() * xy_scale,
            xx.ravel() * xy_scale]
    neighbours = _neighbour_cells(yy.ravel(), xx.ravel(), (gh, gw), cell)
    gy, gx = np.mgrid[0:gh, 0:gw]
    seed_pix = (np.minimum(((gy + 0.5) * cell[0]).astype(np.intp), h - 1) * w
                + np.minimum(((gx + 0.5) * cell[1]).astype(np.intp), w - 1)).ravel()
    # One extra, unreachable centre: the target of off-grid neighbours.
    centers = [np.append(f[seed_pix], np.float32(1e18)).astype(np.float32) for f in feat]
    k = gh * gw
    for _ in range(n_iter):
        label = _assign(feat, neighbours, centers)
        means, counts = _means(label, feat, k)
        for c, m in zip(centers, means, strict=True):
            c[:k] = np.where(counts > 0, m, c[:k])
    labels = _enforce_connectivity(label.reshape(h, w), max(1, int(0.25 * step * step)))
    if scale >= 1.0:
        return labels

    # Full resolution: nearest-upsampled labels, refined on the pixels next to a label change.
    centers, _ = _means(labels.ravel(), feat, int(labels.max()) + 1)
    up = cv2.resize(labels, (w_full, h_full), interpolation=cv2.INTER_NEAREST)
    edge = np.zeros((h_full, w_full), dtype=np.uint8)
    dv = up[:-1] != up[1:]
    dh = up[:, :-1] != up[:, 1:]
    edge[:-1] |= dv
    edge[1:] |= dv
    edge[:, :-1] |= dh
    edge[:, 1:] |= dh
    edge = cv2.dilate(edge, np.ones((3, 3), np.uint8))
    py, px = np.nonzero(edge)
    # Pixel centres mapped into the working frame (cv2.resize's convention).
    ys_w = np.clip((py + 0.5) * (h / h_full) - 0.5, 0, h - 1).astype(np.float32)
    xs_w = np.clip((px + 0.5) * (w / w_full) - 0.5, 0, w - 1).astype(np.float32)
    y0, x0 = ys_w.astype(np.intp), xs_w.astype(np.intp)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    cands = [labels[y0, x0], labels[y0, x1], labels[y1, x0], labels[y1, x1]]
    # A light blur keeps single noisy pixels from flipping to the other side of the edge.
    lab_full = _lab(cv2.GaussianBlur(image_rgb, (3, 3), 0))[py, px]
    feat_e = [lab_full[:, 0].copy(), lab_full[:, 1].copy(), lab_full[:, 2].copy(), ys_w * xy_scale,
              xs_w * xy_scale]
    up[py, px] = _assign(feat_e, cands, centers)
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
    """Grow or shrink the GT by a disk until the IoU fits; if no radius fits (objects of a few
    pixels), the candidate nearest to the range."""
    best, best_gap = obj.copy(), np.inf
    for r in range(1, 200):
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        below = 0
        for op in (cv2.dilate, cv2.erode):
            m = op(obj.astype(np.uint8), kernel).astype(bool)
            v = iou(gt, m)
            gap = max(lo - v, v - hi, 0.0)
            if gap == 0.0:
                return m
            if gap < best_gap:
                best, best_gap = m, gap
            below += v < lo
        if below == 2:  # both only fall further as the radius grows
            break
    return best


def make_initial_mask(image: np.ndarray, gt: np.ndarray, seed: int, name: str = "",
                      iou_range: tuple[float, float] = IOU_RANGE, max_attempts: int = 6
                      ) -> tuple[np.ndarray, dict]:
    """A defective copy of ``gt`` (int8 with -1 ignore, or bool) with IoU in ``iou_range``.

    Returns ``(mask, info)``: mask bool HxW; info has ``defects`` (types in the order applied),
    ``defect_counts``, ``iou``, ``n_superpixels``, ``attempts``, ``fallback`` and ``in_range`` (False
    only for objects of a few pixels, where no defect lands in the range). Deterministic in
    (image, gt, seed, name)."""
    obj, ignore = _split_gt(gt)
    if image.shape[:2] != obj.shape:
        raise ValueError(f"image {image.shape[:2]} and gt {obj.shape} differ in size.")
    if not obj.any():
        raise ValueError("gt has no object pixel; an initial mask needs a non-empty object.")
    lo, hi = iou_range
    rng = np.random.default_rng(_stable_seed(seed, name))

    obj_u8 = obj.astype(np.uint8)
    # Edge padding keeps the image border from looking like object contour.
    d_out = cv2.distanceTransform(np.pad(1 - obj_u8, 1, mode="edge"), cv2.DIST_L2, 3)[1:-1, 1:-1]
    d_in = cv2.distanceTransform(np.pad(obj_u8, 1, mode="edge"), cv2.DIST_L2, 3)[1:-1, 1:-1]
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
                "iou": float(att.iou), "n_superpixels": n_sp, "attempts": attempt, "fallback": False,
                "in_range": True}
        return mask, info
    gt_i8 = obj.astype(np.int8)
    gt_i8[ignore] = -1
    mask = _morph_fallback(obj, gt_i8, lo, hi)
    info = {"defects": ["boundary"], "defect_counts": {"boundary": 1, "external_fp": 0, "internal_hole": 0},
            "iou": float(iou(gt_i8, mask)), "n_superpixels": 0, "attempts": len(schedule), "fallback": True}
    info["in_range"] = lo <= info["iou"] <= hi
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
        with atomic_file(p) as tmp:
            tmp.write_bytes(buf.tobytes())
        return p

    def get_or_create(self, dataset: str, name: str, image: np.ndarray, gt: np.ndarray, seed: int
                      ) -> np.ndarray:
        """The cached mask, or a new one from :func:`make_initial_mask` (stored before returning)."""
        mask = self.get(dataset, name, seed)
        if mask is None:
            mask, _ = make_initial_mask(image, gt, seed, name=name)
            self.put(dataset, name, seed, mask)
        return mask
