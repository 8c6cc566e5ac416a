"""Flag questions answered from Redis: one evaluation script call each, through the instance's cache and
its coalesced calls when FLIPPER_CACHE_MAX_AGE is above 0; the operator's reads and the audited write path.

How Redis is reached and its failures mapped: `connection`; how the script's replies are read: `replies`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.client import NEVER_DECODE

from flipper.core import replies
from flipper.core.batches import Batches
from flipper.core.cache import Cache, Entry
from flipper.core.connection import StoreError, StoreUnavailable, client_from_settings, script_source, store_errors
from flipper.core.model import (
    REGISTRY,
    Context,
    Snapshot,
    enabled_features,
    flag_keys,
    is_hash_key,
    registry_key,
    revision_key,
    rollout_keys,
    rules_key,
    usage_keys,
    value_keys,
    variants_key,
)
from flipper.core.settings import Settings

logger = logging.getLogger("flipper")


def _snapshot(
    context: Context, contents: list[Any], registry: bool, now: float, stamp: tuple[object, ...] = ()
) -> Snapshot:
    """A snapshot at the time `now` from the contents of each of `Store.snapshot`'s keys, in their order: the
    sets, the rollouts, the values, the variants, the rules, and the registry when it was read."""
    sets, rollouts = len(flag_keys(context)), len(rollout_keys(context))
    values = sets + rollouts
    variants = values + len(context.entities())
    return Snapshot(
        context,
        contents[:sets],
        contents[sets:values],
        contents[values:variants],
        contents[variants],
        contents[variants + 2] if registry else None,
        rules=contents[variants + 1],
        now=now,
        stamp=stamp,
    )


def cache_from_settings(settings: Settings) -> Cache | None:
    """The instance's cache, or None when FLIPPER_CACHE_MAX_AGE is 0."""
    return Cache(settings.cache_max_age, settings.cache_max_bytes) if settings.cache_max_age > 0 else None


@dataclasses.dataclass(frozen=True, slots=True)
class Unreadable:
    """A flag key (`name`, prefixed, as redis-cli names it) holding a `kind` other than the one its name says
    (`expected`), written around Flipper: what `Store.snapshot_keys` reads for it."""

    name: str
    kind: str
    expected: str


def _kind(key: str) -> str:
    """The type a flag key's name says it holds, as TYPE answers it."""
    return "hash" if is_hash_key(key) else "set"


def stamp_key(prefix: str = "") -> str:
    """`[prefix]revision:stamp`: the random token the last write through the write path set, the revision's
    beside its count (lua/evaluate.lua). No entity's key can be it (those end in a polarity or a hash kind)."""
    return f"{revision_key(prefix)}:stamp"


