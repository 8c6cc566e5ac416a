"""The ASGI application: the routes (`endpoints`), their errors (`errors`) and the middleware, put together."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware

from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.core.usage import Usage
from flipper.serve import errors
from flipper.serve.auth import APIKeyMiddleware, api_keys
from flipper.serve.cors import JSONCORSMiddleware
from flipper.serve.endpoints import Endpoints

# How long a shutdown waits for the last usage flush: Lambda gives its runtime 300 ms after SIGTERM.
SHUTDOWN_FLUSH_SECONDS = 0.2


def create_app(store: Store, settings: Settings, usage: Usage | None = None) -> Starlette:
    """Build the app around an existing store; the caller decides where the store comes from.

    `usage` counts the features evaluations name (default: one from the settings, none when FLIPPER_USAGE
    is off); it is `app.state.usage`, flushed at the lifespan's shutdown. API keys in a secret are fetched
    here, once: a request never waits for Secrets Manager.
    """
    keys = api_keys(settings)
    usage = usage or Usage.from_settings(store, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if usage is not None:
            await usage.close(SHUTDOWN_FLUSH_SECONDS)
        await store.aclose()

    app = Starlette(
        routes=Endpoints(store, settings, secured=bool(keys), usage=usage).routes(),
        exception_handlers=errors.handlers(settings),
        middleware=_middleware(settings, keys),
        lifespan=lifespan,
    )
    # `/health/` is a JSON 404, not a redirect: Starlette's redirect is not JSON, and fails with a 500 when
    # the query string is not UTF-8 (found by the fuzz test in tests/test_chaos.py).
    app.router.redirect_slashes = False
    app.state.usage = usage
    return app


def _middleware(settings: Settings, keys: tuple[str, ...]) -> list[Middleware]:
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
        middleware.append(Middleware(APIKeyMiddleware, keys=keys, reject=errors.unauthorized))
    return middleware
