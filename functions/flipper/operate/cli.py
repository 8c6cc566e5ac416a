"""`flipper`: operate the flags from a terminal, directly on Redis or through the deployed function.

Every change goes through the audited write path (flipper.core.writes). Exit codes: 0 done, 1 error (one
line on stderr), 2 `apply --dry-run` found changes pending or `stale` found stale flags. `--json` prints
machine-readable output.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from flipper.core import devstore, rules
from flipper.core.connection import StoreError, StoreUnavailable
from flipper.core.memberships import ENTITY_KINDS, FlagError, entity, is_utf8
from flipper.core.model import canonical_json
from flipper.core.settings import Settings, SettingsError
from flipper.operate import flagsfile
from flipper.operate.backends import Backend, FunctionBackend, FunctionError, RedisBackend, audit_arguments
from flipper.operate.text import (
    change_text,
    parse_condition,
    parse_json,
    parse_variants,
    rule_lines,
    shown,
    variant_lines,
    who,
)

F = TypeVar("F", bound=Callable[..., Any])


class Failure(click.ClickException):
    """An error the command reports as one line and exit code 1."""

    exit_code = 1


@contextlib.contextmanager
def _failures() -> Iterator[None]:
    """Every expected failure as a Failure: one line, no traceback."""
    try:
        yield
    except (FlagError, FunctionError, SettingsError) as exc:
        raise Failure(str(exc)) from None
    except StoreUnavailable as exc:
        raise Failure(f"the flag store is unreachable: {exc}") from None
    except StoreError as exc:
        raise Failure(f"the flag store answered with an error: {exc}") from None
    except OSError as exc:
        raise Failure(str(exc)) from None


class Target:
    """Where the command runs and how it prints: the options every command shares."""

    def __init__(
        self,
        redis_url: str | None,
        prefix: str | None,
        function: str | None,
        stack: str | None,
        actor: str | None,
        as_json: bool,
    ):
        self.redis_url, self.prefix, self.function, self.stack = redis_url, prefix, function, stack
        self.actor, self.as_json = actor, as_json

    def backend(self) -> Backend:
        if self.function or self.stack:
            if self.actor:
                raise Failure("--actor applies to --redis-url; through the function the actor is your AWS identity")
            if self.prefix is not None:
                raise Failure(
                    "--prefix applies to --redis-url; the function uses its own FLIPPER_KEY_PREFIX"
                    " (one stack per environment: docs/deploy.md)"
                )
            return FunctionBackend(self.function, self.stack)
        settings = self.settings()
        url = self.redis_url or settings.redis_url or devstore.recorded_url()  # a running `make dev-server`'s
        if url is None:
            raise Failure(
                "no flag store: give --redis-url (or REDIS_URL), or --function/--stack for the deployed one,"
                " or start `make dev-server`"
            )
        return RedisBackend(Settings.from_environ({**_environ(self.prefix), "REDIS_URL": url}), self.actor)

    def settings(self) -> Settings:
        return _settings(self.prefix)

    def run(self, name: str, /, **arguments: Any) -> dict[str, Any]:
        """Run operation `name`; the write operations get the actor."""
        return asyncio.run(self._run(name, arguments))

    async def _run(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        with _failures():
            backend = self.backend()
            try:
                if name in _WRITES:
                    arguments = {**arguments, **audit_arguments(backend)}
                result = await backend.call(name, arguments)
            finally:
                await backend.aclose()
        # Here, for every command alike; on stderr, so that stdout stays the answer (JSON keeps them too).
        for warning in result.get("warnings", []):
            click.echo(f"flipper: warning: {shown(warning)}", err=True)
        return result

    def echo(self, data: Any, *lines: str) -> None:
        """`data` as JSON, or `lines` for people, each escaped whole: a name holding a line break stays on its line."""
        if self.as_json:
            click.echo(flagsfile.json_text(data))
        else:
            click.echo("\n".join(shown(line) for line in lines))


_WRITES = {"change", "delete", "apply", "undo"}


def _environ(prefix: str | None) -> dict[str, str]:
    """The environment, with `--prefix` for FLIPPER_KEY_PREFIX when given."""
    return {**os.environ} if prefix is None else {**os.environ, "FLIPPER_KEY_PREFIX": prefix}


def _settings(prefix: str | None) -> Settings:
    """The settings, checked with `--prefix` when given: in a cluster, the prefix must carry a hash tag."""
    return Settings.from_environ(_environ(prefix))


def target_options(command: F) -> F:
    """The options every command takes: where the flags are, who acts, and `--json`."""

    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of text.")
    @click.option("--actor", metavar="NAME", help="Who the audit records (default: user@host; --redis-url only).")
    @click.option(
        "--stack",
        metavar="STACK",
        envvar="FLIPPER_STACK",
        help="The function named by this stack's FunctionName output.",
    )
    @click.option(
        "--function", "function", metavar="NAME", envvar="FLIPPER_FUNCTION",
        help="Run through this deployed function (AWS credentials; lambda:InvokeFunction).",
    )  # fmt: skip
    @click.option(
        "--prefix",
        metavar="PREFIX",
        help="The environment's key prefix on that Redis, e.g. staging: (default: FLIPPER_KEY_PREFIX).",
    )
    @click.option(
        "--redis-url", metavar="URL", help="Redis to operate directly (default: REDIS_URL); FLIPPER_KEY_PREFIX applies."
    )
    @functools.wraps(command)
    def wrapper(**kw: Any) -> Any:
        kw["as_json"] |= click.get_current_context().find_root().params["as_json"]  # `flipper --json COMMAND`
        names = ("redis_url", "prefix", "function", "stack", "actor", "as_json")
        return command(target=Target(*(kw.pop(name) for name in names)), **kw)

    return wrapper  # type: ignore[return-value]


def entity_options(*, users: bool = True) -> Callable[[F], F]:
    """Exactly one of --global, --version V, --group G (and --user U): the entity a change applies to."""

    def decorate(command: F) -> F:
        options = [
            click.option("--global", "is_global", is_flag=True, help="Every caller."),
            click.option("--version", metavar="V", help="Callers of this version."),
            click.option("--group", metavar="G", help="Callers in this group."),
        ]
        # Without users (a rollout), --user is still taken, hidden, to say why rather than "No such option".
        options.append(click.option("--user", metavar="U", help="This one user.", hidden=not users))

        @functools.wraps(command)
        def wrapper(**kw: Any) -> Any:
            if not users and kw["user"] is not None:
                raise Failure(
                    "a rollout is per global, version or group, not per user: a user is in or out already"
                    " (flipper enable or disable FEATURE --user U)"
                )
            given = [(kind, name) for kind in ENTITY_KINDS if (name := kw.pop(kind, None)) is not None]
            given += [("global", None)] if kw.pop("is_global") else []
            if len(given) != 1:
                names = "--global, --version, --group" + (" or --user" if users else "")
                raise Failure(f"give exactly one of {names}")
            with _failures():
                where = entity(*given[0], _settings(kw.get("prefix")))
            return command(where=where, **kw)

        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate


def caller_options(command: F) -> F:
    """The caller whose flags are read: --version, --group (repeatable), --user and --attribute NAME=VALUE
    (repeatable, for the targeting rules), all optional."""

    @click.option(
        "--attribute",
        "attributes",
        metavar="NAME=VALUE",
        multiple=True,
        help="An attribute of the caller's for the rules (repeatable), as text, as a query string sends it.",
    )
    @click.option("--user", metavar="U", help="The caller's user id.")
    @click.option("--group", "groups", metavar="G", multiple=True, help="A group of the caller's (repeatable).")
    @click.option("--version", metavar="V", help="The caller's version.")
    @functools.wraps(command)
    def wrapper(
        version: str | None, groups: tuple[str, ...], user: str | None, attributes: tuple[str, ...], **kw: Any
    ) -> Any:
        given: dict[str, str] = {}
        for attribute in attributes:
            name, equals, value = attribute.partition("=")
            if not equals:
                raise Failure(f"attribute {attribute!r} is not NAME=VALUE, as plan=pro")
            given[name] = value
        caller = {"version": version, "groups": list(groups), "user": user}
        # Only when given: a function deployed before the rules knows no such argument, and need not.
        return command(caller={**caller, "attributes": given} if given else caller, **kw)

    return wrapper  # type: ignore[return-value]


message_option = click.option("-m", "--message", metavar="TEXT", help="Why: recorded in the audit entry.")


class _Command(click.Command):
    """A command that refuses, naming it, an argument that is not UTF-8: Python decodes argv with
    surrogateescape, so a byte such as 0xFF would otherwise reach the name checks as a lone surrogate."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        for param in self.get_params(ctx):
            if isinstance(param.type, click.Path):  # a file's name need not be UTF-8: only names in Redis must
                continue
            value = ctx.params.get(param.name or "")
            for text in value if isinstance(value, tuple) else (value,):
                if isinstance(text, str) and not is_utf8(text):
                    what = (
                        f"option {param.opts[0]}"
                        if isinstance(param, click.Option)
                        else f"argument {param.human_readable_name}"
                    )
                    raise Failure(f"{what} ('{text}') is not valid UTF-8")
        return rest


