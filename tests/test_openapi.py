"""The OpenAPI document: valid 3.1, every route in it, and a schemathesis run against a live server."""

from __future__ import annotations

import httpx
import jsonschema
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bench.servers import RedisServer
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.serve.app import create_app
from flipper.serve.openapi import document


@pytest.fixture
def settings() -> Settings:
    """Small limits keep generated requests short, so the run stays quick and reaches the limits' edges."""
    return Settings(max_id_length=12, max_groups=3, max_query_length=120, max_body_length=300)


async def test_every_route_is_documented(client: httpx.AsyncClient, store: Store) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    app = create_app(store, Settings())
    routes = {route.path.replace("{name:name}", "{name}").replace("{key:name}", "{key}") for route in app.routes}
    assert set(document["paths"]) == routes
    assert "security" not in document


@pytest.mark.parametrize("settings", [Settings(api_keys=("k",), max_id_length=9)])
async def test_keys_and_limits_are_documented_and_the_document_is_open(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["security"] == [{"bearer": []}, {"apiKey": []}]
    assert document["paths"]["/features/{name}"]["get"]["parameters"][0]["schema"]["maxLength"] == 9


def test_identifiers_are_documented_without_the_replacement_character() -> None:
    """The API refuses U+FFFD in every name (docs/http-api.md#names); the document says so."""
    components = document(Settings(), secured=False)
    identifier = components["paths"]["/features/{name}"]["get"]["parameters"][0]["schema"]
    context = components["components"]["schemas"]["OFREPRequest"]["properties"]["context"]["properties"]
    for schema in (identifier, context["targetingKey"]):
        jsonschema.validate("beta", schema)
        with pytest.raises(jsonschema.ValidationError, match="does not match"):
            jsonschema.validate("be\ufffdta", schema)


def test_rollouts_are_documented() -> None:
    schemas = document(Settings(), secured=False)["components"]["schemas"]
    feature = schemas["Feature"]["properties"]
    assert feature["rollouts"]["items"] == {"$ref": "#/components/schemas/Rollout"}
    assert feature["bucket"]["type"] == ["integer", "null"]
    assert (feature["bucket"]["minimum"], feature["bucket"]["maximum"]) == (0, 99_999)
    assert schemas["Rollout"]["required"] == ["key", "percentage"]
    assert "SPLIT" in feature["reason"]["enum"]
    assert "SPLIT" in schemas["OFREPEvaluation"]["properties"]["reason"]["enum"]


async def test_an_explained_rollout_matches_its_schema(client: httpx.AsyncClient, store: Store) -> None:
    await store.client.hset("version:v1:rollout", "search", "97.601")
    body = (await client.get("/features/search?version=v1&user=User;1&explain=true")).json()
    assert body["rollouts"] == [{"key": "version:v1:rollout", "percentage": 97.601}]
    components = document(Settings(), secured=False)["components"]
    schema = {**components["schemas"]["Feature"], "components": components}
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "bucket": 100_000}, schema, cls=jsonschema.Draft202012Validator)


@pytest.fixture
def api_schema(live_url: str, redis_server: RedisServer) -> schemathesis.BaseSchema:
    flags = redis.Redis(port=redis_server.port)
    flags.sadd("global:positive", "a", "b")
    flags.sadd("global:negative", "b")
    flags.hset("global:rollout", mapping={"a": "50", "c": "12.5", "d": "100"})
    flags.hset("version:v:rollout", mapping={"c": "99.999", "e": "not a percentage"})
    return schemathesis.openapi.from_url(f"{live_url}/openapi.json")


# Every operation, in both of schemathesis's modes; those without parameters or body have no invalid input.
OPERATIONS = [
    (method.upper(), path, mode)
    for path, item in document(Settings(), secured=False)["paths"].items()
    for method, operation in item.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode == GenerationMode.POSITIVE or "parameters" in operation
]


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS)
def test_api_conforms_to_its_document(
    api_schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    """No 5xx, and every status, content type, header and body as the document says."""

    @given(case=api_schema[path][method].as_strategy(generation_mode=mode))
    @hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def conforms(case: schemathesis.Case) -> None:
        case.call_and_validate(
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_headers_conformance,
                response_schema_conformance,
            ]
        )

    conforms()
