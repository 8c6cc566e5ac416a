"""Typed flags: values per entity and A/B variants, through the store, HTTP, OFREP and the real OpenFeature SDK.

The differential tests compare the store's answers with a reference written here from the documented rule
(docs/how-it-works.md, Values and variants), on a real redis-server and fakeredis, cache on and off, and on
a Redis Cluster.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from redis.cluster import RedisCluster

from bench.datasets import VALUES as VALUES_DATA_SET
from bench.servers import RedisServer
from flipper.core.model import (
    BUCKETS,
    HASH_KINDS,
    Context,
    Snapshot,
    Value,
    Variant,
    canonical_json,
    evaluate_all,
    evaluate_feature,
    flag_keys,
    rollout_keys,
    variant_bucket,
)
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.serve import ofrep
from tests.test_cluster import PREFIX, cluster, cluster_store, writer  # noqa: F401 (fixtures)
from tests.test_readme import ROOT, run_story, sections, steps
from tests.test_store import CONTEXTS, ENTITIES, FLAG_DATA, NAMES, ROLLOUT_DATA, Flags, Rollouts, expected_by_rule
from tests.timeouts import patient

SINGLE = "/ofrep/v1/evaluate/flags/"
BULK = "/ofrep/v1/evaluate/flags"
CACHE_ON_AND_OFF = pytest.mark.parametrize(
    "settings", [Settings(), Settings(cache_max_age=3600)], ids=["uncached", "cached"]
)


def variants_text(*variants: tuple[str, Any, float]) -> str:
    return canonical_json([{"name": name, "value": value, "weight": weight} for name, value, weight in variants])


# The variant bucket as docs/how-it-works.md states it, written again here from the text.
def reference_variant_bucket(feature: str, user: str) -> int:
    return int.from_bytes(hashlib.sha256(feature.encode() + b"\0" + user.encode()).digest()[:8], "big") % 100_000


def test_the_variant_bucket_is_the_documented_hash() -> None:
    assert variant_bucket("checkout_flow", "alice") == reference_variant_bucket("checkout_flow", "alice") == 76788
    assert variant_bucket("checkout_flow", "bob") == 16121


def test_the_script_reads_every_hash_kind_with_hgetall() -> None:
    script = (Path(__file__).resolve().parents[1] / "lua" / "evaluate.lua").read_text()
    [table] = re.findall(r"local hashes = \{([^}]*)\}", script)
    assert sorted(re.findall(r"(\w+) = true", table)) == sorted(HASH_KINDS)


# Statistics on 100,000 synthetic users.

USERS = [f"user-{index}" for index in range(100_000)]


def _variants(*weights: int) -> tuple[Variant, ...]:
    return tuple(Variant(f"v{index}", weight, Value(str(index), index)) for index, weight in enumerate(weights))


def _assignments(variants: tuple[Variant, ...], rollout: int | None = None) -> dict[str, str | None]:
    """Each user's variant for feature `split`: enabled globally, or by a global rollout of `rollout`
    thousandths; None when off."""
    assigned = {}
    for user in USERS:
        context = Context(user=user)
        enabled, rollouts = ([], [{"split": rollout}]) if rollout is not None else (["split"], [{}])
        snapshot = Snapshot(context, [enabled, [], [], []], rollouts, [{}, {}], {"split": variants})
        evaluation = evaluate_feature("split", snapshot)
        assigned[user] = evaluation.variant
    return assigned


def test_a_50_50_split_is_50_50_within_one_percent() -> None:
    assigned = _assignments(_variants(50_000, 50_000))
    share = sum(variant == "v0" for variant in assigned.values()) / len(USERS)
    assert 0.49 <= share <= 0.51


def test_a_50_50_split_inside_a_20_percent_rollout_is_50_50_within_two_percent() -> None:
    assigned = _assignments(_variants(50_000, 50_000), rollout=20_000)
    inside = [variant for variant in assigned.values() if variant is not None]
    assert 0.19 <= len(inside) / len(USERS) <= 0.21
    assert 0.48 <= inside.count("v0") / len(inside) <= 0.52


def test_changing_the_weights_moves_only_the_users_whose_range_changed_owner() -> None:
    """30/30/40 to 30/40/30: the buckets 60,000 to 69,999 go from v2 to v1, and no other user moves."""
    before = _assignments(_variants(30_000, 30_000, 40_000))
    after = _assignments(_variants(30_000, 40_000, 30_000))
    moved = {user for user in USERS if before[user] != after[user]}
    assert moved == {user for user in USERS if 60_000 <= variant_bucket("split", user) < 70_000}
    assert {(before[user], after[user]) for user in moved} == {("v2", "v1")}
    assert 0.09 <= len(moved) / len(USERS) <= 0.11


def test_a_caller_without_a_user_gets_the_first_variant() -> None:
    snapshot = Snapshot(Context(), [["split"], []], [], [{}], {"split": _variants(0, 100_000)})
    evaluation = evaluate_feature("split", snapshot)
    assert (evaluation.variant, evaluation.variant_bucket, evaluation.reason) == ("v0", None, "SPLIT")


# The reference: what a caller gets, from the documented rule.


def reference(
    flags: Flags,
    rollouts: Rollouts,
    values: dict[str, dict[str, Any]],
    variants: dict[str, list[Any]],
    context: Context,
) -> list[dict[str, Any]]:
    """Every feature named in the caller's keys, in OFREP's shape."""
    entities = ["global"]
    entities += [f"version:{context.version}"] if context.version else []
    entities += [f"group:{group}" for group in context.groups]
    entities += [f"user:{context.user}"] if context.user else []
    named = {
        feature
        for entity in entities
        for key in (f"{entity}:positive", f"{entity}:negative")
        for feature in flags.get(key, ())
    }
    named |= {feature for entity in entities[:-1] if context.user for feature in rollouts.get(f"{entity}:rollout", {})}
    caller_values = {entity: values.get(f"{entity}:values", {}) for entity in entities}
    named |= {feature for held in caller_values.values() for feature in held} | set(variants)
    enabled = set(expected_by_rule(flags, context, rollouts))
    reasons = {evaluation.feature: evaluation.reason for evaluation in _boolean_reasons(flags, rollouts, context)}
    answers = []
    for feature in sorted(named):
        typed = feature in variants or any(feature in held for held in caller_values.values())
        if not typed:
            on = feature in enabled
            answers.append({"key": feature, "value": on, "reason": reasons[feature], "variant": "on" if on else "off"})
            continue
        if feature not in enabled:
            answers.append({"key": feature, "reason": "DISABLED", "variant": "off"})
            continue
        specific = [f"user:{context.user}"] if context.user else []
        specific += [f"group:{group}" for group in sorted(context.groups)]
        specific += [f"version:{context.version}"] if context.version else []
        entity = next((entity for entity in specific if feature in caller_values[entity]), None)
        if entity is None and feature in variants:
            variant = variants[feature][0]  # a caller without a user gets the first
            if context.user is not None:
                spot, end = reference_variant_bucket(feature, context.user), 0
                for variant in variants[feature]:
                    end += round(variant["weight"] * 1000)
                    if spot < end:
                        break
            answers.append({"key": feature, "value": variant["value"], "reason": "SPLIT", "variant": variant["name"]})
            continue
        entity = entity or "global"
        value = caller_values[entity][feature]
        answers.append({"key": feature, "value": value, "reason": reasons[feature], "variant": entity})
    return answers


def _boolean_reasons(flags: Flags, rollouts: Rollouts, context: Context) -> list[Any]:
    """The reasons of the boolean rule, which typed flags keep (tests/test_features.py and test_rollout.py
    test them against their own references)."""
    snapshot = Snapshot(
        context,
        [list(flags.get(key, ())) for key in flag_keys(context)],
        [{f: t for f, (_, t) in rollouts.get(key, {}).items()} for key in rollout_keys(context)],
    )
    return evaluate_all(snapshot)


JSON_VALUES = st.one_of(
    st.text(max_size=8),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32).filter(lambda number: not number.is_integer()),
    st.dictionaries(st.text(max_size=4), st.integers(0, 9), max_size=3),
    st.lists(st.integers(0, 9), max_size=3),
)
VALUE_DATA = st.dictionaries(
    st.sampled_from([f"{entity}:values" for entity in ENTITIES]), st.dictionaries(NAMES, JSON_VALUES, max_size=4)
)


@st.composite
def variant_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One to three variants, weights in thousandths summing to 100 %."""
    count = draw(st.integers(1, 3))
    cuts = sorted(draw(st.lists(st.integers(0, BUCKETS), min_size=count - 1, max_size=count - 1)))
    bounds = [0, *cuts, BUCKETS]
    return [
        {"name": f"n{index}", "value": draw(JSON_VALUES), "weight": (bounds[index + 1] - bounds[index]) / 1000}
        for index in range(count)
    ]


