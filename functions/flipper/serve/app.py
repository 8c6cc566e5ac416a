"""The ASGI application: routes, and the one JSON error shape every failure is answered with."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator, Callable, Hashable, Mapping

from starlette.applications import Starlette
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from flipper.core.model import Context, Snapshot, enabled_features, evaluate_all, evaluate_feature
from flipper.core.settings import Settings
from flipper.core.store import Store, StoreError, StoreUnavailable
from flipper.serve import ofrep
from flipper.serve._utils import route_path
from flipper.serve.auth import APIKeyMiddleware, api_keys
from flipper.serve.cors import JSONCORSMiddleware
from flipper.serve.etags import conditional, etag
from flipper.serve.query import parse_context, parse_feature_query, path_name
from flipper.serve.responses import JSONResponse, error_response, features_body

logger = logging.getLogger("flipper")

JSON = "application/json"


class NameConvertor(PathConvertor):
    """A flag name in a path: the rest of it, slashes and line breaks included (`path` stops at a line break)."""

    regex = "(?s:.*)"


register_url_convertor("name", NameConvertor())


def exact(route: Route) -> Route:
    """`route`, matching only its whole path: Starlette ends its pattern with `$`, which also matches
    before a final line break, so `/\\n` was served as `/` (found by the fuzz test in tests/test_chaos.py)."""
    route.path_regex = re.compile(route.path_regex.pattern.removesuffix("$") + r"\Z")
    return route


def create_app(store: Store, settings: Settings) -> Starlette:
    """Build the app around an existing store; the caller decides where the store comes from.

    API keys in a secret are fetched here, once: a request never waits for Secrets Manager.
    """
    keys = api_keys(settings)

    def bounded(body: bytes) -> bytes:
        """`body`, unless it is over `max_response_bytes`: Lambda would fail to return it, and API Gateway
        answer a bare 500. A 500 of Flipper's own says why; too many flags is the operator's to fix."""
        if len(body) > settings.max_response_bytes:
            message = (
                f"the answer is {len(body)} bytes long; the limit is {settings.max_response_bytes} "
                "(FLIPPER_MAX_RESPONSE_BYTES): too many flags apply to this caller"
            )
            logger.error(message)
            raise HTTPException(500, message)
        return body

    async def answer(context: Context, what: Hashable, render: Callable[[Snapshot], bytes]) -> tuple[bytes, str | None]:
        """The JSON body `render` makes of the caller's snapshot, and its ETag when known: reused from the
        cache when computed before from the very same cached keys (`what` names the question)."""
        snapshot = await store.snapshot(context)
        if store.cache is None or not snapshot.stamp:
            return render(snapshot), None

        def fresh() -> tuple[bytes, str]:
            body = render(snapshot)
            return body, etag(body)

        reused = store.cache.answer((what, context), snapshot.stamp, fresh)
        return reused.body, reused.tag

    def conditional_json(request: Request, body: bytes, tag: str | None) -> Response:
        return conditional(request, Response(body, media_type=JSON), settings.cache_control, tag)

    async def features(request: Request) -> Response:
        context = parse_context(request.scope["query_string"], settings)
        body, tag = await answer(context, "/", lambda snapshot: features_body(enabled_features(snapshot)))
        return conditional_json(request, bounded(body), tag)

    async def feature(request: Request) -> Response:
        name = path_name(request.path_params["name"], "feature name", settings, request.scope.get("raw_path"))
        context, explain = parse_feature_query(request.scope["query_string"], settings)

        def render(snapshot: Snapshot) -> bytes:
            evaluation = evaluate_feature(name, snapshot)
            body = {"feature": name, "enabled": evaluation.enabled, "reason": evaluation.reason}
            if explain:
                body.update(evaluation.explanation())
            return JSONResponse(body).body

        return conditional_json(request, *await answer(context, ("feature", name, explain), render))

    async def ofrep_flag(request: Request) -> Response:
        key = ofrep.flag_key(request, settings)
        context = await ofrep.read_context(request, settings, key)

        def render(snapshot: Snapshot) -> bytes:
            return JSONResponse(ofrep.evaluation(evaluate_feature(key, snapshot))).body

        body, _ = await answer(context, ("ofrep", key), render)
        return Response(body, media_type=JSON)  # a single OFREP evaluation has no ETag

    async def ofrep_flags(request: Request) -> Response:
        context = await ofrep.read_context(request, settings)

        def render(snapshot: Snapshot) -> bytes:
            return JSONResponse({"flags": [ofrep.evaluation(result) for result in evaluate_all(snapshot)]}).body

        body, tag = await answer(context, "ofrep", render)
        return conditional_json(request, bounded(body), tag)

    @functools.cache
    def api_document() -> bytes:
        """Built on the first request for it, not at a cold start, which no evaluation should wait for."""
        from flipper.serve import openapi

        return JSONResponse(openapi.document(settings, secured=bool(keys))).body

    async def openapi_json(request: Request) -> Response:
        return Response(api_document(), media_type="application/json")

    async def health(request: Request) -> Response:
        await store.ping()
        return JSONResponse({"status": "ok"})

    def error(request: Request, status_code: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
        """Flipper's `{"error": ...}`, or OFREP's `{"errorCode": "GENERAL", ...}` on OFREP's paths."""
        if ofrep.is_ofrep(request):
            return ofrep.error_response(status_code, ofrep.GENERAL, message, headers=headers)
        return error_response(status_code, message, headers)

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
        return error(
            request, 503, "the flag store is unavailable; retry later", {"Retry-After": str(settings.retry_after)}
        )

    async def store_error(request: Request, exc: Exception) -> Response:
        logger.error("store error: %s", exc)
        return error(request, 500, "the flag store answered with an error")

    async def internal_error(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s", request.url.path)
        return error(request, 500, "internal error")

    def unauthorized(request: Request, message: str) -> Response:
        return error(request, 401, message, {"WWW-Authenticate": "Bearer"})

    middleware = []
    if settings.cors_origins:  # outermost, so that a browser's preflight needs no key
        middleware.append(
            Middleware(
                JSONCORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "X-API-Key", "Content-Type", "If-None-Match"],
                expose_headers=["ETag", "Retry-After"],
                max_age=600,
            )
        )
    if keys:
        middleware.append(Middleware(APIKeyMiddleware, keys=keys, reject=unauthorized))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.aclose()

    app = Starlette(
        routes=[
            exact(route)
            for route in (
                Route("/", features, methods=["GET"]),
                Route("/features/{name:name}", feature, methods=["GET"]),
                Route("/health", health, methods=["GET"]),
                Route("/openapi.json", openapi_json, methods=["GET"]),
                Route("/ofrep/v1/evaluate/flags/{key:name}", ofrep_flag, methods=["POST"]),
                Route("/ofrep/v1/evaluate/flags", ofrep_flags, methods=["POST"]),
            )
        ],
        exception_handlers={
            HTTPException: http_error,
            ofrep.OFREPError: ofrep_error,
            ClientDisconnect: client_gone,
            StoreUnavailable: store_unavailable,
            StoreError: store_error,
            Exception: internal_error,
        },
        middleware=middleware,
        lifespan=lifespan,
    )
    # `/health/` is a JSON 404, not a redirect: Starlette's redirect is not JSON, and fails with a 500 when
    # the query string is not UTF-8 (found by the fuzz test in tests/test_chaos.py).
    app.router.redirect_slashes = False
    return app
