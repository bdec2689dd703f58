"""The Kafka backend: the event store, its snapshot store, and the index rebuild tool."""

from kes.kafka.config import KafkaConfig
from kes.store.kafka.snapshots import KafkaSnapshotStore
from kes.store.kafka.store import KafkaEventStore, rebuild_index

__all__ = ["KafkaConfig", "KafkaEventStore", "KafkaSnapshotStore", "rebuild_index"]
