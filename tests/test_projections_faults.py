"""Processing guarantees under kill -9, with real Kafka and real processes.

Projector processes (tests/workers/projector.py) are killed at random moments while
the test keeps appending; afterwards the read model is compared with a fresh
computation from the log, read by a plain consumer.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from kes import ANY, NewEvent
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.faults import read_log
from tests.pg import postgres_dsn

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
TYPE = "Acct"
CHAOS_SECONDS = float(os.environ.get("KES_CHAOS_SECONDS", "20"))
KILLS = int(os.environ.get("KES_CHAOS_KILLS", "6"))


def spawn_projector(config: KafkaConfig, **opts: Any) -> subprocess.Popen[bytes]:
    fields = dataclasses.asdict(config)
    fields["member_name"] = f"projector-{uuid.uuid4().hex[:6]}"
    cmd = [sys.executable, "-m", "tests.workers.projector", "--config", json.dumps(fields)]
    for k, v in opts.items():
        cmd += [f"--{k}", str(v)]
    return subprocess.Popen(cmd, cwd=ROOT)


class Appender:
    """Appends ``Added`` events with random amounts from a thread, until stopped."""

    def __init__(self, store: KafkaEventStore, aggregates: int = 25, pause_s: float = 0.004):
        self.store, self.aggregates, self.pause_s = store, aggregates, pause_s
        self.count = 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rnd = random.Random(7)
        try:
            while not self._stop.is_set():
                agg = f"a{rnd.randrange(self.aggregates)}"
                event = NewEvent(event_type="Added", payload={"amount": rnd.randrange(1, 100)})
                self.store.append(TYPE, agg, [event], ANY)
                self.count += 1
                time.sleep(self.pause_s)
        except BaseException as exc:  # surfaced by stop(): a dead appender fails the test
            self.failure = exc

    def stop(self) -> int:
        """Stop appending; the number of events appended. Raises what killed the thread."""
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the appender thread never stopped"
        if self.failure is not None:
            raise AssertionError(f"the appender died: {self.failure!r}") from self.failure
        return self.count


def chaos(
    spawn: Callable[[], subprocess.Popen[bytes]], seconds: float, kills: int, seed: int = 1
) -> tuple[list[subprocess.Popen[bytes]], int]:
    """Two processes; ``kills`` times, kill -9 one at random and start a replacement.
    Returns the processes and how many were really killed (alive until the SIGKILL)."""
    rnd = random.Random(seed)
    procs = [spawn(), spawn()]
    moments = sorted(rnd.uniform(3, seconds) for _ in range(kills))
    started = time.monotonic()
    done = 0
    for at in moments:
        time.sleep(max(0.0, started + at - time.monotonic()))
        victim = rnd.choice(procs)
        was_alive = victim.poll() is None
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        if was_alive and victim.returncode == -signal.SIGKILL:
            done += 1
        procs[procs.index(victim)] = spawn()
    time.sleep(max(0.0, started + seconds - time.monotonic()))
    return procs, done


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def from_log(config: KafkaConfig) -> tuple[list[dict[str, Any]], dict[str, tuple[int, int]]]:
    records = read_log(config.bootstrap_servers, config.topic(TYPE), config.partitions)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        totals[r["aggregateId"]][0] += 1
        totals[r["aggregateId"]][1] += r["payload"]["amount"]
    return records, {k: (v[0], v[1]) for k, v in totals.items()}


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()


def committed_at_end(config: KafkaConfig, group: str, records: list[dict[str, Any]]) -> bool:
    ends: dict[int, int] = {}
    for r in records:
        ends[r["_partition"]] = max(ends.get(r["_partition"], 0), r["_offset"] + 1)
    c = Consumer(
        {"bootstrap.servers": config.bootstrap_servers, "group.id": config.group_id(group)}
    )
    try:
        tps = c.committed([TopicPartition(config.topic(TYPE), p) for p in ends], timeout=10)
    finally:
        c.close()
    return all(tp.offset >= ends[tp.partition] for tp in tps)


# ---- exactly once into SQL ------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """(URL, function returning the totals table as a dict)."""
    if request.param == "sqlite":
        path = tmp_path / "rm.db"

        def read_sqlite(table: str) -> dict[str, tuple[int, int]]:
            if not path.exists():
                return {}
            with sqlite3.connect(path, timeout=30) as db:
                try:
                    rows = db.execute(f"SELECT aggregate_id, n, amount FROM {table}").fetchall()
                except sqlite3.OperationalError:
                    return {}
            return {a: (n, s) for a, n, s in rows}

        yield str(path), read_sqlite
        return
    import psycopg

    dsn = postgres_dsn()
    tables: list[str] = []

    def read_pg(table: str) -> dict[str, tuple[int, int]]:
        tables.append(table)
        with psycopg.connect(dsn) as conn:
            try:
                rows = conn.execute(f"SELECT aggregate_id, n, amount FROM {table}").fetchall()
            except psycopg.errors.UndefinedTable:
                return {}
        return {a: (int(n), int(s)) for a, n, s in rows}

    yield dsn, read_pg
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in set(tables):
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_exactly_once_sql_read_model_equals_the_log_after_kill_9s(
    kafka_config: KafkaConfig,
    kafka_store: KafkaEventStore,
    unique: str,
    database: tuple[str, Callable[[str], dict[str, tuple[int, int]]]],
) -> None:
    url, read_totals = database
    table = f"totals_{unique}"
    name = f"{unique}.totals"
    appender = Appender(kafka_store)
    procs, kills = chaos(
        lambda: spawn_projector(
            kafka_config, kind="totals", name=name, db=url, table=table, batch=100
        ),
        CHAOS_SECONDS,
        KILLS,
    )
    try:  # the projectors are stopped whatever happens next
        appended = appender.stop()
        records, want = from_log(kafka_config)
        converged = wait_until(lambda: read_totals(table) == want, 90)
        got = read_totals(table)
        print(
            f"\nexactly-once ({url.split(':')[0]}): {appended} events appended, {kills} kill -9s, "
            f"read model {sum(n for n, _ in got.values())} events / log {len(records)}"
        )
        assert converged, f"read model {got} != log {want}"
        time.sleep(3)  # anything late would be a second application
        assert read_totals(table) == want
    finally:
        stop_all(procs)
    assert kills == KILLS and appended > 100


def test_exactly_once_with_async_handlers_into_postgresql_equals_the_log_after_kill_9s(
    kafka_config: KafkaConfig,
    kafka_store: KafkaEventStore,
    unique: str,
) -> None:
    """The same chaos, with ``async def`` handlers awaiting psycopg's asyncio driver."""
    import psycopg

    dsn = postgres_dsn()
    table = f"atotals_{unique}"
    name = f"{unique}.atotals"

    def read_totals() -> dict[str, tuple[int, int]]:
        with psycopg.connect(dsn) as conn:
            try:
                rows = conn.execute(f"SELECT aggregate_id, n, amount FROM {table}").fetchall()
            except psycopg.errors.UndefinedTable:
                return {}
        return {a: (int(n), int(s)) for a, n, s in rows}

    appender = Appender(kafka_store)
    seconds, kills_wanted = min(CHAOS_SECONDS, 15.0), min(KILLS, 3)  # the short version
    procs, kills = chaos(
        lambda: spawn_projector(
            kafka_config, kind="totals_async", name=name, db=dsn, table=table, batch=100
        ),
        seconds,
        kills_wanted,
    )
    try:  # the projectors are stopped whatever happens next
        appended = appender.stop()
        records, want = from_log(kafka_config)
        converged = wait_until(lambda: read_totals() == want, 90)
        got = read_totals()
        print(
            f"\nexactly-once (async handlers, postgresql): {appended} events appended, "
            f"{kills} kill -9s, read model {sum(n for n, _ in got.values())} events / log "
            f"{len(records)}"
        )
        assert converged, f"read model {got} != log {want}"
        time.sleep(3)  # anything late would be a second application
        assert read_totals() == want
    finally:
        stop_all(procs)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    assert kills == kills_wanted and appended > 100


