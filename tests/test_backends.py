"""The CLI through the deployed function, without AWS: each Lambda invoke runs the real handler, imported
from the `sam build` artifact, in this process, against a real redis-server. STS and CloudFormation are moto's.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import io
import json
import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import httpx
import pytest
import redis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto import mock_aws

from bench.servers import RedisServer
from flipper.operate.cli import main
from tests.lambda_events import LambdaContext, request_event

FUNCTION = "flipper-FlipperFunction-abc123"
FUNCTION_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
OPERATOR_URL = "https://abcdefghij.lambda-url.us-east-1.on.aws/"  # the stack flipper-url's OperatorUrl output
MOTO_ARN = "arn:aws:sts::123456789012:user/moto"  # moto's GetCallerIdentity
UNVERIFIED = "lambda:InvokeFunction (caller unverified)"
JSON = email.message_from_string("Content-Type: application/json\n\n")


def import_from_artifact(artifact: Path) -> ModuleType:
    """`flipper.handler` as Lambda imports it, from the artifact's `flipper` package, then this process's
    own `flipper` modules put back so the rest of the suite is unaffected."""
    own = {name: module for name, module in sys.modules.items() if name == "flipper" or name.startswith("flipper.")}
    for name in own:
        del sys.modules[name]
    sys.path.insert(0, str(artifact))
    try:
        import flipper.handler as handler

        assert handler.__file__.startswith(str(artifact))
        return handler
    finally:
        sys.path.remove(str(artifact))
        for name in [name for name in sys.modules if name == "flipper" or name.startswith("flipper.")]:
            del sys.modules[name]
        sys.modules.update(own)


@pytest.fixture
def flags(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    client.flushall()
    client.sadd("{flipper}:version:v1:positive", "feature_A")  # written around Flipper, as the seed does
    yield client
    client.close()


@pytest.fixture
def function(
    artifact: Path, redis_server: RedisServer, flags: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[dict[str, Any]]]:
    """AWS as moto fakes it, with the Lambda client's invoke running the artifact's handler; yields the
    events the function received."""
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("FLIPPER_KEY_PREFIX", "{flipper}:")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    handler = import_from_artifact(artifact)
    received: list[dict[str, Any]] = []
    instance = threading.Lock()  # one instance answers one event at a time (the console invokes concurrently)

    def invoke(FunctionName: str, Payload: bytes) -> dict[str, Any]:
        assert FunctionName == FUNCTION
        event = json.loads(Payload)
        received.append(event)
        with instance, contextlib.redirect_stdout(io.StringIO()):  # the logs and metrics go to CloudWatch
            answer = handler.handler(event, LambdaContext())
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(answer).encode())}

    real_client = boto3.session.Session.client

    def client(self: boto3.session.Session, service: str, *args: Any, **kwargs: Any) -> Any:
        made = real_client(self, service, *args, **kwargs)
        if service == "lambda":
            made.invoke = invoke
        return made

    def url_service(request: urllib.request.Request, timeout: float) -> Any:
        """The operator Function URL as Lambda runs it: the SigV4 signature checked against the secret key of
        moto's one caller, then the alias `operator` invoked with that caller in the IAM authorizer."""
        assert request.full_url == OPERATOR_URL + "admin"
        if not signed_with(secret, request):
            raise urllib.error.HTTPError(
                request.full_url, 403, "Forbidden", JSON, io.BytesIO(b'{"Message":"Forbidden"}')
            )
        event = request_event("function-url", "/admin", json_body=json.loads(request.data))
        event["requestContext"]["authorizer"]["iam"]["userArn"] = MOTO_ARN
        received.append(event)
        with instance, contextlib.redirect_stdout(io.StringIO()):
            answer = handler.handler(event, LambdaContext(invoked_function_arn=f"{FUNCTION_ARN}:operator"))
        if answer["statusCode"] != 200:
            raise urllib.error.HTTPError(
                request.full_url, answer["statusCode"], "", JSON, io.BytesIO(answer["body"].encode())
            )
        return contextlib.nullcontext(io.BytesIO(answer["body"].encode()))

    monkeypatch.setattr(boto3.session.Session, "client", client)
    monkeypatch.setattr(urllib.request, "urlopen", url_service)
    with mock_aws():
        secret = os.environ["AWS_SECRET_ACCESS_KEY"]  # moto's own, set for the mock's lifetime
        for stack, outputs in (("flipper", {}), ("flipper-url", {"OperatorUrl": {"Value": OPERATOR_URL}})):
            boto3.client("cloudformation").create_stack(
                StackName=stack,
                TemplateBody=json.dumps(
                    {
                        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                        "Outputs": {"FunctionName": {"Value": FUNCTION}, **outputs},
                    }
                ),
            )
        yield received
    handler.loop.run_until_complete(handler.store.aclose())
    handler.loop.close()


