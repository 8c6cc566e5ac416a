"""Single-flag checks: `GET /features/{name}` with reasons and `explain`, and the model functions behind it."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given

from flipper.core.model import (
    Context,
    Snapshot,
    enabled_features,
    evaluate_all,
    evaluate_feature,
    flag_keys,
    rollout_keys,
)
from flipper.core.settings import Settings
from flipper.core.store import Store
from tests.test_store import (
    CONTEXTS,
    FLAG_DATA,
    ROLLOUT_DATA,
    Flags,
    Rollouts,
    expected_by_rule,
    reference_bucket,
    write,
)


async def test_reasons_and_explain(client: httpx.AsyncClient, store: Store) -> None:
    await write(
        store,
        {
            "global:positive": {"everyone", "overridden"},
            "version:v1:positive": {"v1_only", "vetoed"},
            "group:g1:negative": {"vetoed", "overridden"},
            "global:negative": {"killed"},
        },
    )
    query = "?version=v1&group=g1&user=u&explain=true"
    expected = {
        "everyone": (True, "STATIC", ["global:positive"], []),
        "killed": (False, "STATIC", [], ["global:negative"]),
        "v1_only": (True, "TARGETING_MATCH", ["version:v1:positive"], []),
        "vetoed": (False, "TARGETING_MATCH", ["version:v1:positive"], ["group:g1:negative"]),
        "overridden": (False, "TARGETING_MATCH", ["global:positive"], ["group:g1:negative"]),
        "nobody": (False, "DEFAULT", [], []),
    }
    for name, (enabled, reason, enabled_by, disabled_by) in expected.items():
        response = await client.get(f"/features/{name}{query}")
        assert response.status_code == 200
        assert response.json() == {
            "feature": name,
            "enabled": enabled,
            "reason": reason,
            "enabled_by": enabled_by,
            "disabled_by": disabled_by,
            "rollouts": [],
            "bucket": reference_bucket(name, "u"),
        }


async def test_without_explain_only_the_answer(client: httpx.AsyncClient, store: Store) -> None:
    await write(store, {"user:Zoë D:positive": {"fonctionnalité"}})
    response = await client.get("/features/fonctionnalit%C3%A9", params={"user": "Zoë D", "explain": "false"})
    assert response.json() == {"feature": "fonctionnalité", "enabled": True, "reason": "TARGETING_MATCH"}
    response = await client.get("/features/fonctionnalit%C3%A9")
    assert response.json() == {"feature": "fonctionnalité", "enabled": False, "reason": "DEFAULT"}


async def test_names_with_slashes_and_colons(client: httpx.AsyncClient, store: Store) -> None:
    await write(store, {"global:positive": {"team/a:b"}})
    assert (await client.get("/features/team/a:b")).json()["enabled"] is True


@pytest.mark.parametrize("settings", [Settings(max_id_length=8)])
@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/features/x?explain=yes", "query parameter 'explain' is 'yes'; expected true or false"),
        ("/features/x?explain=true&explain=true", "query parameter 'explain' is given 2 times; at most once"),
        ("/features/x?color=red", "unknown query parameter 'color'; expected version, group, user or explain"),
        ("/features/x?user=", "query parameter 'user' is empty"),
        ("/features/", "feature name is empty"),
        ("/features/%FF", "feature name is not valid UTF-8"),
        # Valid UTF-8, but the character servers put in place of invalid bytes: refused, and said so.
        (
            "/features/%EF%BF%BD",
            "feature name contains U+FFFD, the character that stands in for invalid UTF-8; names may not hold it",
        ),
        (
            "/features/x?group=a%EF%BF%BDb",
            "query parameter 'group' contains U+FFFD, the character that stands in "
            "for invalid UTF-8; names may not hold it",
        ),
        ("/features/123456789", "feature name is 9 characters long; the limit is 8"),
    ],
)
async def test_bad_requests_name_the_problem(client: httpx.AsyncClient, path: str, error: str) -> None:
    response = await client.get(path)
    assert (response.status_code, response.json()) == (400, {"error": error})


async def test_get_root_still_refuses_explain(client: httpx.AsyncClient) -> None:
    response = await client.get("/?explain=true")
    assert response.json() == {"error": "unknown query parameter 'explain'; expected version, group or user"}


def snapshot_of(flags: Flags, context: Context, rollouts: Rollouts) -> Snapshot:
    """What the script would read, built by hand: the members of the sets, the rollouts' intended thousandths."""
    return Snapshot(
        context,
        [flags.get(key, set()) for key in flag_keys(context)],
        [
            {feature: expected for feature, (_, expected) in rollouts.get(key, {}).items()}
            for key in rollout_keys(context)
        ],
    )


@given(flags=FLAG_DATA, rollouts=ROLLOUT_DATA, context=CONTEXTS)
def test_evaluations_agree_with_the_rule(flags: Flags, rollouts: Rollouts, context: Context) -> None:
    snapshot = snapshot_of(flags, context, rollouts)
    evaluations = evaluate_all(snapshot)
    named = set().union(*snapshot.members, *snapshot.rollouts)
    assert [e.feature for e in evaluations] == sorted(named)
    enabled = [e.feature for e in evaluations if e.enabled]
    assert enabled == enabled_features(snapshot) == expected_by_rule(flags, context, rollouts)
    for evaluation in evaluations:
        feature = evaluation.feature
        assert evaluate_feature(feature, snapshot) == evaluation
        sets = [key for key in flag_keys(context) if feature in flags.get(key, set())]
        positives = [key for key in sets if key.endswith(":positive")]
        naming = [(key, rollouts[key][feature][1]) for key in rollout_keys(context) if feature in rollouts.get(key, {})]
        user_bucket = None if context.user is None else reference_bucket(feature, context.user)
        taken = [key for key, thousandths in naming if user_bucket is not None and user_bucket < thousandths]
        assert evaluation.enabled_by == (*positives, *taken)
        assert evaluation.disabled_by == tuple(key for key in sets if key.endswith(":negative"))
        assert (evaluation.rollouts, evaluation.bucket) == (tuple(naming), user_bucket)
        if not sets:
            assert evaluation.reason == "SPLIT"
        else:
            global_only = all(key.startswith("global:") for key in sets)
            assert evaluation.reason == ("STATIC" if global_only else "TARGETING_MATCH")
    unnamed = evaluate_feature("not named", snapshot)
    assert (unnamed.enabled, unnamed.reason) == (False, "DEFAULT")
    assert unnamed.bucket == (None if context.user is None else reference_bucket("not named", context.user))


async def test_explain_keys_are_unprefixed_but_read_prefixed(store: Store) -> None:
    store.key_prefix = "{flipper}:"
    await write(store, {"global:positive": {"a"}}, prefix="{flipper}:")
    await write(store, {"global:negative": {"a"}})
    evaluation = evaluate_feature("a", await store.snapshot(Context()))
    assert (evaluation.enabled, evaluation.enabled_by, evaluation.disabled_by) == (True, ("global:positive",), ())
