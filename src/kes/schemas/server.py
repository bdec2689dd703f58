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

:class:`RegistryApi` answers a request with no HTTP in it; :func:`registry_routes` puts it
on Starlette, as ``kes serve`` does next to the event store's API (same port, same tokens);
:class:`SchemaRegistryServer` (``kes schemas serve``) runs those routes alone under uvicorn.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kes.errors import KesError
from kes.schemas.compatibility import Mode, Policy
from kes.schemas.errors import SchemaError
from kes.schemas.registry import SchemaRegistry

__all__ = ["RegistryApi", "SchemaRegistryServer", "registry_routes"]

log = logging.getLogger("kes.schemas.server")
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
PREFIXES = ("subjects", "schemas", "compatibility", "config")
MAX_BODY_BYTES = 4 * 1024 * 1024

Guard = Callable[[Request, Any], None]  # (request, role): raises to refuse


class _HttpError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RegistryApi:
    """The REST API's answers, as (status, JSON document), with no HTTP in it. Blocking:
    a registry read may first catch up with its topic."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry

    def handle(
        self, method: str, path: str, query: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any]:
        """Answer one request; every failure becomes Confluent's error JSON."""
        parts = [unquote(p) for p in path.split("/") if p]
        try:
            body = _body(raw_body) if method in ("POST", "PUT") else {}
            return self._route(method, parts, query, body)
        except _HttpError as exc:
            return exc.status, {"error_code": exc.code, "message": str(exc)}
        except SchemaError as exc:
            return exc.http_status, {"error_code": exc.error_code, "message": str(exc)}
        except KesError as exc:
            return 500, {"error_code": 50001, "message": str(exc)}
        except Exception as exc:  # one request's bug never takes the server down
            log.exception("schema registry request %s %s failed", method, path)
            return 500, {"error_code": 50001, "message": f"internal error: {exc!r}"}

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


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _HttpError(400, 400, f"the request body is not JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise _HttpError(400, 400, "the request body must be a JSON object.")
    return body


def registry_routes(registry: SchemaRegistry, guard: Guard) -> list[BaseRoute]:
    """The REST API as Starlette routes at ``/subjects``, ``/schemas``, ``/compatibility``
    and ``/config``. ``guard(request, role)`` authorises: ``"read"`` for GET, ``"admin"``
    for what changes the registry; it raises to refuse."""
    api = RegistryApi(registry)

    async def endpoint(request: Request) -> Response:
        guard(request, "read" if request.method == "GET" else "admin")
        raw = b""
        if request.method in ("POST", "PUT"):
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                return _confluent(413, {"error_code": 413, "message": "the body is too large."})
            raw = await request.body()
            if len(raw) > MAX_BODY_BYTES:
                return _confluent(413, {"error_code": 413, "message": "the body is too large."})
        query = dict(request.query_params)
        status, doc = await anyio.to_thread.run_sync(
            api.handle, request.method, request.url.path, query, raw
        )
        return _confluent(status, doc)

    methods = ["GET", "POST", "PUT", "DELETE"]
    routes: list[BaseRoute] = []
    for prefix in PREFIXES:
        routes.append(Route(f"/{prefix}", endpoint, methods=methods))
        routes.append(Route(f"/{prefix}/{{rest:path}}", endpoint, methods=methods))
    return routes


def _confluent(status: int, doc: Any) -> Response:
    return Response(json.dumps(doc).encode(), status, media_type=CONTENT_TYPE)


class SchemaRegistryServer:
    """Serve ``registry`` alone over HTTP on ``host:port`` (port 0: any free port), with
    uvicorn on a background thread; ``kes serve`` serves the same API next to the event
    store's."""

    def __init__(
        self,
        registry: SchemaRegistry,
        host: str = "127.0.0.1",
        port: int = 8081,
        tokens: Any = (),
    ) -> None:
        import socket

        from kes.serve.app import create_app
        from kes.serve.settings import ServeSettings

        self.registry = registry
        settings = ServeSettings(tokens=tuple(tokens))
        settings.check_listen(host)
        self.app = create_app(None, settings, registry=registry)
        self._socket = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM
        )
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._host = host
        self._port = self._socket.getsockname()[1]
        self._thread: threading.Thread | None = None
        self._server: Any = None

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    def _make_server(self) -> Any:
        import uvicorn

        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", http="h11")
        self._server = uvicorn.Server(config)
        return self._server

    def start(self) -> SchemaRegistryServer:
        """Serve in a background thread; returns once it accepts connections."""
        server = self._make_server()
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [self._socket]},
            name="kes-schemas-http",
            daemon=True,
        )
        self._thread.start()
        for _ in range(200):
            if server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.05)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C)."""
        self._make_server().run(sockets=[self._socket])

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._socket.close()

    def __enter__(self) -> SchemaRegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
