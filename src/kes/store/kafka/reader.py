"""Reading events back from Kafka: by offsets (one aggregate) or whole partitions."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Mapping

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from kes.envelope import Envelope, Position, RecordedEvent, decode
from kes.errors import StoreUnavailableError
from kes.store.kafka.config import KafkaConfig

log = logging.getLogger("kes.reader")

# Skipping this many records of other aggregates is cheaper than one more seek.
SEEK_GAP = 4_000
# How long an offset known to be committed may stay invisible before we call it missing.
END_GRACE_S = 5.0


def drain(consumer: Consumer, max_messages: int, timeout: float) -> list[Message]:
    """Wait up to ``timeout`` for one record, then take what else is ready, without waiting.

    (``Consumer.consume(n, timeout)`` alone waits for all ``n`` or the full timeout.)
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    if max_messages <= 1:
        return [first]
    return [first, *consumer.consume(num_messages=max_messages - 1, timeout=0)]


def to_recorded(msg: Message) -> RecordedEvent:
    env = decode(msg.value())
    return RecordedEvent(env, Position(msg.topic(), msg.partition(), msg.offset()))


def try_decode(msg: Message) -> Envelope | None:
    try:
        return decode(msg.value())
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
        return None


class OffsetReader:
    """Fetches given offsets of one partition with a small pool of group-less consumers."""

    def __init__(self, config: KafkaConfig, pool_size: int = 4) -> None:
        self.config = config
        self._pool: queue.LifoQueue[Consumer] = queue.LifoQueue()
        self._created = 0
        self._pool_size = pool_size
        self._lock = threading.Lock()
        self._all: list[Consumer] = []

    def _acquire(self) -> Consumer:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._created < self._pool_size:
                self._created += 1
                # A fetch outstanding at the end of the log delays the next assign by up
                # to fetch.wait.max.ms: keep it short, and unassign when idle (below).
                c = Consumer(
                    self.config.reader(
                        **{"queued.max.messages.kbytes": 4096, "fetch.wait.max.ms": 1}
                    )
                )
                self._all.append(c)
                return c
        return self._pool.get()

    def fetch(self, topic: str, partition: int, offsets: list[int]) -> list[Message]:
        """The records at ``offsets`` (sorted ascending), in that order."""
        if not offsets:
            return []
        consumer = self._acquire()
        try:
            out: list[Message] = []
            for run in _runs(offsets):
                out.extend(self._fetch_run(consumer, topic, partition, run))
            return out
        finally:
            consumer.unassign()  # an idle consumer sends no fetches
            self._pool.put(consumer)

    def _fetch_run(
        self, consumer: Consumer, topic: str, partition: int, run: list[int]
    ) -> list[Message]:
        wanted = set(run)
        last = run[-1]
        consumer.assign([TopicPartition(topic, partition, run[0])])
        found: list[Message] = []
        deadline = time.monotonic() + self.config.request_timeout_s
        at_end_since: float | None = None
        while time.monotonic() < deadline:
            for msg in drain(consumer, 1000, 0.1):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise StoreUnavailableError(f"reading {topic}[{partition}]: {err}")
                    # A commit returns before its markers are written: for a moment a
                    # read_committed reader still ends before the newest events. Wait.
                    at_end_since = at_end_since or time.monotonic()
                    continue
                if msg.partition() != partition or msg.topic() != topic:
                    continue
                at_end_since = None
                off = msg.offset()
                if off < run[0]:
                    continue  # fetched for an earlier request on this pooled consumer
                if off in wanted:
                    found.append(msg)
                if off >= last:
                    return found
            if at_end_since is not None and time.monotonic() - at_end_since > END_GRACE_S:
                missing = sorted(wanted - {m.offset() for m in found})
                raise StoreUnavailableError(
                    f"{topic}[{partition}]: offsets {missing[:5]} are past the end of "
                    "the partition; the index does not match the topic. Rebuild it "
                    "with `kes index rebuild`."
                )
        raise StoreUnavailableError(
            f"reading {topic}[{partition}] offsets {run[0]}..{last} took longer than "
            f"{self.config.request_timeout_s}s; is the broker healthy?"
        )

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                c.close()
            self._all.clear()


def _runs(offsets: list[int]) -> Iterator[list[int]]:
    run = [offsets[0]]
    for off in offsets[1:]:
        if off - run[-1] > SEEK_GAP:
            yield run
            run = [off]
        else:
            run.append(off)
    yield run


def scan(
    config: KafkaConfig,
    topic: str,
    partitions: int,
    from_positions: Mapping[int, int] | None = None,
    follow: bool = False,
    stop: threading.Event | None = None,
    raw: bool = False,
) -> Iterator[Message]:
    """Every committed record of ``topic`` from the given offsets.

    Without ``follow`` it stops at the end of each partition as it was when called.
    """
    consumer = Consumer(config.reader())
    try:
        starts = from_positions or {}
        tps = [TopicPartition(topic, p, starts.get(p, OFFSET_BEGINNING)) for p in range(partitions)]
        ends: dict[int, int] = {}
        if not follow:
            for tp in tps:
                _, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                ends[tp.partition] = high
            tps = [tp for tp in tps if ends[tp.partition] > max(tp.offset, 0)]
            if not tps:
                return
        consumer.assign(tps)
        open_parts = {tp.partition for tp in tps}
        while open_parts or follow:
            if stop is not None and stop.is_set():
                return
            for msg in drain(consumer, 500, 0.2):
                err = msg.error()
                p = msg.partition()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if not follow:
                            open_parts.discard(p)
                        continue
                    raise StoreUnavailableError(f"reading {topic}[{p}]: {err}")
                if not follow:
                    if p not in open_parts or msg.offset() >= ends[p]:
                        open_parts.discard(p)
                        continue
                    if msg.offset() == ends[p] - 1:
                        open_parts.discard(p)
                yield msg
    finally:
        consumer.close()
