"""The users workload on kes and on the ``eventsourcing`` package, at equal durability.

A command does what a service does: load the user, decide (rename), save. Cache off for
both (every load reads the store), then on for both (kes ``cache_size``, eventsourcing
``AGGREGATE_CACHE_MAXSIZE``). Callers 1, 4, 16, 64 threads; every run makes fresh users
(not timed: that also opens the peer's connection pool, as kes's store is opened before
the clock), then times ``COMMANDS_PER_USER`` commands on each, so every system ends with
streams of the same length.

Two honest comparisons, side by side:

* **(a) single machine, no fsync per commit**: kes on one node (replication factor 1,
  the broker never flushes) vs eventsourcing on SQLite ``synchronous=NORMAL`` (WAL) and
  on PostgreSQL with ``synchronous_commit=off``;
* **(b) a commit survives a machine loss / power loss**: kes on three nodes
  (replication factor 3, min ISR 2, acks=all) vs SQLite ``synchronous=FULL`` and
  PostgreSQL ``synchronous_commit=on`` with ``fsync=on`` (each commit flushed).

The peer is configured for speed as its docs allow: PostgreSQL with
``POSTGRES_ENABLE_DB_FUNCTIONS`` (inserts through a database function) and a pool of one
connection per caller; SQLite with WAL and one connection per caller. Systems run one
after the other; nothing of another system is open while one is measured.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlparse

from examples.users.domain import User

from benchmarks.common import latency_ms
from benchmarks.harness import Bench
from benchmarks.stats import median
from kes import Application

NAME = "users: load, decide, save"
COMMANDS_PER_USER = 4
A = "a: single machine, no fsync per commit"
B = "b: replicated x3 or fsync per commit"


@dataclass
class Handle:
    """One system, opened for one run: create a user (not timed), run one command."""

    create: Callable[[int], Any]
    command: Callable[[Any, int], None]
    close: Callable[[], None]
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class System:
    name: str
    durability: str
    open: Callable[[int, bool], Handle]  # (callers, cache) -> a handle
    close: Callable[[], None] = lambda: None


def run_domain(handle: Handle, callers: int, users: int, commands_per_user: int) -> dict[str, Any]:
    """Create ``users`` users from ``callers`` threads (not timed), then time
    ``commands_per_user`` load-decide-save commands on each, ``callers`` threads."""
    mine: list[list[Any]] = [[] for _ in range(callers)]
    errors: list[str] = []

    def create(c: int) -> None:
        for i in range(c, users, callers):
            mine[c].append(handle.create(i))

    _threads(create, callers)
    latencies: list[list[float]] = [[] for _ in range(callers)]

    def work(c: int) -> None:
        lat = latencies[c]
        for k in range(commands_per_user):
            for ref in mine[c]:
                t = time.perf_counter()
                try:
                    handle.command(ref, k)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                lat.append(time.perf_counter() - t)

    started = time.perf_counter()
    _threads(work, callers)
    elapsed = time.perf_counter() - started
    flat = [x for lat in latencies for x in lat]
    lat_ms = latency_ms(flat)
    return {
        "commands_per_s": len(flat) / elapsed,
        "p50_ms": lat_ms["p50"],
        "p99_ms": lat_ms["p99"],
        "commands": len(flat),
        "errors": errors,
    }


def _threads(fn: Callable[[int], None], n: int) -> None:
    threads = [threading.Thread(target=fn, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


# ---- the systems ---------------------------------------------------------------------------


def kes_system(bench: Bench, name: str, durability: str, bootstrap: str, nodes: int) -> System:
    from kes.store.kafka import KafkaEventStore

    store = KafkaEventStore(bench.config(f"domain{nodes}", bootstrap_servers=bootstrap))
    store.owned_partitions(User.aggregate_type)  # joined and serving before any clock
    rf = bench.replication_factor if nodes == 1 else 3

    def open_(callers: int, cache: bool) -> Handle:
        app = Application(store, cache_size=100_000 if cache else 0)
        tag = uuid.uuid4().hex[:6]

        def create(i: int) -> str:
            user = User(user_id=f"es-{tag}-{i}", username=f"user{i}", email=f"u{i}@x")
            app.save(user)
            return user.id

        def command(uid: str, k: int) -> None:
            user = app.get(User, uid)
            user.rename(f"name{k}")
            app.save(user)

        settings = {"nodes": nodes, "replication_factor": rf, "acks": "all"}
        return Handle(create, command, lambda: None, settings)

    return System(name, durability, open_, store.close)


def es_system(name: str, durability: str, env: dict[str, str], check: str) -> System:
    from benchmarks.es_domain import ESUser, Users

    def open_(callers: int, cache: bool) -> Handle:
        app_env = dict(env)
        if env["PERSISTENCE_MODULE"].endswith("SynchronousSQLiteFactory"):
            app_env["SQLITE_POOL_SIZE"] = str(callers)
        else:
            app_env["POSTGRES_POOL_SIZE"] = str(callers)
            app_env["POSTGRES_MAX_OVERFLOW"] = "0"
        if cache:
            app_env["AGGREGATE_CACHE_MAXSIZE"] = "100000"
        app = Users(env=app_env)

        def create(i: int) -> Any:
            user = ESUser(username=f"user{i}", email=f"u{i}@x")
            app.save(user)
            return user.id

        def command(uid: Any, k: int) -> None:
            user: ESUser = app.repository.get(uid)
            user.rename(f"name{k}")
            app.save(user)

        return Handle(create, command, app.close, {check: _setting(app, check)})

    return System(name, durability, open_)


def _setting(app: Any, what: str) -> str:
    """The setting in effect on a connection of ``app`` (checked, not assumed)."""
    datastore = app.factory.datastore
    try:
        if what == "sqlite synchronous":
            with datastore.transaction(commit=False) as c:
                c.execute("PRAGMA synchronous")
                return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[c.fetchone()[0]]
        with datastore.get_connection() as conn:
            sync = conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"]
            fsync = conn.execute("SHOW fsync").fetchone()["fsync"]
            return f"synchronous_commit={sync}, fsync={fsync}"
    except Exception as exc:
        return f"unknown ({exc})"


def postgres_database(dsn: str, name: str, synchronous_commit: str) -> dict[str, str]:
    """A fresh database ``name`` on the server at ``dsn`` with the given commit mode for
    every session; the eventsourcing environment for it."""
    import psycopg

    url = urlparse(dsn)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
        conn.execute(f"ALTER DATABASE {name} SET synchronous_commit = {synchronous_commit}")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": name,
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_PASSWORD": url.password or "",
        "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
    }


def _postgres_system(dsn: str, database: str, sync: str, durability: str) -> System:
    env = postgres_database(dsn, database, sync)
    name = f"eventsourcing, PostgreSQL synchronous_commit={sync}"
    return es_system(name, durability, env, "postgres")


def drop_databases(bench: Bench, dsn: str, names: list[str]) -> None:
    try:
        import psycopg

        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            for name in names:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except Exception as exc:
        bench.note(f"could not drop the benchmark databases: {exc}")


def systems(bench: Bench) -> tuple[list[Callable[[], System]], list[str]]:
    """Constructors of every system this run can measure, and the databases to drop."""
    out: list[Callable[[], System]] = [
        lambda: kes_system(bench, "kes, 1 node (RF 1)", A, bench.bootstrap, 1)
    ]
    if bench.cluster3:
        cluster3 = bench.cluster3
        out.append(lambda: kes_system(bench, "kes, 3 nodes (RF 3, min ISR 2)", B, cluster3, 3))
    else:
        bench.note("domain: no 3-node cluster (--cluster3-dir): comparison (b) has no kes side")
    db_dir = bench.scratch / "eventsourcing"
    db_dir.mkdir(parents=True, exist_ok=True)
    for mode, durability in (("NORMAL", A), ("FULL", B)):
        env = {
            "PERSISTENCE_MODULE": "benchmarks.es_domain:SynchronousSQLiteFactory",
            "SQLITE_DBNAME": str(db_dir / f"users-{mode.lower()}.sqlite"),
            "SQLITE_SYNCHRONOUS": mode,
        }
        name = f"eventsourcing, SQLite synchronous={mode}"
        out.append(partial(es_system, name, durability, env, "sqlite synchronous"))
    dsn = bench.postgres_dsn or os.environ.get("KES_POSTGRES_DSN")
    databases: list[str] = []
    if not dsn:
        bench.note("domain: eventsourcing on PostgreSQL skipped: no DSN (scripts/postgres.sh)")
        return out, databases
    for sync, durability in (("off", A), ("on", B)):
        name = f"kes_bench_{bench.tag}_{sync}"
        databases.append(name)
        out.append(partial(_postgres_system, dsn, name, sync, durability))
    return out, databases


def run(bench: Bench) -> None:
    callers_list = (1, 16, 64) if bench.quick else (1, 4, 16, 64)
    per_caller, least = (4, 32) if bench.quick else (8, 64)
    commands = 2 if bench.quick else COMMANDS_PER_USER
    makers, databases = systems(bench)
    dsn = bench.postgres_dsn or os.environ.get("KES_POSTGRES_DSN") or ""
    try:
        for make in makers:
            system = make()
            try:
                for cache in (False, True):
                    for callers in callers_list:
                        users = max(callers * per_caller, least)
                        runs, settings = [], {}
                        for _ in range(bench.runs):
                            handle = system.open(callers, cache)
                            try:
                                runs.append(run_domain(handle, callers, users, commands))
                            finally:
                                settings = handle.settings
                                handle.close()
                        errors = [e for r in runs for e in r["errors"]]
                        bench.add(
                            "domain",
                            NAME,
                            "commands/s",
                            [r["commands_per_s"] for r in runs],
                            {
                                "system": system.name,
                                "durability": system.durability,
                                "cache": "on" if cache else "off",
                                "callers": callers,
                            },
                            failures=[f"{len(errors)} commands failed ({errors[0]})"]
                            if errors
                            else [],
                            latency_ms={
                                "p50": median([r["p50_ms"] for r in runs]),
                                "p99": median([r["p99_ms"] for r in runs]),
                            },
                            p50_ms=[r["p50_ms"] for r in runs],
                            p99_ms=[r["p99_ms"] for r in runs],
                            users=users,
                            commands_per_user=commands,
                            settings=settings,
                        )
            finally:
                system.close()
    finally:
        if dsn and databases:
            drop_databases(bench, dsn, databases)
