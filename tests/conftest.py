"""Shared fixtures: a throwaway real redis-server, and every store test run on it and on fakeredis."""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from types import ModuleType

import fakeredis
import httpx
import pytest
import redis

from flipper.app import create_app
from flipper.settings import Settings
from flipper.store import Store

# CI sets this so that a missing redis-server fails the run instead of skipping the real-Redis tests.
REQUIRE_REDIS = os.environ.get("FLIPPER_REQUIRE_REDIS") == "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def skip_without(program: str) -> None:
    """Skip (or, under FLIPPER_REQUIRE_REDIS=1, fail) when `program` is not on PATH."""
    if shutil.which(program) is None:
        reason = f"{program} is not on PATH (apt-get install redis-server); real-Redis tests need it"
        if REQUIRE_REDIS:
            pytest.fail(reason)
        pytest.skip(reason)


class RedisServer:
    """A real redis-server on a loopback port, with no persistence, that a test may stop and restart."""

    def __init__(self, port: int | None = None, args: Sequence[str] = ()) -> None:
        self.port = port or free_port()
        self.args = list(args)  # more redis-server options: cluster mode, say
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
            finally:
                client.close()

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL, as a crash would: the script cache and the data are gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a test may have left it stopped
        self.kill()


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


LoadHandler = Callable[..., ModuleType]


@pytest.fixture
def load_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoadHandler]:
    """Import flipper.handler afresh, as a cold start would, with the given environment."""
    loaded: list[ModuleType] = []

    def load(**environ: str) -> ModuleType:
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        sys.modules.pop("flipper.handler", None)
        module = importlib.import_module("flipper.handler")
        loaded.append(module)
        return module

    yield load
    for module in loaded:
        module.loop.run_until_complete(module.store.aclose())
        module.loop.close()
    asyncio.set_event_loop(None)
    sys.modules.pop("flipper.handler", None)
