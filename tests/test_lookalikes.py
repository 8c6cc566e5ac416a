"""Names that look like others: a plan warns about every name it writes that mixes scripts or holds an
invisible character (docs/operate.md#names-that-look-like-others)."""

from __future__ import annotations

import pytest

from flipper.core import names, operations
from flipper.core.settings import Settings
from flipper.core.store import Store


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("\u0441heckout", "mixes scripts (U+0441 CYRILLIC SMALL LETTER ES among LATIN letters)"),
        ("pay\u0440al", "mixes scripts (U+0440 CYRILLIC SMALL LETTER ER among LATIN letters)"),
        ("\u03bf\u03c1\u03b5n", "mixes scripts (U+006E LATIN SMALL LETTER N among GREEK letters)"),
        ("\uff43heckout", "mixes scripts (U+FF43 FULLWIDTH LATIN SMALL LETTER C among LATIN letters)"),
        ("check\u200bout", "holds U+200B ZERO WIDTH SPACE, an invisible character"),
        ("check\u200dout", "holds U+200D ZERO WIDTH JOINER, an invisible character"),
        ("\ufeffcheckout", "holds U+FEFF ZERO WIDTH NO-BREAK SPACE, an invisible character"),
        ("admin\u202egnp.exe", "holds U+202E RIGHT-TO-LEFT OVERRIDE, an invisible character"),
        ("\u043f\u043e\u0438\u0441\u043a-v2", "mixes scripts (U+0076 LATIN SMALL LETTER V among CYRILLIC letters)"),
        ("\u0441\u0435\u0441\u200b", "holds U+200B ZERO WIDTH SPACE, an invisible character"),
    ],
)
def test_a_name_that_mixes_scripts_or_hides_characters_is_named_with_why(name: str, why: str) -> None:
    assert names.lookalike(name) == why


@pytest.mark.parametrize(
    "name",
    [
        "checkout_v2",
        "new-search 2.0",
        "zoë's café",  # one script, with accents: composed or combining
        "zoe\u0308",
        "\u043f\u043e\u0438\u0441\u043a-2",  # Cyrillic letters beside ASCII digits and punctuation
        "\u65b0\u3057\u3044\u30ab\u30fc\u30c8",  # Japanese: Han, Hiragana and Katakana are written together
        "\ud55c\uad6d\u8a9e",  # Korean: Hangul and Han
        "\u0645\u0631\u062d\u0628\u0627_1",
    ],
)
def test_names_in_one_script_pass(name: str) -> None:
    assert names.lookalike(name) is None


async def test_the_plan_warns_about_the_names_it_writes(store: Store) -> None:
    await store.client.sadd("global:positive", "\u0441heckout")  # already there: not written, no warning
    document = {
        "flipper": 1,
        "features": {
            "\u0441heckout": {"enabled": ["global"]},
            # U+0131 LATIN SMALL LETTER DOTLESS I is Latin: one script, no warning (the rule is scripts).
            "checkout": {"enabled": ["group:be\u200bta", "user:u1"], "rollout": {"version:v\u0131": 5}},
        },
    }
    hidden = (
        "group name 'be\\u200bta' holds U+200B ZERO WIDTH SPACE, an invisible character: check it is the name you mean"
    )
    planned = await operations.run(store, Settings(), "plan", {"flags_file": document})
    assert planned["warnings"] == [hidden]
    document["features"]["\u0441heckout"] = {"disabled": ["global"]}
    planned = await operations.run(store, Settings(), "plan", {"flags_file": document})
    assert planned["warnings"] == [  # in the plan's order: by feature, Latin c before Cyrillic es
        hidden,
        "feature name '\u0441heckout' mixes scripts (U+0441 CYRILLIC SMALL LETTER ES among LATIN letters):"
        " check it is the name you mean",
    ]


async def test_a_plan_with_nothing_to_warn_about_has_no_warnings(store: Store) -> None:
    document = {"flipper": 1, "features": {"checkout": {"enabled": ["global"]}}}
    assert "warnings" not in await operations.run(store, Settings(), "plan", {"flags_file": document})
