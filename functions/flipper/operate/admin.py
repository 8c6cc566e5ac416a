"""Operator commands through the function: the cache answers only inside the VPC, and the function is there.

Two ways in, and they prove different things about who is calling (docs/operate.md, "Who made a change"):

- The operator Function URL (`POST /admin` on the alias `operator`, AuthType AWS_IAM): Lambda verified the
  request's SigV4 signature and puts the signer's ARN in `requestContext.authorizer.iam.userArn`. That ARN
  is recorded as the actor.
- A raw invoke (`lambda:InvokeFunction`) with `{"flipper_admin": {"operation": ..., "arguments": {...}}}`:
  Lambda tells the function nothing about an IAM caller, so the payload's actor is only a claim. It is
  recorded as `claimed_by`, and the actor is what is proven: `UNVERIFIED`.

Both run the same `flipper.core.operations` a direct `--redis-url` run does, so every write goes through
the audited write path. API Gateway cannot send either: it wraps every request in its own envelope, and it
invokes the alias `live`, never `operator`.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from flipper.core import operations
from flipper.core.memberships import FlagError
from flipper.core.settings import Settings
from flipper.core.store import Store, StoreError
from flipper.core.writes import Refused

EVENT_KEY = "flipper_admin"
# The alias the operator Function URL invokes (template.yaml's OperatorAlias). Only that URL may invoke it:
# the template's OperatorPolicy grants lambda:InvokeFunction on it only with lambda:InvokedViaFunctionUrl.
OPERATOR_ALIAS = "operator"
OPERATOR_PATH = "/admin"
# The actor of a raw invoke: all the function knows is that someone allowed to invoke it did.
UNVERIFIED_SUFFIX = "(caller unverified)"  # how every actor that proves no caller ends (text.who reads it)
UNVERIFIED = f"lambda:InvokeFunction {UNVERIFIED_SUFFIX}"
logger = logging.getLogger("flipper")
STATUS = {"invalid": 400, "refused": 409, "store": 503, "internal": 500}


def is_admin_event(event: Any) -> bool:
    return isinstance(event, dict) and EVENT_KEY in event


def is_operator_invocation(invoked_function_arn: str) -> bool:
    """Whether Lambda invoked the alias `operator` (`arn:aws:lambda:region:account:function:name:operator`)."""
    parts = invoked_function_arn.split(":")
    return len(parts) == 8 and parts[7] == OPERATOR_ALIAS


async def run(store: Store, settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    """A raw invoke's admin event: `{"result": ...}`, or `{"error": ..., "kind": ...}` naming what is wrong;
    the kind is `invalid`, `refused`, `store` or `internal`. Its actor is recorded as claimed."""
    return await _answer(store, settings, event[EVENT_KEY], UNVERIFIED)


async def serve(store: Store, settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    """A Function URL request on the alias `operator`: the same answer as `run`, as an HTTP response, with the
    caller Lambda authenticated as the actor."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    caller = _iam_caller(context)
    if caller is None:  # not a request through the AWS_IAM Function URL: nothing says who sent it
        return _response(403, _error("forbidden", "only IAM-signed requests through the operator URL"))
    http = context.get("http", {})
    if http.get("path") != OPERATOR_PATH:
        return _response(404, _error("invalid", f"the operator URL answers POST {OPERATOR_PATH} only"))
    if http.get("method") != "POST":
        return _response(405, _error("invalid", f"the operator URL answers POST {OPERATOR_PATH} only"))
    try:
        raw = event.get("body") or ""
        request = json.loads(base64.b64decode(raw) if event.get("isBase64Encoded") else raw)
    except ValueError:
        return _response(400, _error("invalid", "the body must be JSON"))
    answer = await _answer(store, settings, request, caller)
    return _response(STATUS.get(answer.get("kind", ""), 200), answer)


def _iam_caller(context: Any) -> str | None:
    """The ARN Lambda authenticated, from the Function URL's IAM authorizer; None when there is none."""
    authorizer = context.get("authorizer") if isinstance(context, dict) else None
    iam = authorizer.get("iam") if isinstance(authorizer, dict) else None
    arn = iam.get("userArn") if isinstance(iam, dict) else None
    return arn if isinstance(arn, str) and arn else None


async def _answer(store: Store, settings: Settings, request: Any, actor: str) -> dict[str, Any]:
    if not isinstance(request, dict) or set(request) - {"operation", "arguments"}:
        return _error("invalid", f'{EVENT_KEY} must be an object: {{"operation": name, "arguments": {{...}}}}')
    arguments = request.get("arguments", {})
    if isinstance(arguments, dict) and "actor" in arguments:
        arguments = _as(actor, arguments)
    try:
        return {"result": await operations.run(store, settings, request.get("operation"), arguments)}
    except Refused as exc:
        return _error("refused", str(exc))
    except FlagError as exc:
        return _error("invalid", str(exc))
    except StoreError as exc:
        return _error("store", f"the flag store failed: {exc}")
    except Exception:  # a bug: the operator gets an answer, the logs get the traceback
        logger.exception("admin operation failed")
        return _error("internal", "internal error; the function's logs have the details")


def _as(actor: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments with `actor` as the proven actor; the caller's own actor, when it says something else, is
    kept as `claimed_by`. A caller's `claimed_by` is never taken as given either."""
    claim = arguments["actor"]
    return {**arguments, "actor": actor, "claimed_by": None if claim == actor else claim}


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": message, "kind": kind}


def _response(status: int, answer: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(answer)}
