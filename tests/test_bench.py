"""The benchmark's own parts: its data sets answer what the model says, and its statistics count right."""

from __future__ import annotations

import pytest
import redis

from bench.datasets import DATA_SETS, LARGE, ROLLOUTS
from bench.servers import RedisServer
from bench.stats import percentile, summarize
from flipper.settings import Settings
from flipper.store import Store
from tests.test_store import reference_bucket


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
    store = Store.from_settings(Settings(redis_url=redis_server.url))
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
