"""The operator's view of the flags: entities, the whole state as memberships, and plans between states.

A membership is one fact Redis holds: `(key, feature) -> value`, with the key unprefixed. A set key
(`version:v1:positive`) holds a feature or not (value "1"); a rollout hash (`group:beta:rollout`) holds a
percentage for it; a values hash (`group:beta:values`) its value there, `global:variants` its variants and
`global:rules` its targeting rules, as canonical JSON (model.canonical_json: equal values are equal text, so a
plan compares text). Absent memberships are not stored: "" is absent everywhere, as in lua/write.lua.
Flags written with plain `redis-cli SADD` are memberships like any other. The registry (`features`, every
flag the write path has written) is one too: `(REGISTRY, feature) -> "1"`, which is how a flag known but on
and off nowhere (all its memberships taken away) is exported, promoted and applied, and stays known.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from flipper.core import names, rules
from flipper.core.model import (
    MAX_VALUE_BYTES,
    NEGATIVE,
    POSITIVE,
    REGISTRY,
    ROLLOUT,
    RULES,
    VALUES,
    VARIANTS,
    canonical_json,
    is_hash_key,
    parse_percentage,
)
from flipper.core.settings import Settings
from flipper.core.store import Store, Unreadable

ENTITY_KINDS = ("version", "group", "user")
# The file's names for a feature's kinds of membership, and the key suffix each is held under.
FIELDS = {
    "enabled": POSITIVE,
    "disabled": NEGATIVE,
    "rollout": ROLLOUT,
    "values": VALUES,
    "variants": VARIANTS,
    "rules": RULES,
}
FILE_FORMAT = 1
# Collections a value may nest, itself included: in a flags file a variant's value sits five collections
# deep, so that an export of any value stays within the file's eight (flagsfile.MAX_DEPTH).
MAX_VALUE_DEPTH = 3

Memberships = dict[tuple[str, str], str]

_FLAG_KEY = re.compile(
    r"(global|(?:version|group|user):.+):(positive|negative|rollout|values|variants|rules)", re.DOTALL
)


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
    return _percent(thousandths)


def _percent(thousandths: int) -> str:
    whole, fraction = divmod(thousandths, 1000)
    return f"{whole}.{fraction:03d}".rstrip("0") if fraction else str(whole)


def value_json(value: object) -> str:
    """A feature's value as a values hash holds it: canonical JSON of a string, number, object or array (not
    null, not a boolean: those are what a flag without a value answers), at most MAX_VALUE_BYTES."""
    if value is None or isinstance(value, bool):
        raise FlagError(f"a value must be a string, number, object or array, not {json.dumps(value)}")
    _check_json(value, MAX_VALUE_DEPTH)
    text = canonical_json(value)
    size = len(text.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise FlagError(f"the value is {size} bytes as JSON, more than the {MAX_VALUE_BYTES} a value may hold")
    return text


def _check_json(value: object, depth: int) -> None:
    """Refuse what JSON cannot hold (a YAML date, say), naming it, rather than let json.dumps guess; and more
    than `depth` collections nested."""
    if isinstance(value, (dict, list)) and depth == 0:
        raise FlagError(f"the value nests collections more than {MAX_VALUE_DEPTH} deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FlagError(f"the value has key {key!r}, which is not text: JSON keys are text (quote it)")
            _check_json(key, depth - 1)
            _check_json(item, depth - 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth - 1)
    elif isinstance(value, str):
        if not is_utf8(value):
            raise FlagError("the value holds text that is not valid UTF-8 (a lone surrogate)")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise FlagError(f"the value holds {value}, which JSON cannot hold")
    elif value is not None and not isinstance(value, (bool, int)):
        raise FlagError(f"the value holds {value!r}, a {type(value).__name__}, which JSON cannot hold: quote it")


def is_utf8(text: str) -> bool:
    """Whether `text` encodes as UTF-8: not when it holds a lone surrogate (argv's surrogateescape, or JSON's)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_variants(variants: object, settings: Settings) -> dict[str, dict[str, Any]]:
    """A feature's variants in the file's shape, `{name: {weight, value}}` in their order, checked: names as
    check_name, weights percentages (as numbers) summing to exactly 100, values as value_json."""
    if not isinstance(variants, dict) or not variants:
        raise FlagError("variants must map each variant's name to its weight and value")
    checked: dict[str, dict[str, Any]] = {}
    total = 0
    for name, variant in variants.items():
        with _at("", name):
            where = f"variant {check_name('variant name', name, settings)!r}"
        if not isinstance(variant, dict):
            raise FlagError(f'{where} must map weight and value, as {{weight: 50, value: "blue"}}', (name,))
        unknown = sorted(map(str, set(variant) - {"weight", "value"}))
        if unknown:
            raise FlagError(f"{where} has unknown key {unknown[0]!r}; expected weight and value", (name, unknown[0]))
        for needed in ("weight", "value"):
            if needed not in variant:
                raise FlagError(f"{where} has no {needed}", (name,))
        with _at(f"{where}, weight: ", name, "weight"):
            weight = percentage(variant["weight"])
        with _at(f"{where}: ", name, "value"):
            value_json(variant["value"])
        total += parse_percentage(weight) or 0  # never 0 for a weight `percentage` gave: for the type checker
        checked[name] = {"weight": float(weight) if "." in weight else int(weight), "value": variant["value"]}
    if total != 100_000:
        raise FlagError(f"the variants' weights sum to {_percent(total)}, not 100")
    return checked


