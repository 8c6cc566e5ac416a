"""CORS: allowed origins from configuration (none by default), preflight answered, ETag exposed."""

from __future__ import annotations

import httpx
import pytest

from flipper.core.settings import Settings

ORIGIN = "https://app.example"
CORS = Settings(cors_origins=(ORIGIN,), api_keys=("k",))
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type, authorization, if-none-match",
}


@pytest.mark.parametrize("settings", [CORS])
async def test_preflight_is_answered_without_a_key(client: httpx.AsyncClient) -> None:
    response = await client.options("/ofrep/v1/evaluate/flags", headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    assert {"authorization", "content-type", "if-none-match"} <= {
        header.strip().lower() for header in response.headers["access-control-allow-headers"].split(",")
    }


@pytest.mark.parametrize("settings", [CORS])
async def test_etag_is_exposed_and_errors_carry_cors_too(client: httpx.AsyncClient) -> None:
    response = await client.post("/ofrep/v1/evaluate/flags", json={}, headers={"Origin": ORIGIN, "X-API-Key": "k"})
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "etag" in response.headers["access-control-expose-headers"].lower()
    unauthorized = await client.get("/", headers={"Origin": ORIGIN})
    assert (unauthorized.status_code, unauthorized.headers["access-control-allow-origin"]) == (401, ORIGIN)


@pytest.mark.parametrize("settings", [CORS])
async def test_other_origins_get_no_grant(client: httpx.AsyncClient) -> None:
    response = await client.options("/", headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert (response.status_code, response.json()) == (400, {"error": "Disallowed CORS origin"})
    assert response.headers["content-type"] == "application/json"
    assert "access-control-allow-origin" not in response.headers
    response = await client.options("/", headers={**PREFLIGHT, "Access-Control-Request-Headers": "x-debug"})
    assert (response.status_code, response.json()) == (400, {"error": "Disallowed CORS headers"})
    assert response.headers["access-control-allow-origin"] == ORIGIN  # the origin is allowed, the header is not
    response = await client.get("/", headers={"Origin": "https://evil.example", "X-API-Key": "k"})
    assert (response.status_code, "access-control-allow-origin" in response.headers) == (200, False)


async def test_no_origins_by_default(client: httpx.AsyncClient) -> None:
    response = await client.options("/", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in response.headers
    response = await client.get("/", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers
