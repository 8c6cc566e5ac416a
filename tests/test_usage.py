"""Usage counts on a real redis-server and on fakeredis: what each kind of evaluation counts, across instances
sharing one Redis; the flush interval on an injected clock; failures that lose one interval and fail nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import httpx
import pytest
import redis.asyncio

from flipper.core import operations
from flipper.core.connection import StoreError, StoreUnavailable
from flipper.core.memberships import FlagError
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.core.usage import FOLD_AT, Usage
from flipper.core.writes import utc_time
from flipper.serve.app import create_app
from flipper.serve.observability import MeteredStore, metrics

WALL = 1_800_000_000.0  # the injected wall clock's Unix time at its monotonic 0


class Clock:
    """Monotonic seconds that move only when told, and the wall clock that goes with them."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL + self.now


def sibling(store: Store) -> Store:
    """Another instance's store on the same Redis (a new client and pool; fakeredis: the same server)."""
    pool = store.client.connection_pool
    client = redis.asyncio.Redis(
        connection_pool=redis.asyncio.ConnectionPool(connection_class=pool.connection_class, **pool.connection_kwargs)
    )
    return Store(client, store.key_prefix)


class Instance:
    """One function instance: its own store on the shared Redis, its usage counter on `clock`, its app."""

    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self.store = store
        self.usage = Usage(store, settings, clock=clock, wall=clock.wall)
        transport = httpx.ASGITransport(app=create_app(store, settings, usage=self.usage))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://flipper.test")

    async def get(self, path: str, **query: str) -> httpx.Response:
        response = await self.http.get(path, params=query)
        assert response.status_code == 200, response.text
        return response

    async def post(self, path: str, context: dict[str, Any]) -> httpx.Response:
        response = await self.http.post(path, json={"context": context})
        assert response.status_code == 200, response.text
        return response

    async def aclose(self) -> None:
        await self.http.aclose()


async def usage(store: Store) -> tuple[dict[str, int], dict[str, int]]:
    counts, seen, _ = await store.usage()
    return {f: int(n) for f, n in counts.items()}, {f: int(ms) for f, ms in seen.items()}


@pytest.fixture
async def flags(store: Store) -> Store:
    await store.client.sadd("global:positive", "a", "b")
    await store.client.sadd("version:v1:positive", "c")
    return store


async def test_each_kind_of_evaluation_counts_the_features_it_names_across_instances(
    flags: Store, settings: Settings
) -> None:
    clock = Clock()
    others = [sibling(flags), sibling(flags)]
    one, two, three = (Instance(store, settings, clock) for store in (flags, *others))
    for _ in range(3):
        assert (await one.get("/")).json() == {"features": ["a", "b"]}  # the seed's API: what it returns
    for _ in range(2):
        await one.get("/", version="v1")
    clock.now = 5.0
    for _ in range(4):
        await two.get("/features/a")  # asked for: counted on or off
    await two.get("/features/zzz", explain="true")  # no such flag: still asked for
    clock.now = 7.0
    for _ in range(2):
        await three.post("/ofrep/v1/evaluate/flags/b", {})
    await three.post("/ofrep/v1/evaluate/flags", {"version": "v1"})  # bulk: every flag it evaluates
    assert await usage(flags) == ({}, {})  # nothing flushed yet: the interval has not passed
    for instance in (one, two, three):
        await instance.usage.close(5)
    counts, seen = await usage(flags)
    assert counts == {"a": 3 + 2 + 4 + 1, "b": 3 + 2 + 2 + 1, "c": 2 + 1, "zzz": 1}
    # Last seen: the last evaluation counted in the interval that named it, whichever instance flushed last.
    assert seen == {"a": (WALL + 7) * 1000, "b": (WALL + 7) * 1000, "c": (WALL + 7) * 1000, "zzz": (WALL + 5) * 1000}
    for instance in (one, two, three):
        await instance.aclose()
    for store in others:
        await store.aclose()


