"""`flipper console`: the operator's web page, served on loopback, over the same back ends as the CLI.

Server-rendered (Starlette and Jinja2, a few lines of JavaScript, nothing from a CDN). Every change is
previewed in a dialog listing the exact memberships it changes, then written through the operations the
CLI runs, carrying the revision the page was rendered at: if the flags moved on meanwhile, the write is
refused and the page shows the new state. Guarded as Jupyter is: a random token in the printed URL (then
a cookie) on every request, a CSRF token in every form, and the Host header checked (DNS rebinding).
Not part of the Lambda artifact.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import ipaddress
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jinja2
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flipper.core import memberships, operations, rules
from flipper.core.connection import StoreError, StoreUnavailable
from flipper.core.memberships import FlagError
from flipper.core.model import canonical_json
from flipper.core.settings import Settings, without_password
from flipper.core.writes import Refused, utc_time
from flipper.operate import flagsfile
from flipper.operate.backends import Backend, FunctionBackend, FunctionError, RedisBackend, audit_arguments
from flipper.operate.text import (
    change_text,
    parse_condition,
    parse_json,
    parse_variants,
    rule_lines,
    variant_lines,
    who,
)

HERE = Path(__file__).parent
HISTORY_LIMIT = 20
MAX_UPLOAD = flagsfile.MAX_BYTES  # the largest form part: a flags file, bounded as `flipper apply` bounds it
# No inline script or style, nothing from elsewhere, no framing: the page only talks to this server.
HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
# What the page's address keeps across changes: the filters and the caller being evaluated.
VIEW_FIELDS = ("name", "entity", "stale", "version", "groups", "user", "attributes")


@dataclasses.dataclass(frozen=True, slots=True)
class Guard:
    """Who may talk to the console: the Host headers of its own address, and the holder of its token."""

    token: str
    hosts: frozenset[str]
    cookie: str  # named per port: cookies are shared by every port of a host
    csrf: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32))


def guard_for(host: str, port: int, token: str | None = None) -> Guard:
    """The guard of a console bound to `host`:`port`; a loopback address also answers to localhost."""
    names = {host, "localhost", "127.0.0.1", "[::1]"} if _is_loopback(host) else {host}
    hosts = frozenset(
        f"[{name}]:{port}" if ":" in name and not name.startswith("[") else f"{name}:{port}" for name in names
    )
    return Guard(token or secrets.token_urlsafe(32), hosts, f"flipper_console_{port}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _same(given: str | None, secret: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), secret.encode())


class GuardMiddleware:
    """Refuses (403) a foreign Host header or a request without the token, before the app sees it; trades
    the token in the URL for a cookie; adds the security headers to every answer."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response: Response | None = None
        if request.headers.get("host") not in self.guard.hosts:
            response = _forbidden("this Host header is not the console's address (a DNS rebinding attempt?)")
        elif _same(request.query_params.get("token"), self.guard.token) and request.method == "GET":
            # Out of the address bar and history: the token lives on in an HTTP-only cookie. To the console's own
            # root, never the request's path: `//evil.example/` as a location is another site.
            query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            response = RedirectResponse("/" + (f"?{query}" if query else ""), status_code=303)
            response.set_cookie(self.guard.cookie, self.guard.token, httponly=True, samesite="strict")
        elif not _same(request.cookies.get(self.guard.cookie), self.guard.token):
            response = _forbidden("open the address `flipper console` printed: it holds the console's token")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], *((k.encode(), v.encode()) for k, v in HEADERS.items())]
            await send(message)

        await (response or self.app)(scope, receive, send_with_headers)


def _forbidden(why: str) -> Response:
    return PlainTextResponse(f"403 Forbidden: {why}\n", status_code=403)


@dataclasses.dataclass(frozen=True, slots=True)
class View:
    """What the page shows: the flags filtered by name, entity and staleness (a duration such as 30d), and
    the caller evaluated."""

    name: str = ""
    entity: str = ""
    stale: str = ""
    version: str = ""
    groups: str = ""
    user: str = ""
    attributes: str = ""  # NAME=VALUE, separated by commas or spaces: what the targeting rules compare

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> View:
        return cls(**{field: str(values.get(field) or "").strip() for field in VIEW_FIELDS})

    def query(self, **extra: str) -> str:
        pairs = [(field, getattr(self, field)) for field in VIEW_FIELDS if getattr(self, field)]
        return urlencode(pairs + list(extra.items()))

    def caller(self) -> dict[str, Any] | None:
        """The evaluated caller as `explain` takes it, or None when none is given."""
        if not (self.version or self.groups or self.user or self.attributes):
            return None
        groups = [group for group in self.groups.replace(",", " ").split() if group]
        # Text, as a query string's attr.NAME=VALUE is: the number operators read numeric text as a number.
        attributes = dict(item.partition("=")[::2] for item in self.attributes.replace(",", " ").split())
        return {"version": self.version or None, "groups": groups, "user": self.user or None, "attributes": attributes}


