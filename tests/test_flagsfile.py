"""The flags file: YAML that reads back as written, and the JSON Schema shipped for editors agreeing with apply."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest

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
    assert check_flags(loaded, Settings()) == {name: entry for name, entry in features.items() if entry}


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
