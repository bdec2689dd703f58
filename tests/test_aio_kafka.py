"""kes.aio on real Kafka: appends from an event loop ride the writer's transactions;
a cancelled append is all or nothing and decided once its task has finished."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest

from kes import NO_STREAM, NewEvent
from kes.aio import AsyncKafkaEventStore
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.faults import read_log

pytestmark = pytest.mark.kafka


def ev(n: int) -> NewEvent:
    return NewEvent(event_type="Happened", payload={"n": n})


@pytest.fixture
def writer(kafka_store: KafkaEventStore) -> KafkaEventStore:
    kafka_store.owned_partitions("Cancel")  # owns every partition before the clock starts
    return kafka_store


@pytest.fixture(params=["owner", "forwarded"])
def through(writer: KafkaEventStore, request: pytest.FixtureRequest) -> Iterator[KafkaEventStore]:
    if request.param == "owner":
        yield writer
        return
    client = KafkaEventStore(writer.config, role="client")
    yield client
    client.close()


def test_cancelled_appends_are_all_or_nothing_and_decided_when_the_task_ends(
    through: KafkaEventStore, kafka_config: KafkaConfig
) -> None:
    """300 appends of 3 events each, cancelled at random moments: right after each task
    ends, the stream holds all 3 events or none; the log (read by a plain consumer)
    agrees; a retry with the same event ids completes exactly the missing ones."""
    rng = random.Random(15)
    batches = {f"c{i}": [ev(1), ev(2), ev(3)] for i in range(300)}

    async def scenario() -> dict[str, Any]:
        store = AsyncKafkaEventStore(store=through)
        await store.append("Cancel", "warm-up", [ev(0)], NO_STREAM)
        loop = asyncio.get_running_loop()
        seen_after_end: dict[str, int] = {}
        cancelled: list[str] = []

        async def one(aggregate_id: str) -> None:
            task = asyncio.ensure_future(
                store.append("Cancel", aggregate_id, batches[aggregate_id], NO_STREAM)
            )
            if rng.random() < 0.1:
                task.cancel()  # before it even started
            else:
                # Delays from well under one transaction to several: some cancels land
                # before the writer takes the append, some while it commits, on a busy
                # machine too (where a transaction can take 100 ms).
                loop.call_later(rng.uniform(0, 0.03) * rng.choice((1, 3, 10)), task.cancel)
            try:
                await task
            except asyncio.CancelledError:
                cancelled.append(aggregate_id)
            # The task has ended: whatever it did is decided and readable now.
            seen_after_end[aggregate_id] = await store.stream_version("Cancel", aggregate_id)

        await asyncio.gather(*(one(a) for a in batches))
        retried = {a: await store.append("Cancel", a, batches[a], NO_STREAM) for a in batches}
        return {"seen": seen_after_end, "cancelled": cancelled, "retried": retried}

    out = asyncio.run(scenario())
    seen, cancelled, retried = out["seen"], out["cancelled"], out["retried"]
    assert set(seen.values()) <= {0, 3}, f"a stream was half-written: {seen}"
    written_anyway = [a for a in cancelled if seen[a] == 3]
    taken_back = [a for a in cancelled if seen[a] == 0]
    # Both kinds of moment were hit (else the test proved nothing about one of them).
    assert written_anyway and taken_back, (len(written_anyway), len(taken_back))
    for a, result in retried.items():
        assert result.version == 3
        assert result.written is (seen[a] == 0), a  # a retry writes only what is missing

    records = read_log(
        kafka_config.bootstrap_servers, kafka_config.topic("Cancel"), kafka_config.partitions
    )
    log: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: (r["_partition"], r["_offset"])):
        log.setdefault(r["aggregateId"], []).append(r)
    for a, events in batches.items():
        stored = log.get(a, [])
        assert [e["eventId"] for e in stored] == [e.event_id for e in events], a
        assert [e["version"] for e in stored] == [1, 2, 3], a


def test_a_thousand_appends_in_flight_on_one_loop_share_the_writers_transactions(
    writer: KafkaEventStore,
) -> None:
    async def scenario() -> int:
        store = AsyncKafkaEventStore(store=writer)
        await store.append("Cancel", "warm-up", [ev(0)], NO_STREAM)
        before = writer.writer.stats.transactions
        results = await asyncio.gather(
            *(store.append("Cancel", f"m{i}", [ev(1)], NO_STREAM) for i in range(1000))
        )
        assert all(r.version == 1 and r.written for r in results)
        return writer.writer.stats.transactions - before

    transactions = asyncio.run(scenario())
    # One thread per append would need ~1000 threads; here they share few transactions.
    assert transactions < 100, transactions


def test_async_application_on_kafka_loads_from_its_snapshots_and_travels_in_time(
    kafka_store: KafkaEventStore, kafka_config: KafkaConfig
) -> None:
    from examples.users.domain import User

    from kes import KafkaSnapshotStore
    from kes.aio import AsyncApplication

    async def scenario() -> None:
        snapshots = KafkaSnapshotStore(kafka_config)
        store = AsyncKafkaEventStore(store=kafka_store)
        app = AsyncApplication(store, snapshots=snapshots, snapshot_every={"User": 3})
        user = User("u1", "jdoe", "e0@example.com")
        await app.save(user)
        for i in range(1, 8):
            user.change_email(f"e{i}@example.com")
            await app.save(user)
        snap = await store.run_blocking(snapshots.get, "User", "u1")
        assert snap is not None and snap.version == 6
        fresh = AsyncApplication(store, snapshots=snapshots)  # an empty cache
        loaded = await fresh.get(User, "u1")
        assert (loaded.version, loaded.email) == (8, "e7@example.com")
        assert (await fresh.get(User, "u1", version=2)).email == "e1@example.com"
        await store.run_blocking(snapshots.close)

    asyncio.run(scenario())
