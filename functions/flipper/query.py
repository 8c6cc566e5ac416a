"""Reading the caller's context from a query string, strictly: anything unexpected is a 4xx naming it."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException

from .model import Context
from .settings import Settings

_SINGLE = ("version", "user")
_KNOWN = (*_SINGLE, "group")


def parse_context(query_string: bytes, settings: Settings) -> Context:
    """Parse `version`, repeatable `group` and `user` from a raw query string.

    Parsing the raw bytes (not a pre-decoded string) lets invalid UTF-8 be refused instead of being
    replaced by U+FFFD, which could make two different identifiers read the same keys.
    """
    if len(query_string) > settings.max_query_length:
        raise HTTPException(
            414, f"query string is {len(query_string)} bytes long; the limit is {settings.max_query_length}"
        )
    values: dict[str, list[str]] = {name: [] for name in _KNOWN}
    for raw_name, raw_value in _pairs(query_string):
        name = _decode(raw_name, "a query parameter name")
        if name not in values:
            raise HTTPException(400, f"unknown query parameter {name!r}; expected version, group or user")
        values[name].append(_identifier(name, _decode(raw_value, f"query parameter {name!r}"), settings))
    for name in _SINGLE:
        if len(values[name]) > 1:
            raise HTTPException(400, f"query parameter {name!r} is given {len(values[name])} times; at most once")
    groups = tuple(dict.fromkeys(values["group"]))  # one entity per group, in the order given
    if len(groups) > settings.max_groups:
        raise HTTPException(400, f"{len(groups)} groups given; the limit is {settings.max_groups}")
    return Context(
        version=next(iter(values["version"]), None),
        groups=groups,
        user=next(iter(values["user"]), None),
    )


def _pairs(query_string: bytes) -> Iterator[tuple[bytes, bytes]]:
    """`name=value` pairs split on `&`, `+` read as a space, percent-escapes undone to raw bytes."""
    for field in query_string.split(b"&"):
        if field:
            name, _, value = field.replace(b"+", b" ").partition(b"=")
            yield unquote_to_bytes(name), unquote_to_bytes(value)


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, f"{what} is not valid UTF-8") from None


def _identifier(name: str, value: str, settings: Settings) -> str:
    if not value:
        raise HTTPException(400, f"query parameter {name!r} is empty")
    if len(value) > settings.max_id_length:
        raise HTTPException(
            400, f"query parameter {name!r} is {len(value)} characters long; the limit is {settings.max_id_length}"
        )
    return value
