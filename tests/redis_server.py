"""A throwaway real redis-server on a free loopback port, for tests and scripts that need the real thing."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence

import pytest
import redis

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

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a test may have left it stopped
        self.kill()
