"""The event store over HTTP: appends, reads, and SSE subscriptions; plus the operator
views the web browser shows (aggregate types, projections and their dead letters)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from kes.envelope import RecordedEvent
from kes.errors import InvalidInputError
from kes.serve.access import authorize, read_body
from kes.serve.append import parse_append
from kes.serve.cursor import Cursor, parse_cursor
from kes.serve.gateway import Gateway
from kes.serve.operators import dead_letters, projection_names, projection_status
from kes.serve.problems import Problem, bad_field, from_kes_error
from kes.serve.settings import ServeSettings
from kes.serve.sse import SseStats, Subscription
from kes.serve.tail import Tails, encode_event
from kes.store.base import check_stream, check_type
from kes.tracing import continued

__all__ = ["EventsApi"]

log = logging.getLogger("kes.serve")
_encoder = msgspec.json.Encoder()
JSON = "application/json"


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(doc), status, headers=headers, media_type=JSON)


def _events_json(events: list[RecordedEvent]) -> bytes:
    return b"[" + b",".join(encode_event(e) for e in events) + b"]"


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise bad_field(
            name, f"query parameter {name} must be an integer {low}..{high}, got {raw!r}."
        )
    return int(raw)


def _names(request: Request) -> tuple[str, str]:
    aggregate_type: str = request.path_params["type"]
    aggregate_id: str = request.path_params["id"]
    try:
        check_stream(aggregate_type, aggregate_id)
    except InvalidInputError as exc:
        field = "type" if "aggregate_type" in str(exc) else "id"
        raise bad_field(field, str(exc)) from None
    return aggregate_type, aggregate_id


def _type_name(request: Request) -> str:
    aggregate_type: str = request.path_params["type"]
    try:
        check_type(aggregate_type)
    except InvalidInputError as exc:
        raise bad_field("type", str(exc)) from None
    return aggregate_type


class EventsApi:
    """Handlers bound to one gateway and one set of limits."""

    def __init__(self, gateway: Gateway, settings: ServeSettings) -> None:
        self.gateway = gateway
        self.settings = settings
        self.tails = Tails(gateway, settings.tail_events, settings.tail_bytes)
        self.sse = SseStats()
        self.appends = 0

    # ---- appends ----------------------------------------------------------------------

    async def append(self, request: Request) -> Response:
        authorize(request, self.settings, "append")
        aggregate_type, aggregate_id = _names(request)
        body = await read_body(request, self.settings.max_body_bytes)
        parsed = parse_append(
            body, request.headers.get("if-match"), self.settings.max_events_per_append
        )
        try:
            with continued(request.headers):  # the caller's trace, when it sends one
                result = await self.gateway.append(
                    aggregate_type, aggregate_id, parsed.events, parsed.expected
                )
        except InvalidInputError as exc:
            raise from_kes_error(exc, "events") from None
        self.appends += 1
        first = result.version - len(parsed.events) + 1
        where = f"/streams/{quote(aggregate_type)}/{quote(aggregate_id, safe='')}"
        return json_response(
            {
                "aggregateType": aggregate_type,
                "aggregateId": aggregate_id,
                "version": result.version,
                "positions": [
                    {"topic": p.topic, "partition": p.partition, "offset": p.offset}
                    for p in result.positions
                ],
                "written": result.written,
            },
            201 if result.written else 200,
            {"Location": f"{where}?from={first}", "ETag": f'"{result.version}"'},
        )

    # ---- reads ------------------------------------------------------------------------

    async def read_stream(self, request: Request) -> Response:
        authorize(request, self.settings, "read")
        aggregate_type, aggregate_id = _names(request)
        start = _int_param(request, "from", 1, 1, 2**62)
        assert start is not None
        to = _int_param(request, "to", None, 0, 2**62)
        limit = _int_param(
            request,
            "limit",
            min(100, self.settings.max_page_events),
            1,
            self.settings.max_page_events,
        )
        assert limit is not None
        version = await self.gateway.stream_version(aggregate_type, aggregate_id)
        if version == 0:
            raise Problem(
                404,
                "Stream not found",
                f"{aggregate_type} {aggregate_id!r} has no events.",
                code="not_found",
                version=0,
            )
        last = min(version, to if to is not None else version, start + limit - 1)
        events = (
            await self.gateway.read_stream(aggregate_type, aggregate_id, start, last)
            if last >= start
            else []
        )
        where = f"/streams/{quote(aggregate_type)}/{quote(aggregate_id, safe='')}"
        end = min(version, to) if to is not None else version
        next_url = f"{where}?from={last + 1}&limit={limit}" if last < end else None
        if next_url and to is not None:
            next_url += f"&to={to}"
        head = _encoder.encode(
            {
                "aggregateType": aggregate_type,
                "aggregateId": aggregate_id,
                "version": version,
                "next": next_url,
            }
        )
        body = head[:-1] + b',"events":' + _events_json(events) + b"}"
        return Response(body, media_type=JSON, headers={"ETag": f'"{version}"'})

    async def stream_version(self, request: Request) -> Response:
        authorize(request, self.settings, "read")
        aggregate_type, aggregate_id = _names(request)
        version = await self.gateway.stream_version(aggregate_type, aggregate_id)
        return json_response({"version": version}, headers={"ETag": f'"{version}"'})

    async def read_type(self, request: Request) -> Response:
        """A page of a type's events (every stream), from a position."""
        authorize(request, self.settings, "read")
        aggregate_type = _type_name(request)
        limit = _int_param(
            request,
            "limit",
            min(100, self.settings.max_page_events),
            1,
            self.settings.max_page_events,
        )
        assert limit is not None
        cursor = parse_cursor(request.query_params.get("from", ""), [aggregate_type], "from")
        if await self.gateway.partitions(aggregate_type) is None:
            raise Problem(
                404,
                "No such aggregate type",
                f"no events of type {aggregate_type} exist.",
                code="not_found",
            )
        wanted = _event_types(request)
        keep: Callable[[RecordedEvent], bool] | None = (
            None if wanted is None else (lambda e: e.event_type in wanted)
        )
        events, after, end = await self.gateway.read_page(
            aggregate_type, cursor.of(aggregate_type), limit, keep
        )
        head = _encoder.encode(
            {
                "aggregateType": aggregate_type,
                "next": str(Cursor({aggregate_type: after})),
                "end": end,
            }
        )
        return Response(head[:-1] + b',"events":' + _events_json(events) + b"}", media_type=JSON)

    async def types(self, request: Request) -> Response:
        authorize(request, self.settings, "read")
        return json_response(
            [
                {
                    "aggregateType": t.aggregate_type,
                    "topic": t.topic,
                    "partitions": t.partitions,
                    "offsets": t.offsets,
                }
                for t in await self.gateway.types()
            ]
        )

    # ---- subscriptions ------------------------------------------------------------------

    async def subscribe(self, request: Request) -> Subscription:
        authorize(request, self.settings, "read")
        if "type" in request.path_params:
            types = [_type_name(request)]
        else:
            types = [t.aggregate_type for t in await self.gateway.types()]
        last_id = request.headers.get("last-event-id")
        start = request.query_params.get("from", "start")
        if last_id:
            cursor = parse_cursor(last_id, types, "Last-Event-ID")
        elif start == "start":
            cursor = Cursor({t: {} for t in types})
        elif start == "end":
            cursor = Cursor({t: await self.gateway.end_offsets(t) for t in types})
        else:
            cursor = parse_cursor(start, types, "from")
        for t in types:
            if t not in cursor.types:
                cursor.set(t, {})
        if self.sse.connections >= self.settings.max_sse_connections:
            raise Problem(
                503,
                "Too many subscribers",
                f"this server already streams to {self.sse.connections} subscribers "
                f"(--max-sse-connections {self.settings.max_sse_connections}); retry later "
                "or subscribe through another kes serve.",
                code="too_many_subscribers",
                headers={"Retry-After": "5"},
            )
        self.sse.connections += 1

        def closed() -> None:
            self.sse.connections -= 1

        return Subscription(
            self.gateway,
            self.tails,
            types,
            cursor,
            _event_types(request),
            self.settings,
            self.sse,
            closed,
        )

    # ---- operator views -----------------------------------------------------------------

    async def projections(self, request: Request) -> Response:
        authorize(request, self.settings, "read")
        names = await self.gateway.call(projection_names, self.gateway.config)
        return json_response(names)

    async def projection(self, request: Request) -> Response:
        authorize(request, self.settings, "read")
        name = request.path_params["name"]
        return json_response(await self.gateway.call(projection_status, self.gateway.config, name))

    async def dead_letters(self, request: Request) -> Response:
        authorize(request, self.settings, "read")
        name = request.path_params["name"]
        start = _int_param(request, "from", 0, 0, 2**62)
        limit = _int_param(request, "limit", 100, 1, self.settings.max_page_events)
        assert start is not None and limit is not None
        return json_response(
            await self.gateway.call(dead_letters, self.gateway.config, name, start, limit)
        )

    def metrics(self) -> str:
        lines = [
            "# TYPE kes_serve_sse_connections gauge",
            f"kes_serve_sse_connections {self.sse.connections}",
            "# TYPE kes_serve_sse_cut_off_total counter",
            f"kes_serve_sse_cut_off_total {self.sse.cut_off}",
            "# TYPE kes_serve_sse_events_sent_total counter",
            f"kes_serve_sse_events_sent_total {self.sse.events_sent}",
            "# TYPE kes_serve_appends_total counter",
            f"kes_serve_appends_total {self.appends}",
            "# TYPE kes_serve_tail_events gauge",
            "# TYPE kes_serve_tail_bytes gauge",
        ]
        for name, (users, events, size) in sorted(self.tails.stats().items()):
            lines.append(f'kes_serve_tail_subscribers{{type="{name}"}} {users}')
            lines.append(f'kes_serve_tail_events{{type="{name}"}} {events}')
            lines.append(f'kes_serve_tail_bytes{{type="{name}"}} {size}')
        return "\n".join(lines) + "\n"


def _event_types(request: Request) -> frozenset[str] | None:
    raw = request.query_params.getlist("eventType")
    names = frozenset(n for r in raw for n in r.split(",") if n)
    return names or None
