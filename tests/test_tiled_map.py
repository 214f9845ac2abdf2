"""The Session's tiled state and the windowed crop rules equal their dense, whole-image counterparts."""
from __future__ import annotations

import numpy as np
import pytest

from focalclick_edge.runtime import crop_rules, tiled_map
from focalclick_edge.runtime.pipeline_config import OFFICIAL_PIPELINE
from focalclick_edge.runtime.tiled_map import UNSTABLE_BANDS, BoxRows, TiledMap, roundtrip


def _box(rng, h, w):
    y1, x1 = int(rng.integers(0, h - 1)), int(rng.integers(0, w - 1))
    return y1, int(rng.integers(y1 + 1, h + 1)), x1, int(rng.integers(x1 + 1, w + 1))


def _probs(rng, shape):
    """Probabilities with many values right at the thresholds and exact zeros and ones."""
    p = rng.random(shape, dtype=np.float32)
    near = rng.random(shape) < 0.2
    p[near] = rng.choice(np.array([0.49, 0.49000004, 0.5, 0.49999997, 0.0, 1.0], np.float32), near.sum())
    return p


@pytest.mark.parametrize("seed", range(6))
def test_tiled_map_updates_reads_and_boxes_equal_the_dense_computation(seed):
    """Random chains of box updates (zeros outside, kept, or round-tripped outside) read back, gather rows,
    threshold and bound exactly as the same operations on a dense array."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(40, 300)), int(rng.integers(40, 300))
    dense = np.zeros((h, w), np.float32)
    tm = TiledMap.zeros((h, w), tile=int(rng.choice([16, 33, 64])))
    for _ in range(12):
        box = _box(rng, h, w)
        y1, y2, x1, x2 = box
        vals = _probs(rng, (y2 - y1, x2 - x1))
        mode = str(rng.choice(["zero", "keep", "roundtrip"]))
        if mode == "zero":
            dense = np.zeros_like(dense)
        elif mode == "roundtrip":
            dense = roundtrip(dense)
        dense[y1:y2, x1:x2] = vals
        tm = tm.with_box(box, vals, outside=mode)
        for t in (0.49, 0.5):
            mask = dense > np.float32(t)
            assert np.array_equal(tm.mask(t), mask)
            ys, xs = np.nonzero(mask)
            want = (int(mask.sum()), None if ys.size == 0 else (ys.min(), ys.max(), xs.min(), xs.max()))
            assert tm.bbox(t) == want
        rb = _box(rng, h, w)
        assert np.array_equal(tm.read(rb), dense[rb[0]:rb[1], rb[2]:rb[3]])
        rows = rng.integers(0, rb[1] - rb[0], 9)
        assert np.array_equal(BoxRows(tm, rb)[rows], dense[rb[0]:rb[1], rb[2]:rb[3]][rows])
    assert np.array_equal(tm.to_array(), dense)


@pytest.mark.parametrize("thresh", sorted(UNSTABLE_BANDS))
def test_values_outside_the_unstable_band_never_cross_the_threshold_under_round_trips(thresh):
    """Every float32 within 4e-6 of the threshold but outside its band stays on its side for 600 round trips
    (tools/roundtrip_orbits.py shows the same for all of [0.25, 0.75]); the band is what lazy tiles rely on."""
    t = np.float32(thresh)
    lo, hi = UNSTABLE_BANDS[thresh]
    start = np.arange(np.float32(thresh - 4e-6).view(np.uint32), np.float32(thresh + 4e-6).view(np.uint32),
                      dtype=np.uint32).view(np.float32)
    outside = (start < np.float32(lo)) | (start > np.float32(hi))
    side, q = start > t, start
    for _ in range(600):
        q = roundtrip(q)
        assert not np.any(((q > t) != side) & outside)


@pytest.mark.parametrize("seed", range(40))
def test_windowed_focus_crop_and_progressive_merge_equal_the_whole_image_rules(seed):
    """Masks that are empty outside a window give the same Focus Crop box and Progressive-Merge mask from
    the window crops as from the whole image, including clicks outside the window (label 0)."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(20, 120)), int(rng.integers(20, 120))
    window = _box(rng, h, w)
    if seed % 5 == 0:
        window = (0, h, window[2], window[3])  # window rows spanning the image
    y1, y2, x1, x2 = window
    pred, prev = np.zeros((h, w), bool), np.zeros((h, w), bool)
    pred[y1:y2, x1:x2] = rng.random((y2 - y1, x2 - x1)) < rng.random()
    prev[y1:y2, x1:x2] = rng.random((y2 - y1, x2 - x1)) < rng.random() * (seed % 3 != 0)
    click = (int(rng.integers(0, h)), int(rng.integers(0, w)))
    g = _box(rng, h, w)
    full = crop_rules.focus_crop_box_from_masks(pred, prev, g, click, OFFICIAL_PIPELINE)
    win = crop_rules.focus_crop_box_in_window(pred[y1:y2, x1:x2], prev[y1:y2, x1:x2], window, (h, w), g, click,
                                              OFFICIAL_PIPELINE)
    assert win == full
    merged = crop_rules.progressive_merge(pred, prev, click)
    merged_w, outside = crop_rules.progressive_merge_in_window(pred[y1:y2, x1:x2], prev[y1:y2, x1:x2], window, click)
    expect = np.full((h, w), outside)
    expect[y1:y2, x1:x2] = merged_w
    assert np.array_equal(expect, merged)


