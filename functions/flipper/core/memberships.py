"""The operator's view of the flags: entities, the whole state as memberships, and plans between states.

A membership is one fact Redis holds: `(key, feature) -> value`, with the key unprefixed. A set key
(`version:v1:positive`) holds a feature or not (value "1"); a rollout hash (`group:beta:rollout`) holds a
percentage for it. Absent memberships are not stored: "" is absent everywhere, as in lua/write.lua.
Flags written with plain `redis-cli SADD` are memberships like any other.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from flipper.core import names
from flipper.core.model import NEGATIVE, POSITIVE, ROLLOUT, is_rollout_key, parse_percentage
from flipper.core.settings import Settings
from flipper.core.store import Store, Unreadable

ENTITY_KINDS = ("version", "group", "user")
# The file's names for a feature's three kinds of membership, and the key suffix each is held under.
FIELDS = {"enabled": POSITIVE, "disabled": NEGATIVE, "rollout": ROLLOUT}
FILE_FORMAT = 1

Memberships = dict[tuple[str, str], str]

_FLAG_KEY = re.compile(r"(global|(?:version|group|user):.+):(positive|negative|rollout)", re.DOTALL)


class FlagError(ValueError):
    """Operator input that cannot be applied; the message is one line naming the problem, and `at` where it is
    in a flags document (its keys and list indexes from the top), so that the flags file can name the line."""

    def __init__(self, message: str, at: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.at = at


def check_name(what: str, value: object, settings: Settings) -> str:
    """`value` if the read API would accept it as a name; the same rules on the write path and the read path."""
    if not isinstance(value, str):
        raise FlagError(f"{what} must be a string, not {type(value).__name__}")
    try:
        return names.check_name(what, value, settings)
    except names.InvalidName as exc:
        raise FlagError(str(exc)) from None


def entity(kind: str, name: str | None, settings: Settings) -> str:
    """The entity `global`, `version:<v>`, `group:<g>` or `user:<u>`, its identifier checked."""
    if kind == "global":
        return kind
    if kind not in ENTITY_KINDS:
        raise FlagError(f"entity kind {kind!r} is not global, version, group or user")
    return f"{kind}:{check_name(f'{kind} name', name, settings)}"


def parse_entity(text: object, settings: Settings) -> str:
    """`text` as an entity (`global`, `version:v1`, ...), refused with a message naming it otherwise."""
    if not isinstance(text, str):
        raise FlagError(f"entity {text!r} must be a string such as global, version:v1, group:beta or user:42")
    kind, _, name = text.partition(":")
    if kind not in ("global", *ENTITY_KINDS) or (kind == "global") != (text == "global"):
        raise FlagError(f"entity {text!r} is not global, version:<v>, group:<g> or user:<u>")
    return entity(kind, name, settings)


def percentage(value: object) -> str:
    """A rollout percentage in its canonical text (`25`, `97.601`), from a number or text: 0 to 100, at most
    three decimals."""
    text = repr(value) if isinstance(value, float) else str(value)
    thousandths = None if isinstance(value, bool) else parse_percentage(text)
    if thousandths is None:
        raise FlagError(f"percentage {text!r} is not a number from 0 to 100 with at most three decimals")
    whole, fraction = divmod(thousandths, 1000)
    return f"{whole}.{fraction:03d}".rstrip("0") if fraction else str(whole)


def entity_sort_key(name: str) -> tuple[int, str]:
    """Broadest first, as the model reads them: global, versions, groups, users."""
    kind = name.partition(":")[0]
    return (("global", *ENTITY_KINDS).index(kind), name)


async def read_state(store: Store, skipped: list[str] | None = None) -> tuple[int, Memberships]:
    """The revision and every membership in Redis, from one atomic snapshot of every flag key.

    A key of another type than its name says (written around Flipper) cannot be read. With `skipped`, it is
    left out and a warning naming it appended there: what is only shown goes on without it. Without, it is
    a FlagError naming it: what is written from the state must not guess what that key would hold."""
    keys = [key for key in await store.all_keys() if _is_flag_key(key)]
    revision, contents = await store.snapshot_keys(keys)
    state: Memberships = {}
    for key, content in zip(keys, contents, strict=True):
        if isinstance(content, Unreadable):
            problem = f"key {content.name!r} holds a {content.kind}, not a {content.expected}"
            if skipped is None:
                raise FlagError(f"{problem}: Flipper cannot read it; redis-cli DEL it (or mend it), then run again")
            skipped.append(f"{problem}: left out (redis-cli DEL it, or mend it)")
        elif is_rollout_key(key):  # HGETALL's flat field, value list
            state.update(((key, field), value) for field, value in zip(content[::2], content[1::2], strict=True))
        else:
            state.update(((key, member), "1") for member in content)
    return revision, state


def _is_flag_key(key: str) -> bool:
    match = _FLAG_KEY.fullmatch(key)
    return match is not None and not (match[1].startswith("user:") and match[2] == ROLLOUT)


def features_of(state: Memberships) -> dict[str, dict[str, Any]]:
    """The state per feature, as the flags file holds it: `{feature: {enabled: [...], disabled: [...],
    rollout: {entity: percentage}}}`, entities broadest first, features by code point."""
    grouped: dict[str, dict[str, dict[str, str]]] = {}
    for (key, feature), value in state.items():
        name, _, suffix = key.rpartition(":")
        grouped.setdefault(feature, {}).setdefault(suffix, {})[name] = value
    result: dict[str, dict[str, Any]] = {}
    for feature in sorted(grouped):
        kinds = grouped[feature]
        entry: dict[str, Any] = {}
        for field, suffix in FIELDS.items():
            names = sorted(kinds.get(suffix, {}), key=entity_sort_key)
            if names:
                entry[field] = {n: kinds[suffix][n] for n in names} if suffix == ROLLOUT else names
        result[feature] = entry
    return result


def memberships_of(features: Mapping[str, Mapping[str, Any]]) -> Memberships:
    """The inverse of `features_of`, for features already checked by `check_features`."""
    state: Memberships = {}
    for feature, entry in features.items():
        for field, suffix in FIELDS.items():
            if suffix == ROLLOUT:
                state.update(((f"{name}:{suffix}", feature), value) for name, value in entry.get(field, {}).items())
            else:
                state.update(((f"{name}:{suffix}", feature), "1") for name in entry.get(field, ()))
    return state


def check_flags(document: object, settings: Settings) -> dict[str, dict[str, Any]]:
    """A flags file's content checked against its schema (flags.schema.json), names and percentages
    canonical; a FlagError names the first problem found."""
    if not isinstance(document, dict):
        raise FlagError("the flags file must be a mapping with 'flipper' and 'features'")
    unknown = sorted(map(str, set(document) - {"flipper", "features"}))
    if unknown:
        raise FlagError(
            f"the flags file has unknown top-level key {unknown[0]!r}; expected flipper and features", (unknown[0],)
        )
    if type(document.get("flipper")) is not int or document["flipper"] != FILE_FORMAT:  # not True, not 1.0
        raise FlagError(f"the flags file must say 'flipper: {FILE_FORMAT}' (its format version)", ("flipper",))
    features = document.get("features") or {}
    if not isinstance(features, dict):
        raise FlagError("'features' must be a mapping of feature name to its state", ("features",))
    checked = {}
    for name, entry in features.items():
        with _at("", "features", name):
            checked[check_name("feature name", name, settings)] = _check_feature(name, entry, settings)
    return checked


def _check_feature(feature: str, entry: object, settings: Settings) -> dict[str, Any]:
    """One feature's entry checked; a FlagError's `at` is the place in the entry."""
    if entry is None:
        return {}
    if not isinstance(entry, dict):
        raise FlagError(f"feature {feature!r} must map enabled, disabled and rollout to entities")
    unknown = sorted(map(str, set(entry) - set(FIELDS)))
    if unknown:
        raise FlagError(
            f"feature {feature!r} has unknown key {unknown[0]!r}; expected enabled, disabled or rollout", (unknown[0],)
        )
    checked: dict[str, Any] = {}
    for field in ("enabled", "disabled"):
        names = entry.get(field) or []
        if not isinstance(names, list):
            raise FlagError(f"feature {feature!r}: {field} must be a list of entities", (field,))
        entities = set()
        for index, name in enumerate(names):
            with _at(f"feature {feature!r}, {field}: ", field, index):
                entities.add(parse_entity(name, settings))
        checked[field] = sorted(entities, key=entity_sort_key)
    rollout = entry.get("rollout") or {}
    if not isinstance(rollout, dict):
        raise FlagError(f"feature {feature!r}: rollout must map entities to percentages", ("rollout",))
    checked["rollout"] = {}
    for name, value in rollout.items():
        with _at(f"feature {feature!r}, rollout: ", "rollout", name):
            where = parse_entity(name, settings)
        if where.startswith("user:"):
            raise FlagError(
                f"feature {feature!r}: a user has no rollout ({where!r}); enable or disable it instead",
                ("rollout", name),
            )
        with _at(f"feature {feature!r}, rollout at {where!r}: ", "rollout", name):
            checked["rollout"][where] = percentage(value)
    return {field: value for field, value in checked.items() if value}


@contextlib.contextmanager
def _at(prefix: str, *at: str | int) -> Iterator[None]:
    """A FlagError raised inside, its message after `prefix` and its place under `at`."""
    try:
        yield
    except FlagError as exc:
        raise FlagError(prefix + str(exc), (*at, *exc.at)) from None


Change = tuple[str, str, str, str]  # key, feature, before, after: as lua/write.lua reports it


def plan(current: Memberships, desired: Memberships, features: Iterable[str]) -> list[Change]:
    """The memberships to change so that `features` hold in `current` exactly what they hold in `desired`."""
    named = set(features)
    relevant = {m for m in current.keys() | desired.keys() if m[1] in named}
    return [
        (key, feature, current.get((key, feature), ""), desired.get((key, feature), ""))
        for key, feature in sorted(relevant, key=_change_order)
        if _value(current.get((key, feature), "")) != _value(desired.get((key, feature), ""))
    ]


def warnings(changes: Iterable[Change]) -> list[str]:
    """A warning for each name the `changes` write that may look like another (names.lookalike), in their order."""
    found: dict[str, None] = {}  # each warning once, in the plan's order
    for key, feature, _, after in changes:
        if not after:  # a removal writes no name
            continue
        kind, _, name = key.rpartition(":")[0].partition(":")  # `global` has no name
        for what, value in (("feature name", feature), (f"{kind} name", name)):
            why = names.lookalike(value) if value else None
            if why:
                found[f"{what} {value!r} {why}: check it is the name you mean"] = None
    return list(found)


def _value(text: str) -> object:
    """What a membership's value means: "25.0" written by hand is the file's 25, not a change to plan."""
    thousandths = parse_percentage(text)
    return text if thousandths is None else thousandths


def _change_order(membership: tuple[str, str]) -> tuple[str, tuple[int, str], str]:
    key, feature = membership
    name, _, suffix = key.rpartition(":")
    return feature, entity_sort_key(name), suffix
