"""Where an operator's commands run: on Redis directly, or inside the deployed function.

Both run `flipper.core.operations` by name with JSON arguments, so the CLI and the console behave the same on
either path. Directly, the actor is the OS user and host (or `--actor`); through the function, it is
the caller's ARN from STS (CloudTrail keeps the authoritative record of each invoke).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import json
import socket
from collections.abc import Iterator
from typing import Any, Protocol

from flipper.core import operations
from flipper.core.memberships import FlagError
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.core.writes import Refused
from flipper.operate.admin import EVENT_KEY


class Backend(Protocol):
    actor: str

    async def call(self, operation: str, arguments: dict[str, Any]) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


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
        self.actor = actor or local_actor()
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
    """Invokes the deployed function with admin events, through boto3 with the operator's AWS credentials."""

    def __init__(self, function: str | None = None, stack: str | None = None) -> None:
        import boto3  # only this path needs it

        with _aws_errors("AWS"):
            self._session = boto3.session.Session()
            self.function = function or self._function_of(stack)
            self.actor = self._session.client("sts").get_caller_identity()["Arn"]
            self._lambda = self._session.client("lambda")

    def _function_of(self, stack: str | None) -> str:
        """The stack's `FunctionName` output (template.yaml's Outputs)."""
        described = self._session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        for output in described.get("Outputs", []):
            if output["OutputKey"] == "FunctionName":
                return output["OutputValue"]
        raise FunctionError(f"stack {stack!r} has no FunctionName output; is it Flipper's?")

    async def call(self, operation: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(self._invoke, operation, arguments)

    def _invoke(self, operation: str, arguments: dict[str, Any]) -> dict[str, Any]:
        event = {EVENT_KEY: {"operation": operation, "arguments": arguments}}
        with _aws_errors(f"function {self.function}"):
            response = self._lambda.invoke(FunctionName=self.function, Payload=json.dumps(event).encode())
            payload = response["Payload"].read()
        if response.get("FunctionError"):
            message = json.loads(payload).get("errorMessage", "no message") if payload else "no message"
            raise FunctionError(f"function {self.function} failed: {message}")
        try:
            answer = json.loads(payload)
            error, result = answer.get("error"), answer.get("result")
        except (ValueError, AttributeError):  # not Flipper's admin answer: another function, say
            raise FunctionError(f"function {self.function} answered {payload[:200]!r}, not Flipper's answer") from None
        if error is not None:
            raise (Refused if answer.get("kind") == "refused" else FlagError)(error)
        return result

    async def aclose(self) -> None:
        return None