class _Group(click.Group):
    command_class = _Command


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (also taken after the command).")
def cli(as_json: bool) -> None:
    """Operate Flipper's flags: change them through one audited write path, review them as code, see who
    changed what, and undo.

    \b
    Where the flags are (every command takes these):
      --redis-url URL (or REDIS_URL)   Redis directly, with FLIPPER_KEY_PREFIX and FLIPPER_REDIS_CLUSTER
      --prefix PREFIX                  the environment's key prefix there (staging:, {production}:)
      --function NAME, --stack STACK   the deployed function, with your AWS credentials

    Exit codes: 0 done, 1 error, 2 `apply --dry-run` found changes pending, or `stale` found stale flags.
    """


def _changed(target: Target, result: dict[str, Any], done: str, nothing: str) -> None:
    if result["entry"] is None:
        target.echo(result, f"{nothing}; nothing changed (revision {result['revision']})")
    else:
        target.echo(result, f"{done} (revision {result['revision']}, entry {result['entry']})")


def _change_command(operation: str, verb: str, summary: str) -> None:
    """enable, disable and clear: one feature at one entity."""

    @cli.command(operation, help=summary, short_help=summary.partition(":")[0] + ".")
    @click.argument("feature")
    @entity_options()
    @message_option
    @target_options
    def command(target: Target, feature: str, where: str, message: str | None) -> None:
        result = target.run("change", operation=operation, feature=feature, entity=where, message=message)
        _changed(target, result, f"{verb} {feature} for {where}", f"{feature} is already {verb} for {where}")


