"""Label Studio's ML backend protocol as a FastAPI router.

The serve app mounts it at ``/label-studio``, so a project connects to ``http://HOST:PORT/label-studio``:
``GET /health``, ``POST /setup`` (both called when the backend is connected), ``POST /predict`` (each
smart keypoint) and ``POST /webhook`` (project events, accepted). Bad input answers 400 ``{"error": ...}``.
"""
from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import UserError
from .click_service import ClickService
from .label_studio_images import LabelStudioSettings
from .label_studio_protocol import LabelStudioBackend

MAX_BODY_BYTES = 4 << 20  # tasks and keypoints only: images come by URL


def label_studio_router(service: ClickService, settings: LabelStudioSettings | None = None,
                        model_version: str | None = None) -> APIRouter:
    """A FastAPI ``APIRouter`` with /health, /setup, /predict and /webhook (mount it under a prefix)."""
    backend = LabelStudioBackend(service, settings, model_version)
    router = APIRouter()

    async def read_json(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise UserError(f"request body is over {MAX_BODY_BYTES >> 20} MB")
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError("request body is not JSON") from None

    async def answer(request: Request, work) -> JSONResponse:
        try:
            body = await read_json(request)
            return JSONResponse(await run_in_threadpool(work, body))
        except UserError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    @router.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse(backend.health())

    @router.post("/setup")
    async def setup(request: Request) -> JSONResponse:
        return await answer(request, backend.setup)

    @router.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        return await answer(request, backend.predict)

    @router.post("/webhook")
    async def webhook(request: Request) -> JSONResponse:
        # Project events (annotation created, training requested, ...): accepted, nothing to train.
        return await answer(request, lambda _body: {"status": "ok"})

    router.backend = backend  # for the serve app's metrics and for tests
    return router
