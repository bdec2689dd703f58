"""Every confluent-kafka client kes uses is made here, with the settings an event store
needs: read_committed consumers, idempotent acks=all producers, Java's partitioner.

(Quix Streams makes its own clients for pipelines; kes gives it these settings.)
"""

from __future__ import annotations

import threading
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from kes.kafka.config import KafkaConfig, librdkafka_log
from kes.kafka.errors import kafka_errors

__all__ = [
    "admin",
    "admin_with",
    "base_conf",
    "group_consumer",
    "group_consumer_conf",
    "plain_consumer",
    "producer",
    "producer_conf",
    "reader",
    "reader_conf",
]


def base_conf(config: KafkaConfig) -> dict[str, Any]:
    """Servers, security settings (``config.client``) and logging: what every client has."""
    conf: dict[str, Any] = {
        "bootstrap.servers": config.bootstrap_servers,
        "logger": librdkafka_log,
    }
    conf.update(config.client)
    return conf


def reader_conf(config: KafkaConfig, **extra: Any) -> dict[str, Any]:
    """A consumer outside any group that reads committed records only."""
    conf = base_conf(config)
    conf.update(
        {
            "group.id": config.reader_group(),  # required, never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,
            "auto.offset.reset": "earliest",
            # librdkafka prefetches up to 64 MiB by default; 32 MiB reads as fast here
            # (8 MiB halves the rate). Writers' catch-up readers ask for less.
            "queued.max.messages.kbytes": 32768,
        }
    )
    conf.update(extra)
    return conf


def reader(config: KafkaConfig, **extra: Any) -> Consumer:
    with kafka_errors(f"connecting a reader to {config.bootstrap_servers}"):
        return Consumer(reader_conf(config, **extra))


_offsets_clients: dict[tuple[str, bool, tuple[tuple[str, str], ...]], Consumer] = {}
_offsets_lock = threading.Lock()


def offsets_client(config: KafkaConfig, stable: bool = False) -> Consumer:
    """A consumer that only answers offset queries, shared per cluster and security
    settings (thread-safe, lives as long as the process).

    librdkafka asks for a partition's end with the client's isolation level: this one
    reads uncommitted and is told the *high watermark*, past every record written; with
    ``stable`` it reads committed and is told the *last stable offset*, which stops
    before the first transaction still open. Reading "to the end" aims at the first
    (see kes.kafka.consume); "where a committed reader would stop now" is the second.
    """
    client = tuple(sorted((k, str(v)) for k, v in config.client.items()))
    key = (config.bootstrap_servers, stable, client)
    with _offsets_lock:
        consumer = _offsets_clients.get(key)
        if consumer is None:
            isolation = "read_committed" if stable else "read_uncommitted"
            conf = reader_conf(config, **{"isolation.level": isolation})
            with kafka_errors(f"connecting to {config.bootstrap_servers}"):
                consumer = _offsets_clients[key] = Consumer(conf)
        return consumer


def group_consumer_conf(config: KafkaConfig, group: str, **extra: Any) -> dict[str, Any]:
    """A member of ``group``: cooperative-sticky, read_committed, no auto-commit (each user
    decides when and where offsets are committed)."""
    conf = base_conf(config)
    conf.update(
        {
            "group.id": group,
            "client.id": config.member_name,
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": config.session_timeout_ms,
            "heartbeat.interval.ms": max(500, config.session_timeout_ms // 5),
        }
    )
    conf.update(extra)
    return conf


def group_consumer(config: KafkaConfig, group: str, **extra: Any) -> Consumer:
    with kafka_errors(f"joining consumer group {group!r} at {config.bootstrap_servers}"):
        return Consumer(group_consumer_conf(config, group, **extra))


def plain_consumer(config: KafkaConfig, group: str, **extra: Any) -> Consumer:
    """A consumer that is given ``group`` only to read or commit its offsets (no joining
    of the group happens unless it subscribes)."""
    conf = base_conf(config)
    conf.update({"group.id": group, "enable.auto.commit": False})
    conf.update(extra)
    with kafka_errors(f"connecting to {config.bootstrap_servers}"):
        return Consumer(conf)


def producer_conf(config: KafkaConfig, **extra: Any) -> dict[str, Any]:
    """Idempotent, acks=all, keys placed where the Java client places them."""
    conf = base_conf(config)
    conf.update(
        {
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 1,
            "partitioner": "murmur2_random",
            "allow.auto.create.topics": False,
        }
    )
    conf.update(extra)
    return conf


def producer(config: KafkaConfig, **extra: Any) -> Producer:
    with kafka_errors(f"connecting a producer to {config.bootstrap_servers}"):
        return Producer(producer_conf(config, **extra))


def admin(config: KafkaConfig) -> AdminClient:
    """An admin client, after the connection check: every kes subsystem starts by making
    one (kes.kafka.topics.Topics), so a wrong password, an unknown user, an untrusted
    certificate or a mismatched security protocol fails it within seconds, as an
    AuthenticationError, instead of leaving librdkafka to retry forever."""
    from kes.kafka.security import check_connection, principal_label

    check_connection(config.bootstrap_servers, config.client, principal_label(config))
    with kafka_errors(f"connecting an admin client to {config.bootstrap_servers}"):
        return AdminClient(base_conf(config))


def admin_with(conf: dict[str, Any], **extra: Any) -> AdminClient:
    """An admin client from bare librdkafka settings (the local broker tool, before any
    KafkaConfig, and the connection check)."""
    with kafka_errors(f"connecting an admin client to {conf.get('bootstrap.servers')}"):
        return AdminClient({**conf, **extra})
