"""Operator commands through the function: the cache answers only inside the VPC, and the function is there.

`flipper --function NAME ...` invokes the function directly (IAM's lambda:InvokeFunction is the permission)
with `{"flipper_admin": {"operation": "enable", "arguments": {...}}}`; the function runs the same
`flipper.core.operations` a direct `--redis-url` run does, so every write goes through the audited write path.
API Gateway cannot send such an event: it always wraps an HTTP request in its own envelope.
"""

from __future__ import annotations

import logging
from typing import Any

from flipper.core import operations
from flipper.core.connection import StoreError
from flipper.core.memberships import FlagError
from flipper.core.settings import Settings
from flipper.core.store import Store
from flipper.core.writes import Refused

EVENT_KEY = "flipper_admin"
logger = logging.getLogger("flipper")


def is_admin_event(event: Any) -> bool:
    return isinstance(event, dict) and EVENT_KEY in event


async def run(store: Store, settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    """Answer `{"result": ...}`, or `{"error": ..., "kind": ...}` naming what is wrong; the kind is `invalid`,
    `refused`, `store` or `internal`."""
    request = event[EVENT_KEY]
    if not isinstance(request, dict) or set(request) - {"operation", "arguments"}:
        return _error("invalid", f'{EVENT_KEY} must be an object: {{"operation": name, "arguments": {{...}}}}')
    try:
        return {"result": await operations.run(store, settings, request.get("operation"), request.get("arguments", {}))}
    except Refused as exc:
        return _error("refused", str(exc))
    except FlagError as exc:
        return _error("invalid", str(exc))
    except StoreError as exc:
        return _error("store", f"the flag store failed: {exc}")
    except Exception:  # a bug: the operator gets an answer, the logs get the traceback
        logger.exception("admin operation failed")
        return _error("internal", "internal error; the function's logs have the details")


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": message, "kind": kind}
