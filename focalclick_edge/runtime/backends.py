"""One small interface over ONNX Runtime and OpenVINO: compile once, then run many times."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError

BACKENDS = ("onnxruntime", "openvino")


class CompiledModel:
    """``run(feeds) -> list of outputs`` for one graph file on one backend."""

    backend = ""

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


class OrtModel(CompiledModel):
    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        try:
            self._sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise UserError(f"model file {path} is corrupt or not an ONNX model ({str(exc)[:120]})") from None
        self._outputs = [o.name for o in self._sess.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._sess.run(self._outputs, feeds)


class OpenVINOModel(CompiledModel):
    backend = "openvino"

    def __init__(self, path: Path, threads: int | None, precision: str) -> None:
        import openvino as ov

        core = ov.Core()
        config: dict[str, object] = {
            "PERFORMANCE_HINT": "LATENCY",
            # On AVX512-BF16 / AMX CPUs the plugin would otherwise run fp32 graphs in bf16.
            "INFERENCE_PRECISION_HINT": "f32",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            compiled = core.compile_model(str(path), "CPU", config)
        except Exception as exc:  # openvino raises RuntimeError subclasses with long messages
            raise UserError(f"model file {path} is corrupt or not an OpenVINO IR ({str(exc)[:120]})") from None
        self._req = compiled.create_infer_request()
        self._n_out = len(compiled.outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self._req.infer(feeds, share_inputs=True)
        return [self._req.get_output_tensor(i).data for i in range(self._n_out)]


def compile_model(path: Path, backend: str, precision: str = "fp32", threads: int | None = None) -> CompiledModel:
    if backend == "onnxruntime":
        return OrtModel(path, threads)
    if backend == "openvino":
        return OpenVINOModel(path, threads, precision)
    raise UserError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
