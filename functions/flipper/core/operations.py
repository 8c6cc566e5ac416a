"""Operators' commands, JSON in and JSON out: what `flipper` runs, on Redis directly or inside the function.

The same functions answer both paths (the CLI's `--redis-url`, and the Lambda admin event behind
`--function`), so the two cannot drift. Every argument is checked here: the admin event is input too.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

from flipper.core import memberships, names, writes
from flipper.core.connection import StoreError
from flipper.core.memberships import FlagError, check_name
from flipper.core.model import REGISTRY, Context, evaluate_feature
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.core.writes import utc_time

Operation = Callable[..., Awaitable[dict[str, Any]]]
OPERATIONS: dict[str, Operation] = {}
# The set and rollout changes, then the values', the variants' and the rules' (None clears them).
CHANGES = ("enable", "disable", "clear", "rollout", "value", "variants", "rules")
UNSET: Any = object()  # an argument not given, where null means something (a value, variants or rules removed)


def _operation(function: Operation) -> Operation:
    OPERATIONS[function.__name__.removesuffix("_")] = function
    return function


async def run(store: Store, settings: Settings, name: object, arguments: object) -> dict[str, Any]:
    """Run operation `name` with `arguments` (a JSON object); FlagError names what is wrong with them."""
    if not isinstance(name, str) or name not in OPERATIONS:
        raise FlagError(f"unknown operation {name!r}; expected one of {', '.join(OPERATIONS)}")
    if not isinstance(arguments, dict) or not all(isinstance(key, str) for key in arguments):
        raise FlagError("arguments must be a JSON object")
    operation = OPERATIONS[name]  # type: ignore[index]
    try:
        inspect.signature(operation).bind(store, settings, **arguments)
    except TypeError as exc:  # an argument missing or unknown: the message names it
        raise FlagError(f"{name}: {exc}") from None
    return await operation(store, settings, **arguments)


def _context(settings: Settings, version: object, groups: object, user: object, attributes: object = None) -> Context:
    groups = [] if groups is None else groups
    if not isinstance(groups, list):  # a string would read as its characters, each a group
        raise FlagError("groups must be a list of group names")
    attributes = {} if attributes is None else attributes
    if not isinstance(attributes, dict):
        raise FlagError("attributes must be an object of attribute name to value")
    try:
        unique = names.group_set([check_name("group name", group, settings) for group in groups], settings)
        # Checked and bounded as the API checks a caller's (names.attributes): what it could be asked about.
        targeted = names.attributes(attributes.items(), settings)
    except names.InvalidName as exc:
        raise FlagError(str(exc)) from None
    return Context(
        version=None if version is None else check_name("version", version, settings),
        groups=unique,
        user=None if user is None else check_name("user", user, settings),
        attributes=targeted,
    )


def _audit(actor: object, operation: str, message: object, claimed_by: object = None, **fields: str) -> dict[str, str]:
    """The entry's fields: `actor` is who the path proves made the change, `claimed_by` who the caller says
    made it when nothing proves that (docs/operate.md, "Who made a change")."""
    if not isinstance(actor, str) or not actor:
        raise FlagError("actor must be a non-empty string: who makes the change")
    if claimed_by is not None and (not isinstance(claimed_by, str) or not claimed_by):
        raise FlagError("claimed_by must be a non-empty string: who the caller says makes the change")
    if message is not None and not isinstance(message, str):
        raise FlagError("message must be a string")
    claimed = {"claimed_by": claimed_by} if claimed_by else {}
    return {"actor": actor, **claimed, "operation": operation, **fields, **({"message": message} if message else {})}


@_operation
async def export(store: Store, settings: Settings) -> dict[str, Any]:
    """The whole flag state, as a flags file holds it, and the revision it was read at; with "warnings" when
    keys had to be left out (the command prints them on stderr)."""
    skipped: list[str] = []
    revision, state = await memberships.read_state(store, skipped)
    return {
        "revision": revision,
        "flags": {"flipper": memberships.FILE_FORMAT, "features": memberships.features_of(state)},
        **({"warnings": skipped} if skipped else {}),
    }


@_operation
async def show(
    store: Store,
    settings: Settings,
    version: object = None,
    groups: object = None,
    user: object = None,
    attributes: object = None,
) -> dict[str, Any]:
    """The caller's enabled features, as `GET /` answers them; `attributes` (name to value) for the rules."""
    return {"features": await store.features(_context(settings, version, groups, user, attributes))}


