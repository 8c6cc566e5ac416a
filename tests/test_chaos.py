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
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.serve.app import create_app

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("environ", [{}, {"FLIPPER_CACHE_MAX_AGE": "30"}], ids=["no cache", "cache"])
def test_kill_and_hang_under_load(own_redis_server: RedisServer, tmp_path: Path, environ: dict[str, str]) -> None:
    """With the cache too: a store error is a 503, never an answer from the cache."""
    report = chaos.run(own_redis_server, tmp_path, environ=environ)
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
BULK = "/ofrep/v1/evaluate/flags"
PATHS = st.one_of(
    st.sampled_from(["/", "/health", "//", "/?", "/health/", "/features/x", "/features/", BULK, BULK + "/x"]),
    st.text(max_size=30).map("/{}".format),
    st.sampled_from(["/features/", BULK + "/"]).flatmap(lambda route: st.text(max_size=30).map(route.__add__)),
)
# Any text, lone surrogates included: JSON's escapes can carry them, and Redis cannot take them.
TEXT = st.one_of(st.text(st.characters(codec=None, exclude_categories=()), max_size=20), st.just("a\udc80"))
FIELDS = st.one_of(TEXT, st.lists(TEXT, max_size=4), st.integers(), st.none(), st.booleans())
CONTEXTS = st.dictionaries(st.sampled_from(["targetingKey", "version", "group", "other"]), FIELDS)
BODIES = st.one_of(
    st.binary(max_size=200),
    st.one_of(CONTEXTS, FIELDS).map(lambda context: json.dumps({"context": context}).encode()),
)
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
@given(method=METHODS, path=PATHS, query=QUERIES, body=BODIES)
async def test_no_5xx_but_the_store_down_503(
    fuzz_app: tuple[str, ASGIApp], method: str, path: str, query: bytes, body: bytes
) -> None:
    await assert_a_json_answer(fuzz_app, method, path, query, body)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.one_of(st.just(BULK), TEXT.map(f"{BULK}/{{}}".format)), body=BODIES)
async def test_no_ofrep_body_gets_a_5xx_but_the_store_down_503(
    fuzz_app: tuple[str, ASGIApp], path: str, body: bytes
) -> None:
    """OFREP's bodies, JSON or not, with any text in the context's fields: few requests above reach them."""
    await assert_a_json_answer(fuzz_app, "POST", path, b"", body)


async def assert_a_json_answer(
    fuzz_app: tuple[str, ASGIApp], method: str, path: str, query: bytes, body: bytes
) -> None:
    """No 5xx but a 503 while the store is down, and a JSON body shaped as its route and status say."""
    store_state, app = fuzz_app
    status, headers, content = await call(app, method, path, query, body)
    if store_state == "down" and status == 503:
        assert headers["retry-after"] == "1"
    else:
        assert status < 500, (status, content)
    assert headers["content-type"] == "application/json"
    if method != "HEAD":
        keys = set(json.loads(content))
        assert keys in body_keys(path, status), (status, content)


def body_keys(path: str, status: int) -> list[set[str]]:
    """The key sets a JSON answer on `path` with `status` may have."""
    if status >= 400:
        ofrep = {"errorCode", "errorDetails"}
        return [ofrep, ofrep | {"key"}] if path.startswith("/ofrep/") else [{"error"}]
    if path.startswith(BULK + "/"):
        return [{"key", "value", "reason", "variant"}]
    if path.startswith("/features/"):
        answer = {"feature", "enabled", "reason"}
        return [answer, answer | {"enabled_by", "disabled_by", "rollouts", "bucket"}]
    return [{"features"}] if path == "/" else [{"status"}] if path == "/health" else [{"flags"}] if path == BULK else []


@pytest.mark.parametrize("query", [b"", b"\x80"])
async def test_trailing_slash_is_a_json_404_not_a_redirect(redis_server: RedisServer, query: bytes) -> None:
    app_settings = Settings(redis_url=redis_server.url)
    store = Store.from_settings(app_settings)
    status, headers, content = await call(create_app(store, app_settings), "GET", "/health/", query, b"")
    await store.aclose()
    assert (status, headers["content-type"], json.loads(content)) == (404, "application/json", {"error": "Not Found"})
