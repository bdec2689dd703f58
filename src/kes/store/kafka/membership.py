"""This process's membership in the writer group of one aggregate type.

Assignment of request partition *p* makes this process the owner of event partition
*p*: it opens a fenced PartitionWriter for it, and serves the requests other processes
forward to it (see routing.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import msgspec
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from kes.errors import KesError, NotOwnerError
from kes.store.base import AppendResult
from kes.store.kafka.reader import drain
from kes.store.kafka.routing import (
    Reply,
    Request,
    error_reply,
    expected_from_wire,
    request_decoder,
    request_encoder,
)
from kes.store.kafka.topics import TopicInfo
from kes.store.kafka.writer import AppendRequest, PartitionWriter, State

if TYPE_CHECKING:
    from kes.store.kafka.store import KafkaEventStore

log = logging.getLogger("kes.store")


class WriterGroupMember:
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
                # A new group still serves requests sent while it formed; expired ones
                # are dropped by their deadline.
                "auto.offset.reset": "earliest",
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
                try:
                    for msg in drain(consumer, 200, 0.05):
                        if msg.error() is None:
                            self._handle_request(msg)
                    self.store.producer.poll(0)
                    self._retry_failed(consumer)
                except Exception:
                    # Leaving the loop would silently give up ownership: log and go on.
                    log.exception("%s: writer group loop error", self.aggregate_type)
                    time.sleep(0.5)
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
