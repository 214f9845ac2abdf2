"""Thread settings of the evaluation processes, and why per-sample results do not depend on them.

A regression gate needs the same IoUs for the same model and data, whether a sample runs in this
process, in one of K pool workers or on a Ray actor. What was found and what holds now:

- The one thread-dependent step was the clicker: OpenCV's precise distance transform differs by an
  ulp with its thread count (and the buffer's alignment), which moved tie clicks by a pixel (GrabCut
  ``bush``, ``banana3``, ...: the pool workers ran OpenCV with 1 thread, this process with all cores).
  The clicker now compares exact squared distances (``evaluation/clicker.py``).
- ONNX Runtime and OpenVINO (all five runs of b0-s1) and OpenBLAS (RoIAlign's small matrix products)
  give bit-identical outputs for 1, 2 and the default number of threads (measured per click on
  GrabCut samples), so the per-Session thread count only changes speed; ORT's
  ``use_deterministic_compute`` is not needed for that and is left at its default.
- Nothing else is shared between samples: ``set_image`` resets a Session's per-image state, and the
  initial masks are a pure function of (image, gt, seed, name), cached on disk before use.

Each worker process still pins its library pools to its share of the cores, so that K workers do
not oversubscribe the CPU (which distorts latencies): OpenCV via ``cv2.setNumThreads`` and BLAS /
OpenMP via threadpoolctl; the Sessions get ``threads`` intra-op threads. ``thread_settings()``
reports what a process actually runs with, for the JSON report.
"""
from __future__ import annotations

import os
from typing import Any

_LIMITS: list[Any] = []  # threadpoolctl limit objects stay alive for the life of the worker process
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def configure_worker_threads(threads: int) -> None:
    """Pin OpenCV's and the BLAS / OpenMP libraries' pools of this process to ``threads``."""
    import cv2

    cv2.setNumThreads(int(threads))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # only the speed of the small RoIAlign products depends on it
        return
    _LIMITS.append(threadpool_limits(limits=int(threads)))


def thread_settings(session_threads: int | None) -> dict[str, Any]:
    """What this process runs with: the Sessions' intra-op threads (None: the backend's default, one
    per physical core for ONNX Runtime, the LATENCY hint's choice for OpenVINO), OpenCV's pool, each
    loaded BLAS / OpenMP library's pool and the thread environment variables."""
    import cv2

    out: dict[str, Any] = {
        "session_threads": session_threads,
        "onnxruntime": {"intra_op_num_threads": session_threads or "default", "inter_op_num_threads": 1,
                        "execution_mode": "sequential", "allow_spinning": 0},
        "openvino": {"INFERENCE_NUM_THREADS": session_threads or "default", "PERFORMANCE_HINT": "LATENCY"},
        "opencv": cv2.getNumThreads(),
        "env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
    }
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        out["blas"] = "unknown (threadpoolctl not installed)"
    else:
        out["blas"] = sorted({(i.get("internal_api", "?"), int(i.get("num_threads", 0))) for i in threadpool_info()})
    return out


__all__ = ["THREAD_ENV", "configure_worker_threads", "thread_settings"]
