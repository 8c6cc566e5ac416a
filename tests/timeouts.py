"""Timeouts for tests about something other than timeouts."""

from __future__ import annotations

import dataclasses

from flipper.core.settings import Settings

# Production fails fast (a 0.25 s connect, a 0.5 s command: a Lambda must answer 503 quickly). On a busy
# two-core CI runner one event-loop stall can outlast those on loopback and fail a test about something
# else. The tests that measure timeouts build their stores with the timeouts they measure.
PATIENT = 5.0


def patient(settings: Settings) -> Settings:
    """`settings` with connect and command timeouts no loaded machine outlasts."""
    return dataclasses.replace(
        settings,
        connect_timeout=max(settings.connect_timeout, PATIENT),
        command_timeout=max(settings.command_timeout, PATIENT),
    )


# Seconds without a command after which a test's store counts as idle (FLIPPER_REDIS_IDLE_RECONNECT): long
# enough that a stall between two commands a test sends back to back does not pass for idleness.
IDLE = 1.0
