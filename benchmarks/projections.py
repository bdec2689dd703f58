"""Projection replay throughput: N events of one aggregate topic replayed into a no-op
projection, into SQLite and into PostgreSQL (exactly once), next to a raw
confluent-kafka consume loop over the same topic, in the same run. Each measure runs in
its own process so that its peak RSS is its own.

    python -m benchmarks.projections [--quick] [--events N] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from benchmarks.common import Row, peak_rss_mib, table, write
from kes.envelope import NewEvent, RecordedEvent, encode, headers, to_envelope
from kes.kafka.clients import reader_conf
from kes.kafka.topics import Topics
from kes.partitioning import partition_for
from kes.projections import Projection, ProjectionRunner, RunStats, SqlProjection, Tx
from kes.store.kafka import KafkaConfig

ROOT = Path(__file__).resolve().parent.parent
TYPE = "BenchUser"
PARTITIONS = 12
RAW_BATCH = 10_000


class NoOp(Projection):
    name = "bench.noop"
    aggregate_types = (TYPE,)

    def on_UserModified(self, event: RecordedEvent) -> None:
        pass


class Counts(SqlProjection):
    name = "bench.sql"
    aggregate_types = (TYPE,)

    def setup(self, tx: Tx) -> None:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS bench_counts (aggregate_id TEXT PRIMARY KEY, n BIGINT)"
        )

    def reset(self, tx: Tx) -> None:
        tx.execute("DELETE FROM bench_counts")

    def on_UserModified(self, event: RecordedEvent, tx: Tx) -> None:
        tx.execute(
            "INSERT INTO bench_counts (aggregate_id, n) VALUES (?, 1) ON CONFLICT (aggregate_id)"
            " DO UPDATE SET n = bench_counts.n + 1",
            (event.aggregate_id,),
        )


def fill(config: KafkaConfig, n: int, aggregates: int = 10_000) -> str:
    """Write ``n`` envelopes (as the store writes them) into a fresh event topic."""
    topic = Topics(config).ensure_event_topic(TYPE).name
    producer = Producer(
        {
            "bootstrap.servers": config.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        }
    )
    versions = [0] * aggregates
    for i in range(n):
        a = i % aggregates
        versions[a] += 1
        agg = f"user-{a}"
        env = to_envelope(
            TYPE,
            agg,
            versions[a],
            NewEvent(
                event_type="UserModified",
                payload={"userId": agg, "username": "jdoe", "email": "jdoe@example.com", "n": i},
            ),
        )
        while True:
            try:
                producer.produce(
                    topic,
                    key=agg.encode(),
                    value=encode(env),
                    headers=headers(env),
                    partition=partition_for(agg, PARTITIONS),
                )
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return topic


# ---- phases (each in its own process) ------------------------------------------------------


def phase_raw(config: KafkaConfig, topic: str, n: int) -> dict[str, Any]:
    """A plain consumer: consume(num_messages, timeout) batches, value bytes touched."""
    consumer = Consumer(
        reader_conf(config, **{"queued.max.messages.kbytes": 65536, "fetch.max.bytes": 52428800})
    )
    t0 = time.perf_counter()  # from assign: the first fetch is inside the clock
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen = 0
    nbytes = 0
    while seen < n:
        for msg in consumer.consume(num_messages=RAW_BATCH, timeout=0.5):
            if msg.error() is None:
                nbytes += len(msg.value())
                seen += 1
    elapsed = time.perf_counter() - t0
    consumer.close()
    return {"events": seen, "seconds": elapsed, "rate": seen / elapsed, "bytes": nbytes}


def phase_runner(
    config: KafkaConfig, projection: Projection, database: str | None
) -> dict[str, Any]:
    first: list[float] = []

    def on_batch(stats: RunStats) -> None:
        if not first:
            first.append(time.perf_counter())

    runner = ProjectionRunner(
        projection,
        config,
        database=database,
        until_caught_up=True,
        batch_size=10_000,
        on_batch=on_batch,
    )
    started = time.perf_counter()
    stats = runner.run()
    end = time.perf_counter()
    # From subscribe (the group join and first fetch inside the clock), as the raw phase.
    return {
        "events": stats.records,
        "seconds": end - started,
        "rate": stats.records / (end - started),
        "first_batch_s": first[0] - started if first else float("nan"),  # join + fetch
        "batches": stats.batches,
    }


def run_phase(args: argparse.Namespace) -> None:
    config = KafkaConfig.from_env(topic_prefix=args.prefix, partitions=PARTITIONS)
    if args.phase == "raw":
        out = phase_raw(config, config.topic(TYPE), args.events)
    elif args.phase == "noop":
        cls = type("NoOp", (NoOp,), {"name": f"bench.noop.{uuid.uuid4().hex[:8]}"})
        out = phase_runner(config, cls(), None)
    else:
        cls = type("Counts", (Counts,), {"name": f"bench.sql.{uuid.uuid4().hex[:8]}"})
        out = phase_runner(config, cls(), args.database)
    out["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(out))


def spawn(phase: str, prefix: str, n: int, database: str | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.projections", "--phase", phase]
    cmd += ["--prefix", prefix, "--events", str(n)]
    if database:
        cmd += ["--database", database]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True, timeout=3600)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100k events instead of 1M")
    ap.add_argument("--events", type=int)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--phase", choices=["raw", "noop", "sql"], help=argparse.SUPPRESS)
    ap.add_argument("--prefix", help=argparse.SUPPRESS)
    ap.add_argument("--database", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        run_phase(args)
        return
    sizes = [args.events] if args.events else ([100_000] if args.quick else [100_000, 1_000_000])
    dsn = None
    if not args.no_postgres:
        from tests.pg import postgres_dsn

        dsn = postgres_dsn()
    rows: list[Row] = []
    for n in sizes:
        prefix = f"bench-{uuid.uuid4().hex[:8]}.events."
        config = KafkaConfig.from_env(topic_prefix=prefix, partitions=PARTITIONS)
        t = time.perf_counter()
        fill(config, n)
        print(f"wrote {n:,} events in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        raw = spawn("raw", prefix, n)
        noop = spawn("noop", prefix, n)
        sqlite_path = ROOT / ".kes" / f"bench-{uuid.uuid4().hex[:8]}.db"
        sqlite = spawn("sql", prefix, n, f"sqlite:///{sqlite_path}")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
        k = f"{n // 1000}k"
        rows.append(
            Row(
                f"raw consume loop, {k}",
                raw["rate"],
                "events/s",
                extra={"peak_rss_mib": raw["peak_rss_mib"]},
            )
        )
        rows.append(
            Row(
                f"replay no-op projection, {k}",
                noop["rate"],
                "events/s",
                raw["rate"],
                ">= 200k/s and >= 40% of raw",
                noop["rate"] >= 200_000 and noop["rate"] >= 0.4 * raw["rate"],
                extra=noop,
            )
        )
        rows.append(
            Row(
                f"replay into SQLite (exactly once), {k}",
                sqlite["rate"],
                "events/s",
                raw["rate"],
                extra=sqlite,
            )
        )
        if dsn:
            pg = spawn("sql", prefix, n, dsn)
            rows.append(
                Row(
                    f"replay into PostgreSQL (exactly once), {k}",
                    pg["rate"],
                    "events/s",
                    raw["rate"],
                    extra=pg,
                )
            )
        for name, r in (("raw", raw), ("no-op", noop), ("SQLite", sqlite)):
            rows.append(Row(f"peak RSS {name}, {k}", r["peak_rss_mib"], "MiB"))
        Topics(config).admin.delete_topics([config.topic(TYPE)])
    print(table(rows))
    path = write("projections", rows, {"sizes": sizes, "partitions": PARTITIONS})
    print(f"results: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
