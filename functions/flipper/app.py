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

from .query import parse_context
from .responses import FeaturesResponse, JSONResponse, error_response
from .settings import Settings
from .store import Store, StoreError, StoreUnavailable

logger = logging.getLogger("flipper")


def create_app(store: Store, settings: Settings) -> Starlette:
    """Build the app around an existing store; the caller decides where the store comes from."""

    async def features(request: Request) -> Response:
        context = parse_context(request.scope["query_string"], settings)
        return FeaturesResponse(await store.features(context))

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

    app = Starlette(
        routes=[Route("/", features, methods=["GET"]), Route("/health", health, methods=["GET"])],
        exception_handlers={
            HTTPException: http_error,
            StoreUnavailable: store_unavailable,
            StoreError: store_error,
            Exception: internal_error,
        },
        lifespan=lifespan,
    )
    # `/health/` is a JSON 404, not a redirect: Starlette's redirect is not JSON, and fails with a 500 when
    # the query string is not UTF-8 (found by the fuzz test in tests/test_chaos.py).
    app.router.redirect_slashes = False
    return app
