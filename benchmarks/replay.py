"""Workload 3, replay and catch-up: events/s into a no-op projection and into SQLite,
next to a raw consumer of the same topic; end-to-end lag under steady load.

Projections run through kes's public API (``kes.projections.ProjectionRunner``);
``read_all`` + decode + a dict dispatch is measured too, as the store-level replay.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from benchmarks.baselines import new_event, raw_consume
from benchmarks.common import latency_ms, percentile
from benchmarks.harness import Bench
from kes import RecordedEvent
from kes.projections import Projection, ProjectionRunner, RunStats, SqlProjection
from kes.store.kafka import KafkaEventStore

AGGREGATE = "BenchReplay"
LAG_AGGREGATE = "BenchLag"


def populate(
    store: KafkaEventStore,
    events: int,
    batch: int = 100,
    callers: int = 16,
    aggregate: str = AGGREGATE,
) -> float:
    """Append ``events`` events (batches of ``batch``) to 1,000 aggregates; seconds taken."""
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
    return time.perf_counter() - started


class _Steady:
    """Rate of a run measured from its first batch, so the group join is left out."""

    def __init__(self) -> None:
        self.first_at: float | None = None
        self.first_records = 0
        self.last_at = 0.0
        self.last_records = 0

    def on_batch(self, stats: RunStats) -> None:
        now = time.perf_counter()
        if self.first_at is None:
            self.first_at, self.first_records = now, stats.records
        self.last_at, self.last_records = now, stats.records

    def rate(self) -> float:
        if self.first_at is None or self.last_at <= self.first_at:
            return float("nan")
        return (self.last_records - self.first_records) / (self.last_at - self.first_at)


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


def run_projection(
    bench: Bench, projection: Projection, database: str | None
) -> tuple[float, float]:
    """(steady events/s, wall seconds including the group join) of one full catch-up."""
    steady = _Steady()
    runner = ProjectionRunner(
        projection,
        bench.config("replay"),
        database=database,
        until_caught_up=True,
        on_batch=steady.on_batch,
    )
    started = time.perf_counter()
    runner.run()
    return steady.rate(), time.perf_counter() - started


def read_all_rate(store: KafkaEventStore) -> float:
    handlers = {"Written": lambda e: None}
    n = 0
    started = 0.0
    for event in store.read_all(AGGREGATE):
        if n == 0:
            started = time.perf_counter()  # from the first record, as the other replays
        handler = handlers.get(event.event_type)
        if handler is not None:
            handler(event)
        n += 1
    return n / (time.perf_counter() - started)


def lag(bench: Bench, store: KafkaEventStore, rate: float, window_s: float) -> None:
    """Append at ``rate`` events/s from 8 threads while a no-op projection follows; the lag
    of each event is the time from just before its append to its handler call."""
    samples: list[list[float]] = [[] for _ in range(bench.runs)]
    window = [0]

    def on_written(self: Projection, event: RecordedEvent) -> None:
        sent = event.payload.get("sentAt")
        if isinstance(sent, float) and window[0] < len(samples):
            samples[window[0]].append(time.time() - sent)

    cls = type(
        "LagProjection",
        (Projection,),
        {
            "name": f"bench{bench.tag}.lag",
            "aggregate_types": (LAG_AGGREGATE,),
            "on_Written": on_written,
        },
    )
    store.owned_partitions(LAG_AGGREGATE)
    runner = ProjectionRunner(cls(), bench.config("replay"), poll_timeout_s=0.1, batch_size=500)
    follower = threading.Thread(target=runner.run, daemon=True)
    follower.start()
    while not runner.stats.assigned:
        time.sleep(0.05)
    stop = threading.Event()
    writers = 8
    interval = writers / rate

    def write(i: int) -> None:
        version = 0
        agg = f"lag-{i}-{uuid.uuid4().hex[:6]}"
        next_at = time.perf_counter()
        while not stop.is_set():
            ev = new_event(100, sentAt=time.time())
            version = store.append(LAG_AGGREGATE, agg, [ev], version).version
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))

    threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(writers)]
    for th in threads:
        th.start()
    time.sleep(1.0)  # warm-up, not measured
    window[0] = 0
    samples[0].clear()
    for w in range(bench.runs):
        window[0] = w
        time.sleep(window_s)
    window[0] = len(samples)
    stop.set()
    for th in threads:
        th.join(timeout=30)
    runner.stop()
    follower.join(timeout=30)
    runs = [latency_ms(s) for s in samples]
    bench.add(
        "replay",
        "end-to-end lag, append to projection handler",
        "ms p99",
        [r["p99"] for r in runs],
        {"load_events_per_s": rate},
        p50_ms=[r["p50"] for r in runs],
        events_per_window=[int(r["n"]) for r in runs],
        achieved_events_per_s=sum(len(s) for s in samples) / (window_s * bench.runs),
    )


def run(bench: Bench) -> None:
    events = 60_000 if bench.quick else 300_000
    config = bench.config("replay")
    with KafkaEventStore(config) as store:
        took = populate(store, events)
        topic = config.topic(AGGREGATE)
        bench.note(
            f"replay: {events:,} events of ~100 B payload written to {AGGREGATE} "
            f"in {took:.1f}s by kes batched appends (16 callers, 100 events each)"
        )
        raws = [raw_consume(bench, topic, bench.partitions)[0] for _ in range(bench.runs)]
        bench.add("replay", "raw confluent-kafka consumer", "events/s", raws, {"events": events})
        rates = [read_all_rate(store) for _ in range(bench.runs)]
        bench.add(
            "replay", "read_all + decode + no-op dispatch", "events/s", rates, {"events": events}
        )
        noop = [
            run_projection(bench, noop_projection(f"bench{bench.tag}.noop{r}"), None)
            for r in range(bench.runs)
        ]
        bench.add(
            "replay",
            "no-op projection (ProjectionRunner, at_least_once)",
            "events/s",
            [r[0] for r in noop],
            {"events": events},
            wall_s_including_group_join=[r[1] for r in noop],
        )
        sql = []
        for r in range(bench.runs):
            db = f"sqlite:///{bench.scratch}/replay-{r}.db"
            sql.append(run_projection(bench, sqlite_projection(f"bench{bench.tag}.sql{r}"), db))
        bench.add(
            "replay",
            "SQLite projection (SqlProjection, exactly_once, 1 row/event)",
            "events/s",
            [r[0] for r in sql],
            {"events": events},
            wall_s_including_group_join=[r[1] for r in sql],
        )
        lag(
            bench, store, rate=200.0 if bench.quick else 500.0, window_s=3.0 if bench.quick else 8.0
        )
        m = bench.find("replay", "end-to-end lag, append to projection handler")
        if m is not None:
            m.extra["p50_ms_median"] = percentile(m.extra["p50_ms"], 50)
