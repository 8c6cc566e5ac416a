"""Reading the caller's context from a query string, strictly: anything unexpected is a 4xx naming it."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException

from .model import Context
from .settings import Settings

_SINGLE = ("version", "user")
_KNOWN = ("version", "group", "user")
_BOOLEANS = {"true": True, "false": False}


def parse_context(query_string: bytes, settings: Settings) -> Context:
    """Parse `version`, repeatable `group` and `user` from a raw query string.

    Parsing the raw bytes (not a pre-decoded string) lets invalid UTF-8 be refused instead of being
    replaced by U+FFFD, which could make two different identifiers read the same keys.
    """
    return _parse(query_string, settings, ())[0]


def parse_feature_query(query_string: bytes, settings: Settings) -> tuple[Context, bool]:
    """`GET /features/{name}`'s query: the context, and whether `explain=true` asks for the deciding keys."""
    context, extra = _parse(query_string, settings, ("explain",))
    raw = extra.get("explain", "false")
    if raw not in _BOOLEANS:
        raise HTTPException(400, f"query parameter 'explain' is {raw!r}; expected true or false")
    return context, _BOOLEANS[raw]


def _parse(query_string: bytes, settings: Settings, extra: tuple[str, ...]) -> tuple[Context, dict[str, str]]:
    """The context, and the value of each `extra` single-valued parameter that is given."""
    if len(query_string) > settings.max_query_length:
        raise HTTPException(
            414, f"query string is {len(query_string)} bytes long; the limit is {settings.max_query_length}"
        )
    expected = (*_KNOWN, *extra)
    values: dict[str, list[str]] = {name: [] for name in expected}
    for raw_name, raw_value in _pairs(query_string):
        name = _decode(raw_name, "a query parameter name")
        if name not in values:
            names = ", ".join(expected[:-1]) + " or " + expected[-1]
            raise HTTPException(400, f"unknown query parameter {name!r}; expected {names}")
        what = f"query parameter {name!r}"
        values[name].append(check_name(what, _decode(raw_value, what), settings))
    for name in (*_SINGLE, *extra):
        if len(values[name]) > 1:
            raise HTTPException(400, f"query parameter {name!r} is given {len(values[name])} times; at most once")
    context = Context(
        version=next(iter(values["version"]), None),
        groups=group_set(values["group"], settings),
        user=next(iter(values["user"]), None),
    )
    return context, {name: values[name][0] for name in extra if values[name]}


def group_set(groups: list[str], settings: Settings) -> tuple[str, ...]:
    """The caller's groups, each once, in the order given; refused when more than `max_groups`."""
    unique = tuple(dict.fromkeys(groups))
    if len(unique) > settings.max_groups:
        raise HTTPException(400, f"{len(unique)} groups given; the limit is {settings.max_groups}")
    return unique


def path_name(name: str, what: str, settings: Settings, raw_path: bytes | None) -> str:
    """A flag name taken from the path, checked by `check_name`.

    Servers decode the path's percent-escapes with invalid UTF-8 replaced by U+FFFD, which `check_name`
    refuses; the raw path, when the server gives it (uvicorn does, Mangum does not), tells invalid bytes
    from a U+FFFD the caller really sent, so the message names the right one.
    """
    if "\ufffd" in name and raw_path is not None:
        _decode(unquote_to_bytes(raw_path), what)
    return check_name(what, name, settings)


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


class InvalidName(HTTPException):
    """A name `check_name` refuses: a 400 on the read path; on a write path, its `detail` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


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
