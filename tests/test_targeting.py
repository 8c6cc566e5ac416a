"""Targeting rules served (issue 17): attributes in, rules read in the one script call, a deny still winning,
a rule's value first, and time boundaries exact through the cache, with no write."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from packaging.version import Version
from redis.cluster import RedisCluster

from bench.servers import RedisServer
from flipper.core import names, rules
from flipper.core.model import Context, canonical_json, evaluate_all
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.serve import ofrep
from tests.test_cluster import PREFIX, cluster, cluster_store, writer  # noqa: F401 (fixtures)
from tests.test_devserver import DevServer, clean_env  # noqa: F401 (fixture)
from tests.test_store import CONTEXTS, FLAG_DATA, NAMES, Flags
from tests.test_values import CACHE_ON_AND_OFF, replace_sets
from tests.timeouts import patient

T0 = 1_900_000_000.0  # an injected "now": 2030-03-17T17:46:40Z


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(attribute: str, operator: str, *values: Any) -> dict[str, Any]:
    return {"attribute": attribute, "operator": operator, "values": list(values)}


def stored(*rule_list: dict[str, Any]) -> str:
    """Rules as the operating side writes them to global:rules."""
    return canonical_json(rules.as_data(rules.parse_rules(list(rule_list))))


# The reference: each operator written again from docs/how-it-works.md's table, versions by `packaging`.
def _version(text: object) -> Version | None:
    if not isinstance(text, str) or not re.fullmatch(r"\d+\.\d+\.\d+", text):
        return None
    return Version(text)


def _num(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except ValueError:
        return None


REFERENCE = {
    "in": lambda a, vs: isinstance(a, str) and a in vs,
    "not_in": lambda a, vs: isinstance(a, str) and a not in vs,
    "starts_with": lambda a, vs: isinstance(a, str) and any(a.startswith(v) for v in vs),
    "ends_with": lambda a, vs: isinstance(a, str) and any(a.endswith(v) for v in vs),
    "contains": lambda a, vs: isinstance(a, str) and any(v in a for v in vs),
    "eq": lambda a, vs: _num(a) is not None and _num(a) in vs,
    "gt": lambda a, vs: _num(a) is not None and _num(a) > vs[0],
    "gte": lambda a, vs: _num(a) is not None and _num(a) >= vs[0],
    "lt": lambda a, vs: _num(a) is not None and _num(a) < vs[0],
    "lte": lambda a, vs: _num(a) is not None and _num(a) <= vs[0],
    "semver_eq": lambda a, vs: _version(a) is not None and _version(a) in [Version(v) for v in vs],
    "semver_gt": lambda a, vs: _version(a) is not None and _version(a) > Version(vs[0]),
    "semver_gte": lambda a, vs: _version(a) is not None and _version(a) >= Version(vs[0]),
    "semver_lt": lambda a, vs: _version(a) is not None and _version(a) < Version(vs[0]),
    "semver_lte": lambda a, vs: _version(a) is not None and _version(a) <= Version(vs[0]),
}


def reference_holds(cond: dict[str, Any], attributes: dict[str, Any], now: float) -> bool:
    if cond["attribute"] == "now":
        moment = datetime.fromisoformat(cond["values"][0]).timestamp()
        return now >= moment if cond["operator"] == "after" else now < moment
    if cond["attribute"] not in attributes:
        return False
    return bool(REFERENCE[cond["operator"]](attributes[cond["attribute"]], cond["values"]))


# Generated rules: attributes plan (text), age (numbers, sent as numbers or numeric text), app (versions), and
# `now` around T0.
CONDITIONS = st.one_of(
    st.builds(
        condition,
        st.just("plan"),
        st.sampled_from(["in", "not_in", "starts_with", "ends_with", "contains"]),
        st.sampled_from(["pro", "free", "p", "o"]),
    ),
    st.builds(
        condition, st.just("age"), st.sampled_from(["eq", "gt", "gte", "lt", "lte"]), st.sampled_from([18, 21.5, -1])
    ),
    st.builds(
        condition,
        st.just("app"),
        st.sampled_from(["semver_eq", "semver_gt", "semver_gte", "semver_lt", "semver_lte"]),
        st.sampled_from(["2.9.1", "2.10.0", "10.0.0"]),
    ),
    st.builds(
        condition,
        st.just("now"),
        st.sampled_from(["before", "after"]),
        st.sampled_from([-5, 0, 5]).map(lambda offset: rfc3339(T0 + offset)),
    ),
)
RULE_LISTS = st.lists(
    st.fixed_dictionaries(
        {"when": st.lists(CONDITIONS, min_size=1, max_size=3)}, optional={"value": st.integers(0, 9)}
    ),
    min_size=1,
    max_size=3,
)
RULE_DATA = st.dictionaries(NAMES, RULE_LISTS, max_size=4)
ATTRIBUTES = st.fixed_dictionaries(
    {},
    optional={
        "plan": st.sampled_from(["pro", "free", "pop", "x"]),
        "age": st.sampled_from([18, 30, 21.5, "18", "old", -1]),
        "app": st.sampled_from(["2.10.0", "2.9.1", "10.0.0", "2.10", "v2.10.0"]),
    },
)


def reference(flags: Flags, rule_data: dict[str, list[Any]], context: Context, now: float) -> list[dict[str, Any]]:
    """The features the rule data names or the caller's sets name: on by a positive set or a matching rule,
    unless a negative set names it; the first matching rule's value first; in OFREP's shape."""
    entities = ["global"]
    entities += [f"version:{context.version}"] if context.version else []
    entities += [f"group:{group}" for group in context.groups]
    entities += [f"user:{context.user}"] if context.user else []
    positive = {f for entity in entities for f in flags.get(f"{entity}:positive", ())}
    negative = {f for entity in entities for f in flags.get(f"{entity}:negative", ())}
    attributes = dict(context.attributes)
    answers = []
    for feature in sorted(positive | negative | set(rule_data)):
        feature_rules = rule_data.get(feature, [])
        matched = next((r for r in feature_rules if all(reference_holds(c, attributes, now) for c in r["when"])), None)
        on = (feature in positive or matched is not None) and feature not in negative
        typed = any("value" in r for r in feature_rules)
        if on and matched is not None and "value" in matched:
            number = feature_rules.index(matched) + 1
            answers.append(
                {"key": feature, "value": matched["value"], "reason": "TARGETING_MATCH", "variant": f"rule:{number}"}
            )
        elif typed and not on:
            answers.append({"key": feature, "reason": "DISABLED", "variant": "off"})
        else:
            answers.append({"key": feature, "value": on, "variant": "on" if on else "off"})
        if on and matched is not None:
            answers[-1]["reason"] = "TARGETING_MATCH"
    return answers


def _shape(answers: list[dict[str, Any]], reference_answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answers, without the set-derived reasons the reference does not model (tests/test_features.py
    checks those): a reason is kept where the reference states one."""
    return [
        {k: v for k, v in answer.items() if k != "reason" or "reason" in expected}
        for answer, expected in zip(answers, reference_answers, strict=True)
    ]