def variants_json(variants: Mapping[str, Mapping[str, Any]]) -> str:
    """Checked variants (check_variants) as global:variants holds them: a canonical JSON array, in order."""
    return canonical_json([{"name": name, **variant} for name, variant in variants.items()])


def rules_json(raw: object) -> str:
    """A feature's targeting rules (the flags file's list of `{when, value}`) as global:rules holds them:
    parsed (rules.parse_rules), each rule's value checked as value_json checks a value, canonical JSON."""
    _refuse_timestamps(raw)
    try:
        parsed = rules.parse_rules(raw)
    except rules.RuleError as exc:
        raise FlagError(str(exc), _failing_rule(raw)) from None
    for index, rule in enumerate(parsed):
        if rule.has_value:
            with _at(f"rule {index + 1}: ", index, "value"):
                value_json(rule.value)
    return canonical_json(rules.as_data(parsed))


def _refuse_timestamps(raw: object) -> None:
    """YAML reads an unquoted 2026-12-20T00:00:00Z as a timestamp: refused, saying to quote it (as a value's
    is), so that the text a file holds is the text stored, and exported (quoted) back."""
    for index, entry in enumerate(raw if isinstance(raw, list) else []):
        when = entry.get("when") if isinstance(entry, dict) else None
        for place, condition in enumerate(when if isinstance(when, list) else []):
            values = condition.get("values") if isinstance(condition, dict) else None
            for position, value in enumerate(values if isinstance(values, list) else []):
                if isinstance(value, datetime.date):  # a datetime is a date too
                    raise FlagError(
                        f"rule {index + 1}, operator {condition.get('operator')!r}: {value} reads as a YAML"
                        ' timestamp, not text: quote it, as "2026-12-20T00:00:00Z"',
                        (index, "when", place, "values", position),
                    )


def _failing_rule(raw: object) -> tuple[int, ...]:
    """Where in `raw` the first rule parse_rules refuses is, for the flags file to name its line; nowhere
    within (the list itself) when the list as a whole is refused: empty, or too long."""
    if isinstance(raw, list) and len(raw) <= rules.MAX_RULES:
        for index, entry in enumerate(raw):
            try:
                rules.parse_rules([entry])
            except rules.RuleError:
                return (index,)
    return ()


def _variants_of(text: str) -> dict[str, dict[str, Any]]:
    """A stored variants array in the file's shape; a ValueError when it is not an array of such objects."""
    listed = json.loads(text)
    if not isinstance(listed, list) or not all(
        isinstance(v, dict) and set(v) == {"name", "weight", "value"} for v in listed
    ):
        raise ValueError("not an array of {name, weight, value}")
    names = [v["name"] for v in listed]
    if len(set(map(str, names))) != len(names):
        raise ValueError("a variant's name is given twice")
    return {v["name"]: {"weight": v["weight"], "value": v["value"]} for v in listed}


def entity_sort_key(name: str) -> tuple[int, str]:
    """Broadest first, as the model reads them: global, versions, groups, users."""
    kind = name.partition(":")[0]
    return (("global", *ENTITY_KINDS).index(kind), name)


