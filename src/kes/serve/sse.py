"""Server-Sent Events: catch up from a position, then follow live, resumable exactly.

Each event is sent as::

    id: User/0:154,3:88
    data: {"position": {...}, "eventId": ..., "eventType": ..., ...}

The ``id`` is the subscriber's whole position after that event (:mod:`kes.serve.cursor`),
so ``Last-Event-ID`` resumes right after it. A subscriber's memory on the server is one
write (``sse_chunk_bytes``) plus the transport's buffer; a subscriber whose write stays
blocked for ``sse_send_timeout_s`` (it stopped reading) is cut off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import msgspec
from starlette.types import Message, Receive, Scope, Send

from kes.errors import KesError
from kes.serve.cursor import Cursor
from kes.serve.gateway import Gateway
from kes.serve.problems import Problem, from_kes_error
from kes.serve.settings import ServeSettings
from kes.serve.tail import Entry, Tail, Tails, to_entry

__all__ = ["ClientTooSlowError", "SseStats", "Subscription"]

log = logging.getLogger("kes.serve")


class ClientTooSlowError(Exception):
    """A subscriber did not take a write within the send timeout."""


@dataclass
class SseStats:
    connections: int = 0
    cut_off: int = 0
    events_sent: int = 0


class Emitter:
    """Writes events to one subscriber, keeping its cursor; one write at a time."""

    def __init__(
        self,
        send: Send,
        cursor: Cursor,
        event_types: frozenset[str] | None,
        settings: ServeSettings,
        stats: SseStats,
    ) -> None:
        self._send = send
        self.cursor = cursor
        self.event_types = event_types
        self.settings = settings
        self.stats = stats
        self._lock = anyio.Lock()

    async def write(self, body: bytes) -> None:
        with anyio.move_on_after(self.settings.sse_send_timeout_s) as scope:
            await self._send({"type": "http.response.body", "body": body, "more_body": True})
        if scope.cancelled_caught:
            raise ClientTooSlowError()

    async def emit(self, aggregate_type: str, entries: list[Entry]) -> None:
        """Send the entries past the cursor (each with the cursor after it as its id)."""
        async with self._lock:
            parts: list[bytes] = []
            cursor = self.cursor
            wanted = self.event_types
            for entry in entries:
                if entry.offset < cursor.next_offset(aggregate_type, entry.partition):
                    continue  # delivered before (a catch-up and the tail overlap)
                cursor.advance(aggregate_type, entry.partition, entry.offset)
                if wanted is not None and entry.event_type not in wanted:
                    continue
                parts.append(b"id: " + str(cursor).encode() + b"\n" + entry.data)
            if parts:
                await self.write(b"".join(parts))
                self.stats.events_sent += len(parts)

    async def heartbeat(self) -> None:
        async with self._lock:
            await self.write(b": keep-alive\n\n")


class Subscription:
    """An ASGI response that streams the events of ``types`` from ``cursor`` on."""

    def __init__(
        self,
        gateway: Gateway,
        tails: Tails,
        types: list[str],
        cursor: Cursor,
        event_types: frozenset[str] | None,
        settings: ServeSettings,
        stats: SseStats,
        on_close: Callable[[], None],
    ) -> None:
        self.gateway = gateway
        self.tails = tails
        self.types = types
        self.cursor = cursor
        self.event_types = event_types
        self.settings = settings
        self.stats = stats
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._stream(receive, send)
        finally:
            self.on_close()

    async def _stream(self, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        emitter = Emitter(send, self.cursor, self.event_types, self.settings, self.stats)
        # The position it starts from, as an id: a client that reconnects before any
        # event arrives resumes from here (and a test can see the start).
        await emitter.write(b"retry: 2000\nid: " + str(self.cursor).encode() + b"\n\n")
        failure: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:

                async def until_disconnect() -> None:
                    message: Message = {"type": ""}
                    while message["type"] != "http.disconnect":
                        message = await receive()
                    tg.cancel_scope.cancel()

                tg.start_soon(until_disconnect)
                for aggregate_type in self.types:
                    tg.start_soon(self._follow, aggregate_type, emitter)
        except BaseExceptionGroup as group:
            failure = _first(group)
            if not isinstance(failure, ClientTooSlowError | KesError | Problem):
                raise
        if isinstance(failure, ClientTooSlowError):
            self.stats.cut_off += 1
            log.warning(
                "SSE subscriber cut off: a write of events of %s stayed blocked for %.0fs "
                "(it stopped reading); it can resume with its Last-Event-ID.",
                ",".join(self.types),
                self.settings.sse_send_timeout_s,
            )
            return  # the transport is closed: the response is left incomplete
        if isinstance(failure, KesError):
            await self._send_error(emitter, from_kes_error(failure))
        elif isinstance(failure, Problem):
            await self._send_error(emitter, failure)
        with anyio.move_on_after(1):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_error(self, emitter: Emitter, problem: Problem) -> None:
        """An ``event: error`` with the problem details, then the end of the stream."""
        data = msgspec.json.encode(problem.body())
        with anyio.move_on_after(1):
            await emitter.write(b"event: error\ndata: " + data + b"\n\n")

    async def _follow(self, aggregate_type: str, emitter: Emitter) -> None:
        tail = await self.tails.acquire(aggregate_type)
        try:
            await self._follow_tail(aggregate_type, tail, emitter)
        finally:
            self.tails.release(tail)

    async def _follow_tail(self, aggregate_type: str, tail: Tail, emitter: Emitter) -> None:
        cursor = emitter.cursor
        heartbeat = self.settings.sse_heartbeat_s
        chunk = self.settings.sse_chunk_bytes
        while True:
            if tail.failed is not None:
                raise tail.failed
            if not tail.covers(cursor.of(aggregate_type)):
                await self._catch_up(aggregate_type, emitter)
                continue
            seq = tail.start_seq(cursor.of(aggregate_type))
            while seq >= tail.base_seq:  # else evicted before we sent it: catch up
                if tail.failed is not None:
                    raise tail.failed
                if seq >= tail.next_seq:
                    if not await tail.wait(seq, heartbeat):
                        await emitter.heartbeat()
                    continue
                entries = tail.read(seq, chunk)
                seq += len(entries)
                await emitter.emit(aggregate_type, entries)

    async def _catch_up(self, aggregate_type: str, emitter: Emitter) -> None:
        async def deliver(entries: list[Entry]) -> None:
            await emitter.emit(aggregate_type, entries)

        positions = emitter.cursor.of(aggregate_type)
        await self.gateway.catch_up(
            aggregate_type,
            positions,
            to_entry,
            deliver,
            size=lambda entry: len(entry.data),
            batch_bytes=self.settings.sse_chunk_bytes,
        )


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf exception of a (nested) exception group."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
