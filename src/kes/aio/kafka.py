"""The Kafka event store for asyncio: the machinery of :class:`KafkaEventStore` (one
writer and its commit loop, the writer-group memberships, the router, the reader),
driven from an event loop.

* **Appends are native.** An append becomes an ``AppendRequest`` queued for the
  process's writer, exactly as a thread's would; the writer resolves it from its commit
  loop and the awaiting task wakes (in batches: see ``_bridge.Completions``). No thread
  is held per append, so one loop can keep thousands in flight, and they share the
  writer's transactions. A forwarded append (a partition another process owns, or
  ``role="client"``) is sent on the request topic and its reply resolves a future.
* **Index lookups are native** (``stream_version`` and the first half of
  ``read_stream`` ask the owner's in-memory index, or the owner over the request topic).
* **Fetching events is not**: reading records from Kafka is a blocking consumer call,
  run on the store's bounded thread pool (``threads``, default 8; the reader itself has
  4 consumers). So are first-use set-up (a type's topics and group membership, the
  reply topic) and the fallback scan when no owner answers.

Cancellation: cancelling a task awaiting :meth:`append` either takes the append back
(the writer had not picked it up: nothing is written) or waits until its transaction is
decided (milliseconds; at most the request timeout) and then raises CancelledError. So
when the cancelled task has finished, the append is all there or not at all, and the
next read shows which. A retry with the same event ids writes nothing new.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Sequence

from kes.aio._bridge import Completions, InFlight
from kes.aio.store import AsyncEventStore
from kes.envelope import NewEvent, RecordedEvent
from kes.errors import NotOwnerError, StoreUnavailableError
from kes.kafka.config import KafkaConfig, Role
from kes.partitioning import partition_for
from kes.store.base import AppendResult, Expected, check_append, check_read, check_stream
from kes.store.kafka._admission import AppendRequest, check_event_times
from kes.store.kafka._membership import WriterGroupMember
from kes.store.kafka._routing import (
    REPLY_GRACE_S,
    AppendCall,
    Call,
    Reply,
    no_reply_error,
    reply_error,
)
from kes.store.kafka.store import OWNER_WAIT_S, KafkaEventStore
from kes.tracing import append_span

__all__ = ["AsyncKafkaEventStore"]

# How long past its deadline an append handed to the writer may take to be answered
# before the caller is told its outcome is unknown (as KafkaEventStore.append waits).
ANSWER_GRACE_S = 5.0
MOVED_PAUSE_S = 0.05  # ownership is moving: try again where it went after this


class AsyncKafkaEventStore(AsyncEventStore):
    """:class:`KafkaEventStore` for asyncio (see the module docstring).

    Pass a ``config`` (and ``role``), or an existing ``store`` to share its writer,
    memberships and clients with threaded code in the same process.
    """

    sync: KafkaEventStore

    def __init__(
        self,
        config: KafkaConfig | None = None,
        role: Role | None = None,
        *,
        store: KafkaEventStore | None = None,
        threads: int = 8,
    ) -> None:
        super().__init__(store or KafkaEventStore(config, role), threads)
        self.config = self.sync.config
        self._members: dict[str, WriterGroupMember] = {}
        self._completions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Completions] = (
            weakref.WeakKeyDictionary()
        )

    async def _member(self, aggregate_type: str) -> WriterGroupMember:
        m = self._members.get(aggregate_type)
        if m is None:
            # First use of the type: topics checked or created, group joined (blocking).
            m = await self.run_blocking(self.sync.member, aggregate_type)
            self._members[aggregate_type] = m
        return m

    def _flight(self, loop: asyncio.AbstractEventLoop) -> InFlight:
        completions = self._completions.get(loop)
        if completions is None:
            completions = self._completions[loop] = Completions(loop, self.sync.writer)
        return InFlight(completions)

    # ---- appends -------------------------------------------------------------------

    async def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected,
    ) -> AppendResult:
        check_append(aggregate_type, aggregate_id, events, expected_version)
        check_event_times(aggregate_type, aggregate_id, events, self.config.max_event_time_ahead_s)
        with append_span(aggregate_type, aggregate_id, events) as traced:
            return await self._append(aggregate_type, aggregate_id, traced, expected_version)

    async def _append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected,
    ) -> AppendResult:
        store = self.sync
        m = self._members.get(aggregate_type) or await self._member(aggregate_type)
        p = partition_for(aggregate_id, m.partitions)
        loop = asyncio.get_running_loop()
        flight = self._flight(loop)
        deadline = time.time() + self.config.request_timeout_s
        # Encoded here, once: what cannot travel is refused before anything is queued.
        request = AppendRequest(
            aggregate_type, aggregate_id, events, expected_version, deadline, on_done=flight
        )
        while True:
            remaining = deadline - time.time()
            if remaining <= 0:
                raise store.no_owner_error(m, p, request)
            known, owned = m.owner_now(p)
            if not known:
                owned = await self.run_blocking(m.owner_of, p, remaining)
            try:
                if owned is not None:
                    flight.request = request
                    flight.completions.submit(owned, request)
                    return await self._answer(flight, remaining + ANSWER_GRACE_S)
                reply = await self._forward(m, p, store.append_call(request), remaining)
            except NotOwnerError:
                flight = self._flight(loop)
                request = request.renewed(on_done=flight)
                await asyncio.sleep(MOVED_PAUSE_S)
                continue
            result = store.append_result(m, p, request, reply)
            if result is None:
                await asyncio.sleep(MOVED_PAUSE_S)
                continue
            return result

    async def _answer(self, flight: InFlight, timeout: float) -> AppendResult:
        """The outcome of an append handed to the writer."""
        request = flight.request
        assert request is not None
        if not request.done:
            # No timer per append: the loop's one watch wakes the overdue ones.
            flight.completions.watch(flight, timeout)
            try:
                await flight.future
            except asyncio.CancelledError:
                await self._settle(flight)
                raise
        if request.error is not None:
            raise request.error
        if request.result is None:
            raise StoreUnavailableError(
                f"the append to {request.aggregate_type} {request.aggregate_id!r} did not "
                f"finish within {timeout:.0f}s (is Kafka healthy?); its outcome is unknown. "
                "Retrying with the same event ids is safe.",
                "unknown",
            )
        return request.result

    async def _settle(self, flight: InFlight) -> None:
        """After a cancel: take the append back if the writer has not picked it up, else
        wait (through further cancels) until its transaction is decided."""
        request = flight.request
        assert request is not None
        if flight.completions.withdraw(request):
            request.fail(
                StoreUnavailableError(
                    f"the append to {request.aggregate_type} {request.aggregate_id!r} was "
                    "cancelled before it was written; nothing was written.",
                    "not_written",
                )
            )
            return
        flight.future = flight.completions.loop.create_future()  # the old one was cancelled
        until = request.deadline + ANSWER_GRACE_S
        while not request.done and (left := until - time.time()) > 0:
            try:
                await asyncio.wait({flight.future}, timeout=left)
            except asyncio.CancelledError:
                continue  # cancelled again: the decision is still what the caller needs

    async def _forward(self, m: WriterGroupMember, p: int, call: Call, timeout: float) -> Reply:
        """Send ``call`` to the owner of ``p`` and await its reply (see Router.call)."""
        router = self.sync.router
        if not router.started:
            await self.run_blocking(router.start)
        reply = asyncio.wrap_future(router.send(m.request_topic, p, call))
        try:
            try:
                done, _ = await asyncio.wait({reply}, timeout=timeout + REPLY_GRACE_S)
            except asyncio.CancelledError:
                if isinstance(call, AppendCall):  # sent: wait for its decision
                    until = call.deadline + REPLY_GRACE_S
                    while not reply.done() and (left := until - time.time()) > 0:
                        try:
                            await asyncio.wait({reply}, timeout=left)
                        except asyncio.CancelledError:
                            continue
                raise
        finally:
            router.discard(call.id)
        if not done:
            raise no_reply_error(call, m.request_topic, p, timeout)
        return reply.result()

    # ---- reads ---------------------------------------------------------------------

    async def _locate(
        self, aggregate_type: str, aggregate_id: str, from_version: int, to_version: int | None
    ) -> tuple[str, int, int, list[int]] | None:
        """As KafkaEventStore._locate: (topic, partition, version, offsets wanted) from the
        owner's index, here or over the request topic; None when no owner answered."""
        store = self.sync
        m = self._members.get(aggregate_type) or await self._member(aggregate_type)
        p = partition_for(aggregate_id, m.partitions)
        deadline = time.time() + self.config.request_timeout_s
        owner_deadline = time.time() + OWNER_WAIT_S
        while time.time() < deadline:
            known, owned = m.owner_now(p)
            if not known:
                owned = await self.run_blocking(m.owner_of, p, max(0.0, deadline - time.time()))
            if owned is not None:
                version, offsets = owned.index.lookup(aggregate_id, from_version, to_version)
                return m.topic, p, version, offsets
            call = store.read_call(
                aggregate_type,
                aggregate_id,
                from_version,
                to_version,
                min(deadline, owner_deadline),
            )
            try:
                reply = await self._forward(m, p, call, max(0.1, call.deadline - time.time()))
            except NotOwnerError:
                continue
            except StoreUnavailableError:
                if time.time() >= owner_deadline:
                    return None  # nobody answers: the caller reads the partition itself
                raise
            if reply.ok:
                return m.topic, p, reply.version, reply.offsets
            error = reply_error(reply, aggregate_type, aggregate_id)
            if not isinstance(error, NotOwnerError):
                raise error
            if time.time() >= owner_deadline:
                return None
            await asyncio.sleep(MOVED_PAUSE_S)
        return None

    async def read_stream(
        self,
        aggregate_type: str,
        aggregate_id: str,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[RecordedEvent]:
        check_stream(aggregate_type, aggregate_id)
        check_read(from_version, to_version)
        if to_version is not None and to_version < from_version:
            return []
        found = await self._locate(aggregate_type, aggregate_id, from_version, to_version)
        if found is None:
            return await self.run_blocking(
                self.sync.scan_stream, aggregate_type, aggregate_id, from_version, to_version
            )
        topic, p, _, offsets = found
        if not offsets:
            return []
        return await self.run_blocking(self.sync.fetch, topic, p, offsets)

    async def stream_version(self, aggregate_type: str, aggregate_id: str) -> int:
        check_stream(aggregate_type, aggregate_id)
        found = await self._locate(aggregate_type, aggregate_id, 1, 0)
        if found is None:
            scanned = await self.run_blocking(self.sync.scan_stream, aggregate_type, aggregate_id)
            return scanned[-1].version if scanned else 0
        return found[2]

    async def owned_partitions(self, aggregate_type: str) -> list[int]:
        """The partitions of ``aggregate_type`` this process serves (waits for the first
        assignment and the takeovers it started)."""
        return await self.run_blocking(self.sync.owned_partitions, aggregate_type)
