"""A real redis-server killed, restarted with an empty script cache, and hung: fast JSON 503s, then right answers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import redis

from bench.servers import RedisServer
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.serve.app import create_app
from tests.timeouts import IDLE

# "About a second": the defaults (0.25 s connect, 0.5 s command timeout) must answer well within it.
BOUND_SECONDS = 1.0


def seed(server: RedisServer) -> None:
    with redis.Redis(port=server.port) as writer:
        writer.sadd("version:v1:positive", "feature_A", "feature_B")
        writer.sadd("group:g1:negative", "feature_B")


@pytest.fixture
async def app_client(own_redis_server: RedisServer) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(redis_url=own_redis_server.url)
    store = Store.from_settings(settings)
    transport = httpx.ASGITransport(app=create_app(store, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://flipper.test") as client:
        yield client
    await store.aclose()


async def timed_get(client: httpx.AsyncClient, url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.get(url)
    return response, time.monotonic() - started


async def assert_unavailable(client: httpx.AsyncClient, url: str) -> None:
    response, elapsed = await timed_get(client, url)
    assert response.status_code == 503
    assert response.json() == {"error": "the flag store is unavailable; retry later"}
    assert response.headers["retry-after"] == "1"
    assert elapsed < BOUND_SECONDS


async def test_redis_down_answers_fast_json_503(app_client: httpx.AsyncClient, own_redis_server: RedisServer) -> None:
    seed(own_redis_server)
    assert (await app_client.get("/?version=v1")).status_code == 200
    own_redis_server.kill()
    await assert_unavailable(app_client, "/?version=v1")
    await assert_unavailable(app_client, "/health")


async def test_restart_with_empty_script_cache_costs_no_failed_request(
    app_client: httpx.AsyncClient, own_redis_server: RedisServer
) -> None:
    seed(own_redis_server)
    assert (await app_client.get("/?version=v1&group=g1")).json() == {"features": ["feature_A"]}
    own_redis_server.kill()
    own_redis_server.start()  # same port; no data and no scripts survive
    seed(own_redis_server)
    # The pooled connection is dead and the script unknown: the first request must still succeed.
    response = await app_client.get("/?version=v1&group=g1")
    assert (response.status_code, response.json()) == (200, {"features": ["feature_A"]})
    assert (await app_client.get("/health")).status_code == 200


async def test_hung_redis_is_bounded_by_the_command_timeout_then_recovers(
    app_client: httpx.AsyncClient, own_redis_server: RedisServer
) -> None:
    seed(own_redis_server)
    assert (await app_client.get("/?version=v1")).status_code == 200
    own_redis_server.signal(signal.SIGSTOP)
    try:
        await assert_unavailable(app_client, "/?version=v1")
        await assert_unavailable(app_client, "/health")
    finally:
        own_redis_server.signal(signal.SIGCONT)
    response = await app_client.get("/?version=v1")
    assert (response.status_code, response.json()) == (200, {"features": ["feature_A", "feature_B"]})


class SilentProxy:
    """A TCP proxy to Redis that can stop forwarding on the connections it holds without closing them, as a
    network that forgets an idle connection does (a NAT's idle timeout, a Lambda frozen for minutes): the
    client sees no FIN and no RST; its command just gets no answer. New connections are forwarded again."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.generation = 0  # connections opened in an earlier generation are dropped silently
        self.accepted = 0

    async def __aenter__(self) -> SilentProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.server.close()

    def drop_silently(self) -> None:
        self.generation += 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        generation = self.generation
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                if generation != self.generation:
                    await asyncio.Event().wait()  # hold the connection open, forwarding nothing
                sink.write(data)
                await sink.drain()

        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.mark.parametrize("cut", ["network drops it silently", "CLIENT KILL"])
async def test_a_connection_cut_while_idle_is_replaced_before_use(own_redis_server: RedisServer, cut: str) -> None:
    """After `redis_idle_reconnect` seconds unused, a pooled connection is not trusted: it is closed and a new
    one opened, so a connection the network dropped costs no command timeout and no 503."""
    seed(own_redis_server)
    async with SilentProxy(own_redis_server.port) as proxy:
        settings = Settings(redis_url=f"redis://127.0.0.1:{proxy.port}", redis_idle_reconnect=IDLE)
        store = Store.from_settings(settings)
        transport = httpx.ASGITransport(app=create_app(store, settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://flipper.test") as client:
            assert (await client.get("/?version=v1")).status_code == 200
            assert (await client.get("/?version=v1")).status_code == 200  # not idle: the same connection
            assert proxy.accepted == 1
            if cut == "CLIENT KILL":
                with redis.Redis(port=own_redis_server.port) as killer:
                    assert killer.client_kill_filter(skipme=True) == 1
            else:
                proxy.drop_silently()
            await asyncio.sleep(IDLE + 0.1)
            response, elapsed = await timed_get(client, "/?version=v1")
            assert (response.status_code, response.json()) == (200, {"features": ["feature_A", "feature_B"]})
            assert elapsed < settings.command_timeout
            assert proxy.accepted == 2
        await store.aclose()
