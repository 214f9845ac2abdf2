"""A persistent (copy-on-write) 2-D map in square tiles: the Session's per-click probability and mask state.

Each click changes only a box of the map (the Target Crop's ``global_roi``, or the Focus Crop from click 11
on); an update builds new tiles for the tiles that box touches and shares every other tile with the map it
came from. So a click costs work and memory proportional to its box, undo and snapshots are references to
earlier maps, and the bytes a set of maps holds are the bytes of their distinct tiles.

Tiles are never written after construction. Derived values -- a tile's ``> thresh`` mask, its bounding box
and pixel count, or the tile passed through the official logit -> sigmoid round trip -- are pure functions
of the tile and are memoised on it, so a whole-map bounding box costs one pass per *new* tile, not per click.

Pure NumPy + OpenCV; no I/O.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from ..optional_modules import optional_import

cv2 = optional_import("cv2", "opencv-python-headless")

__all__ = ["TILE", "TiledMap", "release_replaced", "roundtrip"]

TILE = 256
#: Lazy boxes (``with_lazy_box``) only above this many pixels (~4 tiles). Below it a box is computed densely,
#: which a 0.25-2 MP Focus Crop box of a large photo made cost ~9 ms per click: with 2 M, the bench sample
#: upscaled, ov-int8+refiner-bf16's clicks (one process, AMX Xeon) took 0.4 MP 13.1 ms, 2 MP 26.0, 12 MP 45.6,
#: 48 MP 92; with 250 k 12.5 / 24.0 / 36.5 / 88 (ov-int8's clicks never met such a box: 12 MP 42.8 -> 41.5).
#: 100 k made 0.4 MP slower (14.5 ms): below a few tiles the per-tile overhead costs more than laziness saves.
LAZY_MIN_PIXELS = 250_000
Box4 = tuple[int, int, int, int]  # (y1, y2, x1, x2), exclusive ends


def roundtrip(p: np.ndarray) -> np.ndarray:
    """``sigmoid(logit(p))`` in float32, the four + four operations of the official predictor, into a new
    array (``p`` = 0 gives logit ``-inf`` and back 0)."""
    out = np.subtract(np.float32(1.0), p)
    with np.errstate(divide="ignore", over="ignore"):
        np.divide(p, out, out=out)
        np.log(out, out=out)
        np.negative(out, out=out)
        np.exp(out, out=out)
    out += np.float32(1.0)
    return np.divide(np.float32(1.0), out, out=out)


# Float32 values whose orbit under repeated round trips ever crosses a threshold, as an inclusive band
# ``(lo, hi)`` per threshold, found exhaustively over the float32 values near it (tools/roundtrip_orbits.py).
# A tile with no value in the band has the same ``> thresh`` mask after any number of round trips, so the
# lazy round trip of the official predictor never has to be computed to threshold it.
# Measured: only 0.49000004 crosses 0.49, and no float32 crosses 0.5 (500 round trips); the bands
# below are ~30 ulps wide on each side, and a tile with a value in one is simply computed.
_MARGIN = 2.0 ** -20
UNSTABLE_BANDS: dict[float, tuple[float, float]] = {t: (t - _MARGIN, t + _MARGIN) for t in (0.49, 0.5)}


# Bounds of a lazy tile's values are exact convex-combination bounds; float32 rounding of the interpolation
# can move a value past them by a few ulps of 1, never by this much.
_BOUND_SLACK = 2.0 ** -18
# How far one logit -> sigmoid round trip may move a float32 value, generously (measured: a few ulps of 1).
_TRIP_DRIFT = 2.0 ** -20
_CONST: dict[tuple[tuple[int, int], bool], np.ndarray] = {}


def _const_mask(shape: tuple[int, int], value: bool) -> np.ndarray:
    """A shared read-only all-True / all-False mask of ``shape``."""
    m = _CONST.get((shape, value))
    if m is None:
        m = np.full(shape, value, np.bool_)
        m.flags.writeable = False
        _CONST[(shape, value)] = m
    return m


def _const_value(m: np.ndarray) -> bool | None:
    """True / False for the shared all-True / all-False masks of ``_const_mask``, else None."""
    if m is _CONST.get((m.shape, True)):
        return True
    if m is _CONST.get((m.shape, False)):
        return False
    return None


RowsFn = Callable[[np.ndarray, int, int], np.ndarray]  # (local rows, c1, c2) -> float32 values
SampleFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (local rows, local cols) -> float32 values
BoundsGridFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]  # ranges -> (lo, hi)
LazyWindow = tuple[RowsFn, int, int, SampleFn | None]  # a lazy box's (window, box y, box x, sample)


class _Tile:
    """One immutable tile: its array, (lazily) the round trip of a parent tile, or (lazily) values that a
    function computes on demand, with bounds that decide its thresholded masks without computing them."""

    __slots__ = ("_data", "_parent", "_child", "_fixed", "_masks", "_stats", "_stable", "shape", "_gen",
                 "_bounds", "_win", "_edge")

    def __init__(self, data: np.ndarray | None, parent: _Tile | None = None,
                 shape: tuple[int, int] | None = None, gen: RowsFn | None = None,
                 bounds: tuple[float, float] | None = None) -> None:
        self._data, self._parent, self._child, self._fixed = data, parent, None, False
        self._gen, self._bounds = gen, bounds
        self._win: LazyWindow | None = None  # set on a tile wholly inside a lazy box
        # On a tile a lazy box's edge crosses: (the box's window, the part it covers (image coordinates,
        # exclusive), the tile it keeps elsewhere).
        self._edge: tuple[LazyWindow, Box4, _Tile | None] | None = None
        self._masks: dict[float | None, np.ndarray] = {}
        self._stats: dict[float | None, tuple[int, tuple[int, int, int, int]]] = {}
        self._stable: dict[float, bool] = {}
        self.shape = data.shape if data is not None else shape

    def _constant(self, thresh: float | None) -> bool | None:
        """True / False when every value is above / at most ``thresh`` by the bounds alone, else None."""
        if self._bounds is None or thresh is None:
            return None
        lo, hi = self._bounds
        if lo - _BOUND_SLACK > thresh:
            return True
        if hi + _BOUND_SLACK <= thresh:
            return False
        return None

    @property
    def data(self) -> np.ndarray:
        if self._data is None and self._gen is not None:
            d = self._gen(np.arange(self.shape[0]), 0, self.shape[1])
            d.flags.writeable = False
            self._data = d
        if self._data is None:
            parent = self._parent.data
            self._data = roundtrip(parent)
            self._data.flags.writeable = False
            if np.array_equal(self._data, parent):  # a fixed point: further round trips change nothing
                self._fixed = True
        return self._data

    def roundtripped(self) -> _Tile:
        """This tile after one more logit -> sigmoid round trip (memoised: every map that derives it
        shares one tile, and the arithmetic runs at most once, when somebody reads it)."""
        if self._fixed:
            return self
        if self._child is None:
            self._child = _Tile(None, parent=self, shape=self.shape)
        return self._child

    def rows(self, local_rows: np.ndarray, c1: int, c2: int) -> np.ndarray:
        """``data[local_rows, c1:c2]``; a tile not computed yet round-trips only these rows of its
        nearest computed ancestor (elementwise, so the same values)."""
        if self._data is not None:
            return self._data[local_rows, c1:c2]
        depth, src = 0, self
        while src._data is None and src._gen is None:
            depth, src = depth + 1, src._parent
        out = src._data[local_rows, c1:c2] if src._data is not None else src._gen(np.asarray(local_rows), c1, c2)
        for _ in range(depth):
            out = roundtrip(out)
        return out

    def sample(self, local_rows: np.ndarray, local_cols: np.ndarray) -> np.ndarray:
        """``data[np.ix_(local_rows, local_cols)]`` (increasing indices) of a tile that is not part of a lazy
        box with a sample function (``TiledMap.sample`` samples those): from its values, or its window's
        rows at those columns."""
        if self._data is not None:
            return self._data[np.ix_(local_rows, local_cols)]
        if self._gen is None:
            return roundtrip(self._parent.sample(local_rows, local_cols))
        c1 = int(local_cols[0])
        return np.take(self._gen(local_rows, c1, int(local_cols[-1]) + 1), local_cols - c1, axis=1)

    def lazy_source(self) -> tuple[LazyWindow, int] | None:
        """((window, box y, box x, sample), round trips) when this tile's values are still uncomputed values of a
        lazy box's window, round-tripped that many times; else None."""
        depth, src = 0, self
        while src._data is None and src._gen is None:
            depth, src = depth + 1, src._parent
        if src._data is not None or src._win is None:
            return None
        return src._win, depth

    def value_bounds(self) -> tuple[float, float] | None:
        """Bounds of this tile's values without computing them, if known: its own (a lazy tile), its
        parent's widened by ``_TRIP_DRIFT`` per round trip (a trip moves a value by a few ulps), or the
        min / max of its array (memoised as its bounds)."""
        depth, src = 0, self
        while src._bounds is None and src._data is None and src._parent is not None:
            depth, src = depth + 1, src._parent
        if src._bounds is None:
            if src._data is None:
                return None
            src._bounds = (float(src._data.min()), float(src._data.max())) if src._data.size else (0.0, 0.0)
        lo, hi = src._bounds
        return lo - depth * _TRIP_DRIFT, hi + depth * _TRIP_DRIFT

    def root(self) -> tuple[_Tile, int]:
        """(the tile this one round-trips, how many times), computed or not: a round-tripped tile's values
        are its root's round-tripped (a fixed point is its own child); itself and 0 for any other tile."""
        depth, src = 0, self
        while src._parent is not None:
            depth, src = depth + 1, src._parent
        return src, depth

    def _stable_for(self, thresh: float) -> bool:
        """No value whose round-trip orbit crosses ``thresh``; holds for every descendant too (their
        orbits are suffixes of this tile's)."""
        s = self._stable.get(thresh)
        if s is None:
            band = UNSTABLE_BANDS.get(thresh)
            bounds = self._bounds
            if band is None:
                s = False
            elif bounds is not None and (bounds[1] + _BOUND_SLACK < band[0] or bounds[0] - _BOUND_SLACK > band[1]):
                s = True
            elif self._data is None and self._gen is None:
                s = self._parent._stable_for(thresh)
            else:
                d = self.data
                s = not bool(np.any((d >= np.float32(band[0])) & (d <= np.float32(band[1]))))
            self._stable[thresh] = s
        return s

    def _delegate(self, thresh: float | None) -> _Tile | None:
        """The ancestor whose thresholded mask this not-yet-computed tile shares, if any."""
        if self._data is None and thresh is not None and self._stable_for(thresh):
            return self._parent
        return None

    def mask(self, thresh: float | None, keep: bool = True) -> np.ndarray:
        """``data > thresh`` (bool maps: the data itself); memoised with ``keep`` (the output mask, read
        every click), else computed for this read only (a window's prev mask: not worth the memory)."""
        if thresh is None:
            return self.data
        m = self._masks.get(thresh)
        if m is None:
            parent = self._delegate(thresh)
            if parent is not None:
                return parent.mask(thresh, keep)
            c = self._constant(thresh)
            m = _const_mask(self.shape, c) if c is not None else self.data > np.float32(thresh)
            if keep:
                self._masks[thresh] = m
        return m

    def stats(self, thresh: float | None) -> tuple[int, tuple[int, int, int, int]]:
        """(count, OpenCV bounding rect (x, y, w, h)) of ``mask(thresh)``, memoised without keeping the
        mask itself unless it is kept anyway."""
        s = self._stats.get(thresh)
        if s is None:
            parent = self._delegate(thresh)
            if parent is not None:
                return parent.stats(thresh)
            c = self._constant(thresh)
            if c is not None:
                h, w = self.shape
                s = self._stats[thresh] = (h * w, (0, 0, w, h)) if c else (0, (0, 0, 0, 0))
                return s
            m = self._masks.get(thresh) if thresh is not None else self.data
            if m is None:
                m = self.data > np.float32(thresh)
            u8 = m.view(np.uint8)
            s = self._stats[thresh] = (int(cv2.countNonZero(u8)), tuple(int(v) for v in cv2.boundingRect(u8)))
        return s

    def arrays(self) -> Iterator[np.ndarray]:
        if self._data is not None:
            yield self._data
        yield from self._masks.values()

    def release(self) -> None:
        """Forget what can be computed again: memoised masks, and the values of a lazy tile. For tiles
        only undo can reach: a 48 MP session otherwise kept ~33 MB of masks per click in its history."""
        self._masks.clear()
        if self._gen is not None:
            self._data = None


