from __future__ import annotations

from collections.abc import Iterator

import pytest

from kes.store.kafka import KafkaEventStore
from kes.testing import EventStoreContract

pytestmark = pytest.mark.kafka


class TestKafkaEventStore(EventStoreContract):
    @pytest.fixture
    def store(self, kafka_store: KafkaEventStore) -> KafkaEventStore:
        return kafka_store


class TestKafkaEventStoreThroughForwarding(EventStoreContract):
    """The same contract from a process that owns nothing: every call is forwarded."""

    @pytest.fixture
    def store(self, kafka_store: KafkaEventStore) -> Iterator[KafkaEventStore]:
        for t in ("User", "Account", "Order", "Item", "Feed"):
            kafka_store.owned_partitions(t)  # the writer owns every partition
        client = KafkaEventStore(kafka_store.config, role="client")
        yield client
        client.close()
