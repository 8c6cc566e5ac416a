"""Values and variants through the operating half: the one audited write path, the flags file, history and undo,
on a real redis-server and on fakeredis (tests/test_cluster.py runs the write path on a cluster)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flipper.core.memberships import FlagError, value_json
from flipper.core.model import MAX_VALUE_BYTES, Context, unknown
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.operate import flagsfile
from flipper.operate.text import change_text
from tests.test_operations import ACTOR, apply, change, dump, flags_file, run

SPLIT = {"classic": {"weight": 50, "value": "classic"}, "one_page": {"weight": 50, "value": {"steps": 1}}}


async def test_a_value_is_written_as_canonical_json_audited_and_registers_the_feature(store: Store) -> None:
    result = await change(store, "value", "button_color", "group:beta", value={"b": "grün", "a": [1, 2.5]})
    assert result["changes"] == [["group:beta:values", "button_color", "", '{"a":[1,2.5],"b":"grün"}']]
    assert await store.client.hgetall("group:beta:values") == {"button_color": '{"a":[1,2.5],"b":"grün"}'}
    assert await store.client.smembers("features") == {"button_color"}
    before = await dump(store)
    again = await change(store, "value", "button_color", "group:beta", value={"a": [1, 2.5], "b": "grün"})
    assert (again["entry"], await dump(store)) == (None, before)  # equal JSON is equal text: nothing to write
    cleared = await change(store, "value", "button_color", "group:beta", value=None)
    assert cleared["changes"] == [["group:beta:values", "button_color", '{"a":[1,2.5],"b":"grün"}', ""]]
    assert await store.client.exists("group:beta:values") == 0
    assert await store.client.smembers("features") == {"button_color"}  # known still: only delete forgets it


async def test_variants_are_one_global_field_in_their_order(store: Store) -> None:
    result = await change(store, "variants", "checkout", "global", variants=SPLIT)
    stored = '[{"name":"classic","value":"classic","weight":50},{"name":"one_page","value":{"steps":1},"weight":50}]'
    assert result["changes"] == [["global:variants", "checkout", "", stored]]
    assert await run(store, "history", feature="checkout") != {"entries": []}
    with pytest.raises(FlagError, match="variants are the feature's, set at global, not at group:beta"):
        await change(store, "variants", "checkout", "group:beta", variants=SPLIT)
    cleared = await change(store, "variants", "checkout", "global", variants=None)
    assert cleared["changes"] == [["global:variants", "checkout", stored, ""]]


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"operation": "value", "value": True}, "a value must be a string, number, object or array, not true"),
        ({"operation": "value", "value": {"a": float("nan")}}, "the value holds nan, which JSON cannot hold"),
        ({"operation": "value", "value": "x" * MAX_VALUE_BYTES}, f"more than the {MAX_VALUE_BYTES} a value may hold"),
        ({"operation": "value", "value": [[[[1]]]]}, "the value nests collections more than 3 deep"),
        ({"operation": "variants", "variants": {"a": {"weight": 40, "value": 1}}}, "weights sum to 40, not 100"),
        ({"operation": "variants", "variants": {"a": {"value": 1}}}, "variant 'a' has no weight"),
        ({"operation": "variants", "variants": {"a": {"weight": 100}}}, "variant 'a' has no value"),
        ({"operation": "variants", "variants": {"a": {"weight": 100, "value": None}}}, "variant 'a': a value must"),
        ({"operation": "variants", "variants": {"": {"weight": 100, "value": 1}}}, "variant name is empty"),
        ({"operation": "variants", "variants": {"a": {"weight": 100.5, "value": 1}}}, "percentage '100.5'"),
        ({"operation": "variants", "variants": []}, "variants must map each variant's name to its weight and value"),
    ],
)
async def test_bad_values_and_variants_are_refused_naming_the_problem_and_write_nothing(
    store: Store, extra: dict[str, Any], error: str
) -> None:
    before = await dump(store)
    entity = "global" if extra["operation"] == "variants" else "user:u1"
    with pytest.raises(FlagError, match=error):
        await run(store, "change", feature="f", entity=entity, actor=ACTOR, **extra)
    assert await dump(store) == before


async def test_delete_forgets_values_variants_and_the_registry_and_undo_brings_them_back(store: Store) -> None:
    await change(store, "value", "f", "global", value="blue")
    await change(store, "variants", "f", "global", variants=SPLIT)
    await change(store, "value", "keep", "global", value=1)
    deleted = await run(store, "delete", feature="f", actor=ACTOR)
    assert sorted(c[0] for c in deleted["changes"]) == ["features", "global:values", "global:variants"]
    assert await store.client.smembers("features") == {"keep"}
    assert await store.client.hgetall("global:values") == {"keep": "1"}
    await run(store, "undo", entry=deleted["entry"], actor=ACTOR)
    assert await store.client.smembers("features") == {"f", "keep"}
    assert (await run(store, "export"))["flags"]["features"]["f"] == {"values": {"global": "blue"}, "variants": SPLIT}


async def test_undo_of_a_value_change_restores_the_value_before_it(store: Store) -> None:
    await change(store, "value", "f", "version:v1", value=10)
    changed = await change(store, "value", "f", "version:v1", value=20)
    undone = await run(store, "undo", entry=changed["entry"], actor=ACTOR)
    assert undone["changes"] == [["version:v1:values", "f", "20", "10"]]


async def test_a_flags_file_with_values_and_variants_applies_once_and_plans_nothing_the_second_time(
    store: Store,
) -> None:
    text = """flipper: 1
