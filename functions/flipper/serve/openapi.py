"""The OpenAPI 3.1 document served at /openapi.json: every route, every answer, and the limits in force.

Built from the settings, so the documented limits (identifier length, groups, API keys) are the real ones.
"""

from __future__ import annotations

from typing import Any

from flipper.core import rules
from flipper.core.model import BUCKETS, DEFAULT, SPLIT, STATIC, TARGETING_MATCH
from flipper.core.settings import Settings
from flipper.serve.ofrep import DISABLED, FLAG_NOT_FOUND, GENERAL, INVALID_CONTEXT, PARSE_ERROR

JSON = "application/json"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: str, headers: tuple[str, ...] = ()) -> Schema:
    answer: Schema = {"description": description, "content": {JSON: {"schema": _ref(schema)}}}
    if headers:
        answer["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in headers}
    return answer


def _errors(schema: str, *statuses: int) -> dict[str, Schema]:
    """The error answers of an operation, each in the operation's error shape (Flipper's or OFREP's)."""
    described = {
        400: ("The request is malformed; the body names the problem", ()),
        404: ("The flag is not known: FLAG_NOT_FOUND", ()),
        401: ("API keys are configured and the request has none or a wrong one", ("WWW-Authenticate",)),
        408: ("The body did not arrive within FLIPPER_BODY_TIMEOUT seconds", ()),
        413: ("The body is longer than FLIPPER_MAX_BODY_LENGTH", ()),
        414: ("The query string is longer than FLIPPER_MAX_QUERY_LENGTH", ()),
        500: (
            "The flag store answered with an error, the answer is over FLIPPER_MAX_RESPONSE_BYTES, "
            "or an internal error",
            (),
        ),
        503: ("The flag store is unavailable; retry after Retry-After seconds", ("Retry-After",)),
    }
    return {str(status): _answer(described[status][0], schema, described[status][1]) for status in statuses}


def _conditional(description: str, schema: str) -> dict[str, Schema]:
    return {
        "200": _answer(description, schema, ("ETag", "Cache-Control")),
        "304": {
            "description": "Not modified: the If-None-Match tag is still current; no body",
            "headers": {name: {"$ref": f"#/components/headers/{name}"} for name in ("ETag", "Cache-Control")},
        },
    }


# U+FFFD is refused: decoders put it in place of bytes that are not UTF-8 (docs/http-api.md#names).
_NO_REPLACEMENT_CHARACTER = "^[^\\uFFFD]*$"
_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "schema": {"type": "string"},
    "description": "The ETag of an answer the client holds; a match is answered 304 with no body",
}
_REASONS = {"enum": [STATIC, TARGETING_MATCH, SPLIT, DEFAULT]}
# A flag's value: a boolean for a flag without values, else any JSON a values or variants hash holds.
_VALUE: Schema = {"description": "A boolean, or the typed flag's JSON value: a string, a number, an object or an array"}
_HEADERS: Schema = {
    "ETag": {"description": "A hash of the body", "required": True, "schema": {"type": "string"}},
    "Cache-Control": {"description": "FLIPPER_CACHE_CONTROL", "required": True, "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds", "required": True, "schema": {"type": "integer", "minimum": 1}},
    "WWW-Authenticate": {"required": True, "schema": {"const": "Bearer"}},
}


def _identifier(settings: Settings, kind: str | list[str] = "string") -> Schema:
    """A name of a flag, version, group or user, as `names.check_name` accepts it."""
    return {
        "type": kind,
        "minLength": 1,
        "maxLength": settings.max_id_length,
        "pattern": _NO_REPLACEMENT_CHARACTER,
    }


def _groups(settings: Settings) -> Schema:
    return {"type": "array", "items": _identifier(settings), "maxItems": settings.max_groups}