async def _replace(client: Any, prefix: str, flags: Flags, rule_data: dict[str, list[Any]]) -> None:
    """The database's flags and rules replaced by these, as one more revision."""
    await replace_sets(client, prefix, flags)
    if rule_data:
        await client.hset(prefix + "global:rules", mapping={f: stored(*r) for f, r in rule_data.items()})
    await client.incr(prefix + "revision")


def _with(context: Context, attributes: dict[str, Any]) -> Context:
    return dataclasses.replace(context, attributes=tuple(sorted(attributes.items())))


@CACHE_ON_AND_OFF
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flags=FLAG_DATA,
    rule_data=RULE_DATA,
    context=CONTEXTS,
    attributes=ATTRIBUTES,
    offset=st.sampled_from([-6, -5, 0, 4, 5]),
)
async def test_answers_with_rules_agree_with_the_reference(
    store: Store, flags: Flags, rule_data: dict[str, list[Any]], context: Context, attributes: Any, offset: int
) -> None:
    await _replace(store.client, "", flags, rule_data)
    store.clock = lambda: T0 + offset
    caller = _with(context, attributes)
    expected = reference(flags, rule_data, caller, T0 + offset)
    answers = [ofrep.evaluation(evaluation) for evaluation in evaluate_all(await store.snapshot(caller))]
    assert _shape(answers, expected) == expected
    assert await store.features(caller) == [a["key"] for a in expected if a.get("value", False) is not False]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flags=FLAG_DATA, rule_data=RULE_DATA, context=CONTEXTS, attributes=ATTRIBUTES)
