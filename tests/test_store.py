"""The model evaluated by the Lua script, on a real redis-server and on fakeredis alike."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flipper.model import Context
from flipper.settings import Settings
from flipper.store import Store

Flags = dict[str, set[str]]


async def write(store: Store, flags: Flags, prefix: str = "") -> None:
    for key, members in flags.items():
        if members:
            await store.client.sadd(prefix + key, *members)


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


# The property test: random flag data, random callers, and the rule stated plainly in Python.
NAMES = st.sampled_from(["a", "b", "c", "d", "e", "ü", "x:y", "a b"])
ENTITIES = ["global", "version:v1", "version:v2", "group:g1", "group:g2", "group:g:3", "user:u1", "user:ü"]
FLAG_DATA = st.dictionaries(
    st.sampled_from([f"{entity}:{polarity}" for entity in ENTITIES for polarity in ("positive", "negative")]),
    st.sets(NAMES, max_size=5),
)
CONTEXTS = st.builds(
    Context,
    version=st.sampled_from([None, "v1", "v2"]),
    groups=st.lists(st.sampled_from(["g1", "g2", "g:3"]), unique=True).map(tuple),
    user=st.sampled_from([None, "u1", "ü"]),
)


def expected_by_rule(flags: Flags, context: Context) -> list[str]:
    """Enabled = every positive set of the caller's entities, minus every negative set of them."""
    entities = ["global"]
    entities += [f"version:{context.version}"] if context.version else []
    entities += [f"group:{group}" for group in context.groups]
    entities += [f"user:{context.user}"] if context.user else []
    enabled: set[str] = set()
    disabled: set[str] = set()
    for entity in entities:
        enabled |= flags.get(f"{entity}:positive", set())
        disabled |= flags.get(f"{entity}:negative", set())
    return sorted(enabled - disabled)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flags=FLAG_DATA, context=CONTEXTS)
async def test_script_agrees_with_the_rule(store: Store, flags: Flags, context: Context) -> None:
    await store.client.flushall()
    await write(store, flags)
    assert await store.features(context) == expected_by_rule(flags, context)
