"""PyTorch → ONNX for one variant: static shapes, simplified, verified against PyTorch."""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.runs import graph_relpath
from ..variants import Variant
from .graphs import (
    REFINER_INPUTS,
    REFINER_OUTPUTS,
    SEGMENTOR_INPUTS,
    SEGMENTOR_OUTPUTS,
    RefinerGraph,
    SegmentorGraph,
)

OPSET = 17
MAX_ABS_DIFF = 1e-3


def _export(module: Any, args: tuple, path: Path, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
    import torch

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        # The TorchScript exporter gives one self-contained file with static shapes; the dynamo
        # exporter adds nothing for fixed-size CNNs and splits weights into external data.
        torch.onnx.export(
            module, args, str(path), input_names=list(inputs), output_names=list(outputs),
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )


def _simplify(path: Path) -> str:
    import onnx
    import onnxslim

    model = onnx.load(str(path))
    slim = onnxslim.slim(model)
    onnx.checker.check_model(slim)
    onnx.save(slim, str(path))
    return f"onnxslim {onnxslim.__version__}"


def export_onnx(model: Any, variant: Variant, out_dir: Path, verify_inputs: dict[str, dict[str, np.ndarray]]) -> dict:
    """Write segmentor.fp32.onnx and refiner.fp32.onnx into out_dir; return per-graph max abs diffs
    against PyTorch on ``verify_inputs`` (real-image tensors) and the simplifier used."""
    import torch

    model = model.eval()
    seg = SegmentorGraph(model).eval()
    ref = RefinerGraph(model).eval()
    # The reference is the model as trained: a refactored graph (the folded SegFormer head) is checked
    # against the original structure, so the diff covers the refactoring and the export together.
    seg_reference = SegmentorGraph(model, fold_head=False).eval()
    report: dict[str, Any] = {"opset": OPSET, "max_abs_diff": {},
                              "segmentor_head_folded": seg.folded_head is not None}
    for name, graph, reference, ins, outs in (
        ("segmentor", seg, seg_reference, SEGMENTOR_INPUTS, SEGMENTOR_OUTPUTS),
        ("refiner", ref, ref, REFINER_INPUTS, REFINER_OUTPUTS),
    ):
        feeds = verify_inputs[name]
        args = tuple(torch.from_numpy(feeds[k]) for k in ins)
        path = out_dir / graph_relpath(name, "onnxruntime", "fp32")
        with torch.no_grad():
            _export(graph, args, path, ins, outs)
            expected = reference(*args)
        report["simplifier"] = _simplify(path)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = run_onnx(path, feeds)
        diffs, limits = {}, {}
        for o, g, e in zip(outs, got, expected, strict=True):
            e = e.numpy()
            diffs[o] = float(np.max(np.abs(g - e)))
            # 1e-3 absolute for ordinary activations; outputs whose spread is far above 1 (e.g. logits
            # of +-100) get the same bound relative to their std, since float32 reordering alone moves
            # them by more than 1e-3.
            limits[o] = MAX_ABS_DIFF * max(1.0, float(np.std(e)))
        report["max_abs_diff"][name] = diffs
        report.setdefault("tolerance", {})[name] = limits
        bad = [o for o in outs if not np.isfinite(diffs[o]) or diffs[o] > limits[o]]
        if bad:
            from ..errors import UserError

            o = bad[0]
            raise UserError(
                f"exported {name} output {o} differs from PyTorch by {diffs[o]:.3g} (> {limits[o]:.3g}); "
                "the export is not trustworthy, please report this with the checkpoint's variant"
            )
    return report


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)
