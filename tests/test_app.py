"""The HTTP API: the seed's walk-through, health, and every error path with its status and body."""

from __future__ import annotations

import httpx
import pytest

from flipper.core.settings import Settings
from flipper.core.store import Store


async def test_seed_walkthrough_over_http(client: httpx.AsyncClient, store: Store) -> None:
    await store.client.sadd("version:v1:positive", "feature_A", "feature_B")
    await store.client.sadd("group:g1:negative", "feature_B")

    response = await client.get("/?version=v1")
    assert response.status_code == 200
    assert response.text == '{"features": ["feature_A", "feature_B"]}'
    assert response.headers["content-type"] == "application/json"

    response = await client.get("/?version=v1&group=g1&user=some_user")
    assert response.text == '{"features": ["feature_A"]}'

    await store.client.sadd("group:g1:positive", "special_g1_feature")
    response = await client.get("/?version=v1&group=g1&user=some_user")
    assert response.text == '{"features": ["feature_A", "special_g1_feature"]}'


async def test_no_parameters_is_the_global_view(client: httpx.AsyncClient, store: Store) -> None:
    await store.client.sadd("global:positive", "g")
    response = await client.get("/")
    assert (response.status_code, response.json()) == (200, {"features": ["g"]})


async def test_repeated_group_means_member_of_each(client: httpx.AsyncClient, store: Store) -> None:
    await store.client.sadd("group:a:positive", "from_a")
    await store.client.sadd("group:b:positive", "from_b")
    response = await client.get("/?group=a&group=b")
    assert response.json() == {"features": ["from_a", "from_b"]}


async def test_percent_encoded_identifiers_and_unicode_body(client: httpx.AsyncClient, store: Store) -> None:
    await store.client.sadd("user:Zoë D:positive", "fonctionnalité")
    await store.client.sadd("group:a:b:positive", "colon")
    response = await client.get("/", params={"user": "Zoë D", "group": "a:b"})
    assert response.json() == {"features": ["colon", "fonctionnalité"]}
    assert "fonctionnalité".encode() in response.content


async def test_plus_is_a_space(client: httpx.AsyncClient, store: Store) -> None:
    await store.client.sadd("user:a b:positive", "spaced")
    assert (await client.get("/?user=a+b")).json() == {"features": ["spaced"]}


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


LIMITS = Settings(max_id_length=8, max_groups=2, max_query_length=64)


@pytest.mark.parametrize("settings", [LIMITS])
@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("color=red", 400, "unknown query parameter 'color'; expected version, group or user"),
        ("version=", 400, "query parameter 'version' is empty"),
        ("user", 400, "query parameter 'user' is empty"),
        ("group=a&group=", 400, "query parameter 'group' is empty"),
        ("version=a&version=b", 400, "query parameter 'version' is given 2 times; at most once"),
        ("user=a&user=a", 400, "query parameter 'user' is given 2 times; at most once"),
        ("user=123456789", 400, "query parameter 'user' is 9 characters long; the limit is 8"),
        ("group=a&group=b&group=c", 400, "3 groups given; the limit is 2"),
        ("user=%FF", 400, "query parameter 'user' is not valid UTF-8"),
        ("%C3=x", 400, "a query parameter name is not valid UTF-8"),
        ("group=" + "g&group=" * 8 + "g", 414, "query string is 71 bytes long; the limit is 64"),
    ],
)
async def test_bad_query_is_a_4xx_naming_the_problem(
    client: httpx.AsyncClient, query: str, status: int, error: str
) -> None:
    response = await client.get("/?" + query)
    assert (response.status_code, response.json()) == (status, {"error": error})


@pytest.mark.parametrize("settings", [LIMITS])
async def test_limits_are_inclusive(client: httpx.AsyncClient) -> None:
    response = await client.get("/?user=12345678&group=a&group=b")
    assert (response.status_code, response.json()) == (200, {"features": []})
    query = "user=12345678&version=12345678&group=aaa" + "&group=a" * 3  # exactly 64 bytes
    assert len(query) == LIMITS.max_query_length
    response = await client.get("/?" + query)
    assert (response.status_code, response.json()) == (200, {"features": []})


async def test_unknown_path_and_method_are_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert (response.status_code, response.json()) == (404, {"error": "Not Found"})
    response = await client.post("/")
    assert (response.status_code, response.json()) == (405, {"error": "Method Not Allowed"})


@pytest.mark.parametrize("path", ["/%0A", "/health%0A", "/openapi.json%0A"])
async def test_a_path_with_a_final_line_break_is_not_its_route(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert (response.status_code, response.json()) == (404, {"error": "Not Found"})


async def test_a_store_error_is_a_json_500_without_traceback(
    client: httpx.AsyncClient, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A key that is not a set: logged in one line, answered as a store error."""
    await store.client.set("global:positive", "not a set")
    response = await client.get("/")
    assert (response.status_code, response.json()) == (500, {"error": "the flag store answered with an error"})
    assert [record.exc_info for record in caplog.records if record.name == "flipper"] == [None]


async def test_a_flag_name_that_is_not_utf8_is_left_out_of_the_answer(
    client: httpx.AsyncClient, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Written with redis-cli around Flipper: the other flags are still served, and a warning names it."""
    await store.client.sadd("global:positive", b"\xff", "a")
    response = await client.get("/")
    assert (response.status_code, response.json()) == (200, {"features": ["a"]})
    assert [record.levelname for record in caplog.records if record.name == "flipper"] == ["WARNING"]


# Ten 20-character names: `{"features": [...]}` is 16 + 10 * 22 + 9 * 2 bytes long.
NAMES = [f"feature_{index:012d}" for index in range(10)]
FEATURES_BYTES = 16 + 10 * 22 + 9 * 2


@pytest.mark.parametrize("settings", [Settings(max_response_bytes=FEATURES_BYTES)])
async def test_an_answer_at_the_size_limit_is_served(client: httpx.AsyncClient, store: Store) -> None:
    await store.client.sadd("global:positive", *NAMES)
    response = await client.get("/")
    assert (response.status_code, len(response.content)) == (200, FEATURES_BYTES)


@pytest.mark.parametrize("settings", [Settings(max_response_bytes=FEATURES_BYTES - 1)])
async def test_an_answer_over_the_size_limit_is_a_json_500_naming_it(client: httpx.AsyncClient, store: Store) -> None:
    """Lambda cannot return more than 6 MB: past FLIPPER_MAX_RESPONSE_BYTES Flipper says so in JSON, rather than
    leaving API Gateway to answer a bare 500. OFREP's bulk answer is bounded too, in OFREP's shape."""
    await store.client.sadd("global:positive", *NAMES)
    limit = FEATURES_BYTES - 1
    response = await client.get("/")
    assert (response.status_code, response.json()) == (
        500,
        {
            "error": f"the answer is {FEATURES_BYTES} bytes long; the limit is {limit} (FLIPPER_MAX_RESPONSE_BYTES): "
            "too many flags apply to this caller"
        },
    )
    bulk = await client.post("/ofrep/v1/evaluate/flags", json={})
    assert bulk.status_code == 500
    assert bulk.json()["errorCode"] == "GENERAL"
    assert bulk.json()["errorDetails"].startswith("the answer is ")
    single = await client.post("/ofrep/v1/evaluate/flags/" + NAMES[0], json={})
    assert (single.status_code, single.json()["value"]) == (200, True)
