"""The cache password from Secrets Manager (moto): fetched once per container, and used to reach Redis."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import redis
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from bench.servers import RedisServer
from flipper.core.connection import StoreError
from flipper.core.model import Context
from flipper.core.secretsmanager import fetch_secret
from flipper.core.settings import Settings, SettingsError
from flipper.core.store import Store
from tests.timeouts import patient


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Secrets Manager client on moto, with powertools' cache emptied before and after."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        parameters.clear_caches()
        yield boto3.client("secretsmanager")
    parameters.clear_caches()


def test_fetches_the_secret_string_once_and_serves_it_from_cache(secrets: Any) -> None:
    arn = secrets.create_secret(Name="flipper/redis", SecretString="first password")["ARN"]
    assert fetch_secret(arn) == "first password"
    secrets.put_secret_value(SecretId=arn, SecretString="rotated password")
    # Within max_age the cached value is served: warm invocations do not call Secrets Manager again.
    assert fetch_secret(arn) == "first password"
    parameters.clear_caches()
    assert fetch_secret(arn) == "rotated password"


def test_binary_secret_is_refused_with_its_arn(secrets: Any) -> None:
    arn = secrets.create_secret(Name="flipper/binary", SecretBinary=b"\x00\x01")["ARN"]
    with pytest.raises(ValueError, match=re.escape(f"secret {arn} does not hold a string")):
        fetch_secret(arn)


def test_missing_secret_raises(secrets: Any) -> None:
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:flipper/nothing-AbCdEf"
    with pytest.raises(parameters.exceptions.GetParameterError):
        fetch_secret(missing)


@pytest.fixture
def password_redis(own_redis_server: RedisServer) -> RedisServer:
    """A real redis-server that requires a password and holds one flag."""
    client = redis.Redis(port=own_redis_server.port)
    client.sadd("global:positive", "behind_a_password")
    client.config_set("requirepass", "s3cret pass")
    client.close()
    return own_redis_server


async def test_store_authenticates_with_the_password_from_the_secret(secrets: Any, password_redis: RedisServer) -> None:
    arn = secrets.create_secret(Name="flipper/redis", SecretString="s3cret pass")["ARN"]
    store = Store.from_settings(patient(Settings(redis_url=password_redis.url, redis_password_secret_arn=arn)))
    assert await store.features(Context()) == ["behind_a_password"]
    await store.aclose()


async def test_wrong_password_is_a_store_error_not_a_hang(secrets: Any, password_redis: RedisServer) -> None:
    arn = secrets.create_secret(Name="flipper/redis", SecretString="wrong")["ARN"]
    store = Store.from_settings(patient(Settings(redis_url=password_redis.url, redis_password_secret_arn=arn)))
    with pytest.raises(StoreError, match="invalid username-password") as raised:
        await store.features(Context())
    assert type(raised.value) is StoreError  # not StoreUnavailable: retrying will not mend a wrong password
    await store.aclose()


def test_secret_arn_is_read_and_checked() -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:flipper/redis-AbCdEf"
    assert Settings.from_environ({"REDIS_PASSWORD_SECRET_ARN": arn}).redis_password_secret_arn == arn
    with pytest.raises(SettingsError, match=r"^REDIS_PASSWORD_SECRET_ARN='flipper/redis' is invalid"):
        Settings.from_environ({"REDIS_PASSWORD_SECRET_ARN": "flipper/redis"})
