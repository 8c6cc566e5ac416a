"""The seed's model: who is asking, which Redis keys hold their flags, and the rule that combines them.

Keys are `[prefix]global:{positive,negative}`, `[prefix]version:<v>:…`, `[prefix]group:<g>:…` and
`[prefix]user:<u>:…`, sets of feature names; and the rollout hashes `[prefix]global:rollout`,
`[prefix]version:<v>:rollout` and `[prefix]group:<g>:rollout` (field: feature, value: a percentage).
Typed flags add the `[prefix]<entity>:values` hashes (field: feature, value: its value there as canonical JSON)
and the `[prefix]global:variants` hash (field: feature, value: its variants), and the registry
`[prefix]features`, the set of every feature the write path has written.
Identifiers are used verbatim: every key ends in a fixed `:positive`, `:negative`, `:rollout`, `:values` or
`:variants` and each level starts with a distinct word, so no identifier, whatever colons it holds, can name
another entity's key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
import time
import zlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from flipper.core import rules as targeting
from flipper.core.rules import Rule
from flipper.core.rules import canonical_json as canonical_json  # where values, variants and rules agree on it

POSITIVE = "positive"
NEGATIVE = "negative"
ROLLOUT = "rollout"
REVISION = "revision"  # a string integer every write through Flipper INCRs (absent: 0)
# Typed flags (docs/how-it-works.md, Values and variants): `<entity>:values` hashes (field: feature, value: the
# feature's value there, canonical JSON), the `global:variants` hash (field: feature, value: its variants, a
# canonical JSON array of {"name", "weight", "value"}), and `features`, the set of every feature the write
# path has written (what makes a flag known beyond the keys a caller reads).
VALUES = "values"
VARIANTS = "variants"
REGISTRY = "features"
MAX_VALUE_BYTES = 4096  # a value's canonical JSON, in UTF-8 bytes
# `global:rules` (field: feature, value: its targeting rules as `rules.as_data` writes them, canonical JSON).
RULES = "rules"
HASH_KINDS = (ROLLOUT, VALUES, VARIANTS, RULES)  # keys read with HGETALL and written field by field


def is_hash_key(key: str) -> bool:
    """Whether `key` is a hash (a rollout, values or variants), not a set: what the scripts read and write it with."""
    return key.rpartition(":")[2] in HASH_KINDS


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


def variant_bucket(feature: str, user: str) -> int:
    """The user's variant bucket for the feature, 0 to 99,999: the first 8 bytes of the SHA-256 of the UTF-8
    bytes of the feature name, a NUL and the user id, read as a big-endian unsigned integer, modulo 100,000.

    Not a CRC-32 like `bucket`: CRC-32 is affine, so the CRC of `feature + separator + user` differs from the
    rollout's `crc32(feature + user)` by a constant XOR for every user id of a given length, and a split
    inside a rollout would be skewed (measured: a 10 x 10 grid of the two buckets over 100,000 users had cells
    at 18 % and 182 % of their share). SHA-256 is independent of the rollout bucket and computable anywhere.
    """
    digest = hashlib.sha256(f"{feature}\x00{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclasses.dataclass(frozen=True, slots=True)
class Value:
    """A feature's value: the canonical JSON `text` the store holds, and `data`, parsed once when read.

    Equal when their texts are: Python finds 1 == 1.0, but one is an integer and the other a float to a client.
    """

    text: str
    data: Any = dataclasses.field(compare=False)

    def __sizeof__(self) -> int:  # what the cache counts: the text, and everything the parsed data holds
        return object.__sizeof__(self) + sys.getsizeof(self.text) + targeting.deep_size(self.data)


@dataclasses.dataclass(frozen=True, slots=True)
class Variant:
    """One of a feature's variants: its name, its weight in thousandths of a percent, and its value."""

    name: str
    weight: int
    value: Value

    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + len(self.name) + self.value.__sizeof__()


def assigned(variants: Sequence[Variant], user_bucket: int | None) -> Variant:
    """The variant whose range holds the user's variant bucket: ranges laid end to end in the variants' order
    (the first `[0, w1)`, the next `[w1, w1 + w2)`…), so a change of weights moves only the buckets whose
    range changed owner. A caller without a user gets the first variant."""
    if user_bucket is None:
        return variants[0]
    end = 0
    for variant in variants[:-1]:
        end += variant.weight
        if user_bucket < end:
            return variant
    return variants[-1]  # the weights sum to BUCKETS (`replies` checks): the last range ends the line


