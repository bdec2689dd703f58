"""Snapshots in a compacted Kafka topic, served from memory.

Topic
    ``kes.snapshots.<topic_prefix without its trailing dots>`` (``kes.snapshots.kes.events``
    for the default prefix ``kes.events.``; ``kes.snapshots`` for an empty prefix). It lies
    outside ``topic_prefix``, so it can never be taken for the event topic of an aggregate
    type (nor be listed by ``Topics.event_topics``), and its last part contains a dot, which
    an aggregate type cannot, so it cannot equal an event topic of another prefix either
    (save for prefixes built to collide). One topic holds every aggregate type's snapshots:
    ``cleanup.policy=compact``, ``min.insync.replicas`` = RF-1,
    RF = ``Topics.replication_factor()``.

Records
    key ``"<aggregate_type>/<aggregate_id>"`` (UTF-8; an aggregate type cannot contain ``/``),
    value the msgspec JSON of :class:`~kes.snapshots.Snapshot`, header ``contentType``.
    :meth:`KafkaSnapshotStore.delete` writes a tombstone (value ``None``).

Reading
    The first use starts a background thread whose consumer (``read_committed``) reads
    the topic from the beginning; the first :meth:`~KafkaSnapshotStore.get` waits until it
    reached the end of every partition, then every ``get`` is a dict lookup. The thread keeps
    following the topic, so snapshots written by other processes arrive within a fetch
    wait (~10 ms). We chose this over "check the high watermarks on every get": that costs
    a broker round trip per partition per load, while staleness costs nothing here — a
    snapshot is the state *at its version*, the repository always replays the events after
    it, so an older snapshot only means a few more events to read. Our own ``put``/``delete``
    are visible at once (write-through). Per key the entry with the highest offset wins,
    which is what compaction keeps, so every process converges to the topic's contents.

Snapshots are only a cache. If the topic is deleted, the store forgets every snapshot
(as a fresh process would) and re-creates the topic on the next ``put``; loads fall back
to the events. Memory: one encoded snapshot per aggregate (decoded on each ``get``, so
callers never share mutable state with the cache).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import msgspec
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from kes.errors import EventTooLargeError, KesError, StoreUnavailableError
from kes.snapshots import Snapshot, SnapshotStore
from kes.store.base import check_aggregate
from kes.store.kafka.config import KafkaConfig
from kes.store.kafka.reader import drain
from kes.store.kafka.topics import TopicInfo, Topics

__all__ = ["KafkaSnapshotStore", "snapshot_topic", "snapshot_topic_configs"]

log = logging.getLogger("kes.snapshots")

TOPIC_CHECK_S = 5.0  # how often the reader checks that the topic still exists

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Snapshot)
_HEADERS = [("contentType", b"application/json")]


def snapshot_topic(config: KafkaConfig) -> str:
    """The snapshot topic's name for ``config`` (see the module docstring)."""
    part = config.topic_prefix.strip(".")
    return f"kes.snapshots.{part}" if part else "kes.snapshots"


def snapshot_topic_configs(replication_factor: int) -> dict[str, str]:
    return {
        "cleanup.policy": "compact",
        "min.insync.replicas": str(max(1, replication_factor - 1)),
        "unclean.leader.election.enable": "false",
    }


def _key(aggregate_type: str, aggregate_id: str) -> str:
    return f"{aggregate_type}/{aggregate_id}"