VARIANT_DATA = st.dictionaries(NAMES, variant_lists(), max_size=3)


async def replace_sets(client: Any, prefix: str, flags: Flags) -> None:
    """Every key under `prefix` but the revision deleted, and `flags`' sets written in their place."""
    for key in await client.keys(prefix + "*"):
        if key != prefix + "revision":
            await client.delete(key)
    for key, members in flags.items():
        if members:
            await client.sadd(prefix + key, *members)


async def _replace(client: Any, prefix: str, flags: Flags, rollouts: Rollouts, values: Any, variants: Any) -> None:
    """The database's flags replaced by these, as one more revision (the revision only rises: a cached store
    reads everything again)."""
    await replace_sets(client, prefix, flags)
    for key, fields in rollouts.items():
        if fields:
            await client.hset(prefix + key, mapping={feature: raw for feature, (raw, _) in fields.items()})
    for key, fields in values.items():
        if fields:
            await client.hset(prefix + key, mapping={f: canonical_json(v) for f, v in fields.items()})
    if variants:
        await client.hset(prefix + "global:variants", mapping={f: canonical_json(v) for f, v in variants.items()})
    await client.incr(prefix + "revision")


def _answers(snapshot: Snapshot) -> list[dict[str, Any]]:
    return [ofrep.evaluation(evaluation) for evaluation in evaluate_all(snapshot)]


