"""JSON responses in the seed's format, and the error body every failure shares."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette import responses


class JSONResponse(responses.JSONResponse):
    """JSON with the seed's spacing (`{"features": ["a", "b"]}`) and Unicode kept as is."""

    def render(self, content: Any) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (echoing a path, say): JSON's \u escapes still carry it
            return json.dumps(content).encode("ascii")


# The only characters json.dumps(ensure_ascii=False) escapes.
_ESCAPED = bytes(range(0x20)) + b'"\\'


def features_body(features: list[str]) -> bytes:
    """`{"features": [...]}` byte for byte as json.dumps writes it, joined directly when no name needs escaping.

    A join and a count cost about 5 µs for the large data set's 375 names; json.dumps, about 19 µs.
    """
    body = ('{"features": ["' + '", "'.join(features) + '"]}' if features else '{"features": []}').encode()
    # Two quotes for the key and two per name: any more, or any backslash or control character, needs escaping.
    if len(body) - len(body.translate(None, _ESCAPED)) == 2 + 2 * len(features):
        return body
    return json.dumps({"features": features}, ensure_ascii=False).encode("utf-8")


def error_response(status_code: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """`{"error": message}`: the body of every 4xx and 5xx Flipper answers."""
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)