_change_command("enable", "enabled", "Enable FEATURE for one entity: in its positive set, out of its negative set.")
_change_command(
    "disable", "disabled", "Disable FEATURE for one entity: in its negative set (a deny, which wins everywhere)."
)
_change_command("clear", "cleared", "Clear FEATURE at one entity: out of both sets, no rollout (it inherits).")


@cli.command(short_help="Roll FEATURE out to PERCENT of an entity's users.")
@click.argument("feature")
@click.argument("percent")
@entity_options(users=False)
@message_option
@target_options
def rollout(target: Target, feature: str, percent: str, where: str, message: str | None) -> None:
    """Roll FEATURE out to PERCENT of the entity's users (0 to 100, up to three decimals; 0 removes it).

    A user is in when crc32(FEATURE + user id) % 100000 < PERCENT * 1000, as in Flipper for Ruby, so the
    same users stay in as the percentage grows.
    """
    result = target.run(
        "change", operation="rollout", feature=feature, entity=where, percentage=percent, message=message
    )
    _changed(
        target,
        result,
        f"rolled {feature} out to {percent}% at {where}",
        f"{feature} is already at {percent}% at {where}",
    )


@cli.command("value", short_help="Set or clear FEATURE's value at one entity.")
@click.argument("feature")
@click.argument("value", required=False)
@click.option("--clear", "clear_", is_flag=True, help="Remove the value at the entity instead.")
@entity_options()
@message_option
@target_options
def value_(target: Target, feature: str, value: str | None, clear_: bool, where: str, message: str | None) -> None:
    """Set FEATURE's VALUE at one entity: JSON, a string quoted ('"blue"'), a number (42), an object or an
    array; not null or a boolean (what a flag without a value answers). A caller the feature is on for gets
    the value of its most specific entity holding one: user, group, version, global. --clear removes it."""
    if clear_ == (value is not None):
        raise Failure("give a VALUE (JSON) or --clear")
    with _failures():
        parsed = None if value is None else parse_json("VALUE", value)
    if value is not None and parsed is None:  # the operation reads a null value as a clear: here, say so
        raise Failure("a value must be a string, number, object or array, not null (--clear removes one)")
    result = target.run("change", operation="value", feature=feature, entity=where, value=parsed, message=message)
    if clear_:
        _changed(target, result, f"cleared {feature}'s value at {where}", f"{feature} has no value at {where}")
    else:
        _changed(target, result, f"set {feature} to {value} at {where}", f"{feature} is already {value} at {where}")


