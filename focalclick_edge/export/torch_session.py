"""The runtime ``Session`` driven by our PyTorch modules instead of exported graphs.

Used for NoC validation during training (no export needed) and as the benchmark's FP32 eager
reference. The modules are the very ``SegmentorGraph`` / ``RefinerGraph`` that get exported, and the
per-click pipeline is the same NumPy code, so the two differ only in the inference engine.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..runtime.backends import CompiledModel
from ..runtime.pipeline_config import OFFICIAL_PIPELINE, PipelineConfig
from ..runtime.session import Session
from .graphs import REFINER_INPUTS, SEGMENTOR_INPUTS, RefinerGraph, SegmentorGraph


class TorchGraph(CompiledModel):
    """``run(feeds)`` over a torch module taking the graph's inputs positionally (eager, FP32)."""

    backend = "torch"

    def __init__(self, module: torch.nn.Module, input_names: tuple[str, ...]) -> None:
        self._module = module
        self._inputs = input_names

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        device = next(self._module.parameters()).device
        # from_numpy shares the caller's (reused) buffers: no copy on CPU, and the call is synchronous.
        args = [torch.from_numpy(np.ascontiguousarray(feeds[name], dtype=np.float32)).to(device)
                for name in self._inputs]
        with torch.inference_mode():
            out = self._module(*args)
        outs = out if isinstance(out, tuple | list) else (out,)
        return [o.cpu().numpy() for o in outs]


def torch_session(model: Any, threads: int | None = None, preprocessing: dict | None = None,
                  pipeline: PipelineConfig = OFFICIAL_PIPELINE) -> Session:
    """A ``Session`` over ``model`` (from ``build_model``/``load_checkpoint``, in eval mode).
    ``preprocessing`` defaults to the variant's constants and ``pipeline`` to the official ones, as the
    exporter writes them into a card."""
    if threads:
        torch.set_num_threads(int(threads))
    variant = model.variant
    return Session.from_graphs(
        variant.id,
        # The torch graph is always the current SegmentorGraph, whatever card the constants came from.
        {**(preprocessing or variant.runtime_sizes()), "segmentor_feed_size": variant.segmentor_input_size},
        # The trained structure (no head folding): training validation and the benchmark's PyTorch
        # reference run the model exactly as it was trained.
        TorchGraph(SegmentorGraph(model, fold_head=False).eval(), SEGMENTOR_INPUTS),
        TorchGraph(RefinerGraph(model).eval(), REFINER_INPUTS),
        backend="torch",
        precision="fp32",
        pipeline=pipeline,
    )
