"""Per-image interactive state, like SamPredictor: ``set_image`` once, then ``add_click`` per click.

The flow follows the official FocalPredictor + evaluation loop step by step, one method per stage of
``add_click`` (the rules themselves are in crop_rules.py, resize.py and roi_align.py): Target Crop →
Segmentor → inverse Zoom-In → Focus Crop → RoIAlign → Refiner → paste-back → (initial-mask mode)
Progressive Merge. Its constants come from a ``PipelineConfig`` -- the model card's, or the one passed
to ``from_graphs``.
"""
from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import crop_rules
from . import resize as rs
from .backends import CompiledModel, compile_model
from .images import to_rgb_uint8
from .model_dir import ModelDir
from .pipeline_config import OFFICIAL_PIPELINE, PipelineConfig
from .roi_align import roi_align_aligned
from .runs import refiner_precision_for
from .tiled_map import BoxRows, TiledMap, release_replaced

STAGES = ("preprocess", "segmentor", "focus_crop", "refiner", "merge", "total")

#: With ``Session(working_resolution=True)``, images above this many megapixels are processed at this
#: size; the full-resolution mask is upsampled from it inside each click's changed box.
WORKING_MP = 2.0


class ClickResult:
    """One click's outcome. ``prob`` (float32 HxW, the predictor's probability map) and ``mask`` (bool HxW:
    ``prob > 0.5``, or the Progressive-Merge mask when an initial mask was set) are built from the
    session's tiled state when first read, as new arrays the caller may keep or modify; the session drops
    that copy when the next click is added (reading it again rebuilds the same array)."""

    __slots__ = ("_prob_map", "_mask_map", "_mask_thresh", "_cache", "_full_hw", "timings", "target_box",
                 "focus_box")

    def __init__(self, prob_map: TiledMap, mask_map: TiledMap, mask_thresh: float | None,
                 timings: dict[str, float], target_box: tuple[int, int, int, int] = (0, 0, 0, 0),
                 focus_box: tuple[int, int, int, int] = (0, 0, 0, 0), full_hw: tuple[int, int] | None = None) -> None:
        self._prob_map, self._mask_map, self._mask_thresh = prob_map, mask_map, mask_thresh
        self._full_hw = full_hw  # working resolution: prob is upsampled to this size when read
        self._cache: dict[str, np.ndarray] = {}
        self.timings = timings  # stage -> milliseconds
        self.target_box = target_box  # global_roi (y1, y2, x1, x2), exclusive
        self.focus_box = focus_box

    @property
    def prob(self) -> np.ndarray:
        p = self._cache.get("prob")
        if p is None:
            p = self._prob_map.to_array()
            if self._full_hw is not None and p.shape != self._full_hw:
                p = _cv2().resize(p, (self._full_hw[1], self._full_hw[0]), interpolation=_cv2().INTER_LINEAR)
            self._cache["prob"] = p
        return p

    @property
    def mask(self) -> np.ndarray:
        m = self._cache.get("mask")
        if m is None:
            m = self._cache["mask"] = self._mask_map.mask(self._mask_thresh)
        return m

    def with_timings(self, timings: dict[str, float]) -> ClickResult:
        """The same outcome with other stage timings (e.g. summed over cascade-forward passes)."""
        other = ClickResult(self._prob_map, self._mask_map, self._mask_thresh, timings, self.target_box,
                            self.focus_box, self._full_hw)
        other._cache = self._cache
        return other

    def _drop_cache(self) -> None:
        self._cache = {}


@dataclass
class _State:
    """One click's state. Maps are persistent tiled maps: a click builds new tiles only where it changes
    them and shares the rest with the state before, so states are never modified in place."""

    clicks: list[tuple[int, int, bool]] = field(default_factory=list)  # (x, y, positive)
    prev_prob: TiledMap | None = None
    zoom_prev: TiledMap | None = None  # what Zoom-In thresholds: prev probs, or the merged mask
    object_roi: tuple[int, int, int, int] | None = None  # inclusive, kept stale like the official ZoomIn
    merged: TiledMap | None = None  # Progressive-Merge mask (initial-mask mode only)
    full_mask: TiledMap | None = None  # working resolution only: the full-resolution mask
    result: ClickResult | None = None

    def maps(self) -> list[TiledMap | None]:
        """Every tiled map this state and its result read."""
        res = self.result
        return [self.prev_prob, self.zoom_prev, self.merged, self.full_mask,
                *((res._prob_map, res._mask_map) if res is not None else ())]


