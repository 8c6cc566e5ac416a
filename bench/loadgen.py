"""An HTTP/1.1 load generator: open loop at a constant arrival rate, or closed loop on N connections.

Open loop schedules request i at `start + i / rate` and counts its latency from that scheduled time,
as vegeta does, so a slow server cannot hold the arrivals back and hide its own queueing. It runs as
its own process (`python -m bench.loadgen ...`, or `spawn`), apart from whatever drives it, and prints
one JSON object: every request as `[scheduled offset s, latency s, status, body index]` and the
distinct bodies. Status 0 is a connection error, -1 no answer before the end of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# One request: when it was due (s from the start), its latency (s), its status, its body's index.
Record = tuple[float, float, int, int]


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        field = head.find(b"\r\ncontent-length:")
        stop = head.find(b"\r\n", field + 2)
        length = int(head[field + 17 : stop if stop >= 0 else None]) if field >= 0 else 0
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status, body = int(head[9:12]), bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


class _Pool:
    """Idle connections, reused most recent first; a new one while under `limit`, else wait for one."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: list[_Connection] = []
        self.open = 0
        self.waiting: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()

    async def acquire(self) -> _Connection:
        loop = asyncio.get_running_loop()
        while True:
            while self.idle:
                connection = self.idle.pop()
                if not connection.closed:
                    return connection
                self.open -= 1
            if self.open < self.limit:
                self.open += 1
                try:
                    transport, connection = await loop.create_connection(_Connection, self.host, self.port)
                except OSError:
                    self.open -= 1
                    raise
                connection.transport = transport  # uvloop may call connection_made later
                return connection
            waiter: asyncio.Future[_Connection | None] = loop.create_future()
            self.waiting.append(waiter)
            handed = await waiter
            if handed is not None:
                return handed

    def release(self, connection: _Connection) -> None:
        if connection.closed:
            self.open -= 1
            handed = None  # a waiter may open a new one in its place
        else:
            handed = connection
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():  # a waiter cancelled (its request timed out) takes nothing
                waiter.set_result(handed)
                return
        if handed is not None:
            self.idle.append(handed)


class _Run:
    def __init__(self, url: str, limit: int) -> None:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.raw = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
        self.pool = _Pool(parts.hostname or "127.0.0.1", parts.port or 80, limit)
        self.bodies: dict[bytes, int] = {}
        self.records: list[Record] = []

    async def one(self, due: float, start: float) -> None:
        try:
            connection = await self.pool.acquire()
            try:
                status, body = await connection.request(self.raw)
            finally:
                self.pool.release(connection)
        except (OSError, ConnectionError):
            status, body = 0, b""
        index = self.bodies.setdefault(body, len(self.bodies))
        self.records.append((due - start, time.perf_counter() - due, status, index))

    def report(self, pending: list[float], start: float, end: float) -> dict[str, Any]:
        records = self.records + [(due - start, end - due, -1, -1) for due in pending]
        records.sort()
        return {
            "start": start,  # time.perf_counter() is system-wide (CLOCK_MONOTONIC): other processes can compare
            "elapsed": end - start,
            "cpu_seconds": time.process_time(),  # the generator's own CPU: it must not be the bottleneck
            "requests": [[round(t, 6), round(lat, 6), status, body] for t, lat, status, body in records],
            "bodies": [body.decode("utf-8", "replace") for body in self.bodies],
        }


async def open_loop(url: str, rate: float, duration: float, limit: int, drain: float) -> dict[str, Any]:
    """`rate` requests a second for `duration` seconds, each sent when due, whatever the others are doing."""
    loop = asyncio.get_running_loop()
    run = _Run(url, limit)
    start = time.perf_counter() + 0.01  # perf_counter, not loop.time(): uvloop's clock ticks in milliseconds
    tasks: dict[asyncio.Task[None], float] = {}
    for i in range(int(rate * duration)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # a late wake-up sends the overdue requests at once, counted from `due`
        tasks[loop.create_task(run.one(due, start))] = due
    _, pending = await asyncio.wait(tasks, timeout=drain) if tasks else (set(), set())
    end = time.perf_counter()
    for task in pending:
        task.cancel()
    return run.report([tasks[task] for task in pending], start, end)


async def closed_loop(url: str, connections: int, duration: float) -> dict[str, Any]:
    """`connections` clients, each sending its next request as soon as its last is answered."""
    run = _Run(url, connections)
    start = time.perf_counter()
    stop = start + duration

    async def client() -> None:
        while (now := time.perf_counter()) < stop:
            await run.one(now, start)

    await asyncio.gather(*(client() for _ in range(connections)))
    return run.report([], start, time.perf_counter())


def start(url: str, *, duration: float, rate: float | None = None, connections: int = 64) -> subprocess.Popen[str]:
    """Start the generator in its own process, off this one's CPU time; `finish` collects its JSON."""
    command = [sys.executable, "-m", "bench.loadgen", url, "--duration", str(duration)]
    command += ["--connections", str(connections), *(["--rate", str(rate)] if rate else [])]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    output, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed with exit status {process.returncode}")
    return json.loads(output)


def spawn(url: str, *, duration: float, rate: float | None = None, connections: int = 64) -> dict[str, Any]:
    """Run the generator to the end in its own process and return its JSON."""
    return finish(start(url, duration=duration, rate=rate, connections=connections))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.loadgen", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds (default 5)")
    parser.add_argument("--rate", type=float, help="open loop: requests a second")
    parser.add_argument("--connections", type=int, default=64, help="closed loop: clients; open loop: the cap")
    parser.add_argument("--drain", type=float, default=5.0, help="open loop: seconds to wait for the last answers")
    args = parser.parse_args(argv)
    run: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop  # the generator must not be the bottleneck: uvloop cuts its cost per request

        run = uvloop.run
    if args.rate:
        result = run(open_loop(args.url, args.rate, args.duration, args.connections, args.drain))
    else:
        result = run(closed_loop(args.url, args.connections, args.duration))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