# ---- at-least-once and at-most-once, offsets in Kafka -------------------------------


def applied_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    with sqlite3.connect(path, timeout=30) as db:
        try:
            return [r[0] for r in db.execute("SELECT event_id FROM applied")]
        except sqlite3.OperationalError:
            return []


@pytest.mark.parametrize("guarantee", ["at_least_once", "at_most_once"])
def test_kafka_offset_guarantees_hold_after_kill_9s(
    kafka_config: KafkaConfig,
    kafka_store: KafkaEventStore,
    unique: str,
    tmp_path: Path,
    guarantee: str,
) -> None:
    path = tmp_path / "applied.db"
    name = f"{unique}.applied"
    appender = Appender(kafka_store)
    procs, kills = chaos(
        lambda: spawn_projector(
            kafka_config,
            kind="applied",
            name=name,
            db=path,
            guarantee=guarantee,
            batch=50,
            delay=0.002,
        ),
        CHAOS_SECONDS,
        KILLS,
    )
    try:  # the projectors are stopped whatever happens next
        appended = appender.stop()
        records, _ = from_log(kafka_config)
        ids = {r["eventId"] for r in records}
        if guarantee == "at_least_once":
            assert wait_until(lambda: ids <= set(applied_ids(path)), 90), "events missed"
        else:
            assert wait_until(lambda: committed_at_end(kafka_config, name, records), 90)
            time.sleep(1)
    finally:
        stop_all(procs)
    counts = Counter(applied_ids(path))
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    missing = len(ids - set(counts))
    print(
        f"\n{guarantee}: {appended} events, {kills} kill -9s: {len(counts)} applied, "
        f"{duplicates} applied twice or more, {missing} never applied"
    )
    assert appended >= 200 and len(ids) == appended, "too little was appended to prove much"
    assert kills == KILLS, f"only {kills} of {KILLS} kill -9s hit a running projector"
    assert set(counts) <= ids
    if guarantee == "at_least_once":
        assert missing == 0
    else:
        assert duplicates == 0, f"{duplicates} events applied more than once"
        assert len(counts) > len(ids) // 2