async def test_answers_with_rules_agree_with_the_reference_on_a_cluster(
    writer: RedisCluster,  # noqa: F811
    cluster_store: Store,  # noqa: F811
    flags: Flags,
    rule_data: dict[str, list[Any]],
    context: Context,
    attributes: Any,
) -> None:
    await _replace(cluster_store.client, PREFIX, flags, rule_data)
    cluster_store.clock = lambda: T0
    caller = _with(context, attributes)
    expected = reference(flags, rule_data, caller, T0)
    answers = [ofrep.evaluation(evaluation) for evaluation in evaluate_all(await cluster_store.snapshot(caller))]
    assert _shape(answers, expected) == expected


# Through HTTP, on the app (the clock injected).


async def test_a_hand_written_entry_that_does_not_parse_is_left_out_with_a_warning(
    client: httpx.AsyncClient, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await store.client.hset(
        "global:rules", mapping={"good": stored({"when": [condition("plan", "in", "pro")]}), "bad": '[{"when": []}]'}
    )
    answer = await client.post(ofrep.PATH_PREFIX + "v1/evaluate/flags", json={"context": {"plan": "pro"}})
    assert answer.json() == {"flags": [{"key": "good", "value": True, "reason": "TARGETING_MATCH", "variant": "on"}]}
    assert "global:rules, field 'bad': rule 1: when must be a non-empty list of conditions; left out" in caplog.text


async def test_an_attribute_may_be_called_version_on_the_seed_api(client: httpx.AsyncClient, store: Store) -> None:
    """`attr.version` is an attribute like any other there (OFREP's `version` field is the caller's version):
    a rule on it holds, and is stored and read back as any rule."""
    await store.client.sadd("version:v1:positive", "other")
    await store.client.hset("global:rules", "f", stored({"when": [condition("version", "semver_gte", "2.0.0")]}))
    on = await client.get("/features/f", params={"version": "v1", "attr.version": "2.1.0"})
    off = await client.get("/features/f", params={"version": "v1", "attr.version": "1.9.0"})
    assert (on.json()["enabled"], off.json()["enabled"]) == (True, False)


@pytest.mark.parametrize("settings", [Settings(cache_max_age=3600)])
async def test_an_answer_is_reused_until_its_boundary_and_no_later(client: httpx.AsyncClient, store: Store) -> None:
    opens, closes = T0 + 10, T0 + 20
    window = [condition("now", "after", rfc3339(opens)), condition("now", "before", rfc3339(closes))]
    await store.client.hset("global:rules", "sale", stored({"when": window}))
    await store.client.sadd("global:positive", "always")
    seen = []
    for moment in (T0, opens - 0.001, opens, closes - 0.5, closes, closes + 100):
        store.clock = lambda moment=moment: moment
        answer = await client.get("/")
        seen.append((answer.json()["features"], answer.headers["etag"]))
    assert [features for features, _ in seen] == [
        ["always"],
        ["always"],
        ["always", "sale"],
        ["always", "sale"],
        ["always"],
        ["always"],
    ]
    assert seen[0][1] == seen[1][1] == seen[4][1] == seen[5][1] != seen[2][1] == seen[3][1]
    store.clock = lambda: opens + 1
    single = await client.get("/features/sale", params={"explain": "true"})
    assert single.json()["reason"] == "TARGETING_MATCH"
    assert await store.client.get("revision") is None  # nothing was written: the clock alone moved


@pytest.mark.parametrize("settings", [Settings(cache_max_age=3600)])
async def test_a_reused_answer_before_its_boundary_is_the_same_object(client: httpx.AsyncClient, store: Store) -> None:
    await store.client.hset("global:rules", "sale", stored({"when": [condition("now", "after", rfc3339(T0 + 10))]}))
    store.clock = lambda: T0
    first = await client.get("/")
    cache = store.cache
    assert cache is not None
    answers = [slot for slot in cache._slots.values() if type(slot).__name__ == "Answer"]
    assert [answer.valid_until for answer in answers] == [T0 + 10]
    store.clock = lambda: T0 + 9.999
    again = await client.get("/", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


async def test_explain_names_the_rule_and_each_condition(client: httpx.AsyncClient, store: Store) -> None:
    feature_rules = stored(
        {"when": [condition("plan", "in", "pro", "enterprise"), condition("country", "not_in", "US")]},
        {"when": [condition("email", "ends_with", "@acme.com")], "value": "gold"},
    )
    await store.client.hset("global:rules", "badge", feature_rules)
    answer = await client.get(
        "/features/badge",
        params={"explain": "true", "attr.plan": "pro", "attr.country": "US", "attr.email": "a@acme.com"},
    )
    body = answer.json()
    assert (body["enabled"], body["reason"], body["rule"], body["value"], body["value_from"]) == (
        True,
        "TARGETING_MATCH",
        2,
        "gold",
        "global:rules",
    )
    assert body["rules"] == [
        {
            "rule": 1,
            "words": "plan is pro or enterprise, and country is not US",
            "matched": False,
            "conditions": [
                {**condition("plan", "in", "pro", "enterprise"), "holds": True},
                {**condition("country", "not_in", "US"), "holds": False},
            ],
        },
        {
            "rule": 2,
            "words": "email ends with @acme.com",
            "matched": True,
            "conditions": [{**condition("email", "ends_with", "@acme.com"), "holds": True}],
        },
    ]
    plain = (await client.get("/features/badge", params={"explain": "true"})).json()
    assert (plain["enabled"], plain["reason"], plain["rule"]) == (False, "DEFAULT", None)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("attr.plan=a&attr.plan=b", "query parameter 'attr.plan' is given more than once; at most once"),
        ("attr.=x", "attribute '': an attribute's name is 1 to 256 characters"),
        ("attr." + "n" * 257 + "=x", f"attribute {'n' * 40!r}: an attribute's name is 1 to 256 characters"),
        ("attr.now=2030-01-01T00:00:00Z", "attribute 'now' is the time of the evaluation; a caller cannot send it"),
        ("attr.plan=" + "p" * 257, "attribute 'plan' is 257 characters long; the limit is 256"),
        ("attr.plan=", "attribute 'plan' is empty"),
        ("&".join(f"attr.a{n}=x" for n in range(33)), "33 attributes given; the limit is 32"),
    ],
)
async def test_bad_attributes_in_a_query_are_refused_naming_them(
    client: httpx.AsyncClient, query: str, error: str
) -> None:
    for path in ("/", "/features/f"):
        answer = await client.get(f"{path}?{query}")
        assert (answer.status_code, answer.json()) == (400, {"error": error})


