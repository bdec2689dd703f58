"""Event store benchmarks: appends (batched, concurrent single events), read_stream
latency, index rebuild rate, index memory — next to a raw confluent-kafka producer
writing the same bytes with the same durability, in the same run."""

from __future__ import annotations

import argparse
import gc
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.common import Row, peak_rss_mib, percentile, table, write
from kes import NO_STREAM, NewEvent
from kes.envelope import encode, headers, to_envelope
from kes.store.kafka import KafkaConfig, KafkaEventStore, rebuild_index
from kes.store.kafka._index import PartitionIndex

PAYLOAD = {"userId": "abc123", "username": "jdoe", "email": "jdoe@example.com", "n": 0}


def event() -> NewEvent:
    return NewEvent(event_type="UserModified", payload=PAYLOAD)


def raw_producer_rate(bootstrap: str, n: int, partitions: int) -> float:
    """A raw idempotent acks=all producer sending kes-sized records: the Python ceiling."""
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)
    env = to_envelope("User", "abc123", 1, event())
    value, hs = encode(env), headers(env)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "partitioner": "murmur2_random",
        }
    )
    started = time.perf_counter()
    for i in range(n):
        while True:
            try:
                producer.produce(topic, value=value, key=f"agg-{i % 1000}", headers=hs)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(120)
    rate = n / (time.perf_counter() - started)
    admin.delete_topics([topic])
    return rate


def batched_append_rate(store: KafkaEventStore, n_batches: int, callers: int) -> float:
    batch = [event() for _ in range(100)]

    def one(i: int) -> None:
        store.append(
            "BenchBatch",
            f"b-{uuid.uuid4().hex}",
            [NewEvent(event_type=e.event_type, payload=e.payload) for e in batch],
            NO_STREAM,
        )

    store.owned_partitions("BenchBatch")
    started = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(one, range(n_batches)))
    return n_batches * 100 / (time.perf_counter() - started)


def single_append(
    store: KafkaEventStore, seconds: float, callers: int
) -> tuple[float, list[float]]:
    store.owned_partitions("BenchSingle")
    stop_at = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(callers)]

    def caller(i: int) -> None:
        agg = f"s-{i}-{uuid.uuid4().hex[:6]}"
        version = 0
        lat = latencies[i]
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            version = store.append("BenchSingle", agg, [event()], version).version
            lat.append(time.perf_counter() - t)

    started = time.perf_counter()
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    flat = [x for lat in latencies for x in lat]
    return len(flat) / elapsed, flat


def read_latencies(store: KafkaEventStore, length: int, reads: int) -> list[float]:
    agg = f"r{length}-{uuid.uuid4().hex[:6]}"
    version = 0
    while version < length:
        n = min(500, length - version)
        version = store.append("BenchRead", agg, [event() for _ in range(n)], version).version
        # interleave other aggregates, as in a real partition
        store.append("BenchRead", f"noise-{uuid.uuid4().hex[:6]}", [event()] * 1, NO_STREAM)
    out = []
    store.read_stream("BenchRead", agg)  # warm the pooled consumer
    for _ in range(reads):
        t = time.perf_counter()
        events = store.read_stream("BenchRead", agg)
        out.append(time.perf_counter() - t)
        assert len(events) == length
    return out


def index_memory(aggregates: int, events_each: int) -> tuple[float, float]:
    """Peak RSS (MiB) before and after building an index of this size in memory."""
    gc.collect()
    before = peak_rss_mib()
    index = PartitionIndex("bench", 0)
    offset = 0
    for a in range(aggregates):
        key = f"{uuid.UUID(int=a)}"
        for v in range(1, events_each + 1):
            index.record(key, v, offset)
            offset += 1
    after = peak_rss_mib()
    assert len(index) == aggregates
    del index
    return before, after


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--memory-aggregates", type=int, default=1_000_000)
    args = ap.parse_args()
    bootstrap = os.environ.get("KES_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    quick = args.quick
    run = uuid.uuid4().hex[:6]
    config = KafkaConfig(
        bootstrap_servers=bootstrap,
        namespace=f"bench{run}",
        index_dir=f"/tmp/kes-bench-{run}",
        partitions=12,
    )
    rows: list[Row] = []
    with KafkaEventStore(config) as store:
        n_raw = 50_000 if quick else 200_000
        raw = raw_producer_rate(bootstrap, n_raw, 12)
        batched = batched_append_rate(store, 200 if quick else 1000, callers=8)
        rows.append(
            Row(
                "batched appends (100 events, 8 callers)",
                batched,
                "events/s",
                baseline=raw,
                target=">= 50% of raw producer",
                met=batched >= 0.5 * raw,
            )
        )
        rate, lat = single_append(store, 5 if quick else 15, callers=64)
        rows.append(
            Row(
                "single-event appends, 64 callers",
                rate,
                "events/s",
                target=">= 20,000 events/s",
                met=rate >= 20_000,
            )
        )
        rows.append(Row("append latency p50 (64 callers)", percentile(lat, 50) * 1000, "ms"))
        rows.append(Row("append latency p99 (64 callers)", percentile(lat, 99) * 1000, "ms"))
        for length in (10, 1000, 10_000):
            if quick and length == 10_000:
                continue
            lats = read_latencies(store, length, 30 if length < 10_000 else 10)
            p99 = percentile(lats, 99) * 1000
            rows.append(Row(f"read_stream {length} events p50", percentile(lats, 50) * 1000, "ms"))
            rows.append(
                Row(
                    f"read_stream {length} events p99",
                    p99,
                    "ms",
                    target="<= 20 ms" if length == 1000 else "",
                    met=(p99 <= 20) if length == 1000 else None,
                )
            )
    _parts, events, seconds = rebuild_index(config, "BenchSingle")
    rows.append(Row("index rebuild", events / seconds, "events/s", extra={"events": events}))
    n_aggs = 100_000 if quick else args.memory_aggregates
    before, after = index_memory(n_aggs, 10)
    rows.append(
        Row(
            f"index of {n_aggs:,} aggregates x 10 events: RSS growth",
            after - before,
            "MiB",
            target="<= 1024 MiB for 1M x 10" if not quick else "",
            met=(after <= 1024) if not quick else None,
            extra={"peak_rss_mib": after},
        )
    )
    settings = {
        "acks": "all",
        "idempotent": True,
        "nodes": len(bootstrap.split(",")),
        "partitions": 12,
        "quick": quick,
    }
    path = write("store", rows, settings)
    print(table(rows))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
