"""Flags in words for an operator: a change described, and any name made safe to print."""

from __future__ import annotations


def change_text(change: list[str]) -> str:
    """One membership change (`[key, feature, before, after]`, as the write path reports it) in words."""
    key, feature, before, after = change
    where, _, kind = key.rpartition(":")
    if kind == "rollout":
        return f"{feature} rollout at {where}: {before or '-'} → {after or '-'}"
    word = "enabled" if kind == "positive" else "disabled"
    return f"{feature} {word} at {where}" if after else f"{feature} no longer {word} at {where}"


def shown(text: str, keep: str = "") -> str:
    """`text` with what a terminal would act on (escape sequences, carriage returns, line breaks but those in
    `keep`) written as escapes: a flag name is anyone's text, and is shown to other operators."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else c.encode("unicode_escape").decode() for c in text)
