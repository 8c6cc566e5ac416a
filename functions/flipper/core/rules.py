"""Attribute targeting rules: conditions on what a caller is, and on the time of the evaluation.

A feature's rules are a list; a rule is a list of conditions that must all hold, and may carry a value. A
condition is `{attribute, operator, values}`. A missing attribute, or one of the wrong kind (a word where a
number is needed, a malformed version or time), makes its condition false, never an error. The attribute
`now` is the time of the evaluation, so a schedule is a rule: `now after T1` and `now before T2`.

Rules are checked when written (`parse_rules` refuses what is wrong, naming the rule and the operator) and
read back by the evaluation without a second check: what the store holds was parsed on the way in, and a
hand-written entry that does not parse is left out by the reader with a warning.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

NOW = "now"
MAX_RULES = 32  # per feature
MAX_CONDITIONS = 16  # per rule
MAX_VALUES = 100  # per condition
MAX_TEXT = 256  # characters of an attribute's name or of one text operand

# Each operator and the kind of operand it compares; the `many` ones hold when any of their values does,
# the others compare with exactly one value.
TEXT, NUMBER, SEMVER, TIME = "text", "number", "semver", "time"
OPERATORS: dict[str, str] = {
    "in": TEXT,
    "not_in": TEXT,
    "starts_with": TEXT,
    "ends_with": TEXT,
    "contains": TEXT,
    "eq": NUMBER,
    "gt": NUMBER,
    "gte": NUMBER,
    "lt": NUMBER,
    "lte": NUMBER,
    "semver_eq": SEMVER,
    "semver_gt": SEMVER,
    "semver_gte": SEMVER,
    "semver_lt": SEMVER,
    "semver_lte": SEMVER,
    "before": TIME,
    "after": TIME,
}
_MANY = {"in", "not_in", "starts_with", "ends_with", "contains", "eq", "semver_eq"}

# Semantic Versioning 2.0.0's own grammar (semver.org): no leading zeros, no "v", optional pre-release and build.
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?",
    re.ASCII,
)
# RFC 3339's date-time: a full date, a full time, and an offset (Z or ±hh:mm); nothing looser.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:[Zz]|[+-]\d\d:\d\d)", re.ASCII)
_DECIMAL = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?", re.ASCII)  # JSON's number grammar


def canonical_json(value: Any) -> str:
    """`value` as the store holds it: compact, keys sorted, UTF-8 text as is; so equal values are equal text."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)


class RuleError(ValueError):
    """A rule that cannot be stored; the message names the rule (1-based), the operator and what is wrong."""


Version = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]


def semver(text: object) -> Version | None:
    """`text` as a key that orders by Semantic Versioning 2.0.0's precedence, or None unless it is one.

    A release ranks above its pre-releases; pre-release identifiers compare numerically when numeric, in
    ASCII order otherwise, numeric below alphanumeric, and a shorter list below a longer one it begins;
    build metadata is ignored.
    """
    if not isinstance(text, str):
        return None
    match = _SEMVER.fullmatch(text)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    identifiers = tuple((0, int(part)) if part.isdigit() else (1, part) for part in pre.split("."))
    return (int(major), int(minor), int(patch), 0, identifiers)


def timestamp(text: object) -> float | None:
    """An RFC 3339 date-time as seconds since the epoch, or None unless it is one."""
    if not isinstance(text, str) or _RFC3339.fullmatch(text) is None:
        return None
    try:
        return datetime.fromisoformat(text.upper()).timestamp()
    except ValueError:  # a 30th of February, an hour 25
        return None


def number(value: object) -> float | None:
    """A finite number from a JSON number or from its text (a query string carries only text), or None."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, int | float) and not (isinstance(value, str) and _DECIMAL.fullmatch(value)):
        return None
    try:
        parsed = float(value)
    except OverflowError:  # an integer beyond any float: 10**400
        return None
    return parsed if math.isfinite(parsed) else None


# Each kind's parser: of a rule's operands when written, and of a caller's attributes.
_PARSE = {
    TEXT: lambda value: value if isinstance(value, str) else None,
    NUMBER: number,
    SEMVER: semver,
    TIME: timestamp,
}


def _remembering(parse: Any) -> Any:
    """`parse` for a caller's attributes, remembering the last texts and numbers it parsed: one evaluation
    compares the same attribute under many features' rules. Typed, so that 1 and 1.0 stay apart; anything
    else (a list: names.attributes leaves such out, a condition is false for it all the same) is parsed."""
    remembered = functools.lru_cache(maxsize=1024, typed=True)(parse)
    return lambda value: remembered(value) if isinstance(value, str | int | float) else parse(value)


_ATTRIBUTE = {kind: _remembering(parse) for kind, parse in _PARSE.items()}


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """One condition: `values` as written, `operands` parsed to the operator's kind."""

    attribute: str
    operator: str
    values: tuple[Any, ...]
    operands: tuple[Any, ...] = dataclasses.field(compare=False)

    def holds(self, attributes: Mapping[str, object], now: float) -> bool:
        """Whether the caller's `attributes` (and the evaluation's time `now`) satisfy the condition."""
        if self.attribute == NOW:  # the evaluation's own time: a caller cannot send another
            actual: Any = now
        else:
            raw = attributes.get(self.attribute)
            actual = None if raw is None else _ATTRIBUTE[OPERATORS[self.operator]](raw)
        return actual is not None and _COMPARE[self.operator](actual, self.operands)

    def as_data(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "operator": self.operator, "values": list(self.values)}


