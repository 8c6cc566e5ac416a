"""Optional API keys: from the environment or a Secrets Manager secret (moto), on every route but /health."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import httpx
import pytest
import redis
from moto import mock_aws
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from bench.servers import RedisServer
from flipper.core.settings import Settings, SettingsError
from flipper.core.store import Store
from flipper.serve.app import create_app
from flipper.serve.auth import api_keys
from tests.test_store import write

KEYED = Settings(api_keys=("key-one", "key-two"))


@pytest.mark.parametrize("settings", [KEYED])
@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer key-one"},
        {"Authorization": "bearer  key-two "},
        {"X-API-Key": "key-two"},
        {"Authorization": "Basic a2V5LW9uZQ==", "X-API-Key": "key-one"},
    ],
)
async def test_a_valid_key_is_let_through(client: httpx.AsyncClient, store: Store, headers: dict[str, str]) -> None:
    await write(store, {"global:positive": {"a"}})
    assert (await client.get("/", headers=headers)).json() == {"features": ["a"]}
    assert (await client.post("/ofrep/v1/evaluate/flags/a", json={}, headers=headers)).json()["value"] is True


@pytest.mark.parametrize("settings", [KEYED])
@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>"),
        ({"Authorization": "Bearer "}, "an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>"),
        ({"Authorization": "Bearer key-on"}, "the API key is not valid"),
        ({"X-API-Key": "key-one-and-more"}, "the API key is not valid"),
        ({"Authorization": "Bearer wrong", "X-API-Key": "key-one"}, "the API key is not valid"),
    ],
)
async def test_a_missing_or_wrong_key_is_a_401(
    client: httpx.AsyncClient, headers: dict[str, str], message: str
) -> None:
    for path in ("/", "/features/a", "/nope"):
        response = await client.get(path, headers=headers)
        assert (response.status_code, response.json()) == (401, {"error": message})
        assert response.headers["www-authenticate"] == "Bearer"
    response = await client.post("/ofrep/v1/evaluate/flags", json={}, headers=headers)
    assert (response.status_code, response.json()) == (401, {"errorCode": "GENERAL", "errorDetails": message})


@pytest.mark.parametrize("settings", [KEYED])
async def test_health_and_the_api_document_stay_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/openapi.json")).json()["openapi"] == "3.1.0"


async def test_no_keys_configured_means_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/", headers={"X-API-Key": "anything"})).status_code == 200


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.client]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-west-1")


def test_keys_from_a_secret_join_those_from_the_environment(aws: boto3.client) -> None:
    arn = aws.create_secret(Name="flipper-keys-joined", SecretString=" secret-one , secret-two")["ARN"]
    settings = Settings(api_keys=("env-key",), api_keys_secret_arn=arn)
    assert api_keys(settings) == ("env-key", "secret-one", "secret-two")


def test_a_secret_without_keys_is_a_settings_error(aws: boto3.client) -> None:
    arn = aws.create_secret(Name="flipper-keys-empty", SecretString=" , ")["ARN"]
    with pytest.raises(SettingsError, match=r"^the secret FLIPPER_API_KEYS_SECRET_ARN names is invalid: names no key$"):
        api_keys(Settings(api_keys_secret_arn=arn))


async def test_the_secret_is_read_once_when_the_app_is_built(aws: boto3.client, store: Store) -> None:
    arn = aws.create_secret(Name="flipper-keys-once", SecretString="from-the-secret")["ARN"]
    app = create_app(store, Settings(api_keys_secret_arn=arn))
    aws.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)  # requests must not need it any more
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://flipper.test") as client:
        assert (await client.get("/", headers={"X-API-Key": "from-the-secret"})).status_code == 200
        assert (await client.get("/", headers={"X-API-Key": "other"})).status_code == 401


@pytest.mark.parametrize("settings", [KEYED])
def test_openfeature_provider_sends_the_key(live_url: str, redis_server: RedisServer) -> None:
    redis.Redis(port=redis_server.port).sadd("global:positive", "on")
    try:
        api.set_provider(OFREPProvider(live_url, headers_factory=lambda: {"Authorization": "Bearer key-one"}), "keyed")
        details = api.get_client("keyed").get_boolean_details("on", False)
        assert (details.value, details.reason) == (True, Reason.STATIC)
        api.set_provider(OFREPProvider(live_url, headers_factory=lambda: {"X-API-Key": "nope"}), "wrong")
        details = api.get_client("wrong").get_boolean_details("on", False)
        assert (details.value, details.error_code, details.error_message) == (False, ErrorCode.GENERAL, "unauthorized")
    finally:
        api.clear_providers()
