"""Torch-compatible bilinear resizes (``align_corners=True``) in NumPy: separable K-tap gathers, crop
and paste helpers. Pure functions; float results agree with torch to float32 rounding.
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "crop_resize_align_corners",
    "crop_resize_twice_align_corners",
    "paste_resized",
    "resize_bilinear_align_corners",
    "resize_sparse_align_corners",
]

Box4 = tuple[int, int, int, int]


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cached taps are shared between calls: make them read-only so no caller can change them."""
    for a in arrays:
        a.flags.writeable = False
    return arrays


# The taps depend only on the two sizes; a session meets the same few sizes again and again (the network
# sizes are fixed, crop sizes repeat), and building them costs ~30 us each, 18 times per click.
@functools.lru_cache(maxsize=512)
def _ac_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source taps of torch's bilinear ``align_corners=True`` along one axis, in its float32 arithmetic.

    ``src = float32((n_in-1)/(n_out-1)) * i``; ``i0 = int(src)``; ``i1 = i0 + (i0 < n_in-1)``;
    ``l1 = src - i0``, ``l0 = 1 - l1``. Output size 1 samples index 0 (scale 0), as torch does.
    """
    scale = np.float32(n_in - 1) / np.float32(n_out - 1) if (n_out > 1 and n_in > 1) else np.float32(0)
    src = np.float32(scale) * np.arange(n_out, dtype=np.float32)
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = i0 + (i0 < n_in - 1)
    l1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    return _frozen(i0, i1, (np.float32(1) - l1), l1)


Taps = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


# Separable filter taps along one axis: (source indices per tap, float32 weights per tap).
TapList = tuple[list[np.ndarray], list[np.ndarray]]


def _two_taps(t: Taps) -> TapList:
    return [t[0], t[1]], [t[2], t[3]]


def _resize_taps_2d(a: np.ndarray, ty: TapList, tx: TapList, out: np.ndarray | None,
                    scale: np.float32 | None = None) -> np.ndarray:
    """One ``(H, W)`` or ``(H, W, C)`` separable resize: rows first, ``sum_k w_k * a[i_k]`` in float32
    (gathered in the source dtype, then converted), then the same over columns; any number of taps
    (two for a bilinear resize, four for two resizes composed).

    The row gather uses fancy indexing, which reads only the rows it needs from a crop view;
    ``np.take`` first copies a non-contiguous source whole, which cost more than the resize itself.
    The fresh rows are C-contiguous, so the column gather is a fast ``np.take``. Both gathers return
    new arrays: the in-place weighting never touches the source.

    ``scale`` multiplies every gathered row first (float32): a uint8 image gathered and scaled by 1/255
    gives exactly the rows of the image scaled as a whole, without keeping a float copy of it.
    """
    (iy, wy), (ix, wx) = ty, tx
    if isinstance(a, np.ndarray) and len(ix[0]):
        # Only the source columns the column taps reach take part in the row pass: a 256 px window of
        # a large upscale reads ~13 of its source's columns, not all of them.
        lo, hi = min(int(i.min()) for i in ix), max(int(i.max()) for i in ix) + 1
        if hi - lo < a.shape[1]:
            a, ix = a[:, lo:hi], [i - lo for i in ix]
    extra = (None,) * (a.ndim - 2)
    rows = a[iy[0]].astype(np.float32, copy=False)
    if scale is not None:
        rows *= scale
    rows *= wy[0][(slice(None), None, *extra)]
    for idx, w in zip(iy[1:], wy[1:], strict=True):
        tmp = a[idx].astype(np.float32, copy=False)
        if scale is not None:
            tmp *= scale
        tmp *= w[(slice(None), None, *extra)]
        rows += tmp
    res = np.take(rows, ix[0], axis=1)
    res *= wx[0][(slice(None), *extra)]
    for k, (idx, w) in enumerate(zip(ix[1:], wx[1:], strict=True), start=2):
        tmp = np.take(rows, idx, axis=1)
        tmp *= w[(slice(None), *extra)]
        # The last sum goes straight into ``out``: no extra pass to copy the result there.
        np.add(res, tmp, out=out if (k == len(ix) and out is not None) else res)
    if out is None:
        return res
    if len(ix) == 1:
        np.copyto(out, res)
    return out


def _resize_ac(a: np.ndarray, out_hw: tuple[int, int], channels_first: bool, out: np.ndarray | None,
               scale: np.float32 | None = None) -> np.ndarray:
    """Separable align_corners resize of the spatial axes; float32 result (into ``out`` when given)."""
    oh, ow = int(out_hw[0]), int(out_hw[1])
    h, w = a.shape[-2:] if channels_first else a.shape[:2]
    if (oh, ow) == (h, w):
        if out is None:
            out = np.empty(a.shape, np.float32)
        np.copyto(out, a, casting="unsafe")
        if scale is not None:
            out *= scale
        return out
    fy, fx = _ac_filter(h, oh), _ac_filter(w, ow)
    if not channels_first:
        if 2 * len(fx[1][0]) <= w:  # a downscale: gather only the rows and columns it reads
            return _resize_taps_2d(np.take(a[fy[1][0]], fx[1][0], axis=1), fy[1][1], fx[1][1], out, scale)
        return _resize_taps_2d(a, fy[0], fx[0], out, scale)
    # Plane by plane: every temporary stays C-contiguous and each plane lands in its slot of the
    # (C, oh, ow) output; a 3-D fancy gather comes back in a transposed layout that made the
    # element-wise passes ~2x slower (and copying an HWC result to CHW costs another pass).
    if out is None:
        out = np.empty((a.shape[0], oh, ow), np.float32)
    _resize_planes(a, fy, fx, out, scale)
    return out


def _resize_planes(a: np.ndarray, fy: Filter, fx: Filter, out: np.ndarray, scale: np.float32 | None) -> None:
    """``_resize_taps_2d`` of each plane of a ``(C, H, W)`` source into ``out[c]``; a downscale gathers
    only the rows and columns it reads."""
    (ty, (ry, cty)), (tx, (rx, ctx)) = fy, fx
    compact = 2 * len(rx) <= a.shape[2]
    for c in range(a.shape[0]):
        if compact:
            _resize_taps_2d(np.take(a[c][ry], rx, axis=1), cty, ctx, out[c], scale)
        else:
            _resize_taps_2d(a[c], ty, tx, out[c], scale)


def resize_bilinear_align_corners(img: np.ndarray, out_hw: tuple[int, int], out: np.ndarray | None = None,
                                  channels_first: bool = False) -> np.ndarray:
    """Bilinear resize with ``align_corners=True`` semantics (torch ``F.interpolate``); float32 out.

    ``img`` is ``(H, W)``, ``(H, W, C)``, or ``(C, H, W)`` with ``channels_first``; any real dtype
    (gathered in its own dtype, then converted, so a uint8 image is never converted as a whole).
    ``out`` (float32, the output shape) receives the result instead of a new array -- the runtime
    writes straight into its reused network input buffers. cv2.resize/remap cannot be used: resize
    uses half-pixel centres and remap quantises coordinates to 1/32 px. Separable two-tap gathers
    cost O(out_h * W + out_h * out_w) per channel -- cheaper than interpolation matrices, and a
    shrink never reads the rows it skips. Agrees with torch to float32 rounding (torch forms the 2-D
    weights as products; the separable sum rounds differently by ~1 ulp). The layout does not change
    the arithmetic: every output value is the same float32 expression in all three layouts.
    """
    a = np.asarray(img)
    return _resize_ac(a, out_hw, channels_first, out)


def resize_sparse_align_corners(planes: np.ndarray, out_hw: tuple[int, int], out: np.ndarray) -> np.ndarray:
    """``resize_bilinear_align_corners(planes, out_hw, out, channels_first=True)`` for mostly-zero planes
    (click disks): only output rows that read a non-zero source row are computed, the others are set to
    zero -- which is exactly what the full resize gives them (0 * w + 0 * w). Bit-identical to it."""
    oh, ow = int(out_hw[0]), int(out_hw[1])
    y0, y1, wy0, wy1 = _ac_taps(planes.shape[1], oh)
    tx = _two_taps(_ac_taps(planes.shape[2], ow))
    out[...] = 0.0
    for c in range(planes.shape[0]):
        nz = planes[c].any(axis=1)
        need = np.flatnonzero(nz[y0] | nz[y1])
        if need.size:
            out[c, need] = _resize_taps_2d(planes[c], ([y0[need], y1[need]], [wy0[need], wy1[need]]), tx, None)
    return out


def crop_resize_align_corners(img: np.ndarray, box_exclusive: Box4, out_hw: tuple[int, int],
                              out: np.ndarray | None = None, channels_first: bool = False,
                              scale: np.float32 | None = None) -> np.ndarray:
    """``img[y1:y2, x1:x2]`` resized with ``align_corners=True`` (Zoom-In and Focus Crop image inputs).

    Slicing is a view, so only the rows/columns the interpolation needs are ever read. With
    ``channels_first`` the image is ``(C, H, W)`` and the box applies to its last two axes. ``scale``
    (e.g. 1/255 for a uint8 image) is applied to the gathered source values, as if to the whole image.
    """
    y1, y2, x1, x2 = box_exclusive
    src = img[:, y1:y2, x1:x2] if channels_first else img[y1:y2, x1:x2]
    return _resize_ac(np.asarray(src), out_hw, channels_first, out, scale)


@functools.lru_cache(maxsize=256)
def _composed_taps(n_in: int, n_mid: int, n_out: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One axis of two align_corners resizes in a row (n_in -> n_mid -> n_out) as one 4-tap filter:
    indices into the input and float32 weights (products formed in float64)."""
    i0, i1, a0, a1 = _ac_taps(n_in, n_mid)
    j0, j1, b0, b1 = _ac_taps(n_mid, n_out)
    a0, a1, b0, b1 = (v.astype(np.float64) for v in (a0, a1, b0, b1))
    idx = [i0[j0], i1[j0], i0[j1], i1[j1]]
    wts = [(b0 * a0[j0]), (b0 * a1[j0]), (b1 * a0[j1]), (b1 * a1[j1])]
    return list(_frozen(*idx)), list(_frozen(*(w.astype(np.float32) for w in wts)))


