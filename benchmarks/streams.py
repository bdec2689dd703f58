"""Workload 5, stream processing: events/s through kes pipelines (Quix Streams,
exactly-once) over one event topic, next to a raw confluent-kafka consume loop and a
Quix Streams application with its own JSON deserializer over the same topic, in the
same run.

Each pipeline run is a new consumer group reading the topic from the start until it
has processed every event; the rate is timed from ``run()`` (subscribe) to its last
record, so the group join and the first fetch are inside the clock, as for the raw
consumer next to it (and the replay workload). Readers take turns going first.
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
from benchmarks.stats import ratio, rotate
from kes.store.kafka import KafkaConfig, KafkaEventStore
from kes.streams import Pipeline, Streams

AGGREGATE = "BenchStream"


class _Meter:
    """Counts processed source records; stops the application after ``total``."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.n = 0
        self.started = time.perf_counter()
        self.last_at = 0.0
        self.stop: Callable[[], None] = lambda: None

    def __call__(self, topic: str, partition: int, offset: int) -> None:
        if not topic.endswith(AGGREGATE):
            return  # a repartition or changelog record, not a source event
        self.n += 1
        if self.n >= self.total:
            self.last_at = time.perf_counter()
            self.stop()

    def run(self, fn: Callable[[], object]) -> float:
        """Run the application; events/s from now to the last source record."""
        self.started = time.perf_counter()
        fn()
        if self.n < self.total or self.last_at <= self.started:
            return float("nan")
        return self.n / (self.last_at - self.started)


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
    return meter.run(lambda: streams.app.run())


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
    return meter.run(lambda: app.run())


def run(bench: Bench) -> None:
    events = 30_000 if bench.quick else 200_000
    config = bench.config("streams", session_timeout_ms=6000)
    with KafkaEventStore(config) as store:
        took, events = populate(store, events, aggregate=AGGREGATE)
    topic = config.topic(AGGREGATE)
    bench.note(
        f"streams: {events:,} events of ~100 B payload in {topic} ({bench.partitions} "
        f"partitions), written in {took:.1f}s; each pipeline run is a fresh consumer group"
    )
    params: dict[str, Any] = {"events": events}
    readers: list[tuple[str, Callable[[], float]]] = [
        ("raw confluent-kafka consumer", lambda: raw_consume(bench, topic, bench.partitions).rate),
        ("Quix Streams JSON no-op (at-least-once)", lambda: run_quix_json(bench, topic, events)),
        (
            "kes pipeline filter+map to a topic (exactly-once)",
            lambda: run_pipeline(bench, config, filter_map, events),
        ),
        (
            "kes pipeline 1 s tumbling count per aggregate (exactly-once)",
            lambda: run_pipeline(bench, config, windowed_count, events),
        ),
    ]
    rates: dict[str, list[float]] = {name: [] for name, _ in readers}
    for r in range(bench.runs):
        for name, read in rotate(readers, r):
            rates[name].append(read())
    raw = bench.add("streams", readers[0][0], "events/s", rates[readers[0][0]], params)
    for name, _ in readers[1:]:
        m = bench.add("streams", name, "events/s", rates[name], params)
        m.extra["ratio_to_raw_consumer"] = ratio(m.value.median, raw.value.median)