@cli.command(short_help="Split FEATURE's callers between named variants.")
@click.argument("feature")
@click.argument("variants", nargs=-1, metavar="NAME=WEIGHT:VALUE...")
@click.option("--clear", "clear_", is_flag=True, help="Remove the feature's variants instead.")
@message_option
@target_options
def variants(target: Target, feature: str, variants: tuple[str, ...], clear_: bool, message: str | None) -> None:
    """Split the callers FEATURE is on for between VARIANTS, in their order: each NAME=WEIGHT:VALUE, WEIGHT
    a percentage (weights sum to 100) and VALUE JSON, as classic=50:'"classic"' one_page=50:'"one_page"'.
    A user's variant is sticky and independent of rollouts; a caller without a user gets the first.
    --clear removes them."""
    if clear_ == bool(variants):
        raise Failure("give the variants (NAME=WEIGHT:VALUE ...) or --clear")
    with _failures():
        split = parse_variants(variants)
    result = target.run(
        "change", operation="variants", feature=feature, entity="global", variants=split or None, message=message
    )
    if clear_:
        _changed(target, result, f"cleared {feature}'s variants", f"{feature} has no variants")
    else:
        _changed(target, result, f"split {feature} between {', '.join(split)}", f"{feature} is already split so")


@cli.group("rule", cls=_Group, short_help="Add, list and remove FEATURE's targeting rules.")
def rule() -> None:
    """A feature's targeting rules: the feature is on for a caller when any of its rules holds (a deny
    still wins), and a rule holds when all its conditions do. The first rule that holds serves its value.
    Rules are numbered from 1, in their order, as `flipper rule list` shows them."""


def _rules_of(target: Target, feature: str) -> tuple[int, list[dict[str, Any]]]:
    """The revision and FEATURE's rules as the flags file holds them, read together."""
    exported = target.run("export")
    return exported["revision"], exported["flags"]["features"].get(feature, {}).get("rules", [])


def _set_rules(target: Target, feature: str, wanted: list[dict[str, Any]], revision: int, message: str | None) -> Any:
    """FEATURE's whole rules list set to `wanted` (none: cleared), only if the flags are still at `revision`,
    the one they were read at: a rule added or removed meanwhile is not silently undone."""
    return target.run(
        "change",
        operation="rules",
        feature=feature,
        entity="global",
        rules=wanted or None,
        revision=revision,
        message=message,
    )


def _add_rule(target: Target, feature: str, new: dict[str, Any], message: str | None) -> None:
    with _failures():
        [parsed] = _parsed_rules([new])  # refused here, before anything is read, as the operation would
    revision, current = _rules_of(target, feature)
    result = _set_rules(target, feature, [*current, new], revision, message)
    number = len(current) + 1
    target.echo(
        result,
        f"added rule {number} to {feature}: {rules.describe(parsed)}"
        f" (revision {result['revision']}, entry {result['entry']})",
    )


