"""Flags files through the `flipper` command and the console: bombs, duplicates, errors that name their place,
JSON exports as the YAML writes them, and warnings for names that look like others."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bench.servers import RedisServer
from flipper.core.settings import Settings
from flipper.operate import console, flagsfile
from flipper.operate.backends import RedisBackend
from tests.test_cli import flags, flipper
from tests.test_flagsfile import BOMB

__all__ = ["flags"]  # the fixture, shared with tests/test_cli.py


def apply(capsys: pytest.CaptureFixture[str], path: Path, content: bytes, *options: str) -> tuple[int, str, str]:
    path.write_bytes(content)
    return flipper(capsys, "apply", str(path), *options)


def test_a_yaml_bomb_is_refused_at_once_naming_the_line(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    started = time.monotonic()
    code, out, err = apply(capsys, tmp_path / "bomb.yaml", BOMB.encode(), "--dry-run")
    assert time.monotonic() - started < 5
    assert (code, out) == (1, "")
    assert err == (
        f"flipper: error: {tmp_path / 'bomb.yaml'}, line 1: anchors (&a) are not allowed in a flags file: remove it\n"
    )


def test_the_command_reads_no_more_of_a_file_than_the_console_takes(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert console.MAX_UPLOAD == flagsfile.MAX_BYTES
    path = tmp_path / "big.yaml"
    code, _, err = apply(capsys, path, b"#" * flagsfile.MAX_BYTES + b"\n")
    assert (code, err) == (1, f"flipper: error: {path} is larger than 1024 KiB, the limit for a flags file\n")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (
            b"flipper: 1\nfeatures:\n  dup:\n    enabled: [global]\n  dup: {}\n",
            "line 5: key 'dup' appears twice (first on line 3): keep one",
        ),
        (
            b"flipper: 1\nfeatures:\n  a:\n    enabled: [global]\n    enabled: [user:u]\n",
            "line 5: key 'enabled' appears twice (first on line 4): keep one",
        ),
        (
            b"flipper: 1\nfeatures:\n  a:\n    enabled: ['group:']\n",
            "line 4: feature 'a', enabled: group name is empty",
        ),
        (
            b"flipper: 1\nfeatures:\n  caf\xef: {}\n",
            "line 3: not UTF-8 (byte 0xef at offset 26): save the file as UTF-8",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file_and_line_and_writes_nothing(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, error: str
) -> None:
    keys = sorted(flags.keys("*"))
    path = tmp_path / "flags.yaml"
    assert apply(capsys, path, content) == (1, "", f"flipper: error: {path}, {error}\n")
    assert sorted(flags.keys("*")) == keys


def test_stdin_is_read_as_bytes_and_named(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"flipper: 1\nfeatures:\n  on: {}\n")))
    assert flipper(capsys, "apply", "-") == (
        1,
        "",
        "flipper: error: -, line 3: the key on reads as a bool, not text: quote it: 'on':\n",
    )


def test_export_json_writes_percentages_as_numbers_as_the_yaml_does(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    flipper(capsys, "rollout", "search", "97.601", "--group", "beta")
    flipper(capsys, "rollout", "search", "100", "--global")
    code, out, _ = flipper(capsys, "export", "--json")
    assert code == 0
    assert json.loads(out)["features"]["search"] == {"rollout": {"global": 100, "group:beta": 97.601}}
    assert '"global": 100,' in out
    path = tmp_path / "flags.json"
    path.write_text(out, encoding="utf-8")
    assert flipper(capsys, "apply", str(path), "--dry-run")[0] == 0  # it reads back as the same flags


def test_names_that_look_like_others_are_warned_about_on_stderr(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    content = (
        "flipper: 1\nfeatures:\n  \u0441heckout:\n    enabled: [group:be\u200bta]\n  checkout: {enabled: [global]}\n"
    )
    code, out, err = apply(capsys, tmp_path / "flags.yaml", content.encode(), "--dry-run")
    assert code == 2
    assert "+ \u0441heckout enabled at group:be\\u200bta" in out
    assert err.splitlines() == [  # in the plan's order: by feature, then entity
        "flipper: warning: feature name '\u0441heckout' mixes scripts (U+0441 CYRILLIC SMALL LETTER ES among LATIN"
        " letters): check it is the name you mean",
        "flipper: warning: group name 'be\\u200bta' holds U+200B ZERO WIDTH SPACE, an invisible character: check it"
        " is the name you mean",
    ]


# The console: uploads are parsed off the event loop.


async def test_the_console_answers_while_an_upload_is_parsed(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard = console.guard_for("127.0.0.1", 8765, token="token")
    backend = RedisBackend(Settings.from_environ({"REDIS_URL": redis_server.url}), actor="tester")
    app = console.create_app(backend, guard, "test")
    parsing, answered, seen = threading.Event(), threading.Event(), []
    read = flagsfile.read

    def slow_read(*arguments: Any) -> Any:
        parsing.set()
        seen.append(answered.wait(timeout=10))  # True only if GET / was answered meanwhile
        return read(*arguments)

    monkeypatch.setattr(flagsfile, "read", slow_read)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1:8765",
        cookies={guard.cookie: guard.token},
    ) as client:
        upload = asyncio.create_task(
            client.post(
                "/preview/apply",
                data={"csrf": guard.csrf, "revision": "0", "back": ""},
                files={"flags_file": ("flags.yaml", b"flipper: 1\nfeatures:\n  dup: {}\n  dup: {}\n")},
            )
        )
        assert await asyncio.to_thread(parsing.wait, 10)
        page = await client.get("/")
        answered.set()
        refused = await upload
    await backend.aclose()
    assert page.status_code == 200
    assert seen == [True]
    assert refused.status_code == 400
    assert "flags.yaml, line 4: key &#39;dup&#39; appears twice (first on line 3): keep one" in refused.text
