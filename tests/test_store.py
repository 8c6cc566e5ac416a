"""The model evaluated by the Lua script, on a real redis-server and on fakeredis alike."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.client import NEVER_DECODE

from flipper.core.model import Context
from flipper.core.settings import Settings
from flipper.core.store import Store

Flags = dict[str, set[str]]
# Rollout hashes: key -> feature -> (the value written, the thousandths it must count as).
Rollouts = dict[str, dict[str, tuple[str, int]]]


async def write(store: Store, flags: Flags, prefix: str = "", rollouts: Rollouts | None = None) -> None:
    for key, members in flags.items():
        if members:
            await store.client.sadd(prefix + key, *members)
    for key, fields in (rollouts or {}).items():
        if fields:
            await store.client.hset(prefix + key, mapping={feature: raw for feature, (raw, _) in fields.items()})


def reference_crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, reflected, as zlib's), bit by bit: independent of the code under test."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def reference_bucket(feature: str, user: str) -> int:
    return reference_crc32((feature + user).encode("utf-8")) % 100_000


CASES: list[tuple[str, Flags, Context, list[str]]] = [
    ("empty store", {}, Context(version="v1", groups=("g1",), user="u"), []),
    ("global enable", {"global:positive": {"a"}}, Context(), ["a"]),
    ("global disable beats global enable", {"global:positive": {"a", "b"}, "global:negative": {"a"}}, Context(), ["b"]),
    ("version enable", {"version:v1:positive": {"a"}}, Context(version="v1"), ["a"]),
    ("other version is not read", {"version:v2:positive": {"a"}}, Context(version="v1"), []),
    ("group enable", {"group:g1:positive": {"a"}}, Context(groups=("g1",)), ["a"]),
    ("user enable", {"user:u:positive": {"a"}}, Context(user="u"), ["a"]),
    ("anonymous caller reads no user keys", {"user:u:positive": {"a"}}, Context(), []),
    ("user disable beats global enable", {"global:positive": {"a"}, "user:u:negative": {"a"}}, Context(user="u"), []),
    ("global disable beats user enable", {"user:u:positive": {"a"}, "global:negative": {"a"}}, Context(user="u"), []),
    (
        "version disable beats user enable",
        {"user:u:positive": {"a"}, "version:v1:negative": {"a"}},
        Context(version="v1", user="u"),
        [],
    ),
    (
        "group disable beats version enable",
        {"version:v1:positive": {"a", "b"}, "group:g1:negative": {"b"}},
        Context(version="v1", groups=("g1",)),
        ["a"],
    ),
    (
        "version disable beats group enable",
        {"group:g1:positive": {"a"}, "version:v1:negative": {"a"}},
        Context(version="v1", groups=("g1",)),
        [],
    ),
    (
        "several groups: enables add up",
        {"group:g1:positive": {"a"}, "group:g2:positive": {"b"}},
        Context(groups=("g1", "g2")),
        ["a", "b"],
    ),
    (
        "several groups: one group's disable beats another's enable",
        {"group:g1:positive": {"a", "b"}, "group:g2:negative": {"a"}},
        Context(groups=("g1", "g2")),
        ["b"],
    ),
    (
        "a disable of a feature nobody enabled changes nothing",
        {"global:positive": {"a"}, "user:u:negative": {"z"}},
        Context(user="u"),
        ["a"],
    ),
    (
        "identifiers with colons are opaque",
        {"group:a:b:positive": {"x"}, "group:a:positive": {"y"}, "group:b:negative": {"x"}},
        Context(groups=("a:b",)),
        ["x"],
    ),
    (
        "identifiers with spaces and Unicode",
        {"user:Zoë Ünïcode 🚀:positive": {"rocket"}, "group:équipe:positive": {"é"}},
        Context(groups=("équipe",), user="Zoë Ünïcode 🚀"),
        ["rocket", "é"],
    ),
    (
        "features sorted by code point",
        {"global:positive": {"b", "B", "a", "é", "Z", "_"}},
        Context(),
        ["B", "Z", "_", "a", "b", "é"],
    ),
]


@pytest.mark.parametrize(("flags", "context", "expected"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
async def test_model(store: Store, flags: Flags, context: Context, expected: list[str]) -> None:
    await write(store, flags)
    assert await store.features(context) == expected


async def test_seed_walkthrough(store: Store) -> None:
    await write(store, {"version:v1:positive": {"feature_A", "feature_B"}, "group:g1:negative": {"feature_B"}})
    assert await store.features(Context(version="v1")) == ["feature_A", "feature_B"]
    assert await store.features(Context(version="v1", groups=("g1",), user="some_user")) == ["feature_A"]
    await write(store, {"group:g1:positive": {"special_g1_feature"}})
    assert await store.features(Context(version="v1", groups=("g1",), user="some_user")) == [
        "feature_A",
        "special_g1_feature",
    ]


@pytest.mark.parametrize("settings", [Settings(key_prefix="{flipper}:")])
async def test_prefix_reads_only_prefixed_keys(store: Store) -> None:
    await write(store, {"global:positive": {"unprefixed"}})
    await write(store, {"global:positive": {"prefixed"}}, prefix="{flipper}:")
    assert await store.features(Context()) == ["prefixed"]


async def test_script_leaves_no_keys_behind(store: Store) -> None:
    await write(store, {"global:positive": {"a"}, "user:u:negative": {"b"}})
    await store.features(Context(version="v", groups=("g",), user="u"))
    assert sorted(await store.client.keys("*")) == ["global:positive", "user:u:negative"]


async def test_warm_loads_the_script(store: Store) -> None:
    await store.client.script_flush()
    assert await store.warm(seconds=1.0) is True
    assert await store.client.script_exists(store._evaluate.sha) == [True]


async def test_a_member_that_is_not_utf8_is_left_out_with_a_warning(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Written around Flipper (redis-cli SADD of raw bytes), it must not take every caller's answer down."""
    await store.client.sadd("global:positive", "a", b"\xff\xfe")
    await store.client.hset("group:g1:rollout", mapping={b"\xfe": "100", "b": "100", "c": b"\xff"})
    caller = Context(groups=("g1",), user="u")
    with caplog.at_level(logging.WARNING, logger="flipper"):
        assert await store.features(caller) == ["a", "b"]
    assert sorted(record.getMessage() for record in caplog.records if "UTF-8" in record.getMessage()) == [
        "key global:positive holds b'\\xff\\xfe', which is not UTF-8: left out (remove it with redis-cli)",
        "key group:g1:rollout holds field b'\\xfe' = b'100', which is not UTF-8: left out (remove it with redis-cli)",
        "key group:g1:rollout holds field b'c' = b'\\xff', which is not UTF-8: left out (remove it with redis-cli)",
    ]
    await store.client.srem("global:positive", b"\xff\xfe")
    await store.client.sadd("global:positive", "d")
    assert await store.features(caller) == ["a", "b", "d"]  # the connection still answers, decoded


