"""The OpenAPI 3.1 document of ``kes serve`` (served at ``/openapi.json``), written out
by hand: the API is small and its contract is the documentation."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problems(*statuses: int) -> dict[str, Any]:
    what = {
        400: "a field is missing, malformed or of the wrong type (`field` names it)",
        401: "no token, or an unknown one",
        403: "the token lacks the role",
        404: "no such stream, type or projection",
        409: "the stream is not at the expected version (`actualVersion`)",
        413: "body too large, or too many events in one append",
        415: "the body is not JSON",
        503: "Kafka or the partition's owner is unavailable; retry (`outcome`)",
    }
    return {
        str(s): {
            "description": what[s],
            "content": {"application/problem+json": {"schema": _PROBLEM}},
        }
        for s in statuses
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_TYPE = {"name": "type", "in": "path", "required": True, "schema": {"type": "string"}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_FROM_POSITION = {
    "name": "from",
    "in": "query",
    "schema": {"type": "string"},
    "description": "`start` (default), `end` (subscriptions only) or a position like "
    "`User/0:154,3:88` (an SSE id or a page's `next`).",
}
_EVENT_TYPE = {
    "name": "eventType",
    "in": "query",
    "schema": {"type": "string"},
    "description": "only events of these types (comma-separated, or repeated)",
}


def openapi_document(events: bool = True, schemas: bool = True) -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {"summary": "The process is up", "responses": {"200": {"description": "up"}}}
        },
        "/readyz": {
            "get": {
                "summary": "Kafka (and the registry) answer",
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
            }
        },
    }
    if events:
        paths.update(
            {
                "/streams": {
                    "get": {
                        "summary": "Aggregate types, with partitions and log size (offsets)",
                        "responses": {
                            "200": _json({"type": "array"}, "types"),
                            **_problems(401, 403),
                        },
                    }
                },
                "/streams/{type}": {
                    "get": {
                        "summary": "A page of a type's events from a position",
                        "parameters": [
                            _TYPE,
                            _FROM_POSITION,
                            _EVENT_TYPE,
                            {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                        ],
                        "responses": {
                            "200": _json({"$ref": "#/components/schemas/TypePage"}, "a page"),
                            **_problems(400, 401, 403, 404, 503),
                        },
                    }
                },
                "/streams/{type}/{id}": {
                    "get": {
                        "summary": "A stream's events, from/to a version, paged",
                        "parameters": [
                            _TYPE,
                            _ID,
                            {
                                "name": "from",
                                "in": "query",
                                "schema": {"type": "integer", "minimum": 1},
                            },
                            {"name": "to", "in": "query", "schema": {"type": "integer"}},
                            {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                        ],
                        "responses": {
                            "200": _json(
                                {"$ref": "#/components/schemas/StreamPage"},
                                "events; ETag is the version",
                            ),
                            **_problems(400, 401, 403, 404, 503),
                        },
                    },
                    "post": {
                        "summary": "Append events with optimistic concurrency",
                        "parameters": [
                            _TYPE,
                            _ID,
                            {
                                "name": "If-Match",
                                "in": "header",
                                "schema": {"type": "string"},
                                "description": 'the expected version, as "N"',
                            },
                        ],
                        "requestBody": {
                            "required": True,
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Append"}
                                }
                            },
                        },
                        "responses": {
                            "201": _json({"$ref": "#/components/schemas/Appended"}, "written"),
                            "200": _json(
                                {"$ref": "#/components/schemas/Appended"},
                                "an idempotent retry: these event ids were already stored",
                            ),
                            **_problems(400, 401, 403, 409, 413, 415, 503),
                        },
                    },
                },
                "/streams/{type}/{id}/version": {
                    "get": {
                        "summary": "A stream's current version (0: no events)",
                        "parameters": [_TYPE, _ID],
                        "responses": {
                            "200": _json(
                                {"type": "object", "properties": {"version": {"type": "integer"}}},
                                "version",
                            ),
                            **_problems(400, 401, 403, 503),
                        },
                    }
                },
                "/subscriptions/{type}": {
                    "get": {
                        "summary": "Server-Sent Events of a type: catch up, then live",
                        "parameters": [
                            _TYPE,
                            _FROM_POSITION,
                            _EVENT_TYPE,
                            {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                        ],
                        "responses": {
                            "200": {
                                "description": "id: the position after the event; data: the event",
                                "content": {"text/event-stream": {}},
                            },
                            **_problems(400, 401, 403, 503),
                        },
                    }
                },
                "/subscriptions": {
                    "get": {
                        "summary": "Server-Sent Events of every type existing at connect time",
                        "parameters": [_FROM_POSITION, _EVENT_TYPE],
                        "responses": {
                            "200": {"description": "events", "content": {"text/event-stream": {}}}
                        },
                    }
                },
                "/projections": {
                    "get": {
                        "summary": "Projections seen on the cluster",
                        "responses": {"200": {"description": "names"}},
                    }
                },
                "/projections/{name}": {
                    "get": {
                        "summary": "Positions and lag per partition",
                        "responses": {"200": {"description": "status"}, **_problems(404)},
                    }
                },
                "/projections/{name}/dead-letters": {
                    "get": {
                        "summary": "Parked records",
                        "responses": {"200": {"description": "records"}},
                    }
                },
                "/metrics": {
                    "get": {
                        "summary": "Counters in Prometheus text format",
                        "responses": {"200": {"description": "metrics"}},
                    }
                },
            }
        )
    if schemas:
        paths["/subjects"] = {
            "get": {
                "summary": "Confluent Schema Registry API (also /schemas, /config, "
                "/compatibility; see docs/schemas.md)",
                "responses": {"200": {"description": "subjects"}},
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kes serve",
            "version": "1",
            "description": "The kes event store over HTTP and Server-Sent Events. "
            "Authentication: Bearer token with role read, append or admin (when configured).",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _SCHEMAS,
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


_EVENT = {
    "type": "object",
    "description": "The wire envelope (docs/wire-format.md) plus where it lies",
    "properties": {
        "position": {
            "type": "object",
            "properties": {
                "topic": {"type": "string"},
                "partition": {"type": "integer"},
                "offset": {"type": "integer"},
            },
        },
        "eventId": {"type": "string"},
        "eventType": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "aggregateType": {"type": "string"},
        "aggregateId": {"type": "string"},
        "version": {"type": "integer"},
        "schemaVersion": {"type": "integer"},
        "payload": {"type": "object"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "field": {"type": "string"},
            "actualVersion": {"type": "integer"},
            "outcome": {"enum": ["not_written", "unknown"]},
        },
    },
    "Append": {
        "type": "object",
        "required": ["events"],
        "additionalProperties": False,
        "properties": {
            "expectedVersion": {
                "oneOf": [{"type": "integer", "minimum": 0}, {"const": "any"}],
                "description": "0: the stream must not exist yet",
            },
            "events": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["eventType", "payload"],
                    "additionalProperties": False,
                    "properties": {
                        "eventType": {"type": "string", "minLength": 1},
                        "payload": {"type": "object"},
                        "eventId": {"type": "string", "description": "kept: a retry is a no-op"},
                        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        "schemaVersion": {"type": "integer", "minimum": 1},
                    },
                },
            },
        },
    },
    "Appended": {
        "type": "object",
        "properties": {
            "aggregateType": {"type": "string"},
            "aggregateId": {"type": "string"},
            "version": {"type": "integer"},
            "positions": {"type": "array", "items": {"type": "object"}},
            "written": {"type": "boolean"},
        },
    },
    "Event": _EVENT,
    "StreamPage": {
        "type": "object",
        "properties": {
            "aggregateType": {"type": "string"},
            "aggregateId": {"type": "string"},
            "version": {"type": "integer"},
            "next": {"type": ["string", "null"]},
            "events": {"type": "array", "items": _EVENT},
        },
    },
    "TypePage": {
        "type": "object",
        "properties": {
            "aggregateType": {"type": "string"},
            "next": {"type": "string", "description": "the position after this page"},
            "end": {"type": "boolean"},
            "events": {"type": "array", "items": _EVENT},
        },
    },
}
