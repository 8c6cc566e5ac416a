"""Shared fixtures: a throwaway real redis-server, and every store test run on it and on fakeredis."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator

import fakeredis
import httpx
import pytest

from bench.servers import RedisServer
from flipper.app import create_app
from flipper.settings import Settings
from flipper.store import Store

# CI sets this so that a missing redis-server fails the run instead of skipping the real-Redis tests.
REQUIRE_REDIS = os.environ.get("FLIPPER_REQUIRE_REDIS") == "1"


def skip_without(program: str) -> None:
    """Skip (or, under FLIPPER_REQUIRE_REDIS=1, fail) when `program` is not on PATH."""
    if shutil.which(program) is None:
        reason = f"{program} is not on PATH (apt-get install redis-server); real-Redis tests need it"
        if REQUIRE_REDIS:
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    skip_without("redis-server")
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server for this test alone, which it may kill, hang and restart."""
    skip_without("redis-server")
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture(params=["redis", "fakeredis"])
async def store(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Store]:
    """A store over an empty database: a real redis-server, then fakeredis, for every test that asks."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        store = Store.from_settings(Settings(redis_url=server.url, key_prefix=settings.key_prefix))
        await store.client.flushall()
    else:
        store = Store(fakeredis.FakeAsyncRedis(decode_responses=True), settings.key_prefix)
    yield store
    await store.aclose()


@pytest.fixture
async def client(store: Store, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the app over `store`."""
    transport = httpx.ASGITransport(app=create_app(store, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://flipper.test") as client:
        yield client