@dataclass(frozen=True)
class SessionSnapshot:
    """Opaque per-image state of a Session (see ``Session.snapshot``)."""

    image: np.ndarray | None
    state: _State
    history: tuple[_State, ...]
    full_hw: tuple[int, int] | None = None  # the user's image size (differs under working resolution)

    @property
    def nbytes(self) -> int:
        """Bytes held by this snapshot's arrays (image, map tiles and their memoised masks, results'
        materialised masks), each array counted once: states share tiles (for byte-bounded caches)."""
        seen: dict[int, int] = {}
        arrays: list[np.ndarray | None] = [self.image]
        for st in (self.state, *self.history):
            for m in st.maps():
                if m is not None:
                    arrays += m.arrays()
            if st.result is not None:
                arrays += st.result._cache.values()
        for a in arrays:
            if a is not None:
                seen[id(a)] = a.nbytes
        return sum(seen.values())


def check_click(x: float, y: float, image_hw: tuple[int, int]) -> None:
    """A one-line error unless (x, y) are integer pixel coordinates inside an image of ``image_hw``."""
    h, w = int(image_hw[0]), int(image_hw[1])
    if not (0 <= int(x) < w and 0 <= int(y) < h) or int(x) != x or int(y) != y:
        raise UserError(f"click ({x}, {y}) is outside the {w}x{h} image; x must be in [0, {w - 1}], "
                        f"y in [0, {h - 1}] (integers)")