features:
  button_color:
    enabled: [global]
    values:
      global: "blue"
      group:beta: "green"
      user:alice: "red"
  checkout_flow:
    enabled: [global]
    variants:
      one_page: {weight: 50, value: "one_page"}
      classic: {weight: 50.0, value: {"steps": [1, 2]}}
"""
    document = flagsfile.read(text, "flags.yaml", Settings())
    applied = await apply(store, document)
    assert len(applied["changes"]) == 6
    assert (await run(store, "plan", flags_file=document))["changes"] == []
    exported = (await run(store, "export"))["flags"]
    assert exported["features"]["checkout_flow"]["variants"] == {  # the file's order, not sorted
        "one_page": {"weight": 50, "value": "one_page"},
        "classic": {"weight": 50, "value": {"steps": [1, 2]}},
    }
    again = flagsfile.read(flagsfile.dumps(exported), "export.yaml", Settings())
    assert (await run(store, "plan", flags_file=again))["changes"] == []


async def test_a_value_written_by_hand_is_compared_as_json_and_one_that_is_not_is_left_out_of_the_export(
    store: Store,
) -> None:
    await store.client.hset("global:values", mapping={"spaced": '{"a": 1}', "float": "25.0", "broken": "{nope"})
    planned = await run(
        store,
        "plan",
        flags_file=flags_file({"spaced": {"values": {"global": {"a": 1}}}, "float": {"values": {"global": 25}}}),
    )
    assert planned["changes"] == [["global:values", "float", "25.0", "25"]]  # 25.0 is a float to a client, 25 an int
    exported = await run(store, "export")
    assert exported["flags"]["features"] == {
        "float": {"values": {"global": 25.0}},
        "spaced": {"values": {"global": {"a": 1}}},
    }
    [warning] = exported["warnings"]
    assert warning.startswith("key 'global:values' field 'broken' holds '{nope': not a value Flipper writes")
    replaced = await apply(store, flags_file({"broken": {"values": {"global": "mended"}}}))
    assert replaced["changes"] == [["global:values", "broken", "{nope", '"mended"']]


async def test_a_values_key_or_registry_of_another_type_refuses_the_change_before_writing(store: Store) -> None:
    await store.client.set("features", "x")
    before = await dump(store)
    with pytest.raises(FlagError, match="key 'features' holds something other than Flipper expects"):
        await change(store, "value", "f", "global", value=1)
    assert await dump(store) == before
    await store.client.delete("features")
    await store.client.sadd("group:g:values", "f")
    with pytest.raises(FlagError, match="key 'group:g:values' holds something other"):
        await change(store, "value", "f", "group:g", value=1)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "flipper: 1\nfeatures:\n  a:\n    variants:\n      x: {weight: 60, value: 1}\n"
            "      y: {weight: 30, value: 2}\n",
            "flags.yaml, line 4: feature 'a', variants: the variants' weights sum to 90, not 100",
        ),
        (
            "flipper: 1\nfeatures:\n  a:\n    variants:\n      x: {value: 1}\n",
            "flags.yaml, line 5: feature 'a', variants: variant 'x' has no weight",
        ),
        (
            "flipper: 1\nfeatures:\n  a:\n    values:\n      global: 2026-01-01\n",
            "flags.yaml, line 5: feature 'a', value at 'global': the value holds datetime.date(2026, 1, 1), a date,"
            " which JSON cannot hold: quote it",
        ),
        (
            "flipper: 1\nfeatures:\n  a:\n    values:\n      group:beta: null\n",
            "flags.yaml, line 5: feature 'a', value at 'group:beta': a value must be a string, number, object or"
            " array, not null",
        ),
        (
            f"flipper: 1\nfeatures:\n  a:\n    values:\n      global: '{'x' * MAX_VALUE_BYTES}'\n",
            f"flags.yaml, line 5: feature 'a', value at 'global': the value is {MAX_VALUE_BYTES + 2} bytes as JSON",
        ),
        (
            "flipper: 1\nfeatures:\n  a:\n    values:\n      galaxy: 1\n",
            "flags.yaml, line 5: feature 'a', values: entity 'galaxy' is not global",
        ),
    ],
)
def test_a_bad_value_or_variant_in_a_file_is_one_line_naming_the_file_line_and_feature(text: str, error: str) -> None:
    with pytest.raises(FlagError) as refused:
        flagsfile.read(text, "flags.yaml", Settings())
    assert str(refused.value).startswith(error)
    assert "\n" not in str(refused.value)


def test_a_yaml_timestamp_value_is_not_json() -> None:
    with pytest.raises(FlagError, match="a datetime, which JSON cannot hold"):
        flagsfile.read(
            "flipper: 1\nfeatures:\n  a:\n    values:\n      global: 2026-01-01 10:00:00\n", "f.yaml", Settings()
        )


async def test_a_typed_change_without_its_argument_is_refused_not_read_as_a_clear(store: Store) -> None:
    await change(store, "value", "f", "global", value="kept")
    before = await dump(store)
    for operation in ("value", "variants"):
        with pytest.raises(FlagError, match=f"a {operation} change needs the argument '{operation}'"):
            await change(store, operation, "f", "global")
    assert await dump(store) == before


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (["group:beta:values", "f", "", '"green"'], 'f value at group:beta: - → "green"'),
        (["features", "f", "1", ""], "f no longer known as a flag"),
        (["features", "f", "", "1"], "f known as a flag"),
        (["global:variants", "f", '[{"name":"a","value":1,"weight":100}]', ""], "f variants: a=100:1 → -"),
        (["global:variants", "f", "not json", ""], "f variants: not json → -"),  # written by hand: as it is
    ],
)
def test_value_variants_and_registry_changes_in_words(change: list[str], words: str) -> None:
    assert change_text(change) == words


async def test_variants_written_by_hand_that_flipper_would_not_write_are_left_out_of_the_export(store: Store) -> None:
    twice = '[{"name":"a","value":1,"weight":50},{"name":"a","value":2,"weight":50}]'
    await store.client.hset("global:variants", mapping={"twice": twice, "short": '[{"name":"a","value":1,"weight":5}]'})
    exported = await run(store, "export")
    assert exported["flags"]["features"] == {}
    short, twice_warning = sorted(exported["warnings"])
    assert short.startswith("key 'global:variants' field 'short' holds ")
    assert short.endswith(": not a value Flipper writes (the variants' weights sum to 5, not 100): left out (mend it)")
    assert twice_warning == (
        f"key 'global:variants' field 'twice' holds {twice!r}: not a value Flipper writes (a variant's name is given"
        " twice): left out (mend it)"
    )
    float_ = '[{"name":"a","value":1,"weight":100.0}]'  # Flipper writes the weight 100
    await store.client.hset("global:variants", "float", float_)
    warnings = (await run(store, "export"))["warnings"]
    assert (
        f"key 'global:variants' field 'float' holds {float_!r}: not variants as Flipper writes them: left out (mend it)"
        in warnings
    )


async def test_the_plan_warns_about_variant_names_that_look_like_others(store: Store) -> None:
    document = flags_file(
        {"f": {"variants": {"\u0441lassic": {"weight": 50, "value": 1}, "b": {"weight": 50, "value": 2}}}}
    )
    [warning] = (await run(store, "plan", flags_file=document))["warnings"]
    assert warning.startswith("variant name '\u0441lassic' mixes scripts (U+0441 CYRILLIC SMALL LETTER ES")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(JSON.filter(lambda v: v is not None and not isinstance(v, bool)))
def test_a_value_read_back_from_its_canonical_json_is_the_same_text(value: Any) -> None:
    try:
        text, refused = value_json(value), ""
    except FlagError as exc:
        text, refused = "", str(exc)
    if refused:  # only what the bounds refuse
        assert re.match(
            r"the value (nests collections more than 3 deep|is [0-9]+ bytes|holds text that is not)", refused
        )
        return
    assert value_json(json.loads(text)) == text
    assert len(text.encode()) <= MAX_VALUE_BYTES


async def test_the_first_write_registers_the_flags_already_in_the_store_without_auditing_them(store: Store) -> None:
    """A store written around Flipper (redis-cli, or a Flipper before the registry) keeps no registry: its flags
    are known all the same, and must stay known once a write starts one. They are registered with the first
    change, implied as a membership's registration is; later writes register only what they change."""
    await store.client.sadd("version:v1:positive", "feature_A", "feature_B")
    await store.client.hset("group:g1:rollout", "feature_C", "10")
    result = await change(store, "enable", "new_checkout", "global")
    assert result["changes"] == [["global:positive", "new_checkout", "", "1"]]  # the audit: what changed
    assert await store.client.smembers("features") == {"feature_A", "feature_B", "feature_C", "new_checkout"}
    await store.client.sadd("user:bob:positive", "later")  # around Flipper, once the registry is kept
    await change(store, "enable", "other", "global")
    assert "later" not in await store.client.smembers("features")
    await store.client.delete("features")
    await change(store, "enable", "other", "global")  # unchanged: nothing is written, the registry neither
    assert await store.client.exists("features") == 0