def _parsed_rules(raw: list[dict[str, Any]]) -> tuple[rules.Rule, ...]:
    try:
        return rules.parse_rules(raw)
    except rules.RuleError as exc:
        raise FlagError(str(exc)) from None


@rule.command("add", short_help="Add a rule to FEATURE: conditions that must all hold.")
@click.argument("feature")
@click.option(
    "--when",
    "conditions",
    multiple=True,
    required=True,
    metavar="'ATTRIBUTE OPERATOR VALUE[,VALUE...]'",
    help="A condition (repeatable: all must hold), as 'plan in pro,enterprise' or 'age gte 18'.",
)
@click.option("--value", metavar="JSON", help="The value the feature serves when this rule is the first to hold.")
@message_option
@target_options
def rule_add(target: Target, feature: str, conditions: tuple[str, ...], value: str | None, message: str | None) -> None:
    """Add a rule to the end of FEATURE's rules: it holds when every --when condition does. Operators: in,
    not_in, starts_with, ends_with, contains (text); eq, gt, gte, lt, lte (numbers); semver_eq, semver_gt,
    semver_gte, semver_lt, semver_lte (versions such as 2.10.0); before, after (RFC 3339 times; the attribute
    `now` is the time of the evaluation). Values are separated by commas."""
    with _failures():
        new: dict[str, Any] = {"when": [parse_condition(condition) for condition in conditions]}
        if value is not None:
            new["value"] = parse_json("VALUE", value)
    _add_rule(target, feature, new, message)


@rule.command("list", short_help="FEATURE's rules, numbered, in words.")
@click.argument("feature")
@target_options
def rule_list(target: Target, feature: str) -> None:
    """FEATURE's rules in their order, numbered as `flipper rule remove` takes them, each in words."""
    revision, current = _rules_of(target, feature)
    words = rule_lines(current)  # as exported: rules that parse (one written by hand that does not is left out)
    target.echo(
        {"feature": feature, "revision": revision, "rules": current, "words": words},
        *(words or [f"{feature} has no rules"]),
    )


@rule.command("remove", short_help="Remove FEATURE's rule N.")
@click.argument("feature")
@click.argument("number", metavar="N", type=int)
@message_option
@target_options
def rule_remove(target: Target, feature: str, number: int, message: str | None) -> None:
    """Remove FEATURE's rule N (1 is the first, as `flipper rule list` numbers them); the rules after it move up."""
    revision, current = _rules_of(target, feature)
    if not 1 <= number <= len(current):
        raise Failure(f"{feature} has no rule {number} (it has {len(current)})")
    [removed] = _parsed_rules([current[number - 1]])
    result = _set_rules(target, feature, current[: number - 1] + current[number:], revision, message)
    target.echo(
        result,
        f"removed rule {number} of {feature}: {rules.describe(removed)}"
        f" (revision {result['revision']}, entry {result['entry']})",
    )


@cli.command(short_help="Turn FEATURE on from a time, until a time: a rule on now.")
@click.argument("feature")
@click.option("--from", "from_", metavar="TIME", help="On from this RFC 3339 time (2026-12-20T00:00:00Z).")
@click.option("--until", metavar="TIME", help="Off again from this RFC 3339 time.")
@message_option
@target_options
def schedule(target: Target, feature: str, from_: str | None, until: str | None, message: str | None) -> None:
    """Add a rule that holds from --from (included) until --until (excluded), by the time of each evaluation:
    exact to the second, with nothing to run at those times. Either may be left out (on from, or on until)."""
    if from_ is None and until is None:
        raise Failure("give --from TIME, --until TIME or both")
    opens, closes = rules.timestamp(from_), rules.timestamp(until)
    if opens is not None and closes is not None and opens >= closes:
        raise Failure(f"--from {from_} is not before --until {until}: the feature would never be on")
    when = [{"attribute": rules.NOW, "operator": "after", "values": [from_]}] if from_ is not None else []
    when += [{"attribute": rules.NOW, "operator": "before", "values": [until]}] if until is not None else []
    _add_rule(target, feature, {"when": when}, message)


