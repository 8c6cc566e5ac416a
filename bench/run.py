"""`make bench`: Flipper as `make dev-server` runs it, on its own redis-server, under load; numbers, not adjectives.

For each data set (small, large, rollouts, values, rules) it measures, in alternating rounds so drift on a shared
machine hits both sides alike:

- open loop: latency p50/p95/p99 and achieved rate of evaluation and of `/health` at constant arrival rates;
- closed loop: throughput of evaluation and of `/health` (one PING through the same stack), their ratio,
  and the CPU time per request of Flipper's process and of Redis;
- Redis alone (redis-benchmark): the evaluation script by EVALSHA against a native SUNION of the same
  positive sets and against the algebra done in Lua, and Redis's own µs per call (INFO commandstats);
  the script in the cache's steady state (the revision alone) too;
- the write path (bench/writes.py): an apply of 5,000 memberships, and the evaluation p99 while applies run.

The large, rollouts, values and rules data sets are measured again against a second Flipper with the cache on
(FLIPPER_CACHE_MAX_AGE=30, the template's value): the `, cache` columns; and the large one, with and
without the cache, against Flipper with usage counting off (FLIPPER_USAGE=0): the `, usage off` columns,
the baseline usage's cost is measured against (on by default, it is on in every other column).

It writes bench/results.json, then docs/performance.md's table and the chart (bench/report.py).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from flipper.core.connection import script_source
from flipper.core.model import revision_key
from flipper.core.store import stamp_key
from flipper.serve.responses import JSONResponse

from . import loadgen, report, writes
from .datasets import DATA_SETS, DataSet
from .servers import FlipperServer, RedisServer, cpu_seconds
from .stats import median_of, summarize

RESULTS = Path(__file__).with_name("results.json")
LUA_ALGEBRA = Path(__file__).with_name("algebra_in_lua.lua")  # the road not taken, measured each run
RATES = (100, 1000, 2000)
CACHE = {"FLIPPER_CACHE_MAX_AGE": "30"}  # the template's production value
USAGE_OFF = {"FLIPPER_USAGE": "0"}
# Columns measured against another Flipper with other settings: the column's suffix, its environment, the data sets.
VARIANTS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "cache": (CACHE, ("large", "rollouts", "values", "rules")),
    "usage off": (USAGE_OFF, ("large",)),
    "cache, usage off": ({**CACHE, **USAGE_OFF}, ("large",)),
}
REDIS_BENCHMARK_CLIENTS = 50


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), platform.processor())
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "redis": redis_version.removeprefix("v="),
    }


def expected_body(data_set: DataSet) -> str:
    return JSONResponse({"features": data_set.enabled}).body.decode("utf-8")


def open_loop(urls: dict[str, str], expected: dict[str, str], rounds: int, duration: float) -> dict[str, Any]:
    """Per rate and target: the median over rounds of each percentile and of the achieved rate."""
    results: dict[str, Any] = {}
    for rate in RATES:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
        for _ in range(rounds):
            for name, url in urls.items():
                run = loadgen.spawn(url, duration=duration, rate=rate)
                runs[name].append(summarize(run, expected[name]) | {"generator_cpu": run["cpu_seconds"] / duration})
        results[str(rate)] = {
            name: {
                field: median_of(summaries, field) for field in ("p50", "p95", "p99", "max", "rate", "generator_cpu")
            }
            | {"errors": sum(s["requests"] - s["ok"] for s in summaries)}
            for name, summaries in runs.items()
        }
        print(f"  open loop {rate:>5} req/s: " + "; ".join(_latency_line(n, r) for n, r in results[str(rate)].items()))
    return results


def _latency_line(name: str, result: dict[str, Any]) -> str:
    return (
        f"{name} p50 {result['p50']:.2f} p95 {result['p95']:.2f} p99 {result['p99']:.2f} ms"
        f" at {result['rate']:.0f}/s, {result['errors']} wrong (generator: {result['generator_cpu']:.0%} of a core)"
    )


def closed_loop(
    urls: dict[str, str], expected: dict[str, str], servers: dict[str, Any], rounds: int, duration: float
) -> dict[str, Any]:
    """Throughput (right answers a second) of each target, alternating, and the ratio of the medians.

    Also each server's CPU time per request: steadier than throughput on a shared machine, and it says
    where the time goes (Flipper's process, or Redis).
    """
    rates: dict[str, list[float]] = {name: [] for name in urls}
    cpu: dict[str, dict[str, list[float]]] = {name: {server: [] for server in servers} for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            before = {server: cpu_seconds(process) for server, process in servers.items()}
            run = loadgen.spawn(url, duration=duration, connections=32)
            for server, process in servers.items():
                cpu[name][server].append((cpu_seconds(process) - before[server]) / len(run["requests"]) * 1e6)
            rates[name].append(summarize(run, expected[name])["rate"])
    result: dict[str, Any] = {name: statistics.median(values) for name, values in rates.items()}
    result["ratio"] = result["evaluation"] / result["health"]
    result["cpu_us_per_request"] = {
        name: {server: statistics.median(values) for server, values in by_server.items()}
        for name, by_server in cpu.items()
    }
    result["rounds"] = rates
    print(
        f"  closed loop: evaluation {result['evaluation']:.0f}/s, health {result['health']:.0f}/s,"
        f" ratio {result['ratio']:.2f}; CPU µs per request {result['cpu_us_per_request']}"
    )
    return result


def redis_benchmark(port: int, commands: dict[str, list[str]], rounds: int, requests: int) -> dict[str, Any]:
    """redis-benchmark's rate for each command, alternating, and Redis's own µs per call (INFO commandstats)."""
    client = redis.Redis(port=port)
    rates: dict[str, list[float]] = {name: [] for name in commands}
    usec: dict[str, list[float]] = {name: [] for name in commands}
    benchmark = ["redis-benchmark", "-p", str(port), "-n", str(requests), "-c", str(REDIS_BENCHMARK_CLIENTS)]
    for _ in range(rounds):
        for name, command in commands.items():
            client.config_resetstat()
            output = subprocess.run([*benchmark, "--csv", *command], capture_output=True, check=True, text=True).stdout
            rates[name].append(float(list(csv.reader(io.StringIO(output)))[-1][1]))
            usec[name].append(client.info("commandstats")[f"cmdstat_{command[0].lower()}"]["usec_per_call"])
    client.close()
    result: dict[str, Any] = {name: statistics.median(values) for name, values in rates.items()}
    result["usec_per_call"] = {name: statistics.median(values) for name, values in usec.items()}
    result["rounds"] = rates
    result["ratio"] = result["script"] / result["sunion"]
    result["lua_algebra_ratio"] = result["lua_algebra"] / result["sunion"]
    print(
        f"  redis-benchmark: script {result['script']:.0f}/s, SUNION {result['sunion']:.0f}/s,"
        f" algebra in Lua {result['lua_algebra']:.0f}/s, cached script {result['script_cached']:.0f}/s;"
        f" script ÷ SUNION {result['ratio']:.2f},"
        f" algebra in Lua ÷ SUNION {result['lua_algebra_ratio']:.2f}; µs per call {result['usec_per_call']}"
    )
    return result


def measure(
    data_set: DataSet, redis_server: RedisServer, flipper: FlipperServer, args: argparse.Namespace, redis_side: bool
) -> dict:
    """Open and closed loop against `flipper`; with `redis_side`, Redis alone too (redis-benchmark)."""
    with redis.Redis(port=redis_server.port) as client:
        data_set.load(client)
        revision = client.get(revision_key()).decode()
        sha = client.script_load(script_source())
        lua_algebra_sha = client.script_load(LUA_ALGEBRA.read_text(encoding="utf-8"))
    urls = {"evaluation": f"{flipper.url}/?{data_set.query}", "health": f"{flipper.url}/health"}
    expected = {"evaluation": expected_body(data_set), "health": JSONResponse({"status": "ok"}).body.decode()}
    print(f"{data_set.name}: {len(data_set.enabled)} features enabled for ?{data_set.query}")
    result = {
        "enabled": len(data_set.enabled),
        "open_loop": open_loop(urls, expected, args.rounds, args.duration),
        "closed_loop": closed_loop(
            urls, expected, {"flipper": flipper.process, "redis": redis_server.process}, args.rounds, args.duration
        ),
    }
    if redis_side:
        script = ["EVALSHA", sha, str(2 + len(data_set.keys)), revision_key(), stamp_key(), *data_set.keys]
        result["redis"] = redis_benchmark(
            redis_server.port,
            {
                "script": [*script, "", "0" * len(data_set.keys)],  # no cache: every key read
                "script_cached": [*script, revision, "1" * len(data_set.keys)],  # the cache's steady state
                "sunion": ["SUNION", *data_set.positive_keys],
                "lua_algebra": ["EVALSHA", lua_algebra_sha, str(len(data_set.set_keys)), *data_set.set_keys],
            },
            args.rounds,
            args.redis_requests,
        )
    return result


def lambda_handler(redis_server: RedisServer, data_set: DataSet) -> dict[str, float]:
    """The handler's import time and warm µs per v2 event (bench/handler.py), median of fresh processes."""
    with redis.Redis(port=redis_server.port) as client:
        data_set.load(client)
    env = {**os.environ, "REDIS_URL": redis_server.url, "POWERTOOLS_METRICS_NAMESPACE": "FlipperBench"}
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-m", "bench.handler", data_set.query],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(3)
    ]
    result = {name: statistics.median(run[name] for run in runs) for name in ("import_ms", "warm_us")}
    print(f"lambda handler ({data_set.name}): import {result['import_ms']:.0f} ms, warm {result['warm_us']:.0f} µs")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per measurement (default 3)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per load run (default 4)")
    parser.add_argument("--redis-requests", type=int, default=50_000, help="requests per redis-benchmark run")
    parser.add_argument("--data-set", choices=sorted(DATA_SETS), action="append", help="default: all")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite docs/performance.md and the chart")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "machine": machine(),
        "rounds": args.rounds,
        "duration": args.duration,
        "rates": list(RATES),
        "data_sets": {},
    }
    print("machine: {cores} cores, {cpu}, {date}".format(**results["machine"]))
    redis_server = RedisServer()
    redis_server.start()
    flipper = FlipperServer(redis_server.url)
    variants = {suffix: FlipperServer(redis_server.url) for suffix in VARIANTS}
    for suffix, server in variants.items():
        server.env.update(VARIANTS[suffix][0])
    try:
        for server in (flipper, *variants.values()):
            server.start()
        for name in args.data_set or DATA_SETS:
            results["data_sets"][name] = measure(DATA_SETS[name], redis_server, flipper, args, redis_side=True)
            for suffix, (_, names) in VARIANTS.items():
                if name in names:
                    results["data_sets"][f"{name}, {suffix}"] = measure(
                        DATA_SETS[name], redis_server, variants[suffix], args, redis_side=False
                    )
        results["lambda"] = lambda_handler(redis_server, DATA_SETS["large"])
        results["writes"] = writes.measure(redis_server, flipper, args.rounds, args.duration)
    finally:
        for server in (flipper, *variants.values()):
            server.stop()
        redis_server.stop()
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    if not args.no_report:
        report.write(results)


if __name__ == "__main__":
    main()