@pytest.mark.parametrize(
    ("context", "error"),
    [
        ({"now": "2030-01-01T00:00:00Z"}, "attribute 'now' is the time of the evaluation; a caller cannot send it"),
        ({"plan": "p" * 257}, "attribute 'plan' is 257 characters long; the limit is 256"),
        ({f"a{n}": n for n in range(33)}, "33 attributes given; the limit is 32"),
    ],
)
async def test_bad_attributes_in_an_ofrep_context_are_invalid_context(
    client: httpx.AsyncClient, context: dict[str, Any], error: str
) -> None:
    answer = await client.post(ofrep.PATH_PREFIX + "v1/evaluate/flags/f", json={"context": context})
    assert (answer.status_code, answer.json()) == (
        400,
        {"key": "f", "errorCode": "INVALID_CONTEXT", "errorDetails": error},
    )


@pytest.mark.parametrize("field", [["pro"], {"os": "ios"}, None, True])
async def test_a_structure_null_or_boolean_in_an_ofrep_context_is_left_out_as_no_rule_can_read_it(
    client: httpx.AsyncClient, store: Store, field: Any
) -> None:
    """OpenFeature contexts may carry structures: an app sending one must not lose every flag for it."""
    await store.client.sadd("global:positive", "f")
    answer = await client.post(ofrep.PATH_PREFIX + "v1/evaluate/flags/f", json={"context": {"device": field}})
    assert (answer.status_code, answer.json()["value"]) == (200, True)
    assert names.attributes([("device", field), ("plan", "pro")], Settings()) == (("plan", "pro"),)


def test_contexts_without_attributes_are_the_contexts_they_were() -> None:
    assert Context("v1", ("g",), "u") == Context("v1", ("g",), "u", attributes=())
    assert hash(Context("v1", ("g",), "u")) == hash(Context("v1", ("g",), "u", ()))
    assert Context(attributes=(("plan", "pro"),)) != Context()


# The real OpenFeature SDK, through OFREP, against `make dev-server`'s program with the cache on.


