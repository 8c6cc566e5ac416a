"""The instance's revision-validated cache (issue 11): answers identical to uncached ones whatever the writes,
no staleness for writes that bump the revision, the max age for raw writes, restarts and flushes, the
memory bound, and the few bytes Redis sends in steady state."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.servers import RedisServer
from flipper.core import replies
from flipper.core.cache import Cache
from flipper.core.connection import StoreError, StoreUnavailable, client_from_settings
from flipper.core.model import Context, flag_keys, rollout_keys
from flipper.core.rules import canonical_json
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.serve.app import create_app
from tests.test_store import CONTEXTS, ENTITIES, NAMES, PERCENTAGES, expected_by_rule
from tests.timeouts import IDLE, patient

MAX_AGE = 3600.0


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Pair:
    """A cached and an uncached store over one Redis, and a plain client for writing."""

    cached: Store
    uncached: Store
    clock: Clock

    @property
    def cache(self) -> Cache:
        assert self.cached.cache is not None
        return self.cached.cache

    async def write(self, *commands: tuple[Any, ...], bump: bool = True) -> None:
        """Run `commands` in one MULTI, with the revision INCR'd as Flipper's write path does (unless not)."""
        pipeline = self.uncached.client.pipeline(transaction=True)
        if bump:
            pipeline.incr("revision")
        for command in commands:
            pipeline.execute_command(*command)
        await pipeline.execute()


@pytest.fixture(params=["redis", "fakeredis"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    clock = Clock()
    cache = Cache(MAX_AGE, 16 * 1024 * 1024, clock)
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        cached = Store(client_from_settings(patient(Settings(redis_url=server.url))), cache=cache)
        uncached = Store.from_settings(patient(Settings(redis_url=server.url)))
        await uncached.client.flushall()
    else:
        fake = fakeredis.FakeServer()
        cached = Store(fakeredis.FakeAsyncRedis(server=fake, decode_responses=True), cache=cache)
        uncached = Store(fakeredis.FakeAsyncRedis(server=fake, decode_responses=True))
    yield Pair(cached, uncached, clock)
    await cached.aclose()
    await uncached.aclose()


# Writes as Flipper's write path makes them: one change, with the revision INCR'd in the same MULTI.
SET_KEYS = st.sampled_from([f"{entity}:{polarity}" for entity in ENTITIES for polarity in ("positive", "negative")])
ROLLOUT_KEYS = st.sampled_from([f"{entity}:rollout" for entity in ENTITIES])
WRITES = st.one_of(
    st.tuples(st.just("SADD"), SET_KEYS, NAMES),
    st.tuples(st.just("SREM"), SET_KEYS, NAMES),
    st.tuples(st.just("HSET"), ROLLOUT_KEYS, NAMES, PERCENTAGES.map(lambda written: written[0])),
    st.tuples(st.just("HDEL"), ROLLOUT_KEYS, NAMES),
)
STEPS = st.lists(st.one_of(WRITES, CONTEXTS), min_size=1, max_size=30)


async def compare(cached: Store, uncached: Store, steps: list[Any], write: Callable[[Any], Awaitable[None]]) -> None:
    """Run `steps` (writes, and callers to evaluate): every answer of the cached store, through the app too
    (bodies and ETags of `/`, `/features/{name}` and OFREP's bulk evaluation), must be the uncached one."""
    apps = [
        httpx.AsyncClient(transport=httpx.ASGITransport(create_app(store, Settings())), base_url="http://flipper")
        for store in (cached, uncached)
    ]
    for step in steps:
        if not isinstance(step, Context):
            await write(step)
            continue
        assert await cached.features(step) == await uncached.features(step)
        query = {"version": step.version, "group": list(step.groups), "user": step.user}
        params = {name: value for name, value in query.items() if value}
        ofrep = {"context": {"targetingKey": step.user, "version": step.version, "group": list(step.groups)}}
        for request in (
            {"method": "GET", "url": "/", "params": params},
            {"method": "GET", "url": "/features/a", "params": params | {"explain": "true"}},
            {"method": "GET", "url": "/features/ü", "params": params},
            {"method": "POST", "url": "/ofrep/v1/evaluate/flags", "json": ofrep},
        ):
            first, second = [await app.request(**request) for app in apps]
            assert (first.content, first.headers["etag"]) == (second.content, second.headers["etag"])
    for app in apps:
        await app.aclose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
async def test_cached_answers_equal_uncached_ones_with_writes_interleaved(pair: Pair, steps: list[Any]) -> None:
    """The model's random differential test, with writes through the revision between evaluations."""
    await pair.uncached.client.flushall()
    pair.cache.clear()
    await compare(pair.cached, pair.uncached, steps, pair.write)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rounds=st.lists(st.tuples(st.lists(WRITES, max_size=4), st.lists(CONTEXTS, min_size=1, max_size=12)), max_size=6)
)
async def test_concurrent_evaluations_coalesced_equal_uncached_ones(pair: Pair, rounds: list[Any]) -> None:
    """Callers evaluated at once share calls (`flipper.core.batches`: their keys' union): each answer is still its
    own caller's, as the uncached store reads it."""
    await pair.uncached.client.flushall()
    pair.cache.clear()
    for writes, callers in rounds:
        if writes:
            await pair.write(*writes)
        coalesced = await asyncio.gather(*(pair.cached.features(caller) for caller in callers))
        assert coalesced == [await pair.uncached.features(caller) for caller in callers]


