"""Tests that need a program: skipped with the reason when it is missing, or failed where CI requires it."""

from __future__ import annotations

import os
import shutil

import pytest

# CI sets these so that a missing redis-server, or chromium, fails the run instead of skipping the tests.
REQUIRE_REDIS = os.environ.get("FLIPPER_REQUIRE_REDIS") == "1"
REQUIRE_BROWSER = os.environ.get("FLIPPER_REQUIRE_BROWSER") == "1"
# Debian's chromium: Playwright drives it (its own browser download cannot run here).
CHROMIUM = "/usr/bin/chromium"


def skip_without(program: str) -> None:
    """Skip (or, under FLIPPER_REQUIRE_REDIS=1, fail) when `program` is not on PATH."""
    reason = f"{program} is not on PATH (apt-get install redis-server); real-Redis tests need it"
    _unless(shutil.which(program) is not None, reason, REQUIRE_REDIS)


def skip_without_chromium() -> None:
    """Skip (or, under FLIPPER_REQUIRE_BROWSER=1, fail) when Debian's chromium is not installed."""
    reason = f"{CHROMIUM} is missing (apt-get install chromium); the console's browser tests need it"
    _unless(os.access(CHROMIUM, os.X_OK), reason, REQUIRE_BROWSER)


def _unless(present: bool, reason: str, required: bool) -> None:
    if not present:
        if required:
            pytest.fail(reason)
        pytest.skip(reason)
