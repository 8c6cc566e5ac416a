"""A flag key of another type than its name says, written around Flipper (`SET group:bad:positive x`): `list`
and `export` leave it out with a warning naming it, and go on with the rest; `plan` and `apply`, which must
read every key to make Redis match a file, refuse naming it and write nothing. On a real redis-server."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from bench.servers import RedisServer
from flipper.core import operations
from flipper.core.memberships import FlagError
from flipper.core.settings import Settings
from flipper.core.store import Store
from tests.test_operations import ACTOR, dump, flags_file
from tests.timeouts import patient

PREFIX = "{flipper}:"
SETTINGS = Settings(key_prefix=PREFIX)

# A key as written by hand, and what its name says it should be.
BAD = {
    "group:bad:positive": ("SET", "x"),  # a string where a set should be
    "global:rollout": ("SADD", "a"),  # a set where a hash should be
    "version:v2:negative": ("HSET", "a", "1"),  # a hash where a set should be
}


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[Store]:
    store = Store.from_settings(patient(dataclasses.replace(SETTINGS, redis_url=redis_server.url)))
    await store.client.flushall()
    await store.client.sadd(PREFIX + "version:v1:positive", "a")
    await store.client.hset(PREFIX + "group:g1:rollout", "b", "25")
    yield store
    await store.aclose()


async def write_bad(store: Store, key: str) -> None:
    command, *arguments = BAD[key]
    await store.client.execute_command(command, PREFIX + key, *arguments)


@pytest.mark.parametrize("key", BAD)
async def test_export_leaves_a_key_of_another_type_out_with_a_warning_naming_it(store: Store, key: str) -> None:
    await write_bad(store, key)
    exported = await operations.run(store, SETTINGS, "export", {})
    assert exported["flags"]["features"] == {
        "a": {"enabled": ["version:v1"]},
        "b": {"rollout": {"group:g1": "25"}},
    }
    [warning] = exported["warnings"]
    assert warning.startswith(f"key '{PREFIX}{key}' holds a ")
    assert "left out" in warning


@pytest.mark.parametrize("operation", [("usage", {}), ("stale", {"unused_for": "1d"})])
@pytest.mark.parametrize("key", BAD)
async def test_usage_and_stale_go_on_without_such_a_key_and_name_it(
    store: Store, key: str, operation: tuple[str, dict[str, str]]
) -> None:
    await write_bad(store, key)
    name, arguments = operation
    result = await operations.run(store, SETTINGS, name, arguments)
    assert [row["feature"] for row in result["features"]] == ["a", "b"]
    assert any(warning.startswith(f"key '{PREFIX}{key}' holds a ") for warning in result["warnings"])


async def test_export_without_such_a_key_has_no_warnings(store: Store) -> None:
    assert "warnings" not in await operations.run(store, SETTINGS, "export", {})


@pytest.mark.parametrize("key", BAD)
async def test_plan_and_apply_refuse_naming_a_key_of_another_type_and_write_nothing(store: Store, key: str) -> None:
    await write_bad(store, key)
    before = await dump(store)
    document = flags_file({"c": {"enabled": ["global"]}})
    for name, arguments in (
        ("plan", {"flags_file": document}),
        ("apply", {"flags_file": document, "revision": 0, "actor": ACTOR}),
    ):
        with pytest.raises(FlagError, match=rf"^key '{PREFIX}{key}' holds a .*: Flipper cannot read it"):
            await operations.run(store, SETTINGS, name, arguments)
    assert await dump(store) == before


async def test_stale_for_longer_than_since_1970_lists_every_flag_not_an_internal_error(store: Store) -> None:
    result = await operations.run(store, SETTINGS, "stale", {"unused_for": "999999999d"})
    assert [row["feature"] for row in result["features"]] == ["a", "b"]
