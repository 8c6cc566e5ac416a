"""Lambda invocations for tests: the `sam local generate-event` fixtures in tests/events/, aimed at a request.

`make events` regenerates the fixtures; these helpers only set the path and query, the way API Gateway
(REST: decoded values, one list per name) or the 2.0 payload format (the raw query string) delivers them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

EVENTS = Path(__file__).with_name("events")
# REST API (payload 1.0), HTTP API (payload 2.0), and Function URL (2.0, its own domain and IAM authorizer).
KINDS = ("rest-api", "http-api", "function-url")


@cache
def _fixture(kind: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{kind}.json").read_text(encoding="utf-8"))


def request_event(
    kind: str, path: str = "/", query: list[tuple[str, str]] | None = None, json_body: Any = None
) -> dict[str, Any]:
    """The `kind` fixture as a GET of `path` with `query`, each pair as the caller sent it; a POST of `json_body`."""
    event = copy.deepcopy(_fixture(kind))
    method = "GET" if json_body is None else "POST"
    event["body"] = None if json_body is None else json.dumps(json_body)
    event["isBase64Encoded"] = False
    query = query or []
    multi: dict[str, list[str]] = {}
    for name, value in query:
        multi.setdefault(name, []).append(value)
    if kind == "rest-api":
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
        event["path"] = path
        event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
        event["multiValueQueryStringParameters"] = multi or None
        event["queryStringParameters"] = {name: values[-1] for name, values in multi.items()} or None
    else:
        event["requestContext"]["http"]["method"] = method
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["rawQueryString"] = urlencode(query, quote_via=quote)
        event["queryStringParameters"] = {name: ",".join(values) for name, values in multi.items()}
        if not multi:
            del event["queryStringParameters"]
    return event


def request_id(event: dict[str, Any]) -> str:
    return event["requestContext"]["requestId"]


@dataclasses.dataclass
class LambdaContext:
    """The attributes of the Lambda context object that powertools and Mangum read."""

    function_name: str = "flipper-test-flipper"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:flipper-test-flipper"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/flipper-test-flipper"
    log_stream_name: str = "2026/01/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 5000
