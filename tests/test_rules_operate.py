"""Targeting rules through the operating half: the one audited write path, the flags file, the CLI, history and
undo, on a real redis-server and on fakeredis (tests/test_cluster.py runs the write path on a cluster)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
import yaml

from flipper.core.memberships import FlagError, check_flags, features_of, memberships_of
from flipper.core.model import MAX_VALUE_BYTES
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.core.writes import Refused
from flipper.operate import flagsfile
from flipper.operate.text import change_text, parse_condition
from tests import test_cli
from tests.test_cli import flipper
from tests.test_operations import ACTOR, apply, change, dump, flags_file, run

flags = test_cli.flags  # the fixture: the seed's flags on the session's redis-server, REDIS_URL set

PRICING = [
    {
        "when": [
            {"attribute": "plan", "operator": "in", "values": ["pro", "enterprise"]},
            {"attribute": "country", "operator": "not_in", "values": ["US"]},
        ]
    }
]
BADGE = [{"when": [{"attribute": "email", "operator": "ends_with", "values": ["@acme.com"]}], "value": "gold"}]
WINDOW = [
    {
        "when": [
            {"attribute": "now", "operator": "after", "values": ["2026-12-20T00:00:00Z"]},
            {"attribute": "now", "operator": "before", "values": ["2027-01-06T00:00:00Z"]},
        ]
    }
]
# The issue's flags file, as written there.
ISSUE_FILE = """\
flipper: 1
features:
  new_pricing:
    disabled: [group:legacy]
    rules:
      - when:
          - {attribute: plan, operator: in, values: [pro, enterprise]}
          - {attribute: country, operator: not_in, values: [US]}
  staff_badge:
    rules:
      - when: [{attribute: email, operator: ends_with, values: ["@acme.com"]}]
        value: "gold"
  winter_sale:
    rules:
      - when:
          - {attribute: now, operator: after, values: ["2026-12-20T00:00:00Z"]}
          - {attribute: now, operator: before, values: ["2027-01-06T00:00:00Z"]}
