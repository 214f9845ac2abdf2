"""Which quantized layers int8 hurts most: SQNR of each weighted layer's int8 input activations.

SQNR = 10 log10(|x|^2 / |x - dq(q(x))|^2) over a few recorded inputs, read from the quantized model
itself (the tensor before and after its activation quantizer). Uniform 8-bit quantization of a
well-spread signal gives about 40 dB; a layer far below that sees inputs whose range is dominated by
a few outlier channels, the typical case being a pointwise convolution right after a depthwise one with
no normalization in between (the FocalClick Refiner's XConvBnRelu blocks).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SQNR_FLOOR_DB = 25.0  # layers below this keep float weights and inputs by default (pipeline.py)


def _sqnr(signal: float, noise: float) -> float:
    return round(float(10 * np.log10(max(signal, 1e-30) / max(noise, 1e-30))), 2)


def ov_sensitivity(xml_path: Path, feeds: list[dict[str, np.ndarray]]) -> list[tuple[float, str]]:
    """(SQNR dB of the worst FakeQuantize on an activation input, op name) for every Convolution /
    GroupConvolution / MatMul of an NNCF INT8 IR that has one, most sensitive first."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml_path))
    passthrough = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Convert"}
    pairs: dict[str, list[tuple[Any, Any]]] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("Convolution", "GroupConvolution", "MatMul"):
            continue
        for value in op.input_values():
            src = value.get_node()
            for _ in range(3):
                if src.get_type_name() not in passthrough:
                    break
                src = src.input_value(0).get_node()
            if src.get_type_name() != "FakeQuantize":
                continue
            if src.input_value(0).get_node().get_type_name() != "Constant":  # activations, not weights
                pairs.setdefault(op.get_friendly_name(), []).append((src.input_value(0), src.output(0)))
    outs = [o for ps in pairs.values() for p in ps for o in p]
    if not outs:
        return []
    results = model.add_outputs(outs)
    index = {(o.get_node().get_friendly_name(), o.get_index()): i for i, o in enumerate(outs)}
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    req = compiled.create_infer_request()
    sig: dict[tuple[str, int], float] = {}
    noise: dict[tuple[str, int], float] = {}
    for f in feeds:
        req.infer(f)
        vals = [np.array(req.get_tensor(r).data, dtype=np.float64) for r in results]
        for ps in pairs.values():
            for x, xq in ps:
                kx = (x.get_node().get_friendly_name(), x.get_index())
                kq = (xq.get_node().get_friendly_name(), xq.get_index())
                a, b = vals[index[kx]], vals[index[kq]]
                sig[kq] = sig.get(kq, 0.0) + float(np.sum(a * a))
                noise[kq] = noise.get(kq, 0.0) + float(np.sum((a - b) ** 2))
    scores = []
    for name, ps in pairs.items():
        keys = [(xq.get_node().get_friendly_name(), xq.get_index()) for _, xq in ps]
        scores.append((min(_sqnr(sig[k], noise[k]) for k in keys), name))
    return sorted(scores)


def ort_sensitivity(qdq_path: Path, feeds: list[dict[str, np.ndarray]]) -> list[tuple[float, str]]:
    """(SQNR dB of the worst int8 input activation, node name) for every quantized Conv / MatMul / Gemm
    of a QDQ model, most sensitive first. SQNR = 10 log10(|x|^2 / |x - dq(q(x))|^2) over ``feeds``."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(qdq_path))
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    pairs: dict[str, list[tuple[str, str]]] = {}
    for n in model.graph.node:
        if n.op_type not in ("Conv", "MatMul", "Gemm"):
            continue
        for t in n.input[:2]:
            dq = producers.get(t)
            if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] in inits:
                continue
            q = producers.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                pairs.setdefault(n.name, []).append((q.input[0], dq.output[0]))
    wanted = sorted({t for ps in pairs.values() for p in ps for t in p})
    existing = {o.name for o in model.graph.output}
    for t in wanted:
        if t not in existing:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every Q/DQ tensor
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    sig = dict.fromkeys(wanted, 0.0)
    noise: dict[str, float] = {}
    for f in feeds:
        vals = dict(zip(wanted, sess.run(wanted, f), strict=True))
        for ps in pairs.values():
            for x, xq in ps:
                sig[x] += float(np.sum(np.square(vals[x], dtype=np.float64)))
                noise[x + "|" + xq] = noise.get(x + "|" + xq, 0.0) + float(
                    np.sum(np.square(vals[x].astype(np.float64) - vals[xq])))
    scores = []
    for name, ps in pairs.items():
        worst = min(10 * np.log10(max(sig[x], 1e-30) / max(noise[x + "|" + xq], 1e-30)) for x, xq in ps)
        scores.append((round(float(worst), 2), name))
    return sorted(scores)


def ort_input_producers(qdq_path: Path, names: list[str]) -> list[str]:
    """Quantized weighted nodes whose output Q/DQ pair feeds one of ``names``.

    In ONNX Runtime's QDQ format a quantized Conv also quantizes its *output*; keeping only the
    consumer of a low-SQNR tensor in float would still read the rounded tensor, so its producer goes
    float too. (A partly trained b0-s1 Refiner, depthwise 3x3 -> pointwise 1x1 pairs: logits rel. error
    0.133 int8, 0.111 with the pointwise convs float, 0.017 with both; latency unchanged.)"""
    import onnx

    model = onnx.load(str(qdq_path))
    producers = {o: n for n in model.graph.node for o in n.output}
    wanted = set(names)
    found: list[str] = []
    for n in model.graph.node:
        if n.name not in wanted:
            continue
        for t in n.input[:2]:
            dq = producers.get(t)
            q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            src = producers.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
            if src is not None and src.op_type in ("Conv", "MatMul", "Gemm") and src.name not in found:
                found.append(src.name)
    return found
