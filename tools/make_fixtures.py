#!/usr/bin/env python3
"""Copy the small parity fixtures the test suite needs from ../shared/reference into tests/fixtures.

The suite must run on a fresh clone without ../shared, so the fixtures are committed; this script
records how they were cut down (full feature maps are large: a fixed slice of channels is kept).
usage: python tools/make_fixtures.py [REFERENCE_DIR]
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REF = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "reference"
OUT = ROOT / "tests" / "fixtures" / "reference"
VARIANTS = ["hrnet18s-s1", "hrnet18s-s2", "hrnet32-s2", "b0-s1", "b0-s2", "b3-s2"]
FEATURE_CHANNELS_KEPT = 24


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(REF / "make_weights.py", OUT / "make_weights.py")
    shutil.copy(REF / "model_io_inputs.npz", OUT / "model_io_inputs.npz")
    shutil.copy(REF / "pipeline_functions.npz", OUT / "pipeline_functions.npz")
    shutil.copy(REF / "official_latency.json", OUT / "official_latency.json")
    for v in VARIANTS:
        d = OUT / v
        d.mkdir(exist_ok=True)
        shutil.copy(REF / v / "manifest.json", d / "manifest.json")
        shutil.copy(REF / v / "session.npz", d / "session.npz")
        io = dict(np.load(REF / v / "model_io.npz"))
        feat = io.pop("seg_out_feature")
        io["seg_out_feature_head"] = feat[:, :FEATURE_CHANNELS_KEPT]
        io["seg_out_feature_channel_mean"] = feat.mean(axis=(0, 2, 3))
        io["seg_out_feature_shape"] = np.array(feat.shape)
        np.savez_compressed(d / "model_io.npz", **io)
    print(f"fixtures written to {OUT}")


if __name__ == "__main__":
    main()
