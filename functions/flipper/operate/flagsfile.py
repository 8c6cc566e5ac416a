"""The flags file: the whole flag state as YAML, to review in git (schema: flags.schema.json beside this module).

```yaml
flipper: 1
features:
  checkout_v2:
    enabled: [global, version:v1]
    disabled: [user:u2]
    rollout: {group:beta: 25}
```
JSON is YAML too, so a `.json` file reads as well. Used by the CLI and the console, not by the Lambda.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from flipper.core.memberships import FlagError

HEADER = (
    "# Flipper flags: the full desired state of every feature below (docs/operate.md).\n"
    "# `flipper apply` makes Redis match it; with --prune it also clears features not named here.\n"
)


def dumps(document: dict[str, Any]) -> str:
    """`document` as YAML, percentages as numbers, with a header saying what the file is."""
    features = {
        name: {
            field: ({where: _number(value) for where, value in entities.items()} if field == "rollout" else entities)
            for field, entities in entry.items()
        }
        for name, entry in document["features"].items()
    }
    body = yaml.safe_dump(
        {"flipper": document["flipper"], "features": features},
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=120,
    )
    return HEADER + body


def _number(text: str) -> int | float | str:
    """A stored percentage as YAML's number, when it reads back as the same text; else the text itself."""
    try:
        number: int | float = float(text) if "." in text else int(text)
    except ValueError:  # a hand-written value Flipper would not write: kept for apply to refuse, named
        return text
    return number if str(number) == text else text


class _Loader(yaml.SafeLoader):
    """YAML as people read it: PyYAML follows YAML 1.1, where `010` is 8 and `1:30` is 90; here an integer
    is written in plain decimal, and anything else stays text (which the checks then name)."""


_INT = "tag:yaml.org,2002:int"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _INT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789"))


def loads(text: str, source: str) -> Any:
    """Parse YAML (or JSON); a FlagError names `source` and the line of the first problem."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FlagError(f"{where}: not valid YAML: {problem}") from None
