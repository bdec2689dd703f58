"""The Kafka event store: one topic per aggregate type, one fenced writer per partition."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal

import msgspec
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from kes.envelope import NewEvent, Position, RecordedEvent, encode, to_envelope
from kes.errors import KesError, NotOwnerError, StoreUnavailableError
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
from kes.store.kafka.reader import OffsetReader, drain, scan, to_recorded, try_decode
from kes.store.kafka.routing import (
    Reply,
    Request,
    Router,
    error_reply,
    expected_from_wire,
    expected_to_wire,
    raise_reply,
    request_decoder,
    request_encoder,
)
from kes.store.kafka.topics import TopicInfo, Topics
from kes.store.kafka.writer import AppendRequest, PartitionWriter, State

log = logging.getLogger("kes.store")

Role = Literal["writer", "client"]


class _TypeMember:
    """This process's membership in the writer group of one aggregate type."""

    def __init__(self, store: KafkaEventStore, aggregate_type: str) -> None:
        self.store = store
        self.config = store.config
        self.aggregate_type = aggregate_type
        self.topic_info: TopicInfo = store.topics.ensure_event_topic(aggregate_type)
        self.topic = self.topic_info.name
        self.partitions = self.topic_info.partitions
        self.request_topic = store.topics.ensure_request_topic(aggregate_type, self.partitions).name
        self.writers: dict[int, PartitionWriter] = {}
        self._failed: set[int] = set()  # assigned to us, but the takeover failed
        self._next_retry = 0.0
        self.joined = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if store.role == "writer":
            self._thread = threading.Thread(
                target=self._poll_loop, name=f"kes-group-{aggregate_type}", daemon=True
            )
            self._thread.start()
        else:
            self.joined.set()

    # ---- group membership (poll thread) -------------------------------------

    def _poll_loop(self) -> None:
        conf = self.config.base()
        conf.update(
            {
                "group.id": self.config.group(self.aggregate_type),
                "client.id": self.config.member_name,
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": self.config.session_timeout_ms,
                "heartbeat.interval.ms": max(500, self.config.session_timeout_ms // 5),
                "enable.auto.commit": True,
                "auto.offset.reset": "latest",
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 5,
            }
        )
        consumer = Consumer(conf)
        consumer.subscribe(
            [self.request_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        try:
            while not self._stop.is_set():
                for msg in drain(consumer, 200, 0.05):
                    if msg.error() is None:
                        self._handle_request(msg)
                self.store.producer.poll(0)
                self._retry_failed(consumer)
        except Exception:
            log.exception("%s: writer group loop failed", self.aggregate_type)
        finally:
            with contextlib.suppress(KafkaException):
                consumer.close()  # leaves the group: revokes (and saves) our partitions
            for p in list(self.writers):
                self.writers.pop(p).close()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        new = [
            PartitionWriter(
                self.config,
                self.aggregate_type,
                self.topic,
                tp.partition,
                self.topic_info.max_message_bytes,
                self.store.reader,
                self.topic_info.topic_id,
            )
            for tp in partitions
        ]
        for w in new:
            self.writers[w.partition] = w

        def take(w: PartitionWriter) -> None:
            try:
                w.open()
            except KesError as exc:
                log.warning(
                    "%s[%d]: could not take ownership (%s); will retry",
                    self.topic,
                    w.partition,
                    exc,
                )
                w.close(save=False)
                self.writers.pop(w.partition, None)
                self._failed.add(w.partition)

        # Fence and catch up the new partitions in parallel; requests for them are
        # consumed only after this callback returns, so none is seen half-ready.
        if new:
            with ThreadPoolExecutor(max_workers=min(8, len(new))) as pool:
                list(pool.map(take, new))
        self.joined.set()

    def _retry_failed(self, consumer: Consumer) -> None:
        """Take again the assigned partitions whose takeover failed (e.g. broker down)."""
        now = time.monotonic()
        if not self._failed or now < self._next_retry:
            return
        self._next_retry = now + 2.0
        retry = [TopicPartition(self.request_topic, p) for p in sorted(self._failed)]
        self._failed.clear()
        self._on_assign(consumer, retry)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._failed.discard(tp.partition)
            w = self.writers.pop(tp.partition, None)
            if w is not None:
                w.close()

    def _handle_request(self, msg: Message) -> None:
        try:
            req = request_decoder.decode(msg.value())
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("%s@%d: undecodable request skipped", msg.topic(), msg.offset())
            return
        if req.deadline < time.time():
            return  # the caller has given up and reported a timeout: do nothing
        w = self.writers.get(msg.partition())
        if w is None or w.state is not State.READY:
            self._reply(req, error_reply(req.id, NotOwnerError("partition moved")))
            return
        if req.kind == "read":
            offsets = w.index.offsets(req.aggregate_id, req.from_version, req.to_version)
            version = w.index.version(req.aggregate_id)
            self._reply(req, Reply(req.id, True, version=version, offsets=offsets))
            return
        try:
            future = w.submit(
                AppendRequest(
                    req.aggregate_id, req.events, expected_from_wire(req.expected), req.deadline
                )
            )
        except KesError as exc:
            self._reply(req, error_reply(req.id, exc))
            return
        future.add_done_callback(lambda f: self._reply(req, _to_reply(req.id, f)))

    def _reply(self, req: Request, reply: Reply) -> None:
        try:
            self.store.producer.produce(req.reply_to, value=request_encoder.encode(reply))
        except (KafkaException, BufferError) as exc:
            log.warning("could not reply to %s: %s", req.reply_to, exc)

    # ---- used by the store ----------------------------------------------------

    def local_writer(self, partition: int, timeout: float) -> PartitionWriter | None:
        """The ready writer of ``partition`` if this process owns it."""
        self.joined.wait(timeout)
        w = self.writers.get(partition)
        if w is None:
            return None
        w.ready.wait(timeout)
        return w if w.state is State.READY else None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)


def _to_reply(request_id: str, future: Future[AppendResult]) -> Reply:
    exc = future.exception()
    if exc is not None:
        return error_reply(request_id, exc)
    result = future.result()
    return Reply(
        request_id,
        True,
        version=result.version,
        offsets=[p.offset for p in result.positions],
        written=result.written,
    )


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
        self._members: dict[str, _TypeMember] = {}
        self._lock = threading.Lock()
        self._closed = False

    def member(self, aggregate_type: str) -> _TypeMember:
        m = self._members.get(aggregate_type)
        if m is None:
            with self._lock:
                if self._closed:
                    raise StoreUnavailableError("this KafkaEventStore is closed.")
                m = self._members.get(aggregate_type)
                if m is None:
                    m = self._members[aggregate_type] = _TypeMember(self, aggregate_type)
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
    ) -> tuple[_TypeMember, int, int, list[int]]:
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
