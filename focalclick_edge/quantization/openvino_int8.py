"""OpenVINO INT8 with NNCF post-training quantization, calibrated on recorded per-click inputs.

Recipe and why:
- ``preset=MIXED`` for CNNs (HRNet segmentors, every Refiner): symmetric int8 weights, asymmetric
  activations. Activations are ReLU / LeakyReLU / sigmoid outputs and [0, 1] images: one-sided ranges
  that a symmetric quantizer would cover with half its levels;
- SegFormer segmentors: ``model_type=TRANSFORMER`` (NNCF keeps LayerNorm, Softmax and the attention's
  elementwise ops in float and applies SmoothQuant to MatMul inputs), ``preset=PERFORMANCE``
  (symmetric activations) and the decode head's ``Interpolate`` inputs in float
  (``SEGFORMER_FLOAT_TYPES``). Measured on the shipped b0-s1 Segmentor, logits rel. mean abs error vs
  FP32 on 40 held-out GrabCut click inputs, the same IR run with oneDNN limited to each ISA
  (AMX / AVX512-VNNI / AVX2): MIXED 0.129 / 0.077 / 0.059; PERFORMANCE 0.080 / 0.074 / -; MIXED with
  Interpolate float 0.104 / 0.029 / 0.038; PERFORMANCE with Interpolate float 0.038 / 0.026 / 0.036
  (sign flips 0.5 / 0.3 / 0.6 % of pixels, was 2.0 / 1.1 / 0.8 %); latency unchanged (2 threads, AMX:
  2.97 -> 2.87 ms). Quantizing the upsampled head features rounds the sum that becomes the logits, and
  on AMX the asymmetric-activation kernels add error of their own; CNN graphs keep MIXED (not re-measured);
- ``target_device=CPU``: the CPU plugin's quantizer placement rules;
- ``subset_size`` = all recorded inputs (tens to hundreds): statistics are cheap at this size;
- fast bias correction on (the default; it corrects the per-channel mean shift int8 weights cause);
- ignored scope = the weight-free tail after the last convolution (scope.py): for the Refiner the
  Eq. 1 blend of logits, for the Segmentor its logits upsampling; plus the logits convolutions that
  feed it; plus, for SegFormer Segmentors, what the float search (float_search.py) measures worth
  keeping float (on the shipped b0-s1: block1.0's attention spatial-reduction conv).
"""
from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..privacy import disable_telemetry


@contextlib.contextmanager
def quiet_nncf(progress: bool) -> Iterator[None]:
    """NNCF logs INFO lines (one per ignored node) and draws its own progress bars: the bars stay when
    progress is asked, the INFO lines never do."""
    disable_telemetry()
    import nncf

    logger = logging.getLogger("nncf")
    level = logger.level
    nncf.set_log_level(logging.WARNING if progress else logging.ERROR)
    try:
        if progress:
            yield
        else:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
    finally:
        logger.setLevel(level)


# Op types whose inputs NNCF would quantize in a SegFormer Segmentor and that stay float (module doc).
SEGFORMER_FLOAT_TYPES = ("Interpolate",)


def nncf_settings(family: str, role: str, ignored: Sequence[str]) -> dict[str, Any]:
    disable_telemetry()
    import nncf

    transformer = family == "segformer" and role == "segmentor"
    types = list(SEGFORMER_FLOAT_TYPES) if transformer else []
    return {
        "preset": nncf.QuantizationPreset.PERFORMANCE if transformer else nncf.QuantizationPreset.MIXED,
        "target_device": nncf.TargetDevice.CPU,
        "model_type": nncf.ModelType.TRANSFORMER if transformer else None,
        "ignored_scope": (nncf.IgnoredScope(names=list(ignored), types=types, validate=False)
                          if ignored or types else None),
        "fast_bias_correction": True,
    }


def _recipe(settings: dict[str, Any], ignored: Sequence[str], n: int) -> dict[str, Any]:
    mt = settings["model_type"]
    scope = settings["ignored_scope"]
    mixed = settings["preset"].name == "MIXED"
    return {
        "tool": "nncf.quantize",
        "preset": ("MIXED (symmetric weights, asymmetric activations)" if mixed
                   else "PERFORMANCE (symmetric weights and activations)"),
        "ignored_types": list(scope.types) if scope is not None else [],
        "target_device": "CPU",
        "model_type": mt.name if mt is not None else None,
        "fast_bias_correction": True,
        "subset_size": n,
        "ignored_scope": list(ignored),
    }


def quantize_openvino(
    fp32_onnx: Path,
    out_xml: Path,
    feeds: list[dict[str, np.ndarray]],
    family: str,
    role: str,
    keep_float: Sequence[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the INT8 IR of ``fp32_onnx`` to ``out_xml`` (+ .bin); returns the recipe for the card."""
    disable_telemetry()
    import nncf

    from ..export.openvino_export import read_onnx, save_ir
    from .scope import ov_float_tail, ov_tail_feeders

    t0 = time.perf_counter()
    model = read_onnx(fp32_onnx)
    if keep_float is None:
        ignored = ov_float_tail(model)
        ignored += ov_tail_feeders(model, ignored)
    else:
        ignored = list(keep_float)
    settings = nncf_settings(family, role, ignored)
    with quiet_nncf(progress):
        q = nncf.quantize(model, nncf.Dataset(feeds), subset_size=len(feeds), **settings)
    # compress_to_fp16=False: weights are already int8; the float remainder (biases, the float tail,
    # scales) stays f32 so that nothing but the int8 quantizers differs from the FP32 IR.
    save_ir(q, out_xml, compress_to_fp16=False)
    recipe = _recipe(settings, ignored, len(feeds))
    recipe["seconds"] = round(time.perf_counter() - t0, 2)
    return recipe


def activation_fake_quantize(model: Any) -> dict[str, int]:
    """Count FakeQuantize ops on activations (input not a constant subgraph) and the weighted ops
    (Convolution / GroupConvolution / MatMul) reached from one of them through at most a few
    layout / elementwise ops."""
    weighted = {"Convolution", "GroupConvolution", "MatMul"}
    counts = {"fake_quantize": 0, "activation_fq": 0, "conv": 0, "conv_with_activation_fq": 0}

    def constant_only(node: Any, depth: int = 0) -> bool:
        kind = node.get_type_name()
        if kind == "Constant":
            return True
        if kind == "Parameter" or depth > 6:
            return False
        return all(constant_only(v.get_node(), depth + 1) for v in node.input_values())

    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize":
            counts["fake_quantize"] += 1
            if not constant_only(op.input_value(0).get_node()):
                counts["activation_fq"] += 1
        if kind in ("Convolution", "GroupConvolution"):
            counts["conv"] += 1
            src = op.input_value(0).get_node()
            for _ in range(4):  # FQ may sit before a Reshape / Transpose / Pad feeding the conv
                if src.get_type_name() == "FakeQuantize" or src.get_type_name() in weighted:
                    break
                if not src.input_values():
                    break
                src = src.input_value(0).get_node()
            if src.get_type_name() == "FakeQuantize":
                counts["conv_with_activation_fq"] += 1
    return counts

