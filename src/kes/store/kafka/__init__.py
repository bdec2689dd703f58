"""The Kafka backend: the event store, its snapshot store, the key ring of personal data,
and the index rebuild tool."""

from kes.kafka.config import KafkaConfig
from kes.store.kafka.keys import KafkaKeyRing
from kes.store.kafka.snapshots import KafkaSnapshotStore
from kes.store.kafka.store import KafkaEventStore, rebuild_index

__all__ = ["KafkaConfig", "KafkaEventStore", "KafkaKeyRing", "KafkaSnapshotStore", "rebuild_index"]
