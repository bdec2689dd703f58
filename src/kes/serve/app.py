"""The ``kes serve`` application: one Starlette app for the event store's HTTP API, its
SSE subscriptions, the schema registry's Confluent-compatible API, the web event browser
(``/ui``), health checks and the OpenAPI document."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from kes.errors import KesError
from kes.schemas.registry import SchemaRegistry
from kes.serve.access import authorize
from kes.serve.api import EventsApi, json_response
from kes.serve.gateway import Gateway
from kes.serve.openapi import openapi_document
from kes.serve.problems import Problem, from_kes_error, problem_response
from kes.serve.settings import Role, ServeSettings
from kes.serve.ui import ui_routes
from kes.store.kafka.store import KafkaEventStore

if TYPE_CHECKING:
    from kes.shredding.keyring import KeyRing

__all__ = ["create_app"]

log = logging.getLogger("kes.serve")


def create_app(
    store: KafkaEventStore | None,
    settings: ServeSettings | None = None,
    registry: SchemaRegistry | None = None,
    keys: KeyRing | None = None,
) -> Starlette:
    """The ASGI app over ``store`` (None: the schema registry alone) and ``registry``
    (None: no schema routes); ``keys`` decrypts personal fields of the events served.
    The caller owns them and closes them after the app."""
    settings = settings or ServeSettings()
    api = (
        EventsApi(Gateway(store, settings.store_threads, settings.catch_up_threads, keys), settings)
        if store
        else None
    )

    def guard(request: Request, role: Role) -> None:
        authorize(request, settings, role)

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks: dict[str, Any] = {}
        try:
            if api is not None:
                await api.gateway.ping()
                checks["kafka"] = "ok"
            if registry is not None:
                await _in_thread(registry.subjects)
                checks["schemas"] = "ok"
        except KesError as exc:
            return json_response({"status": "unavailable", "error": str(exc), **checks}, 503)
        return json_response({"status": "ready", **checks})

    async def openapi(request: Request) -> Response:
        return json_response(openapi_document(store is not None, registry is not None))

    async def metrics(request: Request) -> Response:
        guard(request, "read")
        # The process's kes metrics (its writer, when it owns partitions), then the
        # gateway's own.
        text = generate_latest(REGISTRY).decode() + (api.metrics() if api else "")
        return PlainTextResponse(text, media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/openapi.json", openapi),
        Route("/metrics", metrics),
    ]
    if api is not None:
        routes += [
            Route("/", lambda r: RedirectResponse("/ui/")),
            Route("/streams", api.types),
            Route("/streams/{type}", api.read_type),
            Route("/streams/{type}/{id}", api.read_stream, methods=["GET"]),
            Route("/streams/{type}/{id}", api.append, methods=["POST"]),
            Route("/streams/{type}/{id}/version", api.stream_version),
            Route("/subscriptions", api.subscribe),
            Route("/subscriptions/{type}", api.subscribe),
            Route("/projections", api.projections),
            Route("/projections/{name}", api.projection),
            Route("/projections/{name}/dead-letters", api.dead_letters),
            Mount("/ui", routes=ui_routes()),
        ]
    if registry is not None:
        from kes.schemas.server import registry_routes

        routes += registry_routes(registry, guard)

    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "PUT", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "If-Match", "Last-Event-ID"],
                expose_headers=["ETag", "Location"],
            )
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if api is not None:
            api.tails.close()

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc, request.url.path)

    async def on_kes_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, KesError)
        return problem_response(from_kes_error(exc), request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        detail = (
            f"{request.method} {request.url.path} is not served here; see /openapi.json."
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return problem_response(
            Problem(
                exc.status_code,
                title,
                detail,
                code="not_found" if exc.status_code == 404 else "http",
            ),
            request.url.path,
        )

    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={Problem: on_problem, KesError: on_kes_error, HTTPException: on_http},
    )


async def _in_thread(fn: Any, *args: Any) -> Any:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(fn, *args)
