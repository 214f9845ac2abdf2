"""What `serve` is configured with, and how a run id (``ov-int8``, ``auto``) becomes a backend/precision."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..runtime.model_dir import ModelDir
from ..runtime.runs import RUN_IDS, RunSpec, backend_name, get_run, run_for


@dataclass
class ServeSettings:
    model_dir: Path | None = None  # None: the b0-s1 model shipped in the package
    run: str = "auto"  # auto | a run id of runtime/runs.py; ignored when backend is given
    backend: str | None = None
    precision: str = "fp32"
    host: str = "127.0.0.1"
    port: int = 8800
    threads: int | None = None
    max_sessions: int = 32
    session_ttl: float = 900.0  # seconds since a session was last used
    max_upload_mb: float = 50.0
    max_image_mp: float = 50.0
    max_memory_mb: float = 4096.0  # all sessions' arrays together; past it the least recently used go
    token: str | None = None
    insecure: bool = False
    cors: tuple[str, ...] = ()
    graph_workers: int = 1  # Sessions running graphs at once (1 = one lock; >1 ONNX Runtime only)
    warmup: bool = True
    cfr: str | None = None  # cascade-forward refinement after each click (runtime/cfr.py: "1", "a4", ...)
    merge: str = "official"  # Progressive Merge: official or paper (runtime/paper_merge.py)

    def check(self) -> None:
        """Refuse settings that would be unsafe or cannot work, before anything is loaded."""
        if not is_loopback(self.host) and not self.token and not self.insecure:
            raise UserError(f"--host {self.host} exposes the server beyond this machine; pass --token T "
                            "(clients send Authorization: Bearer T) or --insecure to serve without one")
        for name in ("max_sessions", "max_upload_mb", "max_image_mp", "max_memory_mb", "session_ttl",
                     "graph_workers"):
            if getattr(self, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.threads is not None and self.threads <= 0:
            raise UserError(f"--threads must be positive, got {self.threads}")
        from ..runtime.cfr import parse_cfr
        from ..runtime.paper_merge import MERGE_MODES

        parse_cfr(self.cfr)  # a bad spec: one line, before the model loads
        if self.merge not in MERGE_MODES:
            raise UserError(f"--merge {self.merge!r}: choose one of {', '.join(MERGE_MODES)}")
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port {self.port} is not a TCP port (0-65535)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_model_dir() -> Path:
    """The b0-s1 model directory shipped in the package (written by tools/build_shipped_model.py)."""
    from ..assets import shipped_model_dir

    path = shipped_model_dir("b0-s1")
    if path is None:
        raise UserError("this install has no shipped model (focalclick_edge/assets/models/b0-s1); pass --model DIR "
                        "(a directory written by `focalclick-edge export`)")
    return path


def resolve_run(model: ModelDir, run: str, backend: str | None, precision: str, threads: int | None = None,
                log: Any = None) -> RunSpec:
    """The run to serve (its id, backend, precision and Refiner pairing). ``auto``:
    ``runtime.run_choice.choose_run`` -- the fastest run on this CPU whose recorded accuracy passes, never an
    INT8 run slower than its FP32 sibling."""
    if backend is not None:
        full = backend_name(backend)
        return run_for(full, precision) or RunSpec(f"{full}-{precision}", full, precision, precision)
    if run == "auto":
        from ..runtime.run_choice import choose_run, describe_choice

        spec, report = choose_run(model.path, threads=threads)
        if log is not None:
            log(describe_choice(report))
        return spec
    try:
        return get_run(run)
    except UserError:
        raise UserError(f"unknown run {run!r}; choose auto or one of: {', '.join(RUN_IDS)}") from None