@dataclasses.dataclass(frozen=True, slots=True)
class Dialog:
    """A write waiting for confirmation: the memberships it changes, and the form that makes it."""

    title: str
    action: str
    fields: dict[str, str]
    changes: list[list[str]]
    # Carried to the write in hidden text areas (an input would lose their line breaks): an uploaded flags
    # file's text, variants' lines.
    texts: dict[str, str] = dataclasses.field(default_factory=dict)
    warnings: list[str] = dataclasses.field(default_factory=list)  # the plan's (lookalike names)


class Console:
    """The console's pages over one back end: reads render, every write is previewed, then confirmed."""

    def __init__(self, backend: Backend, guard: Guard, target: str) -> None:
        self.backend, self.guard, self.target = backend, guard, target
        self.notices: dict[str, str] = {}  # shown once, after the redirect that follows a write
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["describe"] = change_text
        self.templates.filters["who"] = who
        self.templates.filters["sign"] = _sign
        self.templates.filters["json"] = canonical_json

    # Reads

    async def page(self, request: Request) -> Response:
        view = View.of(request.query_params)
        return await self.render(view, notice=self.notices.pop(request.query_params.get("notice", ""), None))

    async def export(self, request: Request) -> Response:
        try:
            state = await self.backend.call("export", {})
        except CONSOLE_ERRORS as exc:
            return PlainTextResponse(f"{_failure(exc)[1]}\n", status_code=_failure(exc)[0])
        return Response(
            flagsfile.dumps(state["flags"]),
            media_type="application/yaml",
            headers={"content-disposition": f'attachment; filename="flags-r{state["revision"]}.yaml"'},
        )

    async def render(
        self,
        view: View,
        *,
        status: int = 200,
        notice: str | None = None,
        error: str | None = None,
        dialog: Dialog | None = None,
    ) -> Response:
        """The whole page, read afresh; a back end that fails still gets a page, saying so."""
        context: dict[str, Any] = {"view": view, "notice": notice, "error": error, "dialog": dialog, "state": None}
        try:
            context["state"] = await self.state(view)
        except CONSOLE_ERRORS as exc:
            status, context["error"] = _failure(exc)
        template = self.templates.get_template("console.html")
        html = template.render(
            context,
            actor=who(audit_arguments(self.backend)),
            target=self.target,
            csrf=self.guard.csrf,
            back=view.query(),
            show_all=dataclasses.replace(view, name="", entity="", stale="").query(),
        )
        return HTMLResponse(html, status_code=status)

    async def state(self, view: View) -> dict[str, Any]:
        exported, history, usage = await asyncio.gather(
            self.backend.call("export", {}),
            self.backend.call("history", {"limit": HISTORY_LIMIT}),
            self.backend.call("usage", {}),
        )
        features = exported["flags"]["features"]
        stale, stale_error = await self.stale(view)
        rows = [
            (feature, entities)
            for feature, entry in features.items()
            if view.name.casefold() in feature.casefold()
            and (stale is None or feature in stale)
            and (entities := _entities(entry, view.entity))
        ]
        evaluated, evaluate_error = await self.evaluate(view, features)
        return {
            "revision": exported["revision"],
            "warnings": exported.get("warnings", []),  # keys left out of the export: of the wrong type, say
            "features": list(features),
            "rows": rows,
            "entities": sorted(
                {e for entry in features.values() for e in _entities(entry, "")}, key=memberships.entity_sort_key
            ),
            "history": history["entries"],
            "evaluated": evaluated,
            "evaluate_error": evaluate_error,
            "last_seen": {row["feature"]: row["last_evaluated"] for row in usage["features"]},
            "stale_error": stale_error,
        }

    async def evaluate(self, view: View, features: Iterable[str]) -> tuple[list[Any] | None, str | None]:
        """Each feature explained for the view's caller (None: no caller given), or why the caller is not one
        (an attribute the API would refuse): said beside the form, the flags still shown."""
        caller = view.caller()
        if caller is None:
            return None, None
        try:
            return await asyncio.gather(
                *(self.backend.call("explain", {"feature": feature, **caller}) for feature in features)
            ), None
        except FlagError as exc:
            return None, str(exc)

    async def stale(self, view: View) -> tuple[set[str] | None, str | None]:
        """The flags not evaluated within the view's duration (None: no such filter), or why the duration is
        not one: said beside the filter, the flags still shown."""
        if not view.stale:
            return None, None
        try:
            result = await self.backend.call("stale", {"unused_for": view.stale})
        except FlagError as exc:
            return None, str(exc)
        return {row["feature"] for row in result["features"]}, None

    # Writes: a preview in a dialog, then the confirmed write

    async def preview_change(self, request: Request) -> Response:
        form = await self.form(request)
        view, operation = View.of(_back(form)), _field(form, "operation")
        try:
            feature = memberships.check_name("feature name", _field(form, "feature"), _settings(self.backend))
            where = memberships.parse_entity(_field(form, "entity"), _settings(self.backend))
            percentage = _field(form, "percentage") if operation == "rollout" else None
            state = await self.current(form)
            # A rule added or removed: the whole list as it will be, from the flags as the page showed them.
            typed = _edited_rules(form, feature, state) if operation in _RULE_EDITS else _typed(form)
            wanted = operations.change_memberships(
                _operation_of(operation), feature, where, percentage, settings=_settings(self.backend), **typed
            )
        except CONSOLE_ERRORS as exc:
            return await self.failed(view, form, exc)
        changes = _changes(state, wanted)
        fields = {"operation": operation, "feature": feature, "entity": where}
        texts = {}
        if operation in _RULE_EDITS:
            texts["rules"] = "" if typed["rules"] is None else canonical_json(typed["rules"])
        if percentage is not None:
            fields["percentage"] = memberships.percentage(percentage)
        if typed.get("value") is not None:
            fields["value"] = canonical_json(typed["value"])
        if typed.get("variants") is not None:
            texts["variants"] = "\n".join(variant_lines(typed["variants"]))
        title = f"{_VERBS[operation]} {feature} for {where}" + (f" at {fields['percentage']}%" if percentage else "")
        title += f" to {fields['value']}" if "value" in fields else ""
        title = _rule_title(form, feature, state, typed["rules"]) if operation in _RULE_EDITS else title
        dialog = Dialog(title, "/change", fields, changes, texts)
        return await self.confirm(view, state["revision"], dialog)

    async def change(self, request: Request) -> Response:
        form = await self.form(request)
        fields: dict[str, Any] = {name: _field(form, name) for name in ("operation", "feature", "entity")}
        if fields["operation"] == "rollout":
            fields["percentage"] = _field(form, "percentage")
        try:
            fields.update(_typed(form), operation=_operation_of(fields["operation"]))
        except FlagError as exc:
            return await self.failed(View.of(_back(form)), form, exc)
        result = await self.write(form, "change", fields)
        if isinstance(result, Response):
            return result
        what = f"{_VERBS[_field(form, 'operation')].lower()} {fields['feature']}" + (
            "" if fields["operation"] == "rules" else f" for {fields['entity']}"
        )
        return self.done(form, result, what)

    async def preview_undo(self, request: Request) -> Response:
        form = await self.form(request)
        view, entry = View.of(_back(form)), _field(form, "entry")
        try:
            state = await self.current(form)
            history = await self.backend.call("history", {"limit": HISTORY_LIMIT})
        except CONSOLE_ERRORS as exc:
            return await self.failed(view, form, exc)
        found = next((e for e in history["entries"] if e["id"] == entry), None)
        if found is None:
            return await self.render(view, status=400, error=f"no entry {entry!r} in the last {HISTORY_LIMIT}")
        changes = _changes(state, [(key, feature, before) for key, feature, before, _ in found["changes"]])
        dialog = Dialog(f"Undo entry {entry} by {who(found)}", "/undo", {"entry": entry}, changes)
        return await self.confirm(view, state["revision"], dialog)

    async def undo(self, request: Request) -> Response:
        form = await self.form(request)
        result = await self.write(form, "undo", {"entry": _field(form, "entry"), "force": _field(form, "force") == "1"})
        return result if isinstance(result, Response) else self.done(form, result, f"undid {_field(form, 'entry')}")

    async def preview_apply(self, request: Request) -> Response:
        form = await self.form(request)
        view, upload = View.of(_back(form)), form.get("flags_file")
        try:
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise FlagError("choose a flags file to apply")
            source = upload.filename
            text = flagsfile.decode(await upload.read(flagsfile.MAX_BYTES + 1), source)
            document = await _parsed(text, source, self.backend)
            await self.current(form)
            planned = await self.backend.call("plan", {"flags_file": document, "prune": _field(form, "prune") == "1"})
        except CONSOLE_ERRORS as exc:
            return await self.failed(view, form, exc)
        fields = {"source": source, "prune": _field(form, "prune")}
        title = f"Apply {source}" + (" and clear every feature it does not name" if fields["prune"] == "1" else "")
        dialog = Dialog(title, "/apply", fields, planned["changes"], {"flags_text": text}, planned.get("warnings", []))
        return await self.confirm(view, planned["revision"], dialog)

    async def apply(self, request: Request) -> Response:
        form = await self.form(request)
        source = _field(form, "source")
        try:
            document = await _parsed(_field(form, "flags_text"), source, self.backend)
        except FlagError as exc:
            return await self.failed(View.of(_back(form)), form, exc)
        result = await self.write(form, "apply", {"flags_file": document, "prune": _field(form, "prune") == "1"})
        return result if isinstance(result, Response) else self.done(form, result, f"applied {source}")

    # The steps every write shares

    async def form(self, request: Request) -> FormData:
        """The posted form, refused (403) unless it carries this console's CSRF token."""
        form = await request.form(max_files=1, max_fields=20, max_part_size=MAX_UPLOAD)
        if not _same(_field(form, "csrf"), self.guard.csrf):
            raise _CsrfRefused
        return form

    async def current(self, form: FormData) -> dict[str, Any]:
        """The flags now; Refused when they are no longer at the revision the page was rendered at."""
        state = await self.backend.call("export", {})
        if state["revision"] != _page_revision(form):
            raise Refused(_stale(_page_revision(form), state["revision"]))
        return state

    async def confirm(self, view: View, revision: int, dialog: Dialog) -> Response:
        fields = {**dialog.fields, "revision": str(revision)}
        return await self.render(view, dialog=dataclasses.replace(dialog, fields=fields))

    async def write(self, form: FormData, operation: str, arguments: dict[str, Any]) -> dict[str, Any] | Response:
        """Run a write operation as the console's actor, at the page's revision; a refusal renders the page."""
        message = _field(form, "message") or None
        try:
            revision = _page_revision(form)
            return await self.backend.call(
                operation, {**arguments, **audit_arguments(self.backend), "message": message, "revision": revision}
            )
        except CONSOLE_ERRORS as exc:
            return await self.failed(View.of(_back(form)), form, exc)

    async def failed(self, view: View, form: FormData, exc: Exception) -> Response:
        """The page, read afresh, saying what was refused; a stale page says so in those words."""
        status, error = _failure(exc)
        if isinstance(exc, Refused):
            with contextlib.suppress(*CONSOLE_ERRORS):
                now = (await self.backend.call("export", {}))["revision"]
                if now != _page_revision(form):
                    error = _stale(_page_revision(form), now)
        return await self.render(view, status=status, error=error)

    def done(self, form: FormData, result: dict[str, Any], what: str) -> Response:
        """After a write, back to the page (a reload does not post again), with what happened said once."""
        if result["entry"] is None:
            text = f"Nothing to change: {what} changes no membership (revision {result['revision']})."
        else:
            text = (
                f"Done: {what}, {len(result['changes'])} memberships changed "
                f"(revision {result['revision']}, entry {result['entry']})."
            )
        key = secrets.token_urlsafe(8)
        self.notices[key] = text
        while len(self.notices) > 100:  # never shown (the page was closed): forget the oldest
            del self.notices[next(iter(self.notices))]
        return RedirectResponse("/?" + View.of(_back(form)).query(notice=key), status_code=303)


