"""`make dev-server`'s program, run for real: the seed's walk-through over HTTP, with and without REDIS_URL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from bench.servers import RedisServer, free_port


class DevServer:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flipper.devserver", "--port", str(self.port)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        self.first_line = self.process.stderr.readline()
        self.base_url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(self.base_url + "/health", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"dev server did not start; it said: {self.first_line}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture
def clean_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name != "REDIS_URL"}


def run_walkthrough(writer: redis.Redis, base_url: str) -> None:
    """The seed README's examples, verbatim."""
    writer.sadd("version:v1:positive", "feature_A", "feature_B")
    writer.sadd("group:g1:negative", "feature_B")
    assert httpx.get(base_url + "?version=v1").text == '{"features": ["feature_A", "feature_B"]}'
    assert httpx.get(base_url + "?version=v1&group=g1&user=some_user").text == '{"features": ["feature_A"]}'
    writer.sadd("group:g1:positive", "special_g1_feature")
    assert (
        httpx.get(base_url + "?version=v1&group=g1&user=some_user").text
        == '{"features": ["feature_A", "special_g1_feature"]}'
    )


@pytest.fixture
def embedded(clean_env: dict[str, str]) -> Iterator[DevServer]:
    server = DevServer(clean_env)
    yield server
    server.stop()


def test_without_redis_url_an_embedded_store_listens_and_says_where(embedded: DevServer) -> None:
    match = re.search(r"embedded store \(fakeredis\) listening on redis://127\.0\.0\.1:(\d+)", embedded.first_line)
    assert match, embedded.first_line
    with redis.Redis(port=int(match[1]), decode_responses=True) as writer:
        run_walkthrough(writer, embedded.base_url)


def test_with_redis_url_it_uses_that_redis(clean_env: dict[str, str], redis_server: RedisServer) -> None:
    with redis.Redis(port=redis_server.port) as writer:
        writer.flushall()
        server = DevServer({**clean_env, "REDIS_URL": redis_server.url})
        try:
            assert f"using Redis at {redis_server.url}" in server.first_line
            run_walkthrough(writer, server.base_url)
        finally:
            server.stop()


def test_a_bad_setting_stops_the_start_naming_the_variable(clean_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flipper.devserver", "--port", str(free_port())],
        env={**clean_env, "FLIPPER_COMMAND_TIMEOUT": "never"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert (
        result.stderr.strip()
        == "flipper: FLIPPER_COMMAND_TIMEOUT='never' is invalid: could not convert string to float: 'never'"
    )
