"""In-memory event store: for unit tests of the domain, never for Kafka claims."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence

from kes.envelope import NewEvent, Position, RecordedEvent, encode, to_envelope
from kes.errors import ConcurrencyError
from kes.partitioning import partition_for
from kes.store.base import (
    AppendResult,
    EventStore,
    Expected,
    check_append,
    check_read,
    check_stream,
    expected_matches,
)


class MemoryEventStore(EventStore):
    """Holds streams in dicts, with the same partitioning and checks as the Kafka store."""

    def __init__(self, partitions: int = 12, topic_prefix: str = "kes.events.") -> None:
        self.partitions = partitions
        self.topic_prefix = topic_prefix
        self._lock = threading.Condition()
        self._streams: dict[tuple[str, str], list[RecordedEvent]] = {}
        self._logs: dict[tuple[str, int], list[RecordedEvent]] = {}
        self._ids: dict[str, tuple[str, str, int]] = {}  # event id -> type, id, version

    def topic(self, aggregate_type: str) -> str:
        return self.topic_prefix + aggregate_type

    def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected,
    ) -> AppendResult:
        check_append(aggregate_type, aggregate_id, events, expected_version)
        with self._lock:
            stream = self._streams.get((aggregate_type, aggregate_id), [])
            actual = len(stream)
            retry = self._already_stored(aggregate_type, aggregate_id, stream, events)
            if retry is not None:
                return retry
            if not expected_matches(expected_version, actual):
                raise ConcurrencyError.of(aggregate_type, aggregate_id, expected_version, actual)
            envelopes = [
                to_envelope(aggregate_type, aggregate_id, actual + i + 1, e)
                for i, e in enumerate(events)
            ]
            for env in envelopes:
                encode(env)  # refuse unserializable payloads before anything is stored
            partition = partition_for(aggregate_id, self.partitions)
            log = self._logs.setdefault((aggregate_type, partition), [])
            topic = self.topic(aggregate_type)
            recorded = [
                RecordedEvent(env, Position(topic, partition, len(log) + i))
                for i, env in enumerate(envelopes)
            ]
            log.extend(recorded)
            for r in recorded:
                self._ids[r.event_id] = (aggregate_type, aggregate_id, r.version)
            self._streams.setdefault((aggregate_type, aggregate_id), []).extend(recorded)
            self._lock.notify_all()
            return AppendResult(actual + len(events), [r.position for r in recorded])

    def _already_stored(
        self,
        aggregate_type: str,
        aggregate_id: str,
        stream: list[RecordedEvent],
        events: Sequence[NewEvent],
    ) -> AppendResult | None:
        """The earlier result if these events are already stored, in this order."""
        first = self._ids.get(events[0].event_id)
        if first is None or first[:2] != (aggregate_type, aggregate_id):
            return None
        stored = stream[first[2] - 1 : first[2] - 1 + len(events)]
        if [s.event_id for s in stored] != [e.event_id for e in events]:
            return None
        return AppendResult(stored[-1].version, [s.position for s in stored], written=False)

    def read_stream(
        self,
        aggregate_type: str,
        aggregate_id: str,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[RecordedEvent]:
        check_stream(aggregate_type, aggregate_id)
        check_read(from_version, to_version)
        with self._lock:
            stream = self._streams.get((aggregate_type, aggregate_id), [])
            end = len(stream) if to_version is None else min(to_version, len(stream))
            return stream[from_version - 1 : end]

    def stream_version(self, aggregate_type: str, aggregate_id: str) -> int:
        check_stream(aggregate_type, aggregate_id)
        with self._lock:
            return len(self._streams.get((aggregate_type, aggregate_id), []))

    def read_all(
        self, aggregate_type: str, from_positions: Mapping[int, int] | None = None
    ) -> Iterator[RecordedEvent]:
        with self._lock:
            snapshot = {
                p: list(self._logs.get((aggregate_type, p), [])) for p in range(self.partitions)
            }
        starts = from_positions or {}
        for p in range(self.partitions):
            yield from snapshot[p][starts.get(p, 0) :]

    def subscribe(
        self,
        aggregate_type: str,
        from_positions: Mapping[int, int] | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[RecordedEvent]:
        next_offsets = {p: (from_positions or {}).get(p, 0) for p in range(self.partitions)}
        while stop is None or not stop.is_set():
            batch: list[RecordedEvent] = []
            with self._lock:
                for p in range(self.partitions):
                    log = self._logs.get((aggregate_type, p), [])
                    batch.extend(log[next_offsets[p] :])
                    next_offsets[p] = len(log)
                if not batch:
                    self._lock.wait(0.05)
            yield from batch
