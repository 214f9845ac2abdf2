"""The PyTorch reference for ``bench --vs-torch``: our FP32 eager models on the same per-click pipeline.

``torch_reference_session`` is the runtime ``Session`` with its two compiled graphs replaced by the very
torch modules that were exported (``export.torch_session``), so the speed-up reported for a run measures
the inference engine and precision only: crops, RoIAlign, paste-back and merge are the same NumPy code in
both. Needs the [export] extra (torch).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..runtime.model_dir import ModelDir
from ..runtime.session import Session


def torch_reference_session(model_dir: str | Path, checkpoint: str | Path, threads: int | None = None) -> Session:
    """A ``Session`` whose Segmentor and Refiner are the PyTorch modules of ``checkpoint``; the model
    directory supplies the preprocessing constants, so both sessions run the identical pipeline.
    ``threads`` sets ``torch.set_num_threads`` (process-wide). ``load_ms`` includes reading the checkpoint."""
    t0 = time.perf_counter()
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UserError("--vs-torch needs PyTorch: pip install 'focalclick-edge[export]'") from None
    from ..export.torch_session import torch_session
    from ..models import CheckpointError, load_checkpoint

    md = ModelDir.open(model_dir)
    try:
        model = load_checkpoint(checkpoint, md.variant)
    except CheckpointError as exc:
        raise UserError(f"--vs-torch: {exc}") from None
    session = torch_session(model, threads, md.preprocessing, md.pipeline)
    session.load_ms = (time.perf_counter() - t0) * 1e3
    return session


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
