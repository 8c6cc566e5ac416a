"""CORS for browsers on the configured origins, with a refused preflight answered in Flipper's JSON."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from flipper.serve.responses import error_response


class JSONCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, except that a refused preflight is `{"error": ...}`, not plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        # Keep the CORS headers Starlette set; the body's own headers come with the JSON body.
        headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
        return error_response(response.status_code, bytes(response.body).decode(), headers)
