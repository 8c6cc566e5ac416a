"""Conditional requests: an ETag that is a hash of the body, and 304 Not Modified when the client has it."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response


def etag(body: bytes) -> str:
    """A strong entity tag derived from the body alone: any change of flags or of context changes it."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _matches(if_none_match: str, tag: str) -> bool:
    # If-None-Match compares weakly (RFC 9110, 13.1.2): a `W/` prefix does not prevent a match.
    candidates = (candidate.strip().removeprefix("W/") for candidate in if_none_match.split(","))
    return any(candidate in ("*", tag) for candidate in candidates)


def conditional(request: Request, response: Response, cache_control: str, tag: str | None = None) -> Response:
    """`response` with its ETag (`tag`, when already computed from its body) and Cache-Control, or an empty
    304 carrying them when If-None-Match matches."""
    headers = {"ETag": tag or etag(response.body), "Cache-Control": cache_control}
    if _matches(request.headers.get("if-none-match", ""), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return response
