"""The Kafka event store: one topic per aggregate type, one fenced writer per partition."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

from confluent_kafka import OFFSET_END, Message, Producer

from kes.envelope import NewEvent, Position, RecordedEvent, encode, to_envelope
from kes.errors import NotOwnerError, StoreUnavailableError
from kes.partitioning import partition_for
from kes.store.base import (
    AppendResult,
    EventStore,
    Expected,
    check_aggregate,
    check_append,
    check_read,
)
from kes.store.kafka.config import KafkaConfig
from kes.store.kafka.membership import WriterGroupMember
from kes.store.kafka.reader import OffsetReader, scan, to_recorded, try_decode
from kes.store.kafka.routing import (
    Router,
    expected_to_wire,
    raise_reply,
)
from kes.store.kafka.topics import Topics
from kes.store.kafka.writer import AppendRequest, PartitionWriter, State

log = logging.getLogger("kes.store")

Role = Literal["writer", "client"]


class KafkaEventStore(EventStore):
    """Event streams in Kafka topics with optimistic concurrency.

    ``role="writer"`` (default) joins the writer group of each aggregate type it
    touches and owns some of its partitions; ``role="client"`` owns nothing and
    forwards every command to the owners (for CLIs and query-only processes).
    """

    def __init__(self, config: KafkaConfig | None = None, role: Role = "writer") -> None:
        self.config = config or KafkaConfig.from_env()
        self.role = role
        self.topics = Topics(self.config)
        pconf = self.config.base()
        pconf.update({"acks": "all", "enable.idempotence": True, "linger.ms": 1})
        self.producer = Producer(pconf)
        self.reader = OffsetReader(self.config)
        self.router = Router(self.config, self.topics, self.producer)
        self._members: dict[str, WriterGroupMember] = {}
        self._lock = threading.Lock()
        self._closed = False

    def member(self, aggregate_type: str) -> WriterGroupMember:
        m = self._members.get(aggregate_type)
        if m is None:
            with self._lock:
                if self._closed:
                    raise StoreUnavailableError("this KafkaEventStore is closed.")
                m = self._members.get(aggregate_type)
                if m is None:
                    m = self._members[aggregate_type] = WriterGroupMember(self, aggregate_type)
        return m

    def owned_partitions(self, aggregate_type: str) -> list[int]:
        m = self.member(aggregate_type)
        m.joined.wait(self.config.ready_timeout_s)
        return sorted(p for p, w in m.writers.items() if w.state is State.READY)

    # ---- the contract -------------------------------------------------------------

    def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected,
    ) -> AppendResult:
        check_append(aggregate_type, aggregate_id, events, expected_version)
        m = self.member(aggregate_type)
        p = partition_for(aggregate_id, m.partitions)
        deadline = time.time() + self.config.request_timeout_s
        while True:
            remaining = deadline - time.time()
            if remaining <= 0:
                raise StoreUnavailableError(
                    f"no owner of {m.topic}[{p}] accepted the append of {aggregate_type} "
                    f"{aggregate_id!r} within {self.config.request_timeout_s:.0f}s "
                    "(rebalancing?); nothing was written."
                )
            w = m.local_writer(p, remaining)
            try:
                if w is not None:
                    request = AppendRequest(aggregate_id, events, expected_version)
                    try:
                        return w.submit(request).result(timeout=remaining + 5)
                    except TimeoutError:
                        raise StoreUnavailableError(
                            f"the append to {aggregate_type} {aggregate_id!r} did not finish "
                            f"within {remaining + 5:.0f}s (is Kafka healthy?); its outcome "
                            "is unknown. Retrying with the same event ids is safe."
                        ) from None
                for event in events:  # refuse what cannot travel before sending it
                    encode(to_envelope(aggregate_type, aggregate_id, 1, event))
                reply = self.router.call(
                    m.request_topic,
                    p,
                    remaining,
                    kind="append",
                    aggregate_type=aggregate_type,
                    aggregate_id=aggregate_id,
                    expected=expected_to_wire(expected_version),
                    events=list(events),
                )
            except NotOwnerError:
                time.sleep(0.05)  # ownership is moving: try again where it went
                continue
            if not reply.ok:
                if reply.error == "NotOwnerError":
                    time.sleep(0.05)
                    continue
                raise_reply(reply, aggregate_type, aggregate_id)
            return AppendResult(
                reply.version,
                [Position(m.topic, p, o) for o in reply.offsets],
                written=reply.written,
            )

    def _locate(
        self, aggregate_type: str, aggregate_id: str, from_version: int, to_version: int | None
    ) -> tuple[WriterGroupMember, int, int, list[int]]:
        """(member, partition, current version, offsets of the versions asked for)."""
        m = self.member(aggregate_type)
        p = partition_for(aggregate_id, m.partitions)
        deadline = time.time() + self.config.request_timeout_s
        while time.time() < deadline:
            w = m.local_writer(p, deadline - time.time())
            if w is not None:
                with w.index.lock:
                    version = w.index.version(aggregate_id)
                return m, p, version, w.index.offsets(aggregate_id, from_version, to_version)
            try:
                reply = self.router.call(
                    m.request_topic,
                    p,
                    deadline - time.time(),
                    kind="read",
                    aggregate_type=aggregate_type,
                    aggregate_id=aggregate_id,
                    from_version=from_version,
                    to_version=to_version,
                )
            except NotOwnerError:
                continue
            if reply.ok:
                return m, p, reply.version, reply.offsets
            if reply.error != "NotOwnerError":
                raise_reply(reply, aggregate_type, aggregate_id)
            time.sleep(0.05)
        raise StoreUnavailableError(
            f"no owner of {m.topic}[{p}] answered for {aggregate_type} {aggregate_id!r}."
        )

    def read_stream(
        self,
        aggregate_type: str,
        aggregate_id: str,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[RecordedEvent]:
        check_aggregate(aggregate_type, aggregate_id)
        check_read(from_version, to_version)
        if to_version is not None and to_version < from_version:
            return []
        m, p, _, offsets = self._locate(aggregate_type, aggregate_id, from_version, to_version)
        return [to_recorded(msg) for msg in self.reader.fetch(m.topic, p, offsets)]

    def scan_stream(
        self,
        aggregate_type: str,
        aggregate_id: str,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[RecordedEvent]:
        """:meth:`read_stream` without asking a writer: reads the aggregate's whole
        partition. For operators when no writer runs; slow on big partitions."""
        check_aggregate(aggregate_type, aggregate_id)
        check_read(from_version, to_version)
        info = self.topics.describe(self.config.topic(aggregate_type))
        if info is None:
            return []
        p = partition_for(aggregate_id, info.partitions)
        key = aggregate_id.encode()
        last = to_version if to_version is not None else float("inf")
        out = []
        for msg in scan(self.config, info.name, info.partitions, _only(p, info.partitions)):
            if msg.partition() != p or msg.key() != key:
                continue
            event = _recorded_or_none(msg)
            if event is not None and from_version <= event.version <= last:
                out.append(event)
        return out

    def stream_version(self, aggregate_type: str, aggregate_id: str) -> int:
        check_aggregate(aggregate_type, aggregate_id)
        _, _, version, _ = self._locate(aggregate_type, aggregate_id, 1, 0)
        return version

    def read_all(
        self, aggregate_type: str, from_positions: Mapping[int, int] | None = None
    ) -> Iterator[RecordedEvent]:
        check_aggregate(aggregate_type, "all")
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
        check_aggregate(aggregate_type, "all")
        info = self.topics.ensure_event_topic(aggregate_type)
        for msg in scan(
            self.config, info.name, info.partitions, from_positions, follow=True, stop=stop
        ):
            event = _recorded_or_none(msg)
            if event is not None:
                yield event

    def close(self) -> None:
        with self._lock:
            self._closed = True
            members = list(self._members.values())
        for m in members:
            m.close()
        self.router.close()
        self.producer.flush(10)
        self.reader.close()


def _only(partition: int, partitions: int) -> dict[int, int]:
    """Start positions that read ``partition`` from its beginning and skip the others."""
    return {p: (0 if p == partition else OFFSET_END) for p in range(partitions)}


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
        raise StoreUnavailableError(f"no event topic {config.topic(aggregate_type)}.")
    started = time.monotonic()
    events = 0
    reader = OffsetReader(config)
    try:
        for p in range(info.partitions):
            w = PartitionWriter(
                config,
                aggregate_type,
                info.name,
                p,
                info.max_message_bytes,
                reader,
                info.topic_id,
            )
            events += w.catch_up()
            w.index.save(w.index_file)
    finally:
        reader.close()
    return info.partitions, events, time.monotonic() - started


__all__ = ["KafkaEventStore", "rebuild_index"]
