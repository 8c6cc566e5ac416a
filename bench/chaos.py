"""`make chaos`: Redis killed, then hung, under steady load; every answer counted.

Flipper runs as `make dev-server` runs it, on a real redis-server holding the large data set, under an
open-loop load. Then Redis is SIGKILLed, stays down, and restarts on the same port from a snapshot
(its script cache empty, as after a crash of a Redis with persistence); later it is SIGSTOPped and
SIGCONTed. Every answer is classified by the phase in which it was sent: before, down, back, hung,
resumed. What must hold, and what `tests/test_chaos.py` asserts:

- no 200 ever carries a wrong body, and no status other than 200 and a JSON 503 is ever answered;
- while Redis is down, every answer is a JSON 503 within about a second (`DOWN_BOUND_SECONDS`);
- while it is hung, every answer comes within the connect and command timeouts;
- after each, every answer is right again within `RECOVERY_BOUND_SECONDS` of Redis being back.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import signal
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis

from flipper.core.settings import Settings

from . import loadgen
from .datasets import LARGE
from .run import expected_body
from .servers import FlipperServer, RedisServer

DOWN_BOUND_SECONDS = 1.0
RECOVERY_BOUND_SECONDS = 1.0
IN_FLIGHT_SECONDS = 0.1  # longer than any answer while Redis is up


@dataclasses.dataclass(frozen=True)
class Plan:
    """Seconds of each phase, and the load's rate."""

    rate: float = 200
    steady: float = 2.0
    down: float = 4.0
    back: float = 3.0
    hung: float = 2.0
    resumed: float = 3.0


@dataclasses.dataclass
class Answer:
    sent: float  # time.perf_counter() of its scheduled send
    latency: float
    status: int
    body: str


def _is_error_json(body: str) -> bool:
    try:
        return set(json.loads(body)) == {"error"}
    except ValueError:
        return False


def run(
    redis_server: RedisServer, snapshot_dir: Path, plan: Plan = Plan(), environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Drive the outage and the hang against a started `redis_server`, Flipper run with `environ` added to its
    environment (the cache's settings, say); return the report."""
    with redis.Redis(port=redis_server.port) as client:
        LARGE.load(client)
    redis_server.save(snapshot_dir)
    flipper = FlipperServer(redis_server.url)
    flipper.env.update(environ or {})
    flipper.start()
    events: dict[str, float] = {}
    try:
        total = plan.steady + plan.down + plan.back + plan.hung + plan.resumed
        load = loadgen.start(f"{flipper.url}/?{LARGE.query}", duration=total + 0.5, rate=plan.rate, connections=512)
        time.sleep(0.5 + plan.steady)  # the generator's start-up, then steady answers
        events["killing"] = time.perf_counter()
        redis_server.kill()
        events["killed"] = time.perf_counter()  # dead: kill() waited for it
        time.sleep(plan.down)
        events["restarting"] = time.perf_counter()
        redis_server.start()  # returns once it answers PING: snapshot loaded
        events["back"] = time.perf_counter()
        time.sleep(plan.back)
        events["stopped"] = time.perf_counter()
        redis_server.signal(signal.SIGSTOP)
        time.sleep(plan.hung)
        events["continued"] = time.perf_counter()
        redis_server.signal(signal.SIGCONT)
        result = loadgen.finish(load)
    finally:
        flipper.stop()
    answers = [
        Answer(result["start"] + t, latency, status, result["bodies"][body] if body >= 0 else "")
        for t, latency, status, body in result["requests"]
    ]
    return analyse(answers, events, expected_body(LARGE))


def analyse(answers: list[Answer], events: dict[str, float], expected: str) -> dict[str, Any]:
    settings = Settings()
    hang_bound = settings.connect_timeout + settings.command_timeout + 0.25  # + scheduling slack

    def right(answer: Answer) -> bool:
        return answer.status == 200 and answer.body == expected

    def recovery(since: float, until: float) -> float | None:
        """Seconds from `since` to the answer after which every answer sent before `until` is right."""
        window = [a for a in answers if since <= a.sent < until]
        last_wrong = max((a.sent + a.latency for a in window if not right(a)), default=since)
        return max(0.0, last_wrong - since) if window and right(window[-1]) else None

    phases = {
        "before": (float("-inf"), events["killed"]),
        "down": (events["killed"], events["back"]),
        "back": (events["back"], events["stopped"]),
        "hung": (events["stopped"], events["continued"]),
        "resumed": (events["continued"], float("inf")),
    }
    report: dict[str, Any] = {"phases": {}}
    for name, (begin, end) in phases.items():
        sent = [a for a in answers if begin <= a.sent < end]
        report["phases"][name] = {
            "sent": len(sent),
            "statuses": dict(collections.Counter(str(a.status) for a in sent)),
            "right": sum(1 for a in sent if right(a)),
            "json_503": sum(1 for a in sent if a.status == 503 and _is_error_json(a.body)),
            "max_latency_ms": round(max((a.latency for a in sent), default=0.0) * 1e3, 1),
        }
    report["wrong_200"] = sum(1 for a in answers if a.status == 200 and a.body != expected)
    report["other_statuses"] = sum(
        1 for a in answers if not right(a) and not (a.status == 503 and _is_error_json(a.body))
    )
    # Answered before the kill began: right. Sent once Redis was dead: a JSON 503 in time. Answers in
    # flight across the kill may be either (and are still checked by wrong_200 and other_statuses).
    report["wrong_before_kill"] = sum(1 for a in answers if a.sent + a.latency < events["killing"] and not right(a))
    down = [a for a in answers if events["killed"] <= a.sent < events["restarting"]]
    report["down_outside_bound"] = sum(1 for a in down if not (a.status == 503 and a.latency <= DOWN_BOUND_SECONDS))
    report["hung_outside_bound"] = sum(
        1 for a in answers if events["stopped"] <= a.sent < events["continued"] and a.latency > hang_bound
    )
    report["hang_bound_ms"] = round(hang_bound * 1e3)
    # Up to the next fault, less the answers it may catch in flight.
    report["recovery_after_restart_s"] = _rounded(recovery(events["back"], events["stopped"] - IN_FLIGHT_SECONDS))
    report["recovery_after_sigcont_s"] = _rounded(recovery(events["continued"], float("inf")))
    report["restart_s"] = round(events["back"] - events["restarting"], 3)
    return report


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def print_report(report: dict[str, Any]) -> None:
    for name, phase in report["phases"].items():
        print(
            f"  {name:<8} sent {phase['sent']:>5}  right {phase['right']:>5}  JSON 503 {phase['json_503']:>5}"
            f"  statuses {phase['statuses']}  max latency {phase['max_latency_ms']} ms"
        )
    for key in ("wrong_200", "other_statuses", "wrong_before_kill", "down_outside_bound", "hung_outside_bound"):
        print(f"  {key}: {report[key]}")
    print(f"  Redis restart (snapshot load) {report['restart_s']} s")
    print(f"  time to recovery: after restart {report['recovery_after_restart_s']} s,", end=" ")
    print(f"after SIGCONT {report['recovery_after_sigcont_s']} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.chaos", description=__doc__)
    parser.add_argument("--rate", type=float, default=Plan.rate, help="requests a second (default 200)")
    args = parser.parse_args(argv)
    redis_server = RedisServer()
    redis_server.start()
    try:
        with tempfile.TemporaryDirectory() as snapshot_dir:
            report = run(redis_server, Path(snapshot_dir), Plan(rate=args.rate))
    finally:
        redis_server.stop()
    print(f"chaos at {args.rate:.0f} req/s, large data set:")
    print_report(report)


if __name__ == "__main__":
    main()
