"""The Lambda handler: API Gateway and Function URL events in, the app's answers out, warm state reused."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from bench.servers import RedisServer
from tests.conftest import LoadHandler, Observer
from tests.lambda_events import KINDS, LambdaContext, request_event, request_id
from tests.test_template import function_cors_origins, load_template

# The import of an already-imported handler's dependencies, on a busy shared machine.
IMPORT_SLACK_SECONDS = 1.0


def invoke(module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    return module.handler(event, LambdaContext())


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


@pytest.fixture
def flags(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on the shared real Redis, emptied, holding the seed's example flags under the prefix."""
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    client.flushall()
    client.sadd("{flipper}:version:v1:positive", "feature_A", "feature_B")
    client.sadd("{flipper}:group:g1:negative", "feature_B")
    client.sadd("{flipper}:user:Zoë Ü:positive", "zoë's")
    yield client
    client.close()


@pytest.fixture
def handler(load_handler: LoadHandler, redis_server: RedisServer, flags: redis.Redis) -> ModuleType:
    return load_handler(REDIS_URL=redis_server.url, FLIPPER_KEY_PREFIX="{flipper}:")


@pytest.mark.parametrize("kind", KINDS)
def test_serves_the_seed_example(handler: ModuleType, kind: str) -> None:
    response = invoke(handler, request_event(kind, "/", [("version", "v1"), ("group", "g1"), ("user", "some_user")]))
    assert response["statusCode"] == 200
    assert response["body"] == '{"features": ["feature_A"]}'
    assert response["headers"]["content-type"] == "application/json"
    assert response["isBase64Encoded"] is False


@pytest.mark.parametrize("kind", KINDS)
def test_query_values_reach_the_app_as_the_caller_sent_them(handler: ModuleType, kind: str) -> None:
    """Spaces, Unicode and a repeated group survive each payload format's query encoding."""
    query = [("version", "v1"), ("group", "g0"), ("group", "g1"), ("user", "Zoë Ü")]
    assert body(invoke(handler, request_event(kind, "/", query))) == {"features": ["feature_A", "zoë's"]}


@pytest.mark.parametrize("kind", KINDS)
def test_health_and_errors_are_json(handler: ModuleType, kind: str) -> None:
    health = invoke(handler, request_event(kind, "/health"))
    assert (health["statusCode"], body(health)) == (200, {"status": "ok"})
    unknown = invoke(handler, request_event(kind, "/", [("colour", "red")]))
    assert unknown["statusCode"] == 400
    assert "unknown query parameter 'colour'" in body(unknown)["error"]
    missing = invoke(handler, request_event(kind, "/nowhere"))
    assert missing["statusCode"] == 404
    assert "error" in body(missing)


def test_warm_invocations_share_one_connection_and_one_script_load(
    load_handler: LoadHandler, own_redis_server: RedisServer, observer: Observer
) -> None:
    """100 invocations in one container: Redis accepts one connection and loads the script once."""
    module = load_handler(REDIS_URL=own_redis_server.url, FLIPPER_KEY_PREFIX="")

    for kind in KINDS * 34:  # 102 invocations, every payload format
        response = invoke(module, request_event(kind, "/", [("version", "v1")]))
        assert body(response) == {"features": ["feature_A"]}

    assert observer.new_connections() == 1
    assert len(observer.client.client_list()) == 2  # the observer and the function's one connection
    # Loaded once, at init, so no call finds it missing (NOSCRIPT): one EVALSHA per invocation.
    assert (observer.calls("script|load"), observer.calls("evalsha")) == (1, 102)


def test_init_opens_the_connection_and_loads_the_script_before_the_first_invocation(
    load_handler: LoadHandler, own_redis_server: RedisServer, observer: Observer
) -> None:
    module = load_handler(REDIS_URL=own_redis_server.url, FLIPPER_KEY_PREFIX="")

    assert len(observer.client.client_list()) == 2  # the observer and the function's connection, before any event
    assert observer.client.script_exists(module.store._evaluate.sha) == [True]
    response = invoke(module, request_event("http-api", "/", [("version", "v1")]))
    assert body(response) == {"features": ["feature_A"]}
    assert observer.new_connections() == 1  # the first invocation opened nothing new
    assert (observer.calls("script|load"), observer.calls("evalsha")) == (1, 1)


