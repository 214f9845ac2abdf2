"""The torch-free per-click runtime: NumPy, OpenCV, ONNX Runtime / OpenVINO."""
from __future__ import annotations

from .session import STAGES, ClickResult, Session, SessionSnapshot

__all__ = ["Session", "SessionSnapshot", "ClickResult", "STAGES"]
