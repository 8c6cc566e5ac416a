"""The one write path: every change to the flags, through lua/write.lua, counted and audited; history and undo.

Each change is one script call that applies its memberships, increments `<prefix>revision` and appends
an entry to the capped stream `<prefix>audit`, atomically. A change that changes nothing writes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flipper.core.memberships import Change, FlagError, read_state
from flipper.core.model import REGISTRY
from flipper.core.store import Store

logger = logging.getLogger("flipper")
_ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
_LARGEST_PART = 2**64 - 1  # a stream id's two parts are unsigned 64-bit; Redis refuses a larger one outright


class Refused(FlagError):
    """A change not made because the flags are not as it expects: changed since a plan, say."""


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """What a change did: the revision after it, and its audit entry's id and changes (none: nothing to do)."""

    revision: int
    entry: str | None = None
    changes: tuple[Change, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"revision": self.revision, "entry": self.entry, "changes": [list(c) for c in self.changes]}


async def write(
    store: Store,
    wanted: list[tuple[str, str, str]],
    *,
    audit: dict[str, str],
    expected_revision: int | None = None,
    audit_length: int,
    known: Sequence[str] = (),
) -> Result:
    """Set each `(key, member, value)` of `wanted` ("" removes it), in one atomic script call.

    `audit` holds the entry's fields (actor, operation, feature, entity, message, undoes). With
    `expected_revision`, the change is refused (Refused) unless the revision is still that one. `known`
    features are registered with the change, unaudited, if the registry does not exist yet when it applies.
    """
    # The registry first, always (the script adds every feature given a membership to it), then the flag keys:
    # after the revision, its stamp and the audit.
    keys = [REGISTRY, *sorted({key for key, _, _ in wanted} - {REGISTRY})]
    index = {key: position for position, key in enumerate(keys, start=4)}
    fields = [text for pair in audit.items() for text in pair]
    args: list[str | int] = ["" if expected_revision is None else expected_revision, audit_length, len(audit), *fields]
    args += [len(known), *known]
    for key, member, value in wanted:
        args += [index[key], member, value]
    status, revision, *rest = await store.write(keys, args)
    if status == "stale":
        raise Refused(f"flags changed since revision {expected_revision} (now {revision}); nothing was written")
    if status == "wrongtype":
        raise FlagError(f"key {revision!r} holds something other than Flipper expects there; nothing was written")
    if status == "unchanged":
        return Result(int(revision))
    entry, changes = rest
    return Result(int(revision), entry, tuple(map(tuple, json.loads(changes))))


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One audit entry: who changed what, when, and the revision it produced."""

    id: str
    revision: int
    time: str  # ISO 8601, UTC, from Redis's clock
    fields: dict[str, str]
    changes: tuple[Change, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "revision": self.revision,
            "time": self.time,
            **self.fields,
            "changes": [list(change) for change in self.changes],
        }


def _entry(id: str, raw: dict[str, str]) -> Entry | None:
    """The entry, or None for one that Flipper did not write (an XADD by hand): skipped, not fatal."""
    fields = dict(raw)
    try:
        seconds = float(fields.pop("time"))
        revision = int(fields.pop("revision"))
        changes = tuple(tuple(change) for change in json.loads(fields.pop("changes")))
    except (KeyError, ValueError, TypeError):
        logger.warning("audit entry %s is not one of Flipper's; skipped", id)
        return None
    return Entry(id=id, revision=revision, time=utc_time(seconds), changes=changes, fields=fields)


def utc_time(seconds: float) -> str:
    """Unix `seconds` in RFC 3339, UTC, to the millisecond: `2026-12-02T00:36:40.776Z`."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _entries(raw: list[Any]) -> list[Entry]:
    return [entry for entry in (_entry(id, fields) for id, fields in raw) if entry is not None]