# A caller's attribute, as the targeting rules compare it: text, or a number (never a boolean: no operator
# compares one, so `names.attributes` leaves booleans out, and True can never pass for 1 in a cache key).
Attribute = str | int | float


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """The caller: global always applies; version, groups and user when given; and its attributes for the
    targeting rules, as (name, value) pairs sorted by name (hashable: the context is a cache key)."""

    version: str | None = None
    groups: tuple[str, ...] = ()
    user: str | None = None
    attributes: tuple[tuple[str, Attribute], ...] = ()

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
    one of HASH_KINDS)."""
    return f"{prefix}{REVISION}"


def usage_keys(prefix: str = "") -> list[str]:
    """Where usage is counted (lua/usage.lua): evaluations per feature, last seen per feature, and when
    recording began. No entity's key can be one (those start with an entity's word)."""
    return [f"{prefix}usage:evaluations", f"{prefix}usage:seen", f"{prefix}usage:since"]


def value_keys(context: Context, prefix: str = "") -> list[str]:
    """The values hashes the context reads, one per entity, in `entities()` order."""
    return [f"{prefix}{entity}:{VALUES}" for entity in context.entities()]


def variants_key(prefix: str = "") -> str:
    """The variants hash: variants are global (a caller's share of a split does not depend on its entities)."""
    return f"{prefix}global:{VARIANTS}"


def rules_key(prefix: str = "") -> str:
    """The rules hash: rules are global (they target by what a caller is, whichever entities it has)."""
    return f"{prefix}global:{RULES}"


def registry_key(prefix: str = "") -> str:
    """The registry: every feature written through the write path (what makes a flag known everywhere)."""
    return f"{prefix}{REGISTRY}"


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
    """What one script call read for a caller: the members of each of `flag_keys(context)`, the percentages,
    in thousandths, of each of `rollout_keys(context)`, the values of each of `value_keys(context)`, in
    those orders; the variants per feature; and the registry when it was read (None when not)."""

    context: Context
    members: Sequence[Collection[str]]
    rollouts: Sequence[Mapping[str, int]] = ()
    values: Sequence[Mapping[str, Value]] = ()
    variants: Mapping[str, Sequence[Variant]] = dataclasses.field(default_factory=dict)
    registry: Collection[str] | None = None
    # Each feature's targeting rules (`rules.parse_rules`, parsed once per read), and the evaluation's time in
    # seconds since the epoch: what the attribute `now` of a rule is.
    rules: Mapping[str, Sequence[Rule]] = dataclasses.field(default_factory=dict)
    now: float = dataclasses.field(default_factory=time.time, compare=False)
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
    """The rule: the union of the positive sets, the features rolled out to the user and the features one of
    whose targeting rules matches the caller, minus the union of the negative sets; sorted by code point.

    A disable at any level beats an enable, a rollout or a targeting rule at any level.
    """
    members = snapshot.members
    half = len(members) // 2
    enabled = set().union(*members[:half])
    enabled.update(rolled_out(snapshot))
    enabled.update(targeted(snapshot))
    enabled.difference_update(*members[half:])
    return sorted(enabled)


def targeted(snapshot: Snapshot) -> set[str]:
    """The features one of whose targeting rules matches the caller's attributes at the snapshot's time."""
    if not snapshot.rules:
        return set()
    attributes, now = dict(snapshot.context.attributes), snapshot.now
    return {
        feature
        for feature, rules in snapshot.rules.items()
        if targeting.first_match(rules, attributes, now) is not None
    }


def valid_until(snapshot: Snapshot, feature: str | None = None) -> float | None:
    """Until when (seconds since the epoch) an answer computed from `snapshot` stays what it is, as far as
    time goes: the first boundary after the snapshot's time of the rules it consulted (one feature's, or
    every feature's); None when no condition on `now` is ahead."""
    consulted = snapshot.rules.values() if feature is None else [snapshot.rules.get(feature, ())]
    ahead = [moment for rules in consulted if (moment := targeting.next_boundary(rules, snapshot.now)) is not None]
    return min(ahead, default=None)


# Why a flag has its value, in OpenFeature's words: only global sets name it, a version, group or user
# set names it, a rollout alone decided it, or nothing of the caller's names it (so it is simply off: the
# store has no flag registry).
STATIC = "STATIC"
TARGETING_MATCH = "TARGETING_MATCH"
SPLIT = "SPLIT"
DEFAULT = "DEFAULT"


@dataclasses.dataclass(frozen=True, slots=True)
class Evaluation:
    """One flag for one caller: whether it is on, the reason, the keys that enabled and disabled it (a rollout
    key enables it when it takes the user), every rollout of the caller's naming it as (key, thousandths), and
    the user's bucket for it (None without a user).

    A typed flag (one of the caller's values hashes, or the variants hash, names it) also has, when on, the
    value served (`value`, parsed JSON), the key it came from (`value_from`) and the variant's name when the
    variants gave it; and the user's variant bucket whenever it has variants and the caller a user.

    A feature with targeting rules also has them (`rules`), the 1-based number of the first that matched
    (`rule`, None for none), and what they were checked against (the caller's `attributes` and the time
    `now`): what `explanation` says each condition's outcome was from. A rule's value makes a flag typed.
    """

    feature: str
    enabled: bool
    reason: str
    enabled_by: tuple[str, ...] = ()
    disabled_by: tuple[str, ...] = ()
    rollouts: tuple[tuple[str, int], ...] = ()
    bucket: int | None = None
    typed: bool = False
    value: Any = None
    value_from: str | None = None
    variant: str | None = None
    variant_bucket: int | None = None
    rules: tuple[Rule, ...] = ()
    rule: int | None = None
    attributes: tuple[tuple[str, Attribute], ...] = ()
    now: float | None = None

    def explanation(self) -> dict[str, Any]:
        """`explain=true`'s fields: the keys that enabled and disabled the feature, each rollout of the
        caller's naming it with its percentage, and the user's bucket (0 to 99,999; a rollout takes the user
        when the bucket is below 1000 times its percentage); for a typed flag also the value served, where
        it came from, the variant and the variant bucket; for a feature with targeting rules, the rule that
        matched and each rule's conditions with their outcome (a boolean flag without rules is explained as
        it always was)."""
        explained: dict[str, Any] = {
            "enabled_by": list(self.enabled_by),
            "disabled_by": list(self.disabled_by),
            "rollouts": [{"key": key, "percentage": thousandths / 1000} for key, thousandths in self.rollouts],
            "bucket": self.bucket,
        }
        if self.typed:
            explained.update(
                value=self.value, value_from=self.value_from, variant=self.variant, variant_bucket=self.variant_bucket
            )
        if self.rules:
            explained.update(rule=self.rule, rules=self._rules_explained())
        return explained

    def _rules_explained(self) -> list[dict[str, Any]]:
        attributes, now = dict(self.attributes), self.now or 0.0
        explained = []
        for number, rule in enumerate(self.rules, start=1):
            conditions = [{**c.as_data(), "holds": c.holds(attributes, now)} for c in rule.when]
            entry = {"rule": number, "words": targeting.describe(rule), "matched": number == self.rule}
            explained.append({**entry, "conditions": conditions})
        return explained


def _reason(sets: list[str], rollouts: list[str]) -> str:
    if not sets:
        return SPLIT if rollouts else DEFAULT  # on or off, the user's bucket alone decided
    return TARGETING_MATCH if any(not key.startswith("global:") for key in sets) else STATIC


# What the caller's keys say of one feature: the positive and negative sets naming it, its rollouts as
# (key, thousandths), its values as {values key: value}, its variants and its rules (empty: none).
_Naming = tuple[list[str], list[str], list[tuple[str, int]], dict[str, Value], Sequence[Variant], Sequence[Rule]]


def _new_naming() -> _Naming:
    return [], [], [], {}, (), ()


def _value_order(context: Context) -> list[str]:
    """The values keys (unprefixed) in the order they win, most specific first: the user's, the groups' by
    code point (when the caller's groups disagree, the group whose name sorts first wins, whatever order they
    were given in), the version's. The variants come next, then the global value: both are global, and a
    split is what variants are for."""
    entities = [] if context.user is None else [f"user:{context.user}"]
    entities += [f"group:{group}" for group in sorted(context.groups)]
    entities += [] if context.version is None else [f"version:{context.version}"]
    return [f"{entity}:{VALUES}" for entity in entities]


_GLOBAL_VALUES = f"global:{VALUES}"


def _evaluation(feature: str, context: Context, now: float, order: list[str], naming: _Naming) -> Evaluation:
    positives, negatives, rollouts, values, variants, rules = naming
    user = context.user
    user_bucket = None if user is None else bucket(feature, user)
    taken = [key for key, thousandths in rollouts if user_bucket is not None and user_bucket < thousandths]
    match = targeting.first_match(rules, dict(context.attributes), now) if rules else None
    enabled = bool(positives or taken or match is not None) and not negatives
    if enabled and match is not None:
        reason = TARGETING_MATCH  # a rule turned it on (or would have, had a set not already)
    else:
        reason = _reason(positives + negatives, [key for key, _ in rollouts])
    evaluation = Evaluation(
        feature,
        enabled=enabled,
        reason=reason,
        enabled_by=(*positives, *taken),
        disabled_by=tuple(negatives),
        rollouts=tuple(rollouts),
        bucket=user_bucket,
    )
    if rules:
        number = None if match is None else match + 1
        evaluation = dataclasses.replace(
            evaluation, rules=tuple(rules), rule=number, attributes=context.attributes, now=now
        )
    if not values and not variants and not any(rule.has_value for rule in rules):
        return evaluation  # a boolean flag, as it always was
    split_bucket = None if user is None or not variants else variant_bucket(feature, user)
    typed = dataclasses.replace(evaluation, typed=True, variant_bucket=split_bucket)
    if not enabled:
        return typed  # off: no value (OFREP answers DISABLED, and the client's code default applies)
    if match is not None and rules[match].has_value:  # the first matching rule's value comes before any other
        return dataclasses.replace(typed, value=rules[match].value, value_from=rules_key())
    if not values and not variants:
        return evaluation  # on by a set or a rollout, and only rules that did not match carry values: true
    source = next((key for key in order if key in values), None)
    if source is None and variants:
        chosen = assigned(variants, split_bucket)
        return dataclasses.replace(
            typed, reason=SPLIT, value=chosen.value.data, value_from=variants_key(), variant=chosen.name
        )
    source = source or _GLOBAL_VALUES  # values hold one of the caller's keys: if none of `order`, the global one
    return dataclasses.replace(typed, value=values[source].data, value_from=source)


def evaluate_all(snapshot: Snapshot) -> list[Evaluation]:
    """Every feature named in any of the caller's sets, rollouts, values or variants, or with targeting rules,
    on or off, sorted by code point.

    Keys are reported without the prefix.
    """
    context = snapshot.context
    keys = flag_keys(context)
    half = len(keys) // 2
    naming: dict[str, _Naming] = {}
    for index, (key, names) in enumerate(zip(keys, snapshot.members, strict=True)):
        for feature in names:
            naming.setdefault(feature, _new_naming())[index >= half].append(key)
    for key, percentages in zip(rollout_keys(context), snapshot.rollouts, strict=True):
        for feature, thousandths in percentages.items():
            naming.setdefault(feature, _new_naming())[2].append((key, thousandths))
    # Not strict: a snapshot made without values (the rule alone: tests, the benchmark's answers) has none.
    for key, values in zip(value_keys(context), snapshot.values, strict=False):
        for feature, value in values.items():
            naming.setdefault(feature, _new_naming())[3][key] = value
    for feature, variants in snapshot.variants.items():
        positives, negatives, rollouts, values, _, _ = naming.get(feature, _new_naming())
        naming[feature] = (positives, negatives, rollouts, values, variants, ())
    for feature, rules in snapshot.rules.items():
        positives, negatives, rollouts, values, variants, _ = naming.get(feature, _new_naming())
        naming[feature] = (positives, negatives, rollouts, values, variants, rules)
    order, now = _value_order(context), snapshot.now
    return [_evaluation(feature, context, now, order, naming[feature]) for feature in sorted(naming)]


def evaluate_feature(feature: str, snapshot: Snapshot) -> Evaluation:
    """One feature, from the same snapshot; off with reason DEFAULT when nothing of the caller's names it."""
    only = Snapshot(
        snapshot.context,
        [(feature,) if feature in names else () for names in snapshot.members],
        [{feature: percentages[feature]} if feature in percentages else {} for percentages in snapshot.rollouts],
        [{feature: values[feature]} if feature in values else {} for values in snapshot.values],
        {feature: snapshot.variants[feature]} if feature in snapshot.variants else {},
        rules={feature: snapshot.rules[feature]} if feature in snapshot.rules else {},
        now=snapshot.now,
    )
    user = snapshot.context.user
    unnamed = Evaluation(feature, enabled=False, reason=DEFAULT, bucket=None if user is None else bucket(feature, user))
    return next(iter(evaluate_all(only)), unnamed)


def unknown(feature: str, snapshot: Snapshot) -> bool:
    """Whether the store does not know `feature`: the snapshot read the registry, which holds features but not
    this one, and none of the caller's keys names it. A store without a registry (never written through the
    write path: only the seed's redis-cli writes) cannot tell an unknown flag from one nobody here has, so
    there every flag is known, as before; raw writes are known where they apply to the caller."""
    registry = snapshot.registry
    if not registry or feature in registry:
        return False
    return not (
        any(feature in names for names in snapshot.members)
        or any(feature in percentages for percentages in snapshot.rollouts)
        or any(feature in values for values in snapshot.values)
        or feature in snapshot.variants
        or feature in snapshot.rules
    )
