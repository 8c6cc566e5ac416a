"""The `flipper` command on a real redis-server: output for people and for scripts, exit codes, one-line errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bench.servers import RedisServer, free_port
from flipper.core import devstore, model
from flipper.operate.backends import DIRECT, RedisBackend
from flipper.operate.cli import main


@pytest.fixture
def flags(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """The seed's example flags written with plain commands, and REDIS_URL pointing at them."""
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    client.flushall()
    client.sadd("version:v1:positive", "feature_A", "feature_B")
    client.sadd("group:g1:negative", "feature_B")
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.delenv("FLIPPER_KEY_PREFIX", raising=False)
    yield client
    client.close()


def flipper(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_walk_through_writes_with_the_cli_serve_the_same_answers(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = flipper(capsys, "enable", "special_g1_feature", "--group", "g1", "--actor", "ana", "-m", "try")
    assert (code, err) == (0, "")
    assert out.startswith("enabled special_g1_feature for group:g1 (revision 1, entry ")
    assert flipper(capsys, "show", "--version", "v1", "--group", "g1")[1] == "feature_A\nspecial_g1_feature\n"
    assert flipper(capsys, "enable", "special_g1_feature", "--group", "g1")[1] == (
        "special_g1_feature is already enabled for group:g1; nothing changed (revision 1)\n"
    )
    assert flipper(capsys, "list")[1].splitlines() == [
        "FEATURE             ENABLED     DISABLED  ROLLOUT",
        "feature_A           version:v1  -         -",
        "feature_B           version:v1  group:g1  -",
        "special_g1_feature  group:g1    -         -",
    ]
    code, out, _ = flipper(capsys, "history", "--json")
    [entry] = json.loads(out)["entries"]
    # Directly on Redis nothing proves who ran the command: --actor (or user@host) is recorded as a claim.
    assert (entry["actor"], entry["claimed_by"], entry["operation"], entry["message"]) == (
        DIRECT,
        "ana",
        "enable",
        "try",
    )
    history = flipper(capsys, "history")[1].splitlines()
    assert history[0].split() == ["ENTRY", "TIME", "ACTOR", "OPERATION", "CHANGES", "MESSAGE"]
    assert history[1].split()[2:] == [
        "ana",
        "(claimed)",
        "enable",
        "special_g1_feature",
        "enabled",
        "at",
        "group:g1",
        "try",
    ]


def test_explain_and_show_print_json_for_scripts(flags: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = flipper(capsys, "explain", "feature_B", "--version", "v1", "--group", "g1")
    assert (code, out) == (
        0,
        "feature_B: off (TARGETING_MATCH)\n  enabled by  version:v1:positive\n  disabled by group:g1:negative\n",
    )
    code, out, _ = flipper(capsys, "show", "--version", "v1", "--json")
    assert (code, json.loads(out)) == (0, {"features": ["feature_A", "feature_B"]})


def test_rollout_and_delete(flags: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    assert flipper(capsys, "rollout", "feature_A", "12.5", "--group", "beta")[0] == 0
    assert flags.hgetall("group:beta:rollout") == {"feature_A": "12.5"}
    flipper(capsys, "rollout", "search", "97.601", "--group", "gamma")  # bucket 97600 (tests/test_rollout.py)
    assert flipper(capsys, "explain", "search", "--group", "gamma", "--user", "User;1")[1].splitlines() == [
        "search: on (SPLIT)",
        "  enabled by  group:gamma:rollout",
        "  rollout     group:gamma:rollout at 97.601%: user's bucket 97600",
    ]
    assert "group:beta 12.5%" in flipper(capsys, "list")[1]
    assert flipper(capsys, "rollout", "feature_A", "0", "--group", "beta")[0] == 0
    assert flags.exists("group:beta:rollout") == 0
    code, out, _ = flipper(capsys, "delete", "feature_B", "--json")
    # feature_B, written with redis-cli before the first write, was registered by it: delete unregisters it too.
    assert (code, sorted(change[0] for change in json.loads(out)["changes"])) == (
        0,
        ["features", "group:g1:negative", "version:v1:positive"],
    )


def test_export_then_apply_elsewhere_and_apply_again_changes_nothing(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flipper(capsys, "rollout", "feature_A", "33.333", "--version", "v2")
    exported = tmp_path / "flags.yaml"
    code, _, err = flipper(capsys, "export", "-o", str(exported))
    assert (code, err) == (0, f"wrote 2 features to {exported} (revision 1)\n")
    assert "33.333" in exported.read_text()
    monkeypatch.setenv("FLIPPER_KEY_PREFIX", "{copy}:")
    code, out, _ = flipper(capsys, "apply", str(exported), "--dry-run")
    assert code == 2
    assert out.splitlines()[0] == "plan against revision 0: 4 membership changes"
    assert "  + feature_A rollout at version:v2: - → 33.333" in out.splitlines()
    assert flags.keys("{copy}:*") == []
    assert flipper(capsys, "apply", str(exported))[0] == 0
    assert flipper(capsys, "apply", str(exported)) == (0, "no changes (revision 1)\n", "")
    assert flipper(capsys, "apply", str(exported), "--dry-run") == (0, "no changes (revision 1)\n", "")
    monkeypatch.delenv("FLIPPER_KEY_PREFIX")
    assert flipper(capsys, "export")[1] == exported.read_text()


def test_apply_reads_stdin_and_prunes(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"flipper: 1\nfeatures:\n  feature_A:\n    enabled: [global]\n"))
    monkeypatch.setattr(sys, "stdin", stdin)  # with bytes beneath, as a real stdin: apply reads bytes
    code, out, _ = flipper(capsys, "apply", "-", "--prune", "--json")
    # feature_A moved to global; feature_B out of both its sets, and no longer known (pruned: not in the file).
    assert (code, len(json.loads(out)["changes"])) == (0, 5)
    assert flipper(capsys, "show")[1] == "feature_A\n"
    assert flags.smembers("features") == {"feature_A"}


def test_undo_and_its_refusal(flags: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    first = json.loads(flipper(capsys, "disable", "feature_A", "--global", "--json")[1])
    later = json.loads(flipper(capsys, "enable", "feature_A", "--global", "--json")[1])
    code, _, err = flipper(capsys, "undo", first["entry"])
    assert (code, err) == (
        1,
        f"flipper: error: entry {later['entry']} changed the same flags since {first['entry']}; "
        "--force undoes anyway\n",
    )
    undone = flipper(capsys, "undo", later["entry"])[1]
    assert undone.startswith(f"undid {later['entry']} (revision 3, entry ")
    undo_entry = undone.rpartition(" ")[2].removesuffix(")\n")
    code, _, err = flipper(capsys, "undo", first["entry"])  # the undo changed them too: two entries now
    assert (code, err) == (
        1,
        f"flipper: error: entries {later['entry']}, {undo_entry} changed the same flags since {first['entry']}; "
        "--force undoes anyway\n",
    )


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["enable", "a", "--global", "--colour"], "No such option: --colour"),
        (["enable", "a"], "give exactly one of --global, --version, --group or --user"),
        (["enable", "a", "--global", "--group", "g"], "give exactly one of --global, --version, --group or --user"),
        (["enable", "", "--global"], "feature name is empty"),
        (["enable", "x" * 300, "--global"], "feature name is 300 characters long; the limit is 256"),
        (["enable", "a", "--group", ""], "group name is empty"),
        (["rollout", "a", "50", "--user", "u"], "a rollout is per global, version or group, not per user: a user is"),
        (["enable", "a\udcff", "--global"], "argument FEATURE ('a\\xff') is not valid UTF-8"),
        (["show", "--group", "g\udcff"], "option --group ('g\\xff') is not valid UTF-8"),
        (["apply", "\udcff.yaml"], "Invalid value for 'FILE': File '\ufffd.yaml' does not exist."),  # any bytes
        (["rollout", "a", "1e2", "--global"], "percentage '1e2' is not a number from 0 to 100 with at most"),
        (["history", "--limit", "0"], "Invalid value for '--limit': 0 is not in the range x>=1."),
        (["undo", "yesterday"], "'yesterday' is not an audit entry id such as 1700000000000-0"),
        (["frobnicate"], "No such command 'frobnicate'."),
    ],
)
def test_bad_input_is_one_line_exit_1_and_writes_nothing(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    keys = sorted(flags.keys("*"))
    code, out, err = flipper(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith(f"flipper: error: {error}")
    assert err.count("\n") == 1
    assert sorted(flags.keys("*")) == keys


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("flipper: 1\nfeatures: [a\n", "line 3: not valid YAML"),
        ("flipper: 2\nfeatures: {}\n", "the flags file must say 'flipper: 1'"),
        ("flipper: 1\nfeatures:\n  a:\n    enabled: [everyone]\n", "entity 'everyone' is not global"),
        ("flipper: 1\nfeatures:\n  a:\n    rollout: {global: 100.0001}\n", "feature 'a', rollout at 'global'"),
    ],
)
def test_a_bad_flags_file_is_refused_naming_the_problem(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, error: str
) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(content, encoding="utf-8")
    code, _, err = flipper(capsys, "apply", str(path))
    assert code == 1
    assert error in err
    assert err.count("\n") == 1
    assert flags.get("revision") is None


def test_an_unreachable_redis_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = flipper(capsys, "enable", "a", "--global", "--redis-url", f"redis://127.0.0.1:{free_port()}")
    assert (code, out) == (1, "")
    assert err.startswith("flipper: error: the flag store is unreachable: ")
    assert err.count("\n") == 1


def test_no_store_named_says_how_to_name_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("REDIS_URL", "FLIPPER_FUNCTION", "FLIPPER_STACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # no dev server has recorded its store here
    code, _, err = flipper(capsys, "list")
    assert (code, err) == (
        1,
        "flipper: error: no flag store: give --redis-url (or REDIS_URL), or --function/--stack for the deployed"
        " one, or start `make dev-server`\n",
    )


def test_without_a_url_it_finds_the_running_dev_servers_store(
    flags: redis.Redis,
    redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    devstore.record(redis_server.url)  # as `make dev-server` does for its embedded store
    assert flipper(capsys, "show", "--version", "v1") == (0, "feature_A\nfeature_B\n", "")


def test_the_installed_console_script_runs(flags: redis.Redis) -> None:
    script = Path(sys.executable).with_name("flipper")
    done = subprocess.run(
        [str(script), "show", "--version", "v1"], capture_output=True, text=True, env=os.environ, timeout=30
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "feature_A\nfeature_B\n", "")
    failed = subprocess.run([str(script), "enable"], capture_output=True, text=True, env=os.environ, timeout=30)
    assert (failed.returncode, failed.stderr) == (
        1,
        "flipper: error: Missing argument 'FEATURE'. (see flipper enable --help)\n",
    )
    assert subprocess.run([str(script), "--help"], capture_output=True, env=os.environ).returncode == 0


def test_yaml_1_1_surprises_are_refused_or_read_as_written(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text("flipper: 1\nfeatures:\n  on:\n    enabled: [global]\n", encoding="utf-8")  # `on` is true
    assert flipper(capsys, "apply", str(path))[:3] == (
        1,
        "",
        f"flipper: error: {path}, line 3: the key on reads as a bool, not text: quote it: 'on':\n",
    )
    path.write_text("flipper: 1\nfeatures:\n  a:\n    rollout: {global: 010}\n", encoding="utf-8")  # not octal 8
    assert flipper(capsys, "apply", str(path))[0] == 0
    assert flags.hgetall("global:rollout") == {"a": "10"}


def test_names_with_control_characters_are_shown_escaped(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    flags.sadd("global:positive", "evil\x1b[2J\r")
    out = flipper(capsys, "list")[1]
    assert "\x1b" not in out
    assert "\r" not in out
    assert "evil\\x1b[2J\\r" in out


def test_json_is_taken_before_the_command_as_after_it(flags: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    after = flipper(capsys, "list", "--json")
    before = flipper(capsys, "--json", "list")
    assert before == after
    assert json.loads(before[1])["features"]["feature_B"] == {"enabled": ["version:v1"], "disabled": ["group:g1"]}
    code, out, _ = flipper(capsys, "--json", "enable", "x", "--global")
    assert (code, json.loads(out)["revision"]) == (0, 1)


def test_an_argument_that_is_not_utf8_is_named(flags: redis.Redis) -> None:
    """The byte 0xFF as a shell passes it: Python decodes argv with surrogateescape, so it arrives as U+DCFF."""
    script = Path(sys.executable).with_name("flipper")
    done = subprocess.run(
        [str(script), "enable", b"a\xff", "--global"], capture_output=True, text=True, env=os.environ, timeout=30
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        "flipper: error: argument FEATURE ('a\\xff') is not valid UTF-8\n",
    )
    assert flags.get("revision") is None


def test_names_are_escaped_wherever_they_are_printed(flags: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = flipper(capsys, "enable", "harmless\nadmin_mode", "--global")
    assert (code, err) == (0, "")
    assert out.startswith("enabled harmless\\nadmin_mode for global (revision 1, entry ")
    assert out.count("\n") == 1
    assert flipper(capsys, "show") == (0, "harmless\\nadmin_mode\n", "")
    forged = "x\n  disabled by global:negative"  # a group name that would read as one more line of explain
    flipper(capsys, "enable", "feature_A", "--group", forged)
    assert flipper(capsys, "explain", "feature_A", "--group", forged)[1].splitlines() == [
        "feature_A: on (TARGETING_MATCH)",
        "  enabled by  group:x\\n  disabled by global:negative:positive",
    ]
    code, out, err = flipper(capsys, "show", "extra\x1b[2Jargument")  # click's own message echoes it
    assert (code, out) == (1, "")
    assert err == "flipper: error: Got unexpected extra argument (extra\\x1b[2Jargument) (see flipper show --help)\n"


def test_the_warnings_of_a_result_are_printed_escaped_on_stderr_and_kept_in_json(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    call = RedisBackend.call

    async def warning(self: RedisBackend, operation: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return {**await call(self, operation, arguments), "warnings": ["key 'global:positive\n' is a string"]}

    monkeypatch.setattr(RedisBackend, "call", warning)
    code, out, err = flipper(capsys, "list")
    assert (code, err) == (0, "flipper: warning: key 'global:positive\\n' is a string\n")
    assert out.startswith("FEATURE ")
    code, out, err = flipper(capsys, "list", "--json")
    assert (code, json.loads(out)["warnings"]) == (0, ["key 'global:positive\n' is a string"])
    assert err == "flipper: warning: key 'global:positive\\n' is a string\n"


def test_value_and_variants_set_clear_explain_and_history(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    flipper(capsys, "enable", "button_color", "--global")
    code, out, err = flipper(capsys, "value", "button_color", '"blue"', "--global")
    assert (code, err) == (0, "")
    assert out.startswith('set button_color to "blue" at global (revision 2, entry ')
    flipper(capsys, "value", "button_color", '{"shade": "green", "alpha": 1}', "--group", "beta")
    assert flags.hgetall("group:beta:values") == {"button_color": '{"alpha":1,"shade":"green"}'}
    assert flipper(capsys, "explain", "button_color", "--group", "beta", "--user", "alice")[1].splitlines() == [
        "button_color: on (STATIC)",
        "  enabled by  global:positive",
        '  value       {"alpha":1,"shade":"green"} from group:beta:values',
    ]
    code, out, _ = flipper(capsys, "value", "button_color", "--clear", "--group", "beta", "--json")
    assert (code, json.loads(out)["changes"]) == (
        0,
        [["group:beta:values", "button_color", '{"alpha":1,"shade":"green"}', ""]],
    )
    assert flipper(capsys, "value", "button_color", "--clear", "--group", "beta")[1] == (
        "button_color has no value at group:beta; nothing changed (revision 4)\n"
    )
    flipper(capsys, "enable", "checkout", "--global")
    code, out, _ = flipper(capsys, "variants", "checkout", 'classic=50:"classic"', 'one_page=50:{"steps": 1}')
    assert (code, out.split(" (")[0]) == (0, "split checkout between classic, one_page")
    explained = flipper(capsys, "explain", "checkout", "--user", "alice")[1].splitlines()
    bucket = model.variant_bucket("checkout", "alice")
    assert (
        explained[-1] == f"  variant     {'classic' if bucket < 50_000 else 'one_page'}: user's variant bucket {bucket}"
    )
    assert flipper(capsys, "list")[1].splitlines()[:2] == [
        "FEATURE       ENABLED     DISABLED  ROLLOUT  VALUES         VARIANTS",
        'button_color  global      -         -        global "blue"  -',
    ]
    assert (
        'checkout      global      -         -        -              classic=50:"classic", one_page=50:{"steps":1}'
        in (flipper(capsys, "list")[1].splitlines())
    )
    history = flipper(capsys, "history", "checkout")[1]
    assert 'checkout variants: - → classic=50:"classic", one_page=50:{"steps":1}' in history
    assert flipper(capsys, "variants", "checkout", "--clear")[1].startswith("cleared checkout's variants (revision ")
    assert flags.exists("global:variants") == 0


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (
            ["value", "f", "blue", "--global"],
            """VALUE 'blue' is not JSON (Expecting value): a string is quoted, as '"blue"'""",
        ),
        (["value", "f", "--global"], "give a VALUE (JSON) or --clear"),
        (["value", "f", "1", "--clear", "--global"], "give a VALUE (JSON) or --clear"),
        (["value", "f", "null", "--user", "u"], "a value must be a string, number, object or array, not null"),
        (["value", "f", "1"], "give exactly one of --global, --version, --group or --user"),
        (["variants", "f", "a=60:1", "b=30:2"], "the variants' weights sum to 90, not 100"),
        (["variants", "f", "a:1"], "variant 'a:1' is not NAME=WEIGHT:VALUE"),
        (["variants", "f", "a=50:1", "a=50:2"], "variant 'a' is given twice"),
        (["variants", "f", "a=100:x"], "variant 'a''s VALUE 'x' is not JSON"),
        (["variants", "f"], "give the variants (NAME=WEIGHT:VALUE ...) or --clear"),
        (["variants", "f", "a=100:1", "--clear"], "give the variants (NAME=WEIGHT:VALUE ...) or --clear"),
    ],
)
def test_a_bad_value_or_variant_is_one_line_exit_1_and_writes_nothing(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    code, out, err = flipper(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith(f"flipper: error: {error}")
    assert err.count("\n") == 1
    assert flags.get("revision") is None


def test_usage_and_stale_with_their_exit_codes(flags: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = flipper(capsys, "stale", "--unused-for", "30d")
    assert code == 2  # feature_A and feature_B: never evaluated
    assert out.splitlines() == [
        "FEATURE    LAST EVALUATED  LAST CHANGED",
        "feature_A  never           -",
        "feature_B  never           -",
    ]
    assert err == (
        "flipper: warning: no usage recorded yet (FLIPPER_USAGE off, or no flush yet): every flag looks unused\n"
    )
    now_ms = int(flags.time()[0]) * 1000
    for feature in ("feature_A", "feature_B"):
        flags.hset("usage:evaluations", feature, 7)
        flags.hset("usage:seen", feature, now_ms - 3_600_000)  # an hour ago
    flags.set("usage:since", now_ms - 90 * 86_400_000)
    code, out, err = flipper(capsys, "stale", "--unused-for", "30d")
    assert (code, err) == (0, "")
    assert out.startswith("no flag unused for 30d (evaluated since ")
    code, out, _ = flipper(capsys, "stale", "--unused-for", "90s", "--json")
    assert code == 2
    assert [row["feature"] for row in json.loads(out)["features"]] == ["feature_A", "feature_B"]
    flipper(capsys, "enable", "feature_A", "--global")
    code, out, _ = flipper(capsys, "usage")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["FEATURE", "FLAG", "EVALUATIONS", "LAST", "EVALUATED", "LAST", "CHANGED"]
    assert lines[1].split()[:3] == ["feature_A", "yes", "7"]
    assert lines[1].split()[4] == json.loads(flipper(capsys, "history", "--json")[1])["entries"][0]["time"]
    assert lines[2].split()[::4] == ["feature_B", "-"]  # changed around Flipper: no audit entry
    assert lines[-1].startswith("usage recorded since ")
    assert json.loads(flipper(capsys, "usage", "--json")[1])["features"][0]["evaluations"] == 7


def test_stale_refuses_a_duration_that_is_not_one(flags: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    assert flipper(capsys, "stale", "--unused-for", "30days") == (
        1,
        "",
        "flipper: error: duration '30days' is not a count of days, hours, minutes or seconds: 30d, 12h, 15m or 90s\n",
    )
    code, _, err = flipper(capsys, "stale")
    assert (code, err) == (1, "flipper: error: Missing option '--unused-for'. (see flipper stale --help)\n")


def test_the_prefix_names_an_environment_and_a_promotion_is_export_piped_to_apply(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert flipper(capsys, "enable", "checkout", "--version", "v1", "--prefix", "staging:")[0] == 0
    assert flipper(capsys, "rollout", "search", "25", "--global", "--prefix", "staging:")[0] == 0
    assert flags.smembers("staging:version:v1:positive") == {"checkout"}
    assert flipper(capsys, "show", "--version", "v1", "--prefix", "production:") == (0, "no features enabled\n", "")
    script = Path(sys.executable).with_name("flipper")
    promote = f"{script} export --prefix staging: | {script} apply --prefix production: - -m promote"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", promote], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        "plan against revision 0: 2 membership changes",
        "  + checkout enabled at version:v1",
        "  + search rollout at global: - → 25",
        done.stdout.splitlines()[-1],
    ]
    assert done.stdout.splitlines()[-1].startswith("applied 2 changes (revision 1, entry ")
    assert (
        flipper(capsys, "export", "--prefix", "production:")[1] == flipper(capsys, "export", "--prefix", "staging:")[1]
    )
    assert flags.smembers("version:v1:positive") == {"feature_A", "feature_B"}  # the unprefixed flags: untouched
    # The production history names the promotion; the staging one its own two changes.
    history = json.loads(flipper(capsys, "history", "--json", "--prefix", "production:")[1])["entries"]
    assert [(entry["operation"], entry.get("message")) for entry in history] == [("apply", "promote")]
    assert len(json.loads(flipper(capsys, "history", "--json", "--prefix", "staging:")[1])["entries"]) == 2


def test_the_prefix_is_refused_through_the_function_and_without_a_hash_tag_in_a_cluster(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = flipper(capsys, "list", "--prefix", "staging:", "--function", "flipper-prod")
    assert (code, err) == (
        1,
        "flipper: error: --prefix applies to --redis-url; the function uses its own FLIPPER_KEY_PREFIX"
        " (one stack per environment: docs/deploy.md)\n",
    )
    monkeypatch.setenv("FLIPPER_REDIS_CLUSTER", "true")
    code, _, err = flipper(capsys, "list", "--prefix", "staging:")
    assert code == 1
    assert err.startswith("flipper: error: FLIPPER_KEY_PREFIX='staging:' has no hash tag such as '{flipper}:'")
