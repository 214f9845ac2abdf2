"""The PyTorch reference for ``bench --vs-torch``: our FP32 eager models on the same per-click pipeline.

``TorchSession`` is the runtime ``Session`` with its two compiled graphs replaced by the very torch
modules that were exported (``SegmentorGraph`` / ``RefinerGraph``), so the speed-up reported for a run
measures the inference engine and precision only: crops, RoIAlign, paste-back and merge are the same
NumPy code in both. Needs the [export] extra (torch).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..runtime.backends import CompiledModel
from ..runtime.session import Session


class TorchGraph(CompiledModel):
    """``run(feeds)`` over a torch module taking the graph's inputs positionally (eager, FP32)."""

    backend = "torch"

    def __init__(self, module: Any, input_names: tuple[str, ...]) -> None:
        self._module = module
        self._inputs = input_names

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        # from_numpy shares the caller's (reused) buffers: no copy, and the call is synchronous.
        args = [torch.from_numpy(np.ascontiguousarray(feeds[name], dtype=np.float32)) for name in self._inputs]
        with torch.inference_mode():
            out = self._module(*args)
        outs = out if isinstance(out, tuple | list) else (out,)
        return [o.numpy() for o in outs]


class TorchSession(Session):
    """A ``Session`` whose Segmentor and Refiner are the PyTorch modules of ``checkpoint``.

    The model directory still supplies the preprocessing constants (sizes, disk radii), so both
    sessions run the identical pipeline. ``threads`` sets ``torch.set_num_threads`` (process-wide).
    """

    def __init__(self, model_dir: str | Path, checkpoint: str | Path, threads: int | None = None) -> None:
        self._checkpoint = Path(checkpoint)
        super().__init__(model_dir, backend="torch", precision="fp32", threads=threads)

    def _load_graphs(self, threads: int | None) -> tuple[CompiledModel, CompiledModel]:
        try:
            import torch
        except ImportError:
            raise UserError("--vs-torch needs PyTorch: pip install 'focalclick-edge[export]'") from None
        from ..export.graphs import REFINER_INPUTS, SEGMENTOR_INPUTS, RefinerGraph, SegmentorGraph
        from ..models import CheckpointError, load_checkpoint

        if threads:
            torch.set_num_threads(int(threads))
        try:
            model = load_checkpoint(self._checkpoint, self.model_dir.variant)
        except CheckpointError as exc:
            raise UserError(f"--vs-torch: {exc}") from None
        seg = SegmentorGraph(model).eval()
        ref = RefinerGraph(model).eval()
        return TorchGraph(seg, SEGMENTOR_INPUTS), TorchGraph(ref, REFINER_INPUTS)


def resolve_checkpoint(card: dict[str, Any], checkpoint: str | Path | None) -> Path:
    """``--checkpoint``, else the model card's ``source_checkpoint.path``; a clear error when neither exists."""
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise UserError(f"--checkpoint {path} does not exist")
        return path
    recorded = (card.get("source_checkpoint") or {}).get("path")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    where = f" (the model card points to {recorded}, which is missing)" if recorded else ""
    raise UserError(f"--vs-torch needs the PyTorch checkpoint{where}; pass --checkpoint PATH")
