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

import json
import re
from typing import Any

import yaml

from flipper.core.memberships import FlagError, check_flags
from flipper.core.settings import Settings

HEADER = (
    "# Flipper flags: the full desired state of every feature below (docs/operate.md).\n"
    "# `flipper apply` makes Redis match it; with --prune it also clears features not named here.\n"
)
# A flags file is read whole, and parsing YAML in Python takes seconds a MiB: far beyond any file an
# operator would review, and the console's upload limit too.
MAX_BYTES = 1024 * 1024
# A flags file nests four collections deep (the file, features, a feature, its list or rollout); twice that
# leaves room for a mistake the checks can name, and keeps the composer's recursion shallow.
MAX_DEPTH = 8


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, but text holding a character Python would not print (a line break, NEL, U+2028,
    a control) is written double-quoted, where YAML escapes it: PyYAML writes NEL raw otherwise, and a reader
    folds a raw NEL into a space, so the name that applied back was another."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=None if value.isprintable() else '"')


_Dumper.add_representer(str, _text)


def dumps(document: dict[str, Any]) -> str:
    """`document` as YAML, percentages as numbers, with a header saying what the file is."""
    body = yaml.dump(
        as_data(document), Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120
    )
    return HEADER + body


# Inside JSON strings (the only place they can be), what a YAML reader refuses or folds: DEL, C1 controls
# (NEL among them), and the line and paragraph separators. JSON escapes them as well as any character.
_UNREADABLE_BY_YAML = re.compile("[\x7f-\x9f\u2028\u2029]")


def json_text(data: Any) -> str:
    """`data` as JSON that reads back through `loads` too (JSON is YAML): text as is, but for what YAML cannot
    hold raw, escaped; not `ensure_ascii`, whose surrogate pairs YAML reads as two lone surrogates."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    return _UNREADABLE_BY_YAML.sub(lambda match: f"\\u{ord(match[0]):04x}", text)


def as_data(document: dict[str, Any]) -> dict[str, Any]:
    """An exported `document` as the file holds it, for YAML and JSON alike: percentages as numbers."""
    features = {
        name: {
            field: ({where: _number(value) for where, value in entities.items()} if field == "rollout" else entities)
            for field, entities in entry.items()
        }
        for name, entry in document["features"].items()
    }
    return {"flipper": document["flipper"], "features": features}


def _number(text: str) -> int | float | str:
    """A stored percentage as YAML's number, when it reads back as the same text; else the text itself."""
    try:
        number: int | float = float(text) if "." in text else int(text)
    except ValueError:  # a hand-written value Flipper would not write: kept for apply to refuse, named
        return text
    return number if str(number) == text else text


class _Refused(yaml.MarkedYAMLError):
    """YAML that parses, but that a flags file has no use for (aliases, duplicate keys...)."""

    def __init__(self, problem: str, mark: yaml.Mark) -> None:
        super().__init__(problem=problem, problem_mark=mark)


_INT, _STR, _MERGE = (f"tag:yaml.org,2002:{name}" for name in ("int", "str", "merge"))


class _Loader(yaml.SafeLoader):
    """YAML as people read it: PyYAML follows YAML 1.1, where `010` is 8 and `1:30` is 90; here an integer
    is written in plain decimal, and anything else stays text (which the checks then name).

    Refused while composing, before anything is built: aliases and anchors (nine levels of nine aliases are
    300 bytes that expand to 9**9 values), merge keys, nesting deeper than MAX_DEPTH, keys that are not text
    and duplicate keys (which YAML would let the last one win)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                f"aliases (*{event.anchor}) are not allowed in a flags file: write the value out", event.start_mark
            )
        if event.anchor is not None:
            raise _Refused(f"anchors (&{event.anchor}) are not allowed in a flags file: remove it", event.start_mark)
        collection = isinstance(event, yaml.CollectionStartEvent)
        self.depth += collection
        if self.depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels; a flags file needs four", event.start_mark)
        node = super().compose_node(parent, index)
        self.depth -= collection
        return node

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first: dict[str, int] = {}
        for key, _ in node.value:
            line = key.start_mark.line + 1
            if not isinstance(key, yaml.ScalarNode):
                kind = type(key).__name__.removesuffix("Node").lower()
                raise _Refused(f"a key must be text, not a {kind}", key.start_mark)
            if key.tag == _MERGE:
                raise _Refused("merge keys (<<) are not allowed in a flags file: write the keys out", key.start_mark)
            if key.tag != _STR:  # `on`, `yes`, `123`, `null`, `2024-01-01`: YAML reads them as something else
                kind = key.tag.rpartition(":")[2]
                article = "an" if kind.startswith(tuple("aeiou")) else "a"
                raise _Refused(
                    f"the key {key.value} reads as {article} {kind}, not text: quote it: '{key.value}':", key.start_mark
                )
            if key.value in first:
                raise _Refused(
                    f"key {key.value!r} appears twice (first on line {first[key.value]}): keep one", key.start_mark
                )
            first[key.value] = line
        return node


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _INT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789"))


def decode(data: bytes, source: str) -> str:
    """A flags file's bytes as text: refused above MAX_BYTES, and when not UTF-8, naming the line and byte."""
    if len(data) > MAX_BYTES:
        raise FlagError(f"{source} is larger than {MAX_BYTES // 1024} KiB, the limit for a flags file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FlagError(
            f"{source}, line {line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}):"
            " save the file as UTF-8"
        ) from None


def loads(text: str, source: str) -> Any:
    """Parse YAML (or JSON); a FlagError names `source` and the line of the first problem."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        raise FlagError(f"{_where(source, getattr(exc, 'problem_mark', None))}: {_problem(exc)}") from None


def read(text: str, source: str, settings: Settings) -> Any:
    """A flags file parsed and checked (check_flags); a FlagError names `source`, the line and the feature."""
    document = loads(text, source)
    try:
        check_flags(document, settings)
    except FlagError as exc:
        node = yaml.compose(text, Loader=_Loader)  # parsed again only to say where: the file is known to parse
        raise FlagError(f"{_where(source, _mark(node, exc.at))}: {exc}") from None
    return document


def _problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return problem if isinstance(exc, _Refused) else f"not valid YAML: {problem}"


def _where(source: str, mark: yaml.Mark | None) -> str:
    return source if mark is None else f"{source}, line {mark.line + 1}"


def _mark(node: yaml.Node | None, at: tuple[str | int, ...]) -> yaml.Mark | None:
    """Where the value at path `at` (keys and list indexes) starts: at its key, in a mapping; as far down
    the path as the file goes (a missing key: its mapping)."""
    mark = None if node is None else node.start_mark
    for step in at:
        if isinstance(node, yaml.MappingNode):
            found = next(((key, value) for key, value in node.value if key.value == step), None)
            if found is None:
                break
            mark, node = found[0].start_mark, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            mark = node.start_mark
        else:
            break
    return mark
