"""The Kafka event store: one topic per aggregate type, one writer per partition at a time,
and one transaction per writer process for all it owns."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

from confluent_kafka import KafkaException, Message, Producer

from kes.envelope import NewEvent, Position, RecordedEvent
from kes.errors import AccessDeniedError, NotOwnerError, StoreUnavailableError
from kes.kafka.clients import producer
from kes.kafka.config import KafkaConfig, Role
from kes.kafka.consume import scan
from kes.kafka.topics import Topics
from kes.partitioning import partition_for
from kes.store.base import (
    AppendResult,
    EventStore,
    Expected,
    check_append,
    check_read,
    check_stream,
    check_type,
)
from kes.store.kafka._admission import AppendRequest, check_event_times
from kes.store.kafka._membership import WriterGroupMember
from kes.store.kafka._partition import OwnedPartition
from kes.store.kafka._reader import OffsetReader, to_recorded, try_decode
from kes.store.kafka._routing import (
    AppendCall,
    ReadCall,
    Reply,
    Router,
    expected_to_wire,
    reply_error,
)
from kes.store.kafka._writer import Writer
from kes.tracing import append_span

log = logging.getLogger("kes.store")

# How long a read waits for an owner to answer before it reads the partition itself,
# and how long after that reads of the partition go straight to reading it.
OWNER_WAIT_S = 5.0
OWNERLESS_S = 10.0


class KafkaEventStore(EventStore):
    """Event streams in Kafka topics with optimistic concurrency.

    ``role="writer"`` (the default, or ``KES_ROLE``) joins the writer group of each
    aggregate type it touches and owns some of its partitions; ``role="client"`` owns
    nothing and forwards every append to the owners (web workers, CLIs). Reads of a
    partition nobody owns right now fall back to reading the partition itself.
    Thread-safe: one store serves any number of threads.
    """

    def __init__(self, config: KafkaConfig | None = None, role: Role | None = None) -> None:
        self.config = config or KafkaConfig.from_env()
        self.role: Role = role or self.config.role
        self.topics = Topics(self.config)
        self._producer: Producer | None = None
        self._producer_lock = threading.Lock()
        self.reader = OffsetReader(self.config)
        self.writer = Writer(self.config, self.reader)
        self.router = Router(self.config, self.topics, lambda: self.producer)
        self._members: dict[str, WriterGroupMember] = {}
        self._ownerless: dict[tuple[str, int], float] = {}  # no owner answered, until
        self._lock = threading.Lock()
        self._closed = False

    @property
    def producer(self) -> Producer:
        """Forwards requests and answers them; made on first use, so that a process that
        only reads needs no right to write anything (an idempotent producer asks Kafka
        for a producer id at once, which needs WRITE on some topic)."""
        if self._producer is None:
            with self._producer_lock:
                if self._producer is None:
                    self._producer = producer(self.config, **{"linger.ms": 1})
        return self._producer

    def member(self, aggregate_type: str) -> WriterGroupMember:
        m = self._members.get(aggregate_type)
        if m is None:
            with self._lock:
                if self._closed:
                    raise StoreUnavailableError("this KafkaEventStore is closed.", "not_written")
                m = self._members.get(aggregate_type)
                if m is None:
                    m = WriterGroupMember(
                        self.config,
                        aggregate_type,
                        self.topics,
                        self.writer,
                        self.producer,
                        serve=self.role == "writer",
                    )
                    self._members[aggregate_type] = m
        return m

    def owned_partitions(self, aggregate_type: str) -> list[int]:
        """The partitions of ``aggregate_type`` this process serves now (waits for the
        first assignment and the takeovers it started)."""
        m = self.member(aggregate_type)
        m.joined.wait(self.config.ready_timeout_s)
        for p in range(m.partitions):
            m.owner_of(p, self.config.ready_timeout_s)
        return m.owned_partitions()

    # ---- the contract -------------------------------------------------------------

    def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected,
    ) -> AppendResult:
        check_append(aggregate_type, aggregate_id, events, expected_version)
        check_event_times(aggregate_type, aggregate_id, events, self.config.max_event_time_ahead_s)
        with append_span(aggregate_type, aggregate_id, events) as traced:
            return self._append(aggregate_type, aggregate_id, traced, expected_version)

    def _append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected,
    ) -> AppendResult:
        m = self.member(aggregate_type)
        p = partition_for(aggregate_id, m.partitions)
        deadline = time.time() + self.config.request_timeout_s
        # Encoded once, here: refuses what cannot travel before anything is sent.
        request = AppendRequest(aggregate_type, aggregate_id, events, expected_version, deadline)
        while True:
            remaining = deadline - time.time()
            if remaining <= 0:
                raise self.no_owner_error(m, p, request)
            owned = m.owner_of(p, remaining)
            try:
                if owned is not None:
                    self.writer.submit(owned, request)
                    return request.wait(remaining + 5)
                call = self.append_call(request)
                reply = self.router.call(m.request_topic, p, call, remaining)
            except NotOwnerError:
                # Ownership is moving: try again where it went, with a fresh request (this
                # one's outcome is set; resubmitting it would write without telling us).
                request = request.renewed()
                time.sleep(0.05)
                continue
            result = self.append_result(m, p, request, reply)
            if result is None:
                time.sleep(0.05)
                continue
            return result

    # ---- pieces shared with kes.aio (the asyncio store drives the same machinery) ---------

    def no_owner_error(
        self, m: WriterGroupMember, p: int, request: AppendRequest
    ) -> StoreUnavailableError:
        where = (
            f"no owner of {m.topic}[{p}] accepted the append of {request.aggregate_type} "
            f"{request.aggregate_id!r} within {self.config.request_timeout_s:.0f}s "
            "(rebalancing, or no writer running?)"
        )
        if request.maybe_written:
            return StoreUnavailableError(
                f"{where}; an earlier attempt may still be carried out, so its outcome is "
                "unknown. Retrying with the same event ids is safe.",
                "unknown",
            )
        return StoreUnavailableError(f"{where}; nothing was written.", "not_written")

    def append_call(self, request: AppendRequest) -> AppendCall:
        """The forwarded form of ``request``."""
        return AppendCall(
            id=self.router.new_id(),
            reply_to=self.router.reply_topic,
            deadline=request.deadline,
            aggregate_type=request.aggregate_type,
            aggregate_id=request.aggregate_id,
            expected=expected_to_wire(request.expected),
            events=list(request.events),
        )

    def append_result(
        self, m: WriterGroupMember, p: int, request: AppendRequest, reply: Reply
    ) -> AppendResult | None:
        """The result a forwarded append's reply carries; raises its error; None when the
        partition moved (try again where it went)."""
        if not reply.ok:
            error = reply_error(reply, request.aggregate_type, request.aggregate_id)
            if isinstance(error, NotOwnerError):
                request.maybe_written |= error.outcome == "unknown"
                return None
            raise error
        return AppendResult(
            reply.version,
            [Position(m.topic, p, o) for o in reply.offsets],
            # Found stored after an attempt of this call that may have written it.
            written=reply.written or request.maybe_written,
        )

    def read_call(
        self,
        aggregate_type: str,
        aggregate_id: str,
        from_version: int,
        to_version: int | None,
        deadline: float,
    ) -> ReadCall:
        return ReadCall(
            id=self.router.new_id(),
            reply_to=self.router.reply_topic,
            deadline=deadline,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            from_version=from_version,
            to_version=to_version,
        )

    def _locate(
        self, aggregate_type: str, aggregate_id: str, from_version: int, to_version: int | None
    ) -> tuple[str, int, int, list[int]] | None:
        """(topic, partition, current version, offsets of the versions asked for), from
        the owner's index; None when no owner answered within ``OWNER_WAIT_S``, or when
        this principal may not ask owners (a reader: asking goes through the request
        topic, which carries appends too)."""
        m = self.member(aggregate_type)
        if m.denied is not None:
            return None
        try:
            return self._ask_owner(m, aggregate_type, aggregate_id, from_version, to_version)
        except AccessDeniedError:
            return None

    def _ask_owner(
        self,
        m: WriterGroupMember,
        aggregate_type: str,
        aggregate_id: str,
        from_version: int,
        to_version: int | None,
    ) -> tuple[str, int, int, list[int]] | None:
        p = partition_for(aggregate_id, m.partitions)
        deadline = time.time() + self.config.request_timeout_s
        owner_deadline = time.time() + OWNER_WAIT_S
        while time.time() < deadline:
            owned: OwnedPartition | None = m.owner_of(p, max(0.0, deadline - time.time()))
            if owned is not None:
                version, offsets = owned.index.lookup(aggregate_id, from_version, to_version)
                return m.topic, p, version, offsets
            if self._ownerless.get((aggregate_type, p), 0.0) > time.monotonic():
                return None  # nobody answered a moment ago: do not wait again
            call = self.read_call(
                aggregate_type,
                aggregate_id,
                from_version,
                to_version,
                min(deadline, owner_deadline),
            )
            try:
                reply: Reply = self.router.call(
                    m.request_topic, p, call, max(0.1, call.deadline - time.time())
                )
            except NotOwnerError:
                continue
            except StoreUnavailableError:
                if time.time() >= owner_deadline:
                    # Nobody answers: the caller reads the partition itself.
                    self._ownerless[(aggregate_type, p)] = time.monotonic() + OWNERLESS_S
                    return None
                raise
            if reply.ok:
                return m.topic, p, reply.version, reply.offsets
            error = reply_error(reply, aggregate_type, aggregate_id)
            if not isinstance(error, NotOwnerError):
                raise error
            if time.time() >= owner_deadline:
                self._ownerless[(aggregate_type, p)] = time.monotonic() + OWNERLESS_S
                return None
            time.sleep(0.05)
        return None

    def read_stream(
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
        found = self._locate(aggregate_type, aggregate_id, from_version, to_version)
        if found is None:
            return self.scan_stream(aggregate_type, aggregate_id, from_version, to_version)
        topic, p, _, offsets = found
        return self.fetch(topic, p, offsets)

    def fetch(self, topic: str, partition: int, offsets: list[int]) -> list[RecordedEvent]:
        """The events at ``offsets`` (blocking Kafka fetches)."""
        return [to_recorded(msg) for msg in self.reader.fetch(topic, partition, offsets)]

    def scan_stream(
        self,
        aggregate_type: str,
        aggregate_id: str,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[RecordedEvent]:
        """:meth:`read_stream` without asking a writer: reads the aggregate's whole
        partition (slow on big partitions). Used when no owner answers."""
        check_stream(aggregate_type, aggregate_id)
        check_read(from_version, to_version)
        info = self.topics.describe(self.config.topic(aggregate_type))
        if info is None:
            return []
        p = partition_for(aggregate_id, info.partitions)
        key = aggregate_id.encode()
        last = to_version if to_version is not None else float("inf")
        out = []
        for msg in scan(self.config, info.name, info.partitions, only={p}):
            if msg.key() != key:
                continue
            event = _recorded_or_none(msg)
            if event is not None and from_version <= event.version <= last:
                out.append(event)
        return out

    def stream_version(self, aggregate_type: str, aggregate_id: str) -> int:
        check_stream(aggregate_type, aggregate_id)
        found = self._locate(aggregate_type, aggregate_id, 1, 0)
        if found is None:
            scanned = self.scan_stream(aggregate_type, aggregate_id)
            return scanned[-1].version if scanned else 0
        return found[2]

    def read_all(
        self, aggregate_type: str, from_positions: Mapping[int, int] | None = None
    ) -> Iterator[RecordedEvent]:
        check_type(aggregate_type)
        info = self.topics.describe(self.config.topic(aggregate_type))
        if info is None:
            return
        for msg in scan(self.config, info.name, info.partitions, from_positions):
            event = _recorded_or_none(msg)
            if event is not None:
                yield event

    def subscribe(
        self,
        aggregate_type: str,
        from_positions: Mapping[int, int] | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[RecordedEvent]:
        check_type(aggregate_type)
        info = self.topics.ensure_event_topic(aggregate_type, role="reader")
        for msg in scan(
            self.config, info.name, info.partitions, from_positions, follow=True, stop=stop
        ):
            event = _recorded_or_none(msg)
            if event is not None:
                yield event

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            members = list(self._members.values())
        for m in members:
            m.close()
        self.writer.close()
        self.router.close()
        if self._producer is not None:
            with contextlib.suppress(KafkaException):  # a refused (fatal) producer
                self._producer.flush(10)
        self.reader.close()


def _recorded_or_none(msg: Message) -> RecordedEvent | None:
    env = try_decode(msg)
    if env is None:
        log.warning(
            "%s[%d]@%d is not a kes event; skipped", msg.topic(), msg.partition(), msg.offset()
        )
        return None
    return RecordedEvent(env, Position(msg.topic(), msg.partition(), msg.offset()))


def rebuild_index(config: KafkaConfig, aggregate_type: str) -> tuple[int, int, float]:
    """Rebuild every partition's index file from the log: (partitions, events, seconds)."""
    topics = Topics(config)
    info = topics.describe(config.topic(aggregate_type))
    if info is None:
        raise StoreUnavailableError(
            f"no event topic {config.topic(aggregate_type)}; check the aggregate type and "
            "KES_NAMESPACE.",
            "not_written",
        )
    started = time.monotonic()
    events = 0
    for p in range(info.partitions):
        owned = OwnedPartition(
            config,
            aggregate_type,
            info.name,
            p,
            config.request_topic(aggregate_type),
            info.max_message_bytes,
            info.topic_id,
        )
        events += owned.catch_up()
        owned.save_index()
    return info.partitions, events, time.monotonic() - started


__all__ = ["KafkaEventStore", "rebuild_index"]
