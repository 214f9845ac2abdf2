"""One small interface over ONNX Runtime and OpenVINO: compile once, then run many times."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..optional_modules import optional_import
from .runs import BACKENDS, CPU_FEATURE, RunSpec


class CompiledModel:
    """``run(feeds) -> list of outputs`` for one graph file on one backend."""

    backend = ""

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


class OrtModel(CompiledModel):
    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int | None) -> None:
        # Imported here so that choosing OpenVINO never loads ONNX Runtime (and vice versa).
        ort = optional_import("onnxruntime", "onnxruntime")
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        # No busy-waiting between runs: ORT's idle workers otherwise spin on the cores that the NumPy
        # stages between the two graphs (and any other thread of the host app) need. Measured on a
        # busy 2-core machine: b0-s1 ort-fp32 149 -> 61 ms per click. The price is a thread wake-up
        # per parallel op, which `focalclick-edge bench` shows on the machine at hand.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise UserError(f"model file {path} is corrupt or not an ONNX model ({str(exc)[:120]})") from None
        self._outputs = [o.name for o in self._sess.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._sess.run(self._outputs, feeds)


_OV_CORE = None


def _ov_core():
    """One ``ov.Core`` per process: creating it loads the plugins (tens of ms), and both graphs of a
    Session -- and every Session -- can share it."""
    global _OV_CORE
    if _OV_CORE is None:
        _OV_CORE = optional_import("openvino", "openvino").Core()
    return _OV_CORE


def cpu_features() -> set[str]:
    """What OpenVINO's CPU plugin says this CPU computes natively (``OPTIMIZATION_CAPABILITIES``: FP32,
    INT8, BF16 on AVX512-BF16 / AMX, ...); empty where OpenVINO is not installed."""
    global _CPU_FEATURES
    if _CPU_FEATURES is None:
        try:
            import openvino  # noqa: F401
        except ImportError:
            _CPU_FEATURES = set()
        else:
            _CPU_FEATURES = {str(c) for c in _ov_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")}
    return _CPU_FEATURES


_CPU_FEATURES: set[str] | None = None


def run_supported(spec: RunSpec) -> bool:
    """Whether this CPU has what ``spec`` needs (runs without a ``cpu_feature`` exist everywhere)."""
    return spec.cpu_feature is None or spec.cpu_feature in cpu_features()


class OpenVINOModel(CompiledModel):
    backend = "openvino"

    def __init__(self, path: Path, threads: int | None, precision: str) -> None:
        core = _ov_core()
        needs = CPU_FEATURE.get(precision)
        if needs is not None and needs not in cpu_features():
            raise UserError("bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX) and this one has none; "
                            "use the fp32 run (ov-fp32) instead")
        config: dict[str, object] = {
            "PERFORMANCE_HINT": "LATENCY",
            # f32 unless bf16 is asked for: on AVX512-BF16 / AMX CPUs the plugin would otherwise run FP32
            # graphs in bf16 by default.
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            compiled = core.compile_model(str(path), "CPU", config)
        except Exception as exc:  # openvino raises RuntimeError subclasses with long messages
            raise UserError(
                f"model file {path} is corrupt or not an OpenVINO IR ({str(exc)[:120]})"
            ) from None
        self._req = compiled.create_infer_request()
        self._n_out = len(compiled.outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs are views of the request's own buffers (no copy): valid until this model runs again.

        ``share_inputs`` wraps the caller's arrays instead of copying them in; ``share_outputs`` stops
        ``infer`` from copying every output into the dict it returns, which is not used here.
        """
        self._req.infer(feeds, share_inputs=True, share_outputs=True)
        return [self._req.get_output_tensor(i).data for i in range(self._n_out)]


def compile_model(path: Path, backend: str, precision: str = "fp32",
                  threads: int | None = None) -> CompiledModel:
    if backend == "onnxruntime":
        if precision == "bf16":
            raise UserError("bf16 runs on OpenVINO only (run ov-bf16); ONNX Runtime's CPU provider has no bf16 mode")
        return OrtModel(path, threads)
    if backend == "openvino":
        return OpenVINOModel(path, threads, precision)
    raise UserError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