async def test_a_flush_starts_only_once_the_interval_has_passed_and_carries_what_came_before(
    flags: Store, settings: Settings
) -> None:
    clock = Clock()
    instance = Instance(flags, dataclasses.replace(settings, usage_flush_seconds=60), clock)
    await instance.get("/features/a")
    clock.now = 59.9
    await instance.get("/features/a")
    assert instance.usage.flushing is None
    clock.now = 60.0
    await instance.get("/features/b")  # due: starts the flush of the two before it, in the background
    flushing = instance.usage.flushing
    assert flushing is not None
    await flushing
    assert await usage(flags) == ({"a": 2}, {"a": round((WALL + 59.9) * 1000)})
    clock.now = 119.0
    await instance.get("/features/b")
    assert instance.usage.flushing is None  # at most once an interval
    clock.now = 120.0
    await instance.get("/features/c")
    await instance.usage.flushing  # type: ignore[misc]
    assert (await usage(flags))[0] == {"a": 2, "b": 2}
    clock.now = 1000.0
    await instance.usage.close(5)
    assert (await usage(flags))[0] == {"a": 2, "b": 2, "c": 1}
    await instance.aclose()


async def test_an_interval_with_nothing_counted_flushes_nothing(flags: Store, settings: Settings) -> None:
    clock = Clock()
    instance = Instance(flags, settings, clock)
    await instance.get("/features/a")
    await instance.usage.close(5)
    clock.now = 500.0
    await instance.get("/features/b")  # due, but nothing was counted since: no flush, a new interval from here
    assert instance.usage.flushing is None
    clock.now = 530.0
    await instance.get("/features/b")
    assert instance.usage.flushing is None  # 30 s into the interval that began at 500
    clock.now = 560.0
    await instance.get("/features/c")
    await instance.usage.flushing  # type: ignore[misc]
    assert (await usage(flags))[0] == {"a": 1, "b": 2}
    await instance.aclose()


