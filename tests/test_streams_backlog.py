"""A windowed pipeline started on a backlog of back-dated events: read partition after
partition it reports most of them late; with ``in_append_order`` it counts them all."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from quixstreams.dataframe.windows import Count

from kes import Aggregate, Application, event
from kes.store.kafka import KafkaConfig, KafkaEventStore
from kes.streams import Pipeline, Streams
from tests.faults import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


class Shop(Aggregate, id_field="order_id"):
    @event("Placed")
    def __init__(self, order_id: str, amount: int) -> None:
        self.amount = amount


def orders_per_hour(output: str) -> Callable[[Streams], None]:
    """Orders per hour (grace 10 minutes), emitted as events of aggregate type ``output``."""

    def build(streams: Streams) -> None:
        orders = streams.events(Shop, "Placed")
        everyone = streams.key_by(orders, lambda _e: "all", name="orders-all")
        hourly = streams.tumbling_window(everyone, HOUR, timedelta(minutes=10))
        streams.emit(hourly.agg(orders=Count()).final(), output, "HourlyOrdersCounted")

    return build


def run(config: KafkaConfig, name: str, state_dir: Path, **options: Any) -> tuple[int, list[int]]:
    """Run the pipeline ``name`` until idle: (late records, orders per emitted hour)."""
    pipeline = Pipeline(name, orders_per_hour(name), aggregates=[Shop], **options)
    pipeline.application(config, state_dir=state_dir / name).app.run(timeout=3)
    late = list(read_topic(config.bootstrap_servers, pipeline.late_topic(config)))
    emitted = [r.json() for r in read_topic(config.bootstrap_servers, config.topic(name))]
    return len(late), [e["payload"]["orders"] for e in emitted]


def test_a_pipeline_started_on_a_backlog_counts_it_only_in_append_order(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, tmp_path: Path
) -> None:
    stamps = iter(T0 + timedelta(minutes=20 * k) for k in range(22))  # 9:00 ... 16:00
    app = Application(kafka_store, clock=lambda: next(stamps))
    for k in range(22):  # appended in event-time order, spread over the partitions
        app.save(Shop(f"order-{k}", amount=k))
    Application(kafka_store).save(Shop("order-live", amount=0))  # stamped now, read last
    truth = sorted(Counter((T0 + timedelta(minutes=20 * k)).hour for k in range(22)).values())

    late, hours = run(kafka_config, "FetchOrder", tmp_path)  # partition after partition
    assert late > 0 and sum(hours) + late == 22  # each either counted or reported late
    assert sorted(hours) != truth

    late, hours = run(kafka_config, "AppendOrder", tmp_path, in_append_order=True)
    assert late == 0
    assert sorted(hours) == truth  # 9:00 ... 16:00 in full: 3 each, then 1
