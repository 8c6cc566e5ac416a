"""`python -m bench.ab`: CPU per evaluation of Flipper and Redis, variant against variant, in alternating rounds.

A variant is a data set served by Flipper with some settings (`make dev-server`'s process, its own
environment). Each round runs every variant's closed loop in turn (32 connections), so drift on a shared
machine hits all alike, and records per evaluation: Flipper's and Redis's CPU µs (from /proc), Redis's own
µs in the evaluation script (INFO commandstats) and Redis's reply bytes (INFO stats). Medians of the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Mapping
from typing import Any

import redis

from . import loadgen
from .datasets import DATA_SETS, DataSet
from .run import CACHE, USAGE_OFF, expected_body, machine
from .servers import FlipperServer, RedisServer, cpu_seconds
from .stats import summarize

# name: (data set, Flipper's extra environment)
VARIANTS: dict[str, tuple[DataSet, Mapping[str, str]]] = {
    "large": (DATA_SETS["large"], {}),
    "rollouts": (DATA_SETS["rollouts"], {}),
    "large, cache": (DATA_SETS["large"], CACHE),
    "rollouts, cache": (DATA_SETS["rollouts"], CACHE),
    "values, cache": (DATA_SETS["values"], CACHE),
    "rules, cache": (DATA_SETS["rules"], CACHE),
    # Usage counting is on by default: its cost is the difference from these.
    "large, usage off": (DATA_SETS["large"], USAGE_OFF),
    "large, cache, usage off": (DATA_SETS["large"], {**CACHE, **USAGE_OFF}),
}


def redis_counters(client: redis.Redis) -> dict[str, float]:
    """Redis's cumulative script calls, µs in scripts and bytes sent, since the last CONFIG RESETSTAT."""
    scripts = client.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return {
        "calls": scripts["calls"],
        "usec": scripts["usec"],
        "bytes": client.info("stats")["total_net_output_bytes"],
    }


def one_round(flipper: FlipperServer, redis_server: RedisServer, data_set: DataSet, duration: float) -> dict:
    """One closed-loop run of `data_set` against `flipper`, per evaluation."""
    client = redis.Redis(port=redis_server.port)
    data_set.load(client)
    loadgen.spawn(f"{flipper.url}/?{data_set.query}", duration=0.3, connections=8)  # warm: connections, caches
    client.config_resetstat()
    before = {"flipper": cpu_seconds(flipper.process), "redis": cpu_seconds(redis_server.process)}
    counters = redis_counters(client)
    run = loadgen.spawn(f"{flipper.url}/?{data_set.query}", duration=duration, connections=32)
    after = redis_counters(client)
    client.close()
    summary = summarize(run, expected_body(data_set))
    evaluations = len(run["requests"])
    assert summary["ok"] == evaluations, f"{evaluations - summary['ok']} wrong answers"
    return {
        "rate": summary["rate"],
        "flipper_cpu_us": (cpu_seconds(flipper.process) - before["flipper"]) / evaluations * 1e6,
        "redis_cpu_us": (cpu_seconds(redis_server.process) - before["redis"]) / evaluations * 1e6,
        "redis_script_us": (after["usec"] - counters["usec"]) / evaluations,
        "script_calls": (after["calls"] - counters["calls"]) / evaluations,
        "reply_bytes": (after["bytes"] - counters["bytes"]) / evaluations,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.ab", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per closed-loop run (default 2)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), action="append", help="default: all")
    parser.add_argument("--output", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    names = args.variant or list(VARIANTS)
    print("machine: {cores} cores, {cpu}, {date}".format(**machine()))
    redis_server = RedisServer()
    redis_server.start()
    servers: dict[str, FlipperServer] = {}
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    try:
        for name in names:
            servers[name] = FlipperServer(redis_server.url)
            servers[name].env.update(VARIANTS[name][1])
            servers[name].start()
        for _ in range(args.rounds):
            for name in names:
                rounds[name].append(one_round(servers[name], redis_server, VARIANTS[name][0], args.duration))
    finally:
        for server in servers.values():
            server.stop()
        redis_server.stop()
    results: dict[str, Any] = {"machine": machine(), "rounds": args.rounds, "duration": args.duration, "variants": {}}
    for name, runs in rounds.items():
        medians = {field: statistics.median(run[field] for run in runs) for field in runs[0]}
        results["variants"][name] = medians | {"runs": runs}
        print(f"{name:>16}: " + ", ".join(f"{field} {value:.1f}" for field, value in medians.items()))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
