"""Snapshots in a compacted Kafka topic, served from memory.

Topic ``KafkaConfig.snapshot_topic()`` (the topics table in docs/operations.md): one
for every aggregate type, keyed ``"<aggregate_type>/<aggregate_id>"`` (an aggregate type
cannot contain ``/``), value the msgspec JSON of :class:`~kes.snapshots.Snapshot`,
header ``contentType`` (and ``kesSubjects``, a JSON list, for a snapshot sealed with data
subjects' keys); :meth:`KafkaSnapshotStore.delete` writes a tombstone.

The first use starts following the topic from its beginning (``kes.kafka.table``); the
first ``get`` waits until every partition was read to its end, then each ``get`` is a
dict lookup, and snapshots other processes write arrive within a fetch wait. Staleness
costs nothing here: a snapshot is the state *at its version* and the repository always
replays the events after it. Our own puts are visible at once. Per key the record with
the highest offset wins, as compaction keeps. Snapshots are only a cache: if the topic
is deleted the store forgets them and re-creates it on the next put; loads use the
events meanwhile. docs/design.md ("Snapshots") says why it is built this way.
"""

from __future__ import annotations

import contextlib
import threading

import msgspec
from confluent_kafka import Message, Producer

from kes.errors import EventTooLargeError, StoreUnavailableError
from kes.kafka.clients import producer
from kes.kafka.config import KafkaConfig
from kes.kafka.produce import send_and_confirm
from kes.kafka.table import CompactedTopic
from kes.kafka.topics import SNAPSHOTS, TopicInfo, Topics
from kes.snapshots import Snapshot, SnapshotStore
from kes.store.base import check_stream

__all__ = ["KafkaSnapshotStore", "snapshot_topic"]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Snapshot)
_HEADERS = [("contentType", b"application/json")]
SUBJECTS_HEADER = "kesSubjects"
_subjects_decoder = msgspec.json.Decoder(list[str])


