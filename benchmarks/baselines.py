"""Baselines over the same bytes and the same durability (acks=all, idempotent):
a raw confluent-kafka producer (in a child process: ``benchmarks/raw.py``) and consumer,
and Kafka's own ProducerPerformance tool."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.harness import Bench
from benchmarks.raw import RawBaseline, kes_record, payload_of
from kes.envelope import NewEvent
from kes.kafka.consume import drain

__all__ = ["ReadRun", "create_topic", "kes_record", "new_event", "payload_of", "raw_consume"]


def new_event(size: int, **fields: Any) -> NewEvent:
    return NewEvent(event_type="Written", payload=payload_of(size) | fields)


def create_topic(bench: Bench, name: str) -> str:
    topic = f"bench{bench.tag}.raw.{name}"
    admin = AdminClient({"bootstrap.servers": bench.bootstrap})
    new = NewTopic(topic, bench.partitions, bench.replication_factor)
    admin.create_topics([new])[topic].result(timeout=30)
    return topic


@dataclass
class ReadRun:
    """One reading of a whole topic: events/s timed from subscribe (group join and first
    fetch included), the join alone, and how many records were read."""

    rate: float
    records: int
    seconds: float
    join_s: float

    def failures(self, expected: int) -> list[str]:
        if self.records != expected:
            return [f"read {self.records:,} of {expected:,} events"]
        return []


def raw_consume(bench: Bench, topic: str, partitions: int) -> ReadRun:
    """A plain read_committed consumer in a fresh group reading ``topic`` from the start
    to its current end (high watermarks taken first), without decoding: the ceiling for
    projections. Timed from subscribe, as the projections are: the group join (reported
    on its own) and the first fetch are inside the clock."""
    ends = {p: watermarks_of(bench, topic, p) for p in range(partitions)}
    consumer = Consumer(
        {
            "bootstrap.servers": bench.bootstrap,
            "group.id": f"bench-raw-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            # As the projection runner's consumer.
            "queued.max.messages.kbytes": 16384,
            "fetch.max.bytes": 52428800,
            "max.partition.fetch.bytes": 10485760,
        }
    )
    open_parts = {p for p, end in ends.items() if end > 0}
    joined: list[float] = []

    def on_assign(c: Consumer, tps: list[TopicPartition]) -> None:
        c.incremental_assign(tps)
        if len(c.assignment()) >= partitions and not joined:
            joined.append(time.perf_counter())

    n = 0
    started = time.perf_counter()
    consumer.subscribe([topic], on_assign=on_assign)
    try:
        while open_parts:
            for msg in drain(consumer, 5000, 0.5):
                err = msg.error()
                if err is not None:
                    if (
                        err.code() == KafkaError._PARTITION_EOF
                        and msg.offset() >= ends[msg.partition()]
                    ):
                        open_parts.discard(msg.partition())
                    continue
                n += 1
                if msg.offset() >= ends[msg.partition()] - 1:
                    open_parts.discard(msg.partition())
            if time.perf_counter() - started > 600:
                break
        elapsed = time.perf_counter() - started
        join = (joined[0] - started) if joined else float("nan")
        return ReadRun(n / elapsed if elapsed > 0 else float("nan"), n, elapsed, join)
    finally:
        consumer.close()


def watermarks_of(bench: Bench, topic: str, partition: int) -> int:
    """The high watermark of ``topic[partition]`` (past every record and marker)."""
    from kes.kafka.consume import watermarks
    from kes.store.kafka import KafkaConfig

    return watermarks(KafkaConfig(bootstrap_servers=bench.bootstrap), topic, partition)[1]


_PERF = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th"
)


def parse_producer_performance(output: str) -> dict[str, float]:
    """The summary line of ``ProducerPerformance`` as numbers (empty when absent)."""
    found = _PERF.findall(output)
    if not found:
        return {}
    last = found[-1]
    keys = ["records", "records_per_s", "mb_per_s", "avg_ms", "max_ms"]
    keys += ["p50_ms", "p95_ms", "p99_ms", "p999_ms"]
    return {k: float(v) for k, v in zip(keys, last, strict=True)}


def producer_performance(bench: Bench, topic: str, records: int, size: int) -> dict[str, float]:
    """Kafka's own Java producer benchmark, from the broker's jars, same durability."""
    from kes.broker.jars import java_executable, libs_dir

    cmd = [
        java_executable(),
        "-Xmx512m",
        "-cp",
        f"{libs_dir(progress=False)}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bench.bootstrap}",
        "acks=all",
        "enable.idempotence=true",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    result = parse_producer_performance(proc.stdout)
    if not result:
        tail = (proc.stdout + proc.stderr)[-600:]
        raise RuntimeError(f"ProducerPerformance failed (exit {proc.returncode}): {tail}")
    return result


def run(bench: Bench) -> None:
    """Raw producer and ProducerPerformance for each event size used by the append matrix;
    the raw producer with the append cells' window (``append.window``)."""
    from benchmarks.append import window

    seconds = window(bench)
    perf_records = 50_000 if bench.quick else 300_000
    with RawBaseline(bench) as raw:
        for size in (100,) if bench.quick else (100, 1000):
            value, _ = kes_record(size)
            topic = create_topic(bench, f"produce{size}")
            runs = [raw.produce(topic, size, seconds) for _ in range(bench.runs)]
            errors = sum(r["errors"] for r in runs)
            bench.add(
                "baselines",
                "raw confluent-kafka producer",
                "events/s",
                [r["rate"] for r in runs],
                {"event_size": size},
                failures=[f"{errors} delivery errors"] if errors else [],
                record_bytes=len(value),
                window_s=seconds,
            )
            perf_topic = create_topic(bench, f"perf{size}")
            perfs = [
                producer_performance(bench, perf_topic, perf_records, len(value))
                for _ in range(bench.runs)
            ]
            bench.add(
                "baselines",
                "Kafka ProducerPerformance (Java)",
                "events/s",
                [p["records_per_s"] for p in perfs],
                {"event_size": size},
                record_bytes=len(value),
                records=perf_records,
                p99_ms=[p["p99_ms"] for p in perfs],
            )