async def test_a_flag_known_but_named_by_no_entity_is_exported_promoted_and_stays_known(store: Store) -> None:
    """Its memberships cleared, a flag is still known (only delete forgets it): off for everyone, not
    FLAG_NOT_FOUND. Export writes it as `{}`, and apply carries that into another prefix."""
    await change(store, "enable", "parked", "global")
    await change(store, "clear", "parked", "global")
    await change(store, "enable", "live", "group:beta")
    exported = (await run(store, "export"))["flags"]
    assert exported["features"] == {"live": {"enabled": ["group:beta"]}, "parked": {}}
    production = Store(store.client, "{production}:")
    planned = await run(production, "plan", flags_file=exported)
    # live's registration is implied by its membership (the script makes it); parked's is a change of its own.
    assert planned["changes"] == [["group:beta:positive", "live", "", "1"], ["features", "parked", "", "1"]]
    assert (await apply(production, exported))["changes"] == planned["changes"]
    assert await store.client.smembers("{production}:features") == {"live", "parked"}
    snapshot = await production.snapshot(Context(), registry=True)
    assert (unknown("parked", snapshot), unknown("never_written", snapshot)) == (False, True)
    assert (await run(production, "export"))["flags"] == exported
    assert (await apply(production, exported))["changes"] == []