class _CsrfRefused(Exception):
    """A form without this console's CSRF token."""


CONSOLE_ERRORS = (FlagError, FunctionError, StoreError, OSError)
_VERBS = {
    "enable": "Enable",
    "disable": "Disable",
    "clear": "Clear",
    "rollout": "Roll out",
    "value": "Set the value of",
    "clear_value": "Clear the value of",
    "variants": "Set the variants of",
    "clear_variants": "Clear the variants of",
    "add_rule": "Add a rule to",
    "remove_rule": "Remove a rule of",
}
# The form's clears of a value and of variants: the operation's "value" and "variants" without one (None).
_CLEARS = {"clear_value": "value", "clear_variants": "variants"}
# The form's edits of a feature's rules: previewed as the whole list they make, confirmed as a "rules" change
# of that list at the page's revision (so an edit made meanwhile elsewhere is refused, not undone).
_RULE_EDITS = ("add_rule", "remove_rule")


def _operation_of(operation: str) -> str:
    """The `change` operation a form's operation is."""
    return "rules" if operation in _RULE_EDITS else _CLEARS.get(operation, operation)


def _edited_rules(form: FormData, feature: str, state: dict[str, Any]) -> dict[str, Any]:
    """The feature's rules once the form's rule is added (its conditions a line each, as `flipper rule add
    --when` takes them, and an optional value) or removed (by number), as `change` takes them."""
    current = state["flags"]["features"].get(feature, {}).get("rules", [])
    if _field(form, "operation") == "remove_rule":
        number = _rule_number(form, feature, current)
        edited = current[: number - 1] + current[number:]
    else:
        new: dict[str, Any] = {
            "when": [parse_condition(line) for line in _field(form, "conditions").splitlines() if line.strip()]
        }
        if _field(form, "value").strip():
            new["value"] = parse_json("the rule's value", _field(form, "value"))
        edited = [*current, new]
    return {"rules": edited or None}


