"""Tests that need a program: skipped with the reason when it is missing, or failed where CI requires it."""

from __future__ import annotations

import os
import shutil

import pytest

# CI sets this so that a missing redis-server fails the run instead of skipping the real-Redis tests.
REQUIRE_REDIS = os.environ.get("FLIPPER_REQUIRE_REDIS") == "1"


def skip_without(program: str) -> None:
    """Skip (or, under FLIPPER_REQUIRE_REDIS=1, fail) when `program` is not on PATH."""
    if shutil.which(program) is None:
        reason = f"{program} is not on PATH (apt-get install redis-server); real-Redis tests need it"
        if REQUIRE_REDIS:
            pytest.fail(reason)
        pytest.skip(reason)
