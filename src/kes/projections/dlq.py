"""The dead-letter topic of a projection: ``<namespace>.dlq.<projection>``.

A record that cannot be decoded, or whose handler keeps failing, is parked there
byte for byte (same key, value and headers) with headers saying why and where it
came from, so that the group goes on and an operator can look and replay later.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Message

from kes import metrics
from kes.kafka.clients import producer
from kes.kafka.config import KafkaConfig
from kes.kafka.consume import scan
from kes.kafka.produce import TransactionalProducer, send_and_confirm
from kes.kafka.topics import DEAD_LETTERS, Topics

H_PROJECTION = "kes.dlq.projection"
H_ERROR = "kes.dlq.error"
H_ERROR_TYPE = "kes.dlq.errorType"
H_TOPIC = "kes.dlq.topic"
H_PARTITION = "kes.dlq.partition"
H_OFFSET = "kes.dlq.offset"
H_ATTEMPTS = "kes.dlq.attempts"
H_PARKED_AT = "kes.dlq.parkedAt"
MAX_ERROR_BYTES = 2000


def dlq_topic(config: KafkaConfig, consumer: str) -> str:
    """The dead-letter topic of a projection or pipeline named ``consumer``."""
    return config.dlq_topic(consumer)


def ensure_dlq_topic(config: KafkaConfig, consumer: str) -> str:
    name = dlq_topic(config, consumer)
    Topics(config).ensure(DEAD_LETTERS, name, 1)
    return name


def dlq_headers(
    msg: Message, projection: str, error: BaseException, attempts: int
) -> list[tuple[str, bytes]]:
    return parking_headers(
        msg.headers() or [],
        projection,
        _describe(error),
        type(error).__name__,
        (str(msg.topic()), msg.partition(), msg.offset()),
        attempts,
    )


def _describe(error: BaseException) -> str:
    """``Type: message``; a KeyError's message is the bare key, so say what it means."""
    if isinstance(error, KeyError) and len(error.args) == 1:
        return f"KeyError: no key {error.args[0]!r} (a field missing from the payload?)"
    return f"{type(error).__name__}: {error}"


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
    """Parks records of one projection: inside its Kafka transaction (``produce``, when
    it has one) or durably on their own (``park``: acks=all, confirmed before returning)."""

    def __init__(
        self,
        config: KafkaConfig,
        projection: str,
        transactional: TransactionalProducer | None = None,
    ) -> None:
        self.config = config
        self.projection = projection
        self.topic = ensure_dlq_topic(config, projection)
        self.transactional = transactional
        self._producer = None if transactional is not None else producer(config, **{"linger.ms": 0})
        self.parked = 0

    def produce(self, msg: Message, error: BaseException, attempts: int) -> None:
        """Add to the open transaction (the commit makes it durable)."""
        assert self.transactional is not None, "produce() needs a transactional producer"
        self.transactional.produce(
            self.topic,
            msg.value(),
            msg.key(),
            headers=dlq_headers(msg, self.projection, error, attempts),
        )
        self.parked += 1
        metrics.parked(self.projection)

    def park(self, msg: Message, error: BaseException, attempts: int) -> None:
        """Produce and wait until Kafka has it; raises StoreUnavailableError otherwise
        (the record is then not skipped: it is retried)."""
        assert self._producer is not None, "park() is for projections without a transaction"
        send_and_confirm(
            self._producer,
            self.topic,
            msg.key(),
            msg.value(),
            headers=dlq_headers(msg, self.projection, error, attempts),
            timeout_s=self.config.request_timeout_s,
            what=f"record {msg.topic()}[{msg.partition()}]@{msg.offset()} to park",
        )
        self.parked += 1
        metrics.parked(self.projection)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)


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
    name = dlq_topic(config, projection)
    info = Topics(config).describe(name)
    if info is None:
        return
    for msg in scan(config, name, info.partitions, {0: from_offset} if from_offset else None):
        yield to_parked(msg)
