"""Partition placement must match the Java client, so every Kafka client agrees where an
aggregate lives. The expected numbers were printed by Kafka 4.1.1's own
``Utils.murmur2`` / ``Utils.toPositive(...) % n`` for these keys."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from kes.partitioning import murmur2, partition_for

JAVA = [
    ("abc123", -98779509, 11, 6),
    ("user-1", 1404122828, 8, 3),
    ("u", -1111134317, 3, 3),
    ("", 275646681, 9, 2),
    ("aggregate-42", -141809884, 4, 3),
    ("日本語", 1431860170, 10, 6),
    ("0f8c7a2e-uuid", -614758567, 1, 6),
    ("x" * 37, -278642013, 11, 3),
]


@pytest.mark.parametrize(("key", "hash_", "p12", "p7"), JAVA)
def test_partition_matches_the_java_client(key: str, hash_: int, p12: int, p7: int) -> None:
    assert murmur2(key.encode()) == hash_
    assert partition_for(key, 12) == p12
    assert partition_for(key, 7) == p7


@pytest.mark.kafka
def test_librdkafka_murmur2_partitioner_agrees(bootstrap_servers: str, unique: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    admin.create_topics([NewTopic(unique, 12, 1)])[unique].result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap_servers, "partitioner": "murmur2_random"})
    placed: dict[str, int] = {}
    for key, *_ in JAVA:
        if not key:
            continue  # murmur2_random sends empty keys to a random partition
        producer.produce(
            unique,
            key=key,
            value=b"x",
            on_delivery=lambda err, msg: placed.__setitem__(msg.key().decode(), msg.partition()),
        )
    producer.flush(30)
    assert placed == {key: p12 for key, _, p12, _ in JAVA if key}
    admin.delete_topics([unique])
