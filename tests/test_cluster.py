"""Cluster mode, as on ElastiCache Serverless: the model's cases on a real three-primary Redis Cluster.

Every key one evaluation reads must hash to one slot, which the prefix's hash tag (`{flipper}:`)
guarantees; without one, the app refuses to start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from redis.cluster import RedisCluster
from redis.crc import key_slot

from bench.servers import RedisServer, free_port
from flipper.core import operations
from flipper.core.connection import StoreUnavailable
from flipper.core.model import Context, flag_keys, rollout_keys
from flipper.core.settings import Settings, SettingsError, has_hash_tag
from flipper.core.store import Store
from flipper.core.writes import Refused
from flipper.operate import admin
from flipper.serve.app import create_app
from tests.conftest import LoadHandler
from tests.lambda_events import KINDS, LambdaContext, request_event
from tests.needs import skip_without
from tests.test_cache import STEPS, compare
from tests.test_resilience import timed_get
from tests.test_store import (
    CASES,
    CONTEXTS,
    FLAG_DATA,
    ROLLOUT_DATA,
    Flags,
    Rollouts,
    expected_by_rule,
)
from tests.timeouts import IDLE, patient

PREFIX = "{flipper}:"


def start_cluster(directory: Path, primaries: int = 3) -> list[RedisServer]:
    """`primaries` cluster-enabled redis-servers on loopback, joined by `redis-cli --cluster create`."""
    nodes = []
    for _ in range(primaries):
        node = RedisServer()
        node.args = [
            *("--cluster-enabled", "yes", "--cluster-port", str(free_port())),
            *("--cluster-config-file", str(directory / f"nodes-{node.port}.conf"), "--dir", str(directory)),
        ]
        nodes.append(node)
        node.start()
    addresses = [f"127.0.0.1:{node.port}" for node in nodes]
    subprocess.run(
        ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    deadline = time.monotonic() + 30
    while not all(_cluster_ok(node) for node in nodes):
        if time.monotonic() > deadline:
            raise RuntimeError("the cluster did not reach cluster_state:ok")
        time.sleep(0.05)
    return nodes


def _cluster_ok(node: RedisServer) -> bool:
    info = subprocess.run(
        ["redis-cli", "-p", str(node.port), "cluster", "info"], capture_output=True, text=True, check=True
    ).stdout
    return "cluster_state:ok" in info


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    skip_without("redis-server")
    nodes: list[RedisServer] = []
    try:
        nodes = start_cluster(tmp_path_factory.mktemp("cluster"))
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
def writer(cluster: list[RedisServer]) -> Iterator[RedisCluster]:
    """A plain cluster client on an emptied cluster, for writing flags."""
    client = RedisCluster(host="127.0.0.1", port=cluster[0].port, decode_responses=True)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.close()


@pytest.fixture
async def cluster_store(cluster: list[RedisServer]) -> AsyncIterator[Store]:
    """The app's store, built from settings as in Lambda: cluster client, hash-tagged prefix."""
    store = Store.from_settings(patient(Settings(redis_url=cluster[1].url, redis_cluster=True, key_prefix=PREFIX)))
    yield store
    await store.aclose()


def test_the_cluster_spreads_slots_over_three_primaries(writer: RedisCluster) -> None:
    assert len(writer.get_primaries()) == 3


