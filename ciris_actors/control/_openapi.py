"""The control plane's OpenAPI 3.1 document, served at ``/openapi.json``.

Written out by hand rather than generated: it is the contract, and the tests check that
every route of the app is in it (and nothing else), and fuzz the app from it.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import __version__
from .._types import Priority, SelectionStrategy

__all__ = ["openapi_document"]

_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The provider's unique name.",
    "schema": {"type": "string", "minLength": 1},
}

_ERROR = {
    "type": "object",
    "required": ["status", "error", "message"],
    "properties": {
        "status": {"type": "integer"},
        "error": {"type": "string"},
        "message": {"type": "string"},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        401: "Missing or wrong bearer token.",
        403: "The server has no token: changes are refused, and reads are answered only"
        " for loopback clients that name a loopback host.",
        404: "No provider has that name.",
        408: "The request body did not arrive within the request timeout.",
        413: "The request body is too large.",
        422: "A bad value or an unknown field; nothing was changed.",
        503: "The registry is closed, or every connection is busy (Retry-After).",
    }
    ref = {"$ref": "#/components/schemas/Error"}
    return {str(code): _json(ref, text[code]) for code in (401, 403, *codes, 503)}


_STRINGS = {"type": "array", "items": {"type": "string"}}


def _object(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    """A JSON object schema; *required* names its required properties, if any."""
    schema: dict[str, Any] = {"type": "object"}
    if required:
        schema["required"] = list(required)
    schema["properties"] = properties
    return schema


def _query(
    name: str, schema: dict[str, Any], description: str | None = None, *, required: bool = False
) -> dict[str, Any]:
    """A query parameter."""
    parameter: dict[str, Any] = {"name": name, "in": "query"}
    if required:
        parameter["required"] = True
    if description is not None:
        parameter["description"] = description
    parameter["schema"] = schema
    return parameter


def _body(properties: dict[str, Any], *, required: bool, **extra: Any) -> dict[str, Any]:
    """A JSON request body that refuses unknown fields."""
    schema = {"type": "object", "additionalProperties": False, **extra, "properties": properties}
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _provider_changed(*errors: int) -> dict[str, Any]:
    """The responses of a change to one provider: the provider as it is now, or an error."""
    return {
        "200": _json({"$ref": "#/components/schemas/Provider"}, "The provider now."),
        **_errors(*errors),
    }


_PROVIDER = _object(
    {
        "name": {"type": "string"},
        "handler": {"type": "string"},
        "service_type": {"type": "string"},
        "priority": {"type": "string"},
        "priority_group": {"type": "integer"},
        "strategy": {"type": "string"},
        "capabilities": _STRINGS,
        "metadata": {"type": "object"},
        "mock": {"type": "boolean"},
        "circuit_breaker_state": {"type": "string", "enum": ["closed", "open", "half_open"]},
        "failure_count": {"type": "integer"},
        "success_count": {"type": "integer"},
        "health": {"type": "string", "enum": ["healthy", "unhealthy", "unknown"]},
        "health_reason": {"type": "string"},
        "actor_status": {"type": "string"},
        "routable": {"type": "boolean"},
        "available": {"type": "boolean"},
        "restarts": {"type": "integer"},
        "last_error": {"type": ["string", "null"]},
        "disabled": {"type": ["string", "null"]},
        "outcomes": {"type": "object"},
        "weight": {"type": "number", "exclusiveMinimum": 0},
        "max_in_flight": {"type": ["integer", "null"], "minimum": 1},
        "in_flight": {"type": "integer", "minimum": 0},
        "latency": {"type": ["number", "null"]},
        "circuit_breaker": {"type": "object"},
    },
    "name",
    "handler",
    "service_type",
    "priority",
    "priority_group",
    "strategy",
)

_NUMBER_OR_NULL = {"type": ["number", "null"]}

_FLEET = _object(
    {
        "node": {"type": "string"},
        "reachable": {"type": "boolean"},
        "degraded": {"type": "boolean"},
        "degraded_since": _NUMBER_OR_NULL,
        "degraded_for": _NUMBER_OR_NULL,
        "last_sync": _NUMBER_OR_NULL,
        "last_sync_age": _NUMBER_OR_NULL,
        "lag": _NUMBER_OR_NULL,
        "quorum": {"type": "integer", "minimum": 1},
        "quorum_window": {"type": "number"},
        "verdicts_sent": {"type": "integer", "minimum": 0},
        "verdicts_received": {"type": "integer", "minimum": 0},
        "pending": {"type": "integer", "minimum": 0},
        "outages": {"type": "integer", "minimum": 0},
        "malformed": {"type": "integer", "minimum": 0},
    },
    "node",
    "reachable",
    "degraded",
    "degraded_since",
    "degraded_for",
    "last_sync",
    "last_sync_age",
    "lag",
    "quorum",
    "quorum_window",
    "verdicts_sent",
    "verdicts_received",
    "pending",
    "outages",
    "malformed",
)

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "ciris_actors control plane",
        "version": __version__,
        "description": "Inspect and reconfigure a live ciris_actors registry. Every request"
        " needs `Authorization: Bearer <token>` when the server has a token; without one,"
        " reads are answered only for loopback clients that name a loopback host, and"
        " changes are refused.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": _ERROR, "Provider": _PROVIDER, "Fleet": _FLEET},
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/runtime/services": {
            "get": {
                "operationId": "listServices",
                "summary": "Every provider: per handler, global, and breaker stats.",
                "parameters": [
                    _query(
                        "handler",
                        {"type": "string"},
                        "Only this handler's providers (global ones are always listed).",
                    ),
                    _query(
                        "service_type", {"type": "string"}, "Only providers of this service type."
                    ),
                ],
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "handlers": {"type": "object"},
                                "global_services": {"type": "object"},
                                "circuit_breaker_stats": {"type": "object"},
                            },
                            "handlers",
                            "global_services",
                            "circuit_breaker_stats",
                        ),
                        "get_provider_info()",
                    ),
                    **_errors(422),
                },
            }
        },
        "/v1/runtime/services/health": {
            "get": {
                "operationId": "health",
                "summary": "health_status(): overall health and per-type detail.",
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "overall_health": {
                                    "type": "string",
                                    "enum": ["healthy", "degraded", "critical"],
                                },
                                "total_services": {"type": "integer"},
                                "healthy_services": {"type": "integer"},
                                "unhealthy_services": {"type": "integer"},
                                "unknown_services": {"type": "integer"},
                                "required_services": _STRINGS,
                                "service_types": {"type": "object"},
                            },
                            "overall_health",
                            "total_services",
                            "service_types",
                        ),
                        "health_status()",
                    ),
                    **_errors(422),
                },
            }
        },
        "/v1/runtime/services/selection": {
            "get": {
                "operationId": "explainSelection",
                "summary": "The live selection walk for a request: explain().",
                "parameters": [
                    _query("handler", {"type": "string", "minLength": 1}, required=True),
                    _query("service_type", {"type": "string", "minLength": 1}, required=True),
                    _query(
                        "capabilities",
                        {"type": "string"},
                        "Required capabilities, comma-separated or repeated.",
                    ),
                    _query(
                        "global",
                        {"type": "string", "enum": ["true", "false"]},
                        "Fall back to global providers (default true).",
                    ),
                ],
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "handler": {"type": "string"},
                                "service_type": {"type": "string"},
                                "required_capabilities": _STRINGS,
                                "chosen": {"type": ["string", "null"]},
                                "candidates": {"type": "array", "items": {"type": "object"}},
                                "spillover": {"type": "array", "items": {"type": "object"}},
                                "table": {"type": "string"},
                            },
                            "handler",
                            "service_type",
                            "candidates",
                            "chosen",
                        ),
                        "Every candidate in walk order with its verdict and reason.",
                    ),
                    **_errors(422),
                },
            }
        },
        "/v1/runtime/services/{name}/priority": {
            "put": {
                "operationId": "updatePriority",
                "summary": "Move a provider or change its weight or cap: any of priority,"
                " priority_group, strategy, weight, max_in_flight.",
                "parameters": [_NAME],
                "requestBody": _body(
                    {
                        "priority": {"type": "string", "enum": [p.name for p in Priority]},
                        "priority_group": {"type": "integer", "minimum": 0},
                        "strategy": {
                            "type": "string",
                            "enum": [s.name for s in SelectionStrategy],
                        },
                        "weight": {"type": "number", "exclusiveMinimum": 0},
                        "max_in_flight": {"type": ["integer", "null"], "minimum": 1},
                    },
                    required=True,
                    minProperties=1,
                ),
                "responses": _provider_changed(404, 408, 413, 422),
            }
        },
        "/v1/runtime/services/circuit-breakers/reset": {
            "post": {
                "operationId": "resetBreakers",
                "summary": "Reset breakers to CLOSED: all, one service type's, or one"
                " provider's (also undoes force-open).",
                "requestBody": _body(
                    {
                        "service_type": {"type": "string", "minLength": 1},
                        "name": {"type": "string", "minLength": 1},
                    },
                    required=False,
                ),
                "responses": {
                    "200": _json(
                        _object(
                            {"reset": {"type": "integer"}, "names": _STRINGS}, "reset", "names"
                        ),
                        "How many breakers were reset, and whose.",
                    ),
                    **_errors(404, 408, 413, 422),
                },
            }
        },
        "/v1/runtime/services/{name}/circuit-breaker/force-open": {
            "post": {
                "operationId": "forceOpen",
                "summary": "Hold a provider's breaker OPEN for `duration` seconds (default:"
                " its recovery timeout).",
                "parameters": [_NAME],
                "requestBody": _body(
                    {"duration": {"type": "number", "exclusiveMinimum": 0}}, required=False
                ),
                "responses": _provider_changed(404, 408, 413, 422),
            }
        },
        "/v1/runtime/events": {
            "get": {
                "operationId": "events",
                "summary": "The registry's events as server-sent events (text/event-stream).",
                "parameters": [
                    _query(
                        "types",
                        {"type": "string"},
                        "Only these event types, comma-separated (EventsDropped is always sent).",
                    ),
                    _query(
                        "max_buffer",
                        {"type": "integer", "minimum": 1, "maximum": 100000},
                        "Events held for a slow reader before the oldest are dropped"
                        " (default 1000).",
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "An endless stream: `event: <type>`, `data: <JSON>`.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(422),
                },
            }
        },
        "/v1/runtime/fleet": {
            "get": {
                "operationId": "fleet",
                "summary": "This node's link to its fleet store: fleet_status(), or null"
                " when the registry has no fleet.",
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "fleet": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Fleet"},
                                        {"type": "null"},
                                    ]
                                }
                            },
                            "fleet",
                        ),
                        "The fleet link as last seen; `degraded_since` and `last_sync` are"
                        " the registry's clock, `degraded_for` and `last_sync_age` seconds"
                        " before now.",
                    ),
                    **_errors(422),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus exposition of the registry's metrics.",
                "responses": {
                    "200": {
                        "description": "Prometheus text format (or OpenMetrics, if asked).",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(422),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {
                    "200": _json({"type": "object"}, "The OpenAPI document."),
                    **_errors(422),
                },
            }
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the control plane's OpenAPI document."""
    return copy.deepcopy(_DOCUMENT)
