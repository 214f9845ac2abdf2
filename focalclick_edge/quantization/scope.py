"""Which ops stay in float: the "tail" after the last weighted layer of a graph.

In the Refiner the tail is Eq. 1 of the paper, ``refined = detail * sigmoid(trimap) + cropped_logits *
(1 - sigmoid(trimap))`` plus the two bilinear upsamplings feeding it. It has no weights, costs almost
nothing, and its inputs are logits: quantizing them rounds ``cropped_logits`` (passed straight through
wherever the trimap gate is closed) to 256 levels, which moves the 0.5 threshold of the final mask. The
Segmentor graph ends at its logits convolution (the runtime upsamples the logits). Tails are found
structurally (ops from which no convolution / matmul is reachable) so that the rule holds for every
variant without hard-coded names. The convolutions producing logits -- feeding a tail or a ``*logits``
graph output -- stay float as well (``*_tail_feeders``).
"""
from __future__ import annotations

from typing import Any

ONNX_WEIGHTED = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
OV_WEIGHTED = {"Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul"}
# Ops that carry no activation math (shape plumbing, graph I/O): never worth listing.
OV_SKIP = {"Constant", "Parameter", "Result", "ShapeOf", "Convert"}
ONNX_SKIP = {"Constant", "Shape"}


def onnx_float_tail(model: Any) -> list[str]:
    """Names of ONNX nodes that are not weighted and reach no weighted node downstream."""
    nodes = list(model.graph.node)
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for t in n.input:
            consumers.setdefault(t, []).append(i)
    reaches = [False] * len(nodes)
    # Graph nodes are topologically sorted in ONNX, so one reverse sweep settles reachability.
    for i in range(len(nodes) - 1, -1, -1):
        n = nodes[i]
        downstream = (j for t in n.output for j in consumers.get(t, []))
        reaches[i] = n.op_type in ONNX_WEIGHTED or any(reaches[j] for j in downstream)
    return [n.name for i, n in enumerate(nodes) if not reaches[i] and n.op_type not in ONNX_SKIP]


def onnx_tail_feeders(model: Any, tail: list[str]) -> list[str]:
    """Weighted ONNX nodes whose output goes straight into the float tail or is a ``*logits`` graph
    output (the Segmentor, whose logits upsampling is done by the runtime): the logits convolutions.

    They stay float in both backends (each is one small convolution with one output channel): their
    int8 error lands on the logits undiluted (a partly trained b0-s1 Segmentor: coarse logits rel. error
    0.168 with linear_pred int8, 0.048 float), and ONNX Runtime's QDQ format would also put a Q/DQ pair
    on their output, rounding the logits themselves to 8 bits."""
    tail_set = set(tail)
    logits = {o.name for o in model.graph.output if "logits" in o.name}
    consumers: dict[str, list[str]] = {}
    for n in model.graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n.name)
    return [n.name for n in model.graph.node if n.op_type in ONNX_WEIGHTED
            and any(t in logits or any(c in tail_set for c in consumers.get(t, [])) for t in n.output)]


def ov_float_tail(model: Any) -> list[str]:
    """Friendly names of OpenVINO ops on the data path that are not weighted and reach no weighted op
    downstream. A weighted op's bias Add is left out: NNCF fuses it with its convolution."""
    ops = list(model.get_ordered_ops())  # topological order
    data: dict[int, bool] = {}
    for op in ops:  # forward: does the op carry activations (not constants, not shape arithmetic)?
        srcs = [v.get_node() for v in op.input_values()]
        kind = op.get_type_name()
        fed = any(data.get(id(s), False) for s in srcs)
        data[id(op)] = kind == "Parameter" or (kind != "ShapeOf" and fed)
    reaches: dict[int, bool] = {}
    for op in reversed(ops):
        reaches[id(op)] = op.get_type_name() in OV_WEIGHTED or any(
            reaches.get(id(inp.get_node()), False) for out in op.outputs() for inp in out.get_target_inputs()
        )
    tail = []
    for op in ops:
        kind = op.get_type_name()
        if reaches[id(op)] or not data[id(op)] or kind in OV_SKIP:
            continue
        if kind == "Add" and any(v.get_node().get_type_name() in OV_WEIGHTED for v in op.input_values()):
            continue
        tail.append(op.get_friendly_name())
    return tail


def _is_logits_result(op: Any) -> bool:
    return op.get_type_name() == "Result" and any("logits" in n for n in op.input_value(0).get_names())


def ov_tail_feeders(model: Any, tail: list[str]) -> list[str]:
    """Weighted OpenVINO ops whose output (directly or through their bias Add) goes into the float tail
    or is a ``*logits`` graph output: the logits convolutions, kept float like their ONNX Runtime
    counterparts."""
    tail_set = set(tail)

    def consumers(op: Any) -> list[Any]:
        return [inp.get_node() for out in op.outputs() for inp in out.get_target_inputs()]

    found = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in OV_WEIGHTED:
            continue
        nexts = consumers(op)
        # The bias Add NNCF fuses with its convolution is not in the tail; look one op further.
        nexts += [c for n in nexts if n.get_type_name() == "Add" for c in consumers(n)]
        if any(n.get_friendly_name() in tail_set or _is_logits_result(n) for n in nexts):
            found.append(op.get_friendly_name())
    return found
