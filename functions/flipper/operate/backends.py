"""Where an operator's commands run: on Redis directly, or inside the deployed function.

Both run `flipper.core.operations` by name with JSON arguments, so the CLI and the console behave the same on
either path. Directly, nothing proves who runs the command: the OS user and host (or `--actor`) are recorded
as claimed, beside the actor DIRECT. Through the function, the command
sends the caller's ARN from STS; the function records it as the actor only when the request came signed
through the stack's operator Function URL, and as claimed on a raw invoke (docs/operate.md, "Who made a change").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, Protocol
from urllib.parse import urlsplit

from flipper.core import operations
from flipper.core.memberships import FlagError
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.core.writes import Refused
from flipper.operate.admin import EVENT_KEY, OPERATOR_PATH, UNVERIFIED_SUFFIX


class Backend(Protocol):
    actor: str  # what the audit records as the actor, or what the function is told (it decides)
    claimed_by: str | None  # who the operator says they are, where nothing proves it

    async def call(self, operation: str, arguments: dict[str, Any]) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


def audit_arguments(backend: Backend) -> dict[str, str]:
    """The `actor` (and `claimed_by`) a write operation is given on `backend`."""
    return {"actor": backend.actor, **({"claimed_by": backend.claimed_by} if backend.claimed_by else {})}


# Directly on Redis nothing proves who runs a command: anyone holding its credentials can write any entry.
DIRECT = f"redis {UNVERIFIED_SUFFIX}"


def local_actor() -> str:
    """`user@host`: who is at this terminal, as well as the machine can tell."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


# An operator can wait longer than a caller: a large apply's snapshot and write may take a while on a busy Redis.
OPERATOR_COMMAND_TIMEOUT = 10.0


class RedisBackend:
    """Runs operations on Redis at `settings.redis_url`, with the server's key prefix and cluster setting."""

    def __init__(self, settings: Settings, actor: str | None = None) -> None:
        timeout = max(settings.command_timeout, OPERATOR_COMMAND_TIMEOUT)
        self.settings = dataclasses.replace(settings, command_timeout=timeout)
        self.actor, self.claimed_by = DIRECT, actor or local_actor()
        self._store: Store | None = None

    async def call(self, operation: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if self._store is None:  # created on the running loop: redis.asyncio clients belong to one loop
            self._store = Store.from_settings(self.settings)
        return await operations.run(self._store, self.settings, operation, arguments)

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.aclose()


class FunctionError(Exception):
    """The function could not be invoked, or failed without answering."""


@contextlib.contextmanager
def _aws_errors(what: str) -> Iterator[None]:
    """botocore's failures (no credentials, access denied, no such function) as one FunctionError line."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise FunctionError(f"{what} could not be reached: {exc}") from None


class FunctionBackend:
    """Runs admin commands in the deployed function with the operator's AWS credentials: through the stack's
    operator Function URL, signed with SigV4, when `stack` has one (the audit then records the caller Lambda
    authenticated); otherwise by invoking the function (the audit records the caller as claimed only)."""

    def __init__(self, function: str | None = None, stack: str | None = None) -> None:
        import boto3  # only this path needs it

        with _aws_errors("AWS"):
            self._session = boto3.session.Session()
            outputs = self._outputs(stack) if stack else {}
            if not function and "FunctionName" not in outputs:
                raise FunctionError(f"stack {stack!r} has no FunctionName output; is it Flipper's?")
            self.function = function or outputs["FunctionName"]
            self.url = None if function else outputs.get("OperatorUrl")
            # Sent as the actor; the function records it as such only when Lambda authenticated it (the URL).
            self.actor, self.claimed_by = self._session.client("sts").get_caller_identity()["Arn"], None
            self._lambda = self._session.client("lambda")

    def _outputs(self, stack: str) -> dict[str, str]:
        """The stack's outputs (template.yaml's Outputs)."""
        described = self._session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        return {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}

    async def call(self, operation: str, arguments: dict[str, Any]) -> dict[str, Any]:
        request = {"operation": operation, "arguments": arguments}
        answer = await (
            asyncio.to_thread(self._post, self.url, request) if self.url else asyncio.to_thread(self._invoke, request)
        )
        try:
            error, result = answer.get("error"), answer.get("result")
        except AttributeError:  # not Flipper's admin answer: another function, say
            raise FunctionError(f"function {self.function} answered {answer!r:.200}, not Flipper's answer") from None
        if error is not None:
            raise (Refused if answer.get("kind") == "refused" else FlagError)(error)
        return result

    def _invoke(self, request: dict[str, Any]) -> Any:
        with _aws_errors(f"function {self.function}"):
            response = self._lambda.invoke(
                FunctionName=self.function, Payload=json.dumps({EVENT_KEY: request}).encode()
            )
            payload = response["Payload"].read()
        if response.get("FunctionError"):
            message = json.loads(payload).get("errorMessage", "no message") if payload else "no message"
            raise FunctionError(f"function {self.function} failed: {message}")
        return self._decoded(payload)

    def _post(self, operator_url: str, request: dict[str, Any]) -> Any:
        """POST the request to the operator URL, signed for service `lambda` in the URL's region
        (`<id>.lambda-url.<region>.on.aws`); Lambda checks the signature before the function runs."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        url = operator_url.rstrip("/") + OPERATOR_PATH
        signed = AWSRequest(
            "POST", url, data=json.dumps(request).encode(), headers={"Content-Type": "application/json"}
        )
        with _aws_errors("AWS"):
            credentials = self._session.get_credentials()
            if credentials is None:
                raise FunctionError("no AWS credentials to sign the operator URL's request with")
            SigV4Auth(credentials.get_frozen_credentials(), "lambda", urlsplit(url).hostname.split(".")[2]).add_auth(
                signed
            )
        sent = urllib.request.Request(url, data=signed.body, headers=dict(signed.headers), method="POST")
        try:
            with urllib.request.urlopen(sent, timeout=OPERATOR_COMMAND_TIMEOUT + 20) as response:
                return self._decoded(response.read())
        except urllib.error.HTTPError as exc:  # the function's own refusals are JSON answers too; Lambda's are not
            payload = exc.read()
            answer = self._decoded(payload) if exc.headers.get_content_type() == "application/json" else None
            if not isinstance(answer, dict) or "error" not in answer:
                raise FunctionError(f"operator URL {operator_url} answered {exc.code}: {payload[:200]!r}") from None
            return answer
        except OSError as exc:
            raise FunctionError(f"operator URL {operator_url} could not be reached: {exc}") from None

    def _decoded(self, payload: bytes) -> Any:
        try:
            return json.loads(payload)
        except ValueError:
            raise FunctionError(f"function {self.function} answered {payload[:200]!r}, not Flipper's answer") from None

    async def aclose(self) -> None:
        return None