@pytest.mark.parametrize("seed", range(8))
def test_xor_read_of_two_maps_equals_the_xor_of_their_dense_masks_and_skips_shared_tiles(seed, monkeypatch):
    """Two maps sharing most tiles (one a box update of the other, lazy or dense, with constant tiles inside
    and out): ``xor_read`` over any window is the XOR of the thresholded dense maps, and the diff-based
    Focus Crop rule gives the box of the dense rule."""
    from focalclick_edge.runtime import resize as rs

    rng = np.random.default_rng(seed)
    monkeypatch.setattr(tiled_map, "LAZY_MIN_PIXELS", 0 if seed % 2 else 10**9)
    h, w = int(rng.integers(60, 260)), int(rng.integers(60, 260))
    tile = int(rng.choice([16, 32, 40]))
    # Plateaus far from the thresholds: lazy tiles whose bounds make their masks the shared constants, so
    # the two maps meet constant-vs-constant tiles that agree and that differ.
    src0 = np.zeros((6, 6), np.float32)
    src0[1:5, 1:5] = 1.0
    src0[0, 0] = 0.5
    c0 = rs.ResizeChain(src0, [(h, w)])
    prev = TiledMap.zeros((h, w), tile=tile).with_lazy_box((0, h, 0, w), c0.window, c0.bounds, outside="zero")
    base_vals = prev.to_array()
    box = _box(rng, h, w)
    src = np.where(rng.random((9, 11)) < 0.5, -1.0, 2.0).astype(np.float32)
    src[rng.random((9, 11)) < 0.2] = 0.5
    chain = rs.ResizeChain(src, [(box[1] - box[0], box[3] - box[2])])
    mode = str(rng.choice(["zero", "keep"]))
    pred = prev.with_lazy_box(box, chain.window, chain.bounds, outside=mode, sample=chain.sample,
                              bounds_grid=chain.bounds_grid)
    dense = pred.to_array()
    for t_pred, t_prev in ((0.5, 0.49), (0.49, 0.49), (0.62, 0.5)):
        window = _box(rng, h, w)
        y1, y2, x1, x2 = window
        want = (dense > np.float32(t_pred)) ^ (base_vals > np.float32(t_prev))
        assert np.array_equal(pred.xor_read(prev, window, t_pred, t_prev), want[y1:y2, x1:x2])
        full_w = (0, h, 0, w)
        click = (int(rng.integers(0, h)), int(rng.integers(0, w)))
        g = _box(rng, h, w)
        pm, qm = dense > np.float32(t_pred), base_vals > np.float32(t_prev)
        expect = crop_rules.focus_crop_box_from_masks(pm, qm, g, click, OFFICIAL_PIPELINE)
        got = crop_rules.focus_crop_box_from_diff(pred.xor_read(prev, full_w, t_pred, t_prev), full_w, (h, w), g,
                                                  click, OFFICIAL_PIPELINE, pred.bbox(t_pred))
        assert got == expect
    with pytest.raises(ValueError, match="same shape"):
        pred.xor_read(TiledMap.zeros((h + 1, w), tile=tile), (0, 1, 0, 1), 0.5, 0.5)