async def history(store: Store, feature: str | None = None, limit: int = 20) -> list[Entry]:
    """Audit entries, newest first; only those that changed `feature` when it is given."""
    found: list[Entry] = []
    end = "+"
    while len(found) < limit:
        batch = await store.audit_range(end, "-", count=max(limit, 100), reverse=True)
        for entry in _entries(batch):
            if feature is None or any(change[1] == feature for change in entry.changes):
                found.append(entry)
        if len(batch) < max(limit, 100):
            break
        end = "(" + batch[-1][0]
    return found[:limit]


async def last_changes(store: Store, features: set[str]) -> dict[str, str]:
    """When each of `features` was last changed through the write path (RFC 3339), for those the audit still
    holds: the stream read newest first, only as far as needed."""
    found: dict[str, str] = {}
    end = "+"
    while len(found) < len(features):
        batch = await store.audit_range(end, "-", count=1000, reverse=True)
        for entry in _entries(batch):
            for _, feature, _, _ in entry.changes:
                if feature in features:
                    found.setdefault(feature, entry.time)
        if len(batch) < 1000:
            break
        end = "(" + batch[-1][0]
    return found


async def entry(store: Store, id: str) -> Entry:
    """The audit entry `id`; FlagError when the stream has no such entry (never written, or trimmed)."""
    if not _ENTRY_ID.fullmatch(id):
        raise FlagError(f"{id!r} is not an audit entry id such as 1700000000000-0 (flipper history shows them)")
    # An id Redis would refuse ("Invalid stream ID") is one no entry can have: not there, as any other.
    beyond = any(int(part) > _LARGEST_PART for part in id.split("-"))
    found = [] if beyond else _entries(await store.audit_range(id, id))
    if not found:
        raise FlagError(f"no audit entry {id!r} (it may have been trimmed from the stream)")
    return found[0]


def _memberships(entry: Entry) -> set[tuple[str, str]]:
    return {(key, member) for key, member, _, _ in entry.changes}


async def undo(
    store: Store,
    id: str,
    *,
    audit: dict[str, str],
    force: bool = False,
    expected_revision: int | None = None,
    **options: Any,
) -> Result:
    """Apply the inverse of entry `id`, audited as an undo naming it.

    Refused when a later entry changed the same memberships (naming those entries), unless `force`; with
    `expected_revision`, also when the flags are no longer at that revision.
    """
    # Read before the later entries are (a write after them makes this stale), unless the caller knows its own.
    revision = await store.revision() if expected_revision is None else expected_revision
    undone = await entry(store, id)
    touched = _memberships(undone)
    later = [e.id for e in _entries(await store.audit_range("(" + id, "+")) if touched & _memberships(e)]
    if later and not force:
        entries = f"entries {', '.join(later)}" if len(later) > 1 else f"entry {later[0]}"
        raise Refused(f"{entries} changed the same flags since {id}; --force undoes anyway")
    wanted = await _still_known([(key, member, before) for key, member, before, _ in undone.changes], store)
    return await write(store, wanted, audit={**audit, "undoes": id}, expected_revision=revision, **options)


async def _still_known(wanted: list[tuple[str, str, str]], store: Store) -> list[tuple[str, str, str]]:
    """`wanted` without taking out of the registry a flag that a membership will still name: a later change
    gave it one, and registered it with it (implied, so no audit entry says so, and no conflict is found).
    Undone, that registration would leave a flag in use unknown (FLAG_NOT_FOUND) to callers it does not name."""
    forgotten = {member for key, member, value in wanted if key == REGISTRY and not value}
    if not forgotten:
        return wanted
    _, state = await read_state(store, skipped=[])
    after = {(key, member) for key, member in state if key != REGISTRY and member in forgotten}
    after -= {(key, member) for key, member, value in wanted if not value}
    after |= {(key, member) for key, member, value in wanted if value and key != REGISTRY}
    named = {member for _, member in after}
    return [(key, member, value) for key, member, value in wanted if not (key == REGISTRY and member in named)]
