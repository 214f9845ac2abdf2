"""The full-image Session as it was before per-click work became box-local, kept verbatim as the reference
the box-local Session is checked against bit for bit (tests/test_session_box_local.py)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from focalclick_edge.errors import UserError
from focalclick_edge.runtime import crop_rules
from focalclick_edge.runtime import resize as rs
from focalclick_edge.runtime.backends import CompiledModel, compile_model
from focalclick_edge.runtime.images import to_rgb_uint8
from focalclick_edge.runtime.model_dir import ModelDir
from focalclick_edge.runtime.pipeline_config import OFFICIAL_PIPELINE, PipelineConfig
from focalclick_edge.runtime.roi_align import roi_align_aligned
from focalclick_edge.runtime.runs import refiner_precision_for

STAGES = ("preprocess", "segmentor", "focus_crop", "refiner", "merge", "total")


@dataclass
class ClickResult:
    prob: np.ndarray  # float32 HxW: the predictor's probability map
    mask: np.ndarray  # bool HxW: prob > 0.5, or the Progressive-Merge mask when an initial mask was set
    timings: dict[str, float]  # stage -> milliseconds
    target_box: tuple[int, int, int, int] = (0, 0, 0, 0)  # global_roi (y1, y2, x1, x2), exclusive
    focus_box: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass
class _State:
    clicks: list[tuple[int, int, bool]] = field(default_factory=list)  # (x, y, positive)
    prev_prob: np.ndarray | None = None
    zoom_prev: np.ndarray | None = None  # what Zoom-In thresholds: prev probs, or the merged mask
    object_roi: tuple[int, int, int, int] | None = None  # inclusive, kept stale like the official ZoomIn
    merged: np.ndarray | None = None  # Progressive-Merge mask (initial-mask mode only)
    result: ClickResult | None = None


@dataclass(frozen=True)
class SessionSnapshot:
    """Opaque per-image state of a Session (see ``Session.snapshot``)."""

    image: np.ndarray | None
    state: _State
    history: tuple[_State, ...]

    @property
    def nbytes(self) -> int:
        """Bytes held by this snapshot's arrays, each array counted once (for byte-bounded caches)."""
        seen: dict[int, int] = {}
        arrays = [self.image]
        for st in (self.state, *self.history):
            arrays += [st.prev_prob, st.zoom_prev, st.merged]
            if st.result is not None:
                arrays += [st.result.prob, st.result.mask]
        for a in arrays:
            if a is not None:
                seen[id(a)] = a.nbytes
        return sum(seen.values())


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


