"""INT8 calibration data: real per-click Segmentor / Refiner inputs recorded from simulated sessions."""
from __future__ import annotations

from .dataset import MIN_RECORDS, CalibrationSet, open_calibration_set
from .recorder import FeedRecorder, recording
from .sessions import CalibrationRecords, record_calibration, run_noc_session

__all__ = [
    "MIN_RECORDS", "CalibrationRecords", "CalibrationSet", "FeedRecorder",
    "open_calibration_set", "record_calibration", "recording", "run_noc_session",
]
