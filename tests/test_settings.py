"""Configuration: defaults, parsing, and a clear refusal naming the variable."""

from __future__ import annotations

import dataclasses

import pytest

from flipper.settings import Settings, SettingsError


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
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REDIS_URL", "http://localhost", "REDIS_URL='http://localhost' is invalid: must start with"),
        ("REDIS_URL", "redis://", "REDIS_URL='redis://' is invalid: needs a host"),
        ("REDIS_URL", "redis://localhost:99999", "REDIS_URL='redis://localhost:99999' is invalid"),
        ("FLIPPER_CONNECT_TIMEOUT", "soon", "FLIPPER_CONNECT_TIMEOUT='soon' is invalid"),
        ("FLIPPER_COMMAND_TIMEOUT", "0", "FLIPPER_COMMAND_TIMEOUT='0' is invalid: must be greater than zero"),
        ("FLIPPER_RETRY_AFTER", "1.5", "FLIPPER_RETRY_AFTER='1.5' is invalid"),
        ("FLIPPER_MAX_GROUPS", "-1", "FLIPPER_MAX_GROUPS='-1' is invalid: must be greater than zero"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD' is invalid: must be one of"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match="^" + message.replace("(", r"\(").replace("?", r"\?")):
        Settings.from_environ({name: value})


def test_settings_refuse_late_changes() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().key_prefix = "late:"  # type: ignore[misc]
