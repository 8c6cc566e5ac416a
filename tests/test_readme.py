"""The README's walk-through and its Operate section, run as a new user would, against `make dev-server`'s
program on a fresh redis-server: every command's output is exactly what the README shows (entry ids and
times aside, which no two runs share)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.servers import RedisServer
from tests.test_devserver import DevServer

ROOT = Path(__file__).resolve().parents[1]
FLIPPER = Path(sys.executable).with_name("flipper")
# What differs from run to run or machine to machine: audit entry ids (milliseconds-sequence), the times
# history prints, this machine's name in the local actor (the README's is `laptop`), and so column widths.
VARYING = [
    (re.compile(r"\b[0-9]{13}-[0-9]+\b"), "<entry>"),
    (re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"), "<time>"),
    (re.compile("@" + re.escape(socket.gethostname()) + r"\b"), "@laptop"),
    (re.compile(r" {2,}"), "  "),
]


def sections(text: str, *titles: str) -> str:
    """The README's text under the `## ` headings `titles`, in order."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return "".join(body for title, body in zip(parts[1::2], parts[2::2], strict=True) if title in titles)


def steps(text: str) -> Iterator[tuple[str, str]]:
    """Each `$ command` of the console blocks in `text`, with the lines shown after it as its output."""
    for block in re.findall(r"^```console\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        for step in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
            command, _, output = step.partition("\n")
            yield command, output


def normalized(text: str) -> str:
    for pattern, replacement in VARYING:
        text = pattern.sub(replacement, text)
    return text


def test_the_walk_through_and_operate_read_as_one_story(own_redis_server: RedisServer, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    story = list(steps(sections(readme, "Walk-through", "Operate")))
    assert len(story) >= 10  # the story is there: the seed's examples, then the operator's
    run_story(story, own_redis_server, tmp_path)


def run_story(story: list[tuple[str, str]], own_redis_server: RedisServer, tmp_path: Path) -> None:
    """Each command against a dev server on `own_redis_server`, its output compared with the one shown."""
    env = {name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "NO_COLOR")}
    env.update(REDIS_URL=own_redis_server.url, USER="alice", LOGNAME="alice", TERM="dumb")
    server = DevServer(env)
    try:
        for command, shown in story:
            # The README's addresses, made this test's: its redis-server, its dev server, this .venv's flipper;
            # redis-cli --no-raw and curl -s print as they do on a terminal (curl's body ends the line there).
            local = (
                command.replace("redis-cli", f"redis-cli --no-raw -p {own_redis_server.port}")
                .replace("curl ", "curl -s -w '\\n' ")
                .replace("http://localhost:5000", server.base_url)
                .replace(".venv/bin/flipper", str(FLIPPER))
            )
            ran = subprocess.run(
                ["bash", "-c", local],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # what the user sees, both streams
                text=True,
                timeout=60,
                check=False,
            )
            assert ran.returncode == 0, (command, ran.stdout)
            assert normalized(ran.stdout) == normalized(shown), command
    finally:
        server.stop()


def test_the_rules_section_reads_as_it_runs(own_redis_server: RedisServer, tmp_path: Path) -> None:
    """README's targeting rules and schedule, on a fresh store: the CLI's words and the answers as shown."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    story = list(steps(sections(readme, "Targeting rules and schedules")))
    assert [command.split()[1] for command, _ in story if command.startswith(".venv")] == ["rule", "schedule"]
    run_story(story, own_redis_server, tmp_path)