def crop_resize_twice_align_corners(img: np.ndarray, box_exclusive: Box4, mid_hw: tuple[int, int],
                                    out_hw: tuple[int, int], out: np.ndarray,
                                    scale: np.float32 | None = None) -> np.ndarray:
    """``img[:, y1:y2, x1:x2]`` (channels first) resized to ``mid_hw`` and then to ``out_hw``, both
    bilinear ``align_corners=True``, written into ``out`` (float32, ``(C, *out_hw)``).

    The official S1 predictor builds a 256 Target Crop and its network halves it again; composing the
    two resizes into one 4-tap filter per axis reads the source once and never builds the 256 crop.
    It equals the two-step result to float32 rounding (the weights are products, summed in another order).
    """
    y1, y2, x1, x2 = box_exclusive
    src = img[:, y1:y2, x1:x2]
    fy = _composed_filter(y2 - y1, int(mid_hw[0]), int(out_hw[0]))
    fx = _composed_filter(x2 - x1, int(mid_hw[1]), int(out_hw[1]))
    _resize_planes(src, fy, fx, out, scale)
    return out


def paste_resized(dst: np.ndarray, src: np.ndarray, box_exclusive: Box4) -> np.ndarray:
    """Write ``src`` resized (``align_corners=True``) to the box size into ``dst[y1:y2, x1:x2]``, in place.

    Used for the Refiner paste-back (refined logits into the full coarse logit map) and for the
    Zoom-In inverse (crop probabilities into a zero map of the image size). Returns ``dst``.
    """
    y1, y2, x1, x2 = box_exclusive
    if dst.dtype == np.float32:  # straight into the box, no temporary of the box size
        resize_bilinear_align_corners(src, (y2 - y1, x2 - x1), out=dst[y1:y2, x1:x2])
    else:
        dst[y1:y2, x1:x2] = resize_bilinear_align_corners(src, (y2 - y1, x2 - x1))
    return dst




