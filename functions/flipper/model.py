"""The seed's model: who is asking, which Redis keys hold their flags, and the rule that combines them.

Keys are `[prefix]global:{positive,negative}`, `[prefix]version:<v>:…`, `[prefix]group:<g>:…` and
`[prefix]user:<u>:…`. Identifiers are used verbatim: every key ends in a fixed `:positive` or `:negative`
and each level starts with a distinct word, so no identifier, whatever colons it holds, can name another
entity's key.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Sequence

POSITIVE = "positive"
NEGATIVE = "negative"


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """The caller: global always applies; version, groups and user when given."""

    version: str | None = None
    groups: tuple[str, ...] = ()
    user: str | None = None

    def entities(self) -> list[str]:
        """Every entity whose sets apply, broadest first: `global`, `version:<v>`, `group:<g>`…, `user:<u>`."""
        entities = ["global"]
        if self.version is not None:
            entities.append(f"version:{self.version}")
        entities.extend(f"group:{group}" for group in self.groups)
        if self.user is not None:
            entities.append(f"user:{self.user}")
        return entities


def flag_keys(context: Context, prefix: str = "") -> list[str]:
    """All keys the context reads: its positive keys, then its negative keys, in the same entity order."""
    entities = context.entities()
    return [f"{prefix}{entity}:{polarity}" for polarity in (POSITIVE, NEGATIVE) for entity in entities]


def enabled_features(members: Sequence[Iterable[str]]) -> list[str]:
    """Apply the rule to the members of `flag_keys(...)`, in that order: positives minus negatives, sorted.

    A disable at any level beats an enable at any level. Sorting is by code point.
    """
    half = len(members) // 2
    enabled = set().union(*members[:half])
    enabled.difference_update(*members[half:])
    return sorted(enabled)


# Why a flag has its value, in OpenFeature's words: only global sets name it, a version, group or user
# set names it, or no set of the caller's names it (so it is simply off: the store has no flag registry).
STATIC = "STATIC"
TARGETING_MATCH = "TARGETING_MATCH"
DEFAULT = "DEFAULT"


@dataclasses.dataclass(frozen=True, slots=True)
class Evaluation:
    """One flag for one caller: its value, the reason, and the keys that enabled and disabled it."""

    feature: str
    enabled: bool
    reason: str
    enabled_by: tuple[str, ...] = ()
    disabled_by: tuple[str, ...] = ()


def _evaluation(feature: str, enabled_by: list[str], disabled_by: list[str]) -> Evaluation:
    targeted = any(not key.startswith("global:") for key in enabled_by + disabled_by)
    return Evaluation(
        feature,
        enabled=bool(enabled_by) and not disabled_by,
        reason=TARGETING_MATCH if targeted else STATIC,
        enabled_by=tuple(enabled_by),
        disabled_by=tuple(disabled_by),
    )


def evaluate_all(context: Context, members: Sequence[Collection[str]]) -> list[Evaluation]:
    """Every feature named in any of the context's sets, on or off, sorted by code point.

    `members` are those of `flag_keys(context)`, in that order; keys are reported without the prefix.
    """
    keys = flag_keys(context)
    half = len(keys) // 2
    naming: dict[str, tuple[list[str], list[str]]] = {}
    for index, (key, names) in enumerate(zip(keys, members, strict=True)):
        for feature in names:
            naming.setdefault(feature, ([], []))[index >= half].append(key)
    return [_evaluation(feature, *naming[feature]) for feature in sorted(naming)]


def evaluate_feature(feature: str, context: Context, members: Sequence[Collection[str]]) -> Evaluation:
    """One feature, from the same members; off with reason DEFAULT when no set of the context names it."""
    only = [(feature,) if feature in names else () for names in members]
    return next(iter(evaluate_all(context, only)), Evaluation(feature, enabled=False, reason=DEFAULT))


_PERCENTAGE = re.compile(r"([0-9]{1,3})(?:\.([0-9]{1,3}))?")


def parse_percentage(raw: str) -> int | None:
    """A rollout percentage (`25`, `97.601`) in thousandths, or None unless it is a plain decimal from 0 to
    100 with at most three decimals (no sign, exponent or blank)."""
    match = _PERCENTAGE.fullmatch(raw)
    if match is None:
        return None
    thousandths = int(match[1]) * 1000 + int((match[2] or "").ljust(3, "0"))
    return thousandths if thousandths <= 100_000 else None
