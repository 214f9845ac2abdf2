"""ONNX → OpenVINO IR (FP32 and FP16-compressed), checked against ONNX Runtime on real inputs.

The IR is made with ``Core.read_model`` + ``save_model`` only: OpenVINO's converter front-end (ovc /
``convert_model``) ships its own telemetry, which we never start (see privacy.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..privacy import disable_telemetry
from ..runtime.runs import ROLES, graph_relpath

# |OpenVINO - ONNX Runtime| <= abs + rel * max|ONNX Runtime output|. FP32 IR must match to float
# rounding; FP16-compressed weights are decompressed to f32 at load (the runtime pins
# INFERENCE_PRECISION_HINT=f32), so only the weight rounding (~1e-3 relative) shows up.
TOLERANCE = {"fp32": (1e-3, 1e-5), "fp16": (1e-2, 1e-2)}


def save_ir(model: Any, xml_path: Path, compress_to_fp16: bool) -> None:
    """Write ``model`` (an ov.Model) as ``xml_path`` + ``.bin``."""
    disable_telemetry()
    import openvino as ov

    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(xml_path), compress_to_fp16=compress_to_fp16)


def read_onnx(onnx_path: Path) -> Any:
    disable_telemetry()
    import openvino as ov

    return ov.Core().read_model(str(onnx_path))


def export_openvino_ir(onnx_path: Path, out_dir: Path, role: str,
                       precisions: Iterable[str] = ("fp32", "fp16")) -> dict[str, str]:
    """FP32 and FP16-compressed IR of one graph; returns {precision: relative xml path}."""
    written = {}
    for precision in precisions:
        # read_model once per precision: save_model(compress_to_fp16=True) rewrites constants in place.
        rel = graph_relpath(role, "openvino", precision)
        save_ir(read_onnx(onnx_path), out_dir / rel, compress_to_fp16=precision == "fp16")
        written[precision] = rel
    return written


def max_abs_diff_vs_onnx(
    onnx_path: Path, ir_path: Path, feeds: Iterable[dict[str, np.ndarray]], precision: str = "fp32"
) -> tuple[dict[str, float], dict[str, float]]:
    """(largest |OpenVINO - ONNX Runtime|, largest |ONNX Runtime|) per output over ``feeds``, with both
    models compiled exactly as the runtime compiles them (runtime.backends)."""
    from ..runtime.backends import compile_model

    ort_model = compile_model(onnx_path, "onnxruntime")
    ov_model = compile_model(ir_path, "openvino", precision)
    names = _output_names(onnx_path)
    worst = dict.fromkeys(names, 0.0)
    scale = dict.fromkeys(names, 0.0)
    for feed in feeds:
        expected = [np.array(o, copy=True) for o in ort_model.run(feed)]
        got = [np.array(o, copy=True) for o in ov_model.run(feed)]
        for name, e, g in zip(names, expected, got, strict=True):
            d = float(np.max(np.abs(e - g)))
            worst[name] = max(worst[name], d) if np.isfinite(d) else float("inf")
            scale[name] = max(scale[name], float(np.max(np.abs(e))))
    return worst, scale


def _output_names(onnx_path: Path) -> list[str]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    return [o.name for o in sess.get_outputs()]


def check_openvino_ir(
    out_dir: Path,
    role: str,
    feeds: list[dict[str, np.ndarray]],
    precisions: Iterable[str] = ("fp32", "fp16"),
    rejected: dict[str, str] | None = None,
) -> dict[str, dict[str, float]]:
    """Compare each IR precision of ``role`` with ``<role>.fp32.onnx``; raise when one is off, except a
    precision that is a key of ``rejected`` (an optional one): then its reason is stored there."""
    onnx_path = out_dir / graph_relpath(role, "onnxruntime", "fp32")
    report = {}
    for precision in precisions:
        ir_path = out_dir / graph_relpath(role, "openvino", precision)
        diffs, scale = max_abs_diff_vs_onnx(onnx_path, ir_path, feeds, precision)
        report[precision] = diffs
        atol, rtol = TOLERANCE[precision]
        for name, d in diffs.items():
            bound = atol + rtol * scale[name]
            if not np.isfinite(d) or d > bound:
                reason = (f"OpenVINO {precision} {role} output {name} differs from ONNX Runtime by {d:.3g} "
                          f"(> {bound:.3g})")
                if rejected is not None and precision in rejected:
                    rejected[precision] = rejected[precision] or reason  # the first reason found
                    break
                raise UserError(f"{reason}; the IR is not trustworthy, please report this with the variant")
    return report


def leave_out_fp16(out_dir: Path, card: dict[str, Any], reason: str, per_file_s: dict[str, float],
                   log: Any) -> None:
    """Remove the OpenVINO FP16 IR of both graphs (files, card entries, timings) and say why in the card
    and the log: FP16 is an optional run, the rest of an export stands without it."""
    card["files"] = [f for f in card["files"] if (f["backend"], f["precision"]) != ("openvino", "fp16")]
    for role in ROLES:
        rel = graph_relpath(role, "openvino", "fp16")
        per_file_s.pop(rel, None)
        remove_graph(out_dir / rel)
    card.setdefault("openvino", {})["fp16"] = f"not exported: {reason}"
    log(f"note: OpenVINO FP16 left out ({reason}); the other runs are exported")


def remove_graph(path: Path) -> None:
    """Delete a graph file (an OpenVINO ``.xml`` with its ``.bin``); a missing one is fine."""
    path.unlink(missing_ok=True)
    if path.suffix == ".xml":
        path.with_suffix(".bin").unlink(missing_ok=True)
