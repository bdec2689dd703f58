"""Exactly once from Kafka to Kafka: outputs and consumed offsets in one transaction.

One transactional producer per process; the group generation fences it (KIP-447:
``send_offsets_to_transaction(offsets, consumer.consumer_group_metadata())`` fails
once the group has moved on), so a paused old member cannot commit anything.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from kes import metrics
from kes.errors import KesError
from kes.kafka.config import KafkaConfig
from kes.kafka.errors import Failure, classify
from kes.kafka.produce import TransactionalProducer
from kes.logs import record_fields
from kes.projections.dlq import DeadLetters
from kes.projections.guarantees import Key, Strategy, as_tps, backoff, next_offsets, where
from kes.projections.projection import KafkaProcessor
from kes.tracing import handler_span

log = logging.getLogger("kes.projections")


class Output(NamedTuple):
    """A record a :class:`KafkaProcessor` produces."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None
    partition: int | None = None


class KafkaExactlyOnce(Strategy):
    """The runner strategy of a :class:`KafkaProcessor`."""

    projection: KafkaProcessor

    def __init__(self, projection: KafkaProcessor, config: KafkaConfig) -> None:
        self.config = config
        self.transactional_id = config.processor_transactional_id(projection.name)
        self.producer = self._new_producer()
        super().__init__(projection, DeadLetters(config, projection.name, self.producer))
        projection.open(config)

    def _new_producer(self) -> TransactionalProducer:
        return TransactionalProducer(
            self.config,
            self.transactional_id,
            timeout_ms=min(self.config.transaction_timeout_ms, 30_000),
            role="projection",
            **{"linger.ms": 5},
        )

    def process(self, consumer: Consumer, records: list[Message]) -> None:
        producer = self.producer
        try:
            producer.begin()
            for msg in records:
                for out in self._outputs(msg):
                    producer.produce(out.topic, out.value, out.key, out.partition, out.headers)
                producer.poll(0)
            producer.flush()
            producer.send_offsets(as_tps(next_offsets(records)), consumer.consumer_group_metadata())
            producer.commit()
        except (KafkaException, KesError) as exc:
            log.warning(
                "%s: transaction of %d records failed (%s); aborted, will be read again",
                self.projection.name,
                len(records),
                exc,
            )
            self._abort(exc)
            self._rewind(consumer, records)

    def _outputs(self, msg: Message) -> list[Output]:
        attempt = 1
        while True:
            try:
                with handler_span(self.projection.name, msg):
                    return list(self.projection.process(msg))
            except Exception as exc:
                if attempt >= self.projection.max_attempts:
                    log.error(
                        "%s: %s parked after %d attempts: %r",
                        self.projection.name,
                        where(msg),
                        attempt,
                        exc,
                        extra=record_fields(msg, self.projection.name),
                    )
                    self.dead_letters.produce(msg, exc, attempt)  # in this transaction
                    return []
                backoff(self.projection, attempt)
                attempt += 1
                metrics.retried(self.projection.name)

    def _abort(self, exc: BaseException) -> None:
        if classify(exc) is not Failure.PRODUCER_FENCED and self.producer.abort():
            return
        # Fenced, or even the abort failed: this producer is done; a new one (same id)
        # aborts what is open.
        self.producer.close()
        self.producer = self._new_producer()
        self.dead_letters.transactional = self.producer

    def _rewind(self, consumer: Consumer, records: list[Message]) -> None:
        first: dict[Key, int] = {}
        for m in records:
            first.setdefault((m.topic(), m.partition()), m.offset())
        for (topic, partition), offset in first.items():
            try:
                consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # not ours any more: the new owner goes on
                log.info(
                    "%s: cannot rewind %s[%d]: %s", self.projection.name, topic, partition, exc
                )

    def close(self, consumer: Consumer) -> None:
        self.producer.close()


def header(msg: Message, name: str) -> bytes | None:
    for k, v in msg.headers() or ():
        if k == name:
            return v  # type: ignore[no-any-return]
    return None


__all__ = ["KafkaExactlyOnce", "Output", "header"]