async def test_prune_forgets_what_it_clears_even_where_no_registry_was_kept(store: Store) -> None:
    """A store only written around Flipper knows every flag it names; a pruning apply takes the flags the file
    does not name out of the registry its first write starts, and says so in the plan and the audit alike."""
    await store.client.sadd("global:positive", "kept", "pruned")
    document = {"flipper": 1, "features": {"kept": {"enabled": ["global"]}}}
    planned = await run(store, "plan", flags_file=document, prune=True)
    assert planned["changes"] == [["global:positive", "pruned", "1", ""], ["features", "pruned", "1", ""]]
    assert (await apply(store, document, prune=True))["changes"] == planned["changes"]
    assert await store.client.smembers("features") == {"kept"}
    assert (await run(store, "export"))["flags"] == document


async def test_delete_where_no_registry_was_kept_leaves_the_flag_unknown(store: Store) -> None:
    await store.client.sadd("version:v1:positive", "gone", "stays")
    result = await run(store, "delete", feature="gone", actor=ACTOR)
    assert result["changes"] == [["version:v1:positive", "gone", "1", ""], ["features", "gone", "1", ""]]
    assert await store.client.smembers("features") == {"stays"}


async def test_an_unchanged_write_where_no_registry_was_kept_writes_no_registry(store: Store) -> None:
    await store.client.sadd("global:positive", "on")
    before = await dump(store)
    assert (await change(store, "enable", "on", "global"))["entry"] is None
    assert await dump(store) == before


