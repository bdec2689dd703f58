"""The EventStore contract: one test class, run against every backend.

A backend proves itself by subclassing :class:`EventStoreContract` in its own tests and
providing a ``store`` fixture (a fresh, empty store per test)::

    class TestMyStore(EventStoreContract):
        @pytest.fixture
        def store(self) -> Iterator[MyStore]:
            with MyStore(...) as s:
                yield s
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest

from kes import (
    ANY,
    NO_STREAM,
    ConcurrencyError,
    EventStore,
    InvalidInputError,
    NewEvent,
    SerializationError,
    StreamExistsError,
)


def ev(kind: str = "Happened", **payload: object) -> NewEvent:
    return NewEvent(event_type=kind, payload=payload)


class EventStoreContract:
    """Subclasses provide a ``store`` fixture."""

    def test_versions_are_gapless_from_one(self, store: EventStore) -> None:
        r1 = store.append("User", "a", [ev("Created", n=1), ev("Renamed", n=2)], NO_STREAM)
        r2 = store.append("User", "a", [ev("Renamed", n=3)], 2)
        assert (r1.version, r2.version) == (2, 3)
        events = store.read_stream("User", "a")
        assert [e.version for e in events] == [1, 2, 3]
        assert [e.payload["n"] for e in events] == [1, 2, 3]
        assert [e.event_type for e in events] == ["Created", "Renamed", "Renamed"]
        assert all(e.aggregate_id == "a" and e.aggregate_type == "User" for e in events)

    def test_positions_point_at_the_events(self, store: EventStore) -> None:
        result = store.append("User", "p", [ev(), ev()], NO_STREAM)
        events = store.read_stream("User", "p")
        assert [e.position for e in events] == result.positions
        assert len({p.partition for p in result.positions}) == 1

    def test_wrong_expected_version_raises_and_writes_nothing(self, store: EventStore) -> None:
        store.append("User", "b", [ev()], NO_STREAM)
        with pytest.raises(ConcurrencyError) as info:
            store.append("User", "b", [ev(), ev()], 0)
        assert (info.value.expected, info.value.actual) == (0, 1)
        assert "'b'" in str(info.value) and "expected version 0" in str(info.value)
        with pytest.raises(StreamExistsError):  # a ConcurrencyError that names the create
            store.append("User", "b", [ev()], NO_STREAM)
        with pytest.raises(ConcurrencyError):
            store.append("User", "b", [ev()], 5)
        assert store.stream_version("User", "b") == 1
        assert len(store.read_stream("User", "b")) == 1

    def test_creating_an_existing_stream_says_it_exists_not_retry(self, store: EventStore) -> None:
        store.append("User", "exists", [ev()], NO_STREAM)
        with pytest.raises(StreamExistsError) as info:
            store.append("User", "exists", [ev()], NO_STREAM)
        message = str(info.value)
        assert "'exists' already exists" in message and "cannot succeed" in message
        assert "retry the command" not in message
        assert isinstance(info.value, ConcurrencyError) and info.value.actual == 1
        assert store.stream_version("User", "exists") == 1

    def test_any_appends_whatever_the_version(self, store: EventStore) -> None:
        store.append("User", "c", [ev()], ANY)
        assert store.append("User", "c", [ev()], ANY).version == 2

    def test_retry_with_same_event_ids_is_idempotent(self, store: EventStore) -> None:
        events = [ev(n=1), ev(n=2)]
        first = store.append("User", "d", events, NO_STREAM)
        again = store.append("User", "d", events, NO_STREAM)
        assert again.written is False
        assert again.version == 2 and again.positions == first.positions
        store.append("User", "d", [ev(n=3)], 2)
        # Still idempotent after later appends: the ids are at versions 1..2.
        assert store.append("User", "d", events, 0).written is False
        assert store.stream_version("User", "d") == 3
        other = [NewEvent(event_type="X", payload={}, event_id=events[0].event_id), ev()]
        with pytest.raises(ConcurrencyError):
            store.append("User", "d", other, 0)

    def test_retry_of_an_any_append_writes_nothing_new(self, store: EventStore) -> None:
        events = [ev(n=1), ev(n=2)]
        first = store.append("User", "r", events, ANY)
        again = store.append("User", "r", events, ANY)
        assert again.written is False and again.positions == first.positions
        assert store.stream_version("User", "r") == 2

    def test_read_stream_ranges(self, store: EventStore) -> None:
        store.append("User", "e", [ev(n=i) for i in range(1, 11)], NO_STREAM)
        assert [e.version for e in store.read_stream("User", "e", 3, 5)] == [3, 4, 5]
        assert [e.version for e in store.read_stream("User", "e", 9)] == [9, 10]
        assert store.read_stream("User", "e", 11) == []
        assert store.read_stream("User", "e", 1, 0) == []
        assert store.read_stream("User", "missing") == []

    def test_stream_version_and_exists(self, store: EventStore) -> None:
        assert store.stream_version("User", "f") == 0
        assert not store.exists("User", "f")
        store.append("User", "f", [ev()], NO_STREAM)
        assert store.stream_version("User", "f") == 1
        assert store.exists("User", "f")

    def test_streams_of_different_types_are_separate(self, store: EventStore) -> None:
        store.append("User", "same", [ev()], NO_STREAM)
        store.append("Account", "same", [ev(), ev()], NO_STREAM)
        assert store.stream_version("User", "same") == 1
        assert store.stream_version("Account", "same") == 2

    def test_envelope_fields_round_trip(self, store: EventStore) -> None:
        eid = str(uuid.uuid4())
        ts = datetime(2021, 7, 21, 12, 0, tzinfo=UTC)
        event = NewEvent(
            event_type="UserCreated",
            payload={"userId": "abc123", "username": "jdoe", "email": "jdoe@example.com"},
            event_id=eid,
            schema_version=2,
            metadata={"correlationId": "c-1"},
            timestamp=ts,
        )
        store.append("User", "abc123", [event], NO_STREAM)
        (got,) = store.read_stream("User", "abc123")
        assert got.event_id == eid and got.timestamp == ts and got.schema_version == 2
        assert got.payload == event.payload and got.metadata == {"correlationId": "c-1"}

    def test_read_all_returns_every_event_in_order_per_aggregate(self, store: EventStore) -> None:
        for i in range(5):
            store.append("Order", f"o{i}", [ev(n=1), ev(n=2)], NO_STREAM)
        events = list(store.read_all("Order"))
        assert len(events) == 10
        for i in range(5):
            assert [e.version for e in events if e.aggregate_id == f"o{i}"] == [1, 2]
        by_partition: dict[int, list[int]] = {}
        for e in events:
            by_partition.setdefault(e.position.partition, []).append(e.position.offset)
        assert all(offs == sorted(offs) for offs in by_partition.values())

    def test_read_all_from_positions_skips_earlier_events(self, store: EventStore) -> None:
        store.append("Item", "i", [ev(n=1), ev(n=2), ev(n=3)], NO_STREAM)
        first = list(store.read_all("Item"))
        p = first[0].position.partition
        later = list(store.read_all("Item", {p: first[1].position.offset}))
        assert [e.version for e in later if e.aggregate_id == "i"] == [2, 3]

    def test_subscribe_catches_up_then_follows(self, store: EventStore) -> None:
        store.append("Feed", "x", [ev(n=1)], NO_STREAM)
        stop = threading.Event()
        caught_up = threading.Event()
        seen: list[int] = []

        def follow() -> None:
            for e in store.subscribe("Feed", stop=stop):
                seen.append(e.payload["n"])
                if len(seen) == 1:
                    caught_up.set()
                if len(seen) == 3:
                    stop.set()

        t = threading.Thread(target=follow, daemon=True)
        t.start()
        # Only once the subscriber has read what was there does it get more: what comes
        # next can only reach it by following the log.
        assert caught_up.wait(30), "the subscriber never caught up with the first event"
        assert seen == [1]
        store.append("Feed", "x", [ev(n=2)], 1)
        store.append("Feed", "y", [ev(n=3)], NO_STREAM)
        t.join(timeout=30)
        stop.set()
        assert sorted(seen) == [1, 2, 3]

    @pytest.mark.parametrize("expected", [-1, "1", 1.0, True, None])
    def test_invalid_expected_version_is_refused(self, store: EventStore, expected: object) -> None:
        with pytest.raises(InvalidInputError, match="expected_version"):
            store.append("User", "g", [ev()], expected)  # type: ignore[arg-type]
        assert store.stream_version("User", "g") == 0

    @pytest.mark.parametrize("aggregate_id", ["", " x", 42, None, b"bytes"])
    def test_bad_aggregate_id_is_refused(self, store: EventStore, aggregate_id: object) -> None:
        with pytest.raises(InvalidInputError, match="aggregate_id"):
            store.append("User", aggregate_id, [ev()], NO_STREAM)  # type: ignore[arg-type]

    def test_empty_event_list_is_refused(self, store: EventStore) -> None:
        with pytest.raises(InvalidInputError, match="no events"):
            store.append("User", "h", [], NO_STREAM)
        assert store.stream_version("User", "h") == 0

    def test_unserializable_payload_is_refused_and_nothing_written(self, store: EventStore) -> None:
        bad = NewEvent(event_type="Bad", payload={"when": object()})
        with pytest.raises(SerializationError, match="cannot be encoded"):
            store.append("User", "k", [ev(), bad], NO_STREAM)
        assert store.stream_version("User", "k") == 0
        assert store.append("User", "k", [ev()], NO_STREAM).version == 1