@_operation
async def explain(
    store: Store,
    settings: Settings,
    feature: object,
    version: object = None,
    groups: object = None,
    user: object = None,
    attributes: object = None,
) -> dict[str, Any]:
    """One feature for a caller, as `GET /features/{name}?explain=true` answers it."""
    name = check_name("feature name", feature, settings)
    context = _context(settings, version, groups, user, attributes)
    evaluation = evaluate_feature(name, await store.snapshot(context))
    return {"feature": name, "enabled": evaluation.enabled, "reason": evaluation.reason, **evaluation.explanation()}


@_operation
async def change(
    store: Store,
    settings: Settings,
    operation: object,
    feature: object,
    entity: object,
    actor: object,
    percentage: object = None,
    message: object = None,
    revision: object = None,
    claimed_by: object = None,
    value: object = UNSET,
    variants: object = UNSET,
    rules: object = UNSET,
) -> dict[str, Any]:
    """Change one feature at one entity, through the audited write path.

    enable: in the entity's positive set, out of its negative set; disable: the reverse (a deny, which
    wins everywhere); clear: out of both and no rollout (inherit; its value stays); rollout: the entity's
    percentage (0 removes it); value: the feature's `value` at the entity (JSON; null removes it);
    variants: the feature's `variants`, `{name: {weight, value}}` as the flags file holds them, at global
    only (null removes them); rules: the feature's whole list of targeting `rules`, `[{when, value}]` as the
    flags file holds them, at global only (null removes them); each must be given, null included, so that
    one forgotten clears nothing. With `revision`, refused (Refused) unless the flags are still at that
    revision: how one rule is added or removed, the list read then written at the revision read.
    """
    typed = {"value": value, "variants": variants, "rules": rules}
    if typed.get(str(operation)) is UNSET:
        raise FlagError(f"a {operation} change needs the argument {operation!r}: JSON, or null to remove")
    # What only takes a name out may take any name (see _removable): clear, and a value, variants or rules cleared.
    removes = operation == "clear" or typed.get(str(operation), UNSET) is None
    name = _removable(feature) if removes else check_name("feature name", feature, settings)
    where = memberships.parse_entity(entity, settings)
    return await _write(
        store,
        settings,
        change_memberships(operation, name, where, percentage, value, variants, settings, rules),
        _audit(actor, operation, message, claimed_by, feature=name, entity=where),
        expected_revision=_revision(revision),
    )


def change_memberships(
    operation: object,
    feature: str,
    where: str,
    percentage: object = None,
    value: object = None,
    variants: object = None,
    settings: Settings | None = None,
    rules: object = None,
) -> list[tuple[str, str, str]]:
    """What `change` sets, as `(key, feature, value)` ("" removes): the console previews these before writing."""
    if operation not in CHANGES:
        raise FlagError(f"unknown change {operation!r}; expected one of {', '.join(CHANGES)}")
    if operation == "value":
        return [(f"{where}:{memberships.VALUES}", feature, "" if value is None else memberships.value_json(value))]
    if operation == "rules":
        if where != "global":
            raise FlagError(f"rules are the feature's, set at global, not at {where}")
        return [(f"global:{memberships.RULES}", feature, "" if rules is None else memberships.rules_json(rules))]
    if operation == "variants":
        if where != "global":
            raise FlagError(f"variants are the feature's, set at global, not at {where}")
        checked = None if variants is None else memberships.check_variants(variants, settings or Settings())
        return [
            (f"global:{memberships.VARIANTS}", feature, "" if checked is None else memberships.variants_json(checked))
        ]
    if operation == "rollout":
        wanted = {memberships.ROLLOUT: _rollout(where, percentage)}
    else:
        wanted = {
            memberships.POSITIVE: "1" if operation == "enable" else "",
            memberships.NEGATIVE: "1" if operation == "disable" else "",
        }
        if operation == "clear":
            wanted[memberships.ROLLOUT] = ""
    if where.startswith("user:"):
        wanted.pop(memberships.ROLLOUT, None)  # users have no rollout hash
    return [(f"{where}:{kind}", feature, value) for kind, value in wanted.items()]


def _revision(revision: object) -> int | None:
    """The revision a write expects (None: any), checked: the one a page was loaded or a plan made at."""
    if revision is not None and (not isinstance(revision, int) or isinstance(revision, bool)):
        raise FlagError("revision must be an integer: the revision the change was prepared at")
    return revision