@cli.command(short_help="Delete FEATURE from every entity.")
@click.argument("feature")
@message_option
@target_options
def delete(target: Target, feature: str, message: str | None) -> None:
    """Delete FEATURE: out of every set, rollout, value and variants of every entity; the API no longer
    knows it, and its usage counts are forgotten (so a name callers asked about that is no flag can be too)."""
    result = target.run("delete", feature=feature, message=message)
    _changed(target, result, f"deleted {feature}", f"no entity names {feature}")


@cli.command("list", short_help="Every feature and, per entity, on, off or rolled out.")
@target_options
def list_(target: Target) -> None:
    """Every feature in Redis and, per entity, enabled, disabled or rolled out; and values, variants and rules."""
    result = target.run("export")
    features = result["flags"]["features"]
    # The typed flags' columns only where there are some: a store of booleans lists as it always did.
    typed = any("values" in entry or "variants" in entry for entry in features.values())
    targeted = any("rules" in entry for entry in features.values())
    rows = [
        [
            name,
            ", ".join(entry.get("enabled", [])) or "-",
            ", ".join(entry.get("disabled", [])) or "-",
            ", ".join(f"{where} {value}%" for where, value in entry.get("rollout", {}).items()) or "-",
            *(
                [
                    ", ".join(f"{where} {canonical_json(v)}" for where, v in entry.get("values", {}).items()) or "-",
                    ", ".join(variant_lines(entry.get("variants", {}))) or "-",
                ]
                if typed
                else []
            ),
            *(["; ".join(rule_lines(entry.get("rules", []))) or "-"] if targeted else []),
        ]
        for name, entry in features.items()
    ]
    header = [
        "FEATURE",
        "ENABLED",
        "DISABLED",
        "ROLLOUT",
        *(["VALUES", "VARIANTS"] if typed else []),
        *(["RULES"] if targeted else []),
    ]
    lines = _table(header, rows) if rows else ["no features"]
    target.echo({key: value for key, value in result.items() if key != "flags"} | {"features": features}, *lines)


@cli.command(short_help="The features enabled for a caller (as GET /).")
@caller_options
@target_options
def show(target: Target, caller: dict[str, Any]) -> None:
    """The features enabled for a caller, as GET / answers them."""
    result = target.run("show", **caller)
    target.echo(result, *result["features"] or ["no features enabled"])


@cli.command(short_help="Why FEATURE is on or off for a caller.")
@click.argument("feature")
@caller_options
@target_options
def explain(target: Target, feature: str, caller: dict[str, Any]) -> None:
    """Why FEATURE is on or off for a caller, as GET /features/FEATURE?explain=true answers it."""
    result = target.run("explain", feature=feature, **caller)
    lines = [f"{feature}: {'on' if result['enabled'] else 'off'} ({result['reason']})"]
    lines += [f"  enabled by  {key}" for key in result["enabled_by"]]
    lines += [f"  disabled by {key}" for key in result["disabled_by"]]
    lines += [
        f"  rollout     {rollout['key']} at {rollout['percentage']:g}%: user's bucket {result['bucket']}"
        for rollout in result["rollouts"]
    ]
    # A typed flag's (the evaluation reports these only for one): what the caller got, and from where.
    if result.get("value") is not None:
        source = result.get("value_from") or (f"variant {result['variant']}" if result.get("variant") else None)
        lines.append(f"  value       {canonical_json(result['value'])}" + (f" from {source}" if source else ""))
    if result.get("variant") is not None or result.get("variant_bucket") is not None:
        bucket = result.get("variant_bucket")
        got = result.get("variant") or "none"
        lines.append(f"  variant     {got}" + ("" if bucket is None else f": user's variant bucket {bucket}"))
    lines += _rules_explained(result)
    target.echo(result, *lines)


