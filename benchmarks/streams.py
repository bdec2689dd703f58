"""Workload 5, stream processing: events/s through kes pipelines (Quix Streams,
exactly-once) over one event topic, next to a raw confluent-kafka consume loop and a
Quix Streams application with its own JSON deserializer over the same topic, in the
same run.

Each pipeline run is a new consumer group reading the topic from the start until it
has processed every event; the rate is timed from its first processed record to its
last, so group join and topic creation are left out (as for the replay workload).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from quixstreams import Application
from quixstreams.dataframe.windows import Count

from benchmarks.baselines import raw_consume
from benchmarks.harness import Bench
from benchmarks.replay import populate
from kes.store.kafka import KafkaConfig, KafkaEventStore
from kes.streams import Pipeline, Streams

AGGREGATE = "BenchStream"


class _Meter:
    """Counts processed source records; stops the application after ``total``."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.n = 0
        self.first_at = 0.0
        self.last_at = 0.0
        self.stop: Callable[[], None] = lambda: None

    def __call__(self, topic: str, partition: int, offset: int) -> None:
        if not topic.endswith(AGGREGATE):
            return  # a repartition or changelog record, not a source event
        self.n += 1
        if self.n == 1:
            self.first_at = time.perf_counter()
        if self.n >= self.total:
            self.last_at = time.perf_counter()
            self.stop()

    def rate(self) -> float:
        if self.n < self.total or self.last_at <= self.first_at:
            return float("nan")
        return (self.n - 1) / (self.last_at - self.first_at)


def filter_map(streams: Streams) -> None:
    """Every other version of each aggregate, reduced to three fields, to a topic."""
    events = streams.events(AGGREGATE, "Written").filter(lambda e: e["version"] % 2 == 0)
    small = events.apply(
        lambda e: {"id": e["aggregateId"], "version": e["version"], "at": e["timestampMs"]}
    )
    streams.to_topic(small, f"{streams.pipeline.name}.out", partitions=12)


def windowed_count(streams: Streams) -> None:
    """Events per aggregate per second of event time (closed windows), as kes events."""
    events = streams.events(AGGREGATE)
    windows = streams.tumbling_window(events, timedelta(seconds=1), name="per-second")
    streams.emit(windows.agg(n=Count()).final(), f"{AGGREGATE}Counts", "CountedPerSecond")


def run_pipeline(
    bench: Bench, config: KafkaConfig, build: Callable[[Streams], None], events: int
) -> float:
    meter = _Meter(events)
    pipeline = Pipeline(f"bench{bench.tag}-{uuid.uuid4().hex[:6]}", build)
    streams = pipeline.application(
        config, state_dir=bench.scratch / "streams" / pipeline.name, on_message_processed=meter
    )
    meter.stop = streams.app.stop
    streams.app.run()
    return meter.rate()


def run_quix_json(bench: Bench, topic: str, events: int) -> float:
    """Quix Streams alone: its JSON deserializer, a no-op step, at-least-once."""
    meter = _Meter(events)
    app = Application(
        broker_address=bench.bootstrap,
        consumer_group=f"bench{bench.tag}-quix-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        state_dir=str(bench.scratch / "quix"),
        loglevel="WARNING",
        on_message_processed=meter,
    )
    sdf = app.dataframe(app.topic(topic, value_deserializer="json"))
    sdf.update(lambda _value: None)
    meter.stop = app.stop
    app.run()
    return meter.rate()


def run(bench: Bench) -> None:
    events = 30_000 if bench.quick else 200_000
    config = bench.config("streams", session_timeout_ms=6000)
    with KafkaEventStore(config) as store:
        took = populate(store, events, aggregate=AGGREGATE)
    topic = config.topic(AGGREGATE)
    bench.note(
        f"streams: {events:,} events of ~100 B payload in {topic} ({bench.partitions} "
        f"partitions), written in {took:.1f}s; each pipeline run is a fresh consumer group"
    )
    params: dict[str, Any] = {"events": events}
    raws = [raw_consume(bench, topic, bench.partitions)[0] for _ in range(bench.runs)]
    raw = bench.add("streams", "raw confluent-kafka consumer", "events/s", raws, params)
    quix = [run_quix_json(bench, topic, events) for _ in range(bench.runs)]
    m = bench.add("streams", "Quix Streams JSON no-op (at-least-once)", "events/s", quix, params)
    m.extra["ratio_to_raw_consumer"] = m.value.median / raw.value.median
    for name, build in (
        ("kes pipeline filter+map to a topic (exactly-once)", filter_map),
        ("kes pipeline 1 s tumbling count per aggregate (exactly-once)", windowed_count),
    ):
        rates = [run_pipeline(bench, config, build, events) for _ in range(bench.runs)]
        m = bench.add("streams", name, "events/s", rates, params)
        m.extra["ratio_to_raw_consumer"] = m.value.median / raw.value.median
