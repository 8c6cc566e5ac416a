"""Reading the evaluation script's replies: the revision, each key's contents as the cache holds them, and
what to do with what was written around Flipper (members that are not UTF-8, percentages that are not,
values, variants and rules that are not JSON of the documented shape)."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

from flipper.core import rules
from flipper.core.cache import Contents
from flipper.core.model import (
    BUCKETS,
    MAX_VALUE_BYTES,
    ROLLOUT,
    RULES,
    VALUES,
    VARIANTS,
    Value,
    Variant,
    canonical_json,
    is_hash_key,
    parse_percentage,
)

logger = logging.getLogger("flipper")

# The revision as lua/evaluate.lua answers it: the count (what INCR keeps: ASCII digits, one optional minus),
# then, once a write through Flipper's write path has stamped it, `:` and that write's stamp.
_REVISION = re.compile(r"(-?[0-9]+)(?::([0-9a-f]{16}))?")
# Rollout hashes hold few distinct values ("5", "25", "100"): each is parsed once, not once per evaluation.
_thousandths = functools.lru_cache(maxsize=1024)(parse_percentage)


def decoded(keys: list[str], reply: bytes | list[Any]) -> str | list[Any]:
    """The script's reply read undecoded, decoded member by member: a member (or a rollout's field or value)
    that is not UTF-8 is left out, with a warning naming its key and its bytes."""
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")  # the revision alone; not an integer, it validates nothing
    raw_revision, *raw_contents = reply
    read: list[Any] = [raw_revision.decode("utf-8", "replace")]
    for key, members in zip(keys, raw_contents, strict=True):
        if members is None:
            read.append(None)
        elif is_hash_key(key):
            pairs = [_utf8(key, (field, value)) for field, value in zip(members[::2], members[1::2], strict=True)]
            read.append([text for pair in pairs if pair is not None for text in pair])
        else:
            read.append([member for member in (_utf8(key, (raw,)) for raw in members) if member is not None])
    return read


def _utf8(key: str, raw: tuple[bytes, ...]) -> Any:
    """`raw` decoded (one member, or a field and its value), or None with a warning unless all is UTF-8."""
    try:
        decoded = tuple(part.decode("utf-8") for part in raw)
    except UnicodeDecodeError:
        what = repr(raw[0]) if len(raw) == 1 else f"field {raw[0]!r} = {raw[1]!r}"
        logger.warning("key %s holds %s, which is not UTF-8: left out (remove it with redis-cli)", key, what)
        return None
    return decoded if len(decoded) > 1 else decoded[0]


def utf8_names(raw: list[bytes]) -> Iterator[str]:
    """The key names that are UTF-8: one that is not (written around Flipper) names no entity a caller can be."""
    for name in raw:
        with contextlib.suppress(UnicodeDecodeError):
            yield name.decode("utf-8")


def contents(key: str, raw: list[str]) -> Contents:
    """A key's contents as the cache holds them, parsed once per read: a set's members, a rollout's
    thousandths per feature, a values hash's values per feature, the variants or the targeting rules per
    feature."""
    kind = key.rpartition(":")[2]
    if kind == ROLLOUT:
        return percentages(key, raw)
    if kind == VALUES:
        return _hash(key, raw, _remembered_value)
    if kind == VARIANTS:
        return _hash(key, raw, _remembered_variants)
    if kind == RULES:
        return _hash(key, raw, _remembered_rules)
    return frozenset(raw)


def revision(raw: str) -> tuple[int, str | None] | None:
    """The store's revision: its count, and the stamp of the write that made it (None when no write through
    this write path made it: a store the previous version wrote, or only redis-cli); None when someone wrote
    something else there by hand."""
    match = _REVISION.fullmatch(raw)
    return None if match is None else (int(match[1]), match[2])


def known(count: int | None, stamp: str | None) -> str:
    """The revision as the script compares it: what it answered for this count and stamp ('' for none)."""
    if count is None:
        return ""
    return str(count) if stamp is None else f"{count}:{stamp}"


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


class _Malformed(ValueError):
    """A value, variants or rules entry that is not of the documented shape: why, in words."""


def _hash(key: str, flat: list[str], parse: Callable[[str], Any]) -> dict[str, Any]:
    """A values, variants or rules hash, as HGETALL's flat list, parsed per feature. An entry that is not of the
    documented shape (written by hand around Flipper) must not take answers down: it is left out, and a
    warning names the key and the field."""
    parsed = {}
    for feature, raw in zip(flat[::2], flat[1::2], strict=True):
        try:
            parsed[feature] = parse(raw)
        except _Malformed as exc:
            logger.warning("%s, field %r: %s; left out", key, feature, exc)
    return parsed


def _json(raw: str) -> Any:
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested past what the parser recurses into
        raise _Malformed(f"{raw[:40]!r} is not JSON") from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python's parser takes them, JSON does not


def _checked(data: Any) -> Value:
    """`data` as a value: a string, a number, an object or an array, at most MAX_VALUE_BYTES of canonical JSON."""
    if data is None or isinstance(data, bool) or not isinstance(data, str | int | float | dict | list):
        raise _Malformed(f"{json.dumps(data)} is not a string, a number, an object or an array")
    try:
        text = canonical_json(data)
    except ValueError:  # 1e400 parses as infinity, which JSON cannot write back
        raise _Malformed("the value holds a number out of JSON's range") from None
    if len(text.encode()) > MAX_VALUE_BYTES:
        raise _Malformed(f"the value is {len(text.encode())} bytes of JSON; the limit is {MAX_VALUE_BYTES}")
    return Value(text, data)


def _value(raw: str) -> Value:
    return _checked(_json(raw))


def _variants(raw: str) -> tuple[Variant, ...]:
    """A variants entry: a non-empty JSON array of {"name", "value", "weight"}, names distinct and non-empty,
    weights percentages with at most three decimals summing to exactly 100."""
    data = _json(raw)
    if not isinstance(data, list) or not data:
        raise _Malformed("not a non-empty JSON array of variants")
    variants = tuple(_variant(index, entry) for index, entry in enumerate(data))
    if len({variant.name for variant in variants}) < len(variants):
        raise _Malformed("two variants have the same name")
    total = sum(variant.weight for variant in variants)
    if total != BUCKETS:
        raise _Malformed(f"the weights sum to {total / 1000:g}, not 100")
    return variants


def _variant(index: int, entry: Any) -> Variant:
    if not isinstance(entry, dict) or {"name", "value", "weight"} - entry.keys():
        raise _Malformed(f"variant {index} is not an object with a name, a value and a weight")
    name, weight = entry["name"], entry["weight"]
    if not isinstance(name, str) or not name:
        raise _Malformed(f"variant {index}'s name is not a non-empty string")
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise _Malformed(f"variant {name!r}'s weight is not a number")
    if not 0 <= weight <= 100 or abs(weight * 1000 - round(weight * 1000)) > 1e-6:  # float noise, not a 4th decimal
        raise _Malformed(
            f"variant {name!r}'s weight {weight!r} is not a percentage from 0 to 100, three decimals at most"
        )
    return Variant(name, round(weight * 1000), _checked(entry["value"]))


def _rules(raw: str) -> tuple[rules.Rule, ...]:
    """A rules entry: what `rules.parse_rules` accepts (the write path checked it; one written by hand may not
    parse), each rule's value checked like any value."""
    try:
        parsed = rules.parse_rules(_json(raw))
    except rules.RuleError as exc:
        raise _Malformed(str(exc)) from None
    for rule in parsed:
        if rule.has_value:
            _checked(rule.value)
    return parsed


def _remembered(parse: Callable[[str], Any], longest: int, entries: int) -> Callable[[str], Any]:
    """`parse`, remembering what it made of the last `entries` texts of at most `longest` characters. Without
    the cache every read parses every entry again, and the same text always parses to the same result (held
    as it is, never changed: the cache shares it across answers too). What `parse` refuses is not remembered
    (lru_cache keeps no exception), so its warning is logged at every read, as before."""
    remembered = functools.lru_cache(maxsize=entries)(parse)
    return lambda raw: remembered(raw) if len(raw) <= longest else parse(raw)


# Outside the cache's budget, so bounded by their worst case, measured with tracemalloc: parsed data can take
# twenty times its text (`[{},{},...]`), so about 6 MiB for the values, 3 MiB each for variants and rules.
_remembered_value = _remembered(_value, 256, 1024)
_remembered_variants = _remembered(_variants, 1024, 256)
_remembered_rules = _remembered(_rules, 1024, 256)