async def read_state(store: Store, skipped: list[str] | None = None) -> tuple[int, Memberships]:
    """The revision and every membership in Redis, from one atomic snapshot of every flag key.

    A key of another type than its name says (written around Flipper) cannot be read. With `skipped`, it is
    left out and a warning naming it appended there: what is only shown goes on without it. Without, it is
    a FlagError naming it: what is written from the state must not guess what that key would hold."""
    keys = [key for key in await store.all_keys() if key == REGISTRY or _is_flag_key(key)]
    revision, contents = await store.snapshot_keys(keys)
    state: Memberships = {}
    for key, content in zip(keys, contents, strict=True):
        if isinstance(content, Unreadable):
            problem = f"key {content.name!r} holds a {content.kind}, not a {content.expected}"
            if skipped is None:
                raise FlagError(f"{problem}: Flipper cannot read it; redis-cli DEL it (or mend it), then run again")
            skipped.append(f"{problem}: left out (redis-cli DEL it, or mend it)")
        elif is_hash_key(key):  # HGETALL's flat field, value list
            for field, value in zip(content[::2], content[1::2], strict=True):
                # Shown (skipped given): a value written by hand that is not one Flipper writes cannot be exported
                # as the file's data. Written from: it is kept, as any membership, for a plan to replace.
                problem = None if skipped is None else _unreadable(key, value)
                if problem is None:
                    state[key, field] = value
                else:
                    skipped.append(f"key {key!r} field {field!r} holds {value!r}: {problem}: left out (mend it)")
        else:
            state.update(((key, member), "1") for member in content)
    return revision, state


def _unreadable(key: str, text: str) -> str | None:
    """Why a stored values, variants or rules field cannot be shown as the file's data, or None when it can."""
    kind = key.rpartition(":")[2]
    if kind == ROLLOUT:
        return None  # a bad percentage is shown as its text, for apply to refuse
    try:
        if kind == VALUES:
            value_json(json.loads(text))
        elif kind == RULES:
            rules_json(json.loads(text))
        else:
            # Compared with the text as stored: a weight written otherwise than Flipper would (50.0, "50").
            if canonical_json(json.loads(text)) != variants_json(check_variants(_variants_of(text), Settings())):
                return "not variants as Flipper writes them"
    except (ValueError, FlagError) as exc:  # json's errors are ValueErrors
        return f"not a value Flipper writes ({exc})"
    return None


def _is_flag_key(key: str) -> bool:
    match = _FLAG_KEY.fullmatch(key)
    if match is None:
        return False
    entity, kind = match.groups()
    # Users have no rollout, and only global holds variants and rules: other such keys are no entity's flags.
    return not (entity.startswith("user:") and kind == ROLLOUT) and (
        kind not in (VARIANTS, RULES) or entity == "global"
    )


def features_of(state: Memberships) -> dict[str, dict[str, Any]]:
    """The state per feature, as the flags file holds it: `{feature: {enabled: [...], disabled: [...],
    rollout: {entity: percentage}, values: {entity: value}, variants: {name: {weight, value}}, rules: [{when,
    value}]}}`, entities broadest first, features by code point; `{}` for a registered flag that no entity
    names. Values, variants and rules as read_state(skipped) left them: JSON."""
    grouped: dict[str, dict[str, dict[str, str]]] = {}
    for (key, feature), value in state.items():
        name, _, suffix = key.rpartition(":")
        grouped.setdefault(feature, {}).setdefault(suffix, {})[name] = value
    result: dict[str, dict[str, Any]] = {}
    for feature in sorted(grouped):
        kinds = grouped[feature]
        entry: dict[str, Any] = {}
        for field, suffix in FIELDS.items():
            held = kinds.get(suffix, {})
            names = sorted(held, key=entity_sort_key)
            if not names:
                continue
            if suffix == ROLLOUT:
                entry[field] = {n: held[n] for n in names}
            elif suffix == VALUES:
                entry[field] = {n: json.loads(held[n]) for n in names}
            elif suffix == VARIANTS:
                entry[field] = _variants_of(held["global"])
            elif suffix == RULES:
                entry[field] = json.loads(held["global"])
            else:
                entry[field] = names
        result[feature] = entry
    return result


