"""The benchmark's own parts: its data sets answer what the model says, and its statistics count right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from bench import coldstart, report
from bench.datasets import DATA_SETS, LARGE, ROLLOUTS
from bench.run import RESULTS
from bench.servers import RedisServer
from bench.stats import percentile, summarize
from flipper.core.settings import Settings
from flipper.core.store import Store
from tests.test_store import reference_bucket
from tests.timeouts import patient

ROOT = Path(__file__).resolve().parents[1]


def test_large_data_set_has_the_issue_sizes() -> None:
    positives = {key: len(members) for key, members in LARGE.flags.items() if key.endswith(":positive")}
    assert sorted(positives.values()) == [5, 30, 60, 300]
    assert len(LARGE.enabled) == 375


def test_rollouts_data_set_is_large_plus_50_features_at_the_version_and_group_levels() -> None:
    assert ROLLOUTS.flags == LARGE.flags
    assert sorted(ROLLOUTS.rollouts) == ["group:g1:rollout", "version:v1:rollout"]
    features = set(ROLLOUTS.rollouts["version:v1:rollout"])
    assert len(features) == 50
    assert set(ROLLOUTS.rollouts["group:g1:rollout"]) == features
    taken = {
        feature
        for feature in features
        if any(
            reference_bucket(feature, "u1") < float(rollout[feature]) * 1000 for rollout in ROLLOUTS.rollouts.values()
        )
    }
    assert len(taken) == 35
    assert ROLLOUTS.enabled == sorted(set(LARGE.enabled) | taken)


@pytest.mark.parametrize("name", sorted(DATA_SETS))
async def test_data_set_loaded_into_redis_is_evaluated_as_expected(redis_server: RedisServer, name: str) -> None:
    data_set = DATA_SETS[name]
    with redis.Redis(port=redis_server.port) as client:
        data_set.load(client)
    store = Store.from_settings(patient(Settings(redis_url=redis_server.url)))
    try:
        assert await store.features(data_set.context) == data_set.enabled
    finally:
        await store.client.flushall()
        await store.aclose()


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (50.0, 99.0, 100.0)
    assert percentile([7.0], 0.99) == 7.0


def test_summarize_counts_only_right_answers_toward_the_rate() -> None:
    run = {
        "elapsed": 2.0,
        "bodies": ["right", "wrong", ""],
        "requests": [[0.0, 0.001, 200, 0], [0.1, 0.002, 200, 1], [0.2, 0.003, 503, 2], [0.3, 0.5, 0, 2]],
    }
    summary = summarize(run, expected_body="right")
    assert (summary["requests"], summary["ok"], summary["rate"]) == (4, 1, 0.5)
    assert summary["statuses"] == {"200": 2, "503": 1, "0": 1}
    assert summary["max"] == pytest.approx(500.0)


def test_report_writes_its_table_into_the_performance_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert report.PAGE == report.CHART.with_suffix(".md") == ROOT / "docs" / "performance.md"
    page = tmp_path / "docs" / "performance.md"
    page.parent.mkdir()
    page.write_text(report.PAGE.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(report, "PAGE", page)
    monkeypatch.setattr(report, "chart", lambda results: None)  # matplotlib is make bench's alone
    results = json.loads(RESULTS.read_text())
    report.write(results)

    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Performance")  # the prose around the markers is kept
    table = text.split(report.START)[1].split(report.END)[0]
    assert table.strip() == report.table(results)
    assert f"({report.CHART.name})" in table  # the chart, linked relative to the page: beside it in docs/


def test_coldstart_without_bytecode_copies_the_artifact_less_its_pyc_files(tmp_path: Path) -> None:
    artifact = tmp_path / "artifact"
    (artifact / "flipper" / "__pycache__").mkdir(parents=True)
    (artifact / "flipper" / "handler.py").write_text("x = 1\n")
    (artifact / "flipper" / "__pycache__" / "handler.cpython-313.pyc").write_bytes(b"\0")
    (tmp_path / "scratch").mkdir()
    copy = coldstart.without_bytecode(artifact, tmp_path / "scratch")
    assert sorted(str(path.relative_to(copy)) for path in copy.rglob("*")) == ["flipper", "flipper/handler.py"]
    assert (artifact / "flipper" / "__pycache__" / "handler.cpython-313.pyc").exists()  # the artifact is left as is


def test_coldstart_counts_what_flipper_imports_once_with_what_it_imports() -> None:
    # -X importtime's report is post-order: a module's line follows the lines of what it imported.
    report = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 |       redis.exceptions",
            "import time:      2000 |       2000 |         contextlib",
            "import time:      3000 |       5000 |       redis.client",
            "import time:       500 |       5600 |     redis",
            "import time:      1000 |       6600 |   flipper.core.store",
            "import time:       400 |        400 |   json",
            "import time:       200 |       7200 | flipper.handler",
        ]
    )
    assert coldstart.slowest_packages(report, 3) == [("redis", 5.6), ("flipper", 1.2), ("json", 0.4)]