def snapshot_topic(config: KafkaConfig) -> str:
    """The snapshot topic's name for ``config``."""
    return config.snapshot_topic()


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
        # key -> (partition, offset, encoded snapshot)
        self._entries: dict[str, tuple[int, int, bytes]] = {}
        self._holding: dict[str, set[str]] = {}  # data subject -> keys of sealed snapshots
        self._subjects: dict[str, list[str]] = {}  # key -> its sealed snapshot's subjects
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._producer: Producer | None = None
        self._table: CompactedTopic | None = None
        self._info: TopicInfo | None = None
        self._closed = False

    @property
    def load_seconds(self) -> float | None:
        """How long the initial read of the topic took."""
        return None if self._table is None else self._table.load_seconds

    @property
    def loaded_records(self) -> int:
        """Records read by the initial load."""
        return 0 if self._table is None else self._table.loaded_records

    # ---- the contract ------------------------------------------------------------

    def get(self, aggregate_type: str, aggregate_id: str) -> Snapshot | None:
        """The latest snapshot known here; waits for the initial load on first use.

        Raises StoreUnavailableError when the topic cannot be read to its end within
        ``config.ready_timeout_s`` (the repository then loads from the events alone).
        """
        table = self._start()[0]
        if not table.loaded.wait(self.config.ready_timeout_s):
            raise StoreUnavailableError(
                f"snapshot topic {self.topic} at {self.config.bootstrap_servers} was not read "
                f"to its end within {self.config.ready_timeout_s:.0f}s. Check that Kafka is "
                "reachable, or raise KafkaConfig.ready_timeout_s for a very large topic.",
                "not_written",
            )
        with self._lock:
            entry = self._entries.get(_key(aggregate_type, aggregate_id))
        return None if entry is None else _decoder.decode(entry[2])

    def put(self, snapshot: Snapshot) -> None:
        """Store ``snapshot`` (acks=all, waits for delivery) unless a newer one is held.

        Raises EventTooLargeError when the encoded snapshot exceeds the topic's
        ``max.message.bytes`` and StoreUnavailableError when Kafka does not confirm it.
        """
        check_stream(snapshot.aggregate_type, snapshot.aggregate_id)
        key = _key(snapshot.aggregate_type, snapshot.aggregate_id)
        value = _encoder.encode(snapshot)
        _, info = self._start()
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
        self._write(
            key, value, f"snapshot of {key} at version {snapshot.version}", snapshot.subjects
        )

    def delete(self, aggregate_type: str, aggregate_id: str) -> None:
        """Write a tombstone for the aggregate's snapshot and forget it here."""
        check_stream(aggregate_type, aggregate_id)
        key = _key(aggregate_type, aggregate_id)
        self._start()
        self._write(key, None, f"tombstone for {key}")

    def delete_holding(self, subject: str) -> int:
        """Tombstone every snapshot sealed with ``subject``'s key; returns how many."""
        self.wait_loaded(self.config.ready_timeout_s)
        with self._lock:
            keys = sorted(self._holding.get(subject, ()))
        for key in keys:
            self._write(key, None, f"tombstone for {key} (subject {subject!r} forgotten)")
        return len(keys)

    # ---- life cycle ------------------------------------------------------------------

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Start if needed and wait for the initial load; True when done."""
        return self._start()[0].loaded.wait(timeout)

    def __len__(self) -> int:
        """How many snapshots are held in memory."""
        with self._lock:
            return len(self._entries)

    def close(self) -> None:
        """Stop following the topic and flush the producer. Idempotent."""
        with self._start_lock:
            self._closed = True
        if self._table is not None:
            self._table.close()
        if self._producer is not None:
            self._producer.flush(10)

    def __enter__(self) -> KafkaSnapshotStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals -------------------------------------------------------------------

    def _start(self) -> tuple[CompactedTopic, TopicInfo]:
        with self._start_lock:
            if self._closed:
                raise StoreUnavailableError(
                    f"this KafkaSnapshotStore ({self.topic}) is closed; create a new one.",
                    "not_written",
                )
            if self._info is None or (self._table is not None and self._table.gone.is_set()):
                self._info = Topics(self.config).ensure(SNAPSHOTS, self.topic, self.partitions)
                self.partitions = self._info.partitions
                if self._table is not None:
                    self._table.partitions = self.partitions
                    self._table.gone.clear()
            if self._producer is None:
                self._producer = producer(
                    self.config,
                    **{
                        "linger.ms": 2,
                        "message.timeout.ms": int(self.config.request_timeout_s * 1000),
                    },
                )
            if self._table is None:
                self._table = CompactedTopic(
                    self.config, self.topic, self.partitions, self._read, self._forget
                )
                self._table.follow()
            return self._table, self._info

    def _write(
        self, key: str, value: bytes | None, what: str, subjects: list[str] | None = None
    ) -> None:
        assert self._producer is not None
        headers = _HEADERS
        if subjects:
            headers = [*_HEADERS, (SUBJECTS_HEADER, msgspec.json.encode(subjects))]
        try:
            partition, offset = send_and_confirm(
                self._producer,
                self.topic,
                key.encode(),
                value,
                headers=headers,
                timeout_s=self.config.request_timeout_s + 5,
                what=what,
            )
        except StoreUnavailableError as exc:
            if exc.outcome == "not_written" and self._table is not None:
                self._table.gone.set()  # described (and re-created if missing) next time
            raise StoreUnavailableError(
                f"{exc} Snapshots are a cache: loads stay correct, only slower.", exc.outcome
            ) from exc
        self._apply(key, partition, offset, value, subjects or [])

    def _read(self, msg: Message) -> None:
        key = msg.key()
        if key is None:
            return
        subjects: list[str] = []
        for name, raw in msg.headers() or ():
            if name == SUBJECTS_HEADER and raw:
                with contextlib.suppress(msgspec.DecodeError):
                    subjects = _subjects_decoder.decode(raw)
        self._apply(
            key.decode("utf-8", "replace"), msg.partition(), msg.offset(), msg.value(), subjects
        )

    def _apply(
        self, key: str, partition: int, offset: int, value: bytes | None, subjects: list[str]
    ) -> None:
        """Keep the record with the highest offset per key, as compaction does."""
        with self._lock:
            held = self._entries.get(key)
            if held is not None and held[0] == partition and held[1] > offset:
                return
            for subject in self._subjects.pop(key, ()):
                keys = self._holding.get(subject)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._holding[subject]
            if value is None:
                self._entries.pop(key, None)
            else:
                self._entries[key] = (partition, offset, value)
                if subjects:
                    self._subjects[key] = subjects
                    for subject in subjects:
                        self._holding.setdefault(subject, set()).add(key)

    def _forget(self, partition: int | None) -> None:
        with self._lock:
            if partition is None:
                self._entries.clear()
                self._holding.clear()
                self._subjects.clear()
            else:
                for key in [k for k, e in self._entries.items() if e[0] == partition]:
                    del self._entries[key]
                    for subject in self._subjects.pop(key, ()):
                        self._holding.get(subject, set()).discard(key)
