"""Helpers shared by the benchmark files (plain module: ``conftest`` is a name pytest owns)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from focalclick_edge.runtime import Session
from focalclick_edge.runtime.backends import run_supported
from focalclick_edge.runtime.model_dir import ModelDir
from focalclick_edge.runtime.runs import RUN_IDS, base_id, get_run

# The click whose inputs the stage benchmarks use: past the first (full-image) click, so the
# Target Crop, the stale-box logic and the focus component are all exercised as in a real session.
BENCH_CLICK = 4


def run_params() -> list[str]:
    """Every run of the table, and the Refiner pairing `--run auto` takes on CPUs with native bf16."""
    return [*RUN_IDS, "ov-int8+refiner-bf16"]


def open_run(model_dir: Path, run: str, threads: int) -> Session:
    if base_id(run) not in ModelDir.open(model_dir).runs():
        pytest.skip(f"{model_dir} has no {run} files")
    if not run_supported(get_run(run)):
        pytest.skip(f"this CPU cannot compute {run} (no native bf16)")
    return Session(model_dir, run=run, threads=threads)



@dataclass
class ClickInputs:
    """Every intermediate of click ``BENCH_CLICK``, computed the way Session.add_click does."""

    image: np.ndarray  # (3, H, W) uint8, as the Session keeps it (crops scale by 1/255)
    prev_prob: np.ndarray  # dense copy of the session's tiled map
    clicks: np.ndarray  # (N, 3) float64 rows (y, x, positive)
    input_box: tuple[int, int, int, int]  # inclusive Zoom-In box used for the crop
    global_roi: tuple[int, int, int, int]
    coarse256: np.ndarray
    feature: np.ndarray
    logit_box: np.ndarray
    pred: np.ndarray
    prev_mask: np.ndarray
    focus: tuple[int, int, int, int]
    roi: np.ndarray
    refined: np.ndarray
    net_size: int
    ref_size: int
    feature_size: int
    seg_radius: float
    ref_radius: float
    segmentor_feeds: dict[str, np.ndarray]  # what the Segmentor graph received
    session: Session  # ort-fp32 session the inputs came from (its Target Crop code is benchmarked)
    prev_map: object = None  # the session's own tiled previous map (what _segmentor_feeds reads)
