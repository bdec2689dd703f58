from __future__ import annotations

from collections.abc import Iterator

import pytest

from kes import EventStore
from kes.aio import AsyncKafkaEventStore
from kes.store.kafka import KafkaEventStore
from kes.testing import EventStoreContract
from tests.aio import ThroughAsyncio

pytestmark = pytest.mark.kafka

API = ["threaded", "asyncio"]


def _api(store: KafkaEventStore, api: str) -> Iterator[EventStore]:
    if api == "threaded":
        yield store
        return
    through = ThroughAsyncio(AsyncKafkaEventStore(store=store))
    yield through
    through.loop.close()  # the store itself is closed by its owner


class TestKafkaEventStore(EventStoreContract):
    @pytest.fixture(params=API)
    def store(
        self, kafka_store: KafkaEventStore, request: pytest.FixtureRequest
    ) -> Iterator[EventStore]:
        yield from _api(kafka_store, request.param)


class TestKafkaEventStoreThroughForwarding(EventStoreContract):
    """The same contract from a process that owns nothing: every call is forwarded."""

    @pytest.fixture(params=API)
    def store(
        self, kafka_store: KafkaEventStore, request: pytest.FixtureRequest
    ) -> Iterator[EventStore]:
        for t in ("User", "Account", "Order", "Item", "Feed"):
            kafka_store.owned_partitions(t)  # the writer owns every partition
        client = KafkaEventStore(kafka_store.config, role="client")
        yield from _api(client, request.param)
        client.close()
