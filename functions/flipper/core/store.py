"""The Redis side: one client, one Lua script, and the mapping of Redis failures to `StoreUnavailable`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import redis.asyncio
from redis import exceptions
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.client import NEVER_DECODE

from flipper.core.batches import Batches
from flipper.core.cache import Cache, Contents, Entry
from flipper.core.model import (
    Context,
    Snapshot,
    enabled_features,
    flag_keys,
    is_rollout_key,
    parse_percentage,
    revision_key,
    rollout_keys,
)
from flipper.core.settings import Settings, SettingsError

logger = logging.getLogger("flipper")

_INTEGER = re.compile(r"-?[0-9]+")  # what INCR keeps a revision as: ASCII digits, one optional minus
# Rollout hashes hold few distinct values ("5", "25", "100"): each is parsed once, not once per evaluation.
_thousandths = functools.lru_cache(maxsize=1024)(parse_percentage)


class StoreError(Exception):
    """Redis answered with an error: a flag key that holds something other than a set, say."""


class StoreUnavailable(StoreError):
    """Redis could not be reached or did not answer in time; the request may be retried later."""


# Transient: Redis (or a cluster node) is down, unreachable, hung, failing over or resharding.
_UNAVAILABLE = (
    exceptions.ConnectionError,
    exceptions.TimeoutError,
    exceptions.ClusterError,
    exceptions.TryAgainError,
    exceptions.RedisClusterException,  # "cannot be connected", a slot not covered: not RedisErrors
)


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Turn Redis being down, unreachable or hung into StoreUnavailable, and what retrying cannot mend
    (a wrong password, an error reply, a flag name that is not UTF-8) into StoreError."""
    try:
        yield
    except exceptions.AuthenticationError as exc:  # a ConnectionError, but a retry will not help
        raise StoreError(str(exc)) from exc
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(str(exc)) from exc
    except (exceptions.ResponseError, UnicodeDecodeError) as exc:
        raise StoreError(str(exc)) from exc


def _read(context: Context, keys: list[str], split: int, contents: list[list[str]]) -> Snapshot:
    """A snapshot from the contents of every key (`keys[:split]` the sets, the rest rollouts), uncached."""
    rollouts = [percentages(key, flat) for key, flat in zip(keys[split:], contents[split:], strict=True)]
    return Snapshot(context, contents[:split], rollouts)


def _decoded(keys: list[str], reply: bytes | list[Any]) -> str | list[Any]:
    """The script's reply read undecoded, decoded member by member: a member (or a rollout's field or value)
    that is not UTF-8 is left out, with a warning naming its key and its bytes."""
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")  # the revision alone; not an integer, it validates nothing
    revision, *contents = reply
    decoded: list[Any] = [revision.decode("utf-8", "replace")]
    for key, members in zip(keys, contents, strict=True):
        if members is None:
            decoded.append(None)
        elif is_rollout_key(key):
            pairs = [_utf8(key, (field, value)) for field, value in zip(members[::2], members[1::2], strict=True)]
            decoded.append([text for pair in pairs if pair is not None for text in pair])
        else:
            decoded.append([member for member in (_utf8(key, (raw,)) for raw in members) if member is not None])
    return decoded


def _utf8(key: str, raw: tuple[bytes, ...]) -> Any:
    """`raw` decoded (one member, or a field and its value), or None with a warning unless all is UTF-8."""
    try:
        decoded = tuple(part.decode("utf-8") for part in raw)
    except UnicodeDecodeError:
        what = repr(raw[0]) if len(raw) == 1 else f"field {raw[0]!r} = {raw[1]!r}"
        logger.warning("key %s holds %s, which is not UTF-8: left out (remove it with redis-cli)", key, what)
        return None
    return decoded if len(decoded) > 1 else decoded[0]


def _utf8_names(raw: list[bytes]) -> Iterator[str]:
    """The key names that are UTF-8: one that is not (written around Flipper) names no entity a caller can be."""
    for name in raw:
        with contextlib.suppress(UnicodeDecodeError):
            yield name.decode("utf-8")


def _contents(key: str, raw: list[str]) -> Contents:
    """A key's contents as the cache holds them: a set's members, or a rollout's thousandths per feature."""
    return percentages(key, raw) if is_rollout_key(key) else frozenset(raw)


def _revision(raw: str) -> int | None:
    """The store's revision as an integer; None when someone wrote something else there by hand."""
    return int(raw) if _INTEGER.fullmatch(raw) else None


