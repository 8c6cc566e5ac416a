"""Throwaway servers on free loopback ports: a real redis-server, and Flipper as `make dev-server` runs it.

Shared by the tests (conftest.py, test_chaos.py) and the benchmark and chaos drivers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import redis

_START_TIMEOUT_SECONDS = 10


def cpu_seconds(process: subprocess.Popen[bytes] | None) -> float:
    """User + system CPU time the process has used so far (Linux /proc)."""
    assert process is not None
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A real redis-server on a loopback port, with no persistence, that a test may stop and restart."""

    def __init__(self, port: int | None = None, args: Sequence[str] = ()) -> None:
        self.port = port or free_port()
        self.args = list(args)  # more redis-server options: cluster mode, say
        self.data_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--enable-protected-configs", "local"]  # lets save() CONFIG SET dir
        if self.data_dir is not None:
            args += ["--dir", str(self.data_dir), "--dbfilename", "flipper.rdb"]
        args += self.args
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.1)
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:  # BusyLoadingError too: still reading its snapshot
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
            finally:
                client.close()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def save(self, directory: Path) -> None:
        """Snapshot the data into `directory`, which the next `start()` loads, as a Redis with persistence
        reloads its data after a crash (its script cache still starts empty)."""
        with redis.Redis(port=self.port) as client:
            client.config_set("dir", str(directory))
            client.config_set("dbfilename", "flipper.rdb")
            client.save()
        self.data_dir = directory

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


class FlipperServer:
    """Flipper exactly as `make dev-server` runs it: `python -m flipper.serve.devserver`, with REDIS_URL set."""

    def __init__(self, redis_url: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.env = {**os.environ, "REDIS_URL": redis_url}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # sys.executable is .venv/bin/python under make, as in `make dev-server`.
        command = [sys.executable, "-m", "flipper.serve.devserver", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"flipper did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