@pytest.mark.parametrize("fault", ["down", "hung"])
def test_init_with_the_store_down_or_hung_logs_and_leaves_it_to_the_first_request(
    load_handler: LoadHandler, own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    """The init never fails and waits at most the connect timeout; the first request then connects itself."""
    own_redis_server.kill() if fault == "down" else own_redis_server.signal(signal.SIGSTOP)
    started = time.monotonic()
    try:
        module = load_handler(REDIS_URL=own_redis_server.url, FLIPPER_KEY_PREFIX="", FLIPPER_CONNECT_TIMEOUT="0.2")
        elapsed = time.monotonic() - started
    finally:
        own_redis_server.signal(signal.SIGCONT) if fault == "hung" else own_redis_server.start()
    assert elapsed < 0.2 + IMPORT_SLACK_SECONDS
    assert [record.levelname for record in caplog.records if "store not warmed" in record.message] == ["WARNING"]

    response = invoke(module, request_event("http-api", "/", [("version", "v1")]))
    assert (response["statusCode"], body(response)) == (200, {"features": []})


def test_store_down_is_a_fast_503_logged_with_the_request_id(
    load_handler: LoadHandler, own_redis_server: RedisServer
) -> None:
    module = load_handler(REDIS_URL=own_redis_server.url, FLIPPER_KEY_PREFIX="")
    own_redis_server.kill()
    logs = io.StringIO()
    log_handler = module.logger.registered_handler
    previous = log_handler.setStream(logs)
    try:
        event = request_event("http-api", "/", [("version", "v1")])
        response = invoke(module, event)
    finally:
        log_handler.setStream(previous)
    assert response["statusCode"] == 503
    assert response["headers"]["retry-after"] == "1"
    assert "unavailable" in body(response)["error"]
    records = [json.loads(line) for line in logs.getvalue().splitlines()]
    warning = next(record for record in records if record["level"] == "WARNING")
    assert warning["message"].startswith("store unavailable")
    assert warning["correlation_id"] == request_id(event)
    assert warning["function_name"] == LambdaContext.function_name
    assert "cold_start" in warning


@pytest.mark.parametrize("kind", KINDS)
def test_serves_single_flag_checks_and_ofrep(handler: ModuleType, kind: str) -> None:
    query = [("version", "v1"), ("group", "g1"), ("explain", "true")]
    feature = invoke(handler, request_event(kind, "/features/feature_B", query))
    assert body(feature) == {
        "feature": "feature_B",
        "enabled": False,
        "reason": "TARGETING_MATCH",
        "enabled_by": ["version:v1:positive"],
        "disabled_by": ["group:g1:negative"],
        "rollouts": [],
        "bucket": None,
    }
    context = {"context": {"version": "v1", "group": "g1", "targetingKey": "some_user"}}
    bulk = invoke(handler, request_event(kind, "/ofrep/v1/evaluate/flags", json_body=context))
    assert bulk["statusCode"] == 200
    assert [(flag["key"], flag["value"]) for flag in body(bulk)["flags"]] == [("feature_A", True), ("feature_B", False)]
    single = invoke(handler, request_event(kind, "/ofrep/v1/evaluate/flags/feature_A", json_body=context))
    assert body(single) == {"key": "feature_A", "value": True, "reason": "TARGETING_MATCH", "variant": "on"}


@pytest.mark.parametrize("kind", ["http-api", "function-url"])
@pytest.mark.parametrize("allowed", ["*", "https://other.example,https://app.example"])
@pytest.mark.parametrize("keys", [{}, {"FLIPPER_API_KEYS": "k"}])
def test_a_browser_preflight_reaching_the_function_succeeds(
    load_handler: LoadHandler, redis_server: RedisServer, kind: str, allowed: str, keys: dict[str, str]
) -> None:
    """The HTTP API's $default route passes OPTIONS to the function, deployed with the template's environment
    for the CorsAllowOrigins parameter `allowed`: a browser rejects any preflight that is not a 2xx."""
    origins = function_cors_origins(load_template(), allowed)
    module = load_handler(REDIS_URL=redis_server.url, FLIPPER_CORS_ORIGINS=origins, **keys)
    event = request_event(kind, "/ofrep/v1/evaluate/flags")
    event["requestContext"]["http"]["method"] = "OPTIONS"
    event["headers"] = {
        "origin": "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-api-key,authorization,if-none-match",
    }
    response = invoke(module, event)
    assert response["statusCode"] == 200
    assert response["headers"]["access-control-allow-origin"] in ("*", "https://app.example")
    assert "POST" in response["headers"]["access-control-allow-methods"]


def emf_blobs(output: str) -> list[dict[str, Any]]:
    return [blob for blob in map(json.loads, output.splitlines()) if "_aws" in blob]


def test_metrics_are_flushed_with_every_invocation(
    load_handler: LoadHandler, own_redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_handler(REDIS_URL=own_redis_server.url, FLIPPER_KEY_PREFIX="")
    event = request_event("rest-api", "/", [("version", "v1")])
    capsys.readouterr()
    invoke(module, event)
    invoke(module, event)
    invoke(module, request_event("rest-api", "/ofrep/v1/evaluate/flags", json_body={"context": {}}))
    evaluations = [blob for blob in emf_blobs(capsys.readouterr().out) if "Evaluations" in blob]
    assert [blob["Evaluations"] for blob in evaluations] == [[1.0], [1.0], [1.0]]  # one flush per invocation
    assert all(blob["EvaluationLatency"][0] > 0 for blob in evaluations)
    assert evaluations[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Flipper"

    own_redis_server.kill()
    assert invoke(module, event)["statusCode"] == 503
    [failed] = [blob for blob in emf_blobs(capsys.readouterr().out) if "ColdStart" not in blob]
    assert failed["StoreErrors"] == [1.0]
    assert "Evaluations" not in failed


def admin_event(name: str, /, **arguments: Any) -> dict[str, Any]:
    return {"flipper_admin": {"operation": name, "arguments": arguments}}


def test_admin_event_changes_flags_under_the_prefix_through_the_audited_write_path(
    handler: ModuleType, flags: redis.Redis
) -> None:
    enable = admin_event(
        "change", operation="enable", feature="special", entity="group:g1", actor="arn:aws:iam::1:user/op"
    )
    added = invoke(handler, enable)
    assert added["result"]["changes"] == [["group:g1:positive", "special", "", "1"]]
    assert flags.smembers("{flipper}:group:g1:positive") == {"special"}
    assert flags.get("{flipper}:revision") == "1"
    event = request_event("http-api", "/", [("version", "v1"), ("group", "g1")])
    assert body(invoke(handler, event)) == {"features": ["feature_A", "special"]}
    [entry] = invoke(handler, admin_event("history"))["result"]["entries"]
    assert entry["id"] == added["result"]["entry"]
    assert (entry["actor"], entry["claimed_by"]) == (
        "lambda:InvokeFunction (caller unverified)",
        "arn:aws:iam::1:user/op",
    )
    exported = invoke(handler, admin_event("export"))["result"]["flags"]["features"]
    assert exported["feature_B"] == {"enabled": ["version:v1"], "disabled": ["group:g1"]}


@pytest.mark.parametrize(
    ("event", "kind", "error"),
    [
        ({"flipper_admin": ["SADD", "global:positive", "a"]}, "invalid", "flipper_admin must be an object"),
        ({"flipper_admin": ["SADD", "global:positive", "\ud800"]}, "invalid", "flipper_admin must be an object"),
        ({"flipper_admin": {"operation": "flushall"}}, "invalid", "unknown operation 'flushall'"),
        ({"flipper_admin": {"operation": "export", "extra": 1}}, "invalid", "flipper_admin must be an object"),
        (admin_event("change", operation="enable", feature="\ud800", entity="global", actor="a"), "invalid", "feature"),
        (admin_event("change", operation="enable", feature="a", entity="global"), "invalid", "change: missing"),
        (admin_event("apply", flags_file={"flipper": 1}, revision=7, actor="a"), "refused", "flags changed since"),
        (admin_event("undo", entry="1-1", actor="a"), "invalid", "no audit entry '1-1'"),
        ({"flipper_admin": ["SREM", "group:\udfff:positive", "a"]}, "invalid", "flipper_admin must be an object"),
        # Names the read API would refuse are not written (docs/http-api.md, Names).
        (
            admin_event("change", operation="enable", feature="", entity="global", actor="a"),
            "invalid",
            "feature name is empty",
        ),
        (
            admin_event("change", operation="enable", feature="x" * 257, entity="global", actor="a"),
            "invalid",
            "feature name is 257",
        ),
        (
            admin_event("change", operation="enable", feature="a\ufffd", entity="global", actor="a"),
            "invalid",
            "feature name contains U+FFFD",
        ),
        (
            admin_event("change", operation="enable", feature="a", entity="group:g\ufffd", actor="a"),
            "invalid",
            "group name contains U+FFFD",
        ),
        (
            admin_event("change", operation="disable", feature="a", entity="user:" + "u" * 257, actor="a"),
            "invalid",
            "user name is 257",
        ),
    ],
)
def test_admin_event_refuses_bad_requests_naming_the_problem_and_writes_nothing(
    handler: ModuleType, flags: redis.Redis, event: dict[str, Any], kind: str, error: str
) -> None:
    keys_before = sorted(flags.keys("*"))
    response = invoke(handler, event)
    assert response["error"].startswith(error)
    assert response["kind"] == kind
    assert sorted(flags.keys("*")) == keys_before


def test_admin_event_with_a_lone_surrogate_answers_an_error(handler: ModuleType) -> None:
    """Events exactly as `aws lambda invoke` delivers JSON's `"\\ud800"`: the old raw command, and the new shape."""
    old = json.loads('{"flipper_admin": ["SADD", "global:positive", "\\ud800"]}')
    assert invoke(handler, old)["error"].startswith("flipper_admin must be an object")
    new = json.loads(
        '{"flipper_admin": {"operation": "change", "arguments":'
        ' {"operation": "enable", "feature": "\\ud800", "entity": "global", "actor": "a"}}}'
    )
    assert invoke(handler, new) == {
        "error": "feature name is not valid UTF-8 (it holds a lone surrogate)",
        "kind": "invalid",
    }


def test_admin_event_removes_a_name_it_would_not_write(handler: ModuleType, flags: redis.Redis) -> None:
    """A bad name written before names were checked (or by another client) can still be cleaned up."""
    flags.sadd("{flipper}:global:positive", "", "a")
    flags.sadd("{flipper}:group:g1:negative", "")
    enable = admin_event("change", operation="enable", feature="", entity="global", actor="op")
    assert invoke(handler, enable)["error"] == "feature name is empty"
    clear = admin_event("change", operation="clear", feature="", entity="group:g1", actor="op")
    assert invoke(handler, clear)["result"]["changes"] == [["group:g1:negative", "", "1", ""]]
    deleted = invoke(handler, admin_event("delete", feature="", actor="op"))
    assert deleted["result"]["changes"] == [["global:positive", "", "1", ""]]
    assert flags.smembers("{flipper}:global:positive") == {"a"}


@pytest.mark.parametrize(("disabled", "traced"), [(None, False), ("true", False), ("false", True)])
def test_tracing_is_opt_in(
    load_handler: LoadHandler,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    disabled: str | None,
    traced: bool,
) -> None:
    """The template's Tracing parameter sets POWERTOOLS_TRACE_DISABLED; off, the X-Ray SDK is not even imported."""
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    for name in [name for name in sys.modules if name.startswith("aws_xray_sdk")]:
        monkeypatch.delitem(sys.modules, name)
    environ = {"REDIS_URL": redis_server.url} | ({"POWERTOOLS_TRACE_DISABLED": disabled} if disabled else {})
    module = load_handler(**environ)
    assert ("aws_xray_sdk" in sys.modules) is traced
    assert invoke(module, request_event("http-api", "/health"))["statusCode"] == 200


# A cold start in a fresh interpreter: the modules imported by then, and after a first GET /openapi.json.
COLD_START = """
import json, sys
from flipper import handler
from tests.lambda_events import LambdaContext, request_event
cold = sorted(sys.modules)
assert handler.handler(request_event("http-api", "/openapi.json"), LambdaContext())["statusCode"] == 200
print(json.dumps({"cold": cold, "after": sorted(sys.modules)}))
"""


def test_cold_start_leaves_what_evaluations_do_not_need_to_its_first_use(redis_server: RedisServer) -> None:
    root = Path(__file__).resolve().parents[1]
    environ = os.environ | {"REDIS_URL": redis_server.url, "POWERTOOLS_TRACE_DISABLED": "true"}
    result = subprocess.run(
        [sys.executable, "-c", COLD_START], cwd=root, env=environ, capture_output=True, text=True, check=True
    )
    modules = json.loads(result.stdout.splitlines()[-1])  # after the metrics line
    # powertools imports botocore's package alone (<1 ms, to register its user agent), never a session or client.
    deferred = {"flipper.serve.openapi", "boto3", "botocore.session", "botocore.client", "aws_xray_sdk"}
    assert deferred & set(modules["cold"]) == set()
    assert "flipper.serve.openapi" in modules["after"]


LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024  # bytes of a synchronous invocation's response, envelope included


@pytest.mark.parametrize(("names", "status"), [(45_000, 200), (60_000, 500)])
def test_the_default_response_bound_keeps_lambdas_envelope_under_6_mb(
    handler: ModuleType, flags: redis.Redis, names: int, status: int
) -> None:
    """With the issue's 36-character names, OFREP's bulk answer for 45,000 flags fits Lambda's limit as the
    runtime serializes it; for 60,000 (6.78 MB) Flipper answers its own JSON 500 instead of a broken one."""
    flags.sadd("{flipper}:global:positive", *(f"feature-{index:028d}" for index in range(names)))
    response = invoke(handler, request_event("http-api", "/ofrep/v1/evaluate/flags", json_body={}))
    assert response["statusCode"] == status
    assert len(json.dumps(response).encode()) < LAMBDA_RESPONSE_LIMIT
    if status == 500:
        assert body(response)["errorDetails"].endswith("too many flags apply to this caller")


def test_usage_is_flushed_between_invocations_and_at_sigterm(
    load_handler: LoadHandler, own_redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flush a due invocation starts in the background completes on the loop's next run at the latest; the
    SIGTERM Lambda sends with an extension registered flushes the rest, publishes its metrics, and exits."""
    module = load_handler(REDIS_URL=own_redis_server.url, FLIPPER_KEY_PREFIX="", FLIPPER_USAGE_FLUSH_SECONDS="0.001")
    assert signal.getsignal(signal.SIGTERM) is module.shutdown
    client = redis.Redis(port=own_redis_server.port, decode_responses=True)
    client.sadd("global:positive", "a")
    capsys.readouterr()
    for _ in range(2):
        time.sleep(0.002)  # past the interval: the second invocation starts the flush of the first's count
        assert body(invoke(module, request_event("http-api", "/features/a"))) == {
            "feature": "a", "enabled": True, "reason": "STATIC"
        }  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        module.shutdown(signal.SIGTERM, None)
    assert exited.value.code == 0
    assert client.hgetall("usage:evaluations") == {"a": "2"}
    flushes = [blob["UsageFlushes"] for blob in emf_blobs(capsys.readouterr().out) if "UsageFlushes" in blob]
    assert sum(count for counts in flushes for count in counts) == 2  # one in the background, one at SIGTERM
    client.close()


OPERATOR = "arn:aws:iam::123456789012:user/operator"  # tests/events/function-url.json's IAM caller
ALICE = "arn:aws:iam::123456789012:user/alice"
ON_OPERATOR = LambdaContext(invoked_function_arn=LambdaContext.invoked_function_arn + ":operator")
ON_LIVE = LambdaContext(invoked_function_arn=LambdaContext.invoked_function_arn + ":live")


def operator_request(kind: str, name: str, **arguments: Any) -> dict[str, Any]:
    return request_event(kind, "/admin", json_body={"operation": name, "arguments": arguments})


def history(handler: ModuleType) -> list[dict[str, Any]]:
    return invoke(handler, admin_event("history"))["result"]["entries"]


def test_a_raw_invoke_claiming_alice_records_alice_as_claimed_only(handler: ModuleType, flags: redis.Redis) -> None:
    """Anyone allowed to invoke the function can put any actor in the event: it is kept, as a claim, and
    neither the event's actor nor its claimed_by becomes the actor."""
    claiming = admin_event("change", operation="enable", feature="a", entity="global", actor=ALICE, claimed_by="bob")
    assert "result" in handler.handler(claiming, ON_OPERATOR)  # on any alias: a raw event is a raw invoke
    [entry] = history(handler)
    assert (entry["actor"], entry["claimed_by"]) == ("lambda:InvokeFunction (caller unverified)", ALICE)


def test_the_operator_url_records_the_iam_caller_as_actor_whatever_the_body_claims(
    handler: ModuleType, flags: redis.Redis
) -> None:
    enable = operator_request("function-url", "change", operation="enable", feature="a", entity="global", actor=ALICE)
    response = handler.handler(enable, ON_OPERATOR)
    assert (response["statusCode"], response["headers"]["content-type"]) == (200, "application/json")
    assert body(response)["result"]["changes"] == [["global:positive", "a", "", "1"]]
    own = operator_request("function-url", "change", operation="disable", feature="a", entity="global", actor=OPERATOR)
    assert handler.handler(own, ON_OPERATOR)["statusCode"] == 200
    unchanged = operator_request("function-url", "change", operation="disable", feature="a", entity="global")
    assert body(handler.handler(unchanged, ON_OPERATOR))["error"].startswith("change: missing a required argument")
    newest, oldest = history(handler)
    assert (oldest["actor"], oldest["claimed_by"]) == (OPERATOR, ALICE)
    assert (newest["actor"], "claimed_by" in newest) == (OPERATOR, False)  # its claim is what Lambda proved


def test_the_operator_url_answers_refusals_as_http_errors(handler: ModuleType, flags: redis.Redis) -> None:
    refused = operator_request("function-url", "apply", flags_file={"flipper": 1}, revision=7, actor=OPERATOR)
    response = handler.handler(refused, ON_OPERATOR)
    assert (response["statusCode"], body(response)["kind"]) == (409, "refused")
    wrong = request_event("function-url", "/admin")
    assert handler.handler(wrong, ON_OPERATOR)["statusCode"] == 405
    elsewhere = request_event("function-url", "/", json_body={"operation": "history"})
    assert handler.handler(elsewhere, ON_OPERATOR)["statusCode"] == 404
    garbled = operator_request("function-url", "history")
    garbled["body"] = "{"
    assert handler.handler(garbled, ON_OPERATOR)["statusCode"] == 400
    encoded = operator_request("function-url", "history")  # as a Function URL delivers a binary content type
    encoded["body"], encoded["isBase64Encoded"] = base64.b64encode(encoded["body"].encode()).decode(), True
    assert body(handler.handler(encoded, ON_OPERATOR)) == {"result": {"entries": []}}


@pytest.mark.parametrize("kind", ["http-api", "function-url"])
def test_a_request_through_the_api_cannot_write_even_with_a_forged_authorizer(
    handler: ModuleType, flags: redis.Redis, kind: str
) -> None:
    """API Gateway invokes the alias `live`: whatever its event says about an IAM caller, POST /admin there is
    the evaluation app's 404, as a Function URL event is on any alias but `operator`."""
    forged = operator_request(kind, "change", operation="enable", feature="a", entity="global", actor=ALICE)
    forged["requestContext"]["authorizer"] = {"iam": {"userArn": ALICE, "accountId": "123456789012"}}
    forged["requestContext"]["domainName"] = "abcdefghij.lambda-url.us-east-1.on.aws"
    keys_before = sorted(flags.keys("*"))
    for context in (ON_LIVE, LambdaContext()):
        assert handler.handler(forged, context)["statusCode"] == 404
    assert sorted(flags.keys("*")) == keys_before


def test_the_operator_alias_refuses_a_request_no_iam_authorizer_vouches_for(
    handler: ModuleType, flags: redis.Redis
) -> None:
    unsigned = operator_request("http-api", "change", operation="enable", feature="a", entity="global", actor=ALICE)
    response = handler.handler(unsigned, ON_OPERATOR)
    assert (response["statusCode"], body(response)["kind"]) == (403, "forbidden")
    assert flags.get("{flipper}:revision") is None
