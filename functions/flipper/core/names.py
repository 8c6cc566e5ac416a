"""What may name a flag, a version, a group or a user: one rule for the read path and the write path."""

from __future__ import annotations

from flipper.core.settings import Settings


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