@CACHE_ON_AND_OFF
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flags=FLAG_DATA, rollouts=ROLLOUT_DATA, values=VALUE_DATA, variants=VARIANT_DATA, context=CONTEXTS)
async def test_typed_answers_agree_with_the_reference(
    store: Store, flags: Flags, rollouts: Rollouts, values: Any, variants: Any, context: Context
) -> None:
    await _replace(store.client, "", flags, rollouts, values, variants)
    assert _answers(await store.snapshot(context)) == reference(flags, rollouts, values, variants, context)
    assert await store.features(context) == expected_by_rule(flags, context, rollouts)  # the rule unchanged


@pytest.fixture
async def cached_cluster_store(cluster: list[RedisServer]) -> AsyncIterator[Store]:  # noqa: F811
    store = Store.from_settings(
        patient(Settings(redis_url=cluster[2].url, redis_cluster=True, key_prefix=PREFIX, cache_max_age=3600))
    )
    yield store
    await store.aclose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flags=FLAG_DATA, values=VALUE_DATA, variants=VARIANT_DATA, context=CONTEXTS)
async def test_typed_answers_agree_with_the_reference_on_a_cluster(
    writer: RedisCluster,  # noqa: F811
    cluster_store: Store,  # noqa: F811
    cached_cluster_store: Store,
    flags: Flags,
    values: Any,
    variants: Any,
    context: Context,
) -> None:
    await _replace(cluster_store.client, PREFIX, flags, {}, values, variants)
    expected = reference(flags, {}, values, variants, context)
    assert _answers(await cluster_store.snapshot(context)) == expected
    assert _answers(await cached_cluster_store.snapshot(context)) == expected


# Through HTTP.