"""


async def test_rules_are_one_global_field_of_canonical_json_audited_and_cleared(store: Store) -> None:
    result = await change(store, "rules", "staff_badge", "global", rules=BADGE)
    stored = '[{"value":"gold","when":[{"attribute":"email","operator":"ends_with","values":["@acme.com"]}]}]'
    assert result["changes"] == [["global:rules", "staff_badge", "", stored]]
    assert await store.client.hgetall("global:rules") == {"staff_badge": stored}
    assert await store.client.smembers("features") == {"staff_badge"}
    assert (await run(store, "export"))["flags"]["features"] == {"staff_badge": {"rules": BADGE}}
    before = await dump(store)
    assert (await change(store, "rules", "staff_badge", "global", rules=BADGE))["entry"] is None
    assert await dump(store) == before
    with pytest.raises(FlagError, match=r"^rules are the feature's, set at global, not at group:beta$"):
        await change(store, "rules", "staff_badge", "group:beta", rules=BADGE)
    cleared = await change(store, "rules", "staff_badge", "global", rules=None)
    assert cleared["changes"] == [["global:rules", "staff_badge", stored, ""]]
    assert await store.client.exists("global:rules") == 0


@pytest.mark.parametrize(
    ("rules", "error"),
    [
        ([{"when": [{"attribute": "a", "operator": "like", "values": ["x"]}]}], "rule 1, operator 'like': unknown"),
        ([{"when": [{"attribute": "a", "operator": "in", "values": []}]}], "rule 1, operator 'in': values must be"),
        ([{"when": [{"attribute": "v", "operator": "semver_gt", "values": ["2.1"]}]}], "'2.1' is not a semantic"),
        ([{"when": [{"attribute": "now", "operator": "after", "values": ["soon"]}]}], "is not an RFC 3339 time"),
        ([{"when": [{"attribute": "a", "operator": "in", "values": ["x"]}], "value": True}], "rule 1: a value must"),
        ([{"when": [{"attribute": "a", "operator": "in", "values": ["x"]}], "value": [[[[1]]]]}], "rule 1: the value"),
        ([], "rules must be a non-empty list"),
    ],
)
async def test_bad_rules_are_refused_naming_the_rule_and_operator_and_write_nothing(
    store: Store, rules: Any, error: str
) -> None:
    await change(store, "enable", "f", "global")
    before = await dump(store)
    with pytest.raises(FlagError, match=error.replace("(", r"\(").replace("[", r"\[")):
        await change(store, "rules", "f", "global", rules=rules)
    assert await dump(store) == before


async def test_a_rules_change_needs_its_argument_and_is_refused_at_a_stale_revision(store: Store) -> None:
    with pytest.raises(FlagError, match="a rules change needs the argument 'rules'"):
        await change(store, "rules", "f", "global")
    read_at = (await change(store, "rules", "f", "global", rules=PRICING))["revision"]
    await change(store, "enable", "other", "global")  # meanwhile
    before = await dump(store)
    with pytest.raises(Refused, match=rf"flags changed since revision {read_at} \(now {read_at + 1}\)"):
        await change(store, "rules", "f", "global", rules=PRICING + BADGE, revision=read_at)
    assert await dump(store) == before


async def test_history_and_undo_carry_rules(store: Store) -> None:
    first = await change(store, "rules", "f", "global", rules=PRICING)
    second = await change(store, "rules", "f", "global", rules=PRICING + BADGE, message="staff too")
    [entry, _] = (await run(store, "history", feature="f"))["entries"]
    assert change_text(entry["changes"][0]) == (
        "f rules: 1. plan is pro or enterprise, and country is not US → 1. plan is pro or enterprise, and country"
        ' is not US; 2. email ends with @acme.com → "gold"'
    )
    undone = await run(store, "undo", entry=second["entry"], actor=ACTOR)
    assert undone["changes"] == [["global:rules", "f", second["changes"][0][3], first["changes"][0][3]]]
    assert (await run(store, "export"))["flags"]["features"]["f"] == {"rules": PRICING}
    assert change_text(["global:rules", "f", "", "not json"]) == "f rules: - → not json"


async def test_the_issues_flags_file_applies_once_exports_as_it_reads_and_plans_nothing_the_second_time(
    store: Store,
) -> None:
    document = flagsfile.read(ISSUE_FILE, "flags.yaml", Settings())
    done = await apply(store, document)
    assert sorted(key for key, *_ in done["changes"]) == ["global:rules"] * 3 + ["group:legacy:negative"]
    exported = (await run(store, "export"))["flags"]
    assert exported["features"] == {
        "new_pricing": {"disabled": ["group:legacy"], "rules": PRICING},
        "staff_badge": {"rules": BADGE},
        "winter_sale": {"rules": WINDOW},
    }
    text = flagsfile.dumps(exported)
    assert "- '2026-12-20T00:00:00Z'" in text  # quoted: an unquoted one would read back as a YAML timestamp
    again = flagsfile.read(text, "exported.yaml", Settings())
    assert (await run(store, "plan", flags_file=again))["changes"] == []
    assert (await run(store, "plan", flags_file=document))["changes"] == []
    assert (await apply(store, again))["entry"] is None


def test_rules_survive_memberships_and_back_and_an_empty_list_is_none() -> None:
    features = check_flags(flags_file({"a": {"rules": PRICING + BADGE}, "b": {"rules": []}}), Settings())
    assert features == {"a": {"rules": PRICING + BADGE}, "b": {}}
    # b, named with nothing under it, is a flag known and cleared everywhere: `{}`, as export writes it.
    assert features_of(memberships_of(features)) == {"a": {"rules": PRICING + BADGE}, "b": {}}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "features:\n  a:\n    rules:\n      - when: [{attribute: plan, operator: like, values: [x]}]\n",
            "flags.yaml, line 5: feature 'a', rules: rule 1, operator 'like': unknown; operators are in, not_in,",
        ),
        (
            "features:\n  a:\n    rules:\n      - when: [{attribute: p, operator: in, values: [x]}]\n"
            "      - when: [{attribute: p, operator: in, values: []}]\n",
            "flags.yaml, line 6: feature 'a', rules: rule 2, operator 'in': values must be a non-empty list",
        ),
        (
            "features:\n  a:\n    rules:\n      - when: [{attribute: v, operator: semver_gte, values: ['2.1']}]\n",
            "flags.yaml, line 5: feature 'a', rules: rule 1, operator 'semver_gte': '2.1' is not a semantic version",
        ),
        (
            "features:\n  a:\n    rules:\n      - when:\n"
            "          - {attribute: now, operator: after, values: ['x']}\n",
            "flags.yaml, line 5: feature 'a', rules: rule 1, operator 'after': 'x' is not an RFC 3339 time",
        ),
        (
            "features:\n  a:\n    rules:\n      - when:\n"
            "          - {attribute: now, operator: after, values: [2026-12-20T00:00:00Z]}\n",
            "flags.yaml, line 6: feature 'a', rules: rule 1, operator 'after': 2026-12-20 00:00:00+00:00 reads as a"
            ' YAML timestamp, not text: quote it, as "2026-12-20T00:00:00Z"',
        ),
        (
            "features:\n  a:\n    rules:\n      - when: [{attribute: p, operator: in, values: [x]}]\n"
            "        value: true\n",
            "flags.yaml, line 5: feature 'a', rules: rule 1: a value must be a string, a number, an object or an",
        ),
        (
            "features:\n  a:\n    rules:\n      - when: [{attribute: p, operator: in, values: [x]}]\n"
            f"        value: {'x' * MAX_VALUE_BYTES}\n",
            f"flags.yaml, line 6: feature 'a', rules: rule 1: the value is {MAX_VALUE_BYTES + 2} bytes as JSON, more",
        ),
        ("features:\n  a:\n    rules: {when: []}\n", "flags.yaml, line 4: feature 'a', rules: rules must be"),
        (
            "features:\n  a:\n    rule: []\n",
            "flags.yaml, line 4: feature 'a' has unknown key 'rule'; expected enabled, disabled, rollout,",
        ),
    ],
)
def test_a_bad_rule_in_a_file_is_one_line_naming_the_file_line_feature_rule_and_operator(text: str, error: str) -> None:
    with pytest.raises(FlagError) as refused:
        flagsfile.read("flipper: 1\n" + text, "flags.yaml", Settings())
    assert str(refused.value).startswith(error), str(refused.value)
    assert "\n" not in str(refused.value)


async def test_a_rules_field_written_by_hand_that_does_not_parse_is_left_out_of_the_export(store: Store) -> None:
    await store.client.hset("global:rules", mapping={"bad": '[{"when": []}]', "good": json.dumps(PRICING)})
    exported = await run(store, "export")
    assert exported["flags"]["features"] == {"good": {"rules": PRICING}}  # other blanks: the same rules
    [warning] = exported["warnings"]
    assert warning.startswith("key 'global:rules' field 'bad' holds '[{\"when\": []}]': not a value Flipper writes")
    assert "rule 1: when must be a non-empty list" in warning
    plan = await run(store, "plan", flags_file=flags_file({"bad": {"rules": PRICING}, "good": {"rules": PRICING}}))
    assert [(key, feature, before) for key, feature, before, _ in plan["changes"]] == [
        ("global:rules", "bad", '[{"when": []}]')
    ]  # the hand-written one replaced; the other, equal as JSON, no change


async def test_rules_at_another_entity_written_by_hand_are_no_flag(store: Store) -> None:
    await store.client.hset("group:g:rules", "f", json.dumps(PRICING))
    assert (await run(store, "export"))["flags"]["features"] == {}


@pytest.mark.parametrize(
    ("text", "condition"),
    [
        ("plan in pro,enterprise", {"attribute": "plan", "operator": "in", "values": ["pro", "enterprise"]}),
        ("age gte 18", {"attribute": "age", "operator": "gte", "values": [18]}),
        ("score eq 1.5,2", {"attribute": "score", "operator": "eq", "values": [1.5, 2]}),
        ("age gt ten", {"attribute": "age", "operator": "gt", "values": ["ten"]}),  # for parse_rules to refuse
        ("name in a b", {"attribute": "name", "operator": "in", "values": ["a b"]}),
    ],
)
def test_a_condition_on_the_command_line_reads_as_the_file_holds_it(text: str, condition: dict[str, Any]) -> None:
    assert parse_condition(text) == condition


def test_a_condition_of_fewer_than_three_parts_is_refused() -> None:
    with pytest.raises(FlagError, match=r"^condition 'plan in' is not ATTRIBUTE OPERATOR VALUE\[,VALUE\.\.\.\]"):
        parse_condition("plan in")


def test_rule_add_list_remove_and_schedule(flags: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = flipper(
        capsys, "rule", "add", "new_pricing", "--when", "plan in pro,enterprise", "--when", "country not_in US"
    )
    assert (code, err) == (0, "")
    assert out.startswith("added rule 1 to new_pricing: plan is pro or enterprise, and country is not US (revision 1,")
    code, out, _ = flipper(
        capsys, "rule", "add", "new_pricing", "--when", "email ends_with @acme.com", "--value", '"gold"'
    )
    assert (code, out.split(" (")[0]) == (0, "added rule 2 to new_pricing: email ends with @acme.com")
    code, out, _ = flipper(
        capsys, "schedule", "new_pricing", "--from", "2026-12-20T00:00:00Z", "--until", "2027-01-06T00:00:00Z"
    )
    assert out.startswith(
        "added rule 3 to new_pricing: now is after 2026-12-20T00:00:00Z, and now is before 2027-01-06T00:00:00Z"
    )
    code, out, _ = flipper(capsys, "schedule", "new_pricing", "--until", "2027-01-06T00:00:00Z")
    assert out.startswith("added rule 4 to new_pricing: now is before 2027-01-06T00:00:00Z")
    code, out, _ = flipper(capsys, "rule", "list", "new_pricing")
    assert (code, out) == (
        0,
        "1. plan is pro or enterprise, and country is not US\n"
        '2. email ends with @acme.com → "gold"\n'
        "3. now is after 2026-12-20T00:00:00Z, and now is before 2027-01-06T00:00:00Z\n"
        "4. now is before 2027-01-06T00:00:00Z\n",
    )
    code, out, _ = flipper(capsys, "rule", "remove", "new_pricing", "2", "-m", "no badge")
    assert (code, out.split(" (")[0]) == (0, "removed rule 2 of new_pricing: email ends with @acme.com")
    code, out, _ = flipper(capsys, "rule", "list", "new_pricing", "--json")
    listed = json.loads(out)
    assert (listed["revision"], listed["rules"][0], len(listed["words"])) == (5, PRICING[0], 3)
    assert listed["words"][1].startswith("2. now is after")
    stored = json.loads(flags.hget("global:rules", "new_pricing"))
    assert [rule["when"][0]["attribute"] for rule in stored] == ["plan", "now", "now"]
    code, out, _ = flipper(capsys, "history", "new_pricing")
    newest = out.splitlines()[1]
    assert "no badge" in newest
    assert "new_pricing rules: 1. plan is pro" in newest
    for _ in range(3):
        assert flipper(capsys, "rule", "remove", "new_pricing", "1")[0] == 0
    assert flags.exists("global:rules") == 0  # the last rule removed: none left, the field with it
    code, out, _ = flipper(capsys, "rule", "list", "new_pricing")
    assert out == "new_pricing has no rules\n"
    code, out, _ = flipper(capsys, "export")
    assert "rules" not in out


def test_rule_add_takes_numbers_as_numbers_and_prints_json(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = flipper(capsys, "rule", "add", "adults", "--when", "age gte 18", "--json")
    assert code == 0
    assert json.loads(out)["changes"] == [
        ["global:rules", "adults", "", '[{"when":[{"attribute":"age","operator":"gte","values":[18]}]}]']
    ]
    code, out, _ = flipper(capsys, "schedule", "adults", "--from", "2026-01-01T00:00:00+01:00", "--json")
    assert json.loads(out)["revision"] == 2


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["rule", "add", "f", "--when", "plan like x"], "flipper: error: rule 1, operator 'like': unknown; operators"),
        (["rule", "add", "f", "--when", "plan in"], "flipper: error: condition 'plan in' is not ATTRIBUTE OPERATOR"),
        (["rule", "add", "f", "--when", "age gt ten"], "flipper: error: rule 1, operator 'gt': 'ten' is not a finite"),
        (["rule", "add", "f", "--when", "v semver_gt 2.1"], "flipper: error: rule 1, operator 'semver_gt': '2.1' is"),
        (["rule", "add", "f", "--when", "a in x", "--value", "blue"], "flipper: error: VALUE 'blue' is not JSON"),
        (["rule", "add", "f", "--when", "a in x", "--value", "true"], "flipper: error: rule 1: a value must be"),
        (["rule", "add", "f"], "flipper: error: Missing option '--when'"),
        (["rule", "remove", "feature_A", "1"], "flipper: error: feature_A has no rule 1 (it has 0)"),
        (["rule", "remove", "feature_A", "one"], "flipper: error: Invalid value for 'N'"),
        (["schedule", "f"], "flipper: error: give --from TIME, --until TIME or both"),
        (["schedule", "f", "--from", "tomorrow"], "flipper: error: rule 1, operator 'after': 'tomorrow' is not an RFC"),
        (
            ["schedule", "f", "--from", "2027-01-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"],
            "flipper: error: --from 2027-01-01T00:00:00Z is not before --until 2026-01-01T00:00:00Z",
        ),
    ],
)
def test_bad_rule_input_is_one_line_exit_1_and_writes_nothing(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    before = {key: flags.type(key) for key in flags.keys("*")}
    code, out, err = flipper(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith(error), err
    assert err.count("\n") == 1
    assert {key: flags.type(key) for key in flags.keys("*")} == before
    assert flags.get("revision") is None


def test_a_rule_added_from_a_stale_read_is_refused(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another operator's rule lands between the read and the write: refused, theirs kept, not overwritten."""
    from flipper.operate import cli

    read = cli._rules_of

    def read_then_someone_else_writes(target: Any, feature: str) -> Any:
        revision, current = read(target, feature)
        monkeypatch.setattr(cli, "_rules_of", read)  # the other operator's own add reads as usual
        assert flipper(capsys, "rule", "add", feature, "--when", "plan in team")[0] == 0
        return revision, current

    monkeypatch.setattr(cli, "_rules_of", read_then_someone_else_writes)
    code, _, err = flipper(capsys, "rule", "add", "f", "--when", "plan in pro")
    assert (code, err) == (1, "flipper: error: flags changed since revision 0 (now 1); nothing was written\n")
    assert yaml.safe_load(flags.hget("global:rules", "f"))[0]["when"][0]["values"] == ["team"]


