"""One Application (and its store) shared by many threads: no update lost, no state
mixed up, every stream gapless. Run on the memory store and on Kafka."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from kes import Aggregate, Application, EventStore, MemoryEventStore, event
from kes.store.kafka import KafkaConfig, KafkaEventStore

THREADS = 8


class Tally(Aggregate, id_field="tally_id"):
    @event("Opened")
    def __init__(self, tally_id: str) -> None:
        self.total = 0
        self.adders: list[str] = []

    @event("Added")
    def add(self, amount: int, by: str) -> None:
        self.total += amount
        self.adders.append(by)


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def store(request: pytest.FixtureRequest) -> Iterator[EventStore]:
    if request.param == "memory":
        yield MemoryEventStore()
        return
    config: KafkaConfig = request.getfixturevalue("kafka_config")
    kafka = KafkaEventStore(config)
    yield kafka
    kafka.close()


def run_threads(work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def body(n: int) -> None:
        try:
            start.wait()
            work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_many_threads_updating_through_one_application_lose_no_update(store: EventStore) -> None:
    app = Application(store)
    per_thread = 6 if isinstance(store, KafkaEventStore) else 40
    tallies = ["t-0", "t-1"]
    app.save(*(Tally(t) for t in tallies))

    def work(n: int) -> None:
        for i in range(per_thread):
            tally = tallies[(n + i) % len(tallies)]
            app.update(Tally, tally, lambda t: t.add(1, f"thread-{n}"), attempts=100)
            # each thread also creates and reads back aggregates of its own
            if i % 3 == 0:
                own = f"own-{n}-{i}"
                app.save(Tally(own))
                assert app.get(Tally, own).version == 1

    run_threads(work)
    added = THREADS * per_thread
    loaded = [app.get(Tally, t) for t in tallies]
    assert sum(t.total for t in loaded) == added
    assert sorted(a for t in loaded for a in t.adders) == sorted(
        f"thread-{n}" for n in range(THREADS) for _ in range(per_thread)
    )
    for t in tallies:  # every stream gapless, no event twice
        events = store.read_stream("Tally", t)
        assert [e.version for e in events] == list(range(1, len(events) + 1))
        assert len({e.event_id for e in events}) == len(events)
        assert app.get(Tally, t).version == len(events)
