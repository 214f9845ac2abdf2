"""One benchmark run in its own process: ``python -m focalclick_edge.bench.worker SPEC.json OUT.json``.

Kept separate from runner.py so that ``-m`` never re-executes a module the package already imported.
See runner.py for the protocol; this file only measures and writes raw samples.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _proc_status_mb(key: str) -> float | None:
    """A ``VmXXX`` line of /proc/self/status in MiB, or None where /proc is unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _peak_rss_mb() -> float:
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0  # bytes vs KiB


def _current_rss_mb() -> float:
    rss = _proc_status_mb("VmRSS")
    return rss if rss is not None else _peak_rss_mb()


def _import_backend(backend: str) -> None:
    """Import the inference library up front so that model_rss_mb counts the model, not the library."""
    if backend == "onnxruntime":
        import onnxruntime  # noqa: F401
    elif backend == "openvino":
        import openvino  # noqa: F401
    elif backend == "torch":
        import torch  # noqa: F401


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    from ..evaluation.player import play_session
    from ..runtime.images import read_image, read_mask
    from ..runtime.session import STAGES, Session

    backend, precision, threads = spec["backend"], spec["precision"], int(spec["threads"])
    _import_backend(backend)
    image = read_image(spec["image"])
    gt = read_mask(spec["mask"], image.shape[:2])
    rss_before = _current_rss_mb()

    if backend == "torch":
        from .torch_reference import torch_reference_session

        session: Session = torch_reference_session(spec["model_dir"], spec["checkpoint"], threads=threads)
    else:
        session = Session(spec["model_dir"], run=spec["run"], threads=threads)  # the run id names its Refiner

    clicks = spec.get("click_list")  # (x, y, positive) rows
    if clicks is None:
        # The generating run: the clicker session itself is the (untimed) warm-up.
        clicks = [list(c) for c in play_session(session, gt, image=image, max_clicks=int(spec["clicks"])).clicks]
    else:
        play_session(session, image=image, clicks=clicks[: int(spec["warmup"])])

    samples: dict[str, list[float]] = {s: [] for s in STAGES}
    for _ in range(int(spec["sessions"])):
        for t in play_session(session, image=image, clicks=clicks).timings:
            for s in STAGES:
                samples[s].append(float(t[s]))

    peak = _peak_rss_mb()
    out: dict[str, Any] = {
        "run": spec["run"], "backend": backend, "precision": precision,
        "refiner_precision": getattr(session, "refiner_precision", precision),
        "samples": samples, "click_list": clicks, "image_hw": list(image.shape[:2]),
        "load_ms": float(session.load_ms), "peak_rss_mb": peak, "model_rss_mb": peak - rss_before,
    }
    if backend == "torch":
        import torch

        out["torch_threads"] = torch.get_num_threads()
    return out


def main(argv: list[str]) -> int:
    from ..errors import UserError

    spec = json.loads(Path(argv[0]).read_text())
    try:
        result = measure(spec)
    except UserError as exc:  # a one-line reason for the parent to show, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
