"""PyTorch FocalClick models (export time only: importing this package needs torch)."""
from __future__ import annotations

from .build import build_model
from .checkpoint import CheckpointError, load_checkpoint

__all__ = ["build_model", "load_checkpoint", "CheckpointError"]
