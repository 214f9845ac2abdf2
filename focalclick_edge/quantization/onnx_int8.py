"""ONNX Runtime static INT8 (QDQ), calibrated on recorded per-click inputs.

Recipe and why:
- ``quant_pre_process`` first (shape inference + ORT's basic graph fusions), as ORT recommends, so
  calibration sees the graph ORT will really run;
- QDQ format: the portable representation; ORT fuses DQ→Conv→Q into QLinearConv at load;
- activations QUInt8, asymmetric: they are ReLU / GELU / sigmoid outputs and [0, 1] images, so a zero
  point uses all 256 levels where a symmetric int8 range would waste half of them; u8 activations x s8
  weights (U8S8) is also the native operand order of x86 int8 dot products (VPMADDUBSW / VPDPBUSD);
- weights QInt8, symmetric, per output channel: the Refiner and the SegFormer patch embeddings have
  depthwise convolutions whose per-channel weight ranges differ by orders of magnitude, which one
  per-tensor scale would crush;
- ``reduce_range`` only on x86 CPUs without VNNI (see cpu.py);
- MinMax calibration over every recorded input: the records are few (tens to hundreds) and come from
  real sessions, so their extremes are real and clipping them (percentile / entropy) only adds error on
  the edge cases a click session does reach;
- the weight-free tail (scope.py) stays in float, and so do the logits convolutions feeding it: ORT
  would otherwise put a Q/DQ pair on their outputs, i.e. round the logits to 8 bits.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The op types ONNX Runtime quantizes (pipeline.WHY["onnxruntime_op_types"] says why only these).
ORT_OP_TYPES = ("Conv", "MatMul", "Gemm")


def _reader(feeds: list[dict[str, np.ndarray]], progress: bool, desc: str) -> Any:
    from onnxruntime.quantization import CalibrationDataReader
    from tqdm import tqdm

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(tqdm(feeds, desc=desc, unit="input", disable=not progress, leave=False))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

        def rewind(self) -> None:
            self._it = iter(feeds)

    return _Reader()


def quantize_onnx(
    fp32_path: Path,
    out_path: Path,
    feeds: list[dict[str, np.ndarray]],
    reduce_range: bool,
    keep_float: Sequence[str] | None = None,
    extra_exclude: Sequence[str] = (),
    per_channel: bool = True,
    progress: bool = False,
    desc: str = "ORT calibration",
    op_types: Sequence[str] | None = None,
    activation_type: str = "QUInt8",
    calibrate_method: str = "MinMax",
    extra_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the QDQ INT8 model of ``fp32_path`` to ``out_path``; returns the recipe for the card.
    ``keep_float``: node names left in float (None: the structural tail of scope.py and the logits
    convolutions feeding it); ``extra_exclude`` adds to either."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .scope import onnx_float_tail, onnx_tail_feeders

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fce-ort-q-") as td:
        pre = Path(td) / "pre.onnx"
        # quant_pre_process logs and prints warnings on perfectly fine static-shape graphs.
        with _quiet():
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
        if keep_float is None:
            graph = onnx.load(str(pre))
            tail = onnx_float_tail(graph)
            tail += onnx_tail_feeders(graph, tail)
        else:
            tail = list(keep_float)
        exclude = sorted(set(tail) | set(extra_exclude))
        with _quiet():
            quantize_static(
                str(pre), str(out_path), _reader(feeds, progress, desc),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(op_types) if op_types else None,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=getattr(QuantType, activation_type),
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
                calibrate_method=getattr(CalibrationMethod, calibrate_method),
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                               **(extra_options or {})},
            )
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "pre_process": "onnxruntime.quantization.shape_inference.quant_pre_process",
        "format": "QDQ",
        "activation_type": "QUInt8 (asymmetric)",
        "weight_type": "QInt8 (symmetric)",
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "calibrate_method": "MinMax",
        "calibration_inputs": len(feeds),
        "kept_float": exclude,
        "seconds": round(time.perf_counter() - t0, 2),
    }


@contextlib.contextmanager
def _quiet() -> Any:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def quantized_conv_inputs(model: Any) -> dict[str, int]:
    """Count Conv nodes whose data input comes through a DequantizeLinear fed by a QuantizeLinear (an
    activation QDQ pair), and those whose weight input is a DequantizeLinear of an initializer."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    counts = {"conv": 0, "activation_qdq": 0, "weight_dq": 0}
    for n in model.graph.node:
        if n.op_type != "Conv":
            continue
        counts["conv"] += 1
        dq = producers.get(n.input[0])
        if dq is not None and dq.op_type == "DequantizeLinear":
            q = producers.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                counts["activation_qdq"] += 1
        wdq = producers.get(n.input[1])
        if wdq is not None and wdq.op_type == "DequantizeLinear" and wdq.input[0] in inits:
            counts["weight_dq"] += 1
    return counts