CHAIN_SIZES = ([(300, 220)], [(300, 220), (320, 200)], [(64, 64), (90, 91)], [(5, 3), (200, 1)])


def _chain_and_full(a: np.ndarray, sizes: list[tuple[int, int]]):
    """A ``ResizeChain`` of ``a`` through ``sizes`` and the same resizes done in full, one after another."""
    from focalclick_edge.runtime import resize as rs

    full = rs.resize_bilinear_align_corners(a, sizes[0])
    for size in sizes[1:]:
        if full.shape != size:
            full = rs.resize_bilinear_align_corners(full, size)
    return rs.ResizeChain(a, sizes), full


def test_resize_chain_windows_equal_the_full_resizes_and_bounds_hold():
    """Any rows x column range of one or two chained align-corners resizes, computed alone, equals that
    window of the full resizes bit for bit; ``bounds`` contains every value of a window."""
    rng = np.random.default_rng(0)
    a = rng.random((64, 64), dtype=np.float32)
    for sizes in CHAIN_SIZES:
        chain, full = _chain_and_full(a, sizes)
        h, w = chain.shape
        for _ in range(20):
            r1 = int(rng.integers(0, h))
            r2 = int(rng.integers(r1 + 1, h + 1))
            c1 = int(rng.integers(0, w))
            c2 = int(rng.integers(c1 + 1, w + 1))
            rows = np.sort(rng.choice(np.arange(r1, r2), size=min(7, r2 - r1), replace=False))
            assert np.array_equal(chain.window(rows, c1, c2), full[rows, c1:c2]), sizes
            lo, hi = chain.bounds(r1, r2, c1, c2)
            assert lo <= full[r1:r2, c1:c2].min() and full[r1:r2, c1:c2].max() <= hi
        # Every window's bounds at once (a lazy box's tiles) are the per-window bounds.
        rcut = np.unique(np.concatenate([[0, h], rng.integers(0, h, 4)]))
        ccut = np.unique(np.concatenate([[0, w], rng.integers(0, w, 4)]))
        rr, cr = np.stack([rcut[:-1], rcut[1:]], 1), np.stack([ccut[:-1], ccut[1:]], 1)
        lo, hi = chain.bounds_grid(rr, cr)
        assert [[chain.bounds(*r, *c) for c in cr] for r in rr] == [
            list(zip(lr, hr, strict=True)) for lr, hr in zip(lo.tolist(), hi.tolist(), strict=True)]


def test_lazy_box_decides_far_tiles_from_bounds_and_computes_only_the_tiles_near_the_threshold(monkeypatch):
    from focalclick_edge.runtime import resize as rs

    monkeypatch.setattr(tiled_map, "LAZY_MIN_PIXELS", 0)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    src = (xx / 31).astype(np.float32)  # a ramp: 0.5 only along one column band
    chain = rs.ResizeChain(src, [(512, 512)])
    calls = []

    def window(rows, c1, c2):
        calls.append((len(rows), c1, c2))
        return chain.window(rows, c1, c2)

    base = TiledMap.zeros((600, 600), np.float32, tile=64)
    lazy = base.with_lazy_box((40, 552, 40, 552), window, chain.bounds, outside="zero")
    mask = lazy.mask(0.5)
    full = np.zeros((600, 600), np.float32)
    full[40:552, 40:552] = rs.resize_bilinear_align_corners(src, (512, 512))
    assert np.array_equal(mask, full > np.float32(0.5))
    computed = len(calls)
    n_tiles = sum(t is not None for row in lazy.grid for t in row)
    assert 0 < computed < n_tiles / 3  # only the tiles the 0.5 column crosses (and the box edge ones)
    assert np.array_equal(lazy.to_array(), full)


