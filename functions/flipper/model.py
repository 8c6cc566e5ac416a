"""The seed's model: who is asking, which Redis keys hold their flags, and the rule that combines them.

Keys are `[prefix]global:{positive,negative}`, `[prefix]version:<v>:…`, `[prefix]group:<g>:…` and
`[prefix]user:<u>:…`. Identifiers are used verbatim: every key ends in a fixed `:positive` or `:negative`
and each level starts with a distinct word, so no identifier, whatever colons it holds, can name another
entity's key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

POSITIVE = "positive"
NEGATIVE = "negative"


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """The caller: global always applies; version, groups and user when given."""

    version: str | None = None
    groups: tuple[str, ...] = ()
    user: str | None = None

    def entities(self) -> list[str]:
        """Every entity whose sets apply, broadest first: `global`, `version:<v>`, `group:<g>`…, `user:<u>`."""
        entities = ["global"]
        if self.version is not None:
            entities.append(f"version:{self.version}")
        entities.extend(f"group:{group}" for group in self.groups)
        if self.user is not None:
            entities.append(f"user:{self.user}")
        return entities


def flag_keys(context: Context, prefix: str = "") -> list[str]:
    """All keys the context reads: its positive keys, then its negative keys, in the same entity order."""
    entities = context.entities()
    return [f"{prefix}{entity}:{polarity}" for polarity in (POSITIVE, NEGATIVE) for entity in entities]


def enabled_features(members: Sequence[Iterable[str]]) -> list[str]:
    """Apply the rule to the members of `flag_keys(...)`, in that order: positives minus negatives, sorted.

    A disable at any level beats an enable at any level. Sorting is by code point.
    """
    half = len(members) // 2
    enabled = set().union(*members[:half])
    enabled.difference_update(*members[half:])
    return sorted(enabled)