def _rule_number(form: FormData, feature: str, current: list[Any]) -> int:
    text = _field(form, "rule")
    if not text.isdigit() or not 1 <= int(text) <= len(current):
        raise FlagError(f"{feature} has no rule {text} (it has {len(current)})")
    return int(text)


def _rule_title(form: FormData, feature: str, state: dict[str, Any], edited: list[Any] | None) -> str:
    """The dialog's title for a rule's edit, naming the rule added or removed in words."""
    current = state["flags"]["features"].get(feature, {}).get("rules", [])
    if _field(form, "operation") == "remove_rule":
        said = rule_lines(current)[_rule_number(form, feature, current) - 1]
    else:
        said = rule_lines(edited)[-1]
    return f"{_VERBS[_field(form, 'operation')]} {feature}: rule {said}"


def _typed(form: FormData) -> dict[str, Any]:
    """The value (JSON) or the variants (a `NAME=WEIGHT:VALUE` a line) a change form sets, or None for those it
    clears, as `change` takes them."""
    operation = _field(form, "operation")
    if operation == "value":
        return {"value": parse_json("the value", _field(form, "value"))}
    if operation == "variants":
        return {"variants": parse_variants(line for line in _field(form, "variants").splitlines() if line.strip())}
    if operation in _RULE_EDITS:  # confirmed: the whole list the preview showed, in a hidden text ("" for none)
        return {"rules": parse_json("the rules", _field(form, "rules")) if _field(form, "rules").strip() else None}
    return {_CLEARS[operation]: None} if operation in _CLEARS else {}