def _removable(feature: object) -> str:
    """A name to take out: any text Redis can hold, so that a name the API refuses (written around Flipper,
    or before names were checked) can still be cleared away; only new names must pass `check_name`."""
    if not isinstance(feature, str):
        raise FlagError(f"feature name must be a string, not {type(feature).__name__}")
    if not memberships.is_utf8(feature):
        raise FlagError("feature name is not valid UTF-8 (it holds a lone surrogate)")
    return feature


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise FlagError(f"{name} must be true or false")
    return value


def _rollout(where: str, percentage: object) -> str:
    if where.startswith("user:"):
        raise FlagError("a user has no rollout: enable or disable the feature for them instead")
    if percentage is None:
        raise FlagError("rollout needs a percentage")
    value = memberships.percentage(percentage)
    return "" if value == "0" else value


@_operation
async def delete(
    store: Store,
    settings: Settings,
    feature: object,
    actor: object,
    message: object = None,
    revision: object = None,
    claimed_by: object = None,
) -> dict[str, Any]:
    """The feature out of every set, rollout, values and variants of every entity, and out of the registry;
    with `revision`, only if still at it."""
    name = _removable(feature)
    expected = _revision(revision)
    read_at, state = await memberships.read_state(store)
    # Out of the registry too: the API no longer knows it (FLAG_NOT_FOUND), as before it was ever written.
    wanted = [(key, member, "") for key, member in state if member == name and key != REGISTRY]
    wanted.append((REGISTRY, name, ""))
    # At the revision read, at the latest: a change landing meanwhile (at a key not read) would survive.
    result = await _write(
        store,
        settings,
        wanted,
        _audit(actor, "delete", message, claimed_by, feature=name),
        expected_revision=read_at if expected is None else expected,
    )
    # Its usage too, even when no entity named it: how a name callers asked about, but no flag, is forgotten.
    await store.forget_usage(name)
    return result


@_operation
async def usage(store: Store, settings: Settings) -> dict[str, Any]:
    """Every known feature (a flag, or a name evaluations asked for): evaluations counted, when last evaluated
    and when last changed through the write path; and since when usage has been recorded. Approximate:
    flushed by each instance at most every FLIPPER_USAGE_FLUSH_SECONDS, an interval lost when one fails."""
    features, since, warnings = await _usage(store)
    return {"features": features, "recording_since": since, **({"warnings": warnings} if warnings else {})}


@_operation
async def stale(store: Store, settings: Settings, unused_for: object) -> dict[str, Any]:
    """The flags no evaluation named within `unused_for` (`30d`, `12h`, `15m`, `90s`), by Redis's clock."""
    seconds = _duration(unused_for)
    now = await store.time_ms()
    features, since, warnings = await _usage(store)
    cutoff = utc_time(max(0, now - seconds * 1000) / 1000)  # longer than since 1970: every flag is unused
    # RFC 3339 times of one format compare as text.
    unused = [row for row in features if row["flag"] and (row["last_evaluated"] or "") < cutoff]
    if since is None:
        warnings.append("no usage recorded yet (FLIPPER_USAGE off, or no flush yet): every flag looks unused")
    elif since > cutoff:
        warnings.append(
            f"usage recorded only since {since}, less than {unused_for}: a flag may look unused that is not"
        )
    return {"unused_for": unused_for, "evaluated_since": cutoff, "features": unused, "warnings": warnings}


