"""Summaries of a load generator run: latency percentiles, achieved rate, status and body counts."""

from __future__ import annotations

import collections
import math
import statistics
from typing import Any


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (`q` in 0..1)."""
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def summarize(run: dict[str, Any], expected_body: str | None = None) -> dict[str, Any]:
    """p50/p95/p99/max latency in ms, achieved rate (right answers a second), and counts by status.

    The achieved rate counts 200s with the expected body (any 200 when none is given) over the time
    from the first scheduled send to the end of the run, as vegeta's throughput does.
    """
    requests = run["requests"]
    latencies = sorted(latency for _, latency, _, _ in requests)  # failures too, as vegeta counts them
    right = {i for i, body in enumerate(run["bodies"]) if expected_body is None or body == expected_body}
    ok = sum(1 for _, _, status, body in requests if status == 200 and body in right)
    statuses = collections.Counter(str(status) for _, _, status, _ in requests)
    return {
        "requests": len(requests),
        "ok": ok,
        "rate": ok / run["elapsed"] if run["elapsed"] else 0.0,
        "p50": percentile(latencies, 0.50) * 1e3,
        "p95": percentile(latencies, 0.95) * 1e3,
        "p99": percentile(latencies, 0.99) * 1e3,
        "max": (latencies[-1] if latencies else math.nan) * 1e3,
        "statuses": dict(statuses),
    }


def median_of(summaries: list[dict[str, Any]], field: str) -> float:
    return statistics.median(summary[field] for summary in summaries)
