"""The single writer of one partition: fences older owners, checks expected versions
against its index, and commits concurrent appends together in one transaction."""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import msgspec
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from kes.envelope import NewEvent, Position, decode, encode, headers, to_envelope
from kes.errors import (
    ConcurrencyError,
    EventTooLargeError,
    FencedError,
    KesError,
    NotOwnerError,
    StoreUnavailableError,
)
from kes.store.base import AppendResult, Expected, ExpectedVersion, expected_matches
from kes.store.kafka.config import KafkaConfig
from kes.store.kafka.index import PartitionIndex, RecentIds, index_path
from kes.store.kafka.reader import OffsetReader, drain

log = logging.getLogger("kes.writer")

# Room for the record framing Kafka adds around key, value and headers.
_RECORD_OVERHEAD = 512


class _Head(msgspec.Struct, rename="camel"):
    version: int
    event_id: str = ""


_head_decoder = msgspec.json.Decoder(_Head)


@dataclass
class AppendRequest:
    aggregate_id: str
    events: Sequence[NewEvent]
    expected: Expected
    deadline: float | None = None  # time.time() after which the caller has given up
    future: Future[AppendResult] = field(default_factory=Future)


class State(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    CLOSED = "closed"


class PartitionWriter:
    """Owns one partition of one event topic while this process is assigned it."""

    def __init__(
        self,
        config: KafkaConfig,
        aggregate_type: str,
        topic: str,
        partition: int,
        max_message_bytes: int,
        reader: OffsetReader,
        topic_id: str = "",
    ) -> None:
        self.config = config
        self.aggregate_type = aggregate_type
        self.topic = topic
        self.partition = partition
        self.max_message_bytes = max_message_bytes
        self.topic_id = topic_id
        self.reader = reader
        self.state = State.STARTING
        self.ready = threading.Event()
        self.index = PartitionIndex(topic, partition, topic_id)
        self._queue: queue.Queue[AppendRequest] = queue.Queue()
        self._producer: Producer | None = None
        self._thread: threading.Thread | None = None
        self.index_file = index_path(config.index_dir, topic, partition)
        self.transactions = 0
        self._last_batch = 0
        self.recent = RecentIds(config.recent_event_ids)
        self.restored_offset = 0  # where the saved index ended when this owner started
        self.caught_up_events = 0  # events read from the log to complete the index

    # ---- ownership ------------------------------------------------------------

    def open(self) -> None:
        """Fence every earlier owner, catch the index up to the end, start serving."""
        started = time.monotonic()
        self.index = PartitionIndex.load(self.index_file, self.topic, self.partition, self.topic_id)
        self.restored_offset = self.index.next_offset
        self._producer = self._new_producer()
        self.caught_up_events = self.catch_up()
        self.state = State.READY
        self.ready.set()
        self._thread = threading.Thread(
            target=self._run, name=f"kes-writer-{self.topic}-{self.partition}", daemon=True
        )
        self._thread.start()
        log.info(
            "%s[%d]: owner after %.0f ms (%d aggregates, next offset %d)",
            self.topic,
            self.partition,
            (time.monotonic() - started) * 1000,
            len(self.index),
            self.index.next_offset,
        )

    def _new_producer(self) -> Producer:
        conf = self.config.base()
        conf.update(
            {
                "transactional.id": self.config.transactional_id(
                    self.aggregate_type, self.partition
                ),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
                "transaction.timeout.ms": self.config.transaction_timeout_ms,
                "partitioner": "murmur2_random",
                "message.max.bytes": max(self.max_message_bytes + 4096, 1_000_000),
            }
        )
        producer = Producer(conf)
        try:
            # Bumps the epoch: an older owner's next send or commit fails as fenced,
            # and its open transaction (if any) is aborted before we read the log.
            producer.init_transactions(self.config.ready_timeout_s)
        except KafkaException as exc:
            raise StoreUnavailableError(
                f"{self.topic}[{self.partition}]: could not initialise the transactional "
                f"writer: {exc.args[0]}"
            ) from exc
        return producer

    def catch_up(self) -> int:
        """Index every committed record from ``next_offset`` to the end; returns the count."""
        # Up to 8 partitions catch up at once: a smaller prefetch each bounds the memory.
        consumer = Consumer(self.config.reader(**{"queued.max.messages.kbytes": 16384}))
        try:
            tp = TopicPartition(self.topic, self.partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            if self.index.next_offset > high or self.index.next_offset < low:
                log.warning(
                    "%s[%d]: saved index ends at %d but the log spans %d..%d; rebuilding",
                    self.topic,
                    self.partition,
                    self.index.next_offset,
                    low,
                    high,
                )
                self.index = PartitionIndex(self.topic, self.partition, self.topic_id)
            if self.index.next_offset >= high:
                return 0
            consumer.assign([TopicPartition(self.topic, self.partition, self.index.next_offset)])
            return self._consume_to_end(consumer, high)
        finally:
            consumer.close()

    def _consume_to_end(self, consumer: Consumer, high: int) -> int:
        count = 0
        index = self.index
        deadline = time.monotonic() + max(300.0, self.config.ready_timeout_s)
        while time.monotonic() < deadline:
            msgs = drain(consumer, 2000, 1.0)
            with index.lock:
                for msg in msgs:
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            index.advance(msg.offset())
                            return count
                        raise StoreUnavailableError(
                            f"reading {self.topic}[{self.partition}]: {err}"
                        )
                    count += self._index_record(msg)
                    if msg.offset() >= high - 1:
                        return count
        raise StoreUnavailableError(
            f"{self.topic}[{self.partition}]: catching up did not reach the end in time."
        )

    def _index_record(self, msg: Message) -> int:
        key = msg.key()
        try:
            head = _head_decoder.decode(msg.value())
            aggregate_id = key.decode()
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, AttributeError):
            log.warning(
                "%s[%d]@%d is not a kes event; left out of the index",
                self.topic,
                self.partition,
                msg.offset(),
            )
            self.index.advance(msg.offset() + 1)
            return 0
        self.index.record(aggregate_id, head.version, msg.offset())
        if head.event_id:
            self.recent.add(head.event_id, aggregate_id, head.version, msg.offset())
        return 1

    def close(self, save: bool = True) -> None:
        """Stop serving (revoked, lost or closing): finish the batch in flight, fail the rest."""
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        self.ready.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.transaction_timeout_ms / 1000)
        self._fail_queued()
        if save:
            try:
                self.index.save(self.index_file)
            except OSError as exc:
                log.warning("could not save index %s: %s", self.index_file, exc)
        self._producer = None

    def _fail_queued(self) -> None:
        while True:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                return
            if not req.future.done():
                req.future.set_exception(self._not_owner())

    def _not_owner(self) -> NotOwnerError:
        return NotOwnerError(
            f"this process no longer owns {self.topic}[{self.partition}] (rebalanced); "
            "nothing was written. Retry: the append will go to the new owner."
        )

    # ---- appends -------------------------------------------------------------

    def closed(self) -> bool:
        return self.state is State.CLOSED

    def submit(self, request: AppendRequest) -> Future[AppendResult]:
        if self.state is State.CLOSED:
            raise self._not_owner()
        self._queue.put(request)
        if self.closed():  # closed while we queued: make sure it is answered
            self._fail_queued()
        return request.future

    def _run(self) -> None:
        while self.state is State.READY:
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if self._last_batch > 1 and self.config.group_commit_wait_s > 0:
                # Callers answered by the previous commit are about to come back: wait a
                # moment so that they share the next transaction instead of queueing.
                time.sleep(self.config.group_commit_wait_s)
            batch = [first]
            events = len(first.events)
            while events < self.config.max_batch_events:
                try:
                    req = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(req)
                events += len(req.events)
            self._last_batch = len(batch)
            try:
                self._commit_batch(batch)
            except Exception as exc:
                if isinstance(exc, KesError):
                    log.warning("%s[%d]: batch failed: %s", self.topic, self.partition, exc)
                else:
                    log.exception("%s[%d]: batch failed", self.topic, self.partition)
                for req in batch:
                    if not req.future.done():
                        req.future.set_exception(
                            exc
                            if isinstance(exc, KesError)
                            else StoreUnavailableError(f"append failed: {exc!r}")
                        )
            if self.index.events_since_save >= self.config.index_checkpoint_every:
                try:
                    self.index.save(self.index_file)
                except OSError as exc:  # the index is a cache: serving goes on without it
                    log.warning("could not save index %s: %s", self.index_file, exc)

    def _commit_batch(self, batch: list[AppendRequest]) -> None:
        now = time.time()
        tentative: dict[str, int] = {}
        batch_ids: set[str] = set()
        accepted: list[tuple[AppendRequest, list[tuple[str, int, bytes, list[tuple[str, bytes]]]]]]
        accepted = []
        for req in batch:
            if req.deadline is not None and now > req.deadline:
                req.future.set_exception(
                    StoreUnavailableError("the caller gave up before the append was processed")
                )
                continue
            aid = req.aggregate_id
            if any(e.event_id in batch_ids for e in req.events):
                self._queue.put(req)  # a repeat of a request in this batch: after its commit
                continue
            stored = self._already_stored(req)
            if stored is not None:
                req.future.set_result(stored)
                continue
            actual = tentative.get(aid, self.index.version(aid))
            if not expected_matches(req.expected, actual):
                self._refuse(req, actual, aid in tentative)
                continue
            try:
                records = self._encode(req, actual)
            except KesError as exc:
                req.future.set_exception(exc)
                continue
            accepted.append((req, records))
            batch_ids.update(e.event_id for e in req.events)
            tentative[aid] = actual + len(req.events)
        if not accepted:
            return
        offsets = self._produce_transaction([recs for _, recs in accepted])
        i = 0
        results: list[tuple[AppendRequest, AppendResult]] = []
        with self.index.lock:
            for req, records in accepted:
                positions = []
                for event, (aid, version, _, _) in zip(req.events, records, strict=True):
                    off = offsets[i]
                    i += 1
                    self.index.record(aid, version, off)
                    self.recent.add(event.event_id, aid, version, off)
                    positions.append(Position(self.topic, self.partition, off))
                results.append((req, AppendResult(records[-1][1], positions)))
        for req, result in results:
            req.future.set_result(result)

    def _encode(
        self, req: AppendRequest, actual: int
    ) -> list[tuple[str, int, bytes, list[tuple[str, bytes]]]]:
        out = []
        key_len = len(req.aggregate_id.encode())
        for i, event in enumerate(req.events):
            env = to_envelope(self.aggregate_type, req.aggregate_id, actual + i + 1, event)
            value = encode(env)
            hs = headers(env)
            size = len(value) + key_len + sum(len(k) + len(v) for k, v in hs) + _RECORD_OVERHEAD
            if size > self.max_message_bytes:
                raise EventTooLargeError(
                    f"event {event.event_type!r} for {self.aggregate_type} "
                    f"{req.aggregate_id!r} is {size} bytes encoded; topic {self.topic} accepts "
                    f"at most {self.max_message_bytes} (max.message.bytes). Nothing was "
                    "written; store large blobs elsewhere and put a reference in the event."
                )
            out.append((req.aggregate_id, env.version, value, hs))
        return out

    def _refuse(self, req: AppendRequest, actual: int, pending_in_batch: bool) -> None:
        try:
            result = None if pending_in_batch else self._idempotent_retry(req, actual)
        except KesError as exc:  # the check could not read the log: this request only
            req.future.set_exception(exc)
            return
        if result is not None:
            req.future.set_result(result)
        else:
            req.future.set_exception(
                ConcurrencyError(self.aggregate_type, req.aggregate_id, req.expected, actual)
            )

    def _already_stored(self, req: AppendRequest) -> AppendResult | None:
        """The earlier result if every event of ``req`` was recently stored, in order."""
        first = self.recent.get(req.events[0].event_id)
        if first is None:
            return None
        positions = []
        for i, event in enumerate(req.events):
            known = self.recent.get(event.event_id)
            if known is None or known[0] != req.aggregate_id or known[1] != first[1] + i:
                return None
            positions.append(Position(self.topic, self.partition, known[2]))
        return AppendResult(first[1] + len(req.events) - 1, positions, written=False)

    def _idempotent_retry(self, req: AppendRequest, actual: int) -> AppendResult | None:
        """The earlier result if these event ids are already stored at these versions."""
        expected = req.expected
        if expected is ExpectedVersion.ANY:
            return None
        start = 0 if expected is ExpectedVersion.NO_STREAM else int(expected)
        n = len(req.events)
        if start + n > actual:
            return None
        offsets = self.index.offsets(req.aggregate_id, start + 1, start + n)
        msgs = self.reader.fetch(self.topic, self.partition, offsets)
        stored = [decode(m.value()).event_id for m in msgs]
        if stored != [e.event_id for e in req.events]:
            return None
        positions = [Position(self.topic, self.partition, o) for o in offsets]
        return AppendResult(start + n, positions, written=False)

    def _produce_transaction(
        self, batches: list[list[tuple[str, int, bytes, list[tuple[str, bytes]]]]]
    ) -> list[int]:
        producer = self._producer
        if producer is None or self.state is not State.READY:
            raise self._not_owner()
        offsets: list[int] = []
        errors: list[KafkaError] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err)
            else:
                offsets.append(msg.offset())

        try:
            producer.begin_transaction()
            for records in batches:
                for aid, _, value, hs in records:
                    producer.produce(
                        self.topic,
                        value=value,
                        key=aid,
                        partition=self.partition,
                        headers=hs,
                        on_delivery=delivered,
                    )
            producer.commit_transaction(self.config.transaction_timeout_ms / 1000)
        except KafkaException as exc:
            raise self._transaction_failed(exc) from exc
        if errors or len(offsets) != sum(len(b) for b in batches):
            raise StoreUnavailableError(
                f"{self.topic}[{self.partition}]: delivery reports disagree with the commit "
                f"({errors[:1]}); outcome unknown, retry with the same event ids."
            )
        self.transactions += 1
        offsets.sort()
        return offsets

    def _transaction_failed(self, exc: KafkaException) -> KesError:
        err: KafkaError = exc.args[0]
        producer = self._producer
        fenced = err.fatal() or err.code() in (
            KafkaError._FENCED,
            KafkaError.PRODUCER_FENCED,
            KafkaError.INVALID_PRODUCER_EPOCH,
        )
        if fenced:
            log.warning("%s[%d]: fenced by a newer owner: %s", self.topic, self.partition, err)
            self.state = State.CLOSED
            self.ready.set()
            threading.Thread(target=self._fail_queued, daemon=True).start()
            return FencedError(
                f"{self.topic}[{self.partition}]: another writer took over this partition "
                f"({err.str()}); this append was aborted and nothing of it is visible. "
                "Retry: it will go to the new owner."
            )
        if err.txn_requires_abort() and producer is not None:
            try:
                producer.abort_transaction(self.config.transaction_timeout_ms / 1000)
            except KafkaException:
                self._recover()
            return StoreUnavailableError(
                f"{self.topic}[{self.partition}]: the transaction was aborted ({err.str()}); "
                "nothing was written. Retry the append."
            )
        self._recover()
        return StoreUnavailableError(
            f"{self.topic}[{self.partition}]: the commit did not complete ({err.str()}); its "
            "outcome is unknown. Retrying with the same event ids is safe (idempotent)."
        )

    def _recover(self) -> None:
        """Start over as owner: a fresh producer aborts whatever was open, then re-read."""
        try:
            self._producer = self._new_producer()
            self.catch_up()
        except KesError:
            log.exception(
                "%s[%d]: could not recover; giving the partition up", self.topic, self.partition
            )
            self.state = State.CLOSED
