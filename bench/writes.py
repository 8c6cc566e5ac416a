"""The write path under a large change: `apply` of a flags file with 5,000 memberships against local Redis.

Reports how long the apply takes end to end (plan and write, as `flipper apply` runs them), how long
the write script holds Redis (SLOWLOG's per-call time: Redis runs nothing else meanwhile), and the
evaluation p99 at a constant rate while applies run back to back, against the same rate without them.
Runs on its own (`python -m bench.writes`) or as part of `make bench`.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
import time
from typing import Any

import redis

from flipper.core import operations
from flipper.core.connection import script_source
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.operate.backends import OPERATOR_COMMAND_TIMEOUT

from . import loadgen
from .datasets import DATA_SETS
from .servers import FlipperServer, RedisServer
from .stats import summarize

MEMBERSHIPS = 5_000
RATE = 1000  # evaluations a second while measuring p99
ACTOR = "bench@localhost"


def flags_file(variant: int) -> dict[str, Any]:
    """500 features, each in 10 memberships across entities: 5,000 in all; `variant` moves every one."""
    features: dict[str, Any] = {}
    for i in range(MEMBERSHIPS // 10):
        # Entities of their own: the evaluated caller's keys stay as the data set has them.
        groups = [f"group:bench{(i + variant + k) % 40}" for k in range(4)]
        features[f"bench_feature_{i:03d}"] = {
            "enabled": [f"version:bench{(i + variant) % 7}", *groups[:2]],
            "disabled": [f"user:bench{(i * 7 + variant) % 1000}", f"user:bench{(i * 7 + variant + 1) % 1000}"],
            "rollout": {f"version:bench{(i + variant + 3) % 7}": 5 + variant, groups[2]: 50, groups[3]: 12.5 + variant},
        }
    return {"flipper": 1, "features": features}


async def apply_once(store: Store, settings: Settings, document: dict[str, Any]) -> tuple[float, int]:
    """Seconds for plan + apply, and the memberships changed."""
    started = time.perf_counter()
    planned = await operations.run(store, settings, "plan", {"flags_file": document})
    result = await operations.run(
        store, settings, "apply", {"flags_file": document, "revision": planned["revision"], "actor": ACTOR}
    )
    return time.perf_counter() - started, len(result["changes"])


def write_script_hold(client: redis.Redis, sha: str, call: Any) -> float:
    """Milliseconds Redis spent in the write script (EVALSHA of `sha`) during `call()`, from SLOWLOG."""
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", 1024)
    client.slowlog_reset()
    call()
    entries = [entry for entry in client.slowlog_get(1024) if sha.encode() in entry["command"][:100]]
    client.config_set("slowlog-log-slower-than", 10000)
    return sum(entry["duration"] for entry in entries) / 1000


def evaluation_p99(url: str, duration: float, busy: threading.Event | None = None) -> float:
    run = loadgen.spawn(url, duration=duration, rate=RATE)
    if busy is not None:
        busy.set()
    return summarize(run)["p99"]


def measure(redis_server: RedisServer, flipper: FlipperServer, rounds: int = 3, duration: float = 4.0) -> dict:
    settings = Settings(redis_url=redis_server.url, command_timeout=OPERATOR_COMMAND_TIMEOUT)
    large = DATA_SETS["large"]
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    large.load(client)
    write_sha = client.script_load(script_source("write.lua"))
    url = f"{flipper.url}/?{large.query}"

    variants = itertools.count()  # each apply moves every membership of the previous one

    async def apply_next() -> tuple[float, int]:
        store = Store.from_settings(settings)
        try:
            return await apply_once(store, settings, flags_file(next(variants) % 2))
        finally:
            await store.aclose()

    timings = [asyncio.run(apply_next()) for _ in range(rounds + 1)][1:]  # the first only adds
    holds = [write_script_hold(client, write_sha, lambda: asyncio.run(apply_next())) for _ in range(rounds)]

    def applying_until(done: threading.Event) -> None:
        async def loop() -> None:
            store = Store.from_settings(settings)
            while not done.is_set():
                await apply_once(store, settings, flags_file(next(variants) % 2))
            await store.aclose()

        asyncio.run(loop())

    quiet, busy = [], []
    for _ in range(rounds):
        quiet.append(evaluation_p99(url, duration))
        done = threading.Event()
        writer = threading.Thread(target=applying_until, args=(done,))
        writer.start()
        busy.append(evaluation_p99(url, duration, done))
        writer.join()
    client.close()
    result = {
        "memberships": MEMBERSHIPS,
        "apply_seconds": statistics.median(seconds for seconds, _ in timings),
        "changed": timings[0][1],
        "write_script_ms": statistics.median(holds),
        "p99_ms_quiet": statistics.median(quiet),
        "p99_ms_while_applying": statistics.median(busy),
        "rate": RATE,
    }
    print(
        f"apply of {MEMBERSHIPS} memberships: {result['apply_seconds']:.2f} s end to end; the write script holds"
        f" Redis {result['write_script_ms']:.1f} ms; evaluation p99 at {RATE}/s {result['p99_ms_quiet']:.2f} ms"
        f" quiet, {result['p99_ms_while_applying']:.2f} ms while applying back to back"
    )
    return result


def main() -> None:
    with RedisServer() as redis_server:
        flipper = FlipperServer(redis_server.url)
        flipper.start()
        try:
            measure(redis_server, flipper)
        finally:
            flipper.stop()


if __name__ == "__main__":
    main()