@CACHE_ON_AND_OFF
async def test_ofrep_answers_values_variants_disabled_and_not_found(client: httpx.AsyncClient, store: Store) -> None:
    await store.client.sadd("global:positive", "color", "checkout_flow", "plain")
    await store.client.sadd("group:g1:negative", "color")
    await store.client.sadd("features", "color", "checkout_flow", "plain")
    await store.client.hset("global:values", "color", '"blue"')
    await store.client.hset("user:alice:values", "color", '"red"')
    await store.client.hset(
        "global:variants", "checkout_flow", variants_text(("classic", "c", 50), ("one_page", "o", 50))
    )

    async def single(key: str, **context: Any) -> tuple[int, Any]:
        response = await client.post(SINGLE + key, json={"context": context})
        return response.status_code, response.json()

    assert await single("color") == (200, {"key": "color", "value": "blue", "reason": "STATIC", "variant": "global"})
    assert (await single("color", targetingKey="alice"))[1]["value"] == "red"
    assert await single("color", group="g1") == (200, {"key": "color", "reason": "DISABLED", "variant": "off"})
    # alice's bucket is 76788, bob's 16121 (test_the_variant_bucket_is_the_documented_hash)
    assert await single("checkout_flow", targetingKey="alice") == (
        200,
        {"key": "checkout_flow", "value": "o", "reason": "SPLIT", "variant": "one_page"},
    )
    assert (await single("checkout_flow", targetingKey="bob"))[1]["variant"] == "classic"
    assert await single("plain") == (200, {"key": "plain", "value": True, "reason": "STATIC", "variant": "on"})
    assert await single("missing") == (
        404,
        {
            "key": "missing",
            "errorCode": "FLAG_NOT_FOUND",
            "errorDetails": "flag 'missing' is not known: no write names it",
        },
    )
    # A raw write is known where it applies to the caller, though the registry does not hold it.
    await store.client.sadd("user:carol:positive", "raw")
    await store.client.incr("revision")
    assert (await single("raw", targetingKey="carol"))[0] == 200
    assert (await single("raw", targetingKey="dave"))[0] == 404


@CACHE_ON_AND_OFF
async def test_explain_says_which_value_or_variant_and_the_variant_bucket(
    client: httpx.AsyncClient, store: Store
) -> None:
    await store.client.sadd("global:positive", "color", "checkout_flow")
    await store.client.hset("group:a:values", "color", '"from a"')
    await store.client.hset("group:b:values", "color", '"from b"')
    await store.client.hset(
        "global:variants", "checkout_flow", variants_text(("classic", "c", 50), ("one_page", "o", 50))
    )
    body = (await client.get("/features/color?group=b&group=a&explain=true")).json()
    assert (body["value"], body["value_from"], body["variant"], body["variant_bucket"]) == (
        "from a",
        "group:a:values",
        None,
        None,
    )
    body = (await client.get("/features/checkout_flow?user=alice&explain=true")).json()
    assert (body["reason"], body["value"], body["value_from"], body["variant"], body["variant_bucket"]) == (
        "SPLIT",
        "o",
        "global:variants",
        "one_page",
        76788,
    )
    assert (await client.get("/features/checkout_flow?user=alice")).json() == {
        "feature": "checkout_flow",
        "enabled": True,
        "reason": "SPLIT",
    }
    # A value at the user's entity overrides the split.
    await store.client.hset("user:alice:values", "checkout_flow", "7")
    await store.client.incr("revision")
    body = (await client.get("/features/checkout_flow?user=alice&explain=true")).json()
    assert (body["reason"], body["value"], body["value_from"], body["variant"]) == (
        "STATIC",
        7,
        "user:alice:values",
        None,
    )