# ---- scale-out ---------------------------------------------------------------------------


def latest_assignments(path: Path) -> dict[int, set[int]]:
    latest: dict[int, set[int]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            latest[row["pid"]] = {p for _, p in row["parts"]}
    return latest


def test_three_processes_split_the_partitions_and_a_killed_ones_move(
    kafka_config: KafkaConfig, unique: str, tmp_path: Path
) -> None:
    config = dataclasses.replace(kafka_config, partitions=6)
    store = KafkaEventStore(config)
    log_path = tmp_path / "assignments.jsonl"
    db = tmp_path / "rm.db"
    table, name = "totals", f"{unique}.scale"

    def spawn() -> subprocess.Popen[bytes]:
        return spawn_projector(
            config, kind="totals", name=name, db=db, table=table, assignments=log_path
        )

    procs = [spawn() for _ in range(3)]
    appender = Appender(store, pause_s=0.01)
    try:

        def split() -> bool:
            now = {pid: parts for pid, parts in latest_assignments(log_path).items()}
            alive = [now.get(p.pid, set()) for p in procs if p.poll() is None]
            union = set().union(*alive) if alive else set()
            return (
                all(alive)
                and union == set(range(6))
                and sum(len(a) for a in alive) == 6  # disjoint
            )

        assert wait_until(split, 60), latest_assignments(log_path)
        victim = procs[0]
        victim_parts = latest_assignments(log_path)[victim.pid]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        assert wait_until(split, 60), latest_assignments(log_path)
        survivors = latest_assignments(log_path)
        moved = set().union(*(survivors[p.pid] for p in procs[1:]))
        assert victim_parts <= moved
        time.sleep(2)
        appended = appender.stop()
        _, want = from_log(config)
        reader = sqlite3.connect(db, timeout=30)

        def read() -> dict[str, tuple[int, int]]:
            rows = reader.execute(f"SELECT aggregate_id, n, amount FROM {table}").fetchall()
            return {a: (n, s) for a, n, s in rows}

        assert appended >= 100 and sum(n for n, _ in want.values()) == appended
        assert wait_until(lambda: read() == want, 60), "events lost or doubled"
        print(f"\nscale-out: {appended} events; pid {victim.pid} held {sorted(victim_parts)}")
    finally:
        appender.stop()
        stop_all(procs)
        store.close()
