"""Sticky percentage rollouts: the percentage format, Flipper for Ruby's buckets, their statistics, and the
rule through Redis, the HTTP API and OFREP."""

from __future__ import annotations

import logging

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flipper.core.model import Context, Snapshot, bucket, enabled_features, parse_percentage
from flipper.core.store import Store
from tests.test_store import reference_bucket, reference_crc32, write


@pytest.mark.parametrize(
    ("raw", "thousandths"),
    [
        ("0", 0),
        ("100", 100_000),
        ("100.0", 100_000),
        ("100.000", 100_000),
        ("97.601", 97_601),
        ("97.6", 97_600),
        ("12.50", 12_500),
        ("0.001", 1),
        ("5", 5_000),
        ("007", 7_000),
    ],
)
def test_percentages_are_read_in_thousandths(raw: str, thousandths: int) -> None:
    assert parse_percentage(raw) == thousandths


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "100.001",
        "101",
        "-1",
        "+5",
        "-0",
        "1e2",
        "5e0",
        "0x10",
        "nan",
        "inf",
        "Infinity",
        " 5",
        "5 ",
        "5\n",
        "\t5",
        "5.",
        ".5",
        "5.0001",
        "5,5",
        "1_0",
        "٣",  # an Arabic-Indic digit: Python's int() reads it, a percentage must not
        "\uff15",  # a fullwidth digit five
        "5%",
    ],
)
def test_anything_else_is_no_percentage(raw: str) -> None:
    assert parse_percentage(raw) is None


# Buckets computed bit by bit (tests/test_store.py's reference CRC-32), not by zlib: the issue's vector first.
VECTORS = [
    ("search", "User;1", 97_600),
    ("checkout", "User;1", 53_999),
    ("search", "User;2", 72_922),
    ("new_checkout", "42", 47_362),
    ("dark_mode", "Zoë", 70_814),
    ("🚀", "user-🚀", 34_083),
]


@pytest.mark.parametrize(("feature", "user", "expected"), VECTORS)
def test_buckets_match_independently_computed_vectors(feature: str, user: str, expected: int) -> None:
    assert bucket(feature, user) == expected == reference_bucket(feature, user)


def test_reference_crc32_is_the_standard_one() -> None:
    """The check value of CRC-32/ISO-HDLC, the CRC zlib and Flipper for Ruby use."""
    assert reference_crc32(b"123456789") == 0xCBF43926


@given(feature=st.text(min_size=1), user=st.text(min_size=1))
def test_buckets_agree_with_the_reference_crc(feature: str, user: str) -> None:
    try:
        (feature + user).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the app refuses such identifiers before any bucket
        return
    assert bucket(feature, user) == reference_bucket(feature, user)


def _takes(feature: str, percentage: str, user: str) -> bool:
    thousandths = parse_percentage(percentage)
    assert thousandths is not None
    snapshot = Snapshot(Context(user=user), [(), ()], [{feature: thousandths}])
    return enabled_features(snapshot) == [feature]


def test_the_issue_vector_is_on_just_above_its_bucket_and_off_at_it() -> None:
    assert _takes("search", "97.601", "User;1")
    assert not _takes("search", "97.6", "User;1")
    assert not _takes("search", "0", "User;1")
    assert _takes("search", "100", "User;1")


USERS = [f"User;{number}" for number in range(100_000)]


def test_a_quarter_takes_a_quarter_of_100000_users() -> None:
    taken = sum(bucket("search", user) < 25_000 for user in USERS)
    assert 24_500 <= taken <= 25_500


def test_two_features_at_half_overlap_on_a_quarter() -> None:
    both = sum(bucket("search", user) < 50_000 and bucket("checkout", user) < 50_000 for user in USERS)
    assert 24_000 <= both <= 26_000


@given(
    feature=st.sampled_from(["search", "checkout", "é", "a b"]),
    percentages=st.lists(st.integers(0, 100_000), min_size=2, max_size=2).map(sorted),
    users=st.lists(st.text(st.characters(codec="utf-8"), min_size=1, max_size=8), min_size=1, max_size=50),
)
def test_raising_never_removes_a_user_and_lowering_never_adds_one(
    feature: str, percentages: list[int], users: list[str]
) -> None:
    lower, higher = percentages

    def taken(thousandths: int) -> set[str]:
        return {
            user for user in users if enabled_features(Snapshot(Context(user=user), [(), ()], [{feature: thousandths}]))
        }

    assert taken(lower) <= taken(higher)


# Through Redis: the script reads the caller's rollout hashes beside its sets (real redis-server and fakeredis).


async def test_the_issue_vector_through_redis(store: Store) -> None:
    caller = Context(version="v1", user="User;1")
    await store.client.hset("version:v1:rollout", "search", "97.601")
    assert await store.features(caller) == ["search"]
    await store.client.hset("version:v1:rollout", "search", "97.6")
    assert await store.features(caller) == []


