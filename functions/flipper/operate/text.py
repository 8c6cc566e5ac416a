"""Flags in words for an operator: a change described, and any name made safe to print."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from flipper.core import rules
from flipper.core.memberships import FlagError
from flipper.core.model import canonical_json
from flipper.operate.admin import UNVERIFIED_SUFFIX


def change_text(change: list[str]) -> str:
    """One membership change (`[key, feature, before, after]`, as the write path reports it) in words."""
    key, feature, before, after = change
    where, _, kind = key.rpartition(":")
    if kind == "rollout":
        return f"{feature} rollout at {where}: {before or '-'} → {after or '-'}"
    if kind == "values":
        return f"{feature} value at {where}: {before or '-'} → {after or '-'}"
    if kind == "variants":
        return f"{feature} variants: {variants_text(before)} → {variants_text(after)}"
    if kind == "rules":
        return f"{feature} rules: {rules_text(before)} → {rules_text(after)}"
    if kind == "features":  # the registry: what the API knows (a flag it does not is FLAG_NOT_FOUND)
        return f"{feature} known as a flag" if after else f"{feature} no longer known as a flag"
    word = "enabled" if kind == "positive" else "disabled"
    return f"{feature} {word} at {where}" if after else f"{feature} no longer {word} at {where}"


# NAME=WEIGHT:VALUE, VALUE being JSON (which may hold `=` and `:`): the name ends at the first `=` followed by
# a weight and a `:`.
_VARIANT = re.compile(r"(.+?)=([^=:]*):(.*)", re.DOTALL)


def parse_json(what: str, text: str) -> Any:
    """`text` as JSON, or a FlagError naming `what`: an operator's value, typed at a terminal or in a form."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise FlagError(f"{what} {text!r} is not JSON ({exc.msg}): a string is quoted, as '\"blue\"'") from None


def parse_variants(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Variants written `NAME=WEIGHT:VALUE` (`classic=50:"classic"`) as the operation takes them, in their order
    (checked there); a FlagError names an item that is not so, or a name given twice."""
    variants: dict[str, dict[str, Any]] = {}
    for text in items:
        match = _VARIANT.fullmatch(text)
        if match is None:
            raise FlagError(f"variant {text!r} is not NAME=WEIGHT:VALUE, as classic=50:'\"classic\"'")
        name, weight, value = match.groups()
        if name in variants:
            raise FlagError(f"variant {name!r} is given twice")
        variants[name] = {"weight": weight, "value": parse_json(f"variant {name!r}'s VALUE", value)}
    return variants


def variant_lines(variants: dict[str, dict[str, Any]]) -> list[str]:
    """Variants as `parse_variants` reads them back, one `NAME=WEIGHT:VALUE` each, the value as canonical JSON."""
    return [f"{name}={variant['weight']}:{canonical_json(variant['value'])}" for name, variant in variants.items()]


def variants_text(stored: str) -> str:
    """Stored variants (a JSON array of {name, weight, value}) as `flipper variants` takes them:
    `classic=50:"classic", one_page=50:"one_page"`; "-" for none, and text that is not such an array as is."""
    if not stored:
        return "-"
    try:
        return ", ".join(variant_lines({v["name"]: v for v in json.loads(stored)}))
    except (ValueError, TypeError, KeyError):  # written by hand: shown as it is
        return stored


def parse_condition(text: str) -> dict[str, Any]:
    """A condition written `ATTRIBUTE OPERATOR VALUE[,VALUE...]` (`plan in pro,enterprise`) as the flags file
    holds it, checked when the rule is (rules.parse_rules names what is wrong); a number operator's values as
    JSON numbers, since the rules hold numbers, not their text. A FlagError when it is not three parts."""
    parts = text.split(maxsplit=2)
    if len(parts) != 3:
        raise FlagError(f"condition {text!r} is not ATTRIBUTE OPERATOR VALUE[,VALUE...], as 'plan in pro,enterprise'")
    attribute, operator, listed = parts
    values: list[Any] = listed.split(",")
    if rules.OPERATORS.get(operator) == rules.NUMBER:
        values = [_number(value) for value in values]
    return {"attribute": attribute, "operator": operator, "values": values}


def _number(text: str) -> Any:
    """`text` as the JSON number it spells, or as is (for parse_rules to refuse, naming it)."""
    try:
        number = json.loads(text)
    except ValueError:
        return text
    return number if isinstance(number, int | float) and not isinstance(number, bool) else text


def rule_lines(raw: object) -> list[str]:
    """A feature's rules (as the flags file and the store hold them), one in words each, numbered from 1 as
    `flipper rule remove` counts them, a rule's value after it: `1. plan is pro, and country is not US → "gold"`."""
    parsed = rules.parse_rules(raw) if raw else ()  # none: no lines (parse_rules refuses an empty list)
    return [
        f"{number}. {rules.describe(rule)}" + (f" → {canonical_json(rule.value)}" if rule.has_value else "")
        for number, rule in enumerate(parsed, start=1)
    ]


def rules_text(stored: str) -> str:
    """Stored rules (canonical JSON) in words on one line, "-" for none; text that does not parse as is."""
    if not stored:
        return "-"
    try:
        return "; ".join(rule_lines(json.loads(stored)))
    except ValueError:  # not JSON, or not rules (RuleError is one): written by hand, shown as it is
        return stored


def shown(text: str) -> str:
    """`text` with what a terminal would act on (escape sequences, carriage returns, line breaks) written as
    escapes, so that it prints as one line: a flag name is anyone's text, and is shown to other operators."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    # U+DC80 to U+DCFF is how Python decodes a byte that is not UTF-8 (argv, surrogateescape): shown as that byte.
    if "\udc80" <= c <= "\udcff":
        return f"\\x{ord(c) - 0xDC00:02x}"
    return c.encode("unicode_escape").decode()


def who(audit: Mapping[str, str]) -> str:
    """Who made a change, for people: the actor the path proves, or the claim where only a claim exists (the
    actor then says the caller is unverified). A proven actor is never hidden behind what the caller claims."""
    claimed, actor = audit.get("claimed_by"), audit["actor"]
    if not claimed:
        return actor
    return f"{claimed} (claimed)" if actor.endswith(UNVERIFIED_SUFFIX) else f"{actor} (claims {claimed})"
