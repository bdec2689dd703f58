"""The Kafka layer every kes subsystem stands on: configuration and names, the clients,
the topic catalogue, reading to a known end, transactional producing, compacted
tables, and the translation of Kafka's errors into kes errors. Nothing else in kes
makes a confluent-kafka client."""

from kes.kafka.config import KafkaConfig

__all__ = ["KafkaConfig"]
