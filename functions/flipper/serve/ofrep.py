"""The OpenFeature Remote Evaluation Protocol (OFREP v0.3): its request context in, its evaluations out.

Any OpenFeature SDK's generic OFREP provider can then use Flipper. Context mapping: `targetingKey` is the
user, `version` the version, `group` one group or a list of groups; every other field is an attribute for
the targeting rules (text, a number or a boolean). A flag with no
value is a boolean; a typed one answers its value when on, and no value (reason DISABLED) when off.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from flipper.core.model import Context, Evaluation, rules_key
from flipper.core.settings import Settings
from flipper.serve._utils import route_path
from flipper.serve.query import attribute_set, check_name, group_set, path_name
from flipper.serve.responses import JSONResponse

PATH_PREFIX = "/ofrep/"

PARSE_ERROR = "PARSE_ERROR"
INVALID_CONTEXT = "INVALID_CONTEXT"
GENERAL = "GENERAL"
FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
# OFREP's reason for a typed flag that is off: answered without a value, so the client's code default applies.
DISABLED = "DISABLED"
# How deeply a body may nest: a context is two levels and a list of groups; deeper is no context at all.
MAX_DEPTH = 32
# A JSON string, escapes included. An unclosed one runs to the end, in one pass: were the quote required, each
# later quote would start a scan to the end again (a body of `"\"\"...` cost its length squared).
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?')
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")


class OFREPError(Exception):
    """A request OFREP refuses: answered with `errorCode`, `errorDetails` and, on single evaluations, `key`."""

    def __init__(
        self,
        status_code: int,
        code: str,
        details: str,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(details)
        self.status_code, self.code, self.details, self.key, self.headers = status_code, code, details, key, headers


def error_response(
    status_code: int, code: str, details: str, key: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"key": key} if key is not None else {}
    body.update(errorCode=code, errorDetails=details)
    return JSONResponse(body, status_code=status_code, headers=headers)


def is_ofrep(request: Request) -> bool:
    """Whether the request is OFREP's, whose errors take OFREP's shape."""
    return route_path(request.scope).startswith(PATH_PREFIX)


def flag_key(request: Request, settings: Settings) -> str:
    """The `{key}` of a single evaluation, checked like a feature name."""
    key = request.path_params["key"]
    try:
        return path_name(key, "flag key", settings, request.scope.get("raw_path"))
    except HTTPException as exc:
        raise OFREPError(400, GENERAL, exc.detail, key) from None


async def read_context(request: Request, settings: Settings, key: str | None = None) -> Context:
    """The caller from the request body `{"context": {...}}`; a missing context is the anonymous caller."""
    try:
        async with asyncio.timeout(settings.body_timeout):
            body = await _body(request, settings.max_body_length, key)
    except TimeoutError:
        # A client that announced more than it sends must not hold the request: Connection: close, since the
        # rest of its body would otherwise be read as the next request.
        message = f"the body did not arrive within {settings.body_timeout:g} seconds"
        raise OFREPError(408, GENERAL, message, key, {"Connection": "close"}) from None
    if _depth(body) > MAX_DEPTH:
        raise OFREPError(400, PARSE_ERROR, f"body is nested too deeply; the limit is {MAX_DEPTH} levels", key)
    try:
        document = json.loads(body, parse_constant=_not_json)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise OFREPError(400, PARSE_ERROR, f"body is not JSON: {exc}", key) from None
    if not isinstance(document, dict):
        raise OFREPError(400, PARSE_ERROR, 'body must be a JSON object: {"context": {...}}', key)
    fields = document.get("context", {})
    if not isinstance(fields, dict):
        raise OFREPError(400, INVALID_CONTEXT, "context must be a JSON object", key)
    try:
        return _context(fields, settings)
    except HTTPException as exc:
        raise OFREPError(400, INVALID_CONTEXT, exc.detail, key) from None


async def _body(request: Request, limit: int, key: str | None) -> bytes:
    """The body, refused with a 413 as soon as it is known to exceed `limit`: from its Content-Length, or
    while it streams in, so that an oversized body is never held in memory whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise OFREPError(413, GENERAL, f"body is {int(declared)} bytes long; the limit is {limit}", key)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise OFREPError(413, GENERAL, f"body is over {limit} bytes long; the limit is {limit}", key)
    return bytes(body)


def _not_json(constant: str) -> None:
    """Python's json reads NaN and Infinity, which JSON has not: a NaN attribute would make a cache key that
    never equals itself, one new cached answer a request."""
    raise ValueError(f"{constant} is not a JSON number")


def _depth(body: bytes) -> int:
    """How deeply the JSON in `body` nests, its strings skipped: measured before parsing, in passes in C but
    the last over the brackets alone, so that a deep body costs what it weighs and no recursion."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(1 if byte in b"[{" else -1 for byte in brackets), default=0)


_CONTEXT = ("targetingKey", "version", "group")  # the fields that say who the caller is; the others are attributes


def _context(fields: dict[str, Any], settings: Settings) -> Context:
    groups = fields.get("group")
    if groups is None:
        groups = []
    elif isinstance(groups, str):
        groups = [groups]
    elif not isinstance(groups, list):
        raise HTTPException(400, "context field 'group' must be a string or a list of strings")
    unique = group_set([_string("group", group, settings) for group in groups], settings)
    version, user = fields.get("version"), fields.get("targetingKey")  # JSON null reads as absent
    return Context(
        version=None if version is None else _string("version", version, settings),
        groups=unique,
        user=None if user is None else _string("targetingKey", user, settings),
        # JSON null reads as absent, as it does for the fields above.
        attributes=attribute_set(
            ((name, value) for name, value in fields.items() if name not in _CONTEXT and value is not None), settings
        ),
    )


def _string(name: str, value: Any, settings: Settings) -> str:
    if not isinstance(value, str):
        raise HTTPException(400, f"context field {name!r} must be a string")
    return check_name(f"context field {name!r}", value, settings)


def not_found(key: str) -> OFREPError:
    """A single evaluation of a flag the store does not know (`model.unknown`): OFREP's 404."""
    return OFREPError(404, FLAG_NOT_FOUND, f"flag {key!r} is not known: no write names it", key)


def evaluation(result: Evaluation) -> dict[str, Any]:
    """One evaluation in OFREP's shape. A boolean flag: value true or false, variant `on` or `off`, and the
    OpenFeature reason. A typed flag that is on: its value, the variant's name when the variants gave it (else
    the entity whose value it is: `group:beta`; `rule:2` for the second targeting rule's), and the reason
    (SPLIT for a variant, TARGETING_MATCH for a rule). Off: no value, reason DISABLED, variant `off` (the
    Python provider reads `variant` from every success)."""
    if not result.typed:
        variant = "on" if result.enabled else "off"
        return {"key": result.feature, "value": result.enabled, "reason": result.reason, "variant": variant}
    if not result.enabled:
        return {"key": result.feature, "reason": DISABLED, "variant": "off"}
    if result.value_from == rules_key():
        variant = f"rule:{result.rule}"
    else:
        variant = result.variant or (result.value_from or "").rpartition(":")[0]
    return {"key": result.feature, "value": result.value, "reason": result.reason, "variant": variant}