@pytest.mark.parametrize(("flags", "context", "expected"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
async def test_model_on_a_cluster(
    writer: RedisCluster, cluster_store: Store, flags: Flags, context: Context, expected: list[str]
) -> None:
    for key, members in flags.items():
        if members:
            writer.sadd(PREFIX + key, *members)
    assert await cluster_store.features(context) == expected
    await cluster_store.ping()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flags=FLAG_DATA, rollouts=ROLLOUT_DATA, context=CONTEXTS)
async def test_script_agrees_with_the_rule_on_a_cluster(
    writer: RedisCluster, cluster_store: Store, flags: Flags, rollouts: Rollouts, context: Context
) -> None:
    """tests/test_store.py's random differential test, rollouts included, through the cluster client."""
    writer.flushall(target_nodes=RedisCluster.PRIMARIES)
    for key, members in flags.items():
        if members:
            writer.sadd(PREFIX + key, *members)
    for key, fields in rollouts.items():
        if fields:
            writer.hset(PREFIX + key, mapping={feature: raw for feature, (raw, _) in fields.items()})
    assert await cluster_store.features(context) == expected_by_rule(flags, context, rollouts)


async def test_the_cache_on_a_cluster(cluster: list[RedisServer], writer: RedisCluster) -> None:
    """The revision key shares the flags' slot; a write through the revision is seen at once, and in steady
    state the flags' node answers with the revision alone."""
    store = Store.from_settings(
        patient(Settings(redis_url=cluster[0].url, redis_cluster=True, key_prefix=PREFIX, cache_max_age=3600))
    )
    caller = Context(version="v1", groups=("g1",), user="u1")
    keys = [store.revision_key, store.stamp_key, *flag_keys(caller, PREFIX), *rollout_keys(caller, PREFIX)]
    assert len({key_slot(key.encode()) for key in keys}) == 1
    writer.sadd(PREFIX + "version:v1:positive", "a")
    writer.hset(PREFIX + "group:g1:rollout", "b", "100")
    assert await store.features(caller) == ["a", "b"]
    assert await store._evaluate(keys=keys, args=["0", "1" * (len(keys) - 2)]) == "0"
    writer.incr(PREFIX + "revision")
    writer.sadd(PREFIX + "user:u1:negative", "a")
    assert await store.features(caller) == ["b"]
    writer.flushall(target_nodes=RedisCluster.PRIMARIES)
    assert await store.features(caller) == []
    await store.aclose()


async def test_the_cache_on_a_cluster_never_serves_a_revision_flushed_and_written_again(
    cluster: list[RedisServer], writer: RedisCluster
) -> None:
    """Issue 20 on a cluster: revision 1, flushed, and revision 1 again through the write path (the stamp
    shares the flags' slot): the cached store answers the new contents."""
    settings = patient(Settings(redis_url=cluster[0].url, redis_cluster=True, key_prefix=PREFIX, cache_max_age=30))
    cached = Store.from_settings(settings)
    uncached = Store.from_settings(dataclasses.replace(settings, cache_max_age=0))
    v9 = Context(version="v9")
    for feature in ("c_old", "c_new"):
        writer.flushall(target_nodes=RedisCluster.PRIMARIES)
        change = {"operation": "enable", "feature": feature, "entity": "version:v9", "actor": "t"}
        assert (await operations.run(uncached, settings, "change", change))["revision"] == 1
        assert await cached.features(v9) == [feature]
    await cached.aclose()
    await uncached.aclose()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
async def test_cached_answers_equal_uncached_ones_on_a_cluster(
    cluster: list[RedisServer], writer: RedisCluster, cluster_store: Store, steps: list[Any]
) -> None:
    """tests/test_cache.py's differential test with writes interleaved, through the cluster client."""
    writer.flushall(target_nodes=RedisCluster.PRIMARIES)
    cached = Store.from_settings(
        patient(Settings(redis_url=cluster[2].url, redis_cluster=True, key_prefix=PREFIX, cache_max_age=3600))
    )

    async def write(step: tuple[str, ...]) -> None:
        command, key, *rest = step
        writer.incr(PREFIX + "revision")
        writer.execute_command(command, PREFIX + key, *rest)

    await compare(cached, cluster_store, steps, write)
    await cached.aclose()


def test_hash_tag_puts_a_callers_keys_in_one_slot_and_its_absence_does_not() -> None:
    context = Context(version="v1", groups=("g1", "g2"), user="u")
    keys = [*flag_keys(context, PREFIX), *rollout_keys(context, PREFIX)]
    assert len({key_slot(key.encode()) for key in keys}) == 1
    assert len({key_slot(key.encode()) for key in flag_keys(context, "flipper:")}) > 1


@pytest.mark.parametrize(
    ("prefix", "tagged"),
    [("{flipper}:", True), ("app:{f}:", True), ("{}:", False), ("flipper:", False), ("{flipper:", False), ("", False)],
)
def test_has_hash_tag(prefix: str, tagged: bool) -> None:
    assert has_hash_tag(prefix) is tagged


@pytest.mark.parametrize("prefix", ["", "flipper:", "{}flipper:"])
def test_cluster_mode_refuses_a_prefix_without_hash_tag(prefix: str) -> None:
    environ = {"FLIPPER_REDIS_CLUSTER": "true", "FLIPPER_KEY_PREFIX": prefix}
    with pytest.raises(SettingsError, match=r"^FLIPPER_KEY_PREFIX=.* has no hash tag .* FLIPPER_REDIS_CLUSTER is on"):
        Settings.from_environ(environ)
    assert Settings.from_environ({**environ, "FLIPPER_REDIS_CLUSTER": "false"}).key_prefix == prefix


def test_cluster_flag_is_parsed_strictly() -> None:
    assert Settings.from_environ({"FLIPPER_REDIS_CLUSTER": "TRUE", "FLIPPER_KEY_PREFIX": PREFIX}).redis_cluster
    with pytest.raises(SettingsError, match=r"^FLIPPER_REDIS_CLUSTER='yes please' is invalid: must be true or false"):
        Settings.from_environ({"FLIPPER_REDIS_CLUSTER": "yes please"})


def test_handler_serves_from_the_cluster_as_in_lambda(
    load_handler: LoadHandler, cluster: list[RedisServer], writer: RedisCluster
) -> None:
    writer.sadd(PREFIX + "version:v1:positive", "feature_A", "feature_B")
    writer.sadd(PREFIX + "group:g1:negative", "feature_B")
    module = load_handler(REDIS_URL=cluster[2].url, FLIPPER_REDIS_CLUSTER="true", FLIPPER_KEY_PREFIX=PREFIX)
    for kind in KINDS:
        response = module.handler(request_event(kind, "/", [("version", "v1"), ("group", "g1")]), LambdaContext())
        assert (response["statusCode"], response["body"]) == (200, '{"features": ["feature_A"]}')
    exported = module.handler({"flipper_admin": {"operation": "export"}}, LambdaContext())["result"]["flags"]
    assert exported["features"] == {
        "feature_A": {"enabled": ["version:v1"]},
        "feature_B": {"enabled": ["version:v1"], "disabled": ["group:g1"]},
    }


def test_handler_init_loads_the_script_on_the_node_that_holds_the_flags(
    load_handler: LoadHandler, cluster: list[RedisServer], writer: RedisCluster
) -> None:
    nodes = [redis.Redis(port=node.port) for node in cluster]
    for node in nodes:
        node.script_flush()
    module = load_handler(REDIS_URL=cluster[2].url, FLIPPER_REDIS_CLUSTER="true", FLIPPER_KEY_PREFIX=PREFIX)

    flags_node = writer.get_node_from_key(PREFIX + "global:positive")
    loaded = {
        node.connection_pool.connection_kwargs["port"]: node.script_exists(module.store._evaluate.sha)[0]
        for node in nodes
    }
    assert loaded == {node.port: node.port == flags_node.port for node in cluster}
    for node in nodes:
        node.close()


def test_handler_refuses_to_start_in_cluster_mode_without_hash_tag(
    load_handler: LoadHandler, cluster: list[RedisServer]
) -> None:
    with pytest.raises(SettingsError, match="has no hash tag"):
        load_handler(REDIS_URL=cluster[0].url, FLIPPER_REDIS_CLUSTER="true", FLIPPER_KEY_PREFIX="flipper:")


async def test_a_cluster_that_cannot_be_reached_is_unavailable_not_an_error() -> None:
    store = Store.from_settings(
        Settings(redis_url=f"redis://127.0.0.1:{free_port()}", redis_cluster=True, key_prefix=PREFIX)
    )
    with pytest.raises(StoreUnavailable):
        await store.features(Context())
    with pytest.raises(StoreUnavailable):
        await store.ping()
    answer = await admin.run(store, Settings(), {"flipper_admin": {"operation": "export"}})
    assert answer["error"].startswith("the flag store failed: ")
    assert answer["kind"] == "store"
    await store.aclose()


async def test_a_hung_flag_node_costs_one_command_timeout_and_fails_health(
    cluster: list[RedisServer], writer: RedisCluster
) -> None:
    """The node holding the flags' slot stopped (SIGSTOP): an evaluation is a 503 after one command timeout,
    not two (the cluster client would retry the timeout), and /health says so rather than pinging another node.

    After a failure the client first re-reads the cluster's layout, which may meet the hung node too: the
    next request gets two timeouts at most."""
    writer.sadd(PREFIX + "version:v1:positive", "feature_A")
    owner = writer.get_node_from_key(PREFIX + "global:positive")
    [node] = [node for node in cluster if node.port == owner.port]
    settings = Settings(redis_url=cluster[0].url, redis_cluster=True, key_prefix=PREFIX, command_timeout=0.3)
    store = Store.from_settings(settings)
    transport = httpx.ASGITransport(app=create_app(store, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://flipper.test") as client:
        assert (await client.get("/health")).status_code == 200
        node.signal(signal.SIGSTOP)
        try:
            for url, timeouts in (("/?version=v1", 1), ("/health", 2)):
                response, elapsed = await timed_get(client, url)
                assert (response.status_code, response.headers["retry-after"]) == (503, "1")
                assert elapsed < timeouts * settings.command_timeout + 0.25, (url, elapsed)
        finally:
            node.signal(signal.SIGCONT)
        response = await client.get("/?version=v1")
        assert (response.status_code, response.json()) == (200, {"features": ["feature_A"]})
    await store.aclose()


async def test_the_write_path_works_in_one_slot_on_the_cluster(
    cluster: list[RedisServer], writer: RedisCluster
) -> None:
    """Every key a change touches (flags, revision, audit) shares the prefix's slot: changes, export, apply,
    history and undo all run on the cluster, and the evaluation sees them."""
    writer.sadd(PREFIX + "version:v1:positive", "raw")  # written around Flipper
    settings = patient(Settings(redis_url=cluster[1].url, redis_cluster=True, key_prefix=PREFIX, audit_length=100))
    store = Store.from_settings(settings)
    enabled = await operations.run(
        store, settings, "change", {"operation": "enable", "feature": "a", "entity": "group:g1", "actor": "t"}
    )
    document = {"flipper": 1, "features": {"b": {"disabled": ["global"], "rollout": {"version:v1": 50}}}}
    planned = await operations.run(store, settings, "plan", {"flags_file": document})
    await operations.run(
        store, settings, "apply", {"flags_file": document, "revision": planned["revision"], "actor": "t"}
    )
    exported = await operations.run(store, settings, "export", {})
    assert exported["flags"]["features"] == {
        "a": {"enabled": ["group:g1"]},
        "b": {"disabled": ["global"], "rollout": {"version:v1": "50"}},
        "raw": {"enabled": ["version:v1"]},
    }
    assert await store.features(Context(version="v1", groups=("g1",))) == ["a", "raw"]
    await operations.run(store, settings, "undo", {"entry": enabled["entry"], "actor": "t"})
    history = await operations.run(store, settings, "history", {})
    assert [entry["operation"] for entry in history["entries"]] == ["undo", "apply", "enable"]
    assert writer.get(PREFIX + "revision") == "3"
    await store.aclose()


async def test_values_variants_and_the_registry_are_written_in_one_slot_on_the_cluster(
    cluster: list[RedisServer], writer: RedisCluster
) -> None:
    """A value, variants and delete (which takes the feature out of the registry) run on the cluster: the registry
    is declared to the script beside the flag keys, under the prefix's hash tag."""
    settings = patient(Settings(redis_url=cluster[1].url, redis_cluster=True, key_prefix=PREFIX, audit_length=100))
    store = Store.from_settings(settings)
    variants = {"a": {"weight": 25, "value": "A"}, "b": {"weight": 75, "value": [1]}}
    for arguments in (
        {"operation": "value", "feature": "typed", "entity": "group:g1", "value": {"n": 1}},
        {"operation": "variants", "feature": "typed", "entity": "global", "variants": variants},
    ):
        await operations.run(store, settings, "change", {**arguments, "actor": "t"})
    assert writer.smembers(PREFIX + "features") == {"typed"}
    exported = await operations.run(store, settings, "export", {})
    assert exported["flags"]["features"]["typed"] == {"values": {"group:g1": {"n": 1}}, "variants": variants}
    deleted = await operations.run(store, settings, "delete", {"feature": "typed", "actor": "t"})
    assert sorted(change[0] for change in deleted["changes"]) == ["features", "global:variants", "group:g1:values"]
    assert writer.exists(PREFIX + "features", PREFIX + "global:variants", PREFIX + "group:g1:values") == 0
    await store.aclose()


async def test_rules_are_written_read_modified_and_undone_in_one_slot_on_the_cluster(
    cluster: list[RedisServer], writer: RedisCluster
) -> None:
    """A feature's rules (global:rules, under the prefix's hash tag) set, replaced at the revision read, refused
    from a stale one, undone and exported, on the cluster."""
    settings = patient(Settings(redis_url=cluster[1].url, redis_cluster=True, key_prefix=PREFIX, audit_length=100))
    store = Store.from_settings(settings)
    pro = [{"when": [{"attribute": "plan", "operator": "in", "values": ["pro"]}]}]
    window = [{"when": [{"attribute": "now", "operator": "after", "values": ["2026-12-20T00:00:00Z"]}], "value": 1}]
    rules = {"operation": "rules", "feature": "pricing", "entity": "global", "actor": "t"}
    first = await operations.run(store, settings, "change", {**rules, "rules": pro})
    read_at = first["revision"]
    second = await operations.run(store, settings, "change", {**rules, "rules": pro + window, "revision": read_at})
    with pytest.raises(Refused):
        await operations.run(store, settings, "change", {**rules, "rules": window, "revision": read_at})
    assert json.loads(writer.hget(PREFIX + "global:rules", "pricing")) == pro + window
    await operations.run(store, settings, "undo", {"entry": second["entry"], "actor": "t"})
    exported = await operations.run(store, settings, "export", {})
    assert exported["flags"]["features"]["pricing"] == {"rules": pro}
    await store.aclose()


async def test_export_on_a_cluster_leaves_a_key_of_another_type_out_naming_it(
    cluster: list[RedisServer], writer: RedisCluster
) -> None:
    """The keys of other types are found on the flags' node too (tests/test_unreadable.py on one Redis)."""
    writer.sadd(PREFIX + "version:v1:positive", "a")
    writer.set(PREFIX + "group:bad:positive", "x")
    settings = patient(Settings(redis_url=cluster[2].url, redis_cluster=True, key_prefix=PREFIX))
    store = Store.from_settings(settings)
    exported = await operations.run(store, settings, "export", {})
    assert exported["flags"]["features"] == {"a": {"enabled": ["version:v1"]}}
    [warning] = exported["warnings"]
    assert warning.startswith(f"key '{PREFIX}group:bad:positive' holds a string, not a set: left out")
    await store.aclose()


async def test_connections_idle_too_long_are_replaced_on_every_node(
    cluster: list[RedisServer], writer: RedisCluster
) -> None:
    """As on a single Redis (tests/test_resilience.py): unused for `redis_idle_reconnect` seconds, the
    cluster client's connections are closed before use and new ones opened."""
    writer.sadd(PREFIX + "version:v1:positive", "feature_A")
    owner = writer.get_node_from_key(PREFIX + "global:positive")
    settings = Settings(redis_url=cluster[0].url, redis_cluster=True, key_prefix=PREFIX, redis_idle_reconnect=IDLE)
    store = Store.from_settings(settings)

    def connections() -> int:
        return writer.info("stats", target_nodes=owner)["total_connections_received"]

    assert await store.features(Context(version="v1")) == ["feature_A"]
    before = connections()
    assert await store.features(Context(version="v1")) == ["feature_A"]
    assert connections() == before  # in use: kept
    await asyncio.sleep(IDLE + 0.1)
    assert await store.features(Context(version="v1")) == ["feature_A"]
    assert connections() == before + 1  # idle: replaced
    await store.aclose()


async def test_usage_is_counted_in_the_flags_slot_on_the_cluster(
    cluster: list[RedisServer], writer: RedisCluster, cluster_store: Store
) -> None:
    """The flush's keys share the prefix's slot (one script call); usage, stale and delete read and forget them."""
    writer.sadd(PREFIX + "global:positive", "a", "b")
    settings = Settings(key_prefix=PREFIX, redis_cluster=True)
    app = create_app(cluster_store, settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://flipper.test") as http:
        for path in ("/", "/", "/features/a"):
            assert (await http.get(path)).status_code == 200
    await app.state.usage.close(5)
    assert {key_slot(key.encode()) for key in writer.keys(PREFIX + "usage:*")} == {key_slot(PREFIX.encode())}
    assert writer.hgetall(PREFIX + "usage:evaluations") == {"a": "3", "b": "2"}
    used = await operations.run(cluster_store, settings, "usage", {})
    assert [(row["feature"], row["evaluations"]) for row in used["features"]] == [("a", 3), ("b", 2)]
    assert (await operations.run(cluster_store, settings, "stale", {"unused_for": "1h"}))["features"] == []
    await operations.run(cluster_store, settings, "delete", {"feature": "a", "actor": "t"})
    assert writer.hgetall(PREFIX + "usage:evaluations") == {"b": "2"}


def test_a_promotion_between_hash_tagged_prefixes_on_the_cluster(
    cluster: list[RedisServer], writer: RedisCluster
) -> None:
    script = Path(sys.executable).with_name("flipper")
    environ = {**os.environ, "REDIS_URL": cluster[0].url, "FLIPPER_REDIS_CLUSTER": "true"}
    environ.pop("FLIPPER_KEY_PREFIX", None)

    def flipper(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, env=environ, timeout=60
        )

    assert flipper(f"{script} enable checkout --group beta --prefix '{{staging}}:'").returncode == 0
    done = flipper(f"{script} export --prefix '{{staging}}:' | {script} apply --prefix '{{production}}:' -")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[:2] == [
        "plan against revision 0: 1 membership changes",
        "  + checkout enabled at group:beta",
    ]
    assert writer.smembers("{production}:group:beta:positive") == {"checkout"}
    refused = flipper(f"{script} list --prefix staging:")
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "flipper: error: FLIPPER_KEY_PREFIX='staging:' has no hash tag such as '{flipper}:'"
    )