def _sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``1 / (1 + exp(-x))`` in float32, as the official predictor computes it, without temporaries.

    The same four float32 operations in the same order as the plain expression, so the result is
    bit-identical to it; ``out`` may be ``x`` itself.
    """
    out = np.negative(x, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += np.float32(1.0)
    return np.divide(np.float32(1.0), out, out=out)


def _sigmoid64(x: float) -> float:
    """A float64 sigmoid for bounds (monotone; the float32 values lie within a few ulps of it)."""
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


def _sigmoid64_array(x: np.ndarray) -> np.ndarray:
    """``_sigmoid64`` of each value (bounds of a whole lazy box's tiles at once)."""
    x = np.asarray(x, np.float64)
    with np.errstate(over="ignore"):
        return np.where(x > -700, 1.0 / (1.0 + np.exp(-x)), 0.0)


@functools.lru_cache(maxsize=8)
def _logit_cut(t: float) -> np.float32 | None:
    """The float32 ``c`` with ``_logit(p) > t`` exactly for ``p > c`` -- checked over the 2^17 float32
    values around ``sigmoid(t)`` (beyond them logit is farther from ``t`` than its rounding); None
    when the float32 logit is not monotone there (then callers compute the logits)."""
    centre = np.array([1.0 / (1.0 + math.exp(-t))], np.float32).view(np.int32)[0]
    ps = (centre + np.arange(-65536, 65537, dtype=np.int32)).view(np.float32)
    above = _logit(ps) > np.float32(t)
    k = int(np.argmax(above))
    if k == 0 or not above[k] or above[:k].any() or not above[k:].all():
        return None
    return ps[k - 1]


def _logit(p: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` in float32 (``p`` = 0 gives ``-inf``) into a new array, without temporaries."""
    out = np.subtract(np.float32(1.0), p)
    with np.errstate(divide="ignore"):
        np.divide(p, out, out=out)
        return np.log(out, out=out)


_U8 = np.float32(1.0 / 255.0)  # the image is kept as uint8; crops scale what they read

FeedObserver = Callable[[str, dict[str, np.ndarray]], None]


class _StageClock:
    """``perf_counter`` laps: each stage's milliseconds since the previous lap, and their total."""

    def __init__(self) -> None:
        self._start = self._last = time.perf_counter()
        self._ms: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self._ms[stage] = (now - self._last) * 1e3
        self._last = now

    def timings(self) -> dict[str, float]:
        return {**self._ms, "total": (self._last - self._start) * 1e3}


@dataclass(frozen=True)
class _TargetCrop:
    clicks_yx: np.ndarray  # (N, 3) float64 rows (y, x, positive): the official internal click frame
    input_box: tuple[int, int, int, int]  # inclusive box the Segmentor saw
    global_roi: tuple[int, int, int, int]  # exclusive, possibly stale box the result is pasted into
    feeds: dict[str, np.ndarray]


@dataclass(frozen=True)
class _FocusCrop:
    box: tuple[int, int, int, int]  # exclusive (y1, y2, x1, x2)
    click_yx: tuple[int, int]  # the last click, (row, col)
    prob_in: TiledMap  # the coarse probabilities back in the image (lazy: computed per tile where read)
    feeds: dict[str, np.ndarray]


class Session:
    """Interactive segmentation of one image at a time with an exported model directory."""

    def __init__(
        self,
        model_dir: str | Path,
        backend: str = "onnxruntime",
        precision: str = "fp32",
        threads: int | None = None,
        refiner_precision: str | None = None,
        working_resolution: bool = False,
        working_mp: float = WORKING_MP,
        run: str | None = None,
    ) -> None:
        """``refiner_precision`` overrides the Refiner graph's precision (default: the run table's pairing,
        runtime/runs.py). The crop / threshold constants come from the card (``ModelDir.pipeline``).

        Working resolution (opt-in, ``working_resolution=True``): the networks never see more than their
        256 px crops, so an image above ``working_mp`` megapixels is processed downscaled to that size,
        and each click's full-resolution mask is upsampled from the working logits inside the box that
        click changed. Off by default: measured agreement with full-resolution processing stays below
        the 0.995 mean IoU bar (README), so by default every image runs the official pipeline exactly.

        ``run``: a run id of runtime/runs.py (overrides ``backend`` / ``precision``), or ``"auto"``: the
        fastest run on this CPU whose recorded accuracy passes (runtime/run_choice.py; the report is kept
        in ``run_choice``)."""
        t0 = time.perf_counter()
        self.run_choice: dict | None = None
        if run is not None:
            if run == "auto":
                from .run_choice import choose_run

                spec, self.run_choice = choose_run(model_dir, threads=threads)
            else:
                from .runs import get_run

                spec = get_run(run)
            backend, precision = spec.backend, spec.precision
            refiner_precision = refiner_precision or spec.refiner_precision
        self.model_dir: ModelDir | None = ModelDir.open(model_dir)
        ref_precision = refiner_precision or refiner_precision_for(backend, precision)
        # Compiled once per Session; every click reuses them (and their inference requests).
        segmentor, refiner = (
            compile_model(self.model_dir.graph_file(role, backend, p), backend, p, threads)
            for role, p in (("segmentor", precision), ("refiner", ref_precision))
        )
        self._setup(self.model_dir.variant, self.model_dir.preprocessing, segmentor, refiner, backend, precision,
                    self.model_dir.pipeline)
        self.working_resolution, self.working_mp = bool(working_resolution), float(working_mp)
        self.refiner_precision = ref_precision
        self.load_ms = (time.perf_counter() - t0) * 1e3

    @classmethod
    def open(cls, model_dir: str | Path, backend: str = "onnxruntime", precision: str = "fp32",
             threads: int | None = None, refiner_precision: str | None = None, working_resolution: bool = False,
             working_mp: float = WORKING_MP) -> Session:
        """The convenience path: graphs, sizes and pipeline config from an exported model directory
        (the same as ``Session(model_dir, ...)``)."""
        return cls(model_dir, backend=backend, precision=precision, threads=threads,
                   refiner_precision=refiner_precision, working_resolution=working_resolution, working_mp=working_mp)

    @classmethod
    def from_graphs(
        cls,
        variant: str,
        preprocessing: dict,
        segmentor: CompiledModel,
        refiner: CompiledModel,
        backend: str,
        precision: str,
        pipeline: PipelineConfig = OFFICIAL_PIPELINE,
    ) -> Session:
        """The core constructor: a Session over compiled graphs (``run(feeds)``) with the sizes of
        ``preprocessing`` (a card's section, or ``Variant.runtime_sizes()``) and the ``pipeline``
        constants; no model directory. Used for our PyTorch modules (training validation, the
        benchmark's reference); ``Session(model_dir)`` / ``Session.open`` build the graphs from a card."""
        self = cls.__new__(cls)
        self.model_dir = None
        self._setup(variant, preprocessing, segmentor, refiner, backend, precision, pipeline)
        self.working_resolution, self.working_mp = False, WORKING_MP  # reference sessions: always full resolution
        self.refiner_precision = precision
        self.load_ms = 0.0
        return self

    def _setup(self, variant: str, preprocessing: dict, segmentor: CompiledModel, refiner: CompiledModel,
               backend: str, precision: str, pipeline: PipelineConfig) -> None:
        self.variant = variant
        self.pipeline = pipeline
        self.backend, self.precision = backend, precision
        self.net_size = int(preprocessing["net_input_size"])
        # Size of the Segmentor graph's inputs. Current exports take the backbone size (S1: 128) and
        # leave the official 256 -> 128 input resize and the logits upsampling to this class; model
        # directories written before that (no key) hold graphs that take the 256 crop and return 256 logits.
        self.feed_size = int(preprocessing.get("segmentor_feed_size", self.net_size))
        self.ref_size = int(preprocessing["refiner_input_size"])
        self.seg_radius = float(preprocessing["segmentor_disk_radius"])
        self.ref_radius = float(preprocessing["refiner_disk_radius"])
        self.feature_size = int(preprocessing["feature_size"])
        self._segmentor, self._refiner = segmentor, refiner
        self._image: np.ndarray | None = None  # (3, h, w) uint8, channels first (scaled by 1/255 per crop)
        self._full_hw: tuple[int, int] | None = None  # (H, W) of the user's image; (h, w) differs when scaled
        self._state = _State()
        self._history: list[_State] = []

    # ----------------------------------------------------------------------------------- per image
    def set_image(self, image: np.ndarray) -> None:
        rgb = to_rgb_uint8(image)
        self._full_hw = (int(rgb.shape[0]), int(rgb.shape[1]))
        work_hw = self._working_hw(self._full_hw)
        if work_hw != self._full_hw:  # area averaging: every full-resolution pixel counts once
            rgb = _cv2().resize(rgb, (work_hw[1], work_hw[0]), interpolation=_cv2().INTER_AREA)
        # Channels first, once per image: the per-click crops then resize each plane straight into its
        # slot of the (1, C, S, S) network inputs (3x faster than resizing HWC and transposing). Kept as
        # uint8 (a quarter of a float copy); each crop scales the rows it reads by 1/255, which gives the
        # same float32 values as scaling the whole image.
        self._image = _channels_first(rgb)
        self.reset()

    def set_mask(self, mask: np.ndarray) -> None:
        """Start from an existing mask: it becomes the previous mask, and every click is then
        written back with Progressive Merge (only the changed region at the click is updated)."""
        img = self._require_image()
        mask = np.asarray(mask)
        if mask.ndim == 3:
            mask = mask[..., 0]
        full_hw = self._full_hw or img.shape[1:]
        if mask.shape != tuple(full_hw):
            raise UserError(
                f"initial mask is {mask.shape[0]}x{mask.shape[1]} but the image is {full_hw[0]}x{full_hw[1]}"
            )
        binary = mask > (0.5 if mask.dtype.kind == "f" else 0)
        if not binary.any():
            raise UserError("initial mask is empty; start from scratch (no --init-mask) or pass a non-empty mask")
        self.reset()
        if tuple(img.shape[1:]) != tuple(full_hw):  # working resolution: the mask at the working size
            self._state.full_mask = TiledMap.from_array(binary)
            area = _cv2().resize(binary.view(np.uint8) * np.float32(1.0), (img.shape[2], img.shape[1]),
                                 interpolation=_cv2().INTER_AREA)
            binary = area > 0.5
            if not binary.any():
                raise UserError("initial mask is too small for the working resolution; pass "
                                "working_resolution=False (CLI: --no-working-resolution)")
        self._state.prev_prob = TiledMap.from_array(binary.astype(np.float32))
        self._state.zoom_prev = self._state.prev_prob
        self._state.merged = TiledMap.from_array(binary)

    def reset(self) -> None:
        img = self._require_image()
        self._state = _State(prev_prob=TiledMap.zeros(img.shape[1:], np.float32))
        self._history.clear()

    def undo(self) -> ClickResult | None:
        """Drop the last click; returns the result now current (None when no click is left)."""
        if not self._history:
            raise UserError("nothing to undo: no click has been added since set_image / set_mask")
        self._state = self._history.pop()
        return self._state.result

    @property
    def clicks(self) -> list[tuple[int, int, bool]]:
        """Clicks so far as (x, y, positive)."""
        return list(self._state.clicks)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(height, width) of the current image, None before ``set_image``."""
        if self._image is None:
            return None
        return self._full_hw or (int(self._image.shape[1]), int(self._image.shape[2]))

    @property
    def working_size(self) -> tuple[int, int] | None:
        """(height, width) the pipeline runs at: ``image_size``, or smaller under working resolution."""
        return None if self._image is None else (int(self._image.shape[1]), int(self._image.shape[2]))

    def _working_hw(self, full_hw: tuple[int, int]) -> tuple[int, int]:
        h, w = full_hw
        if not getattr(self, "working_resolution", False) or h * w <= self.working_mp * 1e6:
            return full_hw
        f = (self.working_mp * 1e6 / (h * w)) ** 0.5
        return max(1, round(h * f)), max(1, round(w * f))

    def _scaled(self) -> bool:
        return self._full_hw is not None and self._full_hw != tuple(self._image.shape[1:])

    def _to_work(self, x: int, y: int) -> tuple[int, int]:
        """A click's (x, y) in the working image (pixel centres mapped, as the downscale maps them)."""
        if not self._scaled():
            return x, y
        (fh, fw), (h, w) = self._full_hw, self._image.shape[1:]
        return min(int((x + 0.5) * w / fw), w - 1), min(int((y + 0.5) * h / fh), h - 1)

    @property
    def result(self) -> ClickResult | None:
        """The result of the last click (None after set_image / set_mask / reset)."""
        return self._state.result

    def snapshot(self) -> SessionSnapshot:
        """The per-image state after the clicks so far, to ``restore`` later (e.g. a cache keyed by click
        prefix, or a preview click that must leave the session as it was). Cheap: click states are never
        modified in place, so a snapshot only holds references."""
        return SessionSnapshot(self._image, self._state, tuple(self._history), self._full_hw)

    def restore(self, snap: SessionSnapshot) -> None:
        """Return to a state taken by ``snapshot`` on this Session or on one sharing its graphs."""
        self._image, self._state, self._history = snap.image, snap.state, list(snap.history)
        self._full_hw = snap.full_hw

    def spawn(self) -> Session:
        """A new Session with no image over the same compiled graphs (no recompilation). Each Session
        keeps its own state and input buffers; running two at once is safe only where the backend's
        graphs are (callers serialise ``add_click`` per graph, e.g. with a lock or a pool)."""
        other = Session.__new__(Session)
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("_buffers", "_observers")})
        other._image, other._state, other._history, other._full_hw = None, _State(), [], None
        return other

    def _require_image(self) -> np.ndarray:
        if self._image is None:
            raise UserError("call set_image(image) before adding clicks or masks")
        return self._image

    def _buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 network-input buffer, allocated once and reused by every click.

        Safe because both backends consume their inputs synchronously inside ``run``. Created lazily
        (not in ``__init__``) so that subclasses which bypass ``__init__`` still work.
        """
        bufs = self.__dict__.setdefault("_buffers", {})
        buf = bufs.get(name)
        if buf is None or buf.shape != shape:
            buf = bufs[name] = np.empty(shape, np.float32)
        return buf

    # ----------------------------------------------------------------------------------- observers
    def add_feed_observer(self, observer: FeedObserver) -> Callable[[], None]:
        """Call ``observer(role, feeds)`` before every graph run (``role``: "segmentor" / "refiner"), e.g.
        to record INT8 calibration inputs. ``feeds`` are the session's reused input buffers: copy what
        you keep. Returns a function that removes the observer again. Spawned sessions start without."""
        observers = self.__dict__.setdefault("_observers", [])
        observers.append(observer)

        def remove() -> None:
            if observer in observers:
                observers.remove(observer)

        return remove

    def _run_graph(self, role: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        for observer in self.__dict__.get("_observers", ()):
            observer(role, feeds)
        return (self._segmentor if role == "segmentor" else self._refiner).run(feeds)

    # ----------------------------------------------------------------------------------- per click
    def add_click(self, x: int, y: int, positive: bool = True) -> ClickResult:
        """One click at pixel (x, y): the stages below in order, each timed (``ClickResult.timings``)."""
        img = self._require_image()
        check_click(x, y, self._full_hw or img.shape[1:])
        prev = self._state
        if prev.result is not None:
            prev.result._drop_cache()  # the history keeps tiles, not full-image copies
        st = _State(
            clicks=prev.clicks + [(int(x), int(y), bool(positive))],
            prev_prob=prev.prev_prob, zoom_prev=prev.zoom_prev, object_roi=prev.object_roi, merged=prev.merged,
            full_mask=prev.full_mask,
        )
        clock = _StageClock()
        target = self._target_crop(img, st)
        clock.lap("preprocess")
        coarse, feature = self._segment(target)
        clock.lap("segmentor")
        focus = self._focus_crop(img, st, target, coarse, feature)
        clock.lap("focus_crop")
        refined = self._refine(focus)
        clock.lap("refiner")
        mask = self._paste_and_merge(st, target, focus, refined)
        if self._scaled():
            mask = self._full_resolution_mask(st, mask, target, focus)
        clock.lap("merge")
        st.result = ClickResult(st.prev_prob, *mask, timings=clock.timings(), target_box=target.global_roi,
                                focus_box=focus.box, full_hw=self._full_hw if self._scaled() else None)
        self._history.append(prev)
        self._state = st
        release_replaced(prev.maps(), st.maps())
        return st.result

    def _target_crop(self, img: np.ndarray, st: _State) -> _TargetCrop:
        """Target Crop (official Zoom-In: no crop on the first ``target_skip_clicks``; recomputed every later
        click) and the Segmentor's inputs. Updates the state's (possibly stale) object box."""
        cfg = self.pipeline
        h, w = img.shape[1:]
        clicks_yx = np.array([(wy, wx, 1.0 if cp else 0.0) for (wx, wy), (_, _, cp) in
                              zip((self._to_work(cx, cy) for cx, cy, _ in st.clicks), st.clicks, strict=True)],
                             np.float64)
        crop = None
        if len(st.clicks) > cfg.target_skip_clicks and st.zoom_prev is not None:
            thresh = None if st.zoom_prev.dtype == np.bool_ else cfg.target_prob_thresh
            bbox = st.zoom_prev.bbox(thresh)[1]  # from the tiles' memoised boxes, not a full-image pass
            crop = crop_rules.zoom_in_box_from_bbox(bbox, clicks_yx, (h, w), cfg)
            if crop is not None:
                st.object_roi = crop
        input_box = crop if crop is not None else (0, h - 1, 0, w - 1)
        global_roi = crop_rules.zoom_in_global_roi(st.object_roi, (h, w))
        feeds = self._segmentor_feeds(img, st.prev_prob, input_box, clicks_yx)
        return _TargetCrop(clicks_yx, input_box, global_roi, feeds)

    def _segmentor_feeds(self, img: np.ndarray, prev_prob: TiledMap, input_box: tuple[int, int, int, int],
                         clicks: np.ndarray) -> dict[str, np.ndarray]:
        """The Segmentor's inputs for the inclusive ``input_box`` (into reused buffers); ``clicks`` are
        ``(y, x, positive)`` rows in image pixels."""
        y1, y2, x1, x2 = input_box[0], input_box[1] + 1, input_box[2], input_box[3] + 1
        n, s = self.net_size, self.feed_size
        image_nd = self._buffer("image_nd", (1, 4, s, s))
        pts = crop_rules.map_clicks_to_crop(clicks, input_box, n)
        net_points = np.concatenate([pts, clicks[:, 2:3]], axis=1)
        click_maps = self._buffer("click_maps", (1, 2, s, s))
        box = (y1, y2, x1, x2)
        prev_rows = BoxRows(prev_prob, box)
        if s == n:
            rs.crop_resize_align_corners(img, box, (n, n), out=image_nd[0, :3], channels_first=True, scale=_U8)
            rs.resize_rows_source(prev_rows, (n, n), out=image_nd[0, 3])
            crop_rules.click_disks(net_points, (n, n), self.seg_radius, out=click_maps[0])
        else:  # the official crop at n, then the network's own resize to s, as one filter
            rs.crop_resize_twice_align_corners(img, box, (n, n), (s, s), out=image_nd[0, :3], scale=_U8)
            rs.resize_rows_source(prev_rows, (s, s), out=image_nd[0, 3], mid_hw=(n, n))
            disks = self._buffer("click_maps_net", (2, n, n))
            crop_rules.click_disks(net_points, (n, n), self.seg_radius, out=disks)
            rs.resize_sparse_align_corners(disks, (s, s), out=click_maps[0])
        return {"image_nd": image_nd, "click_maps": click_maps}

    def _segment(self, target: _TargetCrop) -> tuple[np.ndarray, np.ndarray]:
        """The Segmentor graph: coarse logits at the net size, and the feature map.

        Outputs may be views of backend-owned memory (OpenVINO): valid until this graph runs again, i.e.
        for the rest of this click, and nothing below keeps a reference past it."""
        coarse, feature = self._run_graph("segmentor", target.feeds)
        return self._logits_at_net_size(coarse), feature

    def _logits_at_net_size(self, coarse: np.ndarray) -> np.ndarray:
        """The official logits upsampling (align_corners=True) to the net size, unless the graph did it."""
        n = self.net_size
        if coarse.shape[-2:] == (n, n):
            return coarse
        out = self._buffer("coarse_logits_net", (1, 1, n, n))
        rs.resize_bilinear_align_corners(coarse[0, 0], (n, n), out=out[0, 0])
        return out

    def _focus_crop(self, img: np.ndarray, st: _State, target: _TargetCrop, coarse256: np.ndarray,
                    feature: np.ndarray) -> _FocusCrop:
        """Inverse Zoom-In of the coarse map, the Focus Crop box, and the Refiner's inputs (RoIAlign)."""
        cfg = self.pipeline
        h, w = img.shape[1:]
        n = self.net_size
        input_box, global_roi, clicks_yx = target.input_box, target.global_roi, target.clicks_yx
        # Probabilities back to the input crop, then into the (possibly stale) box. The official map is
        # zero outside global_roi (the box), so its logits are -inf there; both maps are kept only
        # inside the box, which is exact: nothing outside can pass a threshold.
        gy1, gy2, gx1, gx2 = global_roi
        in_hw = (input_box[1] + 1 - input_box[0], input_box[3] + 1 - input_box[2])
        # Resized to the input crop, then to the box when they differ -- evaluated per tile, only where a
        # tile's values are needed: thresholds that the source values decide cost nothing (a large photo's
        # box is millions of pixels, almost all far from 0.5).
        chain = rs.ResizeChain(_sigmoid(coarse256[0, 0]), [in_hw, (gy2 - gy1, gx2 - gx1)])
        prob_in = TiledMap.zeros((h, w)).with_lazy_box(global_roi, chain.window, chain.bounds, outside="zero",
                                                       sample=chain.sample, bounds_grid=chain.bounds_grid)
        wx, wy = self._to_work(st.clicks[-1][0], st.clicks[-1][1])
        click_yx = (wy, wx)
        # Both masks are False outside global_roi + the previous mask's box (+ the click): the Focus
        # Crop rules run on that window only, with the same result as on the whole image.
        prev_box = st.prev_prob.bbox(cfg.focus_prev_thresh)[1]
        window = crop_rules.union_box(
            global_roi, None if prev_box is None else (prev_box[0], prev_box[1] + 1, prev_box[2], prev_box[3] + 1),
            (click_yx[0], click_yx[0] + 1, click_yx[1], click_yx[1] + 1))
        cut = _logit_cut(cfg.focus_logit_thresh)  # logit(p) > t exactly where p > cut
        if cut is not None:
            # Per-tile statistics and a XOR written only where the masks' tiles differ: no dense pass over
            # a photo-sized window.
            diff_w = (None if prev_box is None
                      else prob_in.xor_read(st.prev_prob, window, cut, cfg.focus_prev_thresh))
            box = crop_rules.focus_crop_box_from_diff(diff_w, window, (h, w), global_roi, click_yx, cfg,
                                                      prob_in.bbox(cut))
        else:
            pred_w = _logit(prob_in.read(window)) > np.float32(cfg.focus_logit_thresh)
            prev_w = st.prev_prob.read(window, cfg.focus_prev_thresh)
            box = crop_rules.focus_crop_box_in_window(pred_w, prev_w, window, (h, w), global_roi, click_yx, cfg)
        roi = crop_rules.focus_roi_in_target_frame(box, global_roi, n)
        r = self.ref_size
        image_focus = self._buffer("image_focus", (1, 3, r, r))
        rs.crop_resize_align_corners(img, box, (r, r), out=image_focus[0], channels_first=True, scale=_U8)
        fpts = crop_rules.map_clicks_to_focus(clicks_yx, box, r)
        ref_points = np.concatenate([fpts, clicks_yx[:, 2:3]], axis=1)
        click_focus = self._buffer("click_maps_focus", (1, 2, r, r))
        crop_rules.click_disks(ref_points, (r, r), self.ref_radius, out=click_focus[0])
        fs = self.feature_size
        cropped_feature = roi_align_aligned(feature[0], roi, (fs, fs), fs / n)[None]
        cropped_logits = roi_align_aligned(coarse256[0], roi, (r, r), 1.0)[None]
        feeds = {
            "image_focus": image_focus,
            "click_maps_focus": click_focus,
            "cropped_feature": np.ascontiguousarray(cropped_feature, dtype=np.float32),
            "cropped_logits": np.ascontiguousarray(cropped_logits, dtype=np.float32),
        }
        return _FocusCrop(box, click_yx, prob_in, feeds)

    def _refine(self, focus: _FocusCrop) -> np.ndarray:
        """The Refiner graph: refined logits of the Focus Crop."""
        (refined,) = self._run_graph("refiner", focus.feeds)
        return refined

    def _paste_and_merge(self, st: _State, target: _TargetCrop, focus: _FocusCrop, refined: np.ndarray
                         ) -> tuple[TiledMap, float | None]:
        """Paste-back, sigmoid, and the mask (Progressive Merge in initial-mask mode); updates the state
        and returns the mask as (map, threshold) for ``ClickResult``.

        Only the changed box is computed. Before click ``keep_prev_after + 1`` the official map is
        ``sigmoid(-inf) = 0`` outside global_roi, so the new map is the box and zeros. From then on the
        official predictor keeps the previous map outside the focus box, round-tripped through
        logit/sigmoid over the whole image (which moves values by ulps): the new map is the focus box and
        the previous map's tiles marked "round-tripped once more", computed lazily and only where read
        (thresholds skip it where provably unchanged: tiled_map.UNSTABLE_BANDS). Bit-identical to the
        full-image computation (tests/test_session_box_local.py)."""
        cfg = self.pipeline
        fy1, fy2, fx1, fx2 = focus.box
        # sigmoid(refined logits resized to the focus box), per tile where read (a copy: the backend may
        # reuse its output buffer on the next call).
        chain = rs.ResizeChain(np.array(refined[0, 0], np.float32), [(fy2 - fy1, fx2 - fx1)])

        def values(rows: np.ndarray, c1: int, c2: int) -> np.ndarray:
            v = chain.window(rows, c1, c2)
            return _sigmoid(v, out=v)

        def sample(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            v = chain.sample(rows, cols)
            return _sigmoid(v, out=v)

        def bounds(r1: int, r2: int, c1: int, c2: int) -> tuple[float, float]:
            lo, hi = chain.bounds(r1, r2, c1, c2)
            return _sigmoid64(lo), _sigmoid64(hi)

        def bounds_grid(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            lo, hi = chain.bounds_grid(rows, cols)
            return _sigmoid64_array(lo), _sigmoid64_array(hi)

        # Before click keep_prev_after + 1, the official map: sigmoid of the coarse logits (logit of
        # prob_in: a round trip of prob_in, kept lazy) with the refined logits pasted into the focus box;
        # zero outside global_roi.
        base = st.prev_prob if len(st.clicks) > cfg.keep_prev_after else focus.prob_in
        prob = base.with_lazy_box(focus.box, values, bounds, outside="roundtrip", sample=sample,
                                  bounds_grid=bounds_grid)
        st.prev_prob = prob
        st.zoom_prev = prob
        paper = cfg.progressive_merge == "paper"
        if st.merged is None:
            if paper and len(st.clicks) == cfg.keep_prev_after:
                # From scratch the paper merges from the next click on, into this click's mask.
                st.merged = TiledMap.from_array(prob.mask(cfg.mask_thresh))
            return prob, cfg.mask_thresh
        # Both masks are False outside their boxes (+ the click): merge in that window only.
        cy, cx = focus.click_yx
        boxes = [b for b in (prob.bbox(cfg.mask_thresh)[1], st.merged.bbox(None)[1]) if b is not None]
        window = crop_rules.union_box(*[(b[0], b[1] + 1, b[2], b[3] + 1) for b in boxes], (cy, cy + 1, cx, cx + 1))
        pred_w, prev_w = prob.read(window, cfg.mask_thresh), st.merged.read(window, None)
        if paper:
            merged_w, flood = crop_rules.paper_merge_in_window(pred_w, prev_w, window, focus.click_yx), False
        else:
            merged_w, flood = crop_rules.progressive_merge_in_window(pred_w, prev_w, window, focus.click_yx)
        st.merged = (st.merged.filled_outside(window, merged_w) if flood
                     else st.merged.with_box(window, merged_w, outside="zero"))
        st.zoom_prev = st.merged
        return st.merged, None

    def _full_resolution_mask(self, st: _State, mask: tuple[TiledMap, float | None], target: _TargetCrop,
                              focus: _FocusCrop) -> tuple[TiledMap, None]:
        """Working resolution: the full-resolution mask, updated only inside the box this click changed
        (Target Crop up to click ``keep_prev_after``, where the map is zero outside it; the Focus Crop
        after), from the working logits (or the merged mask) upsampled bilinearly; kept elsewhere."""
        src, thresh = mask
        if st.merged is not None:
            box, outside = (0, src.shape[0], 0, src.shape[1]), "zero"
        elif len(st.clicks) > self.pipeline.keep_prev_after:
            box, outside = focus.box, "keep"
        else:
            box, outside = target.global_roi, "zero"
        (fh, fw), (h, w) = self._full_hw, src.shape
        sy, sx = fh / h, fw / w
        m = 2  # working pixels of margin: cv2.resize's border replication never reaches what is written
        c = (max(box[0] - m, 0), min(box[1] + m, h), max(box[2] - m, 0), min(box[3] + m, w))
        crop = src.read(c)
        if thresh is None:  # a bool mask: +-1 around its 0.5 level
            signed = crop.astype(np.float32) - np.float32(0.5)
        else:
            signed = _logit(np.clip(crop, np.float32(1e-6), np.float32(1 - 1e-6)))
        f = (round(c[0] * sy), round(c[1] * sy), round(c[2] * sx), round(c[3] * sx))
        up = _cv2().resize(signed, (f[3] - f[2], f[1] - f[0]), interpolation=_cv2().INTER_LINEAR) > 0
        inner = (f[0] if c[0] == 0 else round((box[0] - 1) * sy), f[1] if c[1] == h else round((box[1] + 1) * sy),
                 f[2] if c[2] == 0 else round((box[2] - 1) * sx), f[3] if c[3] == w else round((box[3] + 1) * sx))
        inner = (max(inner[0], f[0]), min(inner[1], f[1]), max(inner[2], f[2]), min(inner[3], f[3]))
        values = up[inner[0] - f[0]:inner[1] - f[0], inner[2] - f[2]:inner[3] - f[2]]
        base = st.full_mask or TiledMap.zeros((fh, fw), np.bool_)
        st.full_mask = base.with_box(inner, values, outside=outside)
        return st.full_mask, None


def _cv2():
    from .crop_rules import cv2

    return cv2


def _channels_first(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> a C-contiguous ``(3, H, W)`` copy. OpenCV's channel extraction into each plane
    is twice as fast as NumPy's transposed copy (48 MP, AMX Xeon: 79 vs 163 ms), the same bytes."""
    out = np.empty((rgb.shape[2], rgb.shape[0], rgb.shape[1]), np.uint8)
    src = np.ascontiguousarray(rgb)
    for c in range(rgb.shape[2]):
        _cv2().extractChannel(src, c, dst=out[c])
    return out
