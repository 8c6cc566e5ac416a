"""What may name a flag, a version, a group or a user: one rule for the read path and the write path."""

from __future__ import annotations

import collections
import unicodedata
from collections.abc import Iterable

from flipper.core import rules
from flipper.core.settings import Settings

# Scripts that one language writes together: Japanese mixes Han (CJK), Hiragana and Katakana, Korean Hangul
# and Han (HALFWIDTH letters are Katakana and Hangul). Each counts as CJK, so such names are one script.
_CJK = {"CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "HANGUL", "HALFWIDTH"}


class InvalidName(ValueError):
    """A name `check_name` refuses, or more groups than allowed; the message says why in one line."""


def check_name(what: str, value: str, settings: Settings) -> str:
    """`value`, if it may name a flag, a version, a group or a user; else InvalidName naming the problem.

    Refused: empty; over `max_id_length` characters; holding U+FFFD, which servers and decoders put in
    place of invalid bytes, so two different raw names could read as one; not encodable as UTF-8 (a lone
    surrogate, which JSON's `\\ud800` can carry, could not be sent to Redis). The read path and the
    write path both check names with it, so that whatever can be written can be read.
    """
    if not value:
        raise InvalidName(f"{what} is empty")
    if len(value) > settings.max_id_length:
        raise InvalidName(f"{what} is {len(value)} characters long; the limit is {settings.max_id_length}")
    if not value.isascii():
        if "\ufffd" in value:
            raise InvalidName(
                f"{what} contains U+FFFD, the character that stands in for invalid UTF-8; names may not hold it"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidName(f"{what} is not valid UTF-8 (it holds a lone surrogate)") from None
    return value


def group_set(groups: list[str], settings: Settings) -> tuple[str, ...]:
    """The caller's groups, each once, in the order given; refused when more than `max_groups`."""
    unique = tuple(dict.fromkeys(groups))
    if len(unique) > settings.max_groups:
        raise InvalidName(f"{len(unique)} groups given; the limit is {settings.max_groups}")
    return unique


def attributes(given: Iterable[tuple[str, object]], settings: Settings) -> tuple[tuple[str, str | int | float], ...]:
    """A caller's attributes for the targeting rules, as `model.Context` holds them: (name, value) sorted by
    name. Booleans, nulls, lists and objects are left out: no operator compares one, so each is the same as
    absent, and an OpenFeature context may carry them for other providers. Refused, naming it: more than
    `max_attributes`; a name empty, over `rules.MAX_TEXT` characters, or `now` (the evaluation's own time,
    which a caller cannot send); a text value that `check_name` refuses (so at most `max_id_length`)."""
    given = list(given)
    if len(given) > settings.max_attributes:
        raise InvalidName(f"{len(given)} attributes given; the limit is {settings.max_attributes}")
    kept: dict[str, str | int | float] = {}
    for name, value in given:
        what = f"attribute {name[:40]!r}"
        if not name or len(name) > rules.MAX_TEXT:
            raise InvalidName(f"{what}: an attribute's name is 1 to {rules.MAX_TEXT} characters")
        if name == rules.NOW:
            raise InvalidName("attribute 'now' is the time of the evaluation; a caller cannot send it")
        if isinstance(value, str):
            kept[name] = check_name(what, value, settings)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            kept[name] = value
    return tuple(sorted(kept.items()))


def lookalike(value: str) -> str | None:
    """Why `value` may look like another name (`checkout` spelt with a Cyrillic es), or None: a warning, not a refusal.

    It holds an invisible character (Unicode format characters, category Cf: zero-width space and joiners,
    U+FEFF, bidi controls), or its letters (category L) come from more than one script, a letter's script
    being its Unicode name's first word (LATIN, CYRILLIC, GREEK, FULLWIDTH...), CJK's scripts counting as one.
    Digits, punctuation and combining marks belong to no script. Not caught: a name wholly in another script.
    """
    if value.isascii():  # the usual name: no format character, every letter Latin
        return None
    for c in value:
        if unicodedata.category(c) == "Cf":
            return f"holds {_described(c)}, an invisible character"
    scripts = collections.Counter(_script(c) for c in value if unicodedata.category(c).startswith("L"))
    scripts.pop("", None)
    if len(scripts) < 2:
        return None
    main = scripts.most_common(1)[0][0]
    other = next(c for c in value if unicodedata.category(c).startswith("L") and _script(c) not in ("", main))
    return f"mixes scripts ({_described(other)} among {main} letters)"


def _script(letter: str) -> str:
    script = unicodedata.name(letter, "").partition(" ")[0]
    return "CJK" if script in _CJK else script


def _described(c: str) -> str:
    return f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed')}"
