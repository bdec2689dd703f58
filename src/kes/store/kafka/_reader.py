"""Reading one aggregate's events back: the offsets the index gives, fetched with a small
pool of group-less read_committed consumers."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import msgspec
from confluent_kafka import Consumer, Message

from kes.envelope import Envelope, Position, RecordedEvent, decode
from kes.errors import StoreUnavailableError
from kes.kafka.clients import reader
from kes.kafka.config import KafkaConfig
from kes.kafka.consume import read_range, watermarks

# Skipping this many records of other aggregates is cheaper than one more seek.
SEEK_GAP = 4_000


def to_recorded(msg: Message) -> RecordedEvent:
    env = decode(msg.value())
    return RecordedEvent(env, Position(msg.topic(), msg.partition(), msg.offset()))


def try_decode(msg: Message) -> Envelope | None:
    try:
        return decode(msg.value())
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
        return None


class OffsetReader:
    """Fetches given offsets of one partition with a small pool of consumers."""

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
                c = reader(
                    self.config, **{"queued.max.messages.kbytes": 4096, "fetch.wait.max.ms": 1}
                )
                self._all.append(c)
                return c
        return self._pool.get()

    def fetch(self, topic: str, partition: int, offsets: list[int]) -> list[Message]:
        """The records at ``offsets`` (sorted ascending, known committed), in that order."""
        if not offsets:
            return []
        consumer = self._acquire()
        try:
            out: list[Message] = []
            wait_s = self.config.open_transaction_wait_s
            for run in _runs(offsets):
                wanted = set(run)
                try:
                    out.extend(
                        msg
                        for msg in read_range(
                            consumer, topic, partition, run[0], run[-1] + 1, wait_s
                        )
                        if msg.offset() in wanted
                    )
                except StoreUnavailableError:
                    _, high = watermarks(self.config, topic, partition)
                    if run[-1] >= high:
                        raise StoreUnavailableError(
                            f"{topic}[{partition}]: offsets up to {run[-1]} are past the end "
                            f"of the partition ({high}); the index does not match the topic. "
                            "Rebuild it with `kes index rebuild`.",
                            "not_written",
                        ) from None
                    raise
            return out
        finally:
            consumer.unassign()  # an idle consumer sends no fetches
            self._pool.put(consumer)

    def read(self, topic: str, partition: int, start: int, end: int) -> list[Message]:
        """Every committed record at offsets ``start <= o < end``."""
        consumer = self._acquire()
        try:
            wait_s = self.config.open_transaction_wait_s
            return list(read_range(consumer, topic, partition, start, end, wait_s))
        finally:
            consumer.unassign()
            self._pool.put(consumer)

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