def percentages(key: str, flat: list[str]) -> dict[str, int]:
    """A rollout hash, as HGETALL's flat list of fields and values, in thousandths per feature.

    A value that is not a percentage (written by hand around Flipper) must not take answers down: it counts
    as 0, and a warning names the key and the field.
    """
    features, values = flat[::2], list(map(_thousandths, flat[1::2]))  # loops in C: the common case
    if None in values:
        for index, (feature, raw) in enumerate(zip(features, flat[1::2], strict=True)):
            if values[index] is None:
                logger.warning(
                    "rollout %s, field %r: %r is not a percentage from 0 to 100 with at most three decimals;"
                    " counted as 0",
                    key,
                    feature,
                    raw,
                )
                values[index] = 0
    return dict(zip(features, values, strict=True))


class _RedisCluster(RedisCluster):
    """redis-py's cluster client, without its retry of a timeout: a hung node costs one command timeout,
    as on a single Redis. A broken connection, a failover or a moved slot are still retried once."""

    ERRORS_ALLOW_RETRY = tuple(
        error for error in RedisCluster.ERRORS_ALLOW_RETRY if error is not exceptions.TimeoutError
    )


def script_source(name: str = "evaluate.lua") -> str:
    """A Lua script: packaged in the `flipper` package in a build (`flipper/lua/`), else the repository's `lua/`."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "lua" / name
    path = packaged if packaged.exists() else package.parents[1] / "lua" / name
    return path.read_text(encoding="utf-8")


def client_from_settings(settings: Settings) -> redis.asyncio.Redis | RedisCluster:
    """A client that fails fast: short timeouts, and one immediate retry on a broken connection.

    The retry covers a pooled connection that died with a Redis restart: the second attempt opens a
    fresh one. Timeouts are not retried, so a hung Redis costs one command timeout, not several.
    With FLIPPER_REDIS_CLUSTER the client is redis-py's cluster client (ElastiCache Serverless is
    always a cluster); with REDIS_PASSWORD_SECRET_ARN the password comes from Secrets Manager.
    """
    if settings.redis_url is None:
        raise SettingsError("REDIS_URL is not set")
    options: dict[str, Any] = {}
    if settings.redis_password_secret_arn is not None:
        from flipper.core.secretsmanager import (
            fetch_secret,  # boto3 is heavy: imported only when a secret is configured
        )

        options["password"] = fetch_secret(settings.redis_password_secret_arn)
    client_class = _RedisCluster if settings.redis_cluster else redis.asyncio.Redis
    return client_class.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.connect_timeout,
        socket_timeout=settings.command_timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(exceptions.ConnectionError,)),
        decode_responses=True,
        **options,
    )


def cache_from_settings(settings: Settings) -> Cache | None:
    """The instance's cache, or None when FLIPPER_CACHE_MAX_AGE is 0."""
    return Cache(settings.cache_max_age, settings.cache_max_bytes) if settings.cache_max_age > 0 else None


