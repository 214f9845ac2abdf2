"""The ASGI app: ``create_app(settings)`` loads the model once and serves the API, the page and metrics.

Routes (JSON unless said; every error is ``{"error": "<what is wrong and how to fix it>"}`` with a 4xx):
  GET  /                                  the click-to-segment page (static/)
  GET  /healthz                           200 once the model is loaded: model, run, CPU, limits
  POST /v1/sessions                       image bytes, or multipart ``image`` (+ optional PNG ``mask``) -> 201
  POST /v1/sessions/{id}/clicks           {"x", "y", "positive"} [?format=png|rle|polygon] [?preview=1]
  POST /v1/sessions/{id}/undo | /reset    answered like a click
  GET  /v1/sessions/{id}/mask.png         the current mask, 0/255
  DELETE /v1/sessions/{id}                204
  GET  /metrics                           Prometheus text
"""
from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import UserError
from ..hardware import cpu_fingerprint
from ..runtime.model_dir import ModelDir
from ..runtime.runs import RunSpec
from . import uploads
from .encoding import FORMATS, encode_mask, mask_png
from .engine import ClickOutcome, Engine, ImageState
from .metrics import Metrics
from .settings import ServeSettings, default_model_dir, resolve_run
from .store import SessionGone, SessionStore, SessionUnknown

