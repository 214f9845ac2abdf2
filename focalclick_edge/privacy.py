"""Nothing phones home. Call `disable_telemetry()` before importing nncf or openvino tools.

NNCF instantiates openvino-telemetry with the opt-in dialog off, which counts a missing consent file
as consent; its documented switch is the NNCF_CI variable. OpenVINO's model converter (ovc) has its own
telemetry: we never call it (ONNX is read with `Core.read_model`, IR written with `save_model`).
"""
from __future__ import annotations

import os


def disable_telemetry() -> None:
    os.environ.setdefault("NNCF_CI", "1")
    os.environ.setdefault("OPENVINO_TELEMETRY_DISABLE", "1")