async def test_a_bad_key_of_one_caller_fails_only_that_caller_among_concurrent_ones(pair: Pair) -> None:
    await pair.write(("SADD", "global:positive", "a"), ("SET", "user:bad:positive", "not a set"))
    callers = [Context(user=user) for user in ("u1", "bad", "u2", "u3")]
    answers = await asyncio.gather(*(pair.cached.features(caller) for caller in callers), return_exceptions=True)
    assert [answers[0], *answers[2:]] == [["a"]] * 3
    assert isinstance(answers[1], StoreError)
    assert not isinstance(answers[1], StoreUnavailable)
    held = len(pair.cache)
    with pytest.raises(StoreError):
        await pair.cached.features(callers[1])
    assert (len(pair.cache), pair.cache.revision) == (held, 1)  # Redis answered: nothing held is dropped


async def test_steady_state_sends_the_revision_alone_and_reuses_the_answer(pair: Pair) -> None:
    caller = Context(version="v1", groups=("g1",), user="u1")
    await pair.write(("SADD", "version:v1:positive", "a", "b"), ("HSET", "group:g1:rollout", "c", "100"))
    app = create_app(pair.cached, Settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://c") as client:
        first = await client.get("/?version=v1&group=g1&user=u1")
        keys = [pair.cached.revision_key, pair.cached.stamp_key, *flag_keys(caller), *rollout_keys(caller)]
        held = "1" * (len(keys) - 2)
        assert await pair.cached._evaluate(keys=keys, args=["1", held]) == "1"  # the revision alone
        assert (await pair.cached._evaluate(keys=keys, args=["0", held]))[0] == "1"  # a stale revision: all keys
        answers = len(pair.cache)
        second = await client.get("/?version=v1&group=g1&user=u1")
        assert len(pair.cache) == answers
        assert (second.content, second.headers["etag"]) == (first.content, first.headers["etag"])
        assert first.json() == {"features": ["a", "b", "c"]}


async def test_a_write_through_the_revision_is_seen_at_once(pair: Pair) -> None:
    await pair.write(("SADD", "global:positive", "a"))
    assert await pair.cached.features(Context()) == ["a"]
    await pair.write(("SADD", "global:negative", "a"), ("SADD", "global:positive", "b"))
    assert await pair.cached.features(Context()) == ["b"]


async def test_a_raw_write_is_seen_once_the_key_is_older_than_the_max_age(pair: Pair) -> None:
    await pair.write(("SADD", "global:positive", "a"))
    assert await pair.cached.features(Context()) == ["a"]
    await pair.write(("SADD", "global:positive", "raw"), bump=False)
    pair.clock.now += MAX_AGE - 0.001
    assert await pair.cached.features(Context()) == ["a"]  # held: nothing says it changed
    assert await pair.uncached.features(Context()) == ["a", "raw"]
    pair.clock.now += 0.002
    assert await pair.cached.features(Context()) == ["a", "raw"]


async def test_an_unchanged_key_read_again_keeps_the_answer(pair: Pair) -> None:
    """A write to another caller's key bumps the revision; the caller's keys read again unchanged keep
    their entries, so the answer is reused, not recomputed."""
    await pair.write(("SADD", "global:positive", "a"))
    app = create_app(pair.cached, Settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://c") as client:
        await client.get("/")
        [answer] = [slot for key, slot in pair.cache._slots.items() if key[0] == "answer"]
        await pair.write(("SADD", "group:other:positive", "b"))
        assert (await client.get("/")).json() == {"features": ["a"]}
        assert [slot for key, slot in pair.cache._slots.items() if key[0] == "answer"] == [answer]


async def test_a_flush_drops_the_cache(pair: Pair) -> None:
    for _ in range(5):
        await pair.write(("SADD", "global:positive", "old"))
    assert await pair.cached.features(Context()) == ["old"]
    assert pair.cache.revision == 5
    await pair.uncached.client.flushall()
    await pair.write(("SADD", "global:positive", "new"))  # revision 1: lower than the one known
    assert await pair.cached.features(Context()) == ["new"]
    assert pair.cache.revision == 1
    await pair.uncached.client.flushall()  # the revision gone: 0
    assert await pair.cached.features(Context()) == []


@pytest.mark.parametrize("written", ["not a number", "--5", "+5", "5 ", "\u0665"])
async def test_a_revision_that_is_not_an_integer_validates_nothing(pair: Pair, written: str) -> None:
    await pair.write(("SADD", "global:positive", "a"))
    assert await pair.cached.features(Context()) == ["a"]
    await pair.write(("SET", "revision", written), ("SADD", "global:positive", "b"), bump=False)
    assert await pair.cached.features(Context()) == ["a", "b"]
    await pair.write(("SADD", "global:positive", "c"), bump=False)
    assert await pair.cached.features(Context()) == ["a", "b", "c"]
    assert len(pair.cache) == 0


async def test_a_restart_drops_the_cache_and_a_store_error_is_never_answered_from_it(
    own_redis_server: RedisServer,
) -> None:
    store = Store.from_settings(Settings(redis_url=own_redis_server.url, cache_max_age=MAX_AGE))
    writer = redis.Redis(port=own_redis_server.port)
    writer.incr("revision", 3)
    writer.sadd("global:positive", "before")
    assert await store.features(Context()) == ["before"]
    assert store.cache is not None
    assert len(store.cache) > 0
    own_redis_server.stop()
    with pytest.raises(StoreUnavailable):
        await store.features(Context())
    assert (len(store.cache), store.cache.revision) == (0, None)
    own_redis_server.start()
    writer = redis.Redis(port=own_redis_server.port)
    writer.incr("revision", 3)  # the same revision as before the restart, other contents
    writer.sadd("global:positive", "after")
    assert await store.features(Context()) == ["after"]
    writer.close()
    await store.aclose()


def test_the_memory_bound_holds_and_evicts_the_least_recently_used() -> None:
    budget = 200_000
    cache = Cache(MAX_AGE, budget)
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    for number in range(2_000):
        cache.store(f"group:g{number}:positive", frozenset(f"feature_{i}_{number}" for i in range(20)), 1, 0.0)
        assert cache.size <= budget
    held = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    assert held <= budget * 1.25, held  # the estimate is near the truth, and what is evicted is freed
    assert 0 < len(cache) < 2_000
    cache.revision = 1
    assert cache.held(["group:g1999:positive"], 0.0)[0] is not None  # the newest stays
    assert cache.held(["group:g0:positive"], 0.0) == [None]  # the oldest went first


def _rules_entry(number: int) -> str:
    condition = {"attribute": f"plan{number}", "operator": "in", "values": [f"p{i}_{number}" for i in range(20)]}
    version = {"attribute": "app", "operator": "semver_gte", "values": [f"2.{number}.0"]}
    value = {"tier": f"gold{number}", "limits": [number, number + 1, number + 2]}
    return canonical_json([{"when": [condition, version], "value": value}])


def _values_entry(number: int) -> str:
    return canonical_json([{} for _ in range(60)] + [number])  # parsed, twenty times its text


# Parsed as a read parses them, without the parsers' own memory of the texts (replies._remembered, apart).
@pytest.mark.parametrize(("parse", "entry"), [(replies._rules, _rules_entry), (replies._value, _values_entry)])
def test_the_memory_bound_counts_everything_parsed_entries_hold(
    parse: Callable[[str], Any], entry: Callable[[int], str]
) -> None:
    """Rules and values are held parsed: everything they hold counts (their conditions, operands, the data of
    a value), not only the objects that hold them; callers cannot write them, but a store of many must fit."""
    budget = 1_000_000
    cache = Cache(MAX_AGE, budget)
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    for number in range(1_000):
        cache.store(f"n{number}", {f"feature_{number}": parse(entry(number))}, 1, 0.0)
        assert cache.size <= budget
    held = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    assert held <= budget * 1.25, held
    assert 0 < len(cache) < 1_000


def test_an_entry_larger_than_the_budget_is_not_held() -> None:
    cache = Cache(MAX_AGE, 1_000)
    cache.store("global:positive", frozenset(f"feature_{i}" for i in range(100)), 1, 0.0)
    assert (len(cache), cache.size) == (0, 0)
    assert sys.getsizeof(frozenset(range(100))) > 1_000


@pytest.mark.parametrize(
    ("raw", "expected"), [("0", 0.0), ("2.5", 2.5), ("", 0.0), ("-1", None), ("nan", None), ("inf", None), ("x", None)]
)
def test_max_age_setting(raw: str, expected: float | None) -> None:
    from flipper.core.settings import SettingsError

    if expected is None:
        with pytest.raises(SettingsError, match=r"^FLIPPER_CACHE_MAX_AGE="):
            Settings.from_environ({"FLIPPER_CACHE_MAX_AGE": raw})
    else:
        assert Settings.from_environ({"FLIPPER_CACHE_MAX_AGE": raw}).cache_max_age == expected


def test_the_cache_is_off_by_default_and_on_with_a_max_age() -> None:
    assert Store.from_settings(Settings(redis_url="redis://127.0.0.1:1")).cache is None
    store = Store.from_settings(Settings(redis_url="redis://127.0.0.1:1", cache_max_age=30, cache_max_bytes=1234))
    assert store.cache is not None
    assert (store.cache.max_age, store.cache.max_bytes) == (30, 1234)


async def test_the_expected_rule_still_holds_through_the_cache(pair: Pair) -> None:
    """A sanity check of the pair itself against the rule stated in Python."""
    await pair.write(("SADD", "version:v1:positive", "a"), ("HSET", "version:v1:rollout", "search", "97.601"))
    caller = Context(version="v1", user="User;1")
    flags = {"version:v1:positive": {"a"}}
    rollouts = {"version:v1:rollout": {"search": ("97.601", 97_601)}}
    for _ in range(2):
        assert await pair.cached.features(caller) == expected_by_rule(flags, caller, rollouts) == ["a", "search"]


async def test_freshness_no_answer_older_than_the_last_acknowledged_write(redis_server: RedisServer) -> None:
    """A writer changes flags through Flipper's write path (step i enables `v<i>` globally, then clears
    `v<i-1>`), 8 instances (each with its own cache) evaluate in a tight loop, 4 concurrent readers each so
    that their evaluations are coalesced (`flipper.core.batches`), 100,000 evaluations in all: no answer may miss
    a write acknowledged before the evaluation began."""
    from flipper.core import operations

    settings = patient(Settings(redis_url=redis_server.url, cache_max_age=MAX_AGE))
    writer = Store.from_settings(patient(Settings(redis_url=redis_server.url)))
    await writer.client.flushall()
    await writer.client.sadd("version:v1:positive", *(f"stable_{i}" for i in range(50)))
    await writer.client.sadd("global:positive", "v0")
    readers = [Store.from_settings(settings) for _ in range(8)]
    acknowledged, writes, evaluations, stale, target, calls = 0, 0, 0, 0, 100_000, 0
    caller = Context(version="v1", user="u1")

    async def change(operation: str, feature: str) -> None:
        nonlocal writes
        arguments = {"operation": operation, "feature": feature, "entity": "global", "actor": "freshness"}
        await operations.run(writer, Settings(), "change", arguments)
        writes += 1

    async def write() -> None:
        nonlocal acknowledged
        while evaluations < target:
            await change("enable", f"v{acknowledged + 1}")
            acknowledged += 1
            await change("clear", f"v{acknowledged - 1}")
            await asyncio.sleep(0.005)

    def counted(call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def counting(*arguments: Any) -> Any:
            nonlocal calls
            calls += 1
            return await call(*arguments)

        return counting

    async def read(store: Store) -> None:
        nonlocal evaluations, stale
        while evaluations < target:
            floor = acknowledged
            seen = max(int(name[1:]) for name in await store.features(caller) if name.startswith("v"))
            evaluations += 1
            stale += seen < floor

    for reader in readers:
        reader._call = counted(reader._call)  # type: ignore[method-assign]
    await asyncio.gather(write(), *(read(store) for store in readers for _ in range(4)))
    print(
        f"freshness: {evaluations} evaluations by 8 cached instances of 4 concurrent readers in {calls} script"
        f" calls, {writes} writes, {stale} stale answers"
    )
    assert acknowledged > 100  # the writer wrote all along
    assert evaluations >= target
    assert calls < evaluations / 2  # coalesced: the readers of an instance shared calls
    assert stale == 0
    for store in [writer, *readers]:
        await store.aclose()


async def test_every_write_through_flippers_write_path_is_seen_at_once(pair: Pair) -> None:
    """The lead's write path (operations, lua/write.lua) bumps the revision: each change, rollouts and
    clears included, is in the cached store's very next answer."""
    from flipper.core import operations

    caller = Context(version="v1", groups=("g1",), user="User;1")

    async def change(operation: str, entity: str, **extra: Any) -> None:
        arguments = {"operation": operation, "feature": "search", "entity": entity, "actor": "test", **extra}
        await operations.run(pair.uncached, Settings(), "change", arguments)

    assert await pair.cached.features(caller) == []
    for operation, entity, extra, expected in [
        ("enable", "version:v1", {}, ["search"]),
        ("disable", "group:g1", {}, []),
        ("clear", "group:g1", {}, ["search"]),
        ("clear", "version:v1", {}, []),
        ("rollout", "global", {"percentage": "97.601"}, ["search"]),  # User;1's bucket for search: 97,600
        ("rollout", "global", {"percentage": "97.6"}, []),
        ("rollout", "group:g1", {"percentage": "100"}, ["search"]),
    ]:
        await change(operation, entity, **extra)
        assert await pair.cached.features(caller) == expected, (operation, entity, extra)


async def test_an_idle_store_starts_again_from_an_empty_cache(redis_server: RedisServer) -> None:
    """After FLIPPER_REDIS_IDLE_RECONNECT seconds without a command (a frozen Lambda), Redis may have restarted
    and had its revision written back up to the value known, with other flags: not served from the cache."""
    store = Store.from_settings(Settings(redis_url=redis_server.url, cache_max_age=MAX_AGE, redis_idle_reconnect=IDLE))
    writer = redis.asyncio.Redis(port=redis_server.port, decode_responses=True)
    await writer.flushall()
    await writer.set("revision", 7)
    await writer.sadd("global:positive", "before")
    assert await store.features(Context()) == ["before"]
    await writer.flushall()  # as a restart without persistence would leave it, then 7 writes
    await writer.set("revision", 7)
    await writer.sadd("global:positive", "after")
    assert await store.features(Context()) == ["before"]  # not idle: held (the max age bounds this case)
    await asyncio.sleep(IDLE + 0.1)
    assert await store.features(Context()) == ["after"]
    await writer.aclose()
    await store.aclose()


class SwitchingProxy:
    """A TCP proxy to one Redis, switched to another as a failover switches an endpoint: the connections it
    holds are closed, new ones go to the new upstream."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> SwitchingProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.switch(self.upstream_port)
        self.server.close()

    def switch(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
            sink.close()

        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_a_failover_to_a_lagging_replica_drops_the_cache(own_redis_server: RedisServer, tmp_path: Path) -> None:
    """The replica promoted had not seen the primary's last write (revision 6): its revision is lower, so the
    cache is dropped; else, once the new primary's own next write brought it to 6 again, keys held from the
    old primary at 6 would be served."""
    primary = redis.Redis(port=own_redis_server.port, decode_responses=True)
    primary.config_set("dir", str(tmp_path))  # a snapshot for the replica, if any, is written there
    primary.sadd("global:positive", "a")
    primary.set("revision", 5)
    replica_server = RedisServer()
    replica_server.data_dir = tmp_path  # where the replica writes the primary's snapshot, not the working directory
    replica_server.start()
    try:
        replica = redis.Redis(port=replica_server.port, decode_responses=True)
        replica.replicaof("127.0.0.1", own_redis_server.port)
        for _ in range(200):
            if replica.get("revision") == "5":
                break
            await asyncio.sleep(0.05)
        replica.replicaof("NO", "ONE")  # it lags from here on
        primary.sadd("group:g1:positive", "lost")
        primary.set("revision", 6)
        async with SwitchingProxy(own_redis_server.port) as proxy:
            store = Store.from_settings(Settings(redis_url=f"redis://127.0.0.1:{proxy.port}", cache_max_age=MAX_AGE))
            in_g1 = Context(groups=("g1",))
            assert await store.features(in_g1) == ["a", "lost"]
            proxy.switch(replica_server.port)  # the failover
            assert await store.features(Context()) == ["a"]  # revision 5, lower: the cache is dropped
            replica.sadd("global:positive", "b")
            replica.set("revision", 6)  # the new primary's own write
            assert await store.features(in_g1) == ["a", "b"]
            await store.aclose()
        replica.close()
    finally:
        replica_server.stop()
    primary.close()