def _seed_paths(settings: Settings) -> Schema:
    """The seed's API: the caller in the query string."""
    identifier = _identifier(settings)
    context_parameters = [
        {"name": "version", "in": "query", "schema": identifier, "description": "The caller's version"},
        {
            "name": "group",
            "in": "query",
            "style": "form",
            "explode": True,
            "schema": _groups(settings),
            "description": "A group the caller belongs to; repeat for several",
        },
        {"name": "user", "in": "query", "schema": identifier, "description": "The caller's user id"},
        {
            # OpenAPI has no parameter named by a prefix: this one stands for every attr.<name> given.
            "name": "attr.<name>",
            "in": "query",
            "schema": identifier,
            "description": "An attribute for the targeting rules, as text: attr.plan=pro (the numeric"
            f" operators read numeric text as a number). At most {settings.max_attributes} (FLIPPER_MAX_ATTRIBUTES),"
            f" names of 1 to {rules.MAX_TEXT} characters, each once; `now` cannot be sent",
        },
    ]
    errors = _errors("Error", 400, 401, 414, 500, 503)
    return {
        "/": {
            "get": {
                "operationId": "listFeatures",
                "summary": "The features enabled for the caller, sorted",
                "parameters": [*context_parameters, _IF_NONE_MATCH],
                "responses": {**_conditional("The enabled features", "Features"), **errors},
            }
        },
        "/features/{name}": {
            "get": {
                "operationId": "getFeature",
                "summary": "One feature for the caller: enabled, why, and with explain=true which keys decided",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": identifier},
                    *context_parameters,
                    {"name": "explain", "in": "query", "schema": {"type": "boolean", "default": False}},
                    _IF_NONE_MATCH,
                ],
                "responses": {**_conditional("The feature's evaluation", "Feature"), **errors},
            }
        },
    }


def _service_paths() -> Schema:
    """Health and this document: open even when API keys are required."""
    return {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "200 when the flag store answers a PING",
                "security": [],
                "responses": {"200": _answer("The store answers", "Health"), **_errors("Error", 503)},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}}},
            }
        },
    }


def _ofrep_paths(settings: Settings) -> Schema:
    """OFREP's single and bulk evaluations: the caller in a JSON body."""
    request = {"required": True, "content": {JSON: {"schema": _ref("OFREPRequest")}}}
    errors = _errors("OFREPFailure", 400, 401, 408, 413, 500, 503)
    return {
        "/ofrep/v1/evaluate/flags/{key}": {
            "post": {
                "operationId": "evaluateFlag",
                "summary": "OFREP: evaluate one flag for the context",
                "tags": ["OFREP"],
                "parameters": [{"name": "key", "in": "path", "required": True, "schema": _identifier(settings)}],
                "requestBody": request,
                "responses": {
                    "200": _answer("The flag's evaluation", "OFREPEvaluation"),
                    **errors,
                    **_errors("OFREPFailure", 404),
                },
            }
        },
        "/ofrep/v1/evaluate/flags": {
            "post": {
                "operationId": "evaluateFlagsBulk",
                "summary": "OFREP: every flag named in any of the context's keys, on or off, sorted by key",
                "tags": ["OFREP"],
                "parameters": [_IF_NONE_MATCH],
                "requestBody": request,
                "responses": {**_conditional("Every flag's evaluation", "OFREPBulk"), **errors},
            }
        },
    }


def _feature_schema() -> Schema:
    """One feature's evaluation on the seed's API, with what explain=true adds."""
    explained = {"type": "array", "items": {"type": "string"}, "description": "With explain=true"}
    return {
        "type": "object",
        "required": ["feature", "enabled", "reason"],
        "properties": {
            "feature": {"type": "string"},
            "enabled": {"type": "boolean"},
            "reason": _REASONS,
            "enabled_by": explained,
            "disabled_by": explained,
            "rollouts": {
                "type": "array",
                "items": _ref("Rollout"),
                "description": "With explain=true: every rollout of the caller's that names the feature",
            },
            "bucket": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": BUCKETS - 1,
                "description": "With explain=true: the user's bucket for the feature, null without a user;"
                " a rollout takes the user when bucket < 1000 times the percentage",
            },
            "value": {**_VALUE, "description": "With explain=true, for a typed flag: the value served, null when off"},
            "value_from": {
                "type": ["string", "null"],
                "description": "With explain=true, for a typed flag: the values hash (`group:beta:values`) or"
                " `global:variants` the value came from, null when off",
            },
            "variant": {
                "type": ["string", "null"],
                "description": "With explain=true, the variant's name when the variants gave the value",
            },
            "variant_bucket": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": BUCKETS - 1,
                "description": "With explain=true, for a flag with variants: the user's variant bucket, null"
                " without a user; a variant takes the buckets of its range, ranges laid end to end in order",
            },
            "rule": {
                "type": ["integer", "null"],
                "minimum": 1,
                "description": "With explain=true, for a feature with targeting rules: the number (from 1) of"
                " the first rule that matched, null for none",
            },
            "rules": {
                "type": "array",
                "items": _ref("RuleOutcome"),
                "description": "With explain=true, for a feature with targeting rules: each rule and its outcome",
            },
        },
    }


