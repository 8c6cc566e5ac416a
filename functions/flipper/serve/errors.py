"""Every failure answered in one JSON shape: Flipper's `{"error": ...}`, or OFREP's on OFREP's paths."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from flipper.core.connection import StoreError, StoreUnavailable
from flipper.core.settings import Settings
from flipper.serve import ofrep
from flipper.serve._utils import route_path
from flipper.serve.responses import error_response

logger = logging.getLogger("flipper")


def error(request: Request, status_code: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """Flipper's `{"error": ...}`, or OFREP's `{"errorCode": "GENERAL", ...}` on OFREP's paths."""
    if ofrep.is_ofrep(request):
        return ofrep.error_response(status_code, ofrep.GENERAL, message, headers=headers)
    return error_response(status_code, message, headers)


def unauthorized(request: Request, message: str) -> Response:
    return error(request, 401, message, {"WWW-Authenticate": "Bearer"})


def handlers(settings: Settings) -> dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]]:
    """The app's exception handlers, most specific first (Starlette picks by the exception's class)."""

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(request, exc.status_code, exc.detail, exc.headers)

    async def ofrep_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ofrep.OFREPError)
        return ofrep.error_response(exc.status_code, exc.code, exc.details, exc.key, exc.headers)

    async def client_gone(request: Request, exc: Exception) -> Response:
        # The client hung up before its body arrived: no one reads the answer, and nothing failed here.
        logger.info("client disconnected from %s before sending its body", route_path(request.scope))
        return Response(status_code=400)

    async def store_unavailable(request: Request, exc: Exception) -> Response:
        logger.warning("store unavailable: %s", exc)
        retry = {"Retry-After": str(settings.retry_after)}
        return error(request, 503, "the flag store is unavailable; retry later", retry)

    async def store_error(request: Request, exc: Exception) -> Response:
        logger.error("store error: %s", exc)
        return error(request, 500, "the flag store answered with an error")

    async def internal_error(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s", request.url.path)
        return error(request, 500, "internal error")

    return {
        HTTPException: http_error,
        ofrep.OFREPError: ofrep_error,
        ClientDisconnect: client_gone,
        StoreUnavailable: store_unavailable,
        StoreError: store_error,
        Exception: internal_error,
    }
