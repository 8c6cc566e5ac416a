"""Targeting rules (flipper.core.rules): each operator against an independent oracle, wrong kinds and missing
attributes false, never an error, and what is refused when written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import semver as oracle
from hypothesis import given
from hypothesis import strategies as st

from flipper.core.rules import (
    MAX_CONDITIONS,
    MAX_RULES,
    OPERATORS,
    RuleError,
    as_data,
    describe,
    first_match,
    next_boundary,
    parse_rules,
)


def holds(operator: str, values: list[Any], actual: object, now: float = 0.0, attribute: str = "a") -> bool:
    [rule] = parse_rules([{"when": [{"attribute": attribute, "operator": operator, "values": values}]}])
    return rule.matches({} if actual is None else {attribute: actual}, now)


# Versions as semver.org writes them, pre-releases and build metadata included.
numeric = st.integers(0, 30).map(str)
alphanumeric = st.from_regex(r"[a-zA-Z-][0-9a-zA-Z-]{0,3}", fullmatch=True)
identifiers = st.lists(st.one_of(numeric, alphanumeric), min_size=1, max_size=3).map(".".join)
versions = st.builds(
    lambda core, pre, build: ".".join(map(str, core)) + (f"-{pre}" if pre else "") + (f"+{build}" if build else ""),
    st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 12)),
    st.one_of(st.none(), identifiers),
    st.one_of(st.none(), st.from_regex(r"[0-9a-zA-Z-]{1,4}", fullmatch=True)),
)


@given(versions, versions)
def test_semantic_versions_compare_as_the_semver_library_says(left: str, right: str) -> None:
    expected = oracle.Version.parse(left).compare(right)
    assert holds("semver_gt", [right], left) == (expected > 0)
    assert holds("semver_gte", [right], left) == (expected >= 0)
    assert holds("semver_lt", [right], left) == (expected < 0)
    assert holds("semver_lte", [right], left) == (expected <= 0)
    assert holds("semver_eq", [right], left) == (expected == 0)


def test_semantic_versions_are_not_text() -> None:
    assert holds("semver_gt", ["2.9.1"], "2.10.0")
    assert holds("semver_gt", ["2.1.0"], "10.0.0")
    assert holds("semver_lt", ["1.0.0"], "1.0.0-rc.1")  # a pre-release is below its release
    for malformed in ["2.10", "v2.10.0", "02.1.0", "2.1.0-", "", "2.1.0.0", 2]:
        assert not holds("semver_gte", ["0.0.0"], malformed)  # the wrong kind: false, not an error


@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_compare_as_numbers_whether_sent_as_numbers_or_as_text(actual: float, operand: float) -> None:
    for sent in (actual, repr(actual)):
        assert holds("gt", [operand], sent) == (actual > operand)
        assert holds("gte", [operand], sent) == (actual >= operand)
        assert holds("lt", [operand], sent) == (actual < operand)
        assert holds("lte", [operand], sent) == (actual <= operand)
        assert holds("eq", [operand], sent) == (actual == operand)


def test_numbers_of_the_wrong_kind_are_false() -> None:
    for wrong in ["ten", "", "1e400", "0x10", " 5", True, [5], {"n": 5}]:
        assert not holds("gte", [0], wrong)
    assert holds("eq", [1, 2, 3], 2)  # eq holds when any value does
    assert holds("lt", [10], "9.5")


@given(st.text(max_size=8), st.lists(st.text(max_size=4), min_size=1, max_size=4))
def test_text_operators_match_python_strings(actual: str, operands: list[str]) -> None:
    assert holds("in", operands, actual) == (actual in operands)
    assert holds("not_in", operands, actual) == (actual not in operands)
    assert holds("starts_with", operands, actual) == any(actual.startswith(o) for o in operands)
    assert holds("ends_with", operands, actual) == any(actual.endswith(o) for o in operands)
    assert holds("contains", operands, actual) == any(o in actual for o in operands)


def test_a_missing_attribute_or_text_of_the_wrong_kind_is_false_for_every_operator() -> None:
    operands = {"text": "x", "number": 1, "semver": "1.0.0", "time": "2026-01-01T00:00:00Z"}
    for operator, kind in OPERATORS.items():
        assert not holds(operator, [operands[kind]], None)  # missing, not_in included
    assert not holds("in", ["30"], 30)  # text operators compare text only


moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(moments, moments, st.sampled_from([timedelta(0), timedelta(hours=5, minutes=30), timedelta(hours=-8)]))
def test_times_compare_as_instants_whatever_their_offset(now: datetime, boundary: datetime, offset: timedelta) -> None:
    written = boundary.astimezone(timezone(offset)).isoformat()
    assert holds("after", [written], None, now=now.timestamp(), attribute="now") == (now >= boundary)
    assert holds("before", [written], None, now=now.timestamp(), attribute="now") == (now < boundary)
    # A time in an attribute compares the same way.
    assert holds("after", [written], now.isoformat()) == (now >= boundary)


def test_now_is_the_evaluations_time_and_a_caller_cannot_send_another() -> None:
    [rule] = parse_rules([{"when": [{"attribute": "now", "operator": "after", "values": ["2026-12-20T00:00:00Z"]}]}])
    opening = datetime(2026, 12, 20, tzinfo=UTC).timestamp()
    assert not rule.matches({"now": "2030-01-01T00:00:00Z"}, opening - 0.001)
    assert rule.matches({}, opening)
    assert not holds("after", ["2026-12-20T00:00:00Z"], "2026-12-20")  # a date alone is not RFC 3339


def test_a_window_opens_and_closes_and_says_when_it_next_changes() -> None:
    window = parse_rules(
        [
            {
                "when": [
                    {"attribute": "now", "operator": "after", "values": ["2026-12-20T00:00:00Z"]},
                    {"attribute": "now", "operator": "before", "values": ["2027-01-06T00:00:00Z"]},
                ]
            }
        ]
    )
    opens, closes = (datetime(2026, 12, 20, tzinfo=UTC).timestamp(), datetime(2027, 1, 6, tzinfo=UTC).timestamp())
    assert [first_match(window, {}, moment) for moment in (opens - 1, opens, closes - 1, closes)] == [None, 0, 0, None]
    assert [next_boundary(window, moment) for moment in (opens - 1, opens, closes)] == [opens, closes, None]


def test_the_first_matching_rule_wins_and_all_conditions_must_hold() -> None:
    rules = parse_rules(
        [
            {
                "when": [
                    {"attribute": "plan", "operator": "in", "values": ["pro", "enterprise"]},
                    {"attribute": "country", "operator": "not_in", "values": ["US"]},
                ],
                "value": "gold",
            },
            {"when": [{"attribute": "email", "operator": "ends_with", "values": ["@acme.com"]}]},
        ]
    )
    assert first_match(rules, {"plan": "pro", "country": "FR", "email": "a@acme.com"}, 0) == 0
    assert first_match(rules, {"plan": "pro", "country": "US", "email": "a@acme.com"}, 0) == 1
    assert first_match(rules, {"plan": "pro", "country": "US"}, 0) is None
    assert (rules[0].has_value, rules[0].value, rules[1].has_value) == (True, "gold", False)
    assert describe(rules[0]) == "plan is pro or enterprise, and country is not US"
    assert parse_rules(as_data(rules)) == rules


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([], "rules must be a non-empty list"),
        ([{"when": []}], "rule 1: when must be a non-empty list"),
        ([{"when": [{"attribute": "a", "operator": "like", "values": ["x"]}]}], "rule 1, operator 'like': unknown"),
        ([{"when": [{"attribute": "a", "operator": "in", "values": []}]}], "rule 1, operator 'in': values must be"),
        ([{"when": [{"attribute": "a", "operator": "gt", "values": [1, 2]}]}], "compares with exactly one value"),
        ([{"when": [{"attribute": "a", "operator": "gt", "values": ["ten"]}]}], "'ten' is not a finite number"),
        ([{"when": [{"attribute": "v", "operator": "semver_gt", "values": ["2.1"]}]}], "'2.1' is not a semantic"),
        ([{"when": [{"attribute": "now", "operator": "after", "values": ["tomorrow"]}]}], "is not an RFC 3339"),
        ([{"when": [{"attribute": "now", "operator": "after", "values": ["2026-02-30T00:00:00Z"]}]}], "RFC 3339"),
        ([{"when": [{"attribute": "now", "operator": "in", "values": ["x"]}]}], "the attribute now is a time"),
        ([{"when": [{"attribute": "", "operator": "in", "values": ["x"]}]}], "the attribute must be a name"),
        ([{"when": [{"attribute": "a", "operator": "in"}]}], "rule 1: a condition is {attribute, operator, values}"),
        ([{"when": [{"attribute": "a", "operator": "in", "values": ["x"]}], "value": None}], "rule 1: a value"),
        ([{"when": [{"attribute": "a", "operator": "in", "values": ["x"]}], "then": 1}], "rule 1: must be"),
        ([{"when": [{"attribute": "a", "operator": "in", "values": ["x"]}]}] * (MAX_RULES + 1), "at most 32"),
        ([{"when": [{"attribute": "a", "operator": "in", "values": ["x"]}] * (MAX_CONDITIONS + 1)}], "at most 16"),
    ],
)
def test_what_cannot_be_stored_is_refused_naming_the_rule_and_operator(rules: Any, message: str) -> None:
    with pytest.raises(RuleError, match=message.replace("(", r"\(").replace("{", r"\{").replace("[", r"\[")):
        parse_rules(rules)


def test_rules_are_equal_only_when_they_are_the_same_json() -> None:
    """Python finds 1 == 1.0 == True: rules compared that way let the cache keep a rule whose value changed."""
    when = [{"attribute": "plan", "operator": "eq", "values": [1]}]
    assert parse_rules([{"when": when, "value": {"limit": 1}}]) != parse_rules(
        [{"when": when, "value": {"limit": 1.0}}]
    )
    assert parse_rules([{"when": when, "value": 0}]) != parse_rules([{"when": when, "value": -0.0}])
    other = [{"attribute": "plan", "operator": "eq", "values": [1.0]}]
    assert parse_rules([{"when": when}]) != parse_rules([{"when": other}])
    assert parse_rules([{"when": when, "value": {"a": 1, "b": 2}}]) == parse_rules(
        [{"when": when, "value": {"b": 2, "a": 1}}]
    )


def test_a_number_too_large_for_a_float_is_of_the_wrong_kind_not_an_error() -> None:
    huge = 10**400
    assert not holds("gte", [18], huge)
    assert not holds("gte", [18], str(huge))
    with pytest.raises(RuleError, match="is not a finite number"):
        parse_rules([{"when": [{"attribute": "age", "operator": "gte", "values": [huge]}]}])
