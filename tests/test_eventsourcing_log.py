"""A log's write path on kes's in-memory store (same EventStore contract as Kafka), where
races and failures can be staged exactly: another process appending first, an append
whose outcome is unknown, an insert too large to write. No Kafka."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent, Tracking

from kes.envelope import NewEvent
from kes.errors import EventTooLargeError, StoreUnavailableError
from kes.integrations.eventsourcing import InvalidRecordError, RecorderUnavailableError
from kes.integrations.eventsourcing._log import SequenceLog
from kes.store.base import AppendResult, Expected
from kes.store.memory import MemoryEventStore


class StagedStore(MemoryEventStore):
    """An in-memory store whose next appends can be made to fail or be preceded by
    someone else's append."""

    def __init__(self) -> None:
        super().__init__(partitions=1)
        self.before_append: list[object] = []  # callables run before, or errors raised
        self.appends = 0

    def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected,
    ) -> AppendResult:
        self.appends += 1
        if any(len(str(e.payload)) > 10_000 for e in events):
            raise EventTooLargeError("an event is larger than the topic accepts")
        if self.before_append:
            step = self.before_append.pop(0)
            if isinstance(step, BaseException):
                raise step
            if callable(step):
                step()
        return super().append(aggregate_type, aggregate_id, events, expected_version)


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def make_log(store: StagedStore, timeout_s: float = 5.0) -> SequenceLog:
    return SequenceLog(
        store, "Shop", "events", numbered=True, cache_bytes=1 << 20, timeout_s=timeout_s
    )


def ev(originator: uuid.UUID, version: int, state: bytes = b"{}") -> StoredEvent:
    return StoredEvent(originator, version, "shop:Order.Placed", state)


def test_an_append_refused_because_another_process_wrote_first_is_decided_on_the_new_head() -> None:
    store = StagedStore()
    ours, theirs = make_log(store), make_log(store)  # two processes on one log
    a, b = uuid.uuid4(), uuid.uuid4()
    ours.insert([ev(a, 1)], None)
    ours.catch_up()
    store.before_append.append(lambda: theirs.insert([ev(b, 1)], None))
    assert ours.insert([ev(a, 2)], None) == [3]  # retried after their insert (id 2)
    assert ours.stats["retries"] == 1
    store.before_append.append(lambda: theirs.insert([ev(a, 3)], None))
    with pytest.raises(IntegrityError, match="version 3 is already recorded"):
        ours.insert([ev(a, 3)], None)
    ours.close()
    theirs.close()


def test_an_append_of_unknown_outcome_is_retried_with_the_same_ids_and_recorded_once() -> None:
    store = StagedStore()
    log = make_log(store)
    a = uuid.uuid4()
    landed_then_lost = StoreUnavailableError("the commit's answer was lost", "unknown")
    # The first attempt is written, but the caller hears nothing; the retry finds it stored.
    original = store.append

    def flaky(*args: object, **kwargs: object) -> AppendResult:
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        if store.appends == 1:
            raise landed_then_lost
        return result

    store.append = flaky  # type: ignore[method-assign]
    assert log.insert([ev(a, 1), ev(a, 2)], None) == [1, 2]
    assert len(store.read_stream("Shop", "events")) == 2
    assert [e.originator_version for e in log.select_events(a, None, None, False, None)] == [1, 2]
    log.close()


def test_when_kafka_stays_unavailable_the_caller_gets_the_librarys_operational_error() -> None:
    store = StagedStore()
    log = make_log(store, timeout_s=0.3)
    store.before_append.extend(
        StoreUnavailableError("no owner", "not_written") for _ in range(1000)
    )
    with pytest.raises(RecorderUnavailableError) as info:
        log.insert([ev(uuid.uuid4(), 1)], None)
    assert isinstance(info.value, OperationalError)
    assert info.value.outcome == "not_written"
    log.close()


def test_an_insert_too_large_to_write_fails_alone_and_its_batch_neighbours_are_recorded() -> None:
    store = StagedStore()
    log = make_log(store)
    gate = threading.Event()
    store.before_append.append(gate.wait)  # hold the first append while others queue
    results: dict[str, object] = {}

    def insert(name: str, events: list[StoredEvent]) -> None:
        try:
            results[name] = log.insert(events, None)
        except Exception as exc:
            results[name] = exc

    first = threading.Thread(target=insert, args=("first", [ev(uuid.uuid4(), 1)]))
    first.start()
    wait_until(lambda: store.appends > 0)
    big = b'{"blob":"' + b"x" * 20_000 + b'"}'
    others = [
        threading.Thread(target=insert, args=("big", [ev(uuid.uuid4(), 1, big)])),
        threading.Thread(target=insert, args=("small", [ev(uuid.uuid4(), 1)])),
    ]
    for t in others:
        t.start()
    wait_until(lambda: len(log._queue) == 2)  # both queue, one batch, behind the held one
    gate.set()
    for t in (first, *others):
        t.join(timeout=10)
    assert results["first"] == [1]
    assert isinstance(results["big"], InvalidRecordError)
    assert results["small"] == [2]
    log.close()


def test_tracking_and_events_of_one_insert_are_one_append() -> None:
    store = StagedStore()
    log = make_log(store)
    a = uuid.uuid4()
    log.insert([ev(a, 1), ev(a, 2)], Tracking("Up", 4))
    assert store.appends == 1
    recorded = store.read_stream("Shop", "events")
    assert [r.event_type for r in recorded] == ["shop:Order.Placed"] * 2 + ["kes:Tracking"]
    with pytest.raises(IntegrityError):
        log.insert([ev(uuid.uuid4(), 1)], Tracking("Up", 4))
    assert store.appends == 1  # refused before anything was sent
    log.close()
