"""The seed's model: who is asking, which Redis keys hold their flags, and the rule that combines them.

Keys are `[prefix]global:{positive,negative}`, `[prefix]version:<v>:…`, `[prefix]group:<g>:…` and
`[prefix]user:<u>:…`, sets of feature names; and the rollout hashes `[prefix]global:rollout`,
`[prefix]version:<v>:rollout` and `[prefix]group:<g>:rollout` (field: feature, value: a percentage).
Identifiers are used verbatim: every key ends in a fixed `:positive`, `:negative` or `:rollout` and each
level starts with a distinct word, so no identifier, whatever colons it holds, can name another entity's key.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any

POSITIVE = "positive"
NEGATIVE = "negative"
ROLLOUT = "rollout"
REVISION = "revision"  # a string integer every write through Flipper INCRs (absent: 0)

# A percentage as written in a rollout hash, the CLI or an export: digits, optionally a dot and one to three
# more; ASCII only (no sign, exponent, blank, nan or inf). At most 100, checked after.
_PERCENTAGE = re.compile(r"([0-9]+)(?:\.([0-9]{1,3}))?")
BUCKETS = 100_000  # a percentage in thousandths: 0 takes nobody, BUCKETS everybody


def parse_percentage(raw: str) -> int | None:
    """`raw` as a percentage in thousandths ("97.601" -> 97601, "100" -> 100000), or None unless it is a
    decimal number from 0 to 100 with at most three decimals."""
    match = _PERCENTAGE.fullmatch(raw)
    if match is None:
        return None
    whole, decimals = match.groups()
    thousandths = int(whole) * 1000 + int((decimals or "").ljust(3, "0"))
    return thousandths if thousandths <= BUCKETS else None


def bucket(feature: str, user: str) -> int:
    """The user's bucket for the feature, 0 to 99,999: Flipper for Ruby's percentage-of-actors rule, the CRC-32
    of the UTF-8 bytes of the feature name immediately followed by the user id. In iff bucket < thousandths."""
    return zlib.crc32((feature + user).encode("utf-8")) % BUCKETS


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
    """All sets the context reads: its positive keys, then its negative keys, in the same entity order."""
    entities = context.entities()
    return [f"{prefix}{entity}:{polarity}" for polarity in (POSITIVE, NEGATIVE) for entity in entities]


def revision_key(prefix: str = "") -> str:
    """The store's revision: `[prefix]revision`, which no entity's key can be (those end in a polarity or
    `:rollout`)."""
    return f"{prefix}{REVISION}"


def usage_keys(prefix: str = "") -> list[str]:
    """Where usage is counted (lua/usage.lua): evaluations per feature, last seen per feature, and when
    recording began. No entity's key can be one (those start with an entity's word)."""
    return [f"{prefix}usage:evaluations", f"{prefix}usage:seen", f"{prefix}usage:since"]


def is_rollout_key(key: str) -> bool:
    """Whether `key` is a rollout hash (it ends in `:rollout`), not a set: what the script reads it with."""
    return key.endswith(f":{ROLLOUT}")


def rollout_keys(context: Context, prefix: str = "") -> list[str]:
    """The rollout hashes the context reads: global, version, groups. None without a user, whom no rollout
    takes; and there is no user-level rollout (a user is in or out already)."""
    if context.user is None:
        return []
    return [f"{prefix}{entity}:{ROLLOUT}" for entity in context.entities()[:-1]]


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """What one script call read for a caller: the members of each of `flag_keys(context)` and the
    percentages, in thousandths, of each of `rollout_keys(context)`, in those orders."""

    context: Context
    members: Sequence[Collection[str]]
    rollouts: Sequence[Mapping[str, int]] = ()
    # What the snapshot was built from in the store's cache (its entries, compared by identity); () uncached.
    stamp: tuple[object, ...] = dataclasses.field(default=(), compare=False)


def rolled_out(snapshot: Snapshot) -> set[str]:
    """The features whose rollout at one of the caller's entities takes the caller's user.

    The bucket is the same at every entity, so the largest percentage decides: one CRC per feature.
    """
    user = snapshot.context.user
    if user is None or not snapshot.rollouts:
        return set()
    largest: dict[str, int] = {}
    for percentages in snapshot.rollouts:
        for feature, thousandths in percentages.items():
            if thousandths > largest.get(feature, 0):
                largest[feature] = thousandths
    return {feature for feature, thousandths in largest.items() if bucket(feature, user) < thousandths}


def enabled_features(snapshot: Snapshot) -> list[str]:
    """The rule: the union of the positive sets and the features rolled out to the user, minus the union of
    the negative sets; sorted by code point.

    A disable at any level beats an enable or a rollout at any level.
    """
    members = snapshot.members
    half = len(members) // 2
    enabled = set().union(*members[:half])
    enabled.update(rolled_out(snapshot))
    enabled.difference_update(*members[half:])
    return sorted(enabled)


# Why a flag has its value, in OpenFeature's words: only global sets name it, a version, group or user
# set names it, a rollout alone decided it, or nothing of the caller's names it (so it is simply off: the
# store has no flag registry).
STATIC = "STATIC"
TARGETING_MATCH = "TARGETING_MATCH"
SPLIT = "SPLIT"
DEFAULT = "DEFAULT"


@dataclasses.dataclass(frozen=True, slots=True)
class Evaluation:
    """One flag for one caller: its value, the reason, the keys that enabled and disabled it (a rollout key
    enables it when it takes the user), every rollout of the caller's naming it as (key, thousandths), and
    the user's bucket for it (None without a user)."""

    feature: str
    enabled: bool
    reason: str
    enabled_by: tuple[str, ...] = ()
    disabled_by: tuple[str, ...] = ()
    rollouts: tuple[tuple[str, int], ...] = ()
    bucket: int | None = None

    def explanation(self) -> dict[str, Any]:
        """`explain=true`'s fields: the keys that enabled and disabled the feature, each rollout of the
        caller's naming it with its percentage, and the user's bucket (0 to 99,999; a rollout takes the user
        when the bucket is below 1000 times its percentage)."""
        return {
            "enabled_by": list(self.enabled_by),
            "disabled_by": list(self.disabled_by),
            "rollouts": [{"key": key, "percentage": thousandths / 1000} for key, thousandths in self.rollouts],
            "bucket": self.bucket,
        }