def test_resize_chain_samples_equal_the_full_resizes_at_any_rows_and_columns():
    """``ResizeChain.sample`` (the Target Crop's 256 sample of a photo-sized lazy map) gives the full
    resizes' values at any increasing index grid, bit for bit."""
    rng = np.random.default_rng(1)
    a = rng.random((48, 40), dtype=np.float32)
    for sizes in (*CHAIN_SIZES, [(48, 40), (90, 91)]):
        chain, full = _chain_and_full(a, sizes)
        h, w = chain.shape
        for _ in range(10):
            rows = np.unique(rng.integers(0, h, int(rng.integers(1, 40))))
            cols = np.unique(rng.integers(0, w, int(rng.integers(1, 40))))
            assert np.array_equal(chain.sample(rows, cols), full[np.ix_(rows, cols)]), sizes


def test_sampling_a_lazy_map_gives_its_values_without_computing_its_tiles(monkeypatch):
    """``TiledMap.sample`` over lazy boxes (also round-tripped once more, as the Session's previous map
    is) equals the dense map at the sampled points, and computes no tile of the box."""
    from focalclick_edge.runtime import resize as rs

    monkeypatch.setattr(tiled_map, "LAZY_MIN_PIXELS", 0)
    rng = np.random.default_rng(2)
    src = rng.random((16, 16), dtype=np.float32)
    chain = rs.ResizeChain(src, [(300, 280), (310, 290)])
    window = chain.window
    base = TiledMap.from_array(_probs(rng, (400, 380)), tile=32)
    lazy = base.with_lazy_box((50, 360, 30, 320), window, chain.bounds, outside="roundtrip", sample=chain.sample)
    # A second box inside the first: its tiles interrupt the first box's runs along a row.
    later = lazy.with_lazy_box((100, 200, 100, 200), window, chain.bounds, outside="roundtrip",
                               sample=chain.sample)
    dense = roundtrip(base.to_array())
    dense[50:360, 30:320] = chain.window(np.arange(310), 0, 290)
    dense_later = roundtrip(dense)
    dense_later[100:200, 100:200] = chain.window(np.arange(100), 0, 100)
    for m, d in ((lazy, dense), (later, dense_later)):
        for _ in range(5):
            rows = np.unique(rng.integers(0, 400, 60))
            cols = np.unique(rng.integers(0, 380, 60))
            assert np.array_equal(m.sample(rows, cols), d[np.ix_(rows, cols)])
            rb = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
            assert np.array_equal(BoxRows(m, rb).sample(rows - rb[0], cols - rb[2]), d[np.ix_(rows, cols)])
    # No tile of the box was computed: its inner tiles and its edge tiles were sampled at the points.
    inner = sum(t is not None and t._win is not None for row in lazy.grid for t in row)
    assert inner > 0 and all(t._data is None for row in lazy.grid for t in row if t is not None and t._gen)
    # Once computed (partly), the tiles still sample to the same values.
    assert np.array_equal(later.read((90, 260, 80, 300)), dense_later[90:260, 80:300])
    rows, cols = np.unique(rng.integers(0, 400, 80)), np.unique(rng.integers(0, 380, 80))
    assert np.array_equal(later.sample(rows, cols), dense_later[np.ix_(rows, cols)])