class KafkaSnapshotStore(SnapshotStore):
    """The latest snapshot per aggregate, kept in a compacted topic and served from memory.

    ``topic`` overrides the topic name; ``partitions`` defaults to ``config.partitions``.
    Connects lazily: nothing touches Kafka before the first ``get``/``put``/``delete``.
    """

    def __init__(
        self, config: KafkaConfig, topic: str | None = None, partitions: int | None = None
    ) -> None:
        self.config = config
        self.topic = topic or snapshot_topic(config)
        self.partitions = partitions or config.partitions
        self.load_seconds: float | None = None  # time the initial read of the topic took
        self.loaded_records = 0  # records read by the initial load
        # key -> (partition, offset, encoded snapshot)
        self._entries: dict[str, tuple[int, int, bytes]] = {}
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._topic_gone = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: Producer | None = None
        self._topics: Topics | None = None
        self._info: TopicInfo | None = None
        self._closed = False
        self._started_at = 0.0

    # ---- the contract ------------------------------------------------------------

    def get(self, aggregate_type: str, aggregate_id: str) -> Snapshot | None:
        """The latest snapshot known here; waits for the initial load on first use.

        Raises StoreUnavailableError when the topic cannot be read to its end within
        ``config.ready_timeout_s`` (the repository then loads from the events alone).
        """
        self._start()
        if not self._loaded.wait(self.config.ready_timeout_s):
            raise StoreUnavailableError(
                f"snapshot topic {self.topic} at {self.config.bootstrap_servers} was not read "
                f"to its end within {self.config.ready_timeout_s:.0f}s. Check that Kafka is "
                "reachable, or raise KafkaConfig.ready_timeout_s for a very large topic."
            )
        with self._lock:
            entry = self._entries.get(_key(aggregate_type, aggregate_id))
        return None if entry is None else _decoder.decode(entry[2])

    def put(self, snapshot: Snapshot) -> None:
        """Store ``snapshot`` (acks=all, waits for delivery) unless a newer one is held.

        Raises EventTooLargeError when the encoded snapshot exceeds the topic's
        ``max.message.bytes`` and StoreUnavailableError when Kafka does not confirm it.
        """
        check_aggregate(snapshot.aggregate_type, snapshot.aggregate_id)
        key = _key(snapshot.aggregate_type, snapshot.aggregate_id)
        value = _encoder.encode(snapshot)
        info = self._start()
        if len(value) + len(key) > info.max_message_bytes:
            raise EventTooLargeError(
                f"the snapshot of {snapshot.aggregate_type} {snapshot.aggregate_id!r} at "
                f"version {snapshot.version} is {len(value)} bytes; topic {self.topic} accepts "
                f"{info.max_message_bytes}. Keep less state in the aggregate, or raise the "
                "topic's max.message.bytes."
            )
        with self._lock:
            held = self._entries.get(key)
        if held is not None and _decoder.decode(held[2]).version > snapshot.version:
            return  # never replace a newer snapshot with an older one
        partition, offset = self._produce(
            key, value, f"snapshot of {key} at version {snapshot.version}"
        )
        self._apply(key, partition, offset, value)

    def delete(self, aggregate_type: str, aggregate_id: str) -> None:
        """Write a tombstone for the aggregate's snapshot and forget it here."""
        check_aggregate(aggregate_type, aggregate_id)
        key = _key(aggregate_type, aggregate_id)
        self._start()
        partition, offset = self._produce(key, None, f"tombstone for {key}")
        self._apply(key, partition, offset, None)

    # ---- life cycle ------------------------------------------------------------------

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Start if needed and wait for the initial load; True when done."""
        self._start()
        return self._loaded.wait(timeout)

    def __len__(self) -> int:
        """How many snapshots are held in memory."""
        with self._lock:
            return len(self._entries)

    def close(self) -> None:
        """Stop the background consumer and flush the producer. Idempotent."""
        with self._start_lock:
            self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._producer is not None:
            self._producer.flush(10)

    def __enter__(self) -> KafkaSnapshotStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals -------------------------------------------------------------------

    def _start(self) -> TopicInfo:
        with self._start_lock:
            if self._closed:
                raise StoreUnavailableError(
                    f"this KafkaSnapshotStore ({self.topic}) is closed; create a new one."
                )
            if self._topics is None:
                self._topics = Topics(self.config)
            if self._info is None or self._topic_gone.is_set():
                self._info = self._ensure_topic()
                self._topic_gone.clear()
            if self._producer is None:
                conf = self.config.base()
                conf.update(
                    {
                        "acks": "all",
                        "enable.idempotence": True,
                        "linger.ms": 2,
                        "partitioner": "murmur2_random",  # where the Java client puts a key
                        "allow.auto.create.topics": False,
                        "message.timeout.ms": int(self.config.request_timeout_s * 1000),
                    }
                )
                self._producer = Producer(conf)
            if self._thread is None:
                self._started_at = time.monotonic()
                self._thread = threading.Thread(
                    target=self._follow, name=f"kes-snapshots-{self.topic}", daemon=True
                )
                self._thread.start()
            return self._info

    def _ensure_topic(self) -> TopicInfo:
        assert self._topics is not None
        rf = self._topics.replication_factor()
        info = self._topics.ensure(self.topic, self.partitions, snapshot_topic_configs(rf), rf)
        policy = info.configs.get("cleanup.policy", "delete")
        if "compact" not in policy:
            log.warning(
                "snapshot topic %s has cleanup.policy=%s, not compact: old snapshots are "
                "never cleaned and current ones may expire (loads then only get slower). "
                "Set cleanup.policy=compact on it.",
                self.topic,
                policy,
            )
        self.partitions = info.partitions
        return info

    def _produce(self, key: str, value: bytes | None, what: str) -> tuple[int, int]:
        assert self._producer is not None
        done = threading.Event()
        result: list[Any] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            result.append(err if err is not None else (msg.partition(), msg.offset()))
            done.set()

        try:
            self._producer.produce(
                self.topic, key=key.encode(), value=value, headers=_HEADERS, on_delivery=delivered
            )
        except (KafkaException, BufferError) as exc:
            raise StoreUnavailableError(
                f"could not send the {what} to {self.topic}: {exc}."
            ) from exc
        deadline = time.monotonic() + self.config.request_timeout_s + 5
        while not done.is_set() and time.monotonic() < deadline:
            self._producer.poll(0.05)
        if not result:
            raise StoreUnavailableError(
                f"Kafka at {self.config.bootstrap_servers} did not confirm the {what} within "
                f"{self.config.request_timeout_s:.0f}s; it may or may not be stored (harmless: "
                "snapshots are a cache). Check the broker."
            )
        outcome = result[0]
        if isinstance(outcome, KafkaError):
            self._topic_gone.set()  # described (and re-created if missing) on the next call
            raise StoreUnavailableError(
                f"Kafka refused the {what} on {self.topic}: {outcome.str()}. Snapshots are a "
                "cache: loads stay correct, only slower."
            )
        partition, offset = outcome
        return int(partition), int(offset)

    def _apply(self, key: str, partition: int, offset: int, value: bytes | None) -> None:
        """Keep the record with the highest offset per key, as compaction does."""
        with self._lock:
            held = self._entries.get(key)
            if held is not None and held[0] == partition and held[1] > offset:
                return
            if value is None:
                self._entries.pop(key, None)
            else:
                self._entries[key] = (partition, offset, value)

    def _forget_partition(self, partition: int) -> None:
        with self._lock:
            for key in [k for k, e in self._entries.items() if e[0] == partition]:
                del self._entries[key]

    def _forget_all(self) -> None:
        with self._lock:
            self._entries.clear()

    def _follow(self) -> None:
        """Background thread: read the topic from the beginning, then follow it."""
        consumer = Consumer(self.config.reader(**{"allow.auto.create.topics": False}))
        at_end: set[int] = set()
        seen: dict[int, int] = {}  # partition -> highest offset read
        assigned = 0
        next_check = time.monotonic() + TOPIC_CHECK_S
        try:
            while not self._stop.is_set():
                if assigned != self.partitions:
                    assigned = self.partitions
                    consumer.assign(
                        [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(assigned)]
                    )
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + TOPIC_CHECK_S
                    if not self._topic_exists(consumer):
                        self._on_topic_gone()
                        seen.clear()
                for msg in drain(consumer, 1000, 0.1):
                    err = msg.error()
                    if err is None:
                        p, offset, key = msg.partition(), msg.offset(), msg.key()
                        if offset <= seen.get(p, -1):
                            # The log went backwards: the topic was deleted and re-created.
                            log.warning(
                                "snapshot topic %s[%d] restarted at offset %d (it was deleted "
                                "and re-created); its older snapshots are forgotten here.",
                                self.topic,
                                p,
                                offset,
                            )
                            self._forget_partition(p)
                        seen[p] = offset
                        if key is not None:
                            self._apply(key.decode("utf-8", "replace"), p, offset, msg.value())
                            if not self._loaded.is_set():
                                self.loaded_records += 1
                    elif err.code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        if len(at_end) >= assigned and not self._loaded.is_set():
                            self.load_seconds = time.monotonic() - self._started_at
                            self._loaded.set()
                    elif err.code() in (
                        KafkaError.UNKNOWN_TOPIC_OR_PART,
                        KafkaError._UNKNOWN_TOPIC,
                    ):
                        self._on_topic_gone()
                        seen.clear()
                    else:
                        log.warning("snapshot topic %s: %s", self.topic, err.str())
        except (KafkaException, KesError):
            log.exception("snapshot topic %s: the reader stopped; gets now miss", self.topic)
            self._forget_all()
            self._loaded.set()
        finally:
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()

    def _topic_exists(self, consumer: Consumer) -> bool:
        try:
            md = consumer.list_topics(self.topic, timeout=5)
        except KafkaException:
            return True  # cannot tell: keep what we hold
        t = md.topics.get(self.topic)
        return t is not None and t.error is None and bool(t.partitions)

    def _on_topic_gone(self) -> None:
        if not self._topic_gone.is_set():
            log.warning(
                "snapshot topic %s is gone: its snapshots are forgotten here and the next "
                "put re-creates it; loads use the events meanwhile.",
                self.topic,
            )
        self._topic_gone.set()
        self._forget_all()
        self._loaded.set()  # an absent topic is fully read: it holds nothing