async def test_a_deny_beats_a_rollout_and_a_caller_without_user_is_in_no_rollout(store: Store) -> None:
    await store.client.hset("global:rollout", mapping={"search": "100", "checkout": "100"})
    await write(store, {"group:g1:negative": {"checkout"}})
    assert await store.features(Context(groups=("g1",), user="u")) == ["search"]
    assert await store.features(Context(groups=("g1",))) == []


async def test_the_largest_percentage_of_the_callers_entities_decides(store: Store) -> None:
    """User;1's bucket for search is 97,600: one entity's 97.601 % takes them, whatever the others say."""
    await store.client.hset("global:rollout", "search", "10")
    await store.client.hset("group:g2:rollout", "search", "97.601")
    await store.client.hset("group:other:rollout", "search", "100")  # not the caller's group
    assert await store.features(Context(groups=("g1",), user="User;1")) == []
    assert await store.features(Context(groups=("g1", "g2"), user="User;1")) == ["search"]


async def test_a_user_level_hash_is_no_rollout(store: Store) -> None:
    await store.client.hset("user:u:rollout", "search", "100")
    assert await store.features(Context(user="u")) == []


async def test_a_hand_written_value_that_is_no_percentage_counts_as_zero_with_a_warning(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await store.client.hset("global:rollout", mapping={"broken": "lots", "fine": "100"})
    with caplog.at_level(logging.WARNING, logger="flipper"):
        assert await store.features(Context(user="u")) == ["fine"]
    [record] = [record for record in caplog.records if "broken" in record.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "rollout global:rollout, field 'broken': 'lots' is not a percentage from 0 to 100 with at most three"
        " decimals; counted as 0"
    )


# Through HTTP: the reason SPLIT, and what explain=true says.


async def test_explain_names_the_rollouts_their_percentages_and_the_bucket(
    client: httpx.AsyncClient, store: Store
) -> None:
    await store.client.hset("version:v1:rollout", "search", "97.601")
    await store.client.hset("group:g1:rollout", "search", "50")
    response = await client.get("/features/search", params={"version": "v1", "group": "g1", "user": "User;1"})
    assert response.json() == {"feature": "search", "enabled": True, "reason": "SPLIT"}
    response = await client.get(
        "/features/search", params={"version": "v1", "group": "g1", "user": "User;1", "explain": "true"}
    )
    assert response.json() == {
        "feature": "search",
        "enabled": True,
        "reason": "SPLIT",
        "enabled_by": ["version:v1:rollout"],
        "disabled_by": [],
        "rollouts": [
            {"key": "version:v1:rollout", "percentage": 97.601},
            {"key": "group:g1:rollout", "percentage": 50},
        ],
        "bucket": 97_600,
    }
    response = await client.get("/features/search", params={"group": "g1", "user": "User;1", "explain": "true"})
    assert response.json() == {
        "feature": "search",
        "enabled": False,
        "reason": "SPLIT",
        "enabled_by": [],
        "disabled_by": [],
        "rollouts": [{"key": "group:g1:rollout", "percentage": 50}],
        "bucket": 97_600,
    }


async def test_a_set_that_names_the_flag_keeps_its_reason(client: httpx.AsyncClient, store: Store) -> None:
    await store.client.hset("global:rollout", "search", "100")
    await write(store, {"global:positive": {"search"}, "group:g1:negative": {"search"}})
    body = (await client.get("/features/search?user=u&explain=true")).json()
    assert (body["enabled"], body["reason"], body["enabled_by"]) == (
        True,
        "STATIC",
        ["global:positive", "global:rollout"],
    )
    body = (await client.get("/features/search?user=u&group=g1&explain=true")).json()
    assert (body["enabled"], body["reason"], body["disabled_by"]) == (False, "TARGETING_MATCH", ["group:g1:negative"])
    body = (await client.get("/features/search?explain=true")).json()
    assert (body["reason"], body["rollouts"], body["bucket"]) == ("STATIC", [], None)


async def test_ofrep_says_split_and_lists_features_in_rollout(client: httpx.AsyncClient, store: Store) -> None:
    # User;1's buckets: search 97,600, checkout 53,999 (tests/test_store.py's reference CRC).
    await store.client.hset("global:rollout", mapping={"search": "97.601", "checkout": "53.999"})
    context = {"context": {"targetingKey": "User;1"}}
    response = await client.post("/ofrep/v1/evaluate/flags/search", json=context)
    assert response.json() == {"key": "search", "value": True, "reason": "SPLIT", "variant": "on"}
    response = await client.post("/ofrep/v1/evaluate/flags", json=context)
    assert response.json()["flags"] == [
        {"key": "checkout", "value": False, "reason": "SPLIT", "variant": "off"},
        {"key": "search", "value": True, "reason": "SPLIT", "variant": "on"},
    ]
    response = await client.post("/ofrep/v1/evaluate/flags", json={"context": {}})
    assert response.json() == {"flags": []}