def resize_rows_source(src, out_hw: tuple[int, int], out: np.ndarray,
                       mid_hw: tuple[int, int] | None = None) -> np.ndarray:
    """``resize_bilinear_align_corners`` (or, with ``mid_hw``, two resizes composed as in
    ``crop_resize_twice_align_corners``) of a 2-D source that need only support ``src.shape``, row
    gathers ``src[rows]`` and ``src.sample(rows, cols)`` (the values at those rows x columns: a box of the
    Session's tiled map, ``tiled_map.BoxRows``): the same float32 result, and only the source values the
    filter reads are ever computed."""
    h, w = src.shape
    oh, ow = int(out_hw[0]), int(out_hw[1])
    if mid_hw is None:
        if (oh, ow) == (h, w):
            np.copyto(out, src.sample(np.arange(h), np.arange(w)))
            return out
        fy, fx = _ac_filter(h, oh), _ac_filter(w, ow)
    else:
        fy, fx = _composed_filter(h, int(mid_hw[0]), oh), _composed_filter(w, int(mid_hw[1]), ow)
    (ty, (ry, cty)), (tx, (rx, ctx)) = fy, fx
    if 2 * len(rx) > w:  # reads most columns anyway: whole rows are cheaper to gather than points
        return _resize_taps_2d(src, ty, tx, out)
    return _resize_taps_2d(src.sample(ry, rx), cty, ctx, out)