async def test_the_undecoded_read_works_on_a_redis_that_lost_its_scripts_meanwhile(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read again opens a new connection (the decoding error closed the old one): a Redis restarted or
    failed over in between has no scripts, which must not make it a 500."""
    await store.client.sadd("global:positive", "a", b"\xff")
    execute = store.client.execute_command

    async def scripts_lost_first(*command: Any, **options: Any) -> Any:
        if NEVER_DECODE in options:
            await execute("SCRIPT", "FLUSH")
        return await execute(*command, **options)

    monkeypatch.setattr(store.client, "execute_command", scripts_lost_first)
    assert await store.features(Context()) == ["a"]


async def test_a_key_name_that_is_not_utf8_is_no_flag_key(store: Store) -> None:
    await store.client.sadd(b"user:\xff:positive", "a")
    await store.client.sadd("user:u:positive", "b")
    assert await store.all_keys() == ["user:u:positive"]


# The property test: random flag data, random callers, and the rule stated plainly in Python.
NAMES = st.sampled_from(["a", "b", "c", "d", "e", "ü", "x:y", "a b"])
ENTITIES = ["global", "version:v1", "version:v2", "group:g1", "group:g2", "group:g:3", "user:u1", "user:ü"]
FLAG_DATA = st.dictionaries(
    st.sampled_from([f"{entity}:{polarity}" for entity in ENTITIES for polarity in ("positive", "negative")]),
    st.sets(NAMES, max_size=5),
)


def _written(thousandths: int, padded: bool) -> str:
    """A percentage as an operator writes it: `25`, `97.601`, `12.5`; padded, `25.000` or `12.500`."""
    whole, decimals = divmod(thousandths, 1000)
    text = f"{whole}.{decimals:03d}"
    return text if padded else text.rstrip("0").removesuffix(".")


# A percentage written to a rollout hash, with what it must count as: a value that is no percentage counts as 0.
PERCENTAGES = st.one_of(
    st.builds(
        lambda thousandths, padded: (_written(thousandths, padded), thousandths),
        st.one_of(st.integers(0, 100_000), st.sampled_from([0, 100_000])),
        st.booleans(),
    ),
    st.sampled_from(["abc", "101", "-1", "1e2", " 5", "50.0001", "nan", "", "٣"]).map(lambda raw: (raw, 0)),
)
# user:u1:rollout is no rollout key (a user is in or out already): the script must not read it.
ROLLOUT_DATA = st.dictionaries(
    st.sampled_from([f"{entity}:rollout" for entity in ENTITIES]), st.dictionaries(NAMES, PERCENTAGES, max_size=4)
)
CONTEXTS = st.builds(
    Context,
    version=st.sampled_from([None, "v1", "v2"]),
    groups=st.lists(st.sampled_from(["g1", "g2", "g:3"]), unique=True).map(tuple),
    user=st.sampled_from([None, "u1", "ü"]),
)


def expected_by_rule(flags: Flags, context: Context, rollouts: Rollouts | None = None) -> list[str]:
    """Enabled = every positive set of the caller's entities and every feature a rollout of theirs (not the
    user's own) takes the user into, minus every negative set of them."""
    entities = ["global"]
    entities += [f"version:{context.version}"] if context.version else []
    entities += [f"group:{group}" for group in context.groups]
    enabled: set[str] = set()
    disabled: set[str] = set()
    for entity in entities:
        for feature, (_, thousandths) in (rollouts or {}).get(f"{entity}:rollout", {}).items():
            if context.user is not None and reference_bucket(feature, context.user) < thousandths:
                enabled.add(feature)
    entities += [f"user:{context.user}"] if context.user else []
    for entity in entities:
        enabled |= flags.get(f"{entity}:positive", set())
        disabled |= flags.get(f"{entity}:negative", set())
    return sorted(enabled - disabled)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flags=FLAG_DATA, rollouts=ROLLOUT_DATA, context=CONTEXTS)
async def test_script_agrees_with_the_rule(store: Store, flags: Flags, rollouts: Rollouts, context: Context) -> None:
    await store.client.flushall()
    await write(store, flags, rollouts=rollouts)
    assert await store.features(context) == expected_by_rule(flags, context, rollouts)