_DURATION = re.compile(r"([0-9]{1,9})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: object) -> int:
    """`text` such as `30d`, `12h`, `15m` or `90s`, in seconds (more than 0)."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None or int(match[1]) == 0:
        raise FlagError(f"duration {text!r} is not a count of days, hours, minutes or seconds: 30d, 12h, 15m or 90s")
    return int(match[1]) * _UNITS[match[2]]


async def _usage(store: Store) -> tuple[list[dict[str, Any]], str | None, list[str]]:
    """Every known feature's usage, since when it is recorded, and the keys left out as unreadable: what is
    only shown goes on without them, as export does."""
    skipped: list[str] = []
    _, state = await memberships.read_state(store, skipped)
    flags = {feature for _, feature in state}
    counts, seen, since = await store.usage()
    known = flags | set(counts)
    changed = await writes.last_changes(store, known)
    rows = [
        {
            "feature": feature,
            "flag": feature in flags,
            "evaluations": _count(counts.get(feature)),
            "last_evaluated": _time(seen.get(feature)),
            "last_changed": changed.get(feature),
        }
        for feature in sorted(known)
    ]
    return rows, _time(since), skipped


def _count(text: str | None) -> int:
    return int(text) if text is not None and text.isdigit() else 0


def _time(ms: str | None) -> str | None:
    """Milliseconds as usage holds them, in RFC 3339; None for absent (or, written by hand, not a number)."""
    return utc_time(int(ms) / 1000) if ms is not None and ms.isdigit() else None


@_operation
async def plan(store: Store, settings: Settings, flags_file: object, prune: object = False) -> dict[str, Any]:
    """The memberships that applying `flags_file` would change, and the revision the plan was made at; and
    `warnings`, when there are any, about names it writes that may look like others (names.lookalike)."""
    revision, changes = await _plan(store, settings, flags_file, prune)
    warned = memberships.warnings(changes)
    result = {"revision": revision, "changes": [list(change) for change in changes]}
    return {**result, "warnings": warned} if warned else result


@_operation
async def apply(
    store: Store,
    settings: Settings,
    flags_file: object,
    revision: object,
    actor: object,
    prune: object = False,
    message: object = None,
    claimed_by: object = None,
) -> dict[str, Any]:
    """Make the flags match `flags_file`, in one atomic write, only if the revision is still `revision`."""
    if not isinstance(revision, int) or isinstance(revision, bool):
        raise FlagError("revision must be the integer the plan was made at")
    audit = _audit(actor, "apply", message, claimed_by)
    current, changes = await _plan(store, settings, flags_file, prune)
    if current != revision:
        raise writes.Refused(f"flags changed since the plan (revision {revision}, now {current}); run again")
    wanted = [(key, feature, after) for key, feature, _, after in changes]
    return await _write(store, settings, wanted, audit, expected_revision=revision)


async def _plan(
    store: Store, settings: Settings, flags_file: object, prune: object
) -> tuple[int, list[memberships.Change]]:
    features = memberships.check_flags(flags_file, settings)
    revision, current = await memberships.read_state(store)
    # A store that keeps no registry yet knows every flag it names, and the first write registers them: the
    # very ones it will register (none once the registry is kept), so that the plan is what the write does.
    current.update(((REGISTRY, feature), "1") for feature in await _known_before_registry(store, settings))
    named = {feature for _, feature in current} if _flag("prune", prune) else set(features)
    return revision, memberships.plan(current, memberships.memberships_of(features), named | set(features))


@_operation
async def history(store: Store, settings: Settings, feature: object = None, limit: object = 20) -> dict[str, Any]:
    """Audit entries, newest first; only those that changed `feature` when it is given."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise FlagError("limit must be a positive integer")
    name = None if feature is None else check_name("feature name", feature, settings)
    return {"entries": [entry.as_json() for entry in await writes.history(store, name, limit)]}


@_operation
async def undo(
    store: Store,
    settings: Settings,
    entry: object,
    actor: object,
    force: object = False,
    message: object = None,
    revision: object = None,
    claimed_by: object = None,
) -> dict[str, Any]:
    """The inverse of audit entry `entry`, itself audited; refused when later entries changed the same flags,
    or, with `revision`, when the flags are no longer at that revision."""
    if not isinstance(entry, str):
        raise FlagError("entry must be an audit entry id such as 1700000000000-0")
    expected = _revision(revision)
    audit = _audit(actor, "undo", message, claimed_by)
    result = await writes.undo(
        store,
        entry,
        audit=audit,
        force=_flag("force", force),
        expected_revision=expected,
        audit_length=settings.audit_length,
    )
    return result.as_json()


async def _write(
    store: Store,
    settings: Settings,
    wanted: list[tuple[str, str, str]],
    audit: dict[str, str],
    expected_revision: int | None = None,
) -> dict[str, Any]:
    result = await writes.write(
        store,
        wanted,
        audit=audit,
        expected_revision=expected_revision,
        audit_length=settings.audit_length,
        known=await _known_before_registry(store, settings),
    )
    return result.as_json()


async def _known_before_registry(store: Store, settings: Settings) -> list[str]:
    """Every feature the store names while it keeps no registry (written around Flipper, or before Flipper
    kept one), to register with the first change: all of them are known until then, and must stay known.
    A name Flipper would refuse (empty, say) is no flag to register: it is there to be cleared away."""
    if await store.keeps_registry():
        return []
    try:
        try:  # a field holding what Flipper would not write names its feature all the same
            _, state = await memberships.read_state(store)
        except FlagError:  # a key of another type: left out here, the write refuses it if it touches it
            _, state = await memberships.read_state(store, skipped=[])
    except StoreError:  # a revision written by hand, say: the write refuses it in its own words
        return []
    return sorted({feature for _, feature in state if _acceptable(feature, settings)})


def _acceptable(name: str, settings: Settings) -> bool:
    try:
        names.check_name("feature name", name, settings)
    except names.InvalidName:
        return False
    return True