def _glob_escape(text: str) -> str:
    """`text` matched literally in a SCAN pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class Store:
    """Answers flag questions from Redis in one script call each, through the instance's cache when one is
    given (`cache.Cache`; FLIPPER_CACHE_MAX_AGE above 0); with it, concurrent evaluations share calls
    (`batches.Batches`).

    The script is registered once; redis-py calls it by SHA and loads it again transparently when
    Redis answers NOSCRIPT (its cache was emptied by a restart or a failover).

    `clock` is the wall clock (seconds since the epoch) each snapshot is taken at: the time a targeting
    rule's `now` is; tests replace it.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis | RedisCluster,
        key_prefix: str = "",
        idle_reconnect: float | None = None,
        cache: Cache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.key_prefix = key_prefix
        self.cache = cache
        self.clock = clock
        self._evaluate = client.register_script(script_source())
        self._write = client.register_script(script_source("write.lua"))
        self._add_usage = client.register_script(script_source("usage.lua"))
        self._idle_reconnect = idle_reconnect
        self._used_at = time.monotonic()
        self._batches = (
            None if cache is None else Batches(functools.partial(self._validate, cache), contagious=(StoreUnavailable,))
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(
            client_from_settings(settings),
            settings.key_prefix,
            settings.redis_idle_reconnect,
            cache=cache_from_settings(settings),
        )

    async def _replace_if_idle(self) -> None:
        """Close the pooled connections when none was used for `idle_reconnect` seconds; the next command
        opens a fresh one.

        A Lambda frozen for minutes may find its connection dropped by the network without a FIN or a
        RST: a command sent on it waits out the command timeout, a 503. A PING first (redis-py's
        health_check_interval) would wait the same timeout; a new connection costs one connect.
        """
        idle, self._used_at = self._idle(), time.monotonic()  # before awaiting: a concurrent request is not idle
        if idle:
            if isinstance(self.client, RedisCluster):
                for node in self.client.get_nodes():
                    await node.disconnect()
            else:
                # Idle ones only: one in use carries a command already sent (a usage flush the previous
                # invocation began), which a retry on a new connection would run twice.
                await self.client.connection_pool.disconnect(inuse_connections=False)

    def _idle(self) -> bool:
        """Whether no command ran for `idle_reconnect` seconds, so that the next one opens a fresh connection."""
        return self._idle_reconnect is not None and time.monotonic() - self._used_at > self._idle_reconnect

    @contextlib.asynccontextmanager
    async def _command(self) -> AsyncIterator[None]:
        """Around every command: idle connections replaced first, failures mapped by `store_errors`."""
        with store_errors():
            await self._replace_if_idle()
            yield

    async def features(self, context: Context) -> list[str]:
        """The features enabled for `context`, sorted by code point."""
        return enabled_features(await self.snapshot(context))

    async def snapshot(self, context: Context, *, registry: bool = False) -> Snapshot:
        """The members of each of `flag_keys(context)`, the percentages of each of `rollout_keys(context)`, the
        values of each of `value_keys(context)`, the variants, the targeting rules, and with `registry` the
        registry, from one script call, at the time `clock` says. What answers, reasons and explanations are
        computed from (`model`).

        With a cache, the keys it holds at the current revision are not sent again, and the snapshot's
        `stamp` names the cache entries it was built from (for answer reuse).
        """
        prefix = self.key_prefix
        sets = flag_keys(context, prefix)
        keys = [*sets, *rollout_keys(context, prefix), *value_keys(context, prefix), variants_key(prefix)]
        keys.append(rules_key(prefix))
        if registry:
            keys.append(registry_key(prefix))
        if self._batches is None:
            _, *contents = await self._call(keys, "", "0" * len(keys))
            # The sets as read (lists: the rule takes any collection); the rest parsed, as the cache holds them.
            parsed = [
                replies.contents(key, raw) for key, raw in zip(keys[len(sets) :], contents[len(sets) :], strict=True)
            ]
            return _snapshot(context, contents[: len(sets)] + parsed, registry, self.clock())
        read, cached = await self._batches.ask(keys)  # concurrent evaluations share one call (`batches`)
        entries = [read[key] for key in keys]
        stamp = tuple(entries) if cached else ()
        return _snapshot(context, [entry.contents for entry in entries], registry, self.clock(), stamp)

    async def _call(self, keys: list[str], known: str, held: str) -> str | list[Any]:
        """The script's reply: the revision alone, or the revision and the contents of the keys not `held`."""
        declared = [self.revision_key, self.stamp_key, *keys]
        async with self._command():
            try:
                return await self._evaluate(keys=declared, args=[known, held])
            except UnicodeDecodeError:
                # A member that is not UTF-8, written around Flipper (redis-cli SADD of raw bytes), must not
                # take every answer down: read again undecoded and leave that member out (rare: only then).
                # EVAL, not EVALSHA: the new connection this opens may meet a Redis that lost its scripts.
                reply = await self.client.execute_command(
                    "EVAL", self._evaluate.script, len(declared), *declared, known, held, **{NEVER_DECODE: True}
                )
                return replies.decoded(keys, reply)

    async def _validate(self, cache: Cache, keys: list[str]) -> tuple[dict[str, Entry], bool]:
        """One script call for `keys` (one evaluation's, or a batch's union): each key's entry, held or read
        now, and whether they are the cache's (False when the revision is not an integer: nothing is held)."""
        if self._idle():
            # Redis may have restarted unseen meanwhile (a frozen Lambda), and a revision without a stamp (written
            # by hand, or by the previous version) been written back up to the very count known: what a fresh
            # connection reads starts from an empty cache.
            cache.clear()
        now, known = cache.clock(), cache.revision
        held = cache.held(keys, now)
        try:
            reply = await self._call(
                keys,
                replies.known(known, cache.stamp),
                "".join("0" if entry is None else "1" for entry in held),
            )
        # Only when Redis could not answer: an error reply (one caller's flag key holding a string) is that
        # caller's 500, and clearing on it would let such a caller empty every caller's cache.
        except StoreUnavailable:
            cache.clear()  # a restart or a failover may lie behind it: never trust what was held
            raise
        raw_revision, *contents = [reply] if isinstance(reply, str) else reply
        parsed = replies.revision(raw_revision)
        if parsed is None:
            cache.clear()  # a revision that is not an integer validates nothing (and every key was sent)
            return {
                key: Entry(replies.contents(key, raw), 0, now) for key, raw in zip(keys, contents, strict=True)
            }, False
        revision, stamp = parsed
        if known is not None and revision < known:
            # The count went back: Redis restarted, failed over or was flushed. With a stamp, entries of another
            # revision are never held again anyway; without one (a count written by hand or by the previous
            # version), the count could come back up to one an entry is held at, with other contents.
            cache.clear()
        # Calls are one at a time (`batches`): this reply is the newest the instance has seen.
        cache.revision, cache.stamp = revision, stamp
        entries = held  # the revision alone: every key is held
        if contents:  # None: held, and the script saw the revision it is held at; else read, and remembered
            entries = [
                entry if raw is None else cache.store(key, replies.contents(key, raw), revision, now, stamp)
                for key, entry, raw in zip(keys, held, contents, strict=True)
            ]
        return dict(zip(keys, entries, strict=True)), True

    async def all_keys(self) -> list[str]:
        """Every key under the prefix, unprefixed, by SCAN: in a cluster, on the node that holds the flags.

        The caller picks the flag keys out of them: keys of any schema may share the database.
        """
        pattern = _glob_escape(self.key_prefix) + "*"
        keys: list[str] = []
        async with self._command():
            cursor = 0
            while True:
                cursor, batch = await self._on_flags_node(
                    "SCAN", cursor, "MATCH", pattern, "COUNT", 1000, **{NEVER_DECODE: True}
                )
                if isinstance(cursor, dict):  # the cluster client answers a cursor per node: here, one node
                    [cursor] = cursor.values()
                keys.extend(name[len(self.key_prefix) :] for name in replies.utf8_names(batch))
                if int(cursor) == 0:
                    return sorted(set(keys))

    async def snapshot_keys(self, keys: list[str]) -> tuple[int, list[Any]]:
        """The revision and the contents of `keys` (unprefixed), read atomically: the evaluation script, told
        it knows no revision, reads them all (what an operator's list, export and plan are made from).

        A key of another type than its name says (`SET group:bad:positive x`, written around Flipper) fails
        the script for every key: the keys of other types are then found (TYPE, one round trip) and the
        rest read again atomically; such a key's contents are `Unreadable`, for the caller to decide.
        """
        unreadable: dict[str, Unreadable] = {}
        while True:
            readable = [key for key in keys if key not in unreadable]
            try:
                raw, *contents = await self._call(self._prefixed(readable), "", "")
            except StoreUnavailable:
                raise
            except StoreError as exc:
                found = await self._of_other_types(readable) if str(exc).startswith("WRONGTYPE") else {}
                if not found:  # another error, or the key was mended meanwhile: Redis's own words
                    raise
                unreadable |= found
                continue
            read = dict(zip(readable, contents, strict=True))
            return self._checked_revision(raw), [unreadable.get(key) or read[key] for key in keys]

    async def _of_other_types(self, keys: list[str]) -> dict[str, Unreadable]:
        """The keys (unprefixed) that hold neither nothing nor what their names say: a set, or a rollout's hash."""
        async with self._command():
            pipeline = self.client.pipeline(transaction=False)
            for key in keys:
                pipeline.type(self.key_prefix + key)
            types = await pipeline.execute()
        return {
            key: Unreadable(self.key_prefix + key, kind, _kind(key))
            for key, kind in zip(keys, types, strict=True)
            if kind not in ("none", _kind(key))
        }

    async def write(self, keys: list[str], args: list[str | int]) -> list[str]:
        """Run lua/write.lua on `keys` (unprefixed) after the revision, its stamp and the audit keys, with a
        new stamp (see the script); `args` are the expected revision, the audit's length and the rest."""
        # 64 random bits from the kernel (not `random`, whose state a SnapStart snapshot would share): the
        # revision of this write is one no other write, on any Redis, has had.
        stamp = secrets.token_hex(8)
        async with self._command():
            return await self._write(
                keys=[self.revision_key, self.stamp_key, self.audit_key, *self._prefixed(keys)],
                args=[args[0], stamp, args[1], len(self.key_prefix.encode()), *args[2:]],  # Lua counts bytes
            )

    async def audit_range(self, start: str, end: str, count: int | None = None, *, reverse: bool = False) -> list[Any]:
        """Entries of the audit stream, as XRANGE (or XREVRANGE) answers them."""
        async with self._command():
            if reverse:
                return await self.client.xrevrange(self.audit_key, start, end, count=count)
            return await self.client.xrange(self.audit_key, start, end, count=count)

    async def add_usage(self, limit: int, now_ms: int, counted: list[tuple[str, int, int]]) -> int:
        """Add `(feature, evaluations, last seen in ms)` to the usage hashes in one lua/usage.lua call, new
        features only while they hold fewer than `limit` or when registered; how many were left out."""
        args: list[str | int] = [limit, now_ms]
        for triple in counted:
            args.extend(triple)
        async with self._command():
            return await self._add_usage(keys=[*usage_keys(self.key_prefix), registry_key(self.key_prefix)], args=args)

    async def usage(self) -> tuple[dict[str, str], dict[str, str], str | None]:
        """The usage hashes as they are: evaluations and last seen (ms) per feature, and when recording began."""
        counts, seen, since = usage_keys(self.key_prefix)
        async with self._command():
            pipeline = self.client.pipeline(transaction=False)  # one round trip; counts are approximate anyway
            pipeline.hgetall(counts)
            pipeline.hgetall(seen)
            pipeline.get(since)
            return tuple(await pipeline.execute())  # type: ignore[return-value]

    async def forget_usage(self, feature: str) -> None:
        """`feature`'s usage removed (it was deleted)."""
        counts, seen, _ = usage_keys(self.key_prefix)
        async with self._command():
            pipeline = self.client.pipeline(transaction=False)
            pipeline.hdel(counts, feature)
            pipeline.hdel(seen, feature)
            await pipeline.execute()

    async def time_ms(self) -> int:
        """Redis's clock, in Unix milliseconds: what audit entries are stamped with, and staleness measured by."""
        async with self._command():
            seconds, micros = await self._on_flags_node("TIME")
        return int(seconds) * 1000 + int(micros) // 1000

    async def keeps_registry(self) -> bool:
        """Whether the registry exists: a store only ever written around Flipper keeps none."""
        async with self._command():
            return bool(await self.client.exists(self.key_prefix + REGISTRY))

    async def revision(self) -> int:
        """The flags' revision: how many changes Flipper's write path has made (0 before the first)."""
        async with self._command():
            return self._checked_revision(await self.client.get(self.revision_key) or "0")

    def _checked_revision(self, raw: str) -> int:
        """The count of a revision read: what an operator sees and a plan expects."""
        revision = replies.revision(raw)
        if revision is None:
            raise StoreError(f"key {self.revision_key!r} holds {raw[:40]!r}, not a revision (an integer)")
        return revision[0]

    @property
    def revision_key(self) -> str:
        return revision_key(self.key_prefix)

    @property
    def stamp_key(self) -> str:
        return stamp_key(self.key_prefix)

    @property
    def audit_key(self) -> str:
        return f"{self.key_prefix}audit"

    def _prefixed(self, keys: list[str]) -> list[str]:
        return [self.key_prefix + key for key in keys]

    async def _on_flags_node(self, *command: Any, **options: Any) -> Any:
        """`command` on the node that holds the flags' slot in a cluster; on the one Redis otherwise."""
        if isinstance(self.client, RedisCluster):
            await self.client.initialize()  # a no-op once the cluster's layout is known
            # With the hash-tagged prefix cluster mode requires, every flag key is in this key's slot.
            node = self.client.get_node_from_key(self.revision_key)
            return await self.client.execute_command(*command, target_nodes=node, **options)
        return await self.client.execute_command(*command, **options)

    async def ping(self) -> None:
        """Raise StoreUnavailable unless Redis answers a PING: in a cluster, the node that holds the flags."""
        async with self._command():
            await self._on_flags_node("PING")

    async def warm(self, seconds: float) -> bool:
        """Open the connection and load the script now, so that the first request pays for neither (a
        Lambda's init). Within `seconds`; a failure is logged and left to the first request, which retries."""
        try:
            async with asyncio.timeout(seconds):
                with store_errors():
                    await self._on_flags_node("SCRIPT LOAD", self._evaluate.script)
        except (StoreError, TimeoutError) as exc:
            logger.warning("store not warmed, left to the first request: %s", str(exc) or "timed out")
            return False
        return True

    async def aclose(self) -> None:
        await self.client.aclose()
