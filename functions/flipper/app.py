"""The ASGI application: routes, and the one JSON error shape every failure is answered with."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .model import evaluate_feature
from .query import parse_context, parse_feature_query, path_name
from .responses import JSONResponse, error_response
from .settings import Settings
from .store import Store, StoreError, StoreUnavailable

logger = logging.getLogger("flipper")


def create_app(store: Store, settings: Settings) -> Starlette:
    """Build the app around an existing store; the caller decides where the store comes from."""

    async def features(request: Request) -> Response:
        context = parse_context(request.scope["query_string"], settings)
        return JSONResponse({"features": await store.features(context)})

    async def feature(request: Request) -> Response:
        name = path_name(request.path_params["name"], "feature name", settings)
        context, explain = parse_feature_query(request.scope["query_string"], settings)
        evaluation = evaluate_feature(name, context, await store.key_members(context))
        body = {"feature": name, "enabled": evaluation.enabled, "reason": evaluation.reason}
        if explain:
            body.update(enabled_by=list(evaluation.enabled_by), disabled_by=list(evaluation.disabled_by))
        return JSONResponse(body)

    async def health(request: Request) -> Response:
        await store.ping()
        return JSONResponse({"status": "ok"})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(exc.status_code, exc.detail, exc.headers)

    async def store_unavailable(request: Request, exc: Exception) -> Response:
        logger.warning("store unavailable: %s", exc)
        return error_response(
            503, "the flag store is unavailable; retry later", {"Retry-After": str(settings.retry_after)}
        )

    async def store_error(request: Request, exc: Exception) -> Response:
        logger.error("store error: %s", exc)
        return error_response(500, "the flag store answered with an error")

    async def internal_error(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s", request.url.path)
        return error_response(500, "internal error")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.aclose()

    return Starlette(
        routes=[
            Route("/", features, methods=["GET"]),
            Route("/features/{name:path}", feature, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={
            HTTPException: http_error,
            StoreUnavailable: store_unavailable,
            StoreError: store_error,
            Exception: internal_error,
        },
        lifespan=lifespan,
    )
