"""A Confluent Schema Registry compatible REST API (a subset) over :class:`SchemaRegistry`.

Serves what serializers and ``SchemaRegistryClient`` use::

    GET  /subjects                                 POST /subjects/{s}            (lookup)
    GET  /subjects/{s}/versions                    POST /subjects/{s}/versions   (register)
    GET  /subjects/{s}/versions/{v|latest}         GET  /subjects/{s}/versions/{v}/schema
    GET  /schemas/ids/{id}                         GET  /schemas/ids/{id}/subjects
    GET  /schemas/types
    POST /compatibility/subjects/{s}/versions[/{v|latest}]
    GET|PUT /config        GET|PUT|DELETE /config/{s}

Errors are Confluent's JSON, ``{"error_code": 40401, "message": "..."}``: 40401 subject
not found, 40402 version not found, 40403 schema not found, 409 incompatible schema,
42201 invalid schema, 42202 invalid version, 42203 invalid compatibility level, 40408
subject has no compatibility level of its own. Not served: deletes of subjects and
versions, modes, contexts, schema references, metadata and rule sets.

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
from kes.schemas.compatibility import Mode
from kes.schemas.errors import IncompatibleSchemaError, SchemaError
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
        except IncompatibleSchemaError as exc:
            status = 409
            payload = {"error_code": 409, "message": str(exc)}
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
        reg = self.registry
        n = len(p)
        if n == 0:
            return 200, {}
        head = p[0]
        if head == "subjects":
            if n == 1 and method == "GET":
                return 200, reg.subjects()
            name = p[1] if n > 1 else ""
            if n == 2 and method == "POST":
                schema, kind = _schema_of(body)
                return 200, reg.lookup(name, schema, kind).to_json()
            if n == 3 and p[2] == "versions":
                if method == "GET":
                    return 200, reg.versions(name)
                if method == "POST":
                    schema, kind = _schema_of(body)
                    got = reg.register(name, schema, kind)
                    return 200, got.to_json()
            if n in (4, 5) and p[2] == "versions" and method == "GET":
                got = reg.get(name, p[3])
                if n == 5 and p[4] == "schema":
                    return 200, got.parsed
                if n == 4:
                    return 200, got.to_json()
        elif head == "schemas" and method == "GET":
            if n == 2 and p[1] == "types":
                return 200, ["JSON", "AVRO", "PROTOBUF"]
            if n in (3, 4) and p[1] == "ids":
                if not p[2].isdigit():
                    raise _HttpError(404, 40403, f"schema id {p[2]!r} is not a number.")
                sid = int(p[2])
                kind, text = reg.by_id(sid)
                if n == 4 and p[3] == "subjects":
                    return 200, reg.subjects_of(sid)
                if n == 3:
                    out: dict[str, Any] = {"schema": text}
                    if kind != "AVRO":
                        out["schemaType"] = kind
                    return 200, out
        elif head == "compatibility" and method == "POST" and n in (4, 5):
            if p[1] == "subjects" and p[3] == "versions":
                schema, kind = _schema_of(body)
                version = p[4] if n == 5 else None
                breaking = reg.check(p[2], schema, kind, version)
                result: dict[str, Any] = {"is_compatible": not breaking}
                if query.get("verbose", "false").lower() == "true" or breaking:
                    result["messages"] = [str(b) for b in breaking]
                return 200, result
        elif head == "config":
            subject = p[1] if n == 2 else None
            if n <= 2 and method == "GET":
                if subject is None:
                    return 200, {"compatibilityLevel": reg.compatibility().value}
                own = reg.compatibility_override(subject)
                if own is None:
                    if query.get("defaultToGlobal", "false").lower() == "true":
                        return 200, {"compatibilityLevel": reg.compatibility(subject).value}
                    raise _HttpError(
                        404,
                        40408,
                        f"Subject '{subject}' does not have subject-level compatibility "
                        "configured; ask with ?defaultToGlobal=true for the level in force.",
                    )
                return 200, {"compatibilityLevel": own.value}
            if n <= 2 and method == "PUT":
                level = body.get("compatibility") or body.get("compatibilityLevel")
                if not level:
                    raise _HttpError(422, 42203, 'PUT /config needs {"compatibility": "<LEVEL>"}.')
                mode = reg.set_compatibility(Mode.parse(str(level)), subject)
                return 200, {"compatibility": mode.value}
            if n == 2 and method == "DELETE" and subject is not None:
                previous = reg.delete_compatibility(subject)
                return 200, {"compatibilityLevel": previous.value}
        raise _HttpError(
            HTTPStatus.NOT_FOUND, 404, f"{method} /{'/'.join(p)} is not served by kes schemas."
        )


def _schema_of(body: dict[str, Any]) -> tuple[Any, str]:
    schema = body.get("schema")
    if schema is None:
        raise _HttpError(422, 42201, 'the request needs {"schema": "<schema text>"}.')
    if body.get("references"):
        raise _HttpError(
            422, 42201, "schema references are not supported by kes schemas; inline them."
        )
    return schema, str(body.get("schemaType") or "AVRO").upper()
