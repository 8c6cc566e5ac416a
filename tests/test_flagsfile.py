"""The flags file: YAML that reads back as written, and the JSON Schema shipped for editors agreeing with apply."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from flipper.core.memberships import FlagError, check_flags, features_of, memberships_of
from flipper.core.settings import Settings
from flipper.operate import flagsfile
from tests.test_operations import random_flags

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "flags.schema.json").read_text())


@pytest.mark.parametrize("seed", range(5))
def test_an_export_reads_back_as_written_and_matches_the_schema(seed: int) -> None:
    features = check_flags(random_flags(random.Random(seed)), Settings())
    document = {"flipper": 1, "features": features_of(memberships_of(features))}
    text = flagsfile.dumps(document)
    assert text.startswith("# Flipper flags: the full desired state")
    loaded = flagsfile.loads(text, "flags.yaml")
    jsonschema.validate(loaded, SCHEMA)
    assert check_flags(loaded, Settings()) == features  # one named with nothing under it too: a flag known, `{}`


def test_odd_names_survive_the_round_trip() -> None:
    names = ["yes", "on", "123", "a: b", "- x", "#tag", "line\nbreak", "zoë's", " padded ", "null", "[x]"]
    features = {name: {"enabled": [f"user:{name}"], "rollout": {f"group:{name}": "0.001"}} for name in names}
    text = flagsfile.dumps({"flipper": 1, "features": features})
    assert check_flags(flagsfile.loads(text, "f"), Settings()) == features


def test_percentages_are_written_as_numbers_that_read_back_the_same() -> None:
    text = flagsfile.dumps({"flipper": 1, "features": {"a": {"rollout": {"global": "97.601", "group:g": "25"}}}})
    assert "global: 97.601\n" in text
    assert "group:g: 25\n" in text


@pytest.mark.parametrize(
    "document",
    [
        {"flipper": 1, "features": {"a": {"on": ["global"]}}},
        {"flipper": 1, "features": {"a": {"enabled": ["everyone"]}}},
        {"flipper": 1, "features": {"a": {"rollout": {"user:u": 5}}}},
        {"flipper": 1, "features": {"a": {"rollout": {"global": 100.5}}}},
        {"flipper": 1, "features": {"a": {"rollout": {"global": "5%"}}}},
        {"flipper": 1, "features": {"": {}}},
        {"flipper": 1, "features": {"a\ufffd": {}}},
        {"flipper": 2},
        {"flipper": 1, "other": {}},
    ],
)
def test_what_the_schema_refuses_apply_refuses_too(document: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA)
    with pytest.raises(FlagError):
        check_flags(document, Settings())


def test_yaml_errors_name_the_file_and_line() -> None:
    with pytest.raises(FlagError, match=r"^flags\.yaml, line 2: not valid YAML: "):
        flagsfile.loads("flipper: 1\nfeatures: {a: [}\n", "flags.yaml")


# Nine levels of nine aliases: 306 bytes that become 9**9 scalars wherever the document is walked (gigabytes).
BOMB = "".join(
    f"{name}: &{name} [{','.join([f'*{previous}'] * 9 if previous else ['x'] * 9)}]\n"
    for previous, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def test_a_yaml_bomb_is_refused_at_its_first_anchor_before_anything_is_expanded() -> None:
    with pytest.raises(FlagError, match=r"^bomb\.yaml, line 1: anchors \(&a\) are not allowed in a flags file"):
        flagsfile.loads(BOMB, "bomb.yaml")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("flipper: 1\nfeatures:\n  a: *x\n", r"^f\.yaml, line 3: aliases \(\*x\) are not allowed in a flags file"),
        ("flipper: 1\nfeatures: !!map &x\n  a:\n", r"^f\.yaml, line 2: anchors \(&x\) are not allowed"),
        ("flipper: 1\nfeatures:\n  a:\n    <<: {enabled: [global]}\n", r"^f\.yaml, line 4: merge keys \(<<\) are"),
        ("flipper: 1\nfeatures:\n  a: {enabled: [[[[[[[[[[global]]]]]]]]]]}\n", r"^f\.yaml, line 3: nested deeper"),
        ("[" * 100_000 + "]" * 100_000, r"^f\.yaml, line 1: nested deeper than 8 levels"),  # no RecursionError
    ],
)
def test_aliases_anchors_merge_keys_and_deep_nesting_are_refused_naming_the_line(text: str, error: str) -> None:
    with pytest.raises(FlagError, match=error):
        flagsfile.loads(text, "f.yaml")


def test_the_size_of_a_flags_file_is_bounded_in_bytes() -> None:
    assert flagsfile.decode(b"#" * flagsfile.MAX_BYTES, "f.yaml") == "#" * flagsfile.MAX_BYTES
    with pytest.raises(FlagError, match=r"^f\.yaml is larger than 1024 KiB, the limit for a flags file$"):
        flagsfile.decode(b"#" * (flagsfile.MAX_BYTES + 1), "f.yaml")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "flipper: 1\nfeatures:\n  dup:\n    enabled: [global]\n  dup:\n    disabled: [global]\n",
            "f.yaml, line 5: key 'dup' appears twice (first on line 3): keep one",
        ),
        (
            "flipper: 1\nfeatures:\n  a:\n    enabled: [global]\n    enabled: [user:u]\n",
            "f.yaml, line 5: key 'enabled' appears twice (first on line 4): keep one",
        ),
        ('{"flipper": 1, "flipper": 1}', "f.yaml, line 1: key 'flipper' appears twice (first on line 1): keep one"),
    ],
)
def test_duplicate_keys_are_refused_naming_the_key_and_line(text: str, error: str) -> None:
    with pytest.raises(FlagError) as refused:
        flagsfile.loads(text, "f.yaml")
    assert str(refused.value) == error


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "flipper: 1\nfeatures:\n  on:\n    enabled: [global]\n",
            "flags.yaml, line 3: the key on reads as a bool, not text: quote it: 'on':",
        ),
        (
            "flipper: 1\nfeatures:\n  123: {}\n",
            "flags.yaml, line 3: the key 123 reads as an int, not text: quote it: '123':",
        ),
        ("flipper: 1\nfeatures:\n  ? [a]\n  : {}\n", "flags.yaml, line 3: a key must be text, not a sequence"),
        (
            "flipper: 1\nfeatures:\n  a:\n    enabled:\n    - global\n    - 'group:'\n",
            "flags.yaml, line 6: feature 'a', enabled: group name is empty",
        ),
        (
            "flipper: 1\nfeatures:\n  a:\n    rollout:\n      group:beta: 101\n",
            "flags.yaml, line 5: feature 'a', rollout at 'group:beta': percentage '101' is not a number from 0 to 100"
            " with at most three decimals",
        ),
        ("flipper: 1\nfeatures:\n  ok: {}\n  '': {}\n", "flags.yaml, line 4: feature name is empty"),
        ("flipper: 1\nfeatures:\n  a:\n    on: [global]\n", "flags.yaml, line 4: the key on reads as a bool"),
        ("flipper: 1\nfeatures:\n  a:\n    'on': [global]\n", "flags.yaml, line 4: feature 'a' has unknown key 'on'"),
        ("flipper: 2\n", "flags.yaml, line 1: the flags file must say 'flipper: 1'"),
        ("", "flags.yaml: the flags file must be a mapping"),
    ],
)
def test_a_files_errors_name_the_file_the_line_and_the_feature(text: str, error: str) -> None:
    with pytest.raises(FlagError) as refused:
        flagsfile.read(text, "flags.yaml", Settings())
    assert str(refused.value).startswith(error)
    assert "\n" not in str(refused.value)


def test_a_file_that_is_not_utf8_is_named_with_the_line_and_byte_offset() -> None:
    data = b"flipper: 1\nfeatures:\n  caf\xef: {}\n"
    with pytest.raises(FlagError) as refused:
        flagsfile.decode(data, "flags.yaml")
    assert str(refused.value) == ("flags.yaml, line 3: not UTF-8 (byte 0xef at offset 26): save the file as UTF-8")


def test_read_returns_the_document_checked() -> None:
    text = "flipper: 1\nfeatures:\n  a:\n    rollout: {global: 010}\n"
    assert flagsfile.read(text, "f.yaml", Settings()) == {
        "flipper": 1,
        "features": {"a": {"rollout": {"global": "010"}}},
    }


def test_the_document_as_data_has_percentages_as_numbers_as_the_yaml_does() -> None:
    document = {
        "flipper": 1,
        "features": {"a": {"enabled": ["global"], "rollout": {"global": "97.601", "group:g": "25"}}},
    }
    data = flagsfile.as_data(document)
    assert data == {
        "flipper": 1,
        "features": {"a": {"enabled": ["global"], "rollout": {"global": 97.601, "group:g": 25}}},
    }
    assert yaml.safe_load(flagsfile.dumps(document)) == data


@pytest.mark.parametrize("name", ["new\x85search", "a\u2028b", "del\x7f", "csi\x9b[2J", "tab\there"])
def test_a_name_python_would_not_print_reads_back_the_same_from_yaml_and_from_json(name: str) -> None:
    """PyYAML wrote NEL raw and a reader folded it into a space; JSON printed C1 controls raw, which YAML refuses."""
    document = {"flipper": 1, "features": {name: {"enabled": [f"group:{name}"]}}}
    assert flagsfile.loads(flagsfile.dumps(document), "f") == document
    assert flagsfile.loads(flagsfile.json_text(flagsfile.as_data(document)), "f") == document
