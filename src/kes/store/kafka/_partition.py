"""One event partition this process owns: its index, its recent event ids, the position
in its request partition, and the takeover that makes it ready to serve."""

from __future__ import annotations

import enum
import logging
import threading
import time

import msgspec
from confluent_kafka import Message

from kes.kafka.clients import reader
from kes.kafka.config import KafkaConfig
from kes.kafka.consume import read_range, watermarks
from kes.store.kafka._index import PartitionIndex, RecentIds, index_path

log = logging.getLogger("kes.writer")


class State(enum.Enum):
    STARTING = "starting"  # assigned; reading the log before it serves
    READY = "ready"  # serving appends
    STALE = "stale"  # a commit's outcome is unknown: read the log again before serving
    REVOKED = "revoked"  # given up in an orderly rebalance: retry at the new owner
    LOST = "lost"  # taken away (this process was presumed dead): work was fenced


class _Head(msgspec.Struct, rename="camel"):
    version: int
    event_id: str = ""


_head_decoder = msgspec.json.Decoder(_Head)


class OwnedPartition:
    """An event partition assigned to this process, with what its owner keeps."""

    def __init__(
        self,
        config: KafkaConfig,
        aggregate_type: str,
        topic: str,
        partition: int,
        request_topic: str,
        max_message_bytes: int,
        topic_id: str = "",
    ) -> None:
        self.config = config
        self.aggregate_type = aggregate_type
        self.topic = topic
        self.partition = partition
        self.request_topic = request_topic
        self.max_message_bytes = max_message_bytes
        self.topic_id = topic_id
        self.state = State.STARTING
        self.settled = threading.Event()  # set once READY or closed
        self.index = PartitionIndex(topic, partition, topic_id)
        self.recent = RecentIds(config.recent_event_ids)
        self.index_file = index_path(config.index_dir, topic, partition)
        self.restored_offset = 0  # where the saved index ended when this owner started
        self.caught_up_events = 0  # events read from the log to complete the index
        # Forwarded requests: the next offset to read, and those read but not answered.
        self.request_position = -1
        self.unanswered: dict[int, int] = {}
        # The group member this process was when the partition was assigned to it: a
        # transaction for it is sent only with that member's metadata (see _writer.py).
        self.member_id = ""
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{self.topic}[{self.partition}]({self.state.value})"

    @property
    def ready(self) -> bool:
        return self.state is State.READY

    @property
    def closed(self) -> bool:
        return self.state in (State.REVOKED, State.LOST)

    # ---- takeover ----------------------------------------------------------------------

    def take(self) -> None:
        """Load the saved index and read the log to the high watermark seen now.

        Reading read_committed up to that offset waits out a previous owner's transaction
        that is still open (its records lie below the mark): whatever it wrote is either
        committed and indexed here, or aborted, before this owner serves.
        """
        started = time.monotonic()
        self.index = PartitionIndex.load(self.index_file, self.topic, self.partition, self.topic_id)
        self.restored_offset = self.index.next_offset
        self.caught_up_events = self.catch_up()
        log.info(
            "%s[%d]: owner after %.0f ms (%d aggregates, %d events read, next offset %d)",
            self.topic,
            self.partition,
            (time.monotonic() - started) * 1000,
            len(self.index),
            self.caught_up_events,
            self.index.next_offset,
            extra={
                "aggregate_type": self.aggregate_type,
                "topic": self.topic,
                "partition": self.partition,
                "offset": self.index.next_offset,
            },
        )

    def catch_up(self) -> int:
        """Index every committed record from ``next_offset`` to the current high
        watermark; returns how many events were read."""
        # Up to 8 partitions catch up at once: a smaller prefetch each bounds the memory.
        consumer = reader(self.config, **{"queued.max.messages.kbytes": 16384})
        try:
            low, high = watermarks(self.config, self.topic, self.partition)
            if not low <= self.index.next_offset <= high:
                log.warning(
                    "%s[%d]: saved index ends at %d but the log spans %d..%d; rebuilding",
                    self.topic,
                    self.partition,
                    self.index.next_offset,
                    low,
                    high,
                )
                self.index = PartitionIndex(self.topic, self.partition, self.topic_id)
                self.recent = RecentIds(self.config.recent_event_ids)
            start = max(self.index.next_offset, low)
            count = 0
            batch: list[tuple[str, int, int]] = []
            wait_s = self.config.open_transaction_wait_s
            for msg in read_range(consumer, self.topic, self.partition, start, high, wait_s):
                entry = self._head(msg)
                if entry is not None:
                    batch.append(entry)
                    count += 1
                if len(batch) >= 5000:
                    self.index.record_many(batch)
                    batch = []
            self.index.record_many(batch)
            self.index.advance(high)
            return count
        finally:
            consumer.close()

    def _head(self, msg: Message) -> tuple[str, int, int] | None:
        try:
            head = _head_decoder.decode(msg.value())
            aggregate_id = msg.key().decode()
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, AttributeError):
            log.warning(
                "%s[%d]@%d is not a kes event; left out of the index",
                self.topic,
                self.partition,
                msg.offset(),
            )
            return None
        if head.event_id:
            self.recent.add(head.event_id, aggregate_id, head.version, msg.offset())
        return aggregate_id, head.version, msg.offset()

    # ---- state -------------------------------------------------------------------------

    def set_state(self, state: State, only_from: State | None = None) -> bool:
        """Move to ``state`` (if the state is ``only_from``, when given); False when it
        did not. A revoked or lost partition stays so: its successor is another object."""
        with self._lock:
            if self.closed or (only_from is not None and self.state is not only_from):
                return False
            self.state = state
        if state is not State.STARTING:
            self.settled.set()
        return True

    def save_index(self) -> None:
        try:
            self.index.save(self.index_file)
        except OSError as exc:  # the index is a cache: serving goes on without it
            log.warning("could not save index %s: %s", self.index_file, exc)

    # ---- forwarded requests -------------------------------------------------------------

    def request_read(self, offset: int) -> None:
        """A forwarded request at ``offset`` was read; it is answered later."""
        with self._lock:
            self.request_position = offset + 1
            self.unanswered[offset] = self.unanswered.get(offset, 0) + 1

    def request_answered(self, offset: int) -> None:
        with self._lock:
            left = self.unanswered.get(offset, 0) - 1
            if left > 0:
                self.unanswered[offset] = left
            else:
                self.unanswered.pop(offset, None)

    def request_commit_offset(self, in_transaction: set[int]) -> int:
        """The request-topic offset to commit with a transaction holding the forwarded
        requests at ``in_transaction``: everything before it is answered or in it."""
        with self._lock:
            waiting = [o for o in self.unanswered if o not in in_transaction]
            return min(waiting) if waiting else self.request_position