def test_explain_prints_the_matching_rule_and_each_conditions_outcome_escaped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the evaluation reports them (Evaluation.explanation's rule and rules); a name escaped as anywhere."""
    from flipper.operate import cli

    explained = {
        "feature": "f",
        "enabled": True,
        "reason": "TARGETING_MATCH",
        "enabled_by": [],
        "disabled_by": [],
        "rollouts": [],
        "bucket": None,
        "rule": 2,
        "rules": [
            {
                "rule": 1,
                "words": "plan is pro",
                "matched": False,
                "conditions": [{"attribute": "plan", "operator": "in", "values": ["pro"], "holds": False}],
            },
            {
                "rule": 2,
                "words": "email ends with @acme.com\x1b[2J",
                "matched": True,
                "conditions": [
                    {"attribute": "email", "operator": "ends_with", "values": ["@acme.com\x1b[2J"], "holds": True},
                    {"attribute": "age", "operator": "gte", "values": [18], "holds": True},
                ],
            },
        ],
    }
    monkeypatch.setattr(cli.Target, "run", lambda self, name, **arguments: explained)
    code, out, _ = flipper(capsys, "explain", "f", "--redis-url", "redis://unused")
    assert (code, out) == (
        0,
        "f: on (TARGETING_MATCH)\n"
        "  rule        2 matched\n"
        "  rule 1: plan is pro (not matched)\n"
        "    fails  plan in pro\n"
        "  rule 2: email ends with @acme.com\\x1b[2J (matched)\n"
        "    holds  email ends_with @acme.com\\x1b[2J\n"
        "    holds  age gte 18\n",
    )
    code, out, _ = flipper(capsys, "explain", "f", "--json", "--redis-url", "redis://unused")
    assert json.loads(out)["rules"][1]["conditions"][1]["holds"] is True
    del explained["rules"]
    explained["rule"] = None
    assert flipper(capsys, "explain", "f", "--redis-url", "redis://unused")[1].endswith("  rule        none matched\n")


def test_show_and_explain_take_the_callers_attributes(flags: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    flipper(capsys, "rule", "add", "new_pricing", "--when", "plan in pro,enterprise", "--when", "country not_in US")
    flipper(capsys, "rule", "add", "new_pricing", "--when", "app semver_gte 2.10.0", "--value", '"beta"')
    flipper(capsys, "disable", "new_pricing", "--group", "legacy")
    code, out, _ = flipper(capsys, "show", "--attribute", "plan=pro", "--attribute", "country=FR")
    assert (code, out) == (0, "new_pricing\n")
    assert flipper(capsys, "show", "--attribute", "plan=pro", "--attribute", "country=US")[1] == "no features enabled\n"
    code, out, _ = flipper(capsys, "explain", "new_pricing", "--attribute", "app=2.10.0", "--attribute", "plan=free")
    assert code == 0
    assert out.startswith("new_pricing: on (TARGETING_MATCH)\n")
    assert "  rule        2 matched\n" in out
    assert "    fails  plan in pro, enterprise\n" in out
    assert "    holds  app semver_gte 2.10.0\n" in out
    code, out, _ = flipper(capsys, "explain", "new_pricing", "--group", "legacy", "--attribute", "app=2.10.0")
    assert out.startswith("new_pricing: off")  # a deny still wins over a rule
    code, _, err = flipper(capsys, "show", "--attribute", "plan")
    assert (code, err) == (1, "flipper: error: attribute 'plan' is not NAME=VALUE, as plan=pro\n")
    code, _, err = flipper(capsys, "show", "--attribute", "now=2030-01-01T00:00:00Z")
    assert (code, err) == (
        1,
        "flipper: error: attribute 'now' is the time of the evaluation; a caller cannot send it\n",
    )


async def test_the_attributes_of_show_and_explain_are_checked_as_the_apis_are(store: Store) -> None:
    with pytest.raises(FlagError, match=r"^attributes must be an object"):
        await run(store, "show", attributes=["plan=pro"])
    with pytest.raises(FlagError, match="attributes given; the limit is"):
        await run(store, "explain", feature="f", attributes={f"a{i}": "x" for i in range(1000)})


def test_list_has_a_rules_column_once_a_feature_has_rules(
    flags: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "RULES" not in flipper(capsys, "list")[1]
    flipper(capsys, "rule", "add", "new_pricing", "--when", "plan in pro")
    flipper(capsys, "schedule", "new_pricing", "--from", "2026-12-20T00:00:00Z")
    code, out, _ = flipper(capsys, "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["FEATURE", "ENABLED", "DISABLED", "ROLLOUT", "RULES"]
    assert rows[-1].split(None, 4) == [
        "new_pricing",
        "-",
        "-",
        "-",
        "1. plan is pro; 2. now is after 2026-12-20T00:00:00Z",
    ]
    assert rows[0].split() == ["feature_A", "version:v1", "-", "-", "-"]