def _compacted(t: TapList) -> tuple[np.ndarray, TapList]:
    """(the distinct source indices a filter reads, the filter re-indexed into them): a large source
    shrunk to 256 reads ~512 of its rows and columns, and only those need to be gathered or computed.
    Every output value is the same float32 expression of the same source values."""
    used = np.unique(np.concatenate(t[0]))
    return used, ([np.searchsorted(used, i) for i in t[0]], t[1])


# One axis of a resize: its taps, and the same taps re-indexed into the distinct source indices they read.
Filter = tuple[TapList, tuple[np.ndarray, TapList]]


@functools.lru_cache(maxsize=512)
def _ac_filter(n_in: int, n_out: int) -> Filter:
    return _filter(_two_taps(_ac_taps(n_in, n_out)))


@functools.lru_cache(maxsize=256)
def _composed_filter(n_in: int, n_mid: int, n_out: int) -> Filter:
    return _filter(_composed_taps(n_in, n_mid, n_out))


def _filter(t: TapList) -> Filter:
    used, (idx, wts) = _compacted(t)
    _frozen(used, *idx)
    return t, (used, (idx, wts))


def resize_ac_sample(a: np.ndarray, out_hw: tuple[int, int], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``resize_bilinear_align_corners(a, out_hw)[np.ix_(rows, cols)]`` of a 2-D ``a``, computed only
    there (the same float32 expressions as the whole resize, so the same values)."""
    h, w = a.shape
    oh, ow = int(out_hw[0]), int(out_hw[1])
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    if (oh, ow) == (h, w):
        return np.take(a[rows], cols, axis=1).astype(np.float32)
    ty, tx = _ac_taps(h, oh), _ac_taps(w, ow)
    return _resize_taps_2d(a, ([ty[0][rows], ty[1][rows]], [ty[2][rows], ty[3][rows]]),
                           ([tx[0][cols], tx[1][cols]], [tx[2][cols], tx[3][cols]]), None)


def resize_ac_window(a: np.ndarray, out_hw: tuple[int, int], rows: np.ndarray, c1: int, c2: int) -> np.ndarray:
    """``resize_bilinear_align_corners(a, out_hw)[rows, c1:c2]`` of a 2-D ``a``, computed only there: each
    output value is the same float32 expression of the same taps, so the values are identical."""
    h, w = a.shape
    oh, ow = int(out_hw[0]), int(out_hw[1])
    rows = np.asarray(rows, np.int64)
    if (oh, ow) == (h, w):
        return a[rows, c1:c2].astype(np.float32)
    ty, tx = _ac_taps(h, oh), _ac_taps(w, ow)
    return _resize_taps_2d(a, ([ty[0][rows], ty[1][rows]], [ty[2][rows], ty[3][rows]]),
                           ([tx[0][c1:c2], tx[1][c1:c2]], [tx[2][c1:c2], tx[3][c1:c2]]), None)


class ResizeChain:
    """``a`` resized (align_corners) to each size of ``sizes`` in turn, as the official inverse Zoom-In does
    (crop size, then the -- possibly stale -- box size), evaluated on demand for any window of the result:
    ``window(rows, c1, c2)`` gives the exact values there, reading only the intermediate rows and columns
    it needs; ``bounds(r1, r2, c1, c2)`` bounds the values of a window without computing them (every value
    is a convex combination of the source values its taps reach)."""

    def __init__(self, a: np.ndarray, sizes: list[tuple[int, int]]) -> None:
        self.a = a
        self.sizes = [(int(h), int(w)) for h, w in sizes]
        self.shape = self.sizes[-1]

    def window(self, rows: np.ndarray, c1: int, c2: int) -> np.ndarray:
        return self._window(len(self.sizes), np.asarray(rows, np.int64), c1, c2)

    def _window(self, k: int, rows: np.ndarray, c1: int, c2: int) -> np.ndarray:
        src_hw = self.a.shape if k == 1 else self.sizes[k - 2]
        if k == 1:
            return resize_ac_window(self.a, self.sizes[0], rows, c1, c2)
        if self.sizes[k - 1] == src_hw:
            return self._window(k - 1, rows, c1, c2)
        ty, tx = _ac_taps(src_hw[0], self.sizes[k - 1][0]), _ac_taps(src_hw[1], self.sizes[k - 1][1])
        need = np.unique(np.concatenate([ty[0][rows], ty[1][rows]]))
        m1, m2 = int(tx[0][c1:c2].min()), int(tx[1][c1:c2].max()) + 1
        mid = self._window(k - 1, need, m1, m2)
        pos = np.searchsorted(need, ty[0][rows]), np.searchsorted(need, ty[1][rows])
        return _resize_taps_2d(mid, ([pos[0], pos[1]], [ty[2][rows], ty[3][rows]]),
                               ([tx[0][c1:c2] - m1, tx[1][c1:c2] - m1], [tx[2][c1:c2], tx[3][c1:c2]]), None)

    def sample(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The values at ``rows`` x ``cols`` (index arrays), reading only the intermediate values they
        need: a 256 sample of a photo-sized box costs a 256 sample, not 512 photo-wide rows."""
        return self._sample(len(self.sizes), np.asarray(rows, np.int64), np.asarray(cols, np.int64))

    def _sample(self, k: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        src_hw = self.a.shape if k == 1 else self.sizes[k - 2]
        if k == 1:
            return resize_ac_sample(self.a, self.sizes[0], rows, cols)
        if self.sizes[k - 1] == src_hw:
            return self._sample(k - 1, rows, cols)
        ty, tx = _ac_taps(src_hw[0], self.sizes[k - 1][0]), _ac_taps(src_hw[1], self.sizes[k - 1][1])
        (ry, (iy, _)), (rx, (ix, _)) = (_compacted(([ty[0][rows], ty[1][rows]], [])),
                                        _compacted(([tx[0][cols], tx[1][cols]], [])))
        mid = self._sample(k - 1, ry, rx)
        return _resize_taps_2d(mid, (iy, [ty[2][rows], ty[3][rows]]), (ix, [tx[2][cols], tx[3][cols]]), None)

    def bounds_grid(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``bounds`` of every window ``rows[i] x cols[j]`` at once (``rows``, ``cols``: ``(n, 2)`` arrays
        of ``[start, end)`` ranges) as two ``(len(rows), len(cols))`` arrays: the same blocks' min / max
        (a photo-sized lazy box has hundreds of tiles; one call per tile cost ~10 us each)."""
        r1, r2 = np.asarray(rows, np.int64).T
        c1, c2 = np.asarray(cols, np.int64).T
        for k in range(len(self.sizes), 0, -1):
            src_hw = self.a.shape if k == 1 else self.sizes[k - 2]
            if self.sizes[k - 1] == src_hw:
                continue
            ty, tx = _ac_taps(src_hw[0], self.sizes[k - 1][0]), _ac_taps(src_hw[1], self.sizes[k - 1][1])
            r1, r2 = ty[0][r1], ty[1][r2 - 1] + 1
            c1, c2 = tx[0][c1], tx[1][c2 - 1] + 1
        # Each block as a fixed-length run of indices, the last one repeated (min / max unchanged).
        ridx = np.minimum(r1[:, None] + np.arange(int((r2 - r1).max())), (r2 - 1)[:, None])
        cidx = np.minimum(c1[:, None] + np.arange(int((c2 - c1).max())), (c2 - 1)[:, None])
        rows_a = self.a[ridx]  # (rows, run, W)
        lo = rows_a.min(axis=1)[:, cidx].min(axis=2)
        hi = rows_a.max(axis=1)[:, cidx].max(axis=2)
        return lo, hi

    def bounds(self, r1: int, r2: int, c1: int, c2: int) -> tuple[float, float]:
        """Inclusive (min, max) of the source values the window ``[r1, r2) x [c1, c2)`` interpolates."""
        for k in range(len(self.sizes), 0, -1):
            src_hw = self.a.shape if k == 1 else self.sizes[k - 2]
            if self.sizes[k - 1] == src_hw:
                continue
            ty, tx = _ac_taps(src_hw[0], self.sizes[k - 1][0]), _ac_taps(src_hw[1], self.sizes[k - 1][1])
            r1, r2 = int(ty[0][r1]), int(ty[1][r2 - 1]) + 1
            c1, c2 = int(tx[0][c1]), int(tx[1][c2 - 1]) + 1
        block = self.a[r1:r2, c1:c2]
        return float(block.min()), float(block.max())
