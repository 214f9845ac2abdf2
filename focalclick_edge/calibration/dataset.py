"""Which images calibrate INT8: the built-in COCO-MVal subset, or any standard benchmark folder."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..assets import CALIBRATION_DIR
from ..errors import UserError

MIN_RECORDS = 8
DEFAULT_CALIB_SIZE = 32
# With the built-in set (16 images) the default keeps 4 images out of calibration, so the INT8-vs-FP32
# agreement in the model card is measured on sessions the quantizer never saw.
BUILTIN_DEFAULT_SIZE = 12
LAYOUT_HELP = ("img/+gt/ (COCO_MVal, DAVIS), images/+masks/ (Berkeley, generic), "
               "data_GT/+boundary_GT/ (GrabCut)")


def too_few(found: int, why: str) -> UserError:
    """The one-line refusal for a calibration set that yields fewer than MIN_RECORDS inputs."""
    return UserError(
        f"INT8 calibration found {found} recorded inputs per graph (needs at least {MIN_RECORDS}): {why}; "
        f"pass --calib-data with a folder of images and masks ({LAYOUT_HELP})"
    )


@dataclass
class CalibrationSet:
    """The chosen samples of one dataset, in seeded order, plus the ones left for held-out checks."""

    source: str  # "built-in" or the folder path
    layout: str
    dataset: Any  # evaluation.datasets.SegmentationDataset
    indices: list[int]
    holdout: list[int]
    seed: int
    skipped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [self.dataset.names[i] for i in self.indices]

    def identity(self) -> dict[str, Any]:
        """What the calibration records depend on (part of the cache key and of the model card)."""
        sizes = []
        for i in self.indices:
            p = Path(self.dataset.image_path(i))
            sizes.append(p.stat().st_size if p.exists() else -1)
        return {"source": self.source, "layout": self.layout, "names": self.names, "image_bytes": sizes,
                "seed": self.seed}

    def card(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "layout": self.layout,
            "dataset_size": len(self.dataset),
            "count": len(self.indices),
            "seed": self.seed,
            "selection": "numpy default_rng(seed).permutation of the dataset, first `count`",
            "skipped": {k: len(v) for k, v in self.skipped.items() if v},
        }


def open_calibration_set(calib_data: str | Path | None, calib_size: int | None, seed: int) -> CalibrationSet:
    """Open ``calib_data`` (None: the built-in set) and draw ``calib_size`` samples with ``seed``.

    ``calib_data`` is a benchmark folder (layout from its name and sub-folders, as ``load_dataset``
    reads it) or ``NAME=PATH`` to name the layout (``DAVIS=/data/x``), as the eval command spells it.
    Raises UserError (one line) when the folder cannot give any sample: missing, empty, no masks."""
    from ..evaluation.datasets import load_dataset

    if calib_size is not None and calib_size < 1:
        raise UserError(f"--calib-size must be at least 1 (got {calib_size})")
    if calib_data is None:
        source, path, name = "built-in", CALIBRATION_DIR, "coco_mval"
        size = calib_size or BUILTIN_DEFAULT_SIZE
    else:
        text = str(calib_data)
        name = "auto"
        if "=" in text and not Path(text).expanduser().exists():
            name, text = text.split("=", 1)
        path = Path(text).expanduser()
        source = str(path) if name == "auto" else f"{name}={path}"
        size = calib_size or DEFAULT_CALIB_SIZE
        if path.is_dir() and not any(path.iterdir()):
            raise too_few(0, f"{path} is an empty folder")
    try:
        ds = load_dataset(name, path)
    except ValueError as exc:
        raise too_few(0, str(exc).rstrip(".")) from None
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(ds))]
    return CalibrationSet(source=source, layout=ds.layout.name, dataset=ds, indices=order[:size],
                          holdout=order[size:], seed=seed, skipped=dict(ds.skipped))