@pytest.fixture
def dev_server(clean_env: dict[str, str]) -> Iterator[tuple[DevServer, redis.Redis]]:  # noqa: F811
    server = DevServer({**clean_env, "FLIPPER_CACHE_MAX_AGE": "30"})
    match = re.search(r"listening on redis://127\.0\.0\.1:(\d+)", server.first_line)
    assert match, server.first_line
    with redis.Redis(port=int(match[1]), decode_responses=True) as flags:
        yield server, flags
    server.stop()


@pytest.fixture
def sdk(dev_server: tuple[DevServer, redis.Redis]) -> Iterator[OpenFeatureClient]:
    api.set_provider(OFREPProvider(dev_server[0].base_url, timeout=5), domain="targeting")
    yield api.get_client("targeting")
    api.clear_providers()


# One feature per operator: (feature, condition, an attribute value that matches, one that does not).
OPERATOR_CASES = [
    ("op_in", condition("plan", "in", "pro", "enterprise"), "enterprise", "free"),
    ("op_not_in", condition("country", "not_in", "US"), "FR", "US"),
    ("op_starts_with", condition("email", "starts_with", "admin@"), "admin@x.io", "bob@x.io"),
    ("op_ends_with", condition("email", "ends_with", "@acme.com"), "a@acme.com", "a@acme.co"),
    ("op_contains", condition("path", "contains", "/beta/"), "/app/beta/x", "/app/x"),
    ("op_eq", condition("seats", "eq", 5, 10), 10, 7),
    ("op_gt", condition("age", "gt", 18), 19, 18),
    ("op_gte", condition("age", "gte", 18), 18, 17.5),
    ("op_lt", condition("age", "lt", 18), 17.5, 18),
    ("op_lte", condition("age", "lte", 18), 18, 18.5),
    ("op_semver_eq", condition("app", "semver_eq", "2.10.0"), "2.10.0+build.7", "2.1.0"),
    ("op_semver_gt", condition("app", "semver_gt", "2.9.1"), "2.10.0", "2.9.1"),
    ("op_semver_gte", condition("app", "semver_gte", "2.10.0"), "10.0.0", "2.9.9"),
    ("op_semver_lt", condition("app", "semver_lt", "10.0.0"), "2.1.0", "10.0.0"),
    ("op_semver_lte", condition("app", "semver_lte", "2.10.0"), "2.10.0-rc.1", "2.10.1"),
    ("op_after", condition("signup", "after", "2026-01-01T00:00:00Z"), "2026-06-01T00:00:00Z", "2025-12-31T23:59:59Z"),
    (
        "op_before",
        condition("signup", "before", "2026-01-01T00:00:00Z"),
        "2025-12-31T23:59:59+00:00",
        "2026-01-01T00:00:00Z",
    ),
]
# Wrong kinds: a word for a number, a malformed version or time, a number for text, a boolean for anything.
WRONG_KIND = {
    "plan": 5,
    "country": True,
    "email": 7,
    "path": False,
    "seats": "ten",
    "age": "old",
    "app": "v2.10",
    "signup": "yesterday",
}


def test_every_operator_missing_and_wrong_kind_attributes_through_the_sdk(
    dev_server: tuple[DevServer, redis.Redis], sdk: OpenFeatureClient
) -> None:
    _, flags = dev_server
    for feature, cond, _, _ in OPERATOR_CASES:
        flags.hset("global:rules", feature, stored({"when": [cond]}))
    for feature, cond, yes, no in OPERATOR_CASES:
        name = cond["attribute"]
        details = sdk.get_boolean_details(feature, False, EvaluationContext("u1", {name: yes}))
        assert (feature, details.value, details.reason) == (feature, True, Reason.TARGETING_MATCH)
        assert sdk.get_boolean_details(feature, True, EvaluationContext("u1", {name: no})).value is False
        missing = sdk.get_boolean_details(feature, True, EvaluationContext("u1", {"other": yes}))
        assert (feature, missing.value, missing.reason, missing.error_code) == (feature, False, Reason.DEFAULT, None)
        wrong = sdk.get_boolean_details(feature, True, EvaluationContext("u1", {name: WRONG_KIND[name]}))
        assert (feature, wrong.value, wrong.error_code) == (feature, False, None)


