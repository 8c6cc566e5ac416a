"""The key schema and the rule, without Redis."""

from __future__ import annotations

import pytest

from flipper.core.model import Context, Snapshot, enabled_features, flag_keys


def test_global_only_context_reads_the_two_global_keys() -> None:
    assert flag_keys(Context()) == ["global:positive", "global:negative"]


def test_full_context_reads_every_level_positive_keys_first() -> None:
    context = Context(version="v1", groups=("g1", "g2"), user="u")
    assert flag_keys(context) == [
        "global:positive",
        "version:v1:positive",
        "group:g1:positive",
        "group:g2:positive",
        "user:u:positive",
        "global:negative",
        "version:v1:negative",
        "group:g1:negative",
        "group:g2:negative",
        "user:u:negative",
    ]


def test_prefix_is_prepended_to_every_key() -> None:
    assert flag_keys(Context(user="u"), "{flipper}:") == [
        "{flipper}:global:positive",
        "{flipper}:user:u:positive",
        "{flipper}:global:negative",
        "{flipper}:user:u:negative",
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (Context(groups=("a:negative",)), Context(groups=("a",))),
        (Context(groups=("a:positive",)), Context(groups=("a",))),
        (Context(version="x:positive:y"), Context(version="x")),
        (Context(user="a b"), Context(user="a")),
        (Context(groups=("ü",)), Context(groups=("u",))),
    ],
)
def test_identifiers_with_colons_spaces_or_unicode_never_share_keys(first: Context, second: Context) -> None:
    assert set(flag_keys(first)) & set(flag_keys(second)) == {"global:positive", "global:negative"}


def test_rule_is_union_of_positives_minus_union_of_negatives_sorted_by_code_point() -> None:
    members = [{"b", "a"}, {"é", "Z", "c"}, {"c"}, set()]
    assert enabled_features(Snapshot(Context(version="v"), members)) == ["Z", "a", "b", "é"]
