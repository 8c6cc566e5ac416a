"""ETag, If-None-Match and Cache-Control on the GET endpoints (the OFREP bulk form is in test_ofrep)."""

from __future__ import annotations

import httpx
import pytest

from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.serve.etags import etag
from tests.test_store import write


async def test_get_root_has_an_etag_of_its_body(client: httpx.AsyncClient, store: Store) -> None:
    await write(store, {"global:positive": {"a"}})
    response = await client.get("/")
    assert response.text == '{"features": ["a"]}'
    assert response.headers["etag"] == etag(response.content)
    assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "if_none_match", ["{tag}", "W/{tag}", '"other", {tag}', "*"], ids=["exact", "weak", "in a list", "any"]
)
async def test_matching_if_none_match_is_an_empty_304(
    client: httpx.AsyncClient, store: Store, if_none_match: str
) -> None:
    for path in ("/?user=u", "/features/a?user=u"):
        tag = (await client.get(path)).headers["etag"]
        response = await client.get(path, headers={"If-None-Match": if_none_match.format(tag=tag)})
        assert (response.status_code, response.content) == (304, b"")
        assert (response.headers["etag"], response.headers["cache-control"]) == (tag, "no-cache")


async def test_a_change_is_never_a_stale_304(client: httpx.AsyncClient, store: Store) -> None:
    tag = (await client.get("/?user=u")).headers["etag"]
    await write(store, {"user:u:positive": {"new"}})
    response = await client.get("/?user=u", headers={"If-None-Match": tag})
    assert (response.status_code, response.json()) == (200, {"features": ["new"]})
    response = await client.get("/?user=other", headers={"If-None-Match": response.headers["etag"]})
    assert (response.status_code, response.json()) == (200, {"features": []})


@pytest.mark.parametrize("settings", [Settings(cache_control="private, max-age=30")])
async def test_cache_control_is_configurable(client: httpx.AsyncClient) -> None:
    assert (await client.get("/")).headers["cache-control"] == "private, max-age=30"


async def test_errors_carry_no_etag(client: httpx.AsyncClient) -> None:
    response = await client.get("/?color=red", headers={"If-None-Match": "*"})
    assert response.status_code == 400
    assert "etag" not in response.headers