@CACHE_ON_AND_OFF
async def test_bulk_answers_typed_values_with_etag_and_304(client: httpx.AsyncClient, store: Store) -> None:
    await store.client.sadd("global:positive", "color", "plain")
    await store.client.hset("global:values", mapping={"color": '"blue"', "limit": "10"})
    first = await client.post(BULK, json={"context": {}})
    assert first.json() == {
        "flags": [
            {"key": "color", "value": "blue", "reason": "STATIC", "variant": "global"},
            {"key": "limit", "reason": "DISABLED", "variant": "off"},
            {"key": "plain", "value": True, "reason": "STATIC", "variant": "on"},
        ]
    }
    tag = first.headers["etag"]
    again = await client.post(BULK, json={"context": {}}, headers={"If-None-Match": tag})
    assert (again.status_code, again.content) == (304, b"")
    await store.client.hset("global:values", "color", '"green"')
    await store.client.incr("revision")
    changed = await client.post(BULK, json={"context": {}}, headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.json()["flags"][0]["value"] == "green"


MALFORMED = [
    ("global:values", "{not json", "'{not json' is not JSON"),
    ("global:values", "null", "null is not a string, a number, an object or an array"),
    ("global:values", "true", "true is not a string, a number, an object or an array"),
    ("global:values", "NaN", "'NaN' is not JSON"),
    ("global:values", "1e400", "the value holds a number out of JSON's range"),
    ("global:values", '"' + "x" * 5000 + '"', "the value is 5002 bytes of JSON; the limit is 4096"),
    ("global:variants", "[]", "not a non-empty JSON array of variants"),
    ("global:variants", '[{"name": "a", "value": 1}]', "variant 0 is not an object with a name, a value and a weight"),
    ("global:variants", '[{"name": "a", "value": 1, "weight": 60}]', "the weights sum to 60, not 100"),
    ("global:variants", '[{"name": "a", "value": 1, "weight": 100.0001}]', "variant 'a''s weight 100.0001 is not"),
    ("global:variants", '[{"name": "a", "value": 1, "weight": "100"}]', "variant 'a''s weight is not a number"),
    ("global:variants", '[{"name": "", "value": 1, "weight": 100}]', "variant 0's name is not a non-empty string"),
    (
        "global:variants",
        '[{"name": "a", "value": 1, "weight": 50}, {"name": "a", "value": 2, "weight": 50}]',
        "two variants have the same name",
    ),
]


@pytest.mark.parametrize(("key", "raw", "why"), MALFORMED, ids=[why for _, _, why in MALFORMED])
async def test_a_malformed_entry_is_left_out_with_a_warning_naming_it(
    client: httpx.AsyncClient, store: Store, caplog: pytest.LogCaptureFixture, key: str, raw: str, why: str
) -> None:
    await store.client.sadd("global:positive", "bad", "good")
    await store.client.hset(key, "bad", raw)
    await store.client.hset("global:values", "good", '"fine"')
    for _ in range(2):  # parsed entries are remembered by their text (replies._remembered), refusals are not
        with caplog.at_level(logging.WARNING, logger="flipper"):
            response = await client.post(BULK, json={"context": {"targetingKey": "u"}})
        assert response.json()["flags"] == [
            {"key": "bad", "value": True, "reason": "STATIC", "variant": "on"},
            {"key": "good", "value": "fine", "reason": "STATIC", "variant": "global"},
        ]
        [warning] = [record.getMessage() for record in caplog.records if "left out" in record.getMessage()]
        assert warning.startswith(f"{key}, field 'bad': {why}")
        caplog.clear()


async def test_a_float_weight_with_three_decimals_splits_as_written(store: Store) -> None:
    await store.client.sadd("global:positive", "f")
    await store.client.hset("global:variants", "f", variants_text(("a", 1, 33.333), ("b", 2, 66.667)))
    snapshot = await store.snapshot(Context(user="u"))
    assert [variant.weight for variant in snapshot.variants["f"]] == [33_333, 66_667]


# The real OpenFeature SDK, through its OFREP provider, against uvicorn.


@pytest.fixture
def flags(redis_server: RedisServer, live_url: str) -> redis.Redis:  # after live_url empties Redis
    return redis.Redis(port=redis_server.port, decode_responses=True)


@pytest.fixture
def openfeature_client(live_url: str) -> Iterator[OpenFeatureClient]:
    api.set_provider(OFREPProvider(live_url, timeout=5), domain="flipper-values")
    yield api.get_client("flipper-values")
    api.clear_providers()


def test_the_sdk_reads_string_integer_float_and_object_values(
    flags: redis.Redis, openfeature_client: OpenFeatureClient
) -> None:
    flags.sadd("global:positive", "color", "limit", "ratio", "config", "checkout_flow")
    flags.sadd("features", "color", "limit", "ratio", "config", "checkout_flow", "off_flag")
    flags.hset(
        "global:values",
        mapping={"color": '"blue"', "limit": "42", "ratio": "0.25", "config": '{"a":[1,2]}', "off_flag": '"x"'},
    )
    flags.hset("global:variants", "checkout_flow", variants_text(("classic", "c", 50), ("one_page", "o", 50)))
    assert openfeature_client.get_string_value("color", "none") == "blue"
    assert openfeature_client.get_integer_value("limit", 0) == 42
    assert openfeature_client.get_float_value("ratio", 0.0) == 0.25
    assert openfeature_client.get_object_value("config", {}) == {"a": [1, 2]}
    details = openfeature_client.get_string_details("checkout_flow", "none", EvaluationContext("alice"))
    assert (details.value, details.reason, details.variant) == ("o", Reason.SPLIT, "one_page")
    details = openfeature_client.get_string_details("off_flag", "code default")
    assert (details.value, details.reason, details.error_code) == ("code default", Reason.DISABLED, None)
    details = openfeature_client.get_boolean_details("color", False)
    assert (details.value, details.error_code) == (False, ErrorCode.TYPE_MISMATCH)
    details = openfeature_client.get_string_details("no_such_flag", "fallback")
    assert (details.value, details.reason, details.error_code) == ("fallback", Reason.ERROR, ErrorCode.FLAG_NOT_FOUND)


def test_the_readme_walk_through_of_values_and_variants(own_redis_server: RedisServer, tmp_path: Path) -> None:
    """README's own section, run on a fresh store as tests/test_readme.py runs the walk-through."""
    story = list(steps(sections((ROOT / "README.md").read_text(encoding="utf-8"), "Values and variants")))
    assert len(story) == 7  # four writes and the value, one write and the two variants
    run_story(story, own_redis_server, tmp_path)


def test_the_readme_sdk_example(flags: redis.Redis, openfeature_client: OpenFeatureClient) -> None:
    """What README's Python example prints, on the state its console blocks write."""
    flags.sadd("global:positive", "button_color", "checkout_flow")
    flags.hset("global:values", "button_color", '"blue"')
    flags.hset("group:beta:values", "button_color", '"green"')
    flags.hset(
        "global:variants", "checkout_flow", variants_text(("classic", "classic", 50), ("one_page", "one_page", 50))
    )
    beta = EvaluationContext(attributes={"group": "beta"})
    assert openfeature_client.get_string_value("button_color", "grey", beta) == "green"
    assert openfeature_client.get_string_value("checkout_flow", "classic", EvaluationContext("alice")) == "one_page"
    flags.sadd("group:beta:negative", "button_color")
    assert openfeature_client.get_string_value("button_color", "grey", beta) == "grey"


async def test_the_benchmarks_values_data_set_is_typed_as_it_says(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """bench/datasets.py's `values`: a third of `large`'s features carry values, a tenth variants, all read."""
    features = {name for names in VALUES_DATA_SET.flags.values() for name in names}
    valued = {feature for fields in VALUES_DATA_SET.values.values() for feature in fields}
    assert (len(valued), len(VALUES_DATA_SET.variants)) == (-(-len(features) // 3), -(-len(features) // 10))
    with redis.Redis(port=redis_server.port) as client:
        client.flushall()
        VALUES_DATA_SET.load(client)
    store = Store.from_settings(patient(Settings(redis_url=redis_server.url)))
    try:
        with caplog.at_level(logging.WARNING, logger="flipper"):
            evaluations = evaluate_all(await store.snapshot(VALUES_DATA_SET.context))
    finally:
        await store.client.flushall()
        await store.aclose()
    assert caplog.records == []
    served = {evaluation.feature for evaluation in evaluations if evaluation.value is not None}
    assert served == (valued | set(VALUES_DATA_SET.variants)) & set(VALUES_DATA_SET.enabled)
