"""OFREP over HTTP: context mapping, the evaluation shape, reasons, bulk, ETags and every error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bench.servers import RedisServer
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.serve.app import create_app
from flipper.serve.ofrep import MAX_DEPTH
from tests.test_store import write

SINGLE = "/ofrep/v1/evaluate/flags/"
BULK = "/ofrep/v1/evaluate/flags"


async def test_single_evaluation_maps_the_context(client: httpx.AsyncClient, store: Store) -> None:
    await write(
        store, {"version:v1:positive": {"new_ui"}, "group:beta:negative": {"new_ui"}, "user:u1:positive": {"x"}}
    )
    response = await client.post(SINGLE + "new_ui", json={"context": {"version": "v1", "plan": "ignored"}})
    assert response.status_code == 200
    assert response.json() == {"key": "new_ui", "value": True, "reason": "TARGETING_MATCH", "variant": "on"}
    response = await client.post(SINGLE + "new_ui", json={"context": {"version": "v1", "group": ["alpha", "beta"]}})
    assert response.json() == {"key": "new_ui", "value": False, "reason": "TARGETING_MATCH", "variant": "off"}
    response = await client.post(SINGLE + "x", json={"context": {"targetingKey": "u1"}})
    assert response.json()["value"] is True
    response = await client.post(SINGLE + "x", json={"context": {"targetingKey": "u2", "group": "beta"}})
    assert response.json() == {"key": "x", "value": False, "reason": "DEFAULT", "variant": "off"}


async def test_static_and_anonymous(client: httpx.AsyncClient, store: Store) -> None:
    await write(store, {"global:positive": {"g"}})
    for body in ({}, {"context": {}}, {"context": {"targetingKey": None, "version": None, "group": None}}):
        response = await client.post(SINGLE + "g", json=body)
        assert response.json() == {"key": "g", "value": True, "reason": "STATIC", "variant": "on"}


async def test_bulk_lists_every_named_flag_sorted(client: httpx.AsyncClient, store: Store) -> None:
    await write(
        store,
        {"global:positive": {"b", "a"}, "user:u:negative": {"a"}, "group:g:positive": {"c"}, "user:v:positive": {"z"}},
    )
    response = await client.post(BULK, json={"context": {"targetingKey": "u", "group": "g"}})
    assert response.status_code == 200
    assert response.json() == {
        "flags": [
            {"key": "a", "value": False, "reason": "TARGETING_MATCH", "variant": "off"},
            {"key": "b", "value": True, "reason": "STATIC", "variant": "on"},
            {"key": "c", "value": True, "reason": "TARGETING_MATCH", "variant": "on"},
        ]
    }
    assert (await client.post(BULK, json={"context": {"targetingKey": "nobody"}})).json()["flags"][0]["key"] == "a"


async def test_bulk_etag_and_304(client: httpx.AsyncClient, store: Store) -> None:
    await write(store, {"global:positive": {"a"}})
    first = await client.post(BULK, json={"context": {"targetingKey": "u"}})
    tag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = await client.post(BULK, json={"context": {"targetingKey": "u"}}, headers={"If-None-Match": tag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", tag)
    # The body alone decides: a context with the same answer shares the tag; a different answer does not.
    same = await client.post(BULK, json={"context": {"targetingKey": "v"}}, headers={"If-None-Match": tag})
    assert same.status_code == 304
    await write(store, {"user:v:positive": {"b"}})
    other = await client.post(BULK, json={"context": {"targetingKey": "v"}}, headers={"If-None-Match": tag})
    assert (other.status_code, other.headers["etag"] != tag) == (200, True)
    await write(store, {"global:negative": {"a"}})
    changed = await client.post(BULK, json={"context": {"targetingKey": "u"}}, headers={"If-None-Match": tag})
    assert (changed.status_code, changed.headers["etag"] != tag) == (200, True)


@pytest.mark.parametrize("settings", [Settings(max_id_length=8, max_groups=2, max_body_length=64)])
@pytest.mark.parametrize(
    ("body", "status", "code", "details"),
    [
        (b"{not json", 400, "PARSE_ERROR", "body is not JSON: Expecting property name enclosed in double quotes"),
        (b"", 400, "PARSE_ERROR", "body is not JSON: Expecting value"),
        (b"\xff", 400, "PARSE_ERROR", "body is not JSON: "),
        (b"[]", 400, "PARSE_ERROR", 'body must be a JSON object: {"context": {...}}'),
        (b'{"context": {"age": NaN}}', 400, "PARSE_ERROR", "body is not JSON: NaN is not a JSON number"),
        (b'{"context": {"age": -Infinity}}', 400, "PARSE_ERROR", "body is not JSON: -Infinity is not a JSON number"),
        (b'{"context": []}', 400, "INVALID_CONTEXT", "context must be a JSON object"),
        (b'{"context": null}', 400, "INVALID_CONTEXT", "context must be a JSON object"),
        (b'{"context": {"targetingKey": 7}}', 400, "INVALID_CONTEXT", "context field 'targetingKey' must be a string"),
        (b'{"context": {"targetingKey": ""}}', 400, "INVALID_CONTEXT", "context field 'targetingKey' is empty"),
        (b'{"context": {"version": "123456789"}}', 400, "INVALID_CONTEXT", "context field 'version' is 9 characters"),
        (b'{"context": {"group": {"a": 1}}}', 400, "INVALID_CONTEXT", "context field 'group' must be a string or a"),
        (b'{"context": {"group": ["a", 1]}}', 400, "INVALID_CONTEXT", "context field 'group' must be a string"),
        (b'{"context": {"group": ["a", "b", "c"]}}', 400, "INVALID_CONTEXT", "3 groups given; the limit is 2"),
        (b'{"context": {"targetingKey": "\\ud800"}}', 400, "INVALID_CONTEXT", "context field 'targetingKey' is not"),
        (b'{"context": {"group": ["a", "\\udfff"]}}', 400, "INVALID_CONTEXT", "context field 'group' is not valid"),
        (b'{"context": {"version": "\\ufffd"}}', 400, "INVALID_CONTEXT", "context field 'version' contains U+FFFD"),
        (b" " * 65, 413, "GENERAL", "body is 65 bytes long; the limit is 64"),
    ],
)
async def test_bad_requests_follow_the_spec(
    client: httpx.AsyncClient, body: bytes, status: int, code: str, details: str
) -> None:
    response = await client.post(SINGLE + "flag", content=body)
    assert response.status_code == status
    assert response.json().keys() == {"key", "errorCode", "errorDetails"}
    assert (response.json()["key"], response.json()["errorCode"]) == ("flag", code)
    assert response.json()["errorDetails"].startswith(details)
    response = await client.post(BULK, content=body)  # the bulk form has no key
    assert (response.status_code, response.json().keys()) == (status, {"errorCode", "errorDetails"})
    assert response.json()["errorCode"] == code


@pytest.mark.parametrize("settings", [Settings(max_body_length=64)])
async def test_a_streamed_body_is_refused_once_over_the_limit(client: httpx.AsyncClient) -> None:
    """Without a Content-Length the body is counted as it arrives; the rest is never read."""
    sent = []

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b'{"context": {', b" " * 40, b" " * 1000, b"}}"):
            sent.append(chunk)
            yield chunk

    response = await client.post(BULK, content=chunks())
    assert (response.status_code, response.json()) == (
        413,
        {"errorCode": "GENERAL", "errorDetails": "body is over 64 bytes long; the limit is 64"},
    )
    assert len(sent) == 3


async def test_deep_nesting_is_a_parse_error(client: httpx.AsyncClient) -> None:
    response = await client.post(BULK, content=b"[" * 4000 + b"]" * 4000)
    assert (response.status_code, response.json()["errorCode"]) == (400, "PARSE_ERROR")


@pytest.mark.parametrize("settings", [Settings(max_body_length=1 << 20)])
@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
async def test_deep_nesting_is_refused_by_its_depth_before_parsing(client: httpx.AsyncClient, opening: bytes) -> None:
    """A body nested deeper than MAX_DEPTH is named as such, not as Python's recursion limit, whatever its
    size; one at the limit parses (and is then judged by its shape)."""
    closing = b"]" if opening == b"[" else b"}"
    for depth in (MAX_DEPTH + 1, 100_000):
        response = await client.post(BULK, content=opening * depth + b"0" + closing * depth)
        assert (response.status_code, response.json()) == (
            400,
            {"errorCode": "PARSE_ERROR", "errorDetails": f"body is nested too deeply; the limit is {MAX_DEPTH} levels"},
        )
    # Brackets inside strings are text, not nesting.
    strings = b'{"context": {"targetingKey": "' + b"[" * 100 + b'"}}'
    assert (await client.post(BULK, content=strings)).status_code == 200
    at_limit = await client.post(BULK, content=b'{"x": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}")
    assert at_limit.status_code == 200


@pytest.mark.parametrize("settings", [Settings(max_id_length=8)])
async def test_bad_flag_key(client: httpx.AsyncClient) -> None:
    response = await client.post(SINGLE + "123456789", json={})
    assert (response.status_code, response.json()) == (
        400,
        {"key": "123456789", "errorCode": "GENERAL", "errorDetails": "flag key is 9 characters long; the limit is 8"},
    )
    invalid = await client.post(SINGLE + "%FF", json={})
    assert invalid.json()["errorDetails"] == "flag key is not valid UTF-8"
    replacement = await client.post(SINGLE + "%EF%BF%BD", json={})
    assert replacement.json()["errorDetails"].startswith("flag key contains U+FFFD")


async def test_other_errors_take_the_ofrep_shape(client: httpx.AsyncClient, store: Store) -> None:
    response = await client.get(BULK)
    assert (response.status_code, response.json()) == (
        405,
        {"errorCode": "GENERAL", "errorDetails": "Method Not Allowed"},
    )
    await store.client.set("global:positive", "not a set")
    response = await client.post(BULK, json={})
    assert (response.status_code, response.json()) == (
        500,
        {"errorCode": "GENERAL", "errorDetails": "the flag store answered with an error"},
    )


async def test_store_down_is_a_503_with_retry_after(own_redis_server: RedisServer) -> None:
    settings = Settings(redis_url=own_redis_server.url, retry_after=7)
    app = create_app(Store.from_settings(settings), settings)
    own_redis_server.kill()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://flipper.test") as client:
        for path in (SINGLE + "f", BULK):
            response = await client.post(path, json={})
            assert (response.status_code, response.headers["retry-after"]) == (503, "7")
            assert response.json() == {
                "errorCode": "GENERAL",
                "errorDetails": "the flag store is unavailable; retry later",
            }
        response = await client.get("/features/f")
        assert (response.status_code, response.json()) == (503, {"error": "the flag store is unavailable; retry later"})