class TiledMap:
    """An immutable ``(H, W)`` float32 or bool map; ``None`` tiles are all zero (False)."""

    __slots__ = ("shape", "dtype", "grid", "tile", "_bboxes")

    def __init__(self, shape: tuple[int, int], dtype: np.dtype, grid: list[list[_Tile | None]],
                 tile: int) -> None:
        self.shape, self.dtype, self.grid, self.tile = (int(shape[0]), int(shape[1])), np.dtype(dtype), grid, tile
        self._bboxes: dict[float | None, tuple[int, Box4 | None]] = {}

    # ------------------------------------------------------------------------------------ building
    @classmethod
    def zeros(cls, shape: tuple[int, int], dtype: type = np.float32, tile: int | None = None) -> TiledMap:
        tile = tile or TILE
        ny, nx = -(-int(shape[0]) // tile), -(-int(shape[1]) // tile)
        return cls(shape, dtype, [[None] * nx for _ in range(ny)], tile)

    @classmethod
    def from_array(cls, a: np.ndarray, tile: int | None = None) -> TiledMap:
        return cls.zeros(a.shape, a.dtype, tile).with_box((0, a.shape[0], 0, a.shape[1]), a, outside="zero")

    def with_lazy_box(self, box: Box4, window: RowsFn, bounds: Callable[[int, int, int, int], tuple[float, float]],
                      outside: str = "keep", sample: SampleFn | None = None,
                      bounds_grid: BoundsGridFn | None = None) -> TiledMap:
        """``with_box`` whose values inside ``box`` are ``window(rows, c1, c2)`` (box-local row indices and
        column range), computed per tile only when that tile's values are read. A tile wholly inside the
        box carries ``bounds(r1, r2, c1, c2)`` (box-local, exclusive) of its values, so that a threshold the
        bounds decide needs no values at all; a tile the box edge crosses is computed when read. Boxes
        up to ``LAZY_MIN_PIXELS`` are computed at once (the same values; per-tile laziness costs more
        than it saves there). ``sample(rows, cols)``, when given, computes the values at box-local
        index arrays of rows x columns (``TiledMap.sample`` then samples uncomputed tiles without computing
        them); ``bounds_grid(row ranges, column ranges)``, when given, gives every tile's bounds in one call
        (``resize.ResizeChain.bounds_grid``)."""
        y1, y2, x1, x2 = box
        if (y2 - y1) * (x2 - x1) <= LAZY_MIN_PIXELS:
            return self.with_box(box, window(np.arange(y2 - y1), 0, x2 - x1), outside)
        grid = self._outside_grid(outside)
        rows, cols = self._tiles_over(box)
        # Per tile row / column once, not per tile (a photo-sized box has hundreds: per-tile min / max and
        # tuples cost ~1.5 ms a box).
        row_spans, col_spans = self._spans(rows, y1, y2, self.shape[0]), self._spans(cols, x1, x2, self.shape[1])
        row_parts = [(a - y1, b - y1) for *_, a, b in row_spans]
        col_parts = [(a - x1, b - x1) for *_, a, b in col_spans]
        if bounds_grid is not None:
            los, his = (v.tolist() for v in bounds_grid(np.array(row_parts), np.array(col_parts)))
        win = (window, y1, x1, sample)
        origin = (y1, x1)
        for i, (ty, ty1, ty2, iy1, iy2) in enumerate(row_spans):
            row_in = (iy1, iy2) == (ty1, ty2)
            grid_row = grid[ty]
            for j, (tx, tx1, tx2, ix1, ix2) in enumerate(col_spans):
                inside = row_in and (ix1, ix2) == (tx1, tx2)
                base = None if inside else grid_row[tx]
                # An edge tile is bounded by the box's values and those it keeps (zeros, or the earlier
                # tile's known bounds): the Focus Crop's edge tiles are then decided without computing.
                keep = (0.0, 0.0) if base is None else None if inside else base.value_bounds()
                tb = None
                if inside or keep is not None:
                    if bounds_grid is not None:
                        lo, hi = los[i][j], his[i][j]
                    else:
                        lo, hi = bounds(*row_parts[i], *col_parts[j])
                    tb = (lo, hi) if inside else (min(lo, keep[0]), max(hi, keep[1]))
                part = (iy1, iy2, ix1, ix2)
                gen = _box_part(window, (ty1, tx1), part, origin, base)
                grid_row[tx] = t = _Tile(None, shape=(ty2 - ty1, tx2 - tx1), gen=gen, bounds=tb)
                if inside:
                    t._win = win
                elif sample is not None:
                    t._edge = (win, part, base)
        return TiledMap(self.shape, self.dtype, grid, self.tile)

    def _spans(self, idx: range, lo: int, hi: int, n: int) -> list[tuple[int, int, int, int, int]]:
        """Along one axis of length ``n``: (tile index, tile start, tile end, start and end of the part of
        ``[lo, hi)`` in it) for each tile of ``idx``."""
        t = self.tile
        return [(i, i * t, min((i + 1) * t, n), max(lo, i * t), min(hi, (i + 1) * t)) for i in idx]

    def _tile_box(self, ty: int, tx: int) -> Box4:
        t = self.tile
        return ty * t, min((ty + 1) * t, self.shape[0]), tx * t, min((tx + 1) * t, self.shape[1])

    def _tiles_over(self, box: Box4) -> tuple[range, range]:
        y1, y2, x1, x2 = box
        t = self.tile
        return range(y1 // t, -(-y2 // t)), range(x1 // t, -(-x2 // t))

    def _tile_value(self, tile: _Tile | None, ty: int, tx: int) -> np.ndarray:
        if tile is not None:
            return tile.data
        y1, y2, x1, x2 = self._tile_box(ty, tx)
        return np.zeros((y2 - y1, x2 - x1), self.dtype)

    def _outside_grid(self, outside: str) -> list[list[_Tile | None]]:
        """A new grid holding what an update keeps outside its box: this map's tiles (``"keep"``), none
        (``"zero"``), or each tile marked round-tripped once more (``"roundtrip"``, lazy)."""
        if outside == "zero":
            return [[None] * len(r) for r in self.grid]
        if outside == "roundtrip":
            return [[None if t is None else t.roundtripped() for t in r] for r in self.grid]
        return [list(r) for r in self.grid]

    def with_box(self, box: Box4, values: np.ndarray | Callable[[np.ndarray], None], outside: str = "keep") -> TiledMap:
        """A new map: ``values`` (``(y2-y1, x2-x1)``, or a function writing into a given box view) inside
        ``box``, and outside it this map's values (``"keep"``), zeros (``"zero"``), or this map's values
        after one logit -> sigmoid round trip (``"roundtrip"``, lazy for the tiles the box misses)."""
        y1, y2, x1, x2 = box
        rows, cols = self._tiles_over(box)
        grid = self._outside_grid(outside)
        for ty in rows:
            for tx in cols:
                ty1, ty2, tx1, tx2 = self._tile_box(ty, tx)
                iy1, iy2, ix1, ix2 = max(y1, ty1), min(y2, ty2), max(x1, tx1), min(x2, tx2)
                if (iy1, iy2, ix1, ix2) == (ty1, ty2, tx1, tx2):
                    data = np.empty((ty2 - ty1, tx2 - tx1), self.dtype)
                elif outside == "zero":
                    data = np.zeros((ty2 - ty1, tx2 - tx1), self.dtype)
                else:  # the part outside the box comes from this map (round-tripped when asked)
                    base = grid[ty][tx]
                    data = np.zeros((ty2 - ty1, tx2 - tx1), self.dtype) if base is None else base.data.copy()
                dst = data[iy1 - ty1:iy2 - ty1, ix1 - tx1:ix2 - tx1]
                if callable(values):
                    values(dst, (iy1 - y1, iy2 - y1, ix1 - x1, ix2 - x1))
                else:
                    dst[...] = values[iy1 - y1:iy2 - y1, ix1 - x1:ix2 - x1]
                data.flags.writeable = False
                grid[ty][tx] = _Tile(data)
        return TiledMap(self.shape, self.dtype, grid, self.tile)

    def filled_outside(self, box: Box4, values: np.ndarray) -> TiledMap:
        """A bool map: ``values`` inside ``box`` and True everywhere else (Progressive Merge's label-0
        flood). The tiles wholly outside share one all-True array per tile shape."""
        ones: dict[tuple[int, int], _Tile] = {}
        grid: list[list[_Tile | None]] = []
        for ty in range(len(self.grid)):
            row = []
            for tx in range(len(self.grid[ty])):
                y1, y2, x1, x2 = self._tile_box(ty, tx)
                shape = (y2 - y1, x2 - x1)
                if shape not in ones:
                    ones[shape] = _Tile(np.ones(shape, np.bool_))
                row.append(ones[shape])
            grid.append(row)
        return TiledMap(self.shape, np.bool_, grid, self.tile).with_box(box, values)

    # ------------------------------------------------------------------------------------ reading
    def read(self, box: Box4, thresh: float | None | str = "value", keep: bool = False) -> np.ndarray:
        """A dense copy of ``box``: the values, or with ``thresh`` the ``> thresh`` mask (its tiles' masks
        memoised with ``keep``)."""
        y1, y2, x1, x2 = box
        want_mask = thresh != "value"
        out = np.zeros((y2 - y1, x2 - x1), np.bool_ if want_mask else self.dtype)
        rows, cols = self._tiles_over(box)
        for ty in rows:
            for tx in cols:
                tile = self.grid[ty][tx]
                if tile is None:
                    continue
                ty1, ty2, tx1, tx2 = self._tile_box(ty, tx)
                iy1, iy2, ix1, ix2 = max(y1, ty1), min(y2, ty2), max(x1, tx1), min(x2, tx2)
                src = tile.mask(thresh, keep) if want_mask else tile.data
                const = _const_value(src) if want_mask else None
                if const is False:
                    continue  # most tiles of a large photo: nothing to write into the zeroed output
                dst = out[iy1 - y1:iy2 - y1, ix1 - x1:ix2 - x1]
                if const:
                    dst[...] = True
                else:
                    dst[...] = src[iy1 - ty1:iy2 - ty1, ix1 - tx1:ix2 - tx1]
        return out

    def xor_read(self, other: TiledMap, box: Box4, thresh: float | None, other_thresh: float | None) -> np.ndarray:
        """``read(box, thresh) ^ other.read(box, other_thresh)`` (maps of one shape and tiling), writing only
        the tiles where the two masks differ: where both are the same array or the same constant (a large
        object's interior and surroundings) the zeroed output is left untouched, so a photo-sized window
        costs its contour tiles, not its area."""
        if other.shape != self.shape or other.tile != self.tile:
            raise ValueError("xor_read needs two maps of the same shape and tiling")
        y1, y2, x1, x2 = box
        out = np.zeros((y2 - y1, x2 - x1), np.bool_)
        rows, cols = self._tiles_over(box)
        for ty in rows:
            for tx in cols:
                a, b = self.grid[ty][tx], other.grid[ty][tx]
                if a is None and b is None:
                    continue
                ty1, ty2, tx1, tx2 = self._tile_box(ty, tx)
                zero = _const_mask((ty2 - ty1, tx2 - tx1), False)
                ma = zero if a is None else a.mask(thresh, False)
                mb = zero if b is None else b.mask(other_thresh, False)
                if ma is mb:
                    continue
                iy1, iy2, ix1, ix2 = max(y1, ty1), min(y2, ty2), max(x1, tx1), min(x2, tx2)
                dst = out[iy1 - y1:iy2 - y1, ix1 - x1:ix2 - x1]
                ca, cb = _const_value(ma), _const_value(mb)
                if ca is not None and cb is not None:
                    if ca != cb:
                        dst[...] = True
                    continue
                np.logical_xor(ma[iy1 - ty1:iy2 - ty1, ix1 - tx1:ix2 - tx1],
                               mb[iy1 - ty1:iy2 - ty1, ix1 - tx1:ix2 - tx1], out=dst)
        return out

    def to_array(self) -> np.ndarray:
        return self.read((0, self.shape[0], 0, self.shape[1]))

    def mask(self, thresh: float | None = None) -> np.ndarray:
        """The whole ``> thresh`` mask (bool maps: the map) as a new bool array."""
        return self.read((0, self.shape[0], 0, self.shape[1]), thresh, keep=True)

    def rows(self, row_idx: np.ndarray, x1: int, x2: int) -> np.ndarray:
        """``map[row_idx, x1:x2]`` (any row indices, repeats allowed) without materialising the map."""
        t = self.tile
        out = np.zeros((len(row_idx), x2 - x1), self.dtype)
        row_idx = np.asarray(row_idx)
        tys = row_idx // t
        for ty in np.unique(tys):
            sel = np.flatnonzero(tys == ty)
            local = row_idx[sel] - ty * t
            run: list = []  # consecutive uncomputed tiles of one lazy window: one window call for all
            for tx in range(x1 // t, -(-x2 // t)):
                tile = self.grid[ty][tx]
                _, _, tx1, tx2 = self._tile_box(int(ty), tx)
                ix1, ix2 = max(x1, tx1), min(x2, tx2)
                src = None if tile is None else tile.lazy_source()
                if run and (src is None or src[0][0] is not run[0][0][0] or src[1] != run[0][1]):
                    _flush_run(run, out, sel, row_idx[sel], x1)
                    run = []
                if src is not None:
                    run.append((src[0], src[1], ix1, ix2))
                elif tile is not None:
                    out[sel, ix1 - x1:ix2 - x1] = tile.rows(local, ix1 - tx1, ix2 - tx1)
            if run:
                _flush_run(run, out, sel, row_idx[sel], x1)
        return out

    def sample(self, row_idx: np.ndarray, col_idx: np.ndarray) -> np.ndarray:
        """``map[np.ix_(row_idx, col_idx)]`` (increasing indices) without materialising the map: the points
        a lazy box with a sample function covers -- in its inner tiles, computed or not, and in the parts of
        its edge tiles, whose other points come from the tiles they keep, down to earlier boxes -- are
        sampled at just those points with one call per box and round-trip depth (the Target Crop's 256
        sample of a photo-sized previous map: its ~30 edge tiles cost ~5 ms a click at 12 MP one by one);
        any other tile gives its own values there."""
        t = self.tile
        row_idx, col_idx = np.asarray(row_idx, np.int64), np.asarray(col_idx, np.int64)
        out = np.zeros((len(row_idx), len(col_idx)), self.dtype)
        if out.size == 0:
            return out
        # Increasing indices: each tile's rows and columns are one contiguous slice of the output.
        ty0, tx0 = int(row_idx[0]) // t, int(col_idx[0]) // t
        rc = np.searchsorted(row_idx // t, np.arange(ty0, int(row_idx[-1]) // t + 2)).tolist()
        cc = np.searchsorted(col_idx // t, np.arange(tx0, int(col_idx[-1]) // t + 2)).tolist()
        plan = _SamplePlan(row_idx, col_idx, out)
        for i in range(len(rc) - 1):
            for j in range(len(cc) - 1):
                tile = self.grid[ty0 + i][tx0 + j]
                if tile is not None and rc[i] < rc[i + 1] and cc[j] < cc[j + 1]:
                    plan.add(tile, (rc[i], rc[i + 1], cc[j], cc[j + 1]), ((ty0 + i) * t, (tx0 + j) * t), 0)
        plan.run()
        return out

    def bbox(self, thresh: float | None = None) -> tuple[int, Box4 | None]:
        """(pixel count, inclusive ``(rmin, rmax, cmin, cmax)`` or None) of ``> thresh`` over the map,
        from the tiles' memoised statistics; memoised per threshold (a map never changes: Zoom-In and the
        Focus Crop both ask the previous map for its 0.49 box, ~2 ms over a 48 MP map's 740 tiles)."""
        memo = self._bboxes.get(thresh)
        if memo is not None:
            return memo
        count, box = 0, None
        for ty, row in enumerate(self.grid):
            for tx, tile in enumerate(row):
                if tile is None:
                    continue
                n, (x, y, w, h) = tile.stats(thresh)
                if n == 0:
                    continue
                count += n
                oy, ox = ty * self.tile, tx * self.tile
                b = (oy + y, oy + y + h - 1, ox + x, ox + x + w - 1)
                box = b if box is None else (min(box[0], b[0]), max(box[1], b[1]), min(box[2], b[2]),
                                             max(box[3], b[3]))
        self._bboxes[thresh] = (count, box)
        return count, box

    def tiles(self) -> Iterator[_Tile]:
        for row in self.grid:
            yield from (t for t in row if t is not None)

    def arrays(self) -> Iterator[np.ndarray]:
        """Every array this map's tiles hold (for byte counts; callers de-duplicate by identity)."""
        for tile in self.tiles():
            yield from tile.arrays()


def release_replaced(old: Iterable[TiledMap | None], new: Iterable[TiledMap | None]) -> None:
    """Release (``_Tile.release``) the tiles of the ``old`` maps that no ``new`` map holds, directly or
    as the ancestor a round-tripped tile reads its values or masks from. Values never change: a
    released tile computes the same arrays again if an undo brings it back."""
    keep: set[int] = set()
    for m in new:
        for t in m.tiles() if m is not None else ():
            while t is not None and id(t) not in keep:
                keep.add(id(t))
                t = t._parent
    for m in old:
        for t in m.tiles() if m is not None else ():
            if id(t) not in keep:
                t.release()


Rect = tuple[int, int, int, int]  # (r0, r1, c0, c1): a block of a sample's output, exclusive


class _SamplePlan:
    """``TiledMap.sample``'s work: output blocks grouped by the lazy box (and round-trip depth) whose sample
    function gives them, filled by one call per group; other blocks are written as they are met."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, out: np.ndarray) -> None:
        self.rows, self.cols, self.out = rows, cols, out
        self.groups: dict[tuple[int, int], tuple[LazyWindow, int, list[Rect]]] = {}

    def _group(self, win: LazyWindow, depth: int, rect: Rect) -> None:
        self.groups.setdefault((id(win[0]), depth), (win, depth, []))[2].append(rect)

    def add(self, tile: _Tile, rect: Rect, origin: tuple[int, int], depth: int) -> None:
        """Plan ``rect`` of the output from ``tile`` (whose top-left pixel is ``origin``), round-tripped
        ``depth`` more times."""
        src, d = tile.root()
        depth += d
        if src._win is not None and src._win[3] is not None:
            self._group(src._win, depth, rect)
            return
        if src._edge is not None:
            win, (iy1, iy2, ix1, ix2), base = src._edge
            r0, r1, c0, c1 = rect
            a0, a1 = (r0 + int(v) for v in np.searchsorted(self.rows[r0:r1], (iy1, iy2)))
            b0, b1 = (c0 + int(v) for v in np.searchsorted(self.cols[c0:c1], (ix1, ix2)))
            if a0 < a1 and b0 < b1:
                self._group(win, depth, (a0, a1, b0, b1))
            if base is not None:  # the kept tile's points: the bands above, below, left and right
                for part in ((r0, a0, c0, c1), (a1, r1, c0, c1), (a0, a1, c0, b0), (a0, a1, b1, c1)):
                    if part[0] < part[1] and part[2] < part[3]:
                        self.add(base, part, origin, depth)
            return  # without a base the rest stays zero (zero round-trips to zero)
        r0, r1, c0, c1 = rect
        vals = tile.sample(self.rows[r0:r1] - origin[0], self.cols[c0:c1] - origin[1])
        for _ in range(depth - d):
            vals = roundtrip(vals)
        self.out[r0:r1, c0:c1] = vals

    def run(self) -> None:
        for (_, by, bx, sample), depth, rects in self.groups.values():
            for k1, k2, l1, l2 in _sample_calls(rects):
                vals = sample(self.rows[k1:k2] - by, self.cols[l1:l2] - bx)
                for _ in range(depth):
                    vals = roundtrip(vals)
                for r0, r1, c0, c1 in rects:
                    if k1 <= r0 and r1 <= k2 and l1 <= c0 and c1 <= l2:
                        self.out[r0:r1, c0:c1] = vals[r0 - k1:r1 - k1, c0 - l1:c1 - l1]


# What one more sample call costs, in sampled points (measured: ~35 us a call, ~5-9 ns a point).
_CALL_POINTS = 6000


def _sample_calls(rects: list[Rect]) -> list[Rect]:
    """The blocks to sample one box's ``rects`` with: the rects merged where they tile a larger rectangle
    (a row of tiles, then a column of such rows), or their bounding box when one call over its extra points
    is cheaper than several (every rect lies in the box, and so does their bounding box: a box is convex)."""
    merged: list[Rect] = []
    for r in sorted(rects):  # side by side, same rows
        if merged and merged[-1][:2] == r[:2] and merged[-1][3] == r[2]:
            merged[-1] = (r[0], r[1], merged[-1][2], r[3])
        else:
            merged.append(r)
    blocks: list[Rect] = []
    for r in sorted(merged, key=lambda b: (b[2], b[3], b[0])):  # one above the other, same columns
        if blocks and blocks[-1][2:] == r[2:] and blocks[-1][1] == r[0]:
            blocks[-1] = (blocks[-1][0], r[1], r[2], r[3])
        else:
            blocks.append(r)
    if len(blocks) == 1:
        return blocks
    area = sum((r[1] - r[0]) * (r[3] - r[2]) for r in rects)
    i1, i2 = min(r[0] for r in rects), max(r[1] for r in rects)
    j1, j2 = min(r[2] for r in rects), max(r[3] for r in rects)
    if (i2 - i1) * (j2 - j1) + _CALL_POINTS < area + len(blocks) * _CALL_POINTS:
        return [(i1, i2, j1, j2)]
    return blocks


def _flush_run(run: list, out: np.ndarray, sel: np.ndarray, rows: np.ndarray, x1: int) -> None:
    """Write a run of adjacent lazy tiles' rows (same window, same round trips) with one window call."""
    (window, by, bx, _), depth = run[0][0], run[0][1]
    a, b = run[0][2], run[-1][3]
    vals = window(rows - by, a - bx, b - bx)
    for _ in range(depth):
        vals = roundtrip(vals)
    out[sel, a - x1:b - x1] = vals


def _box_part(window: RowsFn, origin: tuple[int, int], part: Box4, box_origin: tuple[int, int],
              base: _Tile | None) -> RowsFn:
    """A lazy tile's rows function: ``window``'s values where the tile meets the box, ``base``'s values
    (or zeros) elsewhere."""
    (oy, ox), (iy1, iy2, ix1, ix2), (by, bx) = origin, part, box_origin

    def rows(local_rows: np.ndarray, c1: int, c2: int) -> np.ndarray:
        local_rows = np.asarray(local_rows)
        if base is None:
            out = np.zeros((len(local_rows), c2 - c1), np.float32)
        else:
            out = np.array(base.rows(local_rows, c1, c2), np.float32)
        g = local_rows + oy
        sel = np.flatnonzero((g >= iy1) & (g < iy2))
        a, b = max(c1 + ox, ix1), min(c2 + ox, ix2)
        if len(sel) and a < b:
            vals = window(g[sel] - by, a - bx, b - bx)
            if len(sel) == len(g):
                out[:, a - ox - c1:b - ox - c1] = vals
            else:
                out[sel, a - ox - c1:b - ox - c1] = vals
        return out

    return rows


class BoxRows:
    """``tmap[y1:y2, x1:x2]`` as a source for ``resize.resize_rows_source``: ``src[rows]`` gathers those
    rows of the box and ``src.sample(rows, cols)`` those rows x columns, never the whole box -- except a
    box of at most ``LAZY_MIN_PIXELS``, which is cheaper read once than gathered tile by tile."""

    __slots__ = ("_map", "_box", "_dense", "shape")
    ndim = 2

    def __init__(self, tmap: TiledMap, box: Box4) -> None:
        self._map, self._box = tmap, box
        self.shape = (box[1] - box[0], box[3] - box[2])
        self._dense = tmap.read(box) if self.shape[0] * self.shape[1] <= LAZY_MIN_PIXELS else None

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        if self._dense is not None:
            return self._dense[rows]
        y1, _, x1, x2 = self._box
        return self._map.rows(np.asarray(rows) + y1, x1, x2)

    def sample(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if self._dense is not None:
            return np.take(self._dense[rows], cols, axis=1)
        y1, _, x1, _ = self._box
        return self._map.sample(np.asarray(rows) + y1, np.asarray(cols) + x1)
