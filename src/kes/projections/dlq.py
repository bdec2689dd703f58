"""The dead-letter topic of a projection: ``kes.dlq.<projection>``.

A record that cannot be decoded, or whose handler keeps failing, is parked there
byte for byte (same key, value and headers) with headers saying why and where it
came from, so that the group goes on and an operator can look and replay later.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException, Message, Producer

from kes.errors import StoreUnavailableError
from kes.store.kafka.config import KafkaConfig
from kes.store.kafka.reader import scan
from kes.store.kafka.topics import Topics

DLQ_PREFIX = "kes.dlq."
H_PROJECTION = "kes.dlq.projection"
H_ERROR = "kes.dlq.error"
H_ERROR_TYPE = "kes.dlq.errorType"
H_TOPIC = "kes.dlq.topic"
H_PARTITION = "kes.dlq.partition"
H_OFFSET = "kes.dlq.offset"
H_ATTEMPTS = "kes.dlq.attempts"
H_PARKED_AT = "kes.dlq.parkedAt"
MAX_ERROR_BYTES = 2000


def dlq_topic(projection: str) -> str:
    return DLQ_PREFIX + projection


def dlq_topic_configs(replication_factor: int) -> dict[str, str]:
    # Parked records wait for a person: keep them until they are dealt with.
    return {
        "cleanup.policy": "delete",
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "min.insync.replicas": str(max(1, replication_factor - 1)),
    }


def ensure_dlq_topic(topics: Topics, projection: str) -> str:
    rf = topics.replication_factor()
    name = dlq_topic(projection)
    topics.ensure(name, 1, dlq_topic_configs(rf), rf)
    return name


def dlq_headers(
    msg: Message, projection: str, error: BaseException, attempts: int
) -> list[tuple[str, bytes]]:
    return parking_headers(
        msg.headers() or [],
        projection,
        f"{type(error).__name__}: {error}",
        type(error).__name__,
        (str(msg.topic()), msg.partition(), msg.offset()),
        attempts,
    )


def parking_headers(
    original: list[tuple[str, bytes]],
    consumer: str,
    error: str,
    error_type: str,
    position: tuple[str, int | None, int | None],
    attempts: int,
) -> list[tuple[str, bytes]]:
    """The record's own headers plus why (``error``), where from (topic, partition,
    offset) and by whom (projection or pipeline) it was parked."""
    topic, partition, offset = position
    return [
        *original,
        (H_PROJECTION, consumer.encode()),
        (H_ERROR, error.encode()[:MAX_ERROR_BYTES]),
        (H_ERROR_TYPE, error_type.encode()),
        (H_TOPIC, topic.encode()),
        (H_PARTITION, str(partition).encode()),
        (H_OFFSET, str(offset).encode()),
        (H_ATTEMPTS, str(attempts).encode()),
        (H_PARKED_AT, str(int(time.time() * 1000)).encode()),
    ]


class DeadLetters:
    """Parks records of one projection, durably (acks=all, flushed) before returning."""

    def __init__(self, config: KafkaConfig, projection: str, producer: Producer | None = None):
        self.config = config
        self.projection = projection
        self.topic = ensure_dlq_topic(Topics(config), projection)
        self._own = producer is None
        if producer is None:
            conf = config.base()
            conf.update({"acks": "all", "enable.idempotence": True, "linger.ms": 0})
            producer = Producer(conf)
        self.producer = producer
        self.parked = 0

    def produce(self, msg: Message, error: BaseException, attempts: int) -> None:
        """Produce without waiting (inside a Kafka transaction, the commit waits)."""
        self.producer.produce(
            self.topic,
            key=msg.key(),
            value=msg.value(),
            headers=dlq_headers(msg, self.projection, error, attempts),
        )
        self.parked += 1

    def park(self, msg: Message, error: BaseException, attempts: int) -> None:
        """Produce and wait until Kafka has it."""
        failures: list[Any] = []

        def delivered(err: Any, _msg: Message) -> None:
            if err is not None:
                failures.append(err)

        self.producer.produce(
            self.topic,
            key=msg.key(),
            value=msg.value(),
            headers=dlq_headers(msg, self.projection, error, attempts),
            on_delivery=delivered,
        )
        left = self.producer.flush(self.config.request_timeout_s)
        if left or failures:
            raise StoreUnavailableError(
                f"could not park {msg.topic()}[{msg.partition()}]@{msg.offset()} in "
                f"{self.topic}: {failures[0] if failures else 'timed out'}. The record was "
                "not skipped; it will be retried."
            )
        self.parked += 1

    def close(self) -> None:
        if self._own:
            self.producer.flush(10)


@dataclass(frozen=True)
class Parked:
    """A record in a dead-letter topic."""

    dlq_offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    projection: str
    error: str
    error_type: str
    topic: str
    partition: int
    offset: int
    attempts: int
    parked_at_ms: int

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.headers if not k.startswith("kes.dlq.")]


def to_parked(msg: Message) -> Parked:
    hs = {k: (v or b"").decode(errors="replace") for k, v in (msg.headers() or [])}
    return Parked(
        dlq_offset=msg.offset(),
        key=msg.key(),
        value=msg.value(),
        headers=list(msg.headers() or []),
        projection=hs.get(H_PROJECTION, ""),
        error=hs.get(H_ERROR, ""),
        error_type=hs.get(H_ERROR_TYPE, ""),
        topic=hs.get(H_TOPIC, ""),
        partition=int(hs.get(H_PARTITION, "-1")),
        offset=int(hs.get(H_OFFSET, "-1")),
        attempts=int(hs.get(H_ATTEMPTS, "0")),
        parked_at_ms=int(hs.get(H_PARKED_AT, "0")),
    )


def read_parked(config: KafkaConfig, projection: str, from_offset: int = 0) -> Iterator[Parked]:
    """Every parked record of ``projection``, oldest first."""
    name = dlq_topic(projection)
    try:
        info = Topics(config).describe(name)
    except KafkaException as exc:
        raise StoreUnavailableError(f"cannot describe {name}: {exc}") from exc
    if info is None:
        return
    for msg in scan(config, name, info.partitions, {0: from_offset} if from_offset else None):
        yield to_parked(msg)
