"""A Confluent Schema Registry compatible REST API (a subset) over :class:`SchemaRegistry`.

Serves what serializers and ``SchemaRegistryClient`` use::

    GET  /subjects[?deleted]                       POST /subjects/{s}            (lookup)
    GET  /subjects/{s}/versions[?deleted]          POST /subjects/{s}/versions   (register)
    GET  /subjects/{s}/versions/{v|latest}         GET  /subjects/{s}/versions/{v}/schema
    GET  /subjects/{s}/versions/{v}/referencedby
    DELETE /subjects/{s}[?permanent]               DELETE /subjects/{s}/versions/{v}[?permanent]
    GET  /schemas/ids/{id}                         GET  /schemas/ids/{id}/subjects
    GET  /schemas/types
    POST /compatibility/subjects/{s}/versions[/{v|latest}]
    GET|PUT|DELETE /config[/{s}]   (compatibilityLevel and compatibilityPolicy)

Register and lookup bodies may carry ``references``. Errors are Confluent's JSON,
``{"error_code": 40401, "message": "..."}``: 40401 subject not found, 40402 version
not found, 40403 schema not found, 40404 subject soft-deleted, 40405 subject not
soft-deleted, 40406 version soft-deleted, 40407 version not soft-deleted, 40408 no
subject-level config, 40901 incompatible schema (HTTP 409), 42201 invalid schema,
42202 invalid version, 42203 invalid compatibility level or policy, 42206 referenced
by another schema. Not served: modes, contexts, metadata and rule sets.

The standard library's ``ThreadingHTTPServer``: no dependency, fine for a registry's
load (every read is a dict lookup after one watermark query).
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from kes.errors import KesError
from kes.schemas.compatibility import Mode, Policy
from kes.schemas.errors import SchemaError
from kes.schemas.registry import SchemaRegistry

__all__ = ["SchemaRegistryServer"]

log = logging.getLogger("kes.schemas.server")
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class _HttpError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SchemaRegistryServer:
    """Serve ``registry`` over HTTP on ``host:port`` (port 0: any free port)."""

    def __init__(self, registry: SchemaRegistry, host: str = "127.0.0.1", port: int = 8081):
        self.registry = registry
        handler = type("Handler", (_Handler,), {"registry": registry})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SchemaRegistryServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="kes-schemas-http", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> SchemaRegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    registry: SchemaRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self._body() if method in ("POST", "PUT") else {}
            status, payload = self._route(method, parts, query, body)
        except _HttpError as exc:
            status, payload = exc.status, {"error_code": exc.code, "message": str(exc)}
        except SchemaError as exc:
            status, payload = exc.http_status, {"error_code": exc.error_code, "message": str(exc)}
        except KesError as exc:
            status, payload = 500, {"error_code": 50001, "message": str(exc)}
        except Exception as exc:  # never let a request kill the server thread silently
            log.exception("schema registry request %s %s failed", method, self.path)
            status, payload = 500, {"error_code": 50001, "message": f"internal error: {exc!r}"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise _HttpError(400, 400, f"the request body is not JSON: {exc.msg}.") from None
        if not isinstance(body, dict):
            raise _HttpError(400, 400, "the request body must be a JSON object.")
        return body

    def _route(
        self, method: str, p: list[str], query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, Any]:
        n = len(p)
        if n == 0:
            return 200, {}
        flags = {k: query.get(k, "false").lower() == "true" for k in ("deleted", "permanent")}
        if p[0] == "subjects":
            return self._subjects(method, p[1:], flags, body)
        if p[0] == "schemas" and method == "GET":
            return self._schemas(p[1:])
        compat = p[0] == "compatibility" and method == "POST" and n in (4, 5)
        if compat and p[1] == "subjects" and p[3] == "versions":
            schema, kind, refs = _schema_of(body)
            version = p[4] if n == 5 else None
            breaking = self.registry.check(p[2], schema, kind, version, refs)
            result: dict[str, Any] = {"is_compatible": not breaking}
            if query.get("verbose", "false").lower() == "true" or breaking:
                result["messages"] = [str(b) for b in breaking]
            return 200, result
        if p[0] == "config" and n <= 2:
            return self._config(method, p[1] if n == 2 else None, query, body)
        raise _not_served(method, p)

    def _subjects(
        self, method: str, p: list[str], flags: dict[str, bool], body: dict[str, Any]
    ) -> tuple[int, Any]:
        reg, n = self.registry, len(p)
        deleted, permanent = flags["deleted"], flags["permanent"]
        if n == 0 and method == "GET":
            return 200, reg.subjects(deleted)
        name = p[0] if n else ""
        if n == 1 and method == "POST":
            schema, kind, refs = _schema_of(body)
            return 200, reg.lookup(name, schema, kind, refs, deleted).to_json()
        if n == 1 and method == "DELETE":
            return 200, reg.delete_subject(name, permanent)
        if n == 2 and p[1] == "versions":
            if method == "GET":
                return 200, reg.versions(name, deleted)
            if method == "POST":
                schema, kind, refs = _schema_of(body)
                return 200, reg.register(name, schema, kind, refs).to_json()
        if n in (3, 4) and p[1] == "versions":
            if n == 3 and method == "DELETE":
                return 200, reg.delete_version(name, p[2], permanent)
            if method == "GET" and n == 4 and p[3] == "referencedby":
                return 200, reg.referenced_by(name, p[2])
            if method == "GET":
                got = reg.get(name, p[2], deleted)
                if n == 4 and p[3] == "schema":
                    return 200, got.parsed
                if n == 3:
                    return 200, got.to_json()
        raise _not_served(method, ["subjects", *p])

    def _schemas(self, p: list[str]) -> tuple[int, Any]:
        n = len(p)
        if n == 1 and p[0] == "types":
            return 200, ["JSON", "AVRO", "PROTOBUF"]
        if n in (2, 3) and p[0] == "ids":
            if not p[1].isdigit():
                raise _HttpError(404, 40403, f"schema id {p[1]!r} is not a number.")
            found = self.registry.by_id(int(p[1]))
            if n == 3 and p[2] == "subjects":
                return 200, self.registry.subjects_of(found.id)
            if n == 2:
                out = found.to_json()
                return 200, {k: v for k, v in out.items() if k not in ("subject", "version", "id")}
        raise _not_served("GET", ["schemas", *p])

    def _config(
        self, method: str, subject: str | None, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, Any]:
        reg = self.registry
        if method == "GET":
            level, policy = reg.config_override(subject)
            fallback = query.get("defaultToGlobal", "false").lower() == "true"
            if subject is None or fallback:
                level, policy = reg.compatibility(subject), reg.policy(subject)
            elif level is None and policy is None:
                raise _HttpError(
                    404,
                    40408,
                    f"Subject '{subject}' does not have subject-level compatibility "
                    "configured; ask with ?defaultToGlobal=true for the level in force.",
                )
            out: dict[str, Any] = {}
            if level is not None:
                out["compatibilityLevel"] = level.value
            if policy is not None:
                out["compatibilityPolicy"] = policy.value
            return 200, out
        if method == "PUT":
            level_in = body.get("compatibility") or body.get("compatibilityLevel")
            policy_in = body.get("compatibilityPolicy")
            if not level_in and not policy_in:
                raise _HttpError(
                    422,
                    42203,
                    'PUT /config needs {"compatibility": "<LEVEL>"} and/or '
                    '{"compatibilityPolicy": "STRICT|LENIENT"}.',
                )
            reg.configure(
                subject,
                Mode.parse(str(level_in)) if level_in else None,
                Policy.parse(str(policy_in)) if policy_in else None,
            )
            answer: dict[str, Any] = {}
            if level_in:
                answer["compatibility"] = str(level_in).upper()
            if policy_in:
                answer["compatibilityPolicy"] = str(policy_in).upper()
            return 200, answer
        if method == "DELETE":
            level, policy = reg.delete_config(subject)
            return 200, {"compatibilityLevel": level.value, "compatibilityPolicy": policy.value}
        raise _not_served(method, ["config", *([subject] if subject else [])])


def _not_served(method: str, p: list[str]) -> _HttpError:
    return _HttpError(
        HTTPStatus.NOT_FOUND, 404, f"{method} /{'/'.join(p)} is not served by kes schemas."
    )


def _schema_of(body: dict[str, Any]) -> tuple[Any, str, list[Any]]:
    schema = body.get("schema")
    if schema is None:
        raise _HttpError(422, 42201, 'the request needs {"schema": "<schema text>"}.')
    references = body.get("references") or []
    if not isinstance(references, list):
        raise _HttpError(422, 42201, "references must be an array of {name, subject, version}.")
    return schema, str(body.get("schemaType") or "AVRO").upper(), references