async def test_undoing_a_registration_leaves_a_flag_a_later_change_named_known(store: Store) -> None:
    """The later change registered the flag with its membership (implied, unaudited): undoing the earlier,
    explicit registration must not leave it unknown to the callers that membership does not name."""
    applied = await apply(store, {"flipper": 1, "features": {"x": {}}})
    assert applied["changes"] == [["features", "x", "", "1"]]
    await change(store, "enable", "x", "group:beta")
    undone = await run(store, "undo", entry=applied["entry"], actor=ACTOR)
    assert (undone["entry"], await store.client.smembers("features")) == (None, {"x"})
    snapshot = await store.snapshot(Context(groups=("other",)), registry=True)
    assert not unknown("x", snapshot)
    # With nothing naming it, the same undo forgets it, as it should.
    again = await apply(store, {"flipper": 1, "features": {"y": {}}})
    assert (await run(store, "undo", entry=again["entry"], actor=ACTOR))["changes"] == [["features", "y", "1", ""]]


async def test_where_no_registry_was_kept_the_plan_registers_what_the_write_does(store: Store) -> None:
    """The flags such a store names are registered by its first write: the plan counts the very same ones, a
    field written by hand that Flipper would not write included, a name Flipper refuses not."""
    await store.client.sadd("global:positive", "a", "")
    await store.client.hset("global:values", "f", "not json")
    document = {"flipper": 1, "features": {"a": {"enabled": ["global"]}, "f": {}}}
    planned = await run(store, "plan", flags_file=document, prune=True)
    assert planned["changes"] == [["global:positive", "", "1", ""], ["global:values", "f", "not json", ""]]
    assert (await apply(store, document, prune=True))["changes"] == planned["changes"]
    assert await store.client.smembers("features") == {"a", "f"}
    assert (await run(store, "plan", flags_file=document, prune=True))["changes"] == []
