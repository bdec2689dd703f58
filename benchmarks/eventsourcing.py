"""``python -m benchmarks.eventsourcing``: the eventsourcing library's own workload shapes
on kes, next to the library's SQLite and PostgreSQL modules; prints JSON with ratios.

Shapes (the library's recorder test cases, same sizes unless ``--quick``):

* ``insert_one_by_one``: one thread, one single-event insert after another
  (``ApplicationRecorderTestCase.test_performance``);
* ``insert_with_tracking``: the same with a tracking record in each insert
  (``ProcessRecorderTestCase.test_performance``);
* ``concurrent_throughput``: 4 threads, inserts of 50 events each
  (``test_concurrent_throughput``);
* ``concurrent_no_conflicts``: 10 writer threads x 100 inserts of 100 events while 2
  threads keep reading notifications (``test_concurrent_no_conflicts``);
* ``bank_commands``: the bank example application (examples/eventsourcing_bank): open
  an account, then deposits, each a load and a save, from 4 threads.

Every run records into a fresh log / table / database file. ``kes/sqlite`` and
``kes/postgres`` are kes's figure divided by the other's (above 1: kes does more per
second). Settings: ``KES_BOOTSTRAP_SERVERS``; ``KES_POSTGRES_DSN`` (default: the server
scripts/postgres.sh runs); the database ``kes_es_bench`` is created and dropped there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
    StoredEvent,
    Tracking,
)
from eventsourcing.utils import Environment

from benchmarks.common import environment, latency_ms

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:15432/postgres"
PG_DATABASE = "kes_es_bench"

Env = Callable[[str], dict[str, str]]  # a fresh application name -> its environment
Result = dict[str, float]


# ---- the shapes -----------------------------------------------------------------------------


def _event(originator: uuid.UUID, version: int = 1) -> StoredEvent:
    return StoredEvent(originator, version, "topic1", b'{"state":1}')


def _factory(env: Env) -> InfrastructureFactory[Any]:
    name = "Bench" + uuid.uuid4().hex[:8]
    return InfrastructureFactory.construct(Environment(name, env(name)))


def insert_one_by_one(env: Env, n: int) -> Result:
    factory = _factory(env)
    recorder: ApplicationRecorder = factory.application_recorder()
    try:
        for _ in range(10):  # warm up, as the library's test does
            recorder.insert_events([_event(uuid.uuid4())])
        latencies = []
        started = time.perf_counter()
        for _ in range(n):
            t = time.perf_counter()
            recorder.insert_events([_event(uuid.uuid4())])
            latencies.append(time.perf_counter() - t)
        seconds = time.perf_counter() - started
    finally:
        factory.close()
    lat = latency_ms(latencies)
    return {"per_s": n / seconds, "p50_ms": lat["p50"], "p99_ms": lat["p99"]}


def insert_with_tracking(env: Env, n: int) -> Result:
    factory = _factory(env)
    recorder: ProcessRecorder = factory.process_recorder()
    try:
        recorder.insert_events([_event(uuid.uuid4())], tracking=Tracking("upstream", 1))
        latencies = []
        started = time.perf_counter()
        for i in range(2, n + 2):
            t = time.perf_counter()
            recorder.insert_events([_event(uuid.uuid4())], tracking=Tracking("upstream", i))
            latencies.append(time.perf_counter() - t)
        seconds = time.perf_counter() - started
    finally:
        factory.close()
    lat = latency_ms(latencies)
    return {"per_s": n / seconds, "p50_ms": lat["p50"], "p99_ms": lat["p99"]}


def _many(recorder: ApplicationRecorder, events: int) -> None:
    originator = uuid.uuid4()
    recorder.insert_events([_event(originator, v) for v in range(events)])


def concurrent_throughput(env: Env, jobs: int, workers: int = 4, events: int = 50) -> Result:
    factory = _factory(env)
    recorder = factory.application_recorder()
    try:
        with ThreadPoolExecutor(workers) as pool:  # warm up, as the library's test does
            list(pool.map(lambda _: _many(recorder, events), range(workers)))
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda _: _many(recorder, events), range(jobs)))
        seconds = time.perf_counter() - started
    finally:
        factory.close()
    return {"per_s": jobs * events / seconds}


def concurrent_no_conflicts(
    env: Env, writes: int, writers: int = 10, events: int = 100, readers: int = 2
) -> Result:
    factory = _factory(env)
    recorder = factory.application_recorder()
    stop = threading.Event()
    reads = [0] * readers

    def read(i: int) -> None:
        while not stop.is_set():
            recorder.select_notifications(start=0, limit=10, inclusive_of_start=False)
            reads[i] += 1
            time.sleep(0.0001)

    try:
        _many(recorder, 1)
        threads = [threading.Thread(target=read, args=(i,)) for i in range(readers)]
        for t in threads:
            t.start()
        latencies: list[float] = []

        def write(_: int) -> None:
            t = time.perf_counter()
            _many(recorder, events)
            latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        with ThreadPoolExecutor(writers) as pool:
            list(pool.map(write, range(writes)))
        seconds = time.perf_counter() - started
        stop.set()
        for t in threads:
            t.join()
    finally:
        stop.set()
        factory.close()
    lat = latency_ms(latencies)
    return {
        "per_s": writes * events / seconds,
        "insert_p99_ms": lat["p99"],
        "reads_per_s": sum(reads) / seconds,
    }


def bank_commands(env: Env, accounts: int, deposits: int, threads: int = 4) -> Result:
    from examples.eventsourcing_bank.application import BankAccounts

    name = "Bank" + uuid.uuid4().hex[:8]

    class Bank(BankAccounts):
        pass

    Bank.name = name
    bank = Bank(env=env(name))
    latencies: list[float] = []
    try:
        bank.open_account("warm", "warm@example.com")

        def work(_: int) -> None:
            account = bank.open_account("Holder", "holder@example.com")
            for _ in range(deposits):
                t = time.perf_counter()
                bank.deposit(account, Decimal("1.00"))
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(accounts)))
        seconds = time.perf_counter() - started
    finally:
        bank.close()
    lat = latency_ms(latencies)
    return {
        "per_s": accounts * (1 + deposits) / seconds,
        "deposit_p50_ms": lat["p50"],
        "deposit_p99_ms": lat["p99"],
    }


# ---- the backends ---------------------------------------------------------------------------


def kes_env(bootstrap: str, scratch: Path) -> Env:
    namespace = "esbench" + uuid.uuid4().hex[:6]
    return lambda name: {
        "PERSISTENCE_MODULE": "kes.integrations.eventsourcing",
        "KES_BOOTSTRAP_SERVERS": bootstrap,
        "KES_NAMESPACE": namespace,
        "KES_INDEX_DIR": str(scratch / "kes-index"),
    }


def sqlite_env(scratch: Path) -> Env:
    return lambda name: {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(scratch / f"{name}.sqlite"),
        "CREATE_TABLE": "y",
    }


def postgres_env(dsn: str) -> Env:
    url = urlparse(dsn)
    return lambda name: {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": PG_DATABASE,
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_PASSWORD": url.password or "",
        "POSTGRES_POOL_SIZE": "20",
        "CREATE_TABLE": "y",
    }


def _admin(dsn: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


# ---- running ----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per shape and backend (median)")
    ap.add_argument("--quick", action="store_true", help="small sizes, one run")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    runs = 1 if args.quick else args.runs
    q = args.quick
    shapes: dict[str, Callable[[Env], Result]] = {
        "insert_one_by_one": lambda env: insert_one_by_one(env, 30 if q else 100),
        "insert_with_tracking": lambda env: insert_with_tracking(env, 30 if q else 100),
        "concurrent_throughput": lambda env: concurrent_throughput(env, 10 if q else 40),
        "concurrent_no_conflicts": lambda env: concurrent_no_conflicts(env, 20 if q else 100),
        "bank_commands": lambda env: bank_commands(env, 4 if q else 8, 5 if q else 20),
    }
    bootstrap = os.environ.get("KES_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    dsn = os.environ.get("KES_POSTGRES_DSN", DEFAULT_DSN)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kes-es-bench-") as tmp:
        scratch = Path(tmp)
        backends: dict[str, Env] = {
            "kes": kes_env(bootstrap, scratch),
            "sqlite": sqlite_env(scratch),
        }
        if not args.no_postgres:
            try:
                _admin(dsn, f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
                _admin(dsn, f"CREATE DATABASE {PG_DATABASE}")
                backends["postgres"] = postgres_env(dsn)
            except Exception as exc:
                notes.append(f"PostgreSQL skipped: {dsn} unusable ({exc})")
        results: dict[str, Any] = {}
        try:
            for shape, run in shapes.items():
                row: dict[str, Any] = {}
                for backend, env in backends.items():
                    measured = [run(env) for _ in range(runs)]
                    row[backend] = {
                        key: round(statistics.median(m[key] for m in measured), 2)
                        for key in measured[0]
                    } | {"runs_per_s": [round(m["per_s"], 1) for m in measured]}
                    print(f"{shape} {backend}: {row[backend]}", file=sys.stderr)
                for other in ("sqlite", "postgres"):
                    if other in row and row[other]["per_s"]:
                        row[f"kes/{other}"] = round(row["kes"]["per_s"] / row[other]["per_s"], 3)
                results[shape] = row
        finally:
            if "postgres" in backends:
                try:
                    _admin(dsn, f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
                except Exception as exc:
                    notes.append(f"could not drop {PG_DATABASE}: {exc}")
    report = {
        "what": "the eventsourcing library's workload shapes: kes vs its SQLite and PostgreSQL",
        "unit": "per_s: inserts/s (one_by_one, tracking), events/s (concurrent), commands/s (bank)",
        "environment": environment({"bootstrap": bootstrap}),
        "runs": runs,
        "shapes": results,
        "notes": notes,
    }
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
