"""`kes dlq park` against real Kafka: the record a stopped group reads next in a partition
is parked with the operator's reason and the group goes on after it — for a
SqlProjection (positions in its database) and a Kafka-committed group; bad input and a
running group change nothing; a pipeline's group is found by its name."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from kes import ANY, NewEvent
from kes.projections import ProjectionRunner, dlq
from kes.projections.checkpoints import SqliteCheckpointStore
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.cli_support import kes
from tests.faults import read_log
from tests.test_projections_faults import applied_ids
from tests.workers.projector import applied_class, totals_class

pytestmark = [pytest.mark.kafka]


def env_of(config: KafkaConfig) -> dict[str, str]:
    return {"KES_BOOTSTRAP_SERVERS": config.bootstrap_servers, "KES_NAMESPACE": config.ns}


def add(store: KafkaEventStore, agg: str, amount: int) -> NewEvent:
    event = NewEvent(event_type="Added", payload={"amount": amount})
    store.append("Acct", agg, [event], ANY)
    return event


def totals_without(config: KafkaConfig, skipped: str) -> dict[str, tuple[int, int]]:
    totals: dict[str, list[int]] = {}
    for r in read_log(config.bootstrap_servers, config.topic("Acct"), config.partitions):
        if r["eventId"] != skipped:
            row = totals.setdefault(r["aggregateId"], [0, 0])
            row[0] += 1
            row[1] += r["payload"]["amount"]
    return {k: (n, s) for k, (n, s) in totals.items()}


def test_a_parked_record_is_skipped_by_a_sql_projection_and_kept_in_its_dead_letters(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, tmp_path: Path, unique: str
) -> None:
    db = tmp_path / "totals.db"
    name = f"{unique}.totals"
    (tmp_path / f"rm_{unique}.py").write_text(
        "from tests.workers.projector import totals_class\n"
        f"Totals = totals_class({name!r}, 'Acct', 'totals')\n"
        f"Totals.database = {'sqlite:///' + str(db)!r}\n"
    )
    projection = totals_class(name, "Acct", "totals")
    for i in range(12):
        add(kafka_store, f"a{i % 5}", i)
    ProjectionRunner(projection(), kafka_config, database=str(db), until_caught_up=True).run()
    stalling = add(kafka_store, "a3", 1000)  # say its handler hangs: no member gets past it
    for i in range(6):
        add(kafka_store, f"a{i % 5}", 100 + i)
    where = next(
        r
        for r in read_log(kafka_config.bootstrap_servers, kafka_config.topic("Acct"), 4)
        if r["eventId"] == stalling.event_id
    )
    partition, offset = where["_partition"], where["_offset"]
    spec = f"rm_{unique}:Totals"

    def stored() -> dict[tuple[str, int], int]:
        store = SqliteCheckpointStore(db)
        try:
            with store.transaction() as tx:
                return store.load(tx, name)
        finally:
            store.close()

    before = stored()
    args = ["dlq", "park", spec, "-p", str(partition), "--reason", "hangs the handler", "--yes"]
    wrong = kes(*args, "--offset", str(offset + 1), env=env_of(kafka_config), cwd=tmp_path)
    assert wrong.returncode == 1
    assert f"is at offset {offset}, not {offset + 1}; nothing was parked" in wrong.stderr
    assert stored() == before
    no_reason = kes(*args[:-2], " ", "--yes", env=env_of(kafka_config), cwd=tmp_path)
    assert no_reason.returncode == 1 and "give a --reason" in no_reason.stderr

    done = kes(*args, "--offset", str(offset), env=env_of(kafka_config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    topic = kafka_config.topic("Acct")
    assert f"parked {topic}[{partition}]@{offset}" in done.stdout
    assert stored()[(topic, partition)] == offset + 1
    [parked] = dlq.read_parked(kafka_config, name)
    assert (parked.topic, parked.partition, parked.offset) == (topic, partition, offset)
    assert parked.error_type == "SkippedByOperator"
    assert parked.error == "skipped by an operator: hangs the handler"
    assert stalling.event_id.encode() in (parked.value or b"")

    ProjectionRunner(projection(), kafka_config, database=str(db), until_caught_up=True).run()
    with sqlite3.connect(db) as conn:
        got = {a: (n, s) for a, n, s in conn.execute("SELECT aggregate_id, n, amount FROM totals")}
    assert got == totals_without(kafka_config, stalling.event_id)

    listed = kes("dlq", "list", name, "--json", env=env_of(kafka_config), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert '"errorType": "SkippedByOperator"' in listed.stdout


def test_a_group_with_committed_offsets_moves_past_the_parked_record_and_a_running_one_is_refused(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, tmp_path: Path, unique: str
) -> None:
    path = tmp_path / "applied.db"
    name = f"{unique}.applied"
    (tmp_path / f"app_{unique}.py").write_text(
        "from tests.workers.projector import applied_class\n"
        f"Applied = applied_class({name!r}, 'Acct', {str(path)!r}, 'at_least_once')\n"
    )
    cls = applied_class(name, "Acct", str(path), "at_least_once")
    first = add(kafka_store, "solo", 1)  # one aggregate: one partition, in order
    second = add(kafka_store, "solo", 2)
    spec, env = f"app_{unique}:Applied", env_of(kafka_config)
    log = read_log(kafka_config.bootstrap_servers, kafka_config.topic("Acct"), 4)
    partition = log[0]["_partition"]
    args = ["dlq", "park", spec, "-p", str(partition), "--reason", "operator test", "--yes"]

    # Running: refused, nothing parked.
    runner = ProjectionRunner(cls(), kafka_config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: len(applied_ids(path)) == 2)
        busy = kes(*args, env=env, cwd=tmp_path)
    finally:
        runner.stop()
        thread.join(60)
    assert busy.returncode == 1 and "running member(s); stop them first" in busy.stderr
    assert list(dlq.read_parked(kafka_config, name)) == []

    third = add(kafka_store, "solo", 3)
    add(kafka_store, "solo", 4)
    done = kes(*args, env=env, cwd=tmp_path)  # the next one: the third event
    assert done.returncode == 0, done.stderr
    [parked] = dlq.read_parked(kafka_config, name)
    assert third.event_id.encode() in (parked.value or b"")
    ProjectionRunner(cls(), kafka_config, until_caught_up=True).run()
    applied = applied_ids(path)
    assert first.event_id in applied and second.event_id in applied
    assert third.event_id not in applied and len(applied) == 3

    caught_up = kes(*args, env=env, cwd=tmp_path)
    assert caught_up.returncode == 1 and "no record stalls it there" in caught_up.stderr


def test_a_pipelines_group_is_found_by_its_spec(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, tmp_path: Path, unique: str
) -> None:
    """A pipeline that never committed a position: its first record is the next one."""
    (tmp_path / f"pipe_{unique}.py").write_text(
        f"from kes.streams import Pipeline\npipeline = Pipeline({unique!r}, lambda streams: None)\n"
    )
    event = add(kafka_store, "solo", 1)
    [record] = read_log(kafka_config.bootstrap_servers, kafka_config.topic("Acct"), 4)
    spec = f"pipe_{unique}:pipeline"
    args = ["dlq", "park", spec, "-p", str(record["_partition"]), "--reason", "r", "--yes"]
    unnamed = kes(*args, env=env_of(kafka_config), cwd=tmp_path)
    assert unnamed.returncode == 1 and "say which with --aggregate-type" in unnamed.stderr
    done = kes(*args, "-t", "Acct", env=env_of(kafka_config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"'{kafka_config.stream_group(unique)}' goes on from offset 1" in done.stdout
    [parked] = dlq.read_parked(kafka_config, unique)
    assert event.event_id.encode() in (parked.value or b"")


def _wait(check: Any, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.2)
