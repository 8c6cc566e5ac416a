"""Shared fixtures: a throwaway real redis-server, and every store test run on it and on fakeredis."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType

import fakeredis
import httpx
import pytest
import redis
import uvicorn

from bench.servers import RedisServer, free_port
from flipper.core.settings import Settings
from flipper.core.store import Store, cache_from_settings
from flipper.serve.app import create_app
from tests.needs import skip_without
from tests.timeouts import patient


@pytest.fixture(autouse=True)
def _collector_skips_older_objects() -> None:
    """Move every object alive before the test out of the garbage collector's reach (`gc.freeze`).

    By the middle of the suite this process holds botocore's models, hypothesis's state and earlier tests'
    data: one full collection over them paused it 230 to 420 ms (measured with a `gc.callbacks` hook), longer
    than the 0.25 s connect timeout and the idle thresholds that tests measure. What a test creates is still
    collected; the cyclic garbage of earlier tests is kept, a few MB.
    """
    gc.freeze()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    skip_without("redis-server")
    with RedisServer() as server:
        yield server


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server for this test alone, which it may kill, hang and restart."""
    skip_without("redis-server")
    with RedisServer() as server:
        yield server


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture(params=["redis", "fakeredis"])
async def store(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Store]:
    """A store over an empty database: a real redis-server, then fakeredis, for every test that asks."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        store = Store.from_settings(patient(dataclasses.replace(settings, redis_url=server.url)))
        await store.client.flushall()
    else:
        client = fakeredis.FakeAsyncRedis(decode_responses=True)
        store = Store(client, settings.key_prefix, cache=cache_from_settings(settings))
    yield store
    await store.aclose()


@pytest.fixture
async def client(store: Store, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the app over `store`."""
    transport = httpx.ASGITransport(app=create_app(store, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://flipper.test") as client:
        yield client


@pytest.fixture
def live_url(redis_server: RedisServer, settings: Settings) -> Iterator[str]:
    """The app served by a real uvicorn on a free loopback port, over the (emptied) session redis-server.

    For clients that speak HTTP themselves (the OpenFeature provider uses `requests`), and schemathesis.
    """
    redis.Redis(port=redis_server.port).flushall()
    store = Store.from_settings(patient(dataclasses.replace(settings, redis_url=redis_server.url)))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(store, settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="live-server")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join()


ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / ".aws-sam" / "build" / "FlipperFunction"
SAM = Path(sys.executable).with_name("sam")


@pytest.fixture(scope="session")
def artifact() -> Path:
    """The Lambda artifact as `sam build` makes it from the current tree (no Docker: the makefile build)."""
    if not SAM.exists():
        pytest.fail(f"{SAM} is missing: `make install-develop` installs aws-sam-cli")
    shutil.rmtree(ARTIFACT, ignore_errors=True)
    subprocess.run(
        [str(SAM), "build"], cwd=ROOT, check=True, capture_output=True, env=os.environ | {"SAM_CLI_TELEMETRY": "0"}
    )
    return ARTIFACT


LoadHandler = Callable[..., ModuleType]


@pytest.fixture
def load_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoadHandler]:
    """Import flipper.handler afresh, as a cold start would, with the given environment."""
    loaded: list[ModuleType] = []
    sigterm = signal.getsignal(signal.SIGTERM)  # the handler installs its own: pytest's comes back after

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
    signal.signal(signal.SIGTERM, sigterm)


class Observer:
    """What Redis itself says about the function: connections received, clients, commands run."""

    def __init__(self, server: RedisServer) -> None:
        self.client = redis.Redis(port=server.port, decode_responses=True)
        self.client.sadd("version:v1:positive", "feature_A")
        self.reset()

    def reset(self) -> None:
        """Count from now on (after a restart too: the observer's own reconnection is not counted)."""
        self.client.config_resetstat()
        self.connections_before = self.client.info("stats")["total_connections_received"]

    def new_connections(self) -> int:
        return self.client.info("stats")["total_connections_received"] - self.connections_before

    def calls(self, command: str) -> int:
        return self.client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)


@pytest.fixture
def observer(own_redis_server: RedisServer) -> Iterator[Observer]:
    """An observer of the test's own Redis, which holds `version:v1:positive = {feature_A}`."""
    observer = Observer(own_redis_server)
    yield observer
    observer.client.close()
