"""Event times the cluster would refuse downstream are refused at the append, against real
Kafka: an application whose clock runs 5 h ahead writes nothing (before: the store took
the events and every windowed pipeline then died on them, run after run)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from examples.users.domain import User

from kes import NewEvent
from kes.aio import AsyncKafkaEventStore
from kes.application import Application
from kes.errors import InvalidInputError
from kes.kafka.consume import watermarks
from kes.store.kafka import KafkaConfig, KafkaEventStore

pytestmark = [pytest.mark.kafka]


def end(config: KafkaConfig, type_: str) -> int:
    return sum(watermarks(config, config.topic(type_), p)[1] for p in range(config.partitions))


def test_an_event_stamped_hours_ahead_is_refused_and_nothing_is_written(
    kafka_store: KafkaEventStore, kafka_config: KafkaConfig
) -> None:
    kafka_store.append("Clocked", "c1", [NewEvent(event_type="Ok", payload={})], 0)
    before = end(kafka_config, "Clocked")
    ahead = datetime.now(UTC) + timedelta(hours=5)
    late_ok = datetime.now(UTC) + timedelta(minutes=30)
    events = [
        NewEvent(event_type="Fine", payload={}, timestamp=late_ok),
        NewEvent(event_type="Ahead", payload={}, timestamp=ahead),
    ]
    with pytest.raises(
        InvalidInputError, match=r"'Ahead' of Clocked 'c1' is stamped .* 5\.0 h ahead"
    ):
        kafka_store.append("Clocked", "c1", events, 1)
    assert kafka_store.stream_version("Clocked", "c1") == 1
    assert end(kafka_config, "Clocked") == before  # not a record, not a marker

    # Half an hour ahead is within the bound (a clock skew kes tolerates).
    result = kafka_store.append("Clocked", "c1", events[:1], 1)
    assert result.version == 2


def test_an_application_with_a_clock_hours_ahead_cannot_save(kafka_store: KafkaEventStore) -> None:
    app = Application(kafka_store, clock=lambda: datetime.now(UTC) + timedelta(hours=5))
    with pytest.raises(InvalidInputError, match="Fix the clock that stamped it"):
        app.save(User(user_id="u1", username="ann", email="ann@example.com"))
    assert kafka_store.stream_version("User", "u1") == 0


def test_the_asyncio_store_refuses_it_too(kafka_config: KafkaConfig) -> None:
    async def main() -> None:
        async with AsyncKafkaEventStore(kafka_config) as store:
            ahead = datetime.now(UTC) + timedelta(hours=2)
            event = NewEvent(event_type="Ahead", payload={}, timestamp=ahead)
            with pytest.raises(InvalidInputError, match=r"2\.0 h ahead"):
                await store.append("Clocked", "a1", [event], 0)

    asyncio.run(main())


def test_the_bound_is_a_setting_and_must_be_positive() -> None:
    assert KafkaConfig().max_event_time_ahead_s == 3300
    assert KafkaConfig.from_env({"KES_MAX_EVENT_TIME_AHEAD_S": "60"}).max_event_time_ahead_s == 60
    with pytest.raises(InvalidInputError, match="max_event_time_ahead_s must be > 0"):
        KafkaConfig(max_event_time_ahead_s=0)