STATIC = Path(__file__).parent / "static"
# What a session holds per image pixel before any click: the planar float32 image (12 B), the zero
# previous-probability map (4 B) and the base mask (1 B). Each click adds about 5 B more (prob + mask).
BYTES_PER_PIXEL = 17


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Click(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: StrictInt
    y: StrictInt
    positive: StrictBool = True


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _Guard:
    """Outermost ASGI layer: refuses a declared-too-large body before reading it, counts error statuses."""

    def __init__(self, app: Any, max_bytes: int, metrics: Metrics) -> None:
        self.app, self.max_bytes, self.metrics = app, max_bytes, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                self.metrics.errors.labels("413").inc()
                await _error(413, _too_large(self.max_bytes))(scope, receive, send)
                return

        async def counting_send(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                self.metrics.errors.labels(str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)


def _too_large(max_bytes: int) -> str:
    return (f"the upload is over the server's --max-upload-mb {max_bytes / 2**20:g}; send a smaller file "
            "or restart the server with a higher limit")


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``max_bytes`` (chunked uploads declare no length)."""
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > max_bytes:
            raise ApiError(413, _too_large(max_bytes))
        chunks.append(chunk)
    return b"".join(chunks)


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errs = exc.errors()
    first = errs[0] if errs else {}
    if first.get("type") == "json_invalid":
        return 400, 'the body is not valid JSON; send {"x": int, "y": int, "positive": bool}'
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
    return 422, (f"{where}: {first.get('msg', 'invalid')}; send {{\"x\": int, \"y\": int, \"positive\": bool}} "
                 "with integer pixel coordinates")


def _info(settings: ServeSettings, model_name: str, run_id: str, engine: Engine,
          choice_reason: str | None = None) -> dict[str, Any]:
    fp = cpu_fingerprint(settings.threads)
    return {
        "status": "ok",
        "version": __version__,
        "model": model_name,
        "variant": engine.variant,
        "run": run_id,
        "run_choice": "auto" if settings.backend is None and settings.run == "auto" else "explicit",
        "run_choice_reason": choice_reason,
        "backend": engine.backend,
        "precision": engine.precision,
        "threads": settings.threads,
        "graph_workers": engine.workers,
        "cfr": settings.cfr,
        "merge": settings.merge,
        "cpu": fp["model"],
        "cpus": fp["available_cpus"],
        "auth": bool(settings.token),
        "limits": {"max_sessions": settings.max_sessions, "session_ttl_s": settings.session_ttl,
                   "max_upload_mb": settings.max_upload_mb, "max_image_mp": settings.max_image_mp,
                   "max_memory_mb": settings.max_memory_mb},
    }


def create_app(settings: ServeSettings) -> FastAPI:
    """Load the model (compile + one warm-up click) and return the app; ready as soon as it returns."""
    settings.check()
    model_path = Path(settings.model_dir) if settings.model_dir else default_model_dir()
    model = ModelDir.open(model_path)
    choice: list[str] = []
    run = resolve_run(model, settings.run, settings.backend, settings.precision, settings.threads, log=choice.append)
    run_id = run.id
    engine = Engine(model_path, run.backend, run.precision, settings.threads, settings.graph_workers, settings.cfr,
                    settings.merge, refiner_precision=run.refiner_precision)
    if settings.warmup:
        engine.warm_up()
    metrics = Metrics()
    max_bytes = int(settings.max_memory_mb * 2**20)
    store = SessionStore(settings.max_sessions, settings.session_ttl, max_bytes,
                         on_evict=lambda reason: metrics.evictions.labels(reason).inc())
    max_upload = int(settings.max_upload_mb * 2**20)
    shipped = settings.model_dir is None or _is_shipped(model_path)
    model_name = f"{model.variant} (shipped)" if shipped else f"{model.variant} ({model_path.name})"
    info = _info(settings, model_name, run_id, engine, choice[0] if choice else None)

    app = FastAPI(title="focalclick-edge", version=__version__, docs_url=None, redoc_url=None)  # docs use a CDN
    app.state.engine, app.state.store, app.state.metrics, app.state.info = engine, store, metrics, info

    # ------------------------------------------------------------------------------------ errors
    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(uploads.UploadError)
    async def _upload_error(_r: Request, exc: uploads.UploadError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(UserError)
    async def _user_error(_r: Request, exc: UserError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(SessionGone)
    async def _gone(_r: Request, exc: SessionGone) -> JSONResponse:
        return _error(410, f"session expired: {exc} was dropped (unused past --session-ttl, or evicted for newer "
                      "sessions); create a new one with POST /v1/sessions")

    @app.exception_handler(SessionUnknown)
    async def _unknown(_r: Request, exc: SessionUnknown) -> JSONResponse:
        return _error(404, f"no session {exc}; create one with POST /v1/sessions")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(*_validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            msg = f"no route {request.method} {request.url.path}; see the API table in the README"
        elif exc.status_code == 405:
            msg = f"{request.method} is not allowed on {request.url.path}; see the API table in the README"
        else:
            msg = str(exc.detail)
        return _error(exc.status_code, msg, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(_r: Request, exc: Exception) -> JSONResponse:  # a bug, never bad input
        return _error(500, f"internal error ({type(exc).__name__}); please report it with the request that caused it")

    # ------------------------------------------------------------------------------------ auth
    def require_token(request: Request) -> None:
        if not settings.token:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), settings.token.encode()):
            raise StarletteHTTPException(401, "missing or wrong token; send the header Authorization: Bearer <token>",
                                         headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(prefix="/v1", dependencies=[Depends(require_token)])

    def answer(out: ClickOutcome, fmt: str, t0: float, kind: str) -> JSONResponse:
        te = time.perf_counter()
        body: dict[str, Any] = {"click": out.n_clicks, **encode_mask(out.mask, fmt)}
        timings = dict(out.timings)
        timings["encode"] = (time.perf_counter() - te) * 1e3
        timings["server"] = (time.perf_counter() - t0) * 1e3
        body["timings"] = {k: round(v, 3) for k, v in timings.items()}
        body["target_box"], body["focus_box"] = out.target_box, out.focus_box
        metrics.clicks.labels(kind).inc()
        metrics.observe_timings(timings)
        return JSONResponse(body)

    def check_format(fmt: str) -> str:
        if fmt not in FORMATS:
            raise ApiError(400, f"unknown format {fmt!r}; use format=png, format=rle or format=polygon")
        return fmt

    def update_gauges() -> None:
        metrics.sessions.set(len(store))
        metrics.session_bytes.set(store.nbytes)

    # ------------------------------------------------------------------------------------ sessions
    def open_session(image: bytes, mask: bytes | None) -> dict[str, Any]:
        def fits(w: int, h: int) -> None:
            need = w * h * BYTES_PER_PIXEL
            if need > max_bytes:
                raise ApiError(413, f"a {w}x{h} image needs {need / 2**20:.0f} MB of session memory, over the "
                               f"server's --max-memory-mb {settings.max_memory_mb:g}; downscale it")

        rgb = uploads.decode_image(image, settings.max_image_mp, fits)
        init = uploads.decode_mask(mask, rgb.shape[:2]) if mask is not None else None
        if init is not None and not init.any():
            raise ApiError(400, "the mask is empty (no nonzero pixel); leave the mask field out to start from scratch")
        st = engine.new_image(rgb, init)
        sid = store.add(st)
        metrics.created.inc()
        update_gauges()
        return {"session": sid, "width": st.width, "height": st.height}

    @api.post("/sessions", status_code=201)
    async def create_session(request: Request) -> JSONResponse:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in uploads.MEDIA_TYPES and media not in ("multipart/form-data", "application/octet-stream"):
            raise ApiError(415, f"Content-Type {media or '(none)'} is not an image; send the image bytes as the body "
                           "with Content-Type image/jpeg, image/png, image/bmp or image/webp, or multipart/form-data "
                           "with a field 'image'")
        body = await _read_body(request, max_upload)
        mask = None
        if media == "multipart/form-data":
            async def replay() -> dict:
                return {"type": "http.request", "body": body, "more_body": False}

            form = await Request(request.scope, replay).form(max_files=2, max_fields=4)
            image_part, mask_part = form.get("image"), form.get("mask")
            if image_part is None or isinstance(image_part, str):
                raise ApiError(400, "the multipart body has no file field 'image'; send the image as field 'image' "
                               "(and optionally a PNG as field 'mask')")
            if isinstance(mask_part, str):
                raise ApiError(400, "the multipart field 'mask' must be a file (a PNG), not text")
            image_bytes = await image_part.read()
            mask = await mask_part.read() if mask_part is not None else None
        else:
            image_bytes = body
        out = await run_in_threadpool(open_session, image_bytes, mask)
        return JSONResponse(out, status_code=201)

    def commit(sid: str, st: ImageState, after: tuple) -> None:
        if not store.commit(sid, st, after):
            raise ApiError(413, f"this session's image and undo history need more than the server's --max-memory-mb "
                           f"{settings.max_memory_mb:g}; reset the session (POST /v1/sessions/{{id}}/reset) or start "
                           "a new one")
        update_gauges()

    @api.post("/sessions/{sid}/clicks")
    def click(sid: str, c: Click, format: str = "png", preview: bool = False) -> JSONResponse:
        t0 = time.perf_counter()
        fmt = check_format(format)
        st = store.get(sid)
        with st.lock:
            out, after = engine.click(st, c.x, c.y, c.positive)
            if not preview:
                commit(sid, st, after)
        return answer(out, fmt, t0, "preview" if preview else "click")

    def step(sid: str, format: str, kind: str, op: Any) -> JSONResponse:
        """Undo / reset: ``op(state) -> (outcome, new state)`` under the session's lock, answered like a click."""
        t0 = time.perf_counter()
        fmt = check_format(format)
        st = store.get(sid)
        with st.lock:
            out, after = op(st)
            commit(sid, st, after)
        return answer(out, fmt, t0, kind)

    def undo_op(st: ImageState) -> Any:
        if not st.clicks:
            raise ApiError(409, "nothing to undo: the session has no clicks since it was created or reset")
        return engine.undo(st)

    @api.post("/sessions/{sid}/undo")
    def undo(sid: str, format: str = "png") -> JSONResponse:
        return step(sid, format, "undo", undo_op)

    @api.post("/sessions/{sid}/reset")
    def reset(sid: str, format: str = "png") -> JSONResponse:
        return step(sid, format, "reset", engine.reset)

    @api.get("/sessions/{sid}/mask.png")
    def mask(sid: str) -> Response:
        st: ImageState = store.get(sid)
        with st.lock:
            m = st.current_mask()
        return Response(mask_png(m), media_type="image/png",
                        headers={"Content-Disposition": 'attachment; filename="mask.png"'})

    @api.get("/sessions/{sid}")
    def describe(sid: str) -> JSONResponse:
        st = store.get(sid)
        return JSONResponse({"session": sid, "width": st.width, "height": st.height,
                             "clicks": [[x, y, p] for x, y, p in st.clicks]})

    @api.delete("/sessions/{sid}", status_code=204)
    def delete(sid: str) -> Response:
        store.delete(sid)
        update_gauges()
        return Response(status_code=204)

    app.include_router(api)

    # ------------------------------------------------------------------------------------ the rest
    @app.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({**info, "sessions": len(store)})

    @app.get("/metrics", dependencies=[Depends(require_token)])
    def prometheus() -> Response:
        update_gauges()
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    label_studio = _label_studio_router(model_path, run, settings.threads)
    if label_studio is not None:
        app.include_router(label_studio, prefix="/label-studio")

    if settings.cors:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(_Guard, max_bytes=max_upload, metrics=metrics)
    return app


def _is_shipped(path: Path) -> bool:
    from ..assets import shipped_model_dir

    shipped = shipped_model_dir("b0-s1")
    return shipped is not None and path.resolve() == shipped.resolve()


def _label_studio_router(model_path: Path, run: RunSpec, threads: int | None) -> APIRouter | None:
    """The Label Studio ML-backend routes (adapters/label_studio.py), where this install has that adapter.

    Its click service gets graphs of its own: the engine's worker pool and the service's lock would
    otherwise both drive one OpenVINO infer request. Images come from LABEL_STUDIO_URL with
    LABEL_STUDIO_API_KEY (see LabelStudioSettings.from_env)."""
    try:
        from ..adapters.click_service import ClickService
        from ..adapters.label_studio import label_studio_router
        from ..adapters.label_studio_images import LabelStudioSettings
        from ..runtime import Session
    except ModuleNotFoundError:  # an install without the adapter or its converter: no /label-studio routes
        return None
    service = ClickService({run.id: Session(model_path, backend=run.backend, precision=run.precision, threads=threads,
                                           refiner_precision=run.refiner_precision)})
    return label_studio_router(service, LabelStudioSettings.from_env())