def _rules_explained(result: dict[str, Any]) -> list[str]:
    """A feature with rules (the evaluation reports them only then): the rule that matched, and each rule's
    conditions with their outcome, as far as the evaluation reports them."""
    if result.get("rule") is not None:
        lines = [f"  rule        {result['rule']} matched"]
    else:
        lines = ["  rule        none matched"] if "rule" in result else []
    for explained in result.get("rules", []):
        outcome = "matched" if explained.get("matched") else "not matched"
        words = f" {explained['words']}" if explained.get("words") else ""
        lines.append(f"  rule {explained.get('rule', '?')}:{words} ({outcome})")
        lines += [
            f"    {'holds' if condition.get('holds') else 'fails'}  {condition.get('attribute')}"
            f" {condition.get('operator')} {', '.join(map(str, condition.get('values', [])))}"
            for condition in explained.get("conditions", [])
        ]
    return lines


@cli.command(short_help="The whole flag state as a flags file (YAML).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file, not stdout.")
@target_options
def export(target: Target, output: Path | None) -> None:
    """The whole flag state as a flags file (YAML) to review in git; `flipper apply` reads it back."""
    result = target.run("export")
    text = (
        flagsfile.json_text(flagsfile.as_data(result["flags"])) + "\n"
        if target.as_json
        else flagsfile.dumps(result["flags"])
    )
    if output is None:
        click.echo(text, nl=False)
    else:
        with _failures():
            output.write_text(text, encoding="utf-8")
        click.echo(
            f"wrote {len(result['flags']['features'])} features to {output} (revision {result['revision']})", err=True
        )


@cli.command(short_help="Plan, then make Redis match a flags file.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--dry-run", is_flag=True, help="Print the plan and stop: exit 0 when nothing would change, 2 otherwise.")
@click.option("--prune", is_flag=True, help="Also clear every feature the file does not name.")
@message_option
@target_options
@click.pass_context
def apply(ctx: click.Context, target: Target, file: str, dry_run: bool, prune: bool, message: str | None) -> None:
    """Make Redis match FILE (a flags file; - reads stdin): print the plan, then apply it in one atomic
    write, only if the flags have not changed since the plan was made.

    FILE is the full desired state of the features it names. Applying it twice changes nothing the second time.
    """
    with _failures():
        with click.open_file(file, "rb") as stream:  # bytes: flagsfile names the line of any that are not UTF-8
            text = flagsfile.decode(stream.read(flagsfile.MAX_BYTES + 1), file)
        # Checked here, where the lines are known, as well as by the function.
        document = flagsfile.read(text, file, target.settings())
    planned = target.run("plan", flags_file=document, prune=prune)
    changes = planned["changes"]
    if not target.as_json:
        click.echo(_plan_text(changes, planned["revision"]))
    if dry_run or not changes:
        if target.as_json:
            target.echo(planned, "")
        ctx.exit(2 if dry_run and changes else 0)
    result = target.run("apply", flags_file=document, prune=prune, revision=planned["revision"], message=message)
    target.echo(
        result, f"applied {len(result['changes'])} changes (revision {result['revision']}, entry {result['entry']})"
    )


