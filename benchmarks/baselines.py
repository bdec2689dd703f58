"""Baselines over the same bytes and the same durability (acks=all, idempotent):
a raw confluent-kafka producer and consumer, and Kafka's own ProducerPerformance tool."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.harness import DURABILITY, Bench
from kes.envelope import NewEvent, encode, headers, to_envelope


def payload_of(size: int) -> dict[str, Any]:
    """A payload whose JSON is about ``size`` bytes."""
    return {"userId": "u", "data": "x" * max(0, size - 24)}


def new_event(size: int, **fields: Any) -> NewEvent:
    return NewEvent(event_type="Written", payload=payload_of(size) | fields)


def kes_record(size: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers kes writes for one event with a ``size``-byte payload."""
    env = to_envelope("Bench", "agg-000001", 1, new_event(size))
    return encode(env), headers(env)


def create_topic(bench: Bench, name: str) -> str:
    topic = f"bench{bench.tag}.raw.{name}"
    admin = AdminClient({"bootstrap.servers": bench.bootstrap})
    new = NewTopic(topic, bench.partitions, bench.replication_factor)
    admin.create_topics([new])[topic].result(timeout=30)
    return topic


def raw_produce(
    bench: Bench, topic: str, value: bytes, hs: list[tuple[str, bytes]], seconds: float
) -> float:
    """Records/s of one idempotent acks=all producer sending kes-shaped records for
    ``seconds`` (then flushing): the Python client's ceiling on this broker."""
    producer = Producer(
        {
            "bootstrap.servers": bench.bootstrap,
            **DURABILITY,
            "linger.ms": 5,
            "partitioner": "murmur2_random",
        }
    )
    started = time.perf_counter()
    stop_at = started + seconds
    n = 0
    while True:
        if n % 1000 == 0 and time.perf_counter() >= stop_at:
            break
        try:
            producer.produce(topic, value=value, key=f"agg-{n % 10_000}", headers=hs)
            n += 1
        except BufferError:
            producer.poll(0.005)
        if n % 100 == 0:
            producer.poll(0)
    producer.flush(120)
    return n / (time.perf_counter() - started)


def raw_consume(bench: Bench, topic: str, partitions: int) -> tuple[float, int]:
    """(records/s, records) of a plain read_committed consumer reading ``topic`` from
    the beginning to its current end, without decoding: the ceiling for projections.
    Timed from the first record, like the projection runs (connection set-up excluded)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bench.bootstrap,
            "group.id": f"bench-raw-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "queued.max.messages.kbytes": 65536,
            "fetch.max.bytes": 52428800,
            "max.partition.fetch.bytes": 10485760,
            # As kes's readers: the default (500 ms) stalls at each partition's end.
            "fetch.wait.max.ms": 10,
        }
    )
    tps = [TopicPartition(topic, p, 0) for p in range(partitions)]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
    open_parts = {p for p, end in ends.items() if end > 0}
    consumer.assign(tps)
    n = 0
    started: float | None = None
    try:
        while open_parts:
            first = consumer.poll(0.5)
            if first is None:
                continue
            if started is None:
                started = time.perf_counter()
            for msg in [first, *consumer.consume(num_messages=5000, timeout=0)]:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        open_parts.discard(msg.partition())
                    continue
                n += 1
                if msg.offset() >= ends[msg.partition()] - 1:
                    open_parts.discard(msg.partition())
        elapsed = time.perf_counter() - (started or time.perf_counter())
        return n / elapsed if elapsed > 0 else float("nan"), n
    finally:
        consumer.close()


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
    """Raw producer and ProducerPerformance for each event size used by the append matrix."""
    seconds = 1.0 if bench.quick else 4.0
    perf_records = 50_000 if bench.quick else 300_000
    for size in (100,) if bench.quick else (100, 1000):
        value, hs = kes_record(size)
        topic = create_topic(bench, f"produce{size}")
        rates = [raw_produce(bench, topic, value, hs, seconds) for _ in range(bench.runs)]
        bench.add(
            "baselines",
            "raw confluent-kafka producer",
            "events/s",
            rates,
            {"event_size": size},
            record_bytes=len(value),
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
