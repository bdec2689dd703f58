"""Each processing kind on the 3-node cluster (RF 3, min ISR 2), run as a user runs it —
`kes project run -n 2`, `kes project derive -n 2`, `kes stream run -n 2`, supervised —
while events keep coming, one broker is SIGKILLed for 12 s, and each member is killed
with kill -9 once (one of them while the broker is down). Afterwards the results, read
with a plain consumer or from the database, equal a recomputation from the source log:

- an exactly-once SQL projection into PostgreSQL: per-aggregate counts and sums;
- a Kafka→Kafka processor (per-event-type topics): each event once, in order, in the
  partition of its source;
- a windowed pipeline (the bank's hourly activity and overdraft alerts).

The broker killed is chosen at random (``KES_CHAOS_SEED``) among the nodes that do not
coordinate the appending writer: losing that one stalls the appends for ~20 s, which
this test does not need in order to hurt the processors; every coordinator of the
processors themselves may be the one killed. ``scripts/processing_chaos.sh`` runs each
kind 10 times in a row; CI runs each once."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kes import ANY, NewEvent
from kes.broker import LocalCluster
from kes.processes import read_state
from kes.projections.derived import derived_topic
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.faults import append_surely, read_log
from tests.pg import postgres_dsn
from tests.test_store_kafka_cluster import coordinator
from tests.test_supervision import env_for, until

pytestmark = [pytest.mark.kafka, pytest.mark.cluster, pytest.mark.slow]

SEED = int(os.environ.get("KES_CHAOS_SEED", "1"))
OUTAGE_S = 12.0
STALL_S = 30


class Load:
    """Appends from a thread until stopped: ``step(n)`` makes the n-th append."""

    def __init__(self, step: Callable[[int], None]) -> None:
        self.step, self.count = step, 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.step(self.count)
                self.count += 1
                time.sleep(0.005)
        except BaseException as exc:  # surfaced by stop()
            self.failure = exc

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(150)
        assert not self._thread.is_alive(), "the load thread never stopped"
        if self.failure is not None:
            raise AssertionError(f"the load died: {self.failure!r}") from self.failure
        return self.count


@pytest.fixture
def config(cluster3: LocalCluster, kafka_config: KafkaConfig, tmp_path: Path) -> KafkaConfig:
    return dataclasses.replace(
        kafka_config,
        bootstrap_servers=cluster3.bootstrap_servers,
        index_dir=str(tmp_path / "idx"),
    )


@pytest.fixture
def store(config: KafkaConfig) -> Iterator[KafkaEventStore]:
    with KafkaEventStore(config) as s:
        yield s


def run_supervised(config: KafkaConfig, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = env_for(config, tmp_path)
    cmd = [sys.executable, "-m", "kes.cli", *args, "-n", "2"]
    cmd += ["--stall-timeout", str(STALL_S), "--max-restarts", "10"]
    return subprocess.Popen(cmd, env=env, cwd=tmp_path)


def stop(run: subprocess.Popen[bytes]) -> int:
    if run.poll() is None:
        run.send_signal(signal.SIGTERM)
    try:
        return run.wait(90)
    except subprocess.TimeoutExpired:
        run.kill()
        run.wait(10)
        raise


def chaos(
    cluster3: LocalCluster,
    config: KafkaConfig,
    writer_type: str,
    state_path: Path,
) -> dict[str, Any]:
    """Kill a broker (not the writer's coordinator) for OUTAGE_S; kill -9 member 0 while
    it is down and member 1 after it is back. Returns what was done."""
    rnd = random.Random(SEED)
    spared = {
        coordinator(config, None, "__consumer_offsets", config.writer_group(writer_type)),
        coordinator(config, None, "__transaction_state", config.writer_transactional_id()),
    }
    victim = rnd.choice(sorted(n.node_id for n in cluster3.nodes if n.node_id not in spared))

    cluster3.kill(victim)
    killed_at = time.monotonic()
    time.sleep(rnd.uniform(2, OUTAGE_S - 4))
    first = until(lambda: _alive_pid(state_path, 0), 60, "member 0 running")
    os.kill(first, signal.SIGKILL)
    time.sleep(max(0.0, killed_at + OUTAGE_S - time.monotonic()))
    cluster3.restart(victim)  # returns once the node is back in the cluster's metadata
    back_after = time.monotonic() - killed_at
    time.sleep(rnd.uniform(2, 6))
    second = until(lambda: _alive_pid(state_path, 1), 60, "member 1 running")
    os.kill(second, signal.SIGKILL)
    print(
        f"\nseed {SEED}: broker {victim} killed, restarted after {OUTAGE_S:.0f}s, back in "
        f"the cluster after {back_after:.0f}s; members {first} and {second} killed"
    )
    return {"broker": victim, "killed": [first, second]}


def _alive_pid(state_path: Path, i: int) -> int | None:
    state = read_state(state_path)
    if state is None:
        return None
    member = state["members"][i]
    return int(member["pid"]) if member["alive"] else None


def restarts(state_path: Path) -> list[int]:
    state = read_state(state_path)
    assert state is not None
    return [int(m["restarts"]) for m in state["members"]]


# ---- the three kinds -------------------------------------------------------------------


def acct_load(store: KafkaEventStore) -> Load:
    rnd = random.Random(SEED)

    def step(n: int) -> None:
        event = NewEvent(event_type="Added", payload={"amount": rnd.randrange(1, 100)})
        append_surely(store, "Acct", f"a{rnd.randrange(30)}", event, ANY)

    return Load(step)


def test_an_exactly_once_sql_projection_equals_the_log_through_a_broker_crash(
    cluster3: LocalCluster, config: KafkaConfig, store: KafkaEventStore, tmp_path: Path, unique: str
) -> None:
    import psycopg

    dsn = postgres_dsn()
    table, name = f"ctotals_{unique}", f"{unique}.totals"
    (tmp_path / f"rm_{unique}.py").write_text(
        "from tests.workers.projector import totals_class\n"
        f"Totals = totals_class({name!r}, 'Acct', {table!r})\n"
    )

    def read_totals() -> dict[str, tuple[int, int]]:
        with psycopg.connect(dsn) as conn:
            try:
                rows = conn.execute(f"SELECT aggregate_id, n, amount FROM {table}").fetchall()
            except psycopg.errors.UndefinedTable:
                return {}
        return {a: (int(n), int(s)) for a, n, s in rows}

    def from_log() -> dict[str, tuple[int, int]]:
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r in read_log(config.bootstrap_servers, config.topic("Acct"), config.partitions):
            totals[r["aggregateId"]][0] += 1
            totals[r["aggregateId"]][1] += r["payload"]["amount"]
        return {k: (n, s) for k, (n, s) in totals.items()}

    load = acct_load(store)
    state_path = tmp_path / "run" / f"project-{name}.json"
    run = run_supervised(
        config, tmp_path, "project", "run", f"rm_{unique}:Totals", "--database", dsn
    )
    try:
        until(lambda: read_totals(), 90, "the projection's first rows")
        chaos(cluster3, config, "Acct", state_path)
        time.sleep(3)
        appended = load.stop()
        want = from_log()
        until(lambda: read_totals() == want, 180, "read model equal to the log")
        time.sleep(3)  # anything late would be a second application
        assert read_totals() == want
        assert sum(n for n, _ in want.values()) == appended
        assert all(n >= 1 for n in restarts(state_path)), restarts(state_path)
    finally:
        load.stop()
        code = stop(run)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    assert code == 0
    print(f"exactly-once SQL: {appended} events, read model equal to the log")


def test_a_kafka_processor_derives_each_event_once_through_a_broker_crash(
    cluster3: LocalCluster, config: KafkaConfig, store: KafkaEventStore, tmp_path: Path
) -> None:
    load = acct_load(store)
    name = "kes.derive.Acct"
    state_path = tmp_path / "run" / f"project-{name}.json"
    target = derived_topic(config.topic("Acct"), "Added")

    def derived() -> list[dict[str, Any]]:
        return read_log(config.bootstrap_servers, target, config.partitions)

    run = run_supervised(config, tmp_path, "project", "derive", "Acct")
    try:
        until(lambda: derived(), 90, "the first derived records")
        chaos(cluster3, config, "Acct", state_path)
        time.sleep(3)
        appended = load.stop()
        source = read_log(config.bootstrap_servers, config.topic("Acct"), config.partitions)
        assert len(source) == appended
        until(lambda: len(derived()) >= len(source), 180, "every event derived")
        time.sleep(3)
        got = derived()
        assert all(n >= 1 for n in restarts(state_path)), restarts(state_path)
    finally:
        load.stop()
        code = stop(run)
    assert code == 0
    assert sorted(r["eventId"] for r in got) == sorted(r["eventId"] for r in source)
    where = {r["eventId"]: r["_partition"] for r in source}
    assert all(r["_partition"] == where[r["eventId"]] for r in got)
    order = {r["eventId"]: r["_offset"] for r in source}
    for p in range(config.partitions):
        copied = [order[r["eventId"]] for r in got if r["_partition"] == p]
        assert copied == sorted(copied), f"partition {p} derived out of order"
    print(f"derive: {appended} events, each derived once, in order")


def test_a_windowed_pipeline_equals_a_recomputation_through_a_broker_crash(
    cluster3: LocalCluster, config: KafkaConfig, store: KafkaEventStore, tmp_path: Path, unique: str
) -> None:
    from tests.test_streams import BankTraffic, bank_results, expected_bank

    (tmp_path / f"pipe_{unique}.py").write_text(
        "from examples.bank.streams import monitoring\n"
        "from kes.streams import Pipeline\n"
        f"pipeline = Pipeline({unique!r}, monitoring.build, aggregates=monitoring.aggregates)\n"
    )
    state_path = tmp_path / "run" / f"stream-{unique}.json"
    traffic = BankTraffic(store, config, accounts=8)
    run = run_supervised(
        config,
        tmp_path,
        "stream",
        "run",
        f"pipe_{unique}:pipeline",
        "--state-dir",
        str(tmp_path / "st"),
    )
    try:
        until(lambda: sum(bank_results(config)[0].values()) > 0, 120, "first results")
        chaos(cluster3, config, "Account", state_path)
        time.sleep(3)
        traffic.stop()
        expected = expected_bank(config)
        until(lambda: bank_results(config) == expected, 180, "results equal the log's")
        time.sleep(3)
        assert bank_results(config) == expected  # nothing doubled later
        assert all(n >= 1 for n in restarts(state_path)), restarts(state_path)
    finally:
        traffic.stop()
        code = stop(run)
    assert code == 0
    print(
        f"pipeline: {sum(expected[0].values())} hourly windows, {sum(expected[1].values())} alerts"
    )
