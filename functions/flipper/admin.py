"""Operator writes through the function: the cache answers only inside the VPC, and the function is there.

An operator invokes the function directly (`aws lambda invoke`, which needs lambda:InvokeFunction) with
`{"flipper_admin": ["SADD", "version:v1:positive", "feature_A"]}`. API Gateway cannot send such an
event: it always wraps an HTTP request in its own envelope. Only set commands on flag keys are accepted,
and the deployment's key prefix is added, so an operator writes exactly what the service reads.
"""

from __future__ import annotations

import re
from typing import Any

from .query import InvalidName, check_name
from .settings import Settings
from .store import Store, StoreError, store_errors

EVENT_KEY = "flipper_admin"

# Each command with the number of members it takes: at least one to change a set, none to read one.
_COMMANDS = {"SADD": 1, "SREM": 1, "SMEMBERS": 0}
_FLAG_KEY = re.compile(r"(global|(?P<kind>version|group|user):(?P<name>.+)):(positive|negative)", re.DOTALL)


def is_admin_event(event: Any) -> bool:
    return isinstance(event, dict) and EVENT_KEY in event


async def run(store: Store, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Run the event's command; answer `{"result": ...}`, or `{"error": ...}` naming what is wrong."""
    command = event[EVENT_KEY]
    if not (isinstance(command, list) and len(command) >= 2 and all(isinstance(word, str) for word in command)):
        return {"error": f"{EVENT_KEY} must be a list of strings: [command, key, member...]"}
    if not all(_encodable(word) for word in command):  # JSON's \ud800 decodes to text Redis cannot be sent
        return {"error": f"{EVENT_KEY} holds a string that is not valid UTF-8 (a lone surrogate)"}
    name, key, *members = command
    name = name.upper()
    if name not in _COMMANDS:
        return {"error": f"command {name!r} is not allowed; use one of {', '.join(_COMMANDS)}"}
    flag_key = _FLAG_KEY.fullmatch(key)
    if not flag_key:
        return {"error": f"{key!r} is not a flag key like global:positive or group:<g>:negative"}
    if (len(members) > 0) != bool(_COMMANDS[name]):
        return {"error": f"{name} takes {'at least one member' if _COMMANDS[name] else 'no members'}"}
    if name == "SADD":  # only what the read API can read is written; SREM still removes anything
        try:
            if flag_key["kind"]:
                check_name(f"{flag_key['kind']} name", flag_key["name"], settings)
            for member in members:
                check_name("feature name", member, settings)
        except InvalidName as exc:
            return {"error": exc.detail}
    try:
        with store_errors():  # the store's own mapping: cluster failures and undecodable names are not RedisErrors
            result = await store.client.execute_command(name, store.key_prefix + key, *members)
    except StoreError as exc:
        return {"error": f"the flag store failed: {exc}"}
    return {"result": sorted(result) if name == "SMEMBERS" else result}


def _encodable(word: str) -> bool:
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