def _glob_escape(text: str) -> str:
    """`text` matched literally in a SCAN pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class Store:
    """Answers flag questions from Redis in one script call each, through the instance's cache when one is
    given (`cache.Cache`; FLIPPER_CACHE_MAX_AGE above 0); with it, concurrent evaluations share calls
    (`batches.Batches`).

    The script is registered once; redis-py calls it by SHA and loads it again transparently when
    Redis answers NOSCRIPT (its cache was emptied by a restart or a failover).
    """

    def __init__(
        self,
        client: redis.asyncio.Redis | RedisCluster,
        key_prefix: str = "",
        idle_reconnect: float | None = None,
        cache: Cache | None = None,
    ) -> None:
        self.client = client
        self.key_prefix = key_prefix
        self.cache = cache
        self._evaluate = client.register_script(script_source())
        self._write = client.register_script(script_source("write.lua"))
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
                await self.client.connection_pool.disconnect()

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

    async def snapshot(self, context: Context) -> Snapshot:
        """The members of each of `flag_keys(context)` and the percentages of each of `rollout_keys(context)`,
        from one script call. What answers, reasons and explanations are computed from (`model`).

        With a cache, the keys it holds at the current revision are not sent again, and the snapshot's
        `stamp` names the cache entries it was built from (for answer reuse).
        """
        sets = flag_keys(context, self.key_prefix)
        keys = sets + rollout_keys(context, self.key_prefix)
        if self._batches is None:
            _, *contents = await self._call(keys, "", "0" * len(keys))
            return _read(context, keys, len(sets), contents)
        read, cached = await self._batches.ask(keys)  # concurrent evaluations share one call (`batches`)
        entries = [read[key] for key in keys]
        return Snapshot(
            context,
            [entry.contents for entry in entries[: len(sets)]],
            [entry.contents for entry in entries[len(sets) :]],
            stamp=tuple(entries) if cached else (),
        )

    async def _call(self, keys: list[str], known: str, held: str) -> str | list[Any]:
        """The script's reply: the revision alone, or the revision and the contents of the keys not `held`."""
        declared = [self.revision_key, *keys]
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
                return _decoded(keys, reply)

    async def _validate(self, cache: Cache, keys: list[str]) -> tuple[dict[str, Entry], bool]:
        """One script call for `keys` (one evaluation's, or a batch's union): each key's entry, held or read
        now, and whether they are the cache's (False when the revision is not an integer: nothing is held)."""
        if self._idle():
            # Redis may have restarted unseen meanwhile (a frozen Lambda), and its revision been written back
            # up to the very value known: what a fresh connection reads starts from an empty cache.
            cache.clear()
        now, known = cache.clock(), cache.revision
        held = cache.held(keys, now)
        try:
            reply = await self._call(
                keys, "" if known is None else str(known), "".join("0" if entry is None else "1" for entry in held)
            )
        # Only when Redis could not answer: an error reply (one caller's flag key holding a string) is that
        # caller's 500, and clearing on it would let such a caller empty every caller's cache.
        except StoreUnavailable:
            cache.clear()  # a restart or a failover may lie behind it: never trust what was held
            raise
        raw_revision, *contents = [reply] if isinstance(reply, str) else reply
        revision = _revision(raw_revision)
        if revision is None:
            cache.clear()  # a revision that is not an integer validates nothing (and every key was sent)
            return {key: Entry(_contents(key, raw), 0, now) for key, raw in zip(keys, contents, strict=True)}, False
        if known is not None and revision < known:
            cache.clear()  # the revision went back: Redis restarted, failed over or was flushed
        if cache.revision is None or revision > cache.revision:
            cache.revision = revision
        entries = held  # the revision alone: every key is held
        if contents:  # None: held, and the script saw the revision it is held at; else read, and remembered
            entries = [
                entry if raw is None else cache.store(key, _contents(key, raw), revision, now)
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
                keys.extend(name[len(self.key_prefix) :] for name in _utf8_names(batch))
                if int(cursor) == 0:
                    return sorted(set(keys))

    async def snapshot_keys(self, keys: list[str]) -> tuple[int, list[Any]]:
        """The revision and the contents of `keys` (unprefixed), read atomically: the evaluation script, told
        it knows no revision, reads them all (what an operator's list, export and plan are made from)."""
        raw, *contents = await self._call(self._prefixed(keys), "", "")
        return self._checked_revision(raw), contents

    async def write(self, keys: list[str], args: list[str | int]) -> list[str]:
        """Run lua/write.lua on `keys` (unprefixed) after the revision and audit keys; see the script."""
        async with self._command():
            return await self._write(
                keys=[self.revision_key, self.audit_key, *self._prefixed(keys)],
                args=[args[0], args[1], len(self.key_prefix.encode()), *args[2:]],  # Lua counts bytes
            )

    async def audit_range(self, start: str, end: str, count: int | None = None, *, reverse: bool = False) -> list[Any]:
        """Entries of the audit stream, as XRANGE (or XREVRANGE) answers them."""
        async with self._command():
            if reverse:
                return await self.client.xrevrange(self.audit_key, start, end, count=count)
            return await self.client.xrange(self.audit_key, start, end, count=count)

    async def revision(self) -> int:
        """The flags' revision: how many changes Flipper's write path has made (0 before the first)."""
        async with self._command():
            return self._checked_revision(await self.client.get(self.revision_key) or "0")

    def _checked_revision(self, raw: str) -> int:
        revision = _revision(raw)
        if revision is None:
            raise StoreError(f"key {self.revision_key!r} holds {raw[:40]!r}, not a revision (an integer)")
        return revision

    @property
    def revision_key(self) -> str:
        return revision_key(self.key_prefix)

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