def _reason(sets: list[str], rollouts: list[str]) -> str:
    if not sets:
        return SPLIT if rollouts else DEFAULT  # on or off, the user's bucket alone decided
    return TARGETING_MATCH if any(not key.startswith("global:") for key in sets) else STATIC


def _evaluation(
    feature: str, user: str | None, naming: tuple[list[str], list[str], list[tuple[str, int]]]
) -> Evaluation:
    positives, negatives, rollouts = naming
    user_bucket = None if user is None else bucket(feature, user)
    taken = [key for key, thousandths in rollouts if user_bucket is not None and user_bucket < thousandths]
    enabled = bool(positives or taken) and not negatives
    return Evaluation(
        feature,
        enabled=enabled,
        reason=_reason(positives + negatives, [key for key, _ in rollouts]),
        enabled_by=(*positives, *taken),
        disabled_by=tuple(negatives),
        rollouts=tuple(rollouts),
        bucket=user_bucket,
    )


def evaluate_all(snapshot: Snapshot) -> list[Evaluation]:
    """Every feature named in any of the caller's sets or rollouts, on or off, sorted by code point.

    Keys are reported without the prefix.
    """
    context = snapshot.context
    keys = flag_keys(context)
    half = len(keys) // 2
    naming: dict[str, tuple[list[str], list[str], list[tuple[str, int]]]] = {}
    for index, (key, names) in enumerate(zip(keys, snapshot.members, strict=True)):
        for feature in names:
            naming.setdefault(feature, ([], [], []))[index >= half].append(key)
    for key, percentages in zip(rollout_keys(context), snapshot.rollouts, strict=True):
        for feature, thousandths in percentages.items():
            naming.setdefault(feature, ([], [], []))[2].append((key, thousandths))
    return [_evaluation(feature, context.user, naming[feature]) for feature in sorted(naming)]


def evaluate_feature(feature: str, snapshot: Snapshot) -> Evaluation:
    """One feature, from the same snapshot; off with reason DEFAULT when nothing of the caller's names it."""
    only = Snapshot(
        snapshot.context,
        [(feature,) if feature in names else () for names in snapshot.members],
        [{feature: percentages[feature]} if feature in percentages else {} for percentages in snapshot.rollouts],
    )
    user = snapshot.context.user
    unnamed = Evaluation(feature, enabled=False, reason=DEFAULT, bucket=None if user is None else bucket(feature, user))
    return next(iter(evaluate_all(only)), unnamed)
