"""Issue 20: the instance's cache never serves the past. Every way the store's revision can go back and be
written up to a count the cache knows again, through Flipper's write path, on a real redis-server with the
cache on: the cached answer is the uncached one, never what was held before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis

from bench.servers import RedisServer
from flipper.core import operations, replies
from flipper.core.model import Context, flag_keys, rollout_keys
from flipper.core.settings import Settings
from flipper.core.store import Store
from tests.test_cache import SwitchingProxy
from tests.timeouts import patient

V9 = Context(version="v9")


def stores(url: str) -> tuple[Store, Store]:
    """A store with the cache on (30 s, as in the issue's repro) and an uncached one, over the Redis at `url`."""
    return (
        Store.from_settings(patient(Settings(redis_url=url, cache_max_age=30))),
        Store.from_settings(patient(Settings(redis_url=url))),
    )


async def enable(store: Store, feature: str) -> int:
    """`flipper enable FEATURE --version v9`, through the audited write path; the revision it produced."""
    result = await operations.run(
        store, Settings(), "change", {"operation": "enable", "feature": feature, "entity": "version:v9", "actor": "t"}
    )
    return result["revision"]


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[Store, Store]]:
    cached, uncached = stores(redis_server.url)
    await uncached.client.flushall()
    yield cached, uncached
    await cached.aclose()
    await uncached.aclose()


# Each leaves the count at 0, as an empty Redis, or lower than it was, as a hand-written SET.
GOING_BACK: dict[str, Callable[[redis.Redis], object]] = {
    "FLUSHALL": lambda client: client.flushall(),
    "FLUSHDB": lambda client: client.flushdb(),
    "DEL revision": lambda client: client.delete("revision"),
    "SET revision lower": lambda client: client.set("revision", 0),
}


@pytest.mark.parametrize("going_back", GOING_BACK)
async def test_a_revision_gone_back_and_written_up_again_is_not_trusted(
    pair: tuple[Store, Store], redis_server: RedisServer, going_back: str
) -> None:
    """The issue's repro: enable c_old (revision 1), evaluate, the revision goes back, enable c_new (revision 1
    again): the cached store answers what Redis holds, not the c_old it held at the first revision 1."""
    cached, uncached = pair
    assert await enable(uncached, "c_old") == 1
    assert await cached.features(V9) == ["c_old"]
    with redis.Redis(port=redis_server.port) as client:
        GOING_BACK[going_back](client)
    assert await enable(uncached, "c_new") == 1  # the count the cache knows, other contents
    now = await uncached.features(V9)
    assert "c_new" in now
    assert await cached.features(V9) == now


async def test_a_restart_without_persistence_written_back_to_the_same_revision(
    own_redis_server: RedisServer,
) -> None:
    """No evaluation fails meanwhile: the client's silent reconnect hides the restart from the cache."""
    cached, uncached = stores(own_redis_server.url)
    assert await enable(uncached, "c_old") == 1
    assert await cached.features(V9) == ["c_old"]
    own_redis_server.stop()
    own_redis_server.start()
    assert await enable(uncached, "c_new") == 1
    assert await cached.features(V9) == ["c_new"]
    await cached.aclose()
    await uncached.aclose()


async def test_a_failover_to_a_lagging_replica_written_up_to_the_same_revision(
    own_redis_server: RedisServer, tmp_path: Path
) -> None:
    """The replica promoted had not seen the primary's second write; the new primary's own second write brings
    it to revision 2 again, with other contents, before any evaluation sees the lower revision."""
    primary = redis.Redis(port=own_redis_server.port, decode_responses=True)
    primary.config_set("dir", str(tmp_path))  # a snapshot for the replica, if any, is written there
    replica_server = RedisServer()
    replica_server.data_dir = tmp_path
    replica_server.start()
    try:
        async with SwitchingProxy(own_redis_server.port) as proxy:
            cached, writer = stores(f"redis://127.0.0.1:{proxy.port}")
            assert await enable(writer, "c_old") == 1
            replica = redis.Redis(port=replica_server.port, decode_responses=True)
            replica.replicaof("127.0.0.1", own_redis_server.port)
            for _ in range(200):
                if replica.get("revision") == "1" and replica.info("replication")["master_link_status"] == "up":
                    break
                await asyncio.sleep(0.05)
            replica.replicaof("NO", "ONE")  # it lags from here on
            assert await enable(writer, "c_lost") == 2
            assert await cached.features(V9) == ["c_lost", "c_old"]
            proxy.switch(replica_server.port)  # the failover
            assert await enable(writer, "c_new") == 2
            assert await cached.features(V9) == ["c_new", "c_old"]
            await cached.aclose()
            await writer.aclose()
        replica.close()
    finally:
        primary.close()
        replica_server.stop()


async def test_a_store_written_before_the_stamp_is_cached_and_its_first_write_seen(pair: tuple[Store, Store]) -> None:
    """A store the previous version wrote (a plain integer revision, no stamp) is still held by the revision
    alone; the first write through this version's write path stamps it and is seen at once."""
    cached, uncached = pair
    await uncached.client.set("revision", 4)
    await uncached.client.sadd("version:v9:positive", "c_old")
    assert await cached.features(V9) == ["c_old"]
    assert cached.cache is not None
    assert (cached.cache.revision, cached.cache.stamp) == (4, None)  # held by the count alone
    assert await enable(uncached, "c_new") == 5
    assert await cached.features(V9) == ["c_new", "c_old"]
    assert await uncached.revision() == 5


async def test_steady_state_answers_the_stamped_revision_alone_in_a_few_bytes(pair: tuple[Store, Store]) -> None:
    cached, uncached = pair
    await enable(uncached, "c_old")
    assert await cached.features(V9) == ["c_old"]
    assert cached.cache is not None
    known = replies.known(cached.cache.revision, cached.cache.stamp)
    assert known.startswith("1:")
    keys = [cached.revision_key, cached.stamp_key, *flag_keys(V9), *rollout_keys(V9)]
    assert await cached._evaluate(keys=keys, args=[known, "1" * (len(keys) - 2)]) == known
    assert len(known) <= 32  # with its RESP framing, well within the 64 bytes of the bench's budget


async def test_a_stamp_of_another_type_reads_as_none_and_the_write_path_sets_it_again(
    pair: tuple[Store, Store],
) -> None:
    cached, uncached = pair
    await enable(uncached, "c_old")
    await uncached.client.delete(uncached.stamp_key)
    await uncached.client.sadd(uncached.stamp_key, "by hand")
    assert await cached.features(V9) == ["c_old"]
    assert cached.cache is not None
    assert (cached.cache.revision, cached.cache.stamp) == (1, None)
    assert await enable(uncached, "c_new") == 2
    assert await cached.features(V9) == ["c_new", "c_old"]
    assert cached.cache.stamp is not None
