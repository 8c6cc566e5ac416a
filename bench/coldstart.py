"""A Lambda cold start, as near as this machine gets: the handler imported from the `sam build` artifact in
fresh processes that write no bytecode, as on Lambda: with the bytecode the build compiled when it found a
Python 3.13 (the Makefile's BYTECODE_CANDIDATES), else with every module imported compiled from source.

`python -m bench.coldstart` (after `make build`) starts its own redis-server holding the walk-through's flags
and prints JSON: for each of 7 processes the import time of `flipper.handler` (settings, store, app, and the
warm-up at init; wall clock, and the process's CPU time, steadier on a shared machine) and the time of the
first invocation (an API Gateway HTTP API event), and their medians.
`--top N` also prints the N slowest top-level packages of one import (`python -X importtime`, cumulative).
`--without-bytecode` measures a copy of the artifact without its `.pyc` files: a build that found no Python 3.13.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from tests.lambda_events import LambdaContext, request_event

from .servers import RedisServer

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / ".aws-sam" / "build" / "FlipperFunction"
PROCESSES = 7
# The function's environment in template.yaml, less what needs AWS.
ENVIRON = {
    "POWERTOOLS_SERVICE_NAME": "flipper",
    "POWERTOOLS_METRICS_NAMESPACE": "Flipper",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOGGER_LOG_EVENT": "false",
    "LOG_LEVEL": "INFO",
}

# Runs isolated (-I -S -B): the standard library and the artifact on sys.path, nothing compiled to disk.
CHILD = """
import contextlib, io, json, sys, sysconfig, time
artifact = sys.argv[1]
stdlib = sysconfig.get_paths()["stdlib"]
sys.path[:] = [path for path in sys.path if path.startswith(stdlib)] + [artifact]
event, fields = json.load(sys.stdin)
context = type("LambdaContext", (), {**fields, "get_remaining_time_in_millis": lambda self: 5000})()
started, cpu = time.perf_counter(), time.process_time()
from flipper import handler
imported, import_cpu = time.perf_counter(), time.process_time() - cpu
with contextlib.redirect_stdout(io.StringIO()):  # the EMF metrics line
    response = handler.handler(event, context)
invoked = time.perf_counter()
assert response["statusCode"] == 200, response
print(json.dumps({
    "import_ms": (imported - started) * 1000,
    "import_cpu_ms": import_cpu * 1000,
    "first_invocation_ms": (invoked - imported) * 1000,
}))
"""


def run_child(
    artifact: Path, redis_url: str, flags: Sequence[str] = (), python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    event = request_event("http-api", "/", [("version", "v1"), ("group", "g1")])
    context = dataclasses.asdict(LambdaContext())
    return subprocess.run(
        [python, "-I", "-S", "-B", *flags, "-c", CHILD, str(artifact)],
        input=json.dumps([event, context]),
        text=True,
        check=True,
        capture_output=True,
        env={"PATH": os.environ["PATH"], "REDIS_URL": redis_url, **ENVIRON},
        timeout=60,
    )


def slowest_packages(importtime: str, top: int) -> list[tuple[str, float]]:
    """What flipper's modules import, by package and cumulative ms (what those packages import counted in
    theirs), and the time of flipper's own modules."""
    lines = re.findall(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$", importtime, re.MULTILINE)
    totals: dict[str, float] = {}
    ancestors: list[str] = []  # the packages of the lines above, by depth: the report is post-order
    for own, cumulative, indent, name in reversed(lines):
        depth, package = len(indent) // 2, name.split(".")[0]
        del ancestors[depth:]
        if package == "flipper":
            totals[package] = totals.get(package, 0.0) + int(own) / 1000
        elif set(ancestors) <= {"flipper"}:
            totals[package] = totals.get(package, 0.0) + int(cumulative) / 1000
        ancestors.append(package)
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def measure(artifact: Path, processes: int = PROCESSES, top: int = 0, python: str = sys.executable) -> dict[str, Any]:
    with RedisServer() as server:
        with redis.Redis(port=server.port) as client:
            client.sadd("version:v1:positive", "feature_A", "feature_B")
            client.sadd("group:g1:negative", "feature_B")
        runs = [json.loads(run_child(artifact, server.url, python=python).stdout) for _ in range(processes)]
        result: dict[str, Any] = {
            "python": subprocess.check_output(
                [python, "-c", "import platform; print(platform.python_version())"], text=True
            ).strip(),
            "cores": os.cpu_count(),
            "load_average": os.getloadavg()[0],
            "runs": runs,
            "import_ms": statistics.median(run["import_ms"] for run in runs),
            "import_cpu_ms": statistics.median(run["import_cpu_ms"] for run in runs),
            "first_invocation_ms": statistics.median(run["first_invocation_ms"] for run in runs),
        }
        if top:
            report = run_child(artifact, server.url, ["-X", "importtime"], python).stderr
            result["slowest_packages_ms"] = dict(slowest_packages(report, top))
    return result


def without_bytecode(artifact: Path, scratch: Path) -> Path:
    """A copy of `artifact` in `scratch` without its `.pyc` files: what a build that found no Python 3.13 makes."""
    copy = scratch / "artifact"
    shutil.copytree(artifact, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, default=ARTIFACT)
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--top", type=int, default=0, help="also list the N slowest top-level packages")
    parser.add_argument("--python", default=sys.executable, help="the interpreter (Lambda's is 3.13)")
    parser.add_argument("--without-bytecode", action="store_true", help="measure a copy without the .pyc files")
    args = parser.parse_args()
    if not (args.artifact / "flipper" / "handler.py").exists():
        raise SystemExit(f"{args.artifact} holds no flipper/handler.py: run `make build` first")
    with tempfile.TemporaryDirectory() as scratch:
        artifact = without_bytecode(args.artifact, Path(scratch)) if args.without_bytecode else args.artifact
        # What the measured artifact holds: a build that found no Python 3.13 has none.
        result = {"pyc_files": sum(1 for _ in artifact.rglob("*.pyc"))} | measure(
            artifact, args.processes, args.top, args.python
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
