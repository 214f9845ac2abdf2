"""`focalclick-edge serve`: parse the flags, build the app, run uvicorn on it."""
from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..runtime.runs import PRECISIONS, RUN_IDS


def add_parser(sub: Any) -> Callable[[argparse.Namespace], int]:
    p = sub.add_parser("serve", help="HTTP API and click-to-segment web page (needs the [serve] extra)")
    p.add_argument("--model", type=Path, default=None,
                   help="model directory written by `export` (default: the shipped b0-s1)")
    p.add_argument("--run", default="auto",
                   help="auto (the fastest run on this CPU whose recorded accuracy passes) or a run id: "
                   + ", ".join(RUN_IDS))
    p.add_argument("--backend", default=None, help="onnxruntime (ort) or openvino (ov); overrides --run")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS), help="with --backend")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback; others need --token)")
    p.add_argument("--port", type=int, default=8800)
    p.add_argument("--threads", type=int, default=None, help="backend threads per graph (default: all CPUs)")
    p.add_argument("--graph-workers", type=int, default=1,
                   help="clicks whose graphs may run at once (default 1; >1 onnxruntime only)")
    p.add_argument("--max-sessions", type=int, default=32)
    p.add_argument("--session-ttl", type=float, default=900.0, help="seconds a session may stay unused")
    p.add_argument("--max-upload-mb", type=float, default=50.0)
    p.add_argument("--max-image-mp", type=float, default=50.0)
    p.add_argument("--max-memory-mb", type=float, default=4096.0,
                   help="memory cap for all sessions' arrays; past it the least recently used are evicted")
    p.add_argument("--cfr", default=None, metavar="SPEC",
                   help="cascade-forward refinement after each click: N (CFR-N) or aN (A-CFR-N), e.g. 1, a4")
    p.add_argument("--merge", choices=("official", "paper"), default="official",
                   help="Progressive Merge: official or paper (after click 10, no label-0 flood)")
    p.add_argument("--token", default=None, help="require Authorization: Bearer TOKEN on the API")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without --token")
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                   help="allow cross-origin requests from ORIGIN (repeatable); none by default")
    return _cmd_serve


def _cmd_serve(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    try:
        import uvicorn

        from .app import create_app
        from .settings import ServeSettings
    except ModuleNotFoundError as exc:
        raise UserError(f"serve needs {exc.name}, which only the [serve] extra installs; "
                        "pip install \"focalclick-edge[serve]\"") from None
    settings = ServeSettings(
        model_dir=args.model, run=args.run, backend=args.backend, precision=args.precision, host=args.host,
        port=args.port, threads=args.threads, max_sessions=args.max_sessions, session_ttl=args.session_ttl,
        max_upload_mb=args.max_upload_mb, max_image_mp=args.max_image_mp, max_memory_mb=args.max_memory_mb,
        token=args.token, insecure=args.insecure, cors=tuple(args.cors), graph_workers=args.graph_workers,
        cfr=args.cfr, merge=args.merge,
    )
    _check_port_free(settings.host, settings.port)
    app = create_app(settings)
    info = app.state.info
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                            server_header=False, date_header=False)
    ready_s = time.perf_counter() - t0

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:  # bound: the URL printed is one that already answers
                port = self.servers[0].sockets[0].getsockname()[1]
                host = f"[{settings.host}]" if ":" in settings.host else settings.host
                print(f"focalclick-edge serve: http://{host}:{port}/  (model {info['model']}, run {info['run']}, "
                      f"ready in {ready_s:.1f} s; Ctrl-C stops)", flush=True)
                if info.get("run_choice_reason"):
                    print(f"focalclick-edge serve: {info['run_choice_reason']}", flush=True)

    # Not uvicorn.run(sockets=...): on sockets handed over that way accepted connections miss TCP_NODELAY,
    # and every keep-alive response then waits ~40 ms for a delayed ACK.
    Server(config).run()
    print("focalclick-edge serve: stopped", file=sys.stderr)
    return 0


def _check_port_free(host: str, port: int) -> None:
    """A one-line error now instead of uvicorn's log line and exit 1 after loading the model."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port or stop the "
                            "other server") from None
