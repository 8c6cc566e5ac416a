"""Flags in words for an operator: a change described, and any name made safe to print."""

from __future__ import annotations

from collections.abc import Mapping


def change_text(change: list[str]) -> str:
    """One membership change (`[key, feature, before, after]`, as the write path reports it) in words."""
    key, feature, before, after = change
    where, _, kind = key.rpartition(":")
    if kind == "rollout":
        return f"{feature} rollout at {where}: {before or '-'} → {after or '-'}"
    word = "enabled" if kind == "positive" else "disabled"
    return f"{feature} {word} at {where}" if after else f"{feature} no longer {word} at {where}"


def shown(text: str) -> str:
    """`text` with what a terminal would act on (escape sequences, carriage returns, line breaks) written as
    escapes, so that it prints as one line: a flag name is anyone's text, and is shown to other operators."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    # U+DC80 to U+DCFF is how Python decodes a byte that is not UTF-8 (argv, surrogateescape): shown as that byte.
    if "\udc80" <= c <= "\udcff":
        return f"\\x{ord(c) - 0xDC00:02x}"
    return c.encode("unicode_escape").decode()


def who(audit: Mapping[str, str]) -> str:
    """Who made a change, for people: the actor the path proves, or the claim where only a claim exists."""
    return f"{audit['claimed_by']} (claimed)" if audit.get("claimed_by") else audit["actor"]
