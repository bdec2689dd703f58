"""The Kafka backend of the event store."""

from kes.store.kafka.config import KafkaConfig
from kes.store.kafka.store import KafkaEventStore, rebuild_index

__all__ = ["KafkaConfig", "KafkaEventStore", "rebuild_index"]