async def test_a_failed_flush_loses_only_its_interval_and_fails_no_evaluation(
    flags: Store, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    instance = Instance(flags, settings, clock)
    await flags.client.set("usage:evaluations", "not a hash")  # every flush now gets an error reply
    await instance.get("/features/a")
    clock.now = 60.0
    with caplog.at_level(logging.WARNING, "flipper"):
        await instance.get("/features/b")
        await instance.usage.flushing  # type: ignore[misc]
    assert "usage flush failed; lost 1 evaluations of 1 features" in caplog.text
    await flags.client.delete("usage:evaluations")
    assert (await instance.get("/features/b")).json()["feature"] == "b"
    await instance.usage.close(5)
    assert (await usage(flags))[0] == {"b": 2}  # a's interval is lost; b's is not
    await instance.aclose()


async def test_a_flush_that_hangs_holds_up_no_evaluation(flags: Store, settings: Settings) -> None:
    clock = Clock()
    instance = Instance(flags, settings, clock)
    released = asyncio.Event()

    async def unreachable(*args: Any) -> int:
        await released.wait()
        raise StoreUnavailable("timed out")

    instance.store.add_usage = unreachable  # type: ignore[method-assign]
    await instance.get("/")
    clock.now = 60.0
    async with asyncio.timeout(5):
        for _ in range(20):  # answered while the flush waits, and none starts another
            assert (await instance.get("/")).json() == {"features": ["a", "b"]}
    flushing = instance.usage.flushing
    assert flushing is not None
    assert not flushing.done()
    released.set()
    await flushing
    assert instance.usage.flushing is None
    await instance.aclose()


async def test_close_gives_up_within_its_bound(flags: Store, settings: Settings) -> None:
    instance = Instance(flags, settings, Clock())

    async def hung(*args: Any) -> int:
        await asyncio.sleep(60)
        return 0

    instance.store.add_usage = hung  # type: ignore[method-assign]
    await instance.get("/")
    async with asyncio.timeout(2):
        await instance.usage.close(0.05)
    await instance.aclose()


async def test_the_store_stays_bounded_whatever_names_callers_send(flags: Store, settings: Settings) -> None:
    clock = Clock()
    bounded = dataclasses.replace(settings, usage_max_features=3)
    instance = Instance(flags, bounded, clock)
    await flags.client.sadd("global:positive", "x" * (settings.max_id_length + 1), "")  # written around Flipper
    await instance.get("/")  # names a, b and the two the API could not be asked about: those are not kept
    for name in ("r1", "r2", "r3"):
        await instance.get(f"/features/{name}")
    await instance.usage.close(5)
    counts, _ = await usage(flags)
    assert set(counts) == {"a", "b", "r1"}  # the fourth name onwards is left out, the first ones go on
    instance = Instance(flags, bounded, clock)
    await instance.get("/features/a")
    await instance.get("/features/r2")
    await instance.usage.close(5)
    assert (await usage(flags))[0] == {"a": 2, "b": 1, "r1": 1}
    await instance.aclose()


async def test_names_that_are_no_flag_cannot_take_a_registered_flags_place(flags: Store, settings: Settings) -> None:
    """Filled by names callers made up, usage still counts every registered flag: one never counted would
    look stale, and be deleted while code still asks for it."""
    bounded = dataclasses.replace(settings, usage_max_features=2)
    await flags.client.sadd("features", "late_flag")  # registered, as every write through Flipper does
    instance = Instance(flags, bounded, Clock())
    for name in ("r1", "r2", "r3"):
        await instance.get(f"/features/{name}")
    await instance.get("/features/late_flag")
    await instance.get("/features/r4")
    await instance.usage.close(5)
    assert (await usage(flags))[0] == {"r1": 1, "r2": 1, "late_flag": 1}
    await instance.aclose()


async def test_a_registry_of_another_type_is_none_to_the_flush(flags: Store, settings: Settings) -> None:
    """Written by hand, it must not fail the flush halfway (counts added, the interval logged as lost)."""
    await flags.client.set("features", "oops")
    instance = Instance(flags, dataclasses.replace(settings, usage_max_features=1), Clock())
    for name in ("r1", "r2"):
        await instance.get(f"/features/{name}")
    await instance.usage.close(5)
    assert (await usage(flags))[0] == {"r1": 1}
    await instance.aclose()


async def test_the_lifespan_shutdown_flushes(flags: Store, settings: Settings) -> None:
    app = create_app(sibling(flags), settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://flipper.test") as http:
            for _ in range(3):
                assert (await http.get("/features/a")).status_code == 200
        assert await usage(flags) == ({}, {})
    assert (await usage(flags))[0] == {"a": 3}


async def test_usage_off_counts_nothing(flags: Store) -> None:
    settings = Settings.from_environ({"FLIPPER_USAGE": "0"})
    app = create_app(flags, settings)
    assert app.state.usage is None
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://flipper.test") as http:
        assert (await http.get("/features/a")).status_code == 200
    assert await flags.client.keys("usage:*") == []


@pytest.mark.parametrize("settings", [Settings(cache_max_age=30)])
async def test_answers_reused_from_the_cache_count_too(flags: Store, settings: Settings) -> None:
    clock = Clock()
    instance = Instance(flags, settings, clock)
    tags = {(await instance.get("/", version="v1")).headers["etag"] for _ in range(5)}
    assert len(tags) == 1  # the same cached answer each time
    await instance.usage.close(5)
    assert (await usage(flags))[0] == {"a": 5, "b": 5, "c": 5}
    await instance.aclose()


DAY_MS = 86_400_000


async def run(store: Store, name: str, **arguments: Any) -> dict[str, Any]:
    return await operations.run(store, Settings(), name, arguments)


async def enable(store: Store, feature: str) -> dict[str, Any]:
    return await run(store, "change", operation="enable", feature=feature, entity="global", actor="tester")


@pytest.fixture
async def used(store: Store) -> int:
    """Flags `old` (last evaluated 40 days ago), `recent` (an hour ago) and `never`; `asked`, evaluated but no
    flag; usage recorded since 40 days ago. Redis's time now, in ms."""
    for feature in ("old", "recent", "never"):
        await enable(store, feature)
    now = await store.time_ms()
    await store.add_usage(100, now - 40 * DAY_MS, [("old", 3, now - 40 * DAY_MS)])
    await store.add_usage(100, now, [("recent", 5, now - 3_600_000), ("asked", 1, now - 3_600_000)])
    return now


async def test_usage_lists_every_known_feature_with_its_counts_and_last_change(store: Store, used: int) -> None:
    result = await run(store, "usage")
    rows = {row["feature"]: row for row in result["features"]}
    assert list(rows) == ["asked", "never", "old", "recent"]
    assert {feature: (row["flag"], row["evaluations"]) for feature, row in rows.items()} == {
        "asked": (False, 1),
        "never": (True, 0),
        "old": (True, 3),
        "recent": (True, 5),
    }
    assert rows["old"]["last_evaluated"] == utc_time((used - 40 * DAY_MS) / 1000)
    assert rows["never"]["last_evaluated"] is None
    history = (await run(store, "history", feature="recent"))["entries"]
    assert rows["recent"]["last_changed"] == history[0]["time"]
    assert rows["asked"]["last_changed"] is None
    assert result["recording_since"] == utc_time((used - 40 * DAY_MS) / 1000)


@pytest.mark.parametrize(
    ("unused_for", "expected", "warned"),
    [
        ("90s", ["never", "old", "recent"], False),
        ("59m", ["never", "old", "recent"], False),
        ("61m", ["never", "old"], False),
        ("12h", ["never", "old"], False),
        ("30d", ["never", "old"], False),
        ("60d", ["never"], True),
    ],
)
async def test_stale_lists_the_flags_not_evaluated_within_the_duration(
    store: Store, used: int, unused_for: str, expected: list[str], warned: bool
) -> None:
    result = await run(store, "stale", unused_for=unused_for)
    assert [row["feature"] for row in result["features"]] == expected  # `asked` is no flag: never stale
    assert len(result["warnings"]) == warned
    if warned:
        assert result["warnings"][0].startswith("usage recorded only since ")


async def test_stale_before_any_flush_says_every_flag_looks_unused(store: Store) -> None:
    await enable(store, "a")
    result = await run(store, "stale", unused_for="1d")
    assert [row["feature"] for row in result["features"]] == ["a"]
    assert result["warnings"] == ["no usage recorded yet (FLIPPER_USAGE off, or no flush yet): every flag looks unused"]


@pytest.mark.parametrize("duration", ["30", "0d", "3w", "", "1.5d", "-1d", "30 d", 30, None])
async def test_a_duration_that_is_not_one_is_refused_naming_it(store: Store, duration: object) -> None:
    with pytest.raises(FlagError, match=r"^duration .* is not a count of days, hours, minutes or seconds"):
        await run(store, "stale", unused_for=duration)


async def test_delete_removes_the_features_usage_and_forgets_a_name_that_is_no_flag(store: Store, used: int) -> None:
    deleted = await run(store, "delete", feature="old", actor="tester")
    assert deleted["entry"] is not None
    assert (await run(store, "delete", feature="asked", actor="tester"))["entry"] is None  # no flag: no write
    counts, seen, _ = await store.usage()
    assert (set(counts), set(seen)) == ({"recent"}, {"recent"})
    assert [row["feature"] for row in (await run(store, "usage"))["features"]] == ["never", "recent"]


async def test_flushes_and_their_failures_are_emf_metrics(store: Store) -> None:
    metered = MeteredStore(store.client, store.key_prefix)
    metrics.clear_metrics()
    assert await metered.add_usage(1, 1, [("a", 1, 1), ("b", 1, 1)]) == 1  # b: over the bound of 1
    await store.client.delete("usage:evaluations")
    await store.client.set("usage:evaluations", "not a hash")
    with pytest.raises(StoreError):
        await metered.add_usage(1, 1, [("a", 1, 1)])
    counted = {name: metric["Value"] for name, metric in metrics.metric_set.items()}
    metrics.clear_metrics()
    assert counted == {"UsageFlushes": [1.0], "UsageFeaturesDropped": [1.0], "UsageFlushFailures": [1.0]}


async def test_distinct_answers_are_folded_into_counts_as_they_come(flags: Store, settings: Settings) -> None:
    """Tallied by answer: one answer asked for again and again is one tally; distinct ones are folded into the
    counts every FOLD_AT, so what is held between flushes stays bounded whatever callers ask."""
    instance = Instance(flags, settings, Clock())
    for i in range(150):
        await instance.get("/")
        await instance.get(f"/features/f{i}")
        assert len(instance.usage._tallies) <= FOLD_AT
    await instance.usage.close(5)
    assert (await usage(flags))[0] == {"a": 150, "b": 150} | {f"f{i}": 1 for i in range(150)}
    await instance.aclose()
