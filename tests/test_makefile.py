"""`make help`: every documented target, each description starting in one column."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_documented_target_in_one_column() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not on PATH")
    documented = re.findall(r"^([a-zA-Z_-]+):.*## ", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    lines = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "help"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [line.split()[0] for line in lines] == documented
    # The description starts two spaces after the longest name, on every line.
    column = 2 + max(map(len, documented)) + 2
    assert [(line[column - 2 : column], line[column] != " ") for line in lines] == [("  ", True)] * len(lines)