@pytest.mark.parametrize("seed", range(4))
def test_sampling_chains_of_overlapping_lazy_boxes_equals_the_dense_map_and_computes_no_tile(seed, monkeypatch):
    """Boxes pasted over earlier boxes' edges (round-tripped outside, as the Session's later clicks are):
    ``TiledMap.sample`` equals the dense map, at any points, computes no tile -- the edge tiles' points
    come from their box and the tiles they keep, down to the oldest box -- and the boxes' sample functions
    evaluate little more than the points asked for."""
    from focalclick_edge.runtime import resize as rs

    monkeypatch.setattr(tiled_map, "LAZY_MIN_PIXELS", 0)
    rng = np.random.default_rng(10 + seed)
    h, w = 260, 300
    tm = TiledMap.from_array(_probs(rng, (h, w)), tile=32)
    dense = tm.to_array()
    calls: dict[int, list[int]] = {}
    windows = []  # window calls: values computed rows x column ranges -- none may happen while sampling
    for k in range(4):
        y1, y2, x1, x2 = box = _box(rng, h, w)
        while (y2 - y1) < 40 or (x2 - x1) < 40:
            y1, y2, x1, x2 = box = _box(rng, h, w)
        chain = rs.ResizeChain(rng.random((12, 12), dtype=np.float32), [(y2 - y1, x2 - x1)])
        calls[k] = []

        def sample(r, c, chain=chain, k=k):
            calls[k].append(len(r) * len(c))
            return chain.sample(r, c)

        def window(r, c1, c2, chain=chain):
            windows.append(len(r))
            return chain.window(r, c1, c2)

        tm = tm.with_lazy_box(box, window, chain.bounds, outside="roundtrip", sample=sample)
        dense = roundtrip(dense)
        dense[y1:y2, x1:x2] = chain.window(np.arange(y2 - y1), 0, x2 - x1)
    for _ in range(6):
        rows = np.unique(rng.integers(0, h, int(rng.integers(1, 90))))
        cols = np.unique(rng.integers(0, w, int(rng.integers(1, 90))))
        assert np.array_equal(tm.sample(rows, cols), dense[np.ix_(rows, cols)])
    assert not windows
    assert all(t._data is None for row in tm.grid for t in row if t is not None and t._gen is not None)
    for rows, cols in ((np.arange(1, h, 2), np.arange(0, w, 3)), (np.arange(h), np.arange(w))):
        for c in calls.values():
            c.clear()
        assert np.array_equal(tm.sample(rows, cols), dense[np.ix_(rows, cols)])
        # Each (box, depth) group evaluates its points, or a bounding box only when that is cheaper than
        # more calls: at most twice the points, plus a few calls' worth per group (4 boxes x 4 depths).
        sampled = sum(map(sum, calls.values()))
        assert 0 < sampled <= 2 * len(rows) * len(cols) + 16 * tiled_map._CALL_POINTS


def test_sample_calls_merge_a_box_blocks_into_few_exact_rectangles_or_take_their_bounding_box():
    """A full grid of tile blocks is one call over exactly its points; a ring (an earlier box around a later
    one) is four exact calls; small scattered blocks are one call over their bounding box."""
    calls = tiled_map._sample_calls
    grid = [(r, r + 40, c, c + 40) for r in range(0, 200, 40) for c in range(0, 240, 40)]
    assert calls(grid[::-1]) == [(0, 200, 0, 240)]
    ring = [b for b in grid if not (40 <= b[0] < 160 and 40 <= b[2] < 200)]
    blocks = calls(ring)
    assert len(blocks) == 4
    assert sum((b[1] - b[0]) * (b[3] - b[2]) for b in blocks) == 200 * 240 - 120 * 160
    assert all(any(b[0] <= r[0] and r[1] <= b[1] and b[2] <= r[2] and r[3] <= b[3] for b in blocks) for r in ring)
    assert calls([(0, 3, 0, 4), (10, 12, 20, 25), (30, 31, 5, 6)]) == [(0, 31, 0, 25)]


@pytest.mark.parametrize("lazy_min", [0, 10 ** 9])
@pytest.mark.parametrize("out_hw,mid_hw", [((64, 48), None), ((20, 30), None), ((20, 30), (40, 40)), ((90, 70), None)])
def test_resizing_a_box_of_the_map_equals_resizing_its_dense_copy(out_hw, mid_hw, lazy_min, monkeypatch):
    """``resize_rows_source`` of a tiled map's box (gathered from the tiles, or -- a small box -- read
    once) gives the dense resize, also when the box already has the output size."""
    from focalclick_edge.runtime import resize as rs

    monkeypatch.setattr(tiled_map, "LAZY_MIN_PIXELS", lazy_min)
    rng = np.random.default_rng(3)
    dense = _probs(rng, (100, 90))
    tm = TiledMap.from_array(dense, tile=32)
    box = (10, 74, 20, 68)  # 64 x 48
    crop = dense[box[0]:box[1], box[2]:box[3]]
    if mid_hw is None:
        want = rs.resize_bilinear_align_corners(crop, out_hw)
    else:
        want = np.empty(out_hw, np.float32)
        rs.crop_resize_twice_align_corners(crop[None], (0, 64, 0, 48), mid_hw, out_hw, out=want[None])
    got = np.empty(out_hw, np.float32)
    rs.resize_rows_source(BoxRows(tm, box), out_hw, out=got, mid_hw=mid_hw)
    assert np.array_equal(got, want)
