"""A compacted topic read into memory: every record from the beginning handed to the
owner's ``apply``, then the topic caught up with on demand or followed continuously.

Used by the snapshot store (followed: gets are dict lookups), the key ring (followed,
and :meth:`CompactedTopic.wait_until_end` before deciding a key is missing) and the
schema registry (caught up before each read: one watermark query). The component
notices a deleted or re-created topic (offsets that go backwards, or a topic that
vanished) and tells the owner to ``forget`` what it held, as a fresh process would.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from kes.errors import KesError
from kes.kafka.clients import reader
from kes.kafka.config import KafkaConfig
from kes.kafka.consume import drain, read_range, watermarks
from kes.kafka.errors import kafka_errors

__all__ = ["CompactedTopic"]

log = logging.getLogger("kes.kafka")

TOPIC_CHECK_S = 5.0  # how often a follower checks that its topic still exists

Apply = Callable[[Message], None]
Forget = Callable[[int | None], None]  # a partition, or None: every partition


class CompactedTopic:
    """Feeds a compacted topic's records to ``apply``, in offset order per partition."""

    def __init__(
        self, config: KafkaConfig, topic: str, partitions: int, apply: Apply, forget: Forget
    ) -> None:
        self.config = config
        self.topic = topic
        self.partitions = partitions
        self.apply = apply
        self.forget = forget
        self.loaded = threading.Event()  # the first read reached every partition's end
        self.gone = threading.Event()  # the topic vanished; the owner re-creates it
        self.load_seconds: float | None = None
        self.loaded_records = 0
        self._next: dict[int, int] = {}  # partition -> next offset to read
        self._reached: dict[int, int] = {}  # partition -> position up to which records are applied
        self._moved = threading.Condition()  # notified when the follower's positions move
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- on demand -------------------------------------------------------------------------

    def catch_up(self) -> None:
        """Read every partition up to its high watermark as of now (caller's thread)."""
        with self._lock:
            if self._consumer is None:
                self._consumer = reader(self.config, **{"allow.auto.create.topics": False})
            consumer = self._consumer
            for p in range(self.partitions):
                low, high = watermarks(self.config, self.topic, p, self.config.request_timeout_s)
                start = self._next.get(p, 0)
                if start > high:  # the topic was deleted and re-created
                    self._reset(p)
                    start = 0
                start = max(start, low)
                for msg in read_range(
                    consumer, self.topic, p, start, high, self.config.open_transaction_wait_s
                ):
                    self.apply(msg)
                self._next[p] = max(start, high)
            self.loaded.set()

    # ---- following ---------------------------------------------------------------------------

    def follow(self) -> None:
        """Start a thread reading from the beginning and following the topic."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._follow, name=f"kes-table-{self.topic}", daemon=True
                )
                self._thread.start()

    def wait_until_end(self, timeout: float) -> bool:
        """Wait until the follower has applied every record written before this call:
        its position in each partition reached the high watermark taken now. False on
        timeout. Only for a followed topic."""
        deadline = time.monotonic() + timeout
        if not self.loaded.wait(timeout):
            return False
        if self.gone.is_set():
            return True  # an absent topic holds nothing more
        highs = {
            p: watermarks(self.config, self.topic, p, max(1.0, deadline - time.monotonic()))[1]
            for p in range(self.partitions)
        }
        with self._moved:
            return self._moved.wait_for(
                lambda: (
                    self.gone.is_set()
                    or all(self._reached.get(p, 0) >= high for p, high in highs.items())
                ),
                max(0.0, deadline - time.monotonic()),
            )

    def _follow(self) -> None:
        started = time.monotonic()
        consumer = reader(self.config, **{"allow.auto.create.topics": False})
        at_end: set[int] = set()
        assigned = 0
        next_check = time.monotonic() + TOPIC_CHECK_S
        try:
            while not self._stop.is_set():
                if assigned != self.partitions:
                    assigned = self.partitions
                    with kafka_errors(f"reading {self.topic}"):
                        consumer.assign(
                            [
                                TopicPartition(self.topic, p, OFFSET_BEGINNING)
                                for p in range(assigned)
                            ]
                        )
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + TOPIC_CHECK_S
                    if not self._exists(consumer):
                        self._on_gone()
                for msg in drain(consumer, 1000, 0.1):
                    err = msg.error()
                    p = msg.partition()
                    if err is None:
                        if msg.offset() < self._next.get(p, 0):
                            log.warning(
                                "%s[%d] restarted at offset %d (deleted and re-created); what "
                                "it held is forgotten here.",
                                self.topic,
                                p,
                                msg.offset(),
                            )
                            self._reset(p)
                        self._next[p] = msg.offset() + 1
                        self.apply(msg)
                        self._reached[p] = msg.offset() + 1
                        if not self.loaded.is_set():
                            self.loaded_records += 1
                    elif err.code() == KafkaError._PARTITION_EOF:
                        self._reached[p] = msg.offset()
                        at_end.add(p)
                        if len(at_end) >= assigned and not self.loaded.is_set():
                            self.load_seconds = time.monotonic() - started
                            self.loaded.set()
                    elif err.code() in (
                        KafkaError.UNKNOWN_TOPIC_OR_PART,
                        KafkaError._UNKNOWN_TOPIC,
                    ):
                        self._on_gone()
                    else:
                        log.warning("%s: %s", self.topic, err.str())
                with self._moved:
                    self._moved.notify_all()
        except (KafkaException, KesError):
            log.exception("%s: the reader stopped; what it held is forgotten", self.topic)
            self.forget(None)
            self.loaded.set()
        finally:
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()

    def _exists(self, consumer: Consumer) -> bool:
        try:
            md = consumer.list_topics(self.topic, timeout=5)
        except KafkaException:
            return True  # cannot tell: keep what we hold
        t = md.topics.get(self.topic)
        return t is not None and t.error is None and bool(t.partitions)

    def _on_gone(self) -> None:
        self._reached.clear()
        if not self.gone.is_set():
            log.warning(
                "%s is gone: what it held is forgotten here; it is re-created on the next write.",
                self.topic,
            )
        self.gone.set()
        self._next.clear()
        self.forget(None)
        self.loaded.set()  # an absent topic is fully read: it holds nothing

    def _reset(self, partition: int) -> None:
        self._next.pop(partition, None)
        self._reached.pop(partition, None)
        self.forget(partition)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            if self._consumer is not None:
                with contextlib.suppress(KafkaException, RuntimeError):
                    self._consumer.close()
                self._consumer = None