@cli.command(short_help="Who changed what, when: newest first.")
@click.argument("feature", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most this many entries.")
@target_options
def history(target: Target, feature: str | None, limit: int) -> None:
    """Audit entries, newest first: who changed what, when, and the revision it produced; only FEATURE's
    when given. Flags written around Flipper (redis-cli) have no entry."""
    result = target.run("history", feature=feature, limit=limit)
    rows = [
        [
            entry["id"],
            entry["time"],
            who(entry),
            entry["operation"] + (f" {entry['undoes']}" if "undoes" in entry else ""),
            _summary(entry["changes"]),
            entry.get("message", ""),
        ]
        for entry in result["entries"]
    ]
    lines = _table(["ENTRY", "TIME", "ACTOR", "OPERATION", "CHANGES", "MESSAGE"], rows) if rows else ["no entries"]
    target.echo(result, *lines)


@cli.command(short_help="Revert one audit entry.")
@click.argument("entry")
@click.option("--force", is_flag=True, help="Undo even when later entries changed the same flags.")
@message_option
@target_options
def undo(target: Target, entry: str, force: bool, message: str | None) -> None:
    """Apply the inverse of audit ENTRY (its id, as history shows it), itself audited. Refused, naming them,
    when later entries changed the same flags, unless --force."""
    result = target.run("undo", entry=entry, force=force, message=message)
    _changed(target, result, f"undid {entry}", f"the flags are already as before {entry}")


@cli.command(short_help="How often each feature was evaluated, and when last.")
@target_options
def usage(target: Target) -> None:
    """Every known feature (a flag, or a name callers asked about) with the evaluations counted, when it was
    last evaluated and when last changed (UTC). Approximate: each instance flushes its counts at most every
    FLIPPER_USAGE_FLUSH_SECONDS, and one that dies loses at most that interval."""
    result = target.run("usage")
    rows = [
        [
            row["feature"],
            "yes" if row["flag"] else "no",
            str(row["evaluations"]),
            row["last_evaluated"] or "-",
            row["last_changed"] or "-",
        ]
        for row in result["features"]
    ]
    lines = _table(["FEATURE", "FLAG", "EVALUATIONS", "LAST EVALUATED", "LAST CHANGED"], rows) if rows else []
    since = result["recording_since"]
    lines.append(f"usage recorded since {since} (approximate)" if since else "no usage recorded yet")
    target.echo(result, *lines)


@cli.command(short_help="The flags not evaluated within a duration; exit 2 when any.")
@click.option("--unused-for", required=True, metavar="DURATION", help="30d, 12h, 15m or 90s.")
@target_options
@click.pass_context
def stale(ctx: click.Context, target: Target, unused_for: str) -> None:
    """The flags no evaluation named within DURATION (30d, 12h, 15m, 90s), by Redis's clock: exit 0 when
    none, 2 when some, so that a CI job can fail on stale flags. A flag never evaluated is stale."""
    result = target.run("stale", unused_for=unused_for)
    rows = [
        [row["feature"], row["last_evaluated"] or "never", row["last_changed"] or "-"] for row in result["features"]
    ]
    lines = (
        _table(["FEATURE", "LAST EVALUATED", "LAST CHANGED"], rows)
        if rows
        else [f"no flag unused for {unused_for} (evaluated since {result['evaluated_since']})"]
    )
    target.echo(result, *lines)
    ctx.exit(2 if rows else 0)


def _summary(changes: list[list[str]]) -> str:
    text = "; ".join(change_text(change) for change in changes[:3])
    return text + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")


def _plan_text(changes: list[list[str]], revision: int) -> str:
    if not changes:
        return f"no changes (revision {revision})"
    lines = [f"plan against revision {revision}: {len(changes)} membership changes"]
    for change in changes:
        before, after = change[2], change[3]
        sign, colour = ("~", "yellow") if before and after else ("+", "green") if after else ("-", "red")
        lines.append(click.style(f"  {sign} {shown(change_text(change))}", fg=colour))
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of columns aligned to their widest cell, each cell as `shown` prints it (escapes widen it)."""
    cells = [header] + [[shown(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]


def main(argv: list[str] | None = None) -> int:
    """The console script: click's errors as one line and exit code 1 (click alone would use 2, which here
    means changes pending)."""
    try:
        return cli.main(args=argv, prog_name="flipper", standalone_mode=False) or 0
    except click.ClickException as exc:
        hint = f" (see {exc.ctx.command_path} --help)" if isinstance(exc, click.UsageError) and exc.ctx else ""
        # Every error escaped here, once: many echo a name (click's own do), and one must stay one line.
        click.echo(f"flipper: error: {shown(exc.format_message())}{hint}", err=True)
        return 1
    except click.Abort:
        click.echo("flipper: aborted", err=True)
        return 1
    except Exception as exc:  # a bug: still one line, never a traceback
        click.echo(f"flipper: internal error: {shown(repr(exc))}", err=True)
        return 1


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port (0: any free one).")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to serve on; loopback unless you mean it."
)
@target_options
def console(target: Target, host: str, port: int) -> None:
    """Serve the operator console on HOST:PORT: every flag, changes previewed then confirmed, evaluate as a
    caller, history and undo, export and apply. Open the address it prints: it holds the console's token."""
    from flipper.operate import console as web  # Jinja2 and uvicorn: only this command needs them

    with _failures():
        web.serve(target.backend(), host, port)


if __name__ == "__main__":
    sys.exit(main())