_COMPARE = {
    "in": lambda actual, operands: actual in operands,
    "not_in": lambda actual, operands: actual not in operands,
    "starts_with": lambda actual, operands: any(actual.startswith(operand) for operand in operands),
    "ends_with": lambda actual, operands: any(actual.endswith(operand) for operand in operands),
    "contains": lambda actual, operands: any(operand in actual for operand in operands),
    "eq": lambda actual, operands: actual in operands,
    "gt": lambda actual, operands: actual > operands[0],
    "gte": lambda actual, operands: actual >= operands[0],
    "lt": lambda actual, operands: actual < operands[0],
    "lte": lambda actual, operands: actual <= operands[0],
    "semver_eq": lambda actual, operands: actual in operands,  # equal precedence: build metadata aside
    "semver_gt": lambda actual, operands: actual > operands[0],
    "semver_gte": lambda actual, operands: actual >= operands[0],
    "semver_lt": lambda actual, operands: actual < operands[0],
    "semver_lte": lambda actual, operands: actual <= operands[0],
    "before": lambda actual, operands: actual < operands[0],
    "after": lambda actual, operands: actual >= operands[0],
}


_NO_VALUE = object()


def deep_size(data: object) -> int:
    """The bytes `data` takes with everything it holds (JSON-like data: its depth is bounded when parsed)."""
    size = sys.getsizeof(data)
    if isinstance(data, dict):
        return size + sum(deep_size(key) + deep_size(value) for key, value in data.items())
    if isinstance(data, list | tuple):
        return size + sum(map(deep_size, data))
    return size


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """Conditions that must all hold; `value` (when `has_value`) is what the feature serves when it matches.

    Rules are equal when their JSON is: Python's own equality finds 1 == 1.0 == True, and the cache, which
    keeps an entry read again equal, would go on serving a rule whose value changed only so.
    """

    when: tuple[Condition, ...]
    value: Any = None
    has_value: bool = False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and canonical_json(self.as_data()) == canonical_json(other.as_data())

    def __hash__(self) -> int:
        return hash(canonical_json(self.as_data()))

    def matches(self, attributes: Mapping[str, object], now: float) -> bool:
        return all(condition.holds(attributes, now) for condition in self.when)

    def __sizeof__(self) -> int:  # what the cache counts: everything the rule holds, its value included
        held = [(c.attribute, c.values, c.operands) for c in self.when]
        return object.__sizeof__(self) + sum(map(object.__sizeof__, self.when)) + deep_size([held, self.value])

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"when": [condition.as_data() for condition in self.when]}
        if self.has_value:
            data["value"] = self.value
        return data


def parse_rules(raw: object) -> tuple[Rule, ...]:
    """`raw` (a list of `{"when": [...], "value": ...}`, as the flags file and the store hold it) as rules;
    RuleError names the first thing wrong. A rule's value is returned as given: its checks are a value's."""
    if not isinstance(raw, list) or not raw:
        raise RuleError("rules must be a non-empty list of {when: [conditions], value: ...}")
    if len(raw) > MAX_RULES:
        raise RuleError(f"{len(raw)} rules; a feature may have at most {MAX_RULES}")
    return tuple(_rule(index, entry) for index, entry in enumerate(raw, start=1))