def _rule_outcome_schema() -> Schema:
    """A targeting rule as explain=true reports it: in words, and each condition with its outcome."""
    return {
        "type": "object",
        "required": ["rule", "words", "matched", "conditions"],
        "properties": {
            "rule": {"type": "integer", "minimum": 1},
            "words": {"type": "string", "description": "The rule in words: plan is pro, and country is not US"},
            "matched": {"type": "boolean", "description": "Whether this is the first rule that matched"},
            "conditions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["attribute", "operator", "values", "holds"],
                    "properties": {
                        "attribute": {"type": "string"},
                        "operator": {"enum": list(rules.OPERATORS)},
                        "values": {"type": "array"},
                        "holds": {"type": "boolean"},
                    },
                },
            },
        },
    }


def _seed_schemas() -> Schema:
    return {
        "Features": {
            "type": "object",
            "required": ["features"],
            "properties": {"features": {"type": "array", "items": {"type": "string"}}},
        },
        "Feature": _feature_schema(),
        "RuleOutcome": _rule_outcome_schema(),
        "Rollout": {
            "type": "object",
            "required": ["key", "percentage"],
            "properties": {
                "key": {"type": "string", "description": "The rollout hash, without the key prefix"},
                "percentage": {"type": "number", "minimum": 0, "maximum": 100},
            },
        },
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    }


def _ofrep_schemas(settings: Settings) -> Schema:
    context_field = _identifier(settings, ["string", "null"])
    return {
        "OFREPRequest": {
            "type": "object",
            "properties": {
                "context": {
                    "type": "object",
                    "description": "targetingKey is the user, version the version, group one group or a list;"
                    f" every other field is an attribute for the targeting rules (at most {settings.max_attributes},"
                    " FLIPPER_MAX_ATTRIBUTES; names of 1 to"
                    f" {rules.MAX_TEXT} characters, never `now`; null reads as absent, a boolean matches no operator)",
                    "properties": {
                        "targetingKey": context_field,
                        "version": context_field,
                        "group": {"oneOf": [context_field, _groups(settings)]},
                    },
                    "additionalProperties": {"oneOf": [context_field, {"type": ["number", "boolean"]}]},
                }
            },
        },
        "OFREPEvaluation": {
            "type": "object",
            "required": ["key", "reason", "variant"],
            "description": "A boolean flag: value true or false, variant on or off. A typed flag that is on: its"
            " value, and the variant's name (reason SPLIT) or the entity whose value it is. Off: reason DISABLED"
            " and no value, so the client's code default applies",
            "properties": {
                "key": {"type": "string"},
                "value": _VALUE,
                "reason": {"enum": [*_REASONS["enum"], DISABLED]},
                "variant": {"type": "string"},
                "metadata": {"type": "object"},
            },
        },
        "OFREPBulk": {
            "type": "object",
            "required": ["flags"],
            "properties": {"flags": {"type": "array", "items": _ref("OFREPEvaluation")}},
        },
        "OFREPFailure": {
            "type": "object",
            "required": ["errorCode", "errorDetails"],
            "properties": {
                "key": {"type": "string", "description": "On single evaluations"},
                "errorCode": {"enum": [PARSE_ERROR, INVALID_CONTEXT, GENERAL, FLAG_NOT_FOUND]},
                "errorDetails": {"type": "string"},
            },
        },
    }


def document(settings: Settings, secured: bool) -> Schema:
    """The OpenAPI document for an app built with `settings`; `secured` when it requires API keys."""
    doc: Schema = {
        "openapi": "3.1.0",
        "info": {
            "title": "Flipper",
            "version": "1.0.0",
            "description": "Feature flags from Redis: plain HTTP, and the OpenFeature Remote Evaluation Protocol.",
        },
        "paths": {**_seed_paths(settings), **_service_paths(), **_ofrep_paths(settings)},
        "components": {
            "schemas": {**_seed_schemas(), **_ofrep_schemas(settings)},
            "headers": _HEADERS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
    if secured:
        doc["security"] = [{"bearer": []}, {"apiKey": []}]
    return doc
