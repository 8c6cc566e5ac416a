"""Usage: how many evaluations named each feature, and when the last one did, for finding stale flags.

Each instance counts in memory (a Counter update of the names its answer already holds) and adds its counts
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
from collections.abc import Callable, Iterable

from flipper.core import names
from flipper.core.connection import StoreError
from flipper.core.settings import Settings
from flipper.core.store import Store

logger = logging.getLogger("flipper")

Clock = Callable[[], float]


class Usage:
    """One instance's evaluation counts since its last flush, and the flushes.

    `clock` (monotonic seconds) times the interval and the last evaluation; `wall` (Unix seconds) stamps
    the flush. Both are injectable, so that tests move time instead of sleeping.
    """

    def __init__(self, store: Store, settings: Settings, clock: Clock = time.monotonic, wall: Clock = time.time):
        self.store, self.settings = store, settings
        self._clock, self._wall = clock, wall
        self._counts: collections.Counter[str] = collections.Counter()
        self._last = 0.0  # when the last evaluation counted since the last flush was recorded (clock)
        self._flushed_at = clock()
        self.flushing: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> Usage | None:
        """The instance's usage counter, or None when FLIPPER_USAGE is off."""
        return cls(store, settings) if settings.usage else None

    def record(self, named: Iterable[str]) -> None:
        """Count one evaluation that named `named`; start a flush in the background when one is due.

        The counts taken for a flush are those recorded before this evaluation: every evaluation a flush
        carries lies within one interval, so the flush's single last-seen time is late by less than one.
        """
        now = self._clock()
        if now - self._flushed_at >= self.settings.usage_flush_seconds and self.flushing is None:
            self._flushed_at = now
            if self._counts:
                self.flushing = asyncio.get_running_loop().create_task(self._flush(*self._take(now)))
        self._counts.update(named)
        self._last = now

    def _take(self, now: float) -> tuple[collections.Counter[str], int]:
        """The counts so far, emptied, and the wall-clock time of the last evaluation among them (ms)."""
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
                if self._counts:
                    await self._flush(*self._take(self._clock()))
        except TimeoutError:
            logger.warning("usage not flushed within %g s of shutdown; the last interval's counts are lost", seconds)