def signed_with(secret: str, request: urllib.request.Request) -> bool:
    """Whether the request carries a valid SigV4 signature for service `lambda` by the secret key `secret`."""
    headers = {name: value for name, value in request.header_items() if name.lower() != "authorization"}
    copy = AWSRequest("POST", request.full_url, data=request.data, headers=headers)
    copy.context["timestamp"] = request.get_header("X-amz-date")
    auth = SigV4Auth(Credentials("any", secret), "lambda", "us-east-1")
    signature = auth.signature(auth.string_to_sign(copy, auth.canonical_request(copy)), copy)
    return request.get_header("Authorization", "").endswith(f"Signature={signature}")


def flipper(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_changes_through_the_function_are_audited_with_the_callers_arn(
    function: list[dict[str, Any]], flags: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = flipper(capsys, "enable", "feature_B", "--group", "g1", "--function", FUNCTION, "-m", "beta")
    assert (code, out.split(" (")[0]) == (0, "enabled feature_B for group:g1")
    assert flags.smembers("{flipper}:group:g1:positive") == {"feature_B"}
    assert function[-1] == {
        "flipper_admin": {
            "operation": "change",
            "arguments": {
                "operation": "enable",
                "feature": "feature_B",
                "entity": "group:g1",
                "message": "beta",
                "actor": MOTO_ARN,
            },
        }
    }
    code, out, _ = flipper(capsys, "history", "--stack", "flipper", "--json")
    [entry] = json.loads(out)["entries"]
    # A raw invoke proves no caller: the ARN the command sent is recorded as claimed, not as the actor.
    assert (code, entry["actor"], entry["claimed_by"], entry["message"]) == (0, UNVERIFIED, MOTO_ARN, "beta")


def test_changes_through_the_operator_url_are_signed_and_audited_with_the_authenticated_arn(
    function: list[dict[str, Any]], flags: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = flipper(capsys, "enable", "feature_B", "--group", "g1", "--stack", "flipper-url", "-m", "signed")
    assert (code, out.split(" (")[0]) == (0, "enabled feature_B for group:g1")
    assert flags.smembers("{flipper}:group:g1:positive") == {"feature_B"}
    assert [event["requestContext"]["http"]["path"] for event in function] == ["/admin"]
    code, out, _ = flipper(capsys, "history", "--stack", "flipper-url", "--json")
    [entry] = json.loads(out)["entries"]
    assert (code, entry["actor"], "claimed_by" in entry, entry["message"]) == (0, MOTO_ARN, False, "signed")
    assert flipper(capsys, "undo", "1-1", "--stack", "flipper-url") == (
        1,
        "",
        "flipper: error: no audit entry '1-1' (it may have been trimmed from the stream)\n",
    )


def test_a_request_lambda_cannot_authenticate_is_an_error(
    function: list[dict[str, Any]],
    flags: redis.Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-key")
    code, _, err = flipper(capsys, "enable", "feature_B", "--group", "g1", "--stack", "flipper-url")
    assert (code, err) == (
        1,
        f'flipper: error: operator URL {OPERATOR_URL} answered 403: b\'{{"Message":"Forbidden"}}\'\n',
    )
    assert (function, flags.smembers("{flipper}:group:g1:positive")) == ([], set())


def test_list_export_and_apply_through_the_stacks_function(
    function: list[dict[str, Any]], flags: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = flipper(capsys, "list", "--stack", "flipper")
    assert (code, out.splitlines()) == (
        0,
        ["FEATURE    ENABLED     DISABLED  ROLLOUT", "feature_A  version:v1  -         -"],
    )
    wanted = tmp_path / "flags.yaml"
    wanted.write_text("flipper: 1\nfeatures:\n  feature_A:\n    disabled: [user:u1]\n", encoding="utf-8")
    assert flipper(capsys, "apply", str(wanted), "--dry-run", "--stack", "flipper")[0] == 2
    assert flags.get("{flipper}:revision") is None
    code, out, _ = flipper(capsys, "apply", str(wanted), "--stack", "flipper")
    assert (code, out.splitlines()[-1].split(" (")[0]) == (0, "applied 2 changes")
    assert flipper(capsys, "apply", str(wanted), "--dry-run", "--stack", "flipper")[:2] == (
        0,
        "no changes (revision 1)\n",
    )
    assert [event["flipper_admin"]["operation"] for event in function] == ["export", "plan", "plan", "apply", "plan"]


def test_refusals_and_bad_input_through_the_function_are_one_line_and_exit_1(
    function: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert flipper(capsys, "undo", "1-1", "--function", FUNCTION) == (
        1,
        "",
        "flipper: error: no audit entry '1-1' (it may have been trimmed from the stream)\n",
    )
    code, _, err = flipper(capsys, "enable", "a", "--global", "--function", FUNCTION, "--actor", "me")
    assert (code, err) == (
        1,
        "flipper: error: --actor applies to --redis-url; through the function the actor is your AWS identity\n",
    )
    code, _, err = flipper(capsys, "list", "--stack", "no-such-stack")
    assert code == 1
    assert err.startswith("flipper: error: AWS could not be reached: An error occurred (ValidationError)")
    assert err.count("\n") == 1


def test_a_function_that_fails_without_answering_is_an_error(
    function: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(FunctionName: str, Payload: bytes) -> dict[str, Any]:
        body = {"errorMessage": "Task timed out after 10.00 seconds", "errorType": "Sandbox.Timedout"}
        return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(body).encode())}

    real_client = boto3.session.Session.client
    monkeypatch.setattr(
        boto3.session.Session,
        "client",
        lambda self, service, *a, **k: _with_invoke(real_client(self, service, *a, **k), service, failing),
    )
    assert flipper(capsys, "list", "--function", FUNCTION) == (
        1,
        "",
        f"flipper: error: function {FUNCTION} failed: Task timed out after 10.00 seconds\n",
    )


def _with_invoke(client: Any, service: str, invoke: Any) -> Any:
    if service == "lambda":
        client.invoke = invoke
    return client


def test_the_console_writes_through_the_function_as_the_callers_arn(
    function: list[dict[str, Any]], flags: redis.Redis
) -> None:
    from flipper.operate import console
    from flipper.operate.backends import FunctionBackend

    guard, backend = console.guard_for("127.0.0.1", 8765), FunctionBackend(FUNCTION)
    app = console.create_app(backend, guard, console.describe(backend))

    async def operate() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as client:
            page = await client.get(f"/?token={guard.token}", follow_redirects=True)
            assert (page.status_code, f"function {FUNCTION}" in page.text, MOTO_ARN in page.text) == (200, True, True)
            form = {"csrf": guard.csrf, "back": "", "revision": "0"}
            form |= {"operation": "enable", "feature": "feature_B", "entity": "group:g1"}
            assert "+ feature_B enabled at group:g1" in (await client.post("/preview/change", data=form)).text
            done = await client.post("/change", data=form | {"message": "from the console"}, follow_redirects=True)
            assert "Done: enable feature_B for group:g1, 1 memberships changed" in done.text

    asyncio.run(operate())
    assert flags.smembers("{flipper}:group:g1:positive") == {"feature_B"}
    [change] = [event["flipper_admin"] for event in function if event["flipper_admin"]["operation"] == "change"]
    assert (change["arguments"]["actor"], change["arguments"]["revision"]) == (MOTO_ARN, 0)
