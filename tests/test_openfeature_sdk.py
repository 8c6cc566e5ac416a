"""The real OpenFeature Python SDK, through the generic OFREP provider, against Flipper served by uvicorn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from bench.servers import RedisServer
from flipper.core.settings import Settings


@pytest.fixture
def flags(redis_server: RedisServer, live_url: str) -> redis.Redis:  # after live_url empties Redis
    """A client on the live server's Redis, to write flags with."""
    return redis.Redis(port=redis_server.port, decode_responses=True)


@pytest.fixture
def openfeature_client(live_url: str) -> Iterator[OpenFeatureClient]:
    api.set_provider(OFREPProvider(live_url, timeout=5), domain="flipper")
    yield api.get_client("flipper")
    api.clear_providers()


def test_values_reasons_and_variants(flags: redis.Redis, openfeature_client: OpenFeatureClient) -> None:
    flags.sadd("global:positive", "everyone", "new_ui")
    flags.sadd("version:v1:positive", "v1_feature")
    flags.sadd("group:beta:negative", "new_ui")
    beta = EvaluationContext(targeting_key="u1", attributes={"version": "v1", "group": ["alpha", "beta"]})

    details = openfeature_client.get_boolean_details("v1_feature", False, beta)
    assert (details.value, details.reason, details.variant) == (True, Reason.TARGETING_MATCH, "on")
    details = openfeature_client.get_boolean_details("new_ui", True, beta)
    assert (details.value, details.reason, details.variant) == (False, Reason.TARGETING_MATCH, "off")
    details = openfeature_client.get_boolean_details("everyone", False, EvaluationContext())
    assert (details.value, details.reason, details.variant) == (True, Reason.STATIC, "on")
    details = openfeature_client.get_boolean_details("nobody_enabled_this", True, beta)
    assert (details.value, details.reason, details.error_code) == (False, Reason.DEFAULT, None)
    assert openfeature_client.get_boolean_value("v1_feature", False, EvaluationContext("u1")) is False


def test_a_bad_context_falls_back_to_the_default(openfeature_client: OpenFeatureClient) -> None:
    details = openfeature_client.get_boolean_details("f", True, EvaluationContext("u", {"group": 5}))
    assert (details.value, details.reason, details.error_code) == (True, Reason.ERROR, ErrorCode.INVALID_CONTEXT)
    assert details.error_message == "context field 'group' must be a string or a list of strings"


def test_flags_are_booleans(flags: redis.Redis, openfeature_client: OpenFeatureClient) -> None:
    flags.sadd("global:positive", "f")
    details = openfeature_client.get_string_details("f", "fallback")
    assert (details.value, details.error_code) == ("fallback", ErrorCode.TYPE_MISMATCH)


@pytest.mark.parametrize("settings", [Settings(max_id_length=4)])
def test_a_too_long_flag_key_is_an_error_not_a_value(openfeature_client: OpenFeatureClient) -> None:
    details = openfeature_client.get_boolean_details("too_long", True)
    assert (details.value, details.reason, details.error_code) == (True, Reason.ERROR, ErrorCode.GENERAL)
