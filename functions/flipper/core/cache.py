"""The function instance's cache of flag keys and answers, validated by the store's revision (issue 11).

Every write through Flipper's write path INCRs `<prefix>revision` and sets `<prefix>revision:stamp` to a
random token of its own; the revision is the two together, so a count that went back (a flush, a restart
without persistence, a lagging replica promoted) and was written up again is not the revision known
(issue 20). Each evaluation still makes its one
script call (shared with the evaluations that arrived with it: `batches`), sending the revision this
instance knows and which of the caller's keys it holds at that revision and younger than
FLIPPER_CACHE_MAX_AGE; the script answers with the revision alone when nothing
is needed, else with the revision and the contents of the keys needed (all of them when the revision
changed: then any key held may be stale). Writes around Flipper (a raw `redis-cli SADD`) do not bump the
revision: a key is read again once it is older than the max age.

Answers are reused too: one computed from the very same key entries (compared by identity; an entry whose
contents are read again unchanged is kept, so answers survive writes to other callers' keys) is the same
body and ETag, until the time it is valid until: an answer that consulted a targeting rule on the time of the
evaluation (`now after T`) is computed again once the first such boundary ahead of it has passed, with no
write and whatever the max age.
"""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from typing import Any

# A cached key's contents: the members of a set, a rollout's thousandths per feature, a values hash's values
# per feature (`model.Value`), the variants per feature (tuples of `model.Variant`), or the targeting rules
# per feature (tuples of `rules.Rule`).
Contents = frozenset[str] | Mapping[str, Any]
_OVERHEAD = 200  # bytes per cache slot besides its contents: the entry, the LRU's node, the key


class Entry:
    """One key's contents as read at `revision` with `stamp` (`replies.revision`), sent for at `read_at`
    (monotonic seconds)."""

    __slots__ = ("contents", "read_at", "revision", "size", "stamp")

    def __init__(self, contents: Contents, revision: int, read_at: float, stamp: str | None = None) -> None:
        self.contents, self.revision, self.stamp, self.read_at = contents, revision, stamp, read_at
        self.size = _OVERHEAD + sys.getsizeof(contents) + sum(map(sys.getsizeof, contents))
        if isinstance(contents, Mapping):  # what the features map to: percentages, values, variants
            self.size += sum(map(_size, contents.values()))


def _size(item: object) -> int:
    """A hash's field value in bytes: a tuple of variants or rules counted with each one (their `__sizeof__`)."""
    return sys.getsizeof(item) + (sum(map(sys.getsizeof, item)) if isinstance(item, tuple) else 0)


class Answer:
    """A rendered answer (body and ETag), the features it names (what usage counts), the entries it was
    computed from, and the wall-clock time (seconds since the epoch) it is valid until (None: for ever)."""

    __slots__ = ("body", "entries", "named", "size", "tag", "valid_until")

    def __init__(
        self, entries: tuple[Entry, ...], body: bytes, tag: str, named: Sequence[str], valid_until: float | None
    ) -> None:
        self.entries, self.body, self.tag, self.named, self.valid_until = entries, body, tag, named, valid_until
        # The names are the key entries' own strings: only the sequence holding them is the answer's.
        self.size = _OVERHEAD + len(body) + len(tag) + sys.getsizeof(named)


class Cache:
    """A bounded LRU of key entries and answers sharing one byte budget, and the revision (count and stamp)
    the last call saw.

    Sizes are estimates from `sys.getsizeof` of the contents and their members, plus a fixed overhead.
    """

    def __init__(self, max_age: float, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age, self.max_bytes, self.clock = max_age, max_bytes, clock
        self.revision: int | None = None
        self.stamp: str | None = None
        self.size = 0
        self._slots: collections.OrderedDict[Hashable, Entry | Answer] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._slots)

    def clear(self) -> None:
        """Forget everything: Redis restarted, failed over or was flushed, or failed to answer."""
        self._slots.clear()
        self.size = 0
        self.revision = self.stamp = None

    def held(self, keys: Collection[str], now: float) -> list[Entry | None]:
        """For each key, the entry that may be used without reading it again, if any: read at the revision
        the last call saw, stamp included, and younger than the max age."""
        held: list[Entry | None] = []
        for key in keys:
            entry = self._slots.get(key)
            if (
                isinstance(entry, Entry)
                and (entry.revision, entry.stamp) == (self.revision, self.stamp)
                and now - entry.read_at < self.max_age
            ):
                self._slots.move_to_end(key)
                held.append(entry)
            else:
                held.append(None)
        return held

    def store(self, key: str, contents: Contents, revision: int, read_at: float, stamp: str | None = None) -> Entry:
        """Remember `key`'s contents. An entry whose contents did not change is kept (refreshed), so that
        answers computed from it stay valid. The store's calls are one at a time (`batches`): each reply is
        the newest the instance has seen, so an entry is refreshed to its revision whatever it held before."""
        entry = self._slots.get(key)
        if isinstance(entry, Entry) and entry.contents == contents:
            entry.revision, entry.stamp, entry.read_at = revision, stamp, read_at
            self._slots.move_to_end(key)
            return entry
        entry = Entry(contents, revision, read_at, stamp)
        self._put(key, entry)
        return entry

    def answer(
        self,
        what: Hashable,
        entries: tuple[Entry, ...],
        now: float,
        render: Callable[[], tuple[bytes, str, Sequence[str], float | None]],
    ) -> Answer:
        """The answer to `what` computed from `entries` at the wall-clock time `now`: reused when it was
        computed from the very same entries and `now` is before the time it is valid until, else rendered
        (`render` returns body, ETag, the features named and the time valid until) and remembered."""
        key = ("answer", what)
        answer = self._slots.get(key)
        if (
            isinstance(answer, Answer)
            and (answer.valid_until is None or now < answer.valid_until)
            and len(answer.entries) == len(entries)
            and all(old is new for old, new in zip(answer.entries, entries, strict=True))
        ):
            self._slots.move_to_end(key)
            return answer
        answer = Answer(entries, *render())
        self._put(key, answer)
        return answer

    def _put(self, key: Hashable, slot: Entry | Answer) -> None:
        old = self._slots.pop(key, None)
        if old is not None:
            self.size -= old.size
        if slot.size > self.max_bytes:
            return  # larger than the whole budget: never held
        self._slots[key] = slot
        self.size += slot.size
        while self.size > self.max_bytes:
            _, evicted = self._slots.popitem(last=False)
            self.size -= evicted.size