def memberships_of(features: Mapping[str, Mapping[str, Any]]) -> Memberships:
    """The inverse of `features_of`, for features already checked by `check_features`: each one registered."""
    state: Memberships = {}
    for feature, entry in features.items():
        state[REGISTRY, feature] = "1"
        for field, suffix in FIELDS.items():
            if suffix == ROLLOUT:
                state.update(((f"{name}:{suffix}", feature), value) for name, value in entry.get(field, {}).items())
            elif suffix == VALUES:
                state.update(
                    ((f"{name}:{suffix}", feature), canonical_json(v)) for name, v in entry.get(field, {}).items()
                )
            elif suffix == VARIANTS:
                if entry.get(field):
                    state[f"global:{suffix}", feature] = variants_json(entry[field])
            elif suffix == RULES:
                if entry.get(field):
                    state[f"global:{suffix}", feature] = rules_json(entry[field])
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
        raise FlagError(f"feature {feature!r} must map enabled, disabled, rollout, values, variants or rules")
    unknown = sorted(map(str, set(entry) - set(FIELDS)))
    if unknown:
        raise FlagError(
            f"feature {feature!r} has unknown key {unknown[0]!r}; expected enabled, disabled, rollout, values,"
            " variants or rules",
            (unknown[0],),
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
    values = entry.get("values") or {}
    if not isinstance(values, dict):
        raise FlagError(f"feature {feature!r}: values must map entities to values", ("values",))
    checked["values"] = {}
    for name, value in values.items():
        with _at(f"feature {feature!r}, values: ", "values", name):
            where = parse_entity(name, settings)
        with _at(f"feature {feature!r}, value at {where!r}: ", "values", name):
            value_json(value)
        checked["values"][where] = value
    checked["values"] = {where: checked["values"][where] for where in sorted(checked["values"], key=entity_sort_key)}
    if entry.get("variants") not in (None, {}):  # as an empty rollout: none
        with _at(f"feature {feature!r}, variants: ", "variants"):
            checked["variants"] = check_variants(entry["variants"], settings)
    if entry.get("rules") not in (None, []):  # as empty variants: none
        with _at(f"feature {feature!r}, rules: ", "rules"):
            rules_json(entry["rules"])
        checked["rules"] = entry["rules"]
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
    """The memberships to change so that `features` hold in `current` exactly what they hold in `desired`.

    A registration implied by a membership the plan adds (lua/write.lua registers it) is not planned apart."""
    named = set(features)
    relevant = {m for m in current.keys() | desired.keys() if m[1] in named}
    changes = [
        (key, feature, current.get((key, feature), ""), desired.get((key, feature), ""))
        for key, feature in sorted(relevant, key=_change_order)
        if _value(key, current.get((key, feature), "")) != _value(key, desired.get((key, feature), ""))
    ]
    added = {feature for key, feature, _, after in changes if after and key != REGISTRY}
    return [change for change in changes if not (change[0] == REGISTRY and change[3] and change[1] in added)]


def warnings(changes: Iterable[Change]) -> list[str]:
    """A warning for each name the `changes` write that may look like another (names.lookalike), in their order."""
    found: dict[str, None] = {}  # each warning once, in the plan's order
    for key, feature, _, after in changes:
        if not after:  # a removal writes no name
            continue
        kind, _, name = key.rpartition(":")[0].partition(":")  # `global` has no name
        written = [("feature name", feature), (f"{kind} name", name)]
        if key.endswith(f":{VARIANTS}"):  # the variants' names are written too (a plan's are canonical JSON)
            written += [("variant name", variant["name"]) for variant in json.loads(after)]
        for what, value in written:
            why = names.lookalike(value) if value else None
            if why:
                found[f"{what} {value!r} {why}: check it is the name you mean"] = None
    return list(found)


def _value(key: str, text: str) -> object:
    """What a membership's value means: a rollout's "25.0" written by hand is the file's 25, and a value's
    `{"a": 1}` its `{"a":1}`: not changes to plan. A value's 25.0 stays other than 25, as JSON keeps it."""
    kind = key.rpartition(":")[2]
    if kind == ROLLOUT:
        thousandths = parse_percentage(text)
        return text if thousandths is None else thousandths
    if kind in (VALUES, VARIANTS, RULES) and text:
        with contextlib.suppress(ValueError):  # not JSON (written by hand): its text, replaced by any plan
            return canonical_json(json.loads(text))
    return text


def _change_order(membership: tuple[str, str]) -> tuple[str, tuple[int, str], str]:
    key, feature = membership
    if key == REGISTRY:  # after the feature's memberships, as the flag it makes known
        return feature, (len(ENTITY_KINDS) + 1, ""), key
    name, _, suffix = key.rpartition(":")
    return feature, entity_sort_key(name), suffix
