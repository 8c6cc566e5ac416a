"""Chaos under load (Redis killed, then hung) and bad input at volume: slower, so marked `chaos`.

`make test` runs them with the rest; `make chaos` prints the same run's report (bench/chaos.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp, Message

from bench import chaos
from bench.servers import RedisServer, free_port
from flipper.app import create_app
from flipper.settings import Settings
from flipper.store import Store

pytestmark = pytest.mark.chaos


def test_kill_and_hang_under_load(own_redis_server: RedisServer, tmp_path: Path) -> None:
    report = chaos.run(own_redis_server, tmp_path)
    chaos.print_report(report)  # shown with -s, and on failure

    assert report["wrong_200"] == 0, "a 200 carried a wrong feature list"
    assert report["other_statuses"] == 0, "an answer was neither right nor a JSON 503"
    phases = report["phases"]
    assert phases["before"]["right"] > 0
    assert report["wrong_before_kill"] == 0
    # Down: every answer a JSON 503 within DOWN_BOUND_SECONDS.
    assert phases["down"]["json_503"] > 0
    assert report["down_outside_bound"] == 0
    # Hung: every answer within the connect and command timeouts.
    assert phases["hung"]["json_503"] > 0
    assert report["hung_outside_bound"] == 0
    # Back: all right again, soon.
    for recovery in (report["recovery_after_restart_s"], report["recovery_after_sigcont_s"]):
        assert recovery is not None, "answers were still wrong at the end of the phase"
        assert recovery < chaos.RECOVERY_BOUND_SECONDS


# Bad input at volume, straight through ASGI so that any bytes can be the query string.
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "FOO"])
PATHS = st.one_of(st.sampled_from(["/", "/health", "//", "/?", "/health/"]), st.text(max_size=30).map("/{}".format))
NAMES = st.one_of(st.sampled_from(["version", "group", "user", "", "Group", "user[]"]), st.text(max_size=10))
PAIRS = st.lists(st.tuples(NAMES, st.text(max_size=40)), max_size=40).map(
    lambda pairs: "&".join(f"{name}={value}" for name, value in pairs).encode("utf-8", "surrogatepass")
)
QUERIES = st.one_of(st.binary(max_size=300), PAIRS, PAIRS.map(lambda q: q.replace(b"=", b"=%")))


async def call(app: ASGIApp, method: str, path: str, query: bytes, body: bytes) -> tuple[int, dict[str, str], bytes]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogatepass"),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"flipper.test"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("flipper.test", 80),
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop() if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture(params=["up", "down"])
async def fuzz_app(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, ASGIApp]]:
    """The app over a real Redis that answers, or over a port where nothing listens."""
    url = request.getfixturevalue("redis_server").url if request.param == "up" else f"redis://127.0.0.1:{free_port()}"
    app_settings = Settings(redis_url=url)
    store = Store.from_settings(app_settings)
    if request.param == "up":
        await store.client.flushall()  # another test may have left a key that is not a set
    yield request.param, create_app(store, app_settings)
    await store.aclose()


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=METHODS, path=PATHS, query=QUERIES, body=st.binary(max_size=200))
async def test_no_5xx_but_the_store_down_503(
    fuzz_app: tuple[str, ASGIApp], method: str, path: str, query: bytes, body: bytes
) -> None:
    store_state, app = fuzz_app
    status, headers, content = await call(app, method, path, query, body)
    if store_state == "down" and status == 503:
        assert headers["retry-after"] == "1"
    else:
        assert status < 500, (status, content)
    assert headers["content-type"] == "application/json"
    if method != "HEAD":
        expected_keys = {"/": {"features"}, "/health": {"status"}}.get(path) if status == 200 else {"error"}
        assert set(json.loads(content)) == expected_keys, (status, content)


@pytest.mark.parametrize("query", [b"", b"\x80"])
async def test_trailing_slash_is_a_json_404_not_a_redirect(redis_server: RedisServer, query: bytes) -> None:
    app_settings = Settings(redis_url=redis_server.url)
    store = Store.from_settings(app_settings)
    status, headers, content = await call(create_app(store, app_settings), "GET", "/health/", query, b"")
    await store.aclose()
    assert (status, headers["content-type"], json.loads(content)) == (404, "application/json", {"error": "Not Found"})
