"""JSON responses in the seed's format, and the error body every failure shares."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette import responses


class JSONResponse(responses.JSONResponse):
    """JSON with the seed's spacing (`{"features": ["a", "b"]}`) and Unicode kept as is."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False).encode("utf-8")


def error_response(status_code: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """`{"error": message}`: the body of every 4xx and 5xx Flipper answers."""
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)
