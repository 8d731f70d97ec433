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
        413: "The request body is too large.",
        422: "A bad value or an unknown field; nothing was changed.",
        503: "The registry is closed.",
    }
    ref = {"$ref": "#/components/schemas/Error"}
    return {str(code): _json(ref, text[code]) for code in (401, 403, *codes, 503)}


_PROVIDER = {
    "type": "object",
    "required": ["name", "handler", "service_type", "priority", "priority_group", "strategy"],
    "properties": {
        "name": {"type": "string"},
        "handler": {"type": "string"},
        "service_type": {"type": "string"},
        "priority": {"type": "string"},
        "priority_group": {"type": "integer"},
        "strategy": {"type": "string"},
        "capabilities": {"type": "array", "items": {"type": "string"}},
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
        "circuit_breaker": {"type": "object"},
    },
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "ciris_actors control plane",
        "version": __version__,
        "description": "Inspect and reconfigure a live ciris_actors registry. Every request"
        " needs `Authorization: Bearer <token>` when the server has a token; without one,"
        " reads are open to loopback clients and changes are refused.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": _ERROR, "Provider": _PROVIDER},
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/runtime/services": {
            "get": {
                "operationId": "listServices",
                "summary": "Every provider: per handler, global, and breaker stats.",
                "parameters": [
                    {
                        "name": "handler",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Only this handler's providers (global ones are"
                        " always listed).",
                    },
                    {
                        "name": "service_type",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Only providers of this service type.",
                    },
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["handlers", "global_services", "circuit_breaker_stats"],
                            "properties": {
                                "handlers": {"type": "object"},
                                "global_services": {"type": "object"},
                                "circuit_breaker_stats": {"type": "object"},
                            },
                        },
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
                        {
                            "type": "object",
                            "required": ["overall_health", "total_services", "service_types"],
                            "properties": {
                                "overall_health": {
                                    "type": "string",
                                    "enum": ["healthy", "degraded", "critical"],
                                },
                                "total_services": {"type": "integer"},
                                "healthy_services": {"type": "integer"},
                                "unhealthy_services": {"type": "integer"},
                                "unknown_services": {"type": "integer"},
                                "required_services": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                },
                                "service_types": {"type": "object"},
                            },
                        },
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
                    {
                        "name": "handler",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    },
                    {
                        "name": "service_type",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    },
                    {
                        "name": "capabilities",
                        "in": "query",
                        "description": "Required capabilities, comma-separated or repeated.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "global",
                        "in": "query",
                        "description": "Fall back to global providers (default true).",
                        "schema": {"type": "string", "enum": ["true", "false"]},
                    },
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["handler", "service_type", "candidates", "chosen"],
                            "properties": {
                                "handler": {"type": "string"},
                                "service_type": {"type": "string"},
                                "required_capabilities": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                },
                                "chosen": {"type": ["string", "null"]},
                                "candidates": {"type": "array", "items": {"type": "object"}},
                                "table": {"type": "string"},
                            },
                        },
                        "Every candidate in walk order with its verdict and reason.",
                    ),
                    **_errors(422),
                },
            }
        },
        "/v1/runtime/services/{name}/priority": {
            "put": {
                "operationId": "updatePriority",
                "summary": "Move a provider: any of priority, priority_group, strategy.",
                "parameters": [_NAME],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "minProperties": 1,
                                "properties": {
                                    "priority": {
                                        "type": "string",
                                        "enum": [p.name for p in Priority],
                                    },
                                    "priority_group": {"type": "integer", "minimum": 0},
                                    "strategy": {
                                        "type": "string",
                                        "enum": [s.name for s in SelectionStrategy],
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Provider"}, "The provider now."),
                    **_errors(404, 413, 422),
                },
            }
        },
        "/v1/runtime/services/circuit-breakers/reset": {
            "post": {
                "operationId": "resetBreakers",
                "summary": "Reset breakers to CLOSED: all, one service type's, or one"
                " provider's (also undoes force-open).",
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "service_type": {"type": "string", "minLength": 1},
                                    "name": {"type": "string", "minLength": 1},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["reset", "names"],
                            "properties": {
                                "reset": {"type": "integer"},
                                "names": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                        "How many breakers were reset, and whose.",
                    ),
                    **_errors(404, 413, 422),
                },
            }
        },
        "/v1/runtime/services/{name}/circuit-breaker/force-open": {
            "post": {
                "operationId": "forceOpen",
                "summary": "Hold a provider's breaker OPEN for `duration` seconds (default:"
                " its recovery timeout).",
                "parameters": [_NAME],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "duration": {"type": "number", "exclusiveMinimum": 0}
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Provider"}, "The provider now."),
                    **_errors(404, 413, 422),
                },
            }
        },
        "/v1/runtime/events": {
            "get": {
                "operationId": "events",
                "summary": "The registry's events as server-sent events (text/event-stream).",
                "parameters": [
                    {
                        "name": "types",
                        "in": "query",
                        "description": "Only these event types, comma-separated"
                        " (EventsDropped is always sent).",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "max_buffer",
                        "in": "query",
                        "description": "Events held for a slow reader before the oldest"
                        " are dropped (default 1000).",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100000},
                    },
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