def _failure(exc: Exception) -> tuple[int, str]:
    """The status and one line for an expected failure, as the CLI words them."""
    if isinstance(exc, Refused):
        return 409, str(exc)
    if isinstance(exc, FlagError):
        return 400, str(exc)
    if isinstance(exc, StoreUnavailable):
        return 503, f"the flag store is unreachable: {exc}"
    if isinstance(exc, StoreError):
        return 502, f"the flag store answered with an error: {exc}"
    return 502, str(exc)


def _stale(loaded: int, now: int) -> str:
    return (
        f"Not written: flags changed since this page was loaded (revision {loaded}, now {now}). "
        "The page now shows the current flags: review them and try again."
    )


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _back(form: FormData) -> dict[str, str]:
    """The page's view, from the address it was posted from (only the view's own fields)."""
    return dict(parse_qsl(_field(form, "back")))


def _page_revision(form: FormData) -> int:
    try:
        return int(_field(form, "revision"))
    except ValueError:
        raise FlagError("the form has no revision: reload the page") from None


async def _parsed(text: str, source: str, backend: Backend) -> Any:
    """An uploaded flags file read and checked (flagsfile.read), on a thread: a MiB of YAML takes seconds
    to parse, and the event loop answers every other request meanwhile."""
    return await asyncio.to_thread(flagsfile.read, text, source, _settings(backend))


def _settings(backend: Backend) -> Settings:
    """The settings names are checked with: the Redis back end's, else the defaults (the function checks again)."""
    return backend.settings if isinstance(backend, RedisBackend) else Settings()


