"""The benchmark's results written into docs/performance.md, and the chart beside it.

The table goes between the `<!-- bench:start -->` and `<!-- bench:end -->` markers; the prose around
them is written by hand from the same numbers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "performance.md"
CHART = ROOT / "docs" / "performance.png"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

# The seed's only published figures (its README, "Some benches"): vegeta at 100 req/s, 26-byte answers.
SEED = {"rate": 100, "p50": 2.78229, "p95": 3.220638, "p99": 3.587132}
# Issue 11's targets, for the large data set with the cache (issue 5's were 0.7 and 1.3 without one).
TARGETS = {"throughput_ratio": 0.9, "redis_ratio": 0.8, "p99_ratio": 1.1}


def _ms(value: float) -> str:
    return f"{value:.2f}"


def _or_dash(cell: Any, data: dict[str, Any]) -> str:
    """The cell, or a dash where the column did not measure it (redis-benchmark runs once per data set)."""
    try:
        return cell(data)
    except KeyError:
        return "-"


def table(results: dict[str, Any]) -> str:
    machine = results["machine"]
    names = list(results["data_sets"])
    sets = [results["data_sets"][name] for name in names]
    rows: list[tuple[str, list[str], str]] = []

    def row(label: str, cell: Any, target: str = "") -> None:
        rows.append((label, [_or_dash(cell, data) for data in sets], target))

    row("features enabled", lambda d: str(d["enabled"]))
    for rate in results["rates"]:
        row(
            f"evaluation at {rate} req/s: p50 / p95 / p99 ms (achieved/s)",
            lambda d, r=str(rate): (
                " / ".join(_ms(d["open_loop"][r]["evaluation"][p]) for p in ("p50", "p95", "p99"))
                + f" ({d['open_loop'][r]['evaluation']['rate']:.0f})"
            ),
        )
    top = str(results["rates"][-1])
    row(
        f"the load generator's own CPU at {top} req/s (of one core)",
        lambda d: f"{d['open_loop'][top]['evaluation'].get('generator_cpu', float('nan')):.0%}",
    )
    row(f"`/health` at {top} req/s: p99 ms", lambda d: _ms(d["open_loop"][top]["health"]["p99"]))
    row(
        f"p99 evaluation ÷ p99 `/health` at {top} req/s",
        lambda d: f"{d['open_loop'][top]['evaluation']['p99'] / d['open_loop'][top]['health']['p99']:.2f}",
        f"≤ {TARGETS['p99_ratio']}",
    )
    row("closed loop: evaluations/s", lambda d: f"{d['closed_loop']['evaluation']:.0f}")
    row("closed loop: `/health`/s", lambda d: f"{d['closed_loop']['health']:.0f}")
    row(
        "evaluation ÷ `/health` throughput",
        lambda d: f"{d['closed_loop']['ratio']:.2f}",
        f"≥ {TARGETS['throughput_ratio']}",
    )
    for target in ("evaluation", "health"):
        row(
            f"CPU µs per {'evaluation' if target == 'evaluation' else '`/health`'}: Flipper / Redis",
            lambda d, t=target: " / ".join(f"{v:.0f}" for v in d["closed_loop"]["cpu_us_per_request"][t].values()),
        )
    row("redis-benchmark: script (EVALSHA)/s", lambda d: f"{d['redis']['script']:.0f}")
    row("redis-benchmark: SUNION of the positive sets/s", lambda d: f"{d['redis']['sunion']:.0f}")
    row("script ÷ SUNION", lambda d: f"{d['redis']['ratio']:.2f}", f"≥ {TARGETS['redis_ratio']}")
    row("redis-benchmark: algebra and sort in Lua/s", lambda d: f"{d['redis']['lua_algebra']:.0f}")
    row("algebra in Lua ÷ SUNION", lambda d: f"{d['redis']['lua_algebra_ratio']:.2f}")
    row(
        "Redis µs per call: script / SUNION / algebra in Lua",
        lambda d: " / ".join(f"{d['redis']['usec_per_call'][k]:.1f}" for k in ("script", "sunion", "lua_algebra")),
    )
    row(
        "Redis µs per call of the script in the cache's steady state (the revision alone)",
        lambda d: f"{d['redis']['usec_per_call']['script_cached']:.1f}",
        "≤ 5",
    )
    lines = [
        f"Measured {machine['date']} by `make bench` on {machine['cores']} cores ({machine['cpu']}),"
        f" Python {machine['python']}, Redis {machine['redis']}: the median of {results['rounds']} alternating"
        f" rounds of {results['duration']:.0f} s each. Targets are for the large data set with the cache.",
        "",
        "| | " + " | ".join(names) + " | target |",
        "| --- |" + " --- |" * (len(names) + 1),
        *(f"| {label} | " + " | ".join(cells) + f" | {target} |" for label, cells, target in rows),
    ]
    handler = results.get("lambda")
    lines.append("")
    if handler:
        lines.append(
            f"Lambda handler (large data set, API Gateway HTTP API v2 events): import {handler['import_ms']:.0f} ms"
            f" with bytecode cached, warm {handler['warm_us']:.0f} µs per event (median of 3 processes)."
        )
    else:
        lines.append("Lambda handler: not measured in this run.")
    writes = results.get("writes")
    if writes:
        lines += [
            "",
            f"Write path: `apply` of {writes['memberships']:,} memberships ({writes['changed']:,} changes) in"
            f" {writes['apply_seconds']:.2f} s end to end; the write script holds Redis"
            f" {writes['write_script_ms']:.1f} ms;"
            f" evaluation p99 at {writes['rate']} req/s {_ms(writes['p99_ms_quiet'])} ms without applies,"
            f" {_ms(writes['p99_ms_while_applying'])} ms while applies run back to back.",
        ]
    lines += ["", f"![Latency: the seed against Flipper]({CHART.name})"]  # beside the page that shows it
    return "\n".join(lines)


def chart(results: dict[str, Any]) -> None:
    """Grouped bars: p50, p95 and p99 of the seed at 100 req/s, and of ours per data set and rate."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    labels = [f"seed\nsmall, {SEED['rate']}/s"]
    values = {p: [SEED[p]] for p in ("p50", "p95", "p99")}
    for name, data in results["data_sets"].items():
        for rate in results["rates"]:
            labels.append(f"Flipper\n{name}, {rate}/s")
            for p in values:
                values[p].append(data["open_loop"][str(rate)]["evaluation"][p])
    figure, axes = pyplot.subplots(figsize=(10, 4.5), dpi=100)
    width = 0.27
    for i, (p, series) in enumerate(values.items()):
        bars = axes.bar([x + (i - 1) * width for x in range(len(labels))], series, width, label=p)
        axes.bar_label(bars, fmt="%.1f", fontsize=7)
    axes.set_xticks(range(len(labels)), labels, fontsize=8)
    axes.set_ylabel("latency, ms (lower is better)")
    machine = results["machine"]
    axes.set_title(
        f"Evaluation latency at a constant arrival rate — {machine['cores']} cores, {machine['date']}", fontsize=10
    )
    axes.legend()
    figure.tight_layout()
    CHART.parent.mkdir(exist_ok=True)
    figure.savefig(CHART)
    pyplot.close(figure)


def write(results: dict[str, Any]) -> None:
    text = PAGE.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{PAGE} has no {START} … {END} markers")
    PAGE.write_text(pattern.sub(lambda _: f"{START}\n{table(results)}\n{END}", text), encoding="utf-8")
    chart(results)
    print(f"wrote {PAGE} (its table) and {CHART}")


if __name__ == "__main__":
    import json

    from .run import RESULTS

    write(json.loads(RESULTS.read_text()))
