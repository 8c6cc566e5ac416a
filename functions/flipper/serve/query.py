"""Reading the caller's context from a query string, strictly: anything unexpected is a 4xx naming it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException

from flipper.core import names
from flipper.core.model import Context
from flipper.core.settings import Settings

# A caller's attribute for the targeting rules: `attr.plan=pro`. The prefix keeps them apart from version,
# group and user (an attribute may be called `user`); their values are text (the numeric operators read
# numeric text as a number).
ATTRIBUTE = "attr."
_SINGLE = ("version", "user")
_KNOWN = ("version", "group", "user")
_BOOLEANS = {"true": True, "false": False}


def parse_context(query_string: bytes, settings: Settings) -> Context:
    """Parse `version`, repeatable `group`, `user` and `attr.<name>` attributes from a raw query string.

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
    attributes: dict[str, str] = {}
    for raw_name, raw_value in _pairs(query_string):
        name = _decode(raw_name, "a query parameter name")
        what = f"query parameter {name!r}"
        if name.startswith(ATTRIBUTE):
            if name in attributes:
                raise HTTPException(400, f"{what} is given more than once; at most once")
            attributes[name] = _decode(raw_value, what)
            continue
        if name not in values:
            names = ", ".join(expected[:-1]) + " or " + expected[-1]
            raise HTTPException(400, f"unknown query parameter {name!r}; expected {names}")
        values[name].append(check_name(what, _decode(raw_value, what), settings))
    for name in (*_SINGLE, *extra):
        if len(values[name]) > 1:
            raise HTTPException(400, f"query parameter {name!r} is given {len(values[name])} times; at most once")
    context = Context(
        version=next(iter(values["version"]), None),
        groups=group_set(values["group"], settings),
        user=next(iter(values["user"]), None),
        attributes=attribute_set(
            ((name.removeprefix(ATTRIBUTE), value) for name, value in attributes.items()), settings
        ),
    )
    return context, {name: values[name][0] for name in extra if values[name]}


def group_set(groups: list[str], settings: Settings) -> tuple[str, ...]:
    """The caller's groups, each once, in the order given (`names.group_set`); a 400 when too many."""
    with _bad_request():
        return names.group_set(groups, settings)


def attribute_set(given: Iterable[tuple[str, object]], settings: Settings) -> tuple[tuple[str, Any], ...]:
    """The caller's attributes (`names.attributes`); a 400 naming what is wrong."""
    with _bad_request():
        return names.attributes(given, settings)


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


@contextlib.contextmanager
def _bad_request() -> Iterator[None]:
    try:
        yield
    except names.InvalidName as exc:
        raise HTTPException(400, str(exc)) from None


def check_name(what: str, value: str, settings: Settings) -> str:
    """`value`, if `names.check_name` accepts it; else a 400 naming the problem."""
    with _bad_request():
        return names.check_name(what, value, settings)
