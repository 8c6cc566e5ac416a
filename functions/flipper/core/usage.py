"""Usage: how many evaluations named each feature, and when the last one did, for finding stale flags.

Each instance counts in memory (a tally per distinct answer of the names it already holds) and adds its counts
to Redis in one lua/usage.lua call at most every FLIPPER_USAGE_FLUSH_SECONDS, in a background task started
by the first evaluation after the interval: never on an evaluation's response path, and never when nothing
was counted. In Lambda the event loop runs only during invocations, so a flush started by one invocation may
complete during the next. At shutdown (the ASGI lifespan; Lambda's SIGTERM) what is left is flushed within a
short bound.

Approximate by design: a flush that fails, or an instance that dies, loses that interval's counts (at most
one interval), and a feature's last seen is the time of the last evaluation of the interval that named it,
so it is late by less than one interval. The evaluation script stays read-only; usage writes neither the
revision nor the audit.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from flipper.core import names
from flipper.core.connection import StoreError
from flipper.core.settings import Settings
from flipper.core.store import Store

logger = logging.getLogger("flipper")

Clock = Callable[[], float]
# Distinct answers tallied before they are folded into per-feature counts, and the most bytes of them
# held meanwhile: bounds the memory between flushes, whatever the callers ask.
FOLD_AT = 64
FOLD_BYTES = 1 << 20


class Usage:
    """One instance's evaluation counts since its last flush, and the flushes.

    `clock` (monotonic seconds) times the interval and the last evaluation; `wall` (Unix seconds) stamps
    the flush. Both are injectable, so that tests move time instead of sleeping.
    """

    def __init__(self, store: Store, settings: Settings, clock: Clock = time.monotonic, wall: Clock = time.time):
        self.store, self.settings = store, settings
        self._clock, self._wall = clock, wall
        self._counts: collections.Counter[str] = collections.Counter()
        self._tallies: dict[bytes, list[Any]] = {}  # an answer's body -> [the features it names, evaluations]
        self._held = 0  # bytes of the bodies tallied
        self._last = 0.0  # when the last evaluation counted since the last flush was recorded (clock)
        self._flushed_at = clock()
        self.flushing: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> Usage | None:
        """The instance's usage counter, or None when FLIPPER_USAGE is off."""
        return cls(store, settings) if settings.usage else None

    def record(self, body: bytes, named: Sequence[str]) -> None:
        """Count one evaluation whose answer `body` named `named`; start a flush in the background when one
        is due.

        The counts taken for a flush are those recorded before this evaluation: every evaluation a flush
        carries lies within one interval, so the flush's single last-seen time is late by less than one.

        Tallied by the body, which names its features (every answer's does): a caller asking again gets the
        same bytes, the very same object from the cache, so an evaluation costs a lookup by bytes however
        many features it names. Counting the large data set's 375 names per evaluation instead cost 20 to
        70 µs (the names read from Redis are new strings each time), a tenth of a cached evaluation.
        """
        now = self._clock()
        if now - self._flushed_at >= self.settings.usage_flush_seconds and self.flushing is None:
            self._flushed_at = now
            if self._tallies or self._counts:
                self.flushing = asyncio.get_running_loop().create_task(self._flush(*self._take(now)))
        tally = self._tallies.get(body)
        if tally is None:
            if len(self._tallies) >= FOLD_AT or self._held > FOLD_BYTES:
                self._fold()
            self._tallies[body] = [named, 1]
            self._held += len(body)
        else:
            tally[1] += 1
        self._last = now

    def _fold(self) -> None:
        """The tallies into per-feature counts."""
        for named, evaluations in self._tallies.values():
            # Counter.update of a sequence counts in C; of a mapping, in Python: the common case goes first.
            self._counts.update(named if evaluations == 1 else dict.fromkeys(named, evaluations))
        self._tallies.clear()
        self._held = 0

    def _take(self, now: float) -> tuple[collections.Counter[str], int]:
        """The counts so far, emptied, and the wall-clock time of the last evaluation among them (ms)."""
        self._fold()
        counts, self._counts = self._counts, collections.Counter()
        return counts, round((self._wall() - (now - self._last)) * 1000)

    async def _flush(self, counts: collections.Counter[str], seen_ms: int) -> None:
        counted = [(feature, n, seen_ms) for feature, n in counts.items() if self._countable(feature)]
        evaluations = sum(n for _, n, _ in counted)
        try:
            dropped = await self.store.add_usage(self.settings.usage_max_features, round(self._wall() * 1000), counted)
        except StoreError as exc:
            logger.warning(
                "usage flush failed; lost %d evaluations of %d features (this interval's): %s",
                evaluations,
                len(counted),
                exc,
            )
            return
        finally:
            self.flushing = None
        logger.info("usage flushed: %d evaluations of %d features", evaluations, len(counted))
        if dropped:
            logger.warning(
                "usage holds FLIPPER_USAGE_MAX_FEATURES=%d features: %d new ones not counted (flipper usage names them;"
                " flipper delete NAME forgets one)",
                self.settings.usage_max_features,
                dropped,
            )

    def _countable(self, feature: str) -> bool:
        """Whether `feature` is a name the API could be asked about: only such names are stored (a member
        written around Flipper may be any text)."""
        try:
            names.check_name("feature name", feature, self.settings)
        except names.InvalidName:
            return False
        return True

    async def close(self, seconds: float) -> None:
        """Flush everything counted, within `seconds` (a shutdown cannot wait): the flush in flight, then the rest."""
        try:
            async with asyncio.timeout(seconds):
                if self.flushing is not None:
                    await self.flushing
                if self._tallies or self._counts:
                    await self._flush(*self._take(self._clock()))
        except TimeoutError:
            logger.warning("usage not flushed within %g s of shutdown; the last interval's counts are lost", seconds)