def _entities(entry: Mapping[str, Any], match: str) -> dict[str, dict[str, Any]]:
    """A feature's entities, broadest first, each with on, off, rollout and value (global also with the
    feature's variants, as lines); only those containing `match`."""
    states: dict[str, dict[str, Any]] = {}

    def state(where: str) -> dict[str, Any]:
        blank = {
            "enabled": False,
            "disabled": False,
            "rollout": None,
            "value": None,
            "variants": None,
            "rules": None,
            "next_change": None,
        }
        return states.setdefault(where, blank)

    for field in ("enabled", "disabled"):
        for where in entry.get(field, []):
            state(where)[field] = True
    for where, value in entry.get("rollout", {}).items():
        state(where)["rollout"] = value
    for where, value in entry.get("values", {}).items():
        state(where)["value"] = canonical_json(value)
    if entry.get("variants"):  # the feature's, shown at global where they are held
        state("global")["variants"] = variant_lines(entry["variants"])
    if entry.get("rules"):  # the feature's too; and when a schedule (a rule on now) next changes its outcome
        state("global")["rules"] = rule_lines(entry["rules"])
        boundary = rules.next_boundary(rules.parse_rules(entry["rules"]), time.time())
        state("global")["next_change"] = None if boundary is None else utc_time(boundary)
    return {
        where: states[where]
        for where in sorted(states, key=memberships.entity_sort_key)
        if match.casefold() in where.casefold()
    }


def _changes(state: dict[str, Any], wanted: list[tuple[str, str, str]]) -> list[list[str]]:
    """The memberships that setting `wanted` (`(key, feature, value)`, "" removes) changes in the exported
    `state`: exactly what the write will report, in the plan's order."""
    current = memberships.memberships_of(state["flags"]["features"])
    desired = {**current, **{(key, feature): value for key, feature, value in wanted}}
    desired = {membership: value for membership, value in desired.items() if value}
    return [list(change) for change in memberships.plan(current, desired, {feature for _, feature, _ in wanted})]


def _sign(change: list[str]) -> str:
    before, after = change[2], change[3]
    return "~" if before and after else "+" if after else "-"


def create_app(backend: Backend, guard: Guard, target: str) -> Starlette:
    """The console's ASGI app: the page, its previews and writes, the export, and the static files."""
    console = Console(backend, guard, target)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await backend.aclose()

    async def csrf_refused(request: Request, exc: Exception) -> Response:
        return _forbidden("the form's CSRF token is missing or wrong: reload the page and try again")

    app = Starlette(
        routes=[
            Route("/", console.page),
            Route("/export", console.export),
            Route("/preview/change", console.preview_change, methods=["POST"]),
            Route("/change", console.change, methods=["POST"]),
            Route("/preview/undo", console.preview_undo, methods=["POST"]),
            Route("/undo", console.undo, methods=["POST"]),
            Route("/preview/apply", console.preview_apply, methods=["POST"]),
            Route("/apply", console.apply, methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={_CsrfRefused: csrf_refused},
        lifespan=lifespan,
    )
    return GuardMiddleware(app, guard)  # type: ignore[return-value]


def describe(backend: Backend) -> str:
    """Where the console's back end writes, for the page's header (a password in the URL masked)."""
    if isinstance(backend, RedisBackend):
        return f"Redis {without_password(backend.settings.redis_url or '')}"
    return f"function {backend.function}" if isinstance(backend, FunctionBackend) else type(backend).__name__


def serve(backend: Backend, host: str, port: int) -> None:
    """Bind `host`:`port` (0: any free port), print the address with its token, and serve until Ctrl-C."""
    if host in ("0.0.0.0", "::", ""):
        raise FlagError("give the address to serve on (the Host header is checked against it), not a wildcard")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # before the address is printed: whoever reads it may connect at once
    except OSError as exc:
        sock.close()
        raise FlagError(f"cannot serve on {host}:{port}: {exc.strerror}") from None
    port = sock.getsockname()[1]
    guard = guard_for(host, port)
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"Flipper console for {describe(backend)}, acting as {who(audit_arguments(backend))}", flush=True)
    if not _is_loopback(host):
        print(f"warning: serving on {host}, not loopback: anyone with the address below can change flags", flush=True)
    print(f"Open http://{shown}:{port}/?token={guard.token}  (Ctrl-C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(create_app(backend, guard, describe(backend)), log_level="warning"))
    server.run(sockets=[sock])
