"""The same domain workload on kes (Kafka) and on the ``eventsourcing`` package
(SQLite file, PostgreSQL): create users, rename each several times (one save per
command), then load each user.

Different architectures: ``eventsourcing`` writes synchronously to one local database
(one SQL transaction per save, fsync'd by the database); kes writes each save as a
Kafka transaction with acks=all through the partition's single writer. The ratio says
what the Kafka design costs or gains on this machine, not that one is "better".
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from examples.users.domain import User

from benchmarks.common import latency_ms
from benchmarks.harness import Bench
from kes import Application

Workload = tuple[Callable[[int], Any], Callable[[Any, int], None], Callable[[Any], None]]


def es_app(env: dict[str, str]) -> Any:
    """An eventsourcing Application (benchmarks.es_domain) on the given persistence."""
    from benchmarks.es_domain import Users

    return Users(env=env)


def run_domain(
    create: Callable[[int], Any],
    rename: Callable[[Any, int], None],
    load: Callable[[Any], None],
    users: int,
    renames: int,
    callers: int,
) -> dict[str, float]:
    """Commands/s (create + renames, one save each) and load latency, ``callers`` threads."""
    ids: list[list[Any]] = [[] for _ in range(callers)]
    per = users // callers

    def write(c: int) -> None:
        for i in range(per):
            agg = create(c * per + i)
            for r in range(renames):
                rename(agg, r)
            ids[c].append(agg)

    started = time.perf_counter()
    threads = [threading.Thread(target=write, args=(c,)) for c in range(callers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    write_s = time.perf_counter() - started
    lat: list[float] = []
    for group in ids:
        for agg in group:
            t = time.perf_counter()
            load(agg)
            lat.append(time.perf_counter() - t)
    loads = latency_ms(lat)
    commands = per * callers * (1 + renames)
    return {
        "commands_per_s": commands / write_s,
        "load_p50_ms": loads["p50"],
        "load_p99_ms": loads["p99"],
    }


def kes_workload(app: Application) -> Workload:
    tag = uuid.uuid4().hex[:6]

    def create(i: int) -> Any:
        user = User(user_id=f"es-{tag}-{i}", username=f"user{i}", email=f"u{i}@x")
        app.save(user)
        return user

    def rename(user: Any, r: int) -> None:
        user.rename(f"name{r}")
        app.save(user)

    def load(user: Any) -> None:
        app.get(User, user.id)

    return create, rename, load


def es_workload(app: Any) -> Workload:
    def create(i: int) -> Any:
        from benchmarks.es_domain import ESUser

        user = ESUser(username=f"user{i}", email=f"u{i}@x")
        app.save(user)
        return user

    def rename(user: Any, r: int) -> None:
        user.rename(f"name{r}")
        app.save(user)

    def load(user: Any) -> None:
        app.repository.get(user.id)

    return create, rename, load


def postgres_env(bench: Bench, dsn: str) -> dict[str, str] | None:
    """A fresh database for this run on the server at ``dsn``; None when unreachable."""
    try:
        import psycopg

        url = urlparse(dsn)
        dbname = f"kes_bench_{bench.tag}"
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE DATABASE {dbname}")
    except Exception as exc:
        bench.note(f"eventsourcing on PostgreSQL skipped: {dsn} unusable ({exc})")
        return None
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_PASSWORD": url.password or "",
        "POSTGRES_POOL_SIZE": "20",
    }


def drop_postgres(bench: Bench, dsn: str) -> None:
    try:
        import psycopg

        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS kes_bench_{bench.tag} WITH (FORCE)")
    except Exception as exc:
        bench.note(f"could not drop the benchmark database: {exc}")


def record(
    bench: Bench, system: str, callers: int, runs: list[dict[str, float]], **extra: Any
) -> None:
    params = {"system": system, "callers": callers}
    bench.add(
        "domain",
        "commands (create/rename, one save each)",
        "commands/s",
        [r["commands_per_s"] for r in runs],
        params,
        **extra,
    )
    bench.add(
        "domain",
        "load (no cache)",
        "ms p99",
        [r["load_p99_ms"] for r in runs],
        params,
        p50_ms=[r["load_p50_ms"] for r in runs],
    )


def run(bench: Bench) -> None:
    from kes.store.kafka import KafkaEventStore

    users = 48 if bench.quick else 320
    renames = 4
    callers_list = (1, 16)
    sizes = {"users": users, "renames_each": renames}
    with KafkaEventStore(bench.config("domain")) as store:
        app = Application(store, cache_size=0)
        store.owned_partitions(User.aggregate_type)
        for callers in callers_list:
            runs = [
                run_domain(*kes_workload(app), users, renames, callers) for _ in range(bench.runs)
            ]
            record(bench, "kes (Kafka, acks=all, 1 node)", callers, runs, **sizes)
    db_dir = bench.scratch / "eventsourcing"
    db_dir.mkdir(parents=True, exist_ok=True)
    for callers in callers_list:
        runs = []
        for r in range(bench.runs):
            path = db_dir / f"es-{callers}-{r}.sqlite"
            es = es_app({"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)})
            try:
                runs.append(run_domain(*es_workload(es), users, renames, callers))
            finally:
                es.close()
        record(bench, "eventsourcing (SQLite file)", callers, runs, **sizes)
    dsn = bench.postgres_dsn or os.environ.get("KES_POSTGRES_DSN")
    if not dsn:
        bench.note("eventsourcing on PostgreSQL skipped: no DSN (scripts/postgres.sh)")
        return
    env = postgres_env(bench, dsn)
    if env is None:
        return
    try:
        for callers in callers_list:
            runs = []
            for _ in range(bench.runs):
                es = es_app(env)
                try:
                    runs.append(run_domain(*es_workload(es), users, renames, callers))
                finally:
                    es.close()
            record(bench, "eventsourcing (PostgreSQL)", callers, runs, **sizes)
    finally:
        drop_postgres(bench, dsn)
