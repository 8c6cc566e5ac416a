"""Configuration: defaults, parsing, and a clear refusal naming the variable."""

from __future__ import annotations

import dataclasses
import re

import pytest

from flipper.core.settings import Settings, SettingsError


def test_defaults_from_an_empty_environment() -> None:
    assert Settings.from_environ({}) == Settings()
    assert Settings().redis_url is None


def test_every_variable_is_read() -> None:
    settings = Settings.from_environ(
        {
            "REDIS_URL": "rediss://:secret@cache.example:6380/0",
            "FLIPPER_KEY_PREFIX": "{flipper}:",
            "FLIPPER_CONNECT_TIMEOUT": "0.1",
            "FLIPPER_COMMAND_TIMEOUT": "0.2",
            "FLIPPER_RETRY_AFTER": "3",
            "LOG_LEVEL": "debug",
            "FLIPPER_MAX_ID_LENGTH": "64",
            "FLIPPER_MAX_GROUPS": "4",
            "FLIPPER_MAX_QUERY_LENGTH": "1024",
            "FLIPPER_MAX_BODY_LENGTH": "100",
            "FLIPPER_CACHE_CONTROL": "private, max-age=5",
            "FLIPPER_CORS_ORIGINS": "https://app.example, http://localhost:3000",
            "FLIPPER_API_KEYS": " k1,k2 ,",
            "FLIPPER_API_KEYS_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:flipper-keys",
            "FLIPPER_REDIS_CLUSTER": "true",
            "REDIS_PASSWORD_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:flipper-redis",
        }
    )
    assert settings == Settings(
        redis_url="rediss://:secret@cache.example:6380/0",
        key_prefix="{flipper}:",
        connect_timeout=0.1,
        command_timeout=0.2,
        retry_after=3,
        log_level="DEBUG",
        max_id_length=64,
        max_groups=4,
        max_query_length=1024,
        max_body_length=100,
        cache_control="private, max-age=5",
        cors_origins=("https://app.example", "http://localhost:3000"),
        api_keys=("k1", "k2"),
        api_keys_secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:flipper-keys",
        redis_cluster=True,
        redis_password_secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:flipper-redis",
    )
    assert "k1" not in repr(settings)
    assert ":secret@" not in repr(settings)  # the password in REDIS_URL


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REDIS_URL", "http://localhost", "REDIS_URL='http://localhost' is invalid: must start with"),
        ("REDIS_URL", "redis://", "REDIS_URL='redis://' is invalid: needs a host"),
        ("REDIS_URL", "redis://localhost:99999", "REDIS_URL='redis://localhost:99999' is invalid"),
        ("REDIS_URL", "rediss://:hunter2@cache:637900", "REDIS_URL='rediss://:***@cache:637900' is invalid"),
        ("REDIS_URL", "rediss://app:hunter2@cache:x", "REDIS_URL='rediss://app:***@cache:x' is invalid"),
        ("FLIPPER_CONNECT_TIMEOUT", "soon", "FLIPPER_CONNECT_TIMEOUT='soon' is invalid"),
        ("FLIPPER_COMMAND_TIMEOUT", "0", "FLIPPER_COMMAND_TIMEOUT='0' is invalid: must be a finite number greater"),
        ("FLIPPER_COMMAND_TIMEOUT", "inf", "FLIPPER_COMMAND_TIMEOUT='inf' is invalid: must be a finite number"),
        ("FLIPPER_CONNECT_TIMEOUT", "1e400", "FLIPPER_CONNECT_TIMEOUT='1e400' is invalid: must be a finite number"),
        ("FLIPPER_CONNECT_TIMEOUT", "nan", "FLIPPER_CONNECT_TIMEOUT='nan' is invalid: must be a finite number"),
        ("FLIPPER_RETRY_AFTER", "1.5", "FLIPPER_RETRY_AFTER='1.5' is invalid"),
        ("FLIPPER_MAX_GROUPS", "-1", "FLIPPER_MAX_GROUPS='-1' is invalid: must be a finite number greater than zero"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD' is invalid: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("LOG_LEVEL", "warn", "LOG_LEVEL='warn' is invalid: must be one of"),
        ("LOG_LEVEL", "NOTSET", "LOG_LEVEL='NOTSET' is invalid: must be one of"),
        ("FLIPPER_CACHE_CONTROL", "café", "FLIPPER_CACHE_CONTROL='café' is invalid: must be printable ASCII"),
        ("FLIPPER_CORS_ORIGINS", "app.example", "FLIPPER_CORS_ORIGINS='app.example' is invalid: 'app.example' is not"),
        ("FLIPPER_CORS_ORIGINS", "https://a.example/path", "FLIPPER_CORS_ORIGINS='https://a.example/path' is"),
        ("FLIPPER_API_KEYS_SECRET_ARN", "flipper-keys", "FLIPPER_API_KEYS_SECRET_ARN='flipper-keys' is invalid"),
        ("FLIPPER_MAX_BODY_LENGTH", "0", "FLIPPER_MAX_BODY_LENGTH='0' is invalid"),
        ("FLIPPER_API_KEYS", " , ", "FLIPPER_API_KEYS is invalid: names no key"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match="^" + re.escape(message)):
        Settings.from_environ({name: value})


def test_settings_refuse_late_changes() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().key_prefix = "late:"  # type: ignore[misc]


def test_a_bad_api_key_is_not_repeated() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_environ({"FLIPPER_API_KEYS": "good,sec ret"})
    assert "sec ret" not in str(raised.value)
    assert str(raised.value).startswith("FLIPPER_API_KEYS is invalid: a key is not printable ASCII")
