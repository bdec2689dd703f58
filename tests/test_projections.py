"""Projections against real Kafka, in one process: poison records, derived topics,
replay, and the definitions kes refuses."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from kes import ANY, NewEvent
from kes.projections import (
    Projection,
    ProjectionError,
    ProjectionRunner,
    SqliteCheckpointStore,
    SqlProjection,
    derived_topic,
    dlq_topic,
    event_type_topics,
    read_parked,
)
from kes.projections.checkpoints import to_pyformat
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.faults import read_log
from tests.workers.projector import applied_class, totals_class

pytestmark = [pytest.mark.kafka]


def append(
    store: KafkaEventStore, type_: str, agg: str, event_type: str, **payload: object
) -> None:
    store.append(type_, agg, [NewEvent(event_type=event_type, payload=payload)], ANY)


def expected_totals(config: KafkaConfig, type_: str) -> dict[str, tuple[int, int]]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in read_log(config.bootstrap_servers, config.topic(type_), config.partitions):
        if r["eventType"] == "Added" and not r["payload"].get("poison"):
            totals[r["aggregateId"]][0] += 1
            totals[r["aggregateId"]][1] += r["payload"]["amount"]
    return {k: (v[0], v[1]) for k, v in totals.items()}


def sqlite_totals(path: Path, table: str = "totals") -> dict[str, tuple[int, int]]:
    with sqlite3.connect(path) as db:
        return {a: (n, s) for a, n, s in db.execute(f"SELECT aggregate_id, n, amount FROM {table}")}


def test_placeholders_are_translated_for_postgres_outside_quotes() -> None:
    assert to_pyformat("SELECT ?, '?', '%' WHERE a LIKE ? || '%'") == (
        "SELECT %s, '?', '%%' WHERE a LIKE %s || '%%'"
    )


def test_a_projection_that_cannot_run_is_refused_with_the_fix() -> None:
    class NoName(Projection):
        aggregate_types = ("User",)

    with pytest.raises(ProjectionError, match="has no name"):
        NoName()

    class Eos(Projection):
        name = "x"
        aggregate_types = ("User",)
        processing_guarantee = "exactly_once"

    with pytest.raises(ProjectionError, match="Subclass SqlProjection"):
        Eos()

    class Bad(SqlProjection):
        name = "x"
        aggregate_types = ("User",)
        processing_guarantee = "at_least_once"

    with pytest.raises(ProjectionError, match="exactly_once"):
        Bad()


def test_handlers_are_found_by_event_type() -> None:
    cls = applied_class("g", "Acct", ":memory:", "at_least_once")
    assert cls().event_types == ["Added"]


def test_exactly_once_sql_projection_catches_up_and_restarts_where_the_db_says(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, tmp_path: Path, unique: str
) -> None:
    for i in range(60):
        append(kafka_store, "Acct", f"a{i % 7}", "Added", amount=i)
    db = tmp_path / "rm.db"
    proj = totals_class(f"{unique}.totals", "Acct", "totals")
    stats = ProjectionRunner(proj(), kafka_config, database=str(db), until_caught_up=True).run()
    assert stats.records == 60
    assert sqlite_totals(db) == expected_totals(kafka_config, "Acct")
    for i in range(15):
        append(kafka_store, "Acct", f"a{i % 3}", "Added", amount=1000 + i)
    # Make the group's own offsets in Kafka say "start over": only the database's
    # positions can explain reading just the 15 new events.
    group = kafka_config.group_id(proj.name)
    rewind = Consumer({"bootstrap.servers": kafka_config.bootstrap_servers, "group.id": group})
    topic = kafka_config.topic("Acct")
    rewind.commit(
        offsets=[TopicPartition(topic, p, 0) for p in range(kafka_config.partitions)],
        asynchronous=False,
    )
    rewind.close()
    stats = ProjectionRunner(proj(), kafka_config, database=str(db), until_caught_up=True).run()
    assert stats.records == 15  # only the new ones: the offsets came from the database
    assert sqlite_totals(db) == expected_totals(kafka_config, "Acct")


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_poison_records_are_parked_with_their_origin_and_the_group_goes_on(
    kafka_config: KafkaConfig,
    kafka_store: KafkaEventStore,
    tmp_path: Path,
    unique: str,
    guarantee: str,
) -> None:
    append(kafka_store, "Acct", "a1", "Added", amount=1)
    append(kafka_store, "Acct", "a1", "Added", amount=2, poison=True)  # handler raises
    topic = kafka_config.topic("Acct")
    raw = Producer({"bootstrap.servers": kafka_config.bootstrap_servers})
    raw.produce(topic, key=b"a1", value=b"{not json", headers=[("eventType", b"Added")])
    raw.flush(10)
    append(kafka_store, "Acct", "a1", "Added", amount=4)
    name = f"{unique}.poison"
    db = tmp_path / "rm.db"
    if guarantee == "exactly_once":
        cls = totals_class(name, "Acct", "totals")
        cls.retry_backoff_s = 0.01
        runner = ProjectionRunner(cls(), kafka_config, database=str(db), until_caught_up=True)
    else:
        acls = applied_class(name, "Acct", str(db), "at_least_once")
        acls.retry_backoff_s = 0.01
        runner = ProjectionRunner(acls(), kafka_config, until_caught_up=True)
    stats = runner.run()
    assert stats.parked == 2

    parked = list(read_parked(kafka_config, name))
    assert len(parked) == 2
    by_kind = {p.error_type: p for p in parked}
    assert set(by_kind) == {"ValueError", "DecodeError"}
    bad = by_kind["DecodeError"]
    assert bad.value == b"{not json" and bad.key == b"a1" and bad.topic == topic
    assert bad.attempts == 1  # decoding the same bytes again cannot succeed
    assert bad.original_headers == [("eventType", b"Added")]
    failing = by_kind["ValueError"]
    assert failing.attempts == 3 and "poison event" in failing.error
    assert failing.projection == name and failing.partition == bad.partition
    assert failing.offset < bad.offset
    assert dlq_topic(kafka_config, name) == f"{kafka_config.ns}.dlq.{name}"
    if guarantee == "exactly_once":
        assert sqlite_totals(db) == {"a1": (2, 5)}
        store = SqliteCheckpointStore(db)
        with store.transaction() as tx:
            offsets = store.load(tx, name)
        store.close()
        assert offsets[(topic, bad.partition)] > bad.offset  # the advance is committed
    else:
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM applied").fetchone()[0] == 2


def test_derived_topics_hold_each_event_of_their_type_once_in_order(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore
) -> None:
    types = ["Opened", "Added", "Closed"]
    for i in range(90):
        append(kafka_store, "Acct", f"a{i % 9}", types[(i // 9) % 3] if i % 4 else "Added", n=i)
    source = read_log(kafka_config.bootstrap_servers, kafka_config.topic("Acct"), 4)
    cls = event_type_topics("Acct")
    ProjectionRunner(cls(), kafka_config, until_caught_up=True).run()
    # Run again: the offsets were committed in the transactions, so nothing is copied twice.
    assert ProjectionRunner(cls(), kafka_config, until_caught_up=True).run().records == 0
    for event_type in types:
        want = [r for r in source if r["eventType"] == event_type]
        topic = derived_topic(kafka_config.topic("Acct"), event_type)
        got = read_log(kafka_config.bootstrap_servers, topic, 4)
        assert sorted(r["eventId"] for r in got) == sorted(r["eventId"] for r in want)
        for r in got:
            assert r["_key"] == r["aggregateId"]
        by_id = {r["eventId"]: r for r in want}
        assert all(r["_partition"] == by_id[r["eventId"]]["_partition"] for r in got)
        per_agg: dict[str, list[int]] = defaultdict(list)
        for r in sorted(got, key=lambda r: (r["_partition"], r["_offset"])):
            per_agg[r["aggregateId"]].append(r["version"])
        assert all(v == sorted(v) for v in per_agg.values())


def test_derived_records_keep_the_source_bytes_and_headers(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore
) -> None:
    append(kafka_store, "Acct", "z", "Added", amount=3)
    ProjectionRunner(event_type_topics("Acct")(), kafka_config, until_caught_up=True).run()
    from confluent_kafka import Consumer, TopicPartition

    def first(topic: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        c = Consumer(
            {
                "bootstrap.servers": kafka_config.bootstrap_servers,
                "group.id": "x",
                "isolation.level": "read_committed",
            }
        )
        c.assign([TopicPartition(topic, p, 0) for p in range(4)])
        msg = None
        for _ in range(100):
            msg = c.poll(0.2)
            if msg is not None and msg.error() is None:
                break
        c.close()
        assert msg is not None
        return msg.key(), msg.value(), msg.headers()

    src = first(kafka_config.topic("Acct"))
    assert first(derived_topic(kafka_config.topic("Acct"), "Added")) == src
    assert json.loads(src[1])["eventType"] == "Added"


def test_runner_stops_on_request(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, unique: str, tmp_path: Path
) -> None:
    for i in range(5):
        append(kafka_store, "Acct", f"a{i}", "Added", amount=i)
    handled = threading.Event()
    runner = ProjectionRunner(
        applied_class(f"{unique}.stop", "Acct", str(tmp_path / "a.db"), "at_most_once")(),
        kafka_config,
        poll_timeout_s=0.1,
        on_batch=lambda stats: handled.set(),
    )
    t = threading.Thread(target=runner.run, daemon=True)  # a runner that never stops
    t.start()  # must not hold the test session at exit
    assert handled.wait(60), "the projection never handled a batch"  # demonstrably running
    runner.stop()
    t.join(30)
    assert not t.is_alive(), "the runner did not stop"
    assert runner.stats.records == 5
    assert runner.stats.parked == 0, "the handler failed: the projection read but did nothing"
    with sqlite3.connect(tmp_path / "a.db") as db:
        assert db.execute("SELECT count(*) FROM applied").fetchone() == (5,)


def test_async_handlers_run_to_completion_in_log_order_before_offsets_move(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, unique: str
) -> None:
    import asyncio

    from kes.envelope import RecordedEvent

    handled: list[tuple[int, int]] = []
    running = 0

    class Slow(Projection):
        name = f"{unique}.slow"
        aggregate_types = ("Acct",)

        async def on_Added(self, event: RecordedEvent) -> None:
            nonlocal running
            running += 1
            assert running == 1, "two handlers ran at once"
            await asyncio.sleep(0.001)  # yields to the loop mid-handler
            handled.append((event.position.partition, event.position.offset))
            running -= 1

    for i in range(40):
        append(kafka_store, "Acct", f"a{i % 5}", "Added", amount=i)
    assert Slow().is_async
    stats = ProjectionRunner(Slow(), kafka_config, until_caught_up=True).run()
    assert stats.records == 40 and len(handled) == 40
    by_partition: dict[int, list[int]] = defaultdict(list)
    for p, o in handled:
        by_partition[p].append(o)
    assert all(offs == sorted(offs) for offs in by_partition.values())
    # A second run starts after what the first committed: nothing is handled twice.
    handled.clear()
    assert ProjectionRunner(Slow(), kafka_config, until_caught_up=True).run().records == 0


def test_async_handlers_into_postgresql_park_a_poison_record_and_apply_the_rest_once(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, unique: str
) -> None:
    import psycopg

    from tests.pg import postgres_dsn
    from tests.workers.projector import async_totals_class

    dsn = postgres_dsn()
    table = f"ptotals_{unique}"
    for amount in (1, 2):
        append(kafka_store, "Acct", "a1", "Added", amount=amount)
    append(kafka_store, "Acct", "a1", "Added", amount=100, poison=True)  # handler raises
    append(kafka_store, "Acct", "a1", "Added", amount=4)
    cls = async_totals_class(f"{unique}.ptotals", "Acct", table)
    cls.retry_backoff_s = 0.01
    try:
        stats = ProjectionRunner(cls(), kafka_config, database=dsn, until_caught_up=True).run()
        assert (stats.records, stats.parked) == (4, 1)
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(f"SELECT aggregate_id, n, amount FROM {table}").fetchall()
        assert [(a, int(n), int(s)) for a, n, s in rows] == [("a1", 3, 7)]
        (parked,) = read_parked(kafka_config, cls.name)
        assert parked.error_type == "ValueError" and parked.attempts == 3
        # Run again: everything was committed with its offsets; nothing applies twice.
        again = ProjectionRunner(cls(), kafka_config, database=dsn, until_caught_up=True).run()
        assert again.records == 0
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