def test_a_deny_beats_a_rule_and_a_rule_serves_its_value_through_the_sdk(
    dev_server: tuple[DevServer, redis.Redis], sdk: OpenFeatureClient
) -> None:
    _, flags = dev_server
    flags.hset("global:rules", "new_pricing", stored({"when": [condition("plan", "in", "pro")]}))
    flags.sadd("group:legacy:negative", "new_pricing")
    flags.hset(
        "global:rules", "staff_badge", stored({"when": [condition("email", "ends_with", "@acme.com")], "value": "gold"})
    )
    flags.hset("global:values", "staff_badge", canonical_json("silver"))
    flags.sadd("global:positive", "staff_badge")
    pro = {"plan": "pro"}
    assert sdk.get_boolean_value("new_pricing", False, EvaluationContext("u1", pro)) is True
    denied = sdk.get_boolean_details("new_pricing", True, EvaluationContext("u1", {**pro, "group": "legacy"}))
    assert (denied.value, denied.reason) == (False, Reason.TARGETING_MATCH)  # the group's deny named it
    staff = sdk.get_string_details("staff_badge", "none", EvaluationContext("u1", {"email": "zoe@acme.com"}))
    assert (staff.value, staff.reason, staff.variant) == ("gold", Reason.TARGETING_MATCH, "rule:1")
    other = sdk.get_string_details("staff_badge", "none", EvaluationContext("u2", {"email": "zoe@other.org"}))
    assert (other.value, other.reason, other.variant) == ("silver", Reason.STATIC, "global")
    listed = sdk.get_boolean_details("new_pricing", True, EvaluationContext("u1", {"plan": ["pro"]}))
    assert (listed.value, listed.error_code) == (False, None)  # a list is no attribute: left out, so plan is absent
    bad = sdk.get_boolean_details("new_pricing", True, EvaluationContext("u1", {"plan": "p" * 257}))
    assert (bad.value, bad.error_code) == (True, ErrorCode.INVALID_CONTEXT)


def test_a_window_opens_and_closes_on_time_with_no_write_through_the_sdk(
    dev_server: tuple[DevServer, redis.Redis], sdk: OpenFeatureClient
) -> None:
    _, flags = dev_server
    start = time.time()
    opens, closes = int(start) + 3, int(start) + 5  # whole seconds: RFC 3339 to the second
    window = [condition("now", "after", rfc3339(opens)), condition("now", "before", rfc3339(closes))]
    flags.hset("global:rules", "winter_sale", stored({"when": window}))
    flags.sadd("global:positive", "always")  # so the bulk answer is never empty
    revision = flags.get("revision")
    context = EvaluationContext("u1")
    seen: list[tuple[float, bool]] = []
    while time.time() < closes + 1.5:
        seen.append((time.time(), sdk.get_boolean_value("winter_sale", False, context)))
        time.sleep(0.05)
    assert flags.get("revision") == revision  # no write: the cache alone decided, on time
    # On exactly while opens <= now < closes. `at` is taken just before each request, so an answer may be on
    # a poll's interval early; and it may be at most a second late (here it is not late at all).
    wrong = [
        (at, on)
        for at, on in seen
        if on != (opens <= at < closes) and not any(edge - 0.2 <= at < edge + 1 for edge in (opens, closes))
    ]
    assert not wrong, wrong
    assert not seen[0][1]
    assert not seen[-1][1]
    assert all(on for at, on in seen if opens + 0.01 <= at < closes - 0.2)  # never late


@pytest.fixture
async def cached_on_real_redis(redis_server: RedisServer) -> AsyncIterator[Store]:
    store = Store.from_settings(patient(Settings(redis_url=redis_server.url, cache_max_age=3600)))
    await store.client.flushall()
    yield store
    await store.aclose()


async def test_the_steady_state_with_rules_is_the_revision_alone(cached_on_real_redis: Store) -> None:
    store = cached_on_real_redis
    await store.client.hset("global:rules", "f", stored({"when": [condition("plan", "in", "pro")]}))
    await store.client.incr("revision")
    caller = Context(attributes=(("plan", "pro"),))
    first = await store.snapshot(caller)
    calls: list[Any] = []
    original = store._call

    async def counted(keys: list[str], known: str, held: str) -> Any:
        reply = await original(keys, known, held)
        calls.append(reply)
        return reply

    store._call = counted  # type: ignore[method-assign]
    again = await store.snapshot(caller)
    assert len(calls) == 1
    assert isinstance(calls[0], str)  # answered with the revision alone
    assert again.rules["f"] is first.rules["f"]  # parsed once per read, not per evaluation
