"""Optional API keys: every route but /health and /openapi.json asks for one when keys are configured.

A key is presented as `Authorization: Bearer <key>` or `X-API-Key: <key>`, and compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from flipper.core.secretsmanager import fetch_secret
from flipper.core.settings import Settings, SettingsError, parse_api_keys
from flipper.serve._utils import route_path

OPEN_PATHS = frozenset({"/health", "/openapi.json"})  # load balancers and documentation need no key

MISSING = "an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>"
INVALID = "the API key is not valid"


def api_keys(settings: Settings) -> tuple[str, ...]:
    """FLIPPER_API_KEYS and the keys in the FLIPPER_API_KEYS_SECRET_ARN secret: read once, when the app is built."""
    keys = settings.api_keys
    if settings.api_keys_secret_arn is not None:
        try:
            keys += parse_api_keys(fetch_secret(settings.api_keys_secret_arn))
        except ValueError as exc:
            raise SettingsError(f"the secret FLIPPER_API_KEYS_SECRET_ARN names is invalid: {exc}") from None
    return keys


def presented_key(headers: Headers) -> str | None:
    """The key a request carries: a Bearer token first, else X-API-Key."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


class APIKeyMiddleware:
    """Answers `reject(request, message)` (a 401) unless the request carries one of `keys`."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...], reject: Callable[[Request, str], Response]) -> None:
        self.app = app
        self.keys = [key.encode("latin-1") for key in keys]
        self.reject = reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        key = presented_key(Headers(scope=scope))
        if key is not None and self._valid(key.encode("latin-1")):
            await self.app(scope, receive, send)
            return
        await self.reject(Request(scope), MISSING if key is None else INVALID)(scope, receive, send)

    def _valid(self, presented: bytes) -> bool:
        # Every key is compared, with no early exit, so the timing tells neither which key nor how much matched.
        valid = False
        for key in self.keys:
            valid |= hmac.compare_digest(presented, key)
        return valid