def _rule(index: int, entry: object) -> Rule:
    if not isinstance(entry, dict) or "when" not in entry or set(entry) - {"when", "value"}:
        raise RuleError(f"rule {index}: must be {{when: [conditions]}}, with an optional value")
    when = entry["when"]
    if not isinstance(when, list) or not when:
        raise RuleError(f"rule {index}: when must be a non-empty list of conditions")
    if len(when) > MAX_CONDITIONS:
        raise RuleError(f"rule {index}: {len(when)} conditions; a rule may have at most {MAX_CONDITIONS}")
    conditions = tuple(_condition(index, condition) for condition in when)
    if "value" in entry:
        if entry["value"] is None or isinstance(entry["value"], bool):
            raise RuleError(f"rule {index}: a value must be a string, a number, an object or an array")
        return Rule(conditions, entry["value"], has_value=True)
    return Rule(conditions)


def _condition(index: int, entry: object) -> Condition:
    if not isinstance(entry, dict) or set(entry) != {"attribute", "operator", "values"}:
        raise RuleError(f"rule {index}: a condition is {{attribute, operator, values}}, not {entry!r:.80}")
    attribute, operator, values = entry["attribute"], entry["operator"], entry["values"]
    where = f"rule {index}, operator {operator!r}"
    if operator not in OPERATORS:
        raise RuleError(f"{where}: unknown; operators are {', '.join(OPERATORS)}")
    if not isinstance(attribute, str) or not attribute or len(attribute) > MAX_TEXT:
        raise RuleError(f"{where}: the attribute must be a name of 1 to {MAX_TEXT} characters")
    kind = OPERATORS[operator]
    if attribute == NOW and kind != TIME:
        raise RuleError(f"{where}: the attribute now is a time; compare it with before or after")
    if not isinstance(values, list) or not values:
        raise RuleError(f"{where}: values must be a non-empty list")
    if operator not in _MANY and len(values) != 1:
        raise RuleError(f"{where}: compares with exactly one value, not {len(values)}")
    if len(values) > MAX_VALUES:
        raise RuleError(f"{where}: {len(values)} values; a condition may have at most {MAX_VALUES}")
    operands = tuple(_operand(where, kind, value) for value in values)
    return Condition(attribute, operator, tuple(values), operands)


def _operand(where: str, kind: str, value: object) -> Any:
    # A rule's numbers are written as numbers; only callers' attributes may arrive as text (a query string).
    parsed = None if kind == NUMBER and isinstance(value, str) else _PARSE[kind](value)
    if parsed is None or (kind == TEXT and len(value) > MAX_TEXT):  # type: ignore[arg-type]
        expected = {
            TEXT: f"text of at most {MAX_TEXT} characters",
            NUMBER: "a finite number",
            SEMVER: "a semantic version such as 2.10.0",
            TIME: "an RFC 3339 time such as 2026-12-20T00:00:00Z",
        }
        raise RuleError(f"{where}: {value!r:.80} is not {expected[kind]}")
    return parsed


def as_data(rules: Sequence[Rule]) -> list[dict[str, Any]]:
    """The rules as the flags file and the store hold them (`parse_rules`'s input)."""
    return [rule.as_data() for rule in rules]


def first_match(rules: Sequence[Rule], attributes: Mapping[str, object], now: float) -> int | None:
    """The index of the first rule that matches, or None."""
    return next((index for index, rule in enumerate(rules) if rule.matches(attributes, now)), None)


def boundaries(rules: Sequence[Rule]) -> list[float]:
    """Every time a condition on `now` changes its outcome at, sorted: what a cached answer is valid until."""
    return sorted({c.operands[0] for rule in rules for c in rule.when if c.attribute == NOW})


def next_boundary(rules: Sequence[Rule], now: float) -> float | None:
    """The first time after `now` at which a condition on `now` changes its outcome, or None."""
    return next((moment for moment in boundaries(rules) if moment > now), None)


_WORDS = {
    "in": "is",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "contains": "contains",
    "eq": "is",
    "gt": "is above",
    "gte": "is at least",
    "lt": "is below",
    "lte": "is at most",
    "semver_eq": "is version",
    "semver_gt": "is a version above",
    "semver_gte": "is version",
    "semver_lt": "is a version below",
    "semver_lte": "is version",
    "before": "is before",
    "after": "is after",
}
_SUFFIX = {"semver_gte": " or later", "semver_lte": " or earlier"}


def _words(condition: Condition) -> str:
    values = [str(value) for value in condition.values]
    if condition.operator == "not_in":
        said = f"is not {values[0]}" if len(values) == 1 else f"is none of {', '.join(values)}"
    else:
        said = f"{_WORDS[condition.operator]} {' or '.join(values)}{_SUFFIX.get(condition.operator, '')}"
    return f"{condition.attribute} {said}"


def describe(rule: Rule) -> str:
    """A rule in words, for people: "plan is pro or enterprise, and country is not US"."""
    return ", and ".join(_words(condition) for condition in rule.when)