def _logit(p: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` in float32 (``p`` = 0 gives ``-inf``) into a new array, without temporaries."""
    out = np.subtract(np.float32(1.0), p)
    with np.errstate(divide="ignore"):
        np.divide(p, out, out=out)
        return np.log(out, out=out)


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
    logit_box: np.ndarray  # coarse logits inside global_roi (pasted into in place)
    feeds: dict[str, np.ndarray]


class FullImageSession:
    """Interactive segmentation of one image at a time with an exported model directory."""

    def __init__(
        self,
        model_dir: str | Path,
        backend: str = "onnxruntime",
        precision: str = "fp32",
        threads: int | None = None,
        refiner_precision: str | None = None,
    ) -> None:
        """``refiner_precision`` overrides the Refiner graph's precision (default: the run table's pairing,
        runtime/runs.py). The crop / threshold constants come from the card (``ModelDir.pipeline``)."""
        t0 = time.perf_counter()
        self.model_dir: ModelDir | None = ModelDir.open(model_dir)
        ref_precision = refiner_precision or refiner_precision_for(backend, precision)
        # Compiled once per Session; every click reuses them (and their inference requests).
        segmentor, refiner = (
            compile_model(self.model_dir.graph_file(role, backend, p), backend, p, threads)
            for role, p in (("segmentor", precision), ("refiner", ref_precision))
        )
        self._setup(self.model_dir.variant, self.model_dir.preprocessing, segmentor, refiner, backend, precision,
                    self.model_dir.pipeline)
        self.refiner_precision = ref_precision
        self.load_ms = (time.perf_counter() - t0) * 1e3

    @classmethod
    def open(cls, model_dir: str | Path, backend: str = "onnxruntime", precision: str = "fp32",
             threads: int | None = None, refiner_precision: str | None = None) -> FullImageSession:
        """The convenience path: graphs, sizes and pipeline config from an exported model directory
        (the same as ``Session(model_dir, ...)``)."""
        return cls(model_dir, backend=backend, precision=precision, threads=threads,
                   refiner_precision=refiner_precision)

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
    ) -> FullImageSession:
        """The core constructor: a Session over compiled graphs (``run(feeds)``) with the sizes of
        ``preprocessing`` (a card's section, or ``Variant.runtime_sizes()``) and the ``pipeline``
        constants; no model directory. Used for our PyTorch modules (training validation, the
        benchmark's reference); ``Session(model_dir)`` / ``Session.open`` build the graphs from a card."""
        self = cls.__new__(cls)
        self.model_dir = None
        self._setup(variant, preprocessing, segmentor, refiner, backend, precision, pipeline)
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
        self._image: np.ndarray | None = None  # (3, H, W) float32 in [0, 1], channels first
        self._state = _State()
        self._history: list[_State] = []

    # ----------------------------------------------------------------------------------- per image
    def set_image(self, image: np.ndarray) -> None:
        rgb = to_rgb_uint8(image)
        # Channels first, once per image: the per-click crops then resize each plane straight into its
        # slot of the (1, C, S, S) network inputs (3x faster than resizing HWC and transposing).
        planar = np.empty((3, *rgb.shape[:2]), np.float32)
        np.multiply(rgb.transpose(2, 0, 1), np.float32(1.0 / 255.0), out=planar)
        self._image = planar
        self.reset()

    def set_mask(self, mask: np.ndarray) -> None:
        """Start from an existing mask: it becomes the previous mask, and every click is then
        written back with Progressive Merge (only the changed region at the click is updated)."""
        img = self._require_image()
        mask = np.asarray(mask)
        if mask.ndim == 3:
            mask = mask[..., 0]
        if mask.shape != img.shape[1:]:
            raise UserError(
                f"initial mask is {mask.shape[0]}x{mask.shape[1]} but the image is {img.shape[1]}x{img.shape[2]}"
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
        self._state = _State(prev_prob=np.zeros(img.shape[1:], np.float32))
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
        return None if self._image is None else (int(self._image.shape[1]), int(self._image.shape[2]))

    @property
    def result(self) -> ClickResult | None:
        """The result of the last click (None after set_image / set_mask / reset)."""
        return self._state.result

    def snapshot(self) -> SessionSnapshot:
        """The per-image state after the clicks so far, to ``restore`` later (e.g. a cache keyed by click
        prefix, or a preview click that must leave the session as it was). Cheap: click states are never
        modified in place, so a snapshot only holds references."""
        return SessionSnapshot(self._image, self._state, tuple(self._history))

    def restore(self, snap: SessionSnapshot) -> None:
        """Return to a state taken by ``snapshot`` on this Session or on one sharing its graphs."""
        self._image, self._state, self._history = snap.image, snap.state, list(snap.history)

    def spawn(self) -> FullImageSession:
        """A new Session with no image over the same compiled graphs (no recompilation). Each Session
        keeps its own state and input buffers; running two at once is safe only where the backend's
        graphs are (callers serialise ``add_click`` per graph, e.g. with a lock or a pool)."""
        other = FullImageSession.__new__(FullImageSession)
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("_buffers", "_observers")})
        other._image, other._state, other._history = None, _State(), []
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
        h, w = img.shape[1:]
        if not (0 <= int(x) < w and 0 <= int(y) < h) or int(x) != x or int(y) != y:
            raise UserError(f"click ({x}, {y}) is outside the {w}x{h} image; x must be in [0, {w - 1}], "
                            f"y in [0, {h - 1}] (integers)")
        prev = self._state
        st = _State(
            clicks=prev.clicks + [(int(x), int(y), bool(positive))],
            prev_prob=prev.prev_prob, zoom_prev=prev.zoom_prev, object_roi=prev.object_roi, merged=prev.merged,
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
        clock.lap("merge")
        st.result = ClickResult(prob=st.prev_prob, mask=mask, timings=clock.timings(), target_box=target.global_roi,
                                focus_box=focus.box)
        self._history.append(prev)
        self._state = st
        return st.result

    def _target_crop(self, img: np.ndarray, st: _State) -> _TargetCrop:
        """Target Crop (official Zoom-In: no crop on the first ``target_skip_clicks``; recomputed every later
        click) and the Segmentor's inputs. Updates the state's (possibly stale) object box."""
        cfg = self.pipeline
        h, w = img.shape[1:]
        clicks_yx = np.array([(cy, cx, 1.0 if cp else 0.0) for cx, cy, cp in st.clicks], np.float64)
        crop = None
        if len(st.clicks) > cfg.target_skip_clicks and st.zoom_prev is not None:
            crop = crop_rules.zoom_in_box(st.zoom_prev, clicks_yx, (h, w), cfg)
            if crop is not None:
                st.object_roi = crop
        input_box = crop if crop is not None else (0, h - 1, 0, w - 1)
        global_roi = crop_rules.zoom_in_global_roi(st.object_roi, (h, w))
        feeds = self._segmentor_feeds(img, st.prev_prob, input_box, clicks_yx)
        return _TargetCrop(clicks_yx, input_box, global_roi, feeds)

    def _segmentor_feeds(self, img: np.ndarray, prev_prob: np.ndarray, input_box: tuple[int, int, int, int],
                         clicks: np.ndarray) -> dict[str, np.ndarray]:
        """The Segmentor's inputs for the inclusive ``input_box`` (into reused buffers); ``clicks`` are
        ``(y, x, positive)`` rows in image pixels."""
        y1, y2, x1, x2 = input_box[0], input_box[1] + 1, input_box[2], input_box[3] + 1
        n, s = self.net_size, self.feed_size
        image_nd = self._buffer("image_nd", (1, 4, s, s))
        pts = crop_rules.map_clicks_to_crop(clicks, input_box, n)
        net_points = np.concatenate([pts, clicks[:, 2:3]], axis=1)
        click_maps = self._buffer("click_maps", (1, 2, s, s))
        if s == n:
            rs.crop_resize_align_corners(img, (y1, y2, x1, x2), (n, n), out=image_nd[0, :3], channels_first=True)
            rs.crop_resize_align_corners(prev_prob, (y1, y2, x1, x2), (n, n), out=image_nd[0, 3])
            crop_rules.click_disks(net_points, (n, n), self.seg_radius, out=click_maps[0])
        else:  # the official crop at n, then the network's own resize to s, as one filter
            box = (y1, y2, x1, x2)
            rs.crop_resize_twice_align_corners(img, box, (n, n), (s, s), out=image_nd[0, :3])
            rs.crop_resize_twice_align_corners(prev_prob[None], box, (n, n), (s, s), out=image_nd[0, 3:])
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
        prob_in = rs.resize_bilinear_align_corners(_sigmoid(coarse256[0, 0]), in_hw)
        if prob_in.shape != (gy2 - gy1, gx2 - gx1):
            prob_in = rs.resize_bilinear_align_corners(prob_in, (gy2 - gy1, gx2 - gx1))
        logit_box = _logit(prob_in)  # coarse logits inside global_roi
        click_yx = (st.clicks[-1][1], st.clicks[-1][0])
        pred = np.zeros((h, w), np.bool_)
        np.greater(logit_box, cfg.focus_logit_thresh, out=pred[gy1:gy2, gx1:gx2])
        box = crop_rules.focus_crop_box_from_masks(pred, st.prev_prob > cfg.focus_prev_thresh, global_roi,
                                                   click_yx, cfg)
        roi = crop_rules.focus_roi_in_target_frame(box, global_roi, n)
        r = self.ref_size
        image_focus = self._buffer("image_focus", (1, 3, r, r))
        rs.crop_resize_align_corners(img, box, (r, r), out=image_focus[0], channels_first=True)
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
        return _FocusCrop(box, click_yx, logit_box, feeds)

    def _refine(self, focus: _FocusCrop) -> np.ndarray:
        """The Refiner graph: refined logits of the Focus Crop."""
        (refined,) = self._run_graph("refiner", focus.feeds)
        return refined

    def _paste_and_merge(self, st: _State, target: _TargetCrop, focus: _FocusCrop, refined: np.ndarray) -> np.ndarray:
        """Paste-back, sigmoid, and the mask (Progressive Merge in initial-mask mode); updates the state.

        From click ``keep_prev_after + 1`` on the official predictor keeps the previous map outside the
        focus box, round-tripped through logit/sigmoid over the whole image; that is kept as is (the
        round trip moves values by ulps). Before that, the map outside global_roi is sigmoid(-inf) = 0
        exactly, so only the box is computed."""
        cfg = self.pipeline
        h, w = st.prev_prob.shape
        gy1, gy2, gx1, gx2 = target.global_roi
        fy1, fy2, fx1, fx2 = focus.box
        logit_box = focus.logit_box
        if len(st.clicks) > cfg.keep_prev_after:
            full_logit = _logit(st.prev_prob)
            rs.paste_resized(full_logit, refined[0, 0], focus.box)
            prob = _sigmoid(full_logit, out=full_logit)
        else:
            rs.paste_resized(logit_box, refined[0, 0], (fy1 - gy1, fy2 - gy1, fx1 - gx1, fx2 - gx1))
            if logit_box.shape == (h, w):
                prob = _sigmoid(logit_box, out=logit_box)
            else:
                prob = np.zeros((h, w), np.float32)
                _sigmoid(logit_box, out=prob[gy1:gy2, gx1:gx2])
        st.prev_prob = prob
        st.zoom_prev = prob
        if st.merged is not None:
            st.merged = crop_rules.progressive_merge(prob > cfg.mask_thresh, st.merged, focus.click_yx)
            st.zoom_prev = st.merged
            return st.merged
        return prob > cfg.mask_thresh
