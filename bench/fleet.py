"""`python -m bench.fleet`: a fleet of function instances against one redis-server, with and without the cache.

16 processes (each one instance: its own Store, and cache when on) evaluate random callers, version v1,
group g1 and a user drawn from 10,000, on the `rollouts` data set, in a tight loop; alternating rounds,
cache off and on. Reported per run: evaluations a second for the fleet, and per evaluation Redis's CPU µs
(from /proc), µs in the script (INFO commandstats) and reply bytes (INFO stats).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import time
from typing import Any

import redis

from flipper.core.model import Context
from flipper.core.settings import Settings
from flipper.core.store import Store

from .ab import redis_counters
from .datasets import DATA_SETS
from .run import machine
from .servers import RedisServer, cpu_seconds

USERS = 10_000


def instance(url: str, max_age: float, duration: float, seed: int, counts: Any, index: int) -> None:
    """One instance's loop: evaluations of random callers until `duration` has passed; the count in `counts`."""

    async def run() -> int:
        store = Store.from_settings(Settings(redis_url=url, cache_max_age=max_age))
        draw = random.Random(seed)
        done, deadline = 0, time.monotonic() + duration
        while time.monotonic() < deadline:
            await store.features(Context(version="v1", groups=("g1",), user=f"User;{draw.randrange(USERS)}"))
            done += 1
        await store.aclose()
        return done

    counts[index] = asyncio.run(run())


def fleet_run(server: RedisServer, processes: int, max_age: float, duration: float, seed: int) -> dict[str, float]:
    client = redis.Redis(port=server.port)
    DATA_SETS["rollouts"].load(client)
    client.config_resetstat()
    before, counters = cpu_seconds(server.process), redis_counters(client)
    counts = multiprocessing.Array("l", processes)
    workers = [
        multiprocessing.Process(target=instance, args=(server.url, max_age, duration, seed + i, counts, i))
        for i in range(processes)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    after = redis_counters(client)
    client.close()
    evaluations = sum(counts)
    return {
        "evaluations_per_second": evaluations / elapsed,
        "redis_cpu_us": (cpu_seconds(server.process) - before) / evaluations * 1e6,
        "redis_script_us": (after["usec"] - counters["usec"]) / evaluations,
        "reply_bytes": (after["bytes"] - counters["bytes"]) / evaluations,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.fleet", description=__doc__)
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    parser.add_argument("--max-age", type=float, default=30.0, help="FLIPPER_CACHE_MAX_AGE when on (default 30)")
    args = parser.parse_args(argv)
    print("machine: {cores} cores, {cpu}, {date}".format(**machine()))
    runs: dict[str, list[dict[str, float]]] = {"no cache": [], "cache": []}
    with RedisServer() as server:
        for round_number in range(args.rounds):
            for name, max_age in (("no cache", 0.0), ("cache", args.max_age)):
                runs[name].append(fleet_run(server, args.processes, max_age, args.duration, round_number * 1000))
    for name, results in runs.items():
        medians = {field: statistics.median(run[field] for run in results) for field in results[0]}
        print(f"{name:>9}: " + ", ".join(f"{field} {value:.1f}" for field, value in medians.items()))


if __name__ == "__main__":
    main()
