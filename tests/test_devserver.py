"""`make dev-server`'s program, run for real: the seed's walk-through over HTTP, with and without REDIS_URL."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from bench.servers import RedisServer, free_port
from flipper.core import devstore


class DevServer:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flipper.serve.devserver", "--port", str(self.port), *args],
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
def clean_env(tmp_path: Path) -> dict[str, str]:
    """The environment without REDIS_URL, and a runtime directory of the test's own for devstore's file."""
    env = {name: value for name, value in os.environ.items() if name != "REDIS_URL"}
    return {**env, "XDG_RUNTIME_DIR": str(tmp_path)}


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
        [sys.executable, "-m", "flipper.serve.devserver", "--port", str(free_port())],
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


def test_a_taken_store_port_is_said_loudly_with_the_commands_to_use(
    clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Port 6379 held by a real Redis: the embedded store moves, and the dev server says where and what to type;
    devstore records the store's URL while the server runs, for the flipper command, and removes it at exit."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", clean_env["XDG_RUNTIME_DIR"])
    with socket.create_server(("127.0.0.1", 0)) as taken:
        wanted = taken.getsockname()[1]
        server = DevServer(clean_env, "--store-port", str(wanted))
        try:
            assert server.process.stderr is not None
            warning = server.process.stderr.readline()
            port = int(re.search(r"listening on redis://127\.0\.0\.1:(\d+)", server.first_line)[1])
            assert port != wanted
            assert warning.startswith(f"WARNING:     port {wanted} is taken")
            assert f"redis-cli -p {port} SADD version:v1:positive feature_A" in warning
            assert f"REDIS_URL=redis://127.0.0.1:{wanted} make dev-server" in warning
            assert devstore.recorded_url() == f"redis://127.0.0.1:{port}"
            with redis.Redis(port=port, decode_responses=True) as writer:
                run_walkthrough(writer, server.base_url)
        finally:
            server.stop()
    assert not devstore.path().exists()
    assert devstore.recorded_url() is None


def test_the_embedded_store_says_it_is_in_memory(embedded: DevServer) -> None:
    assert "in memory only" in embedded.first_line
