"""The benchmark's data sets, each with the caller whose flags it evaluates.

`small` is seed-like, a few flags per level; `large` has 300 global, 60 version, 30 group and 5 user
features, with negatives at every level that switch 20 of them off: 375 enabled for the caller.
`rollouts` is `large` plus 50 features in rollout at both the version and the group level (100 hash
fields), at percentages from 2 % to 100 %, of which the caller's user is in 35: 410 enabled.
`values` is `large` with typed flags: a third of its features (every third) carry values, a tenth (every
tenth) carry variants; 375 enabled, as in `large` (values and variants change what a caller gets, not what
is on).
`rules` is `large` with targeting rules: a fifth of its features (every fifth) have one or two rules on the
caller's attributes (plan, app) or on the time, every second one matching; the caller sends two attributes.
Every feature of `large` is on by a set already: 375 enabled, as in `large`, the rules evaluated all the same.
"""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import urlencode

import redis

from flipper.core.model import (
    Context,
    Snapshot,
    canonical_json,
    enabled_features,
    flag_keys,
    parse_percentage,
    revision_key,
    rollout_keys,
    rules_key,
    value_keys,
    variants_key,
)
from flipper.core.rules import parse_rules


@dataclasses.dataclass(frozen=True)
class DataSet:
    name: str
    flags: dict[str, list[str]]
    context: Context
    rollouts: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)  # key -> feature -> percentage
    values: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)  # key -> feature -> JSON
    variants: dict[str, str] = dataclasses.field(default_factory=dict)  # feature -> its variants' JSON
    rules: dict[str, str] = dataclasses.field(default_factory=dict)  # feature -> its rules' JSON

    @property
    def query(self) -> str:
        """The caller as a query string: `version=v1&group=g1&user=u1`, and its attributes (`attr.plan=pro`)."""
        params = [("version", self.context.version), *(("group", g) for g in self.context.groups)]
        attributes = [(f"attr.{name}", value) for name, value in self.context.attributes]
        return urlencode([*params, ("user", self.context.user), *attributes])

    @property
    def set_keys(self) -> list[str]:
        """The sets the caller's evaluation reads, in the script's order."""
        return flag_keys(self.context)

    @property
    def keys(self) -> list[str]:
        """Every key the caller's evaluation reads, in the script's order (`Store.snapshot`'s): the sets, the
        rollouts, the values, the variants, the rules."""
        return [*self.set_keys, *rollout_keys(self.context), *value_keys(self.context), variants_key(), rules_key()]

    @property
    def positive_keys(self) -> list[str]:
        return self.set_keys[: len(self.set_keys) // 2]

    @property
    def enabled(self) -> list[str]:
        """The right answer, by the model's rule."""
        rollouts = [
            {feature: parse_percentage(raw) or 0 for feature, raw in self.rollouts.get(key, {}).items()}
            for key in rollout_keys(self.context)
        ]
        members = [self.flags.get(key, []) for key in self.set_keys]
        parsed = {feature: parse_rules(json.loads(text)) for feature, text in self.rules.items()}
        return enabled_features(Snapshot(self.context, members, rollouts, rules=parsed))

    def load(self, client: redis.Redis) -> None:
        """Replace whatever the database holds with this data set, as one more write: the revision goes on
        rising, so that a cached Flipper reads the new contents."""
        revision = int(client.get(revision_key()) or 0)
        pipeline = client.pipeline()
        pipeline.flushall()
        pipeline.set(revision_key(), revision + 1)
        for key, members in self.flags.items():
            pipeline.sadd(key, *members)
        for key, fields in [*self.rollouts.items(), *self.values.items()]:
            pipeline.hset(key, mapping=fields)
        if self.variants:
            pipeline.hset(variants_key(), mapping=self.variants)
        if self.rules:
            pipeline.hset(rules_key(), mapping=self.rules)
        pipeline.execute()


CALLER = Context(version="v1", groups=("g1",), user="u1")

# The seed's walk-through, plus a global and a user flag.
SMALL = DataSet(
    "small",
    {
        "global:positive": ["dark_mode", "new_checkout"],
        "version:v1:positive": ["feature_A", "feature_B"],
        "group:g1:positive": ["special_g1_feature"],
        "group:g1:negative": ["feature_B"],
        "user:u1:positive": ["beta_search"],
        "user:u1:negative": ["new_checkout"],
    },
    CALLER,
)


def _large() -> DataSet:
    sizes = {"global": 300, "version:v1": 60, "group:g1": 30, "user:u1": 5}
    positives = {entity: [f"{entity.split(':')[0]}_feature_{i:03d}" for i in range(n)] for entity, n in sizes.items()}
    flags = {f"{entity}:positive": names for entity, names in positives.items()}
    # Each level switches off five features of a broader level (the user, five of the group's):
    # 395 enabled, 20 disabled, 375 left.
    flags["global:negative"] = positives["global"][:5]
    flags["version:v1:negative"] = positives["global"][5:10]
    flags["group:g1:negative"] = positives["version:v1"][:5]
    flags["user:u1:negative"] = positives["group:g1"][:5]
    return DataSet("large", flags, CALLER)


LARGE = _large()


def _rollouts() -> DataSet:
    names = [f"rollout_feature_{i:03d}" for i in range(50)]
    # Each level at its own percentage, 2 % to 100 % in steps of 2, the version's rising and the group's falling.
    rollouts = {
        "version:v1:rollout": {name: str(2 * (i + 1)) for i, name in enumerate(names)},
        "group:g1:rollout": {name: str(100 - 2 * i) for i, name in enumerate(names)},
    }
    return DataSet("rollouts", LARGE.flags, CALLER, rollouts)


ROLLOUTS = _rollouts()


def _values() -> DataSet:
    features = sorted({name for names in LARGE.flags.values() for name in names})
    values: dict[str, dict[str, str]] = {}
    # Every third feature carries a value at the entity that enables it, of the three kinds a client reads,
    # and a global default besides: what a caller of `large` reads is four values hashes, a third full.
    for index, feature in enumerate(features[::3]):
        value = [f"value-{index}", index, {"limit": index, "tags": ["a", "b"]}][index % 3]
        entity = next(key.removesuffix(":positive") for key, names in LARGE.flags.items() if feature in names)
        values.setdefault("global:values", {})[feature] = canonical_json(value)
        values.setdefault(f"{entity}:values", {})[feature] = canonical_json(value)
    variants = {
        feature: canonical_json(
            [{"name": "control", "value": "control", "weight": 50}, {"name": "test", "value": "test", "weight": 50}]
        )
        for feature in features[::10]
    }
    return DataSet("values", LARGE.flags, CALLER, values=values, variants=variants)


VALUES = _values()


def _rules() -> DataSet:
    features = sorted({name for names in LARGE.flags.values() for name in names})
    plan = {"attribute": "plan", "operator": "in", "values": ["pro", "enterprise"]}
    app = {"attribute": "app", "operator": "semver_gte", "values": ["3.0.0"]}  # the caller's 2.10.0 is below
    window = [
        {"attribute": "now", "operator": "after", "values": ["2026-01-01T00:00:00Z"]},
        {"attribute": "now", "operator": "before", "values": ["2099-01-01T00:00:00Z"]},
    ]
    # One rule or two, alternately; every second feature's first rule matches (plan), and the others' never
    # (app); the two-rule ones add a schedule, open for decades.
    rules = {
        feature: canonical_json(
            [{"when": [plan if index % 2 else app]}, *([{"when": window, "value": index}] if index % 4 == 3 else [])]
        )
        for index, feature in enumerate(features[::5])
    }
    caller = dataclasses.replace(CALLER, attributes=(("app", "2.10.0"), ("plan", "pro")))
    return DataSet("rules", LARGE.flags, caller, rules=rules)


RULES = _rules()
DATA_SETS = {data_set.name: data_set for data_set in (SMALL, LARGE, ROLLOUTS, VALUES, RULES)}
