"""Workload 3, replay and catch-up: events/s into a no-op projection and into SQLite,
next to a raw consumer and ``read_all`` over the same topic; end-to-end lag under steady
load.

Every reader is timed from the moment it subscribes (or assigns), so its group join and
its first fetch are inside the clock; the join is also reported on its own. The topic is
written by kes batched appends, then the store is closed: nothing else of kes runs in
this process while the readers read. The readers take turns going first (run ``r``
starts with reader ``r``), so none always reads right after the write.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from benchmarks.baselines import ReadRun, new_event, raw_consume
from benchmarks.common import latency_ms, percentile
from benchmarks.harness import Bench
from benchmarks.stats import Window, rotate, window_failures
from kes import KesError, RecordedEvent
from kes.projections import Projection, ProjectionRunner, SqlProjection
from kes.store.kafka import KafkaEventStore

AGGREGATE = "BenchReplay"
LAG_AGGREGATE = "BenchLag"


def populate(
    store: KafkaEventStore,
    events: int,
    batch: int = 100,
    callers: int = 32,
    aggregate: str = AGGREGATE,
) -> tuple[float, int]:
    """Append about ``events`` events (batches of ``batch``) to 1,000 aggregates:
    (seconds taken, events written)."""
    per_agg = max(batch, events // 1000)
    n_aggs = events // per_agg
    store.owned_partitions(aggregate)

    def fill(a: int) -> None:
        version = 0
        while version < per_agg:
            version = store.append(
                aggregate, f"r-{a}", [new_event(100) for _ in range(batch)], version
            ).version

    started = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(fill, range(n_aggs)))
    return time.perf_counter() - started, n_aggs * per_agg


def noop_projection(name: str) -> Projection:
    cls = type(
        "NoopProjection",
        (Projection,),
        {
            "name": name,
            "aggregate_types": (AGGREGATE,),
            "on_Written": lambda self, event: None,
        },
    )
    p: Projection = cls()
    return p


class SqliteRows(SqlProjection):
    """One row per event, exactly once (offsets in the same SQLite transaction)."""

    name: ClassVar[str] = "bench-sqlite"
    aggregate_types: ClassVar[tuple[str, ...]] = (AGGREGATE,)

    def setup(self, tx: Any) -> None:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS written "
            "(aggregate_id TEXT, version INTEGER, PRIMARY KEY (aggregate_id, version))"
        )

    def on_Written(self, event: RecordedEvent, tx: Any) -> None:
        tx.execute(
            "INSERT INTO written (aggregate_id, version) VALUES (?, ?)",
            (event.aggregate_id, event.version),
        )


def sqlite_projection(name: str) -> SqlProjection:
    cls = type("SqliteRowsRun", (SqliteRows,), {"name": name})
    p: SqlProjection = cls()
    return p


def run_projection(bench: Bench, projection: Projection, database: str | None) -> ReadRun:
    """One full catch-up of a fresh group, timed from subscribe (``run()``)."""
    joined: list[float] = []

    def on_assignment(assigned: set[Any]) -> None:
        if len(assigned) >= bench.partitions and not joined:
            joined.append(time.perf_counter())

    runner = ProjectionRunner(
        projection,
        bench.config("replay"),
        database=database,
        until_caught_up=True,
        on_assignment=on_assignment,
    )
    started = time.perf_counter()
    stats = runner.run()
    elapsed = time.perf_counter() - started
    join = joined[0] - started if joined else float("nan")
    return ReadRun(stats.records / elapsed, stats.records, elapsed, join)


def read_all_run(bench: Bench) -> ReadRun:
    """``read_all`` + decode + a dict dispatch: the store-level replay, no group."""
    handlers: dict[str, Callable[[RecordedEvent], None]] = {"Written": lambda e: None}
    store = KafkaEventStore(bench.config("replay"))
    try:
        n = 0
        started = time.perf_counter()
        for event in store.read_all(AGGREGATE):
            handler = handlers.get(event.event_type)
            if handler is not None:
                handler(event)
            n += 1
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    return ReadRun(n / elapsed, n, elapsed, float("nan"))  # no group to join


def lag(bench: Bench, rate: float, window_s: float) -> None:
    """Append at ``rate`` events/s from 16 threads while a no-op projection follows. Each
    event's lag runs from just before its append to its handler call; it belongs to the
    window its append started in. A window fails when it has no event, when an event
    appended in it is never delivered, or when fewer than 90% of the target rate was
    appended."""
    delivered: list[tuple[float, float, str]] = []  # (sent, lag, id)

    def on_written(self: Projection, event: RecordedEvent) -> None:
        sent = event.payload.get("sentAt")
        if isinstance(sent, float):
            delivered.append((sent, time.time() - sent, str(event.payload.get("id"))))

    cls = type(
        "LagProjection",
        (Projection,),
        {
            "name": f"bench{bench.tag}.lag",
            "aggregate_types": (LAG_AGGREGATE,),
            "on_Written": on_written,
        },
    )
    writers = 16
    interval = writers / rate
    sent: list[tuple[float, str]] = []
    errors: list[str] = []
    stop = threading.Event()
    with KafkaEventStore(bench.config("replay")) as store:
        store.owned_partitions(LAG_AGGREGATE)
        runner = ProjectionRunner(cls(), bench.config("replay"), poll_timeout_s=0.1, batch_size=500)
        follower = threading.Thread(target=runner.run, daemon=True)
        follower.start()
        while not runner.stats.assigned:
            time.sleep(0.05)

        def write(i: int) -> None:
            version = 0
            agg = f"lag-{i}-{uuid.uuid4().hex[:6]}"
            next_at = time.perf_counter()
            k = 0
            while not stop.is_set():
                at, eid = time.time(), f"{i}-{k}"
                k += 1
                try:
                    ev = new_event(100, sentAt=at, id=eid)
                    version = store.append(LAG_AGGREGATE, agg, [ev], version).version
                    sent.append((at, eid))
                except KesError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                next_at += interval
                time.sleep(max(0.0, next_at - time.perf_counter()))

        threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(writers)]
        for th in threads:
            th.start()
        time.sleep(1.0)  # warm-up, not measured
        t0 = time.time()
        bounds = [(t0 + w * window_s, t0 + (w + 1) * window_s) for w in range(bench.runs)]
        time.sleep(max(0.0, bounds[-1][1] - time.time()))
        stop.set()
        for th in threads:
            th.join(timeout=30)
        wanted = {eid for at, eid in sent if t0 <= at < bounds[-1][1]}
        deadline = time.monotonic() + 15  # the stragglers of the last window
        while time.monotonic() < deadline and not wanted <= {d[2] for d in delivered}:
            time.sleep(0.1)
        runner.stop()
        follower.join(timeout=30)
    windows: list[Window] = []
    p50s: list[float] = []
    for lo, hi in bounds:
        appended = {eid for at, eid in sent if lo <= at < hi}
        lags = {eid: lg for at, lg, eid in delivered if lo <= at < hi and eid in appended}
        stats = latency_ms(list(lags.values()))
        windows.append(Window(len(appended), len(lags), stats["p99"]))
        p50s.append(stats["p50"])
    failures = window_failures(windows, rate, window_s)
    if errors:
        failures.append(f"{len(errors)} appends failed ({errors[0]})")
    bench.add(
        "replay",
        "end-to-end lag, append to projection handler",
        "ms p99",
        [w.p99_ms for w in windows],
        {"load_events_per_s": rate},
        failures=failures,
        p50_ms=p50s,
        p50_ms_median=percentile(p50s, 50),
        window_s=window_s,
        appended_per_window=[w.appended for w in windows],
        delivered_per_window=[w.delivered for w in windows],
        achieved_events_per_s=[w.appended / window_s for w in windows],
    )


def run(bench: Bench) -> None:
    target = 100_000 if bench.quick else 1_000_000
    with KafkaEventStore(bench.config("replay")) as store:
        took, events = populate(store, target)
    topic = bench.config("replay").topic(AGGREGATE)
    bench.note(
        f"replay: {events:,} events of ~100 B payload written to {AGGREGATE} in {took:.1f}s "
        "by kes batched appends (32 callers, 100 events each); the store was closed before "
        "the readers ran"
    )
    readers: list[tuple[str, Callable[[int], ReadRun]]] = [
        ("raw confluent-kafka consumer", lambda r: raw_consume(bench, topic, bench.partitions)),
        ("read_all + decode + no-op dispatch", lambda r: read_all_run(bench)),
        (
            "no-op projection (ProjectionRunner, at_least_once)",
            lambda r: run_projection(bench, noop_projection(f"bench{bench.tag}.noop{r}"), None),
        ),
        (
            "SQLite projection (SqlProjection, exactly_once, 1 row/event)",
            lambda r: run_projection(
                bench,
                sqlite_projection(f"bench{bench.tag}.sql{r}"),
                f"sqlite:///{bench.scratch}/replay-{r}.db",
            ),
        ),
    ]
    results: dict[str, list[ReadRun]] = {name: [] for name, _ in readers}
    positions: dict[str, list[int]] = {name: [] for name, _ in readers}
    for r in range(bench.runs):
        for i, (name, read) in enumerate(rotate(readers, r)):
            results[name].append(read(r))
            positions[name].append(i + 1)
    for name, runs in results.items():
        bench.add(
            "replay",
            name,
            "events/s",
            [x.rate for x in runs],
            {"events": events},
            failures=[f for x in runs for f in x.failures(events)],
            join_s=[x.join_s for x in runs],
            seconds=[x.seconds for x in runs],
            rate_after_join=[
                x.records / (x.seconds - x.join_s) if x.seconds > x.join_s else float("nan")
                for x in runs
                if math.isfinite(x.join_s)
            ],
            turn=positions[name],
        )
    lag(bench, rate=200.0 if bench.quick else 500.0, window_s=3.0 if bench.quick else 8.0)
