"""How a batch's offsets and its handling are ordered: the processing guarantees that
keep offsets in Kafka (at-most-once, at-least-once), and what every strategy shares."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from kes.envelope import Position, RecordedEvent, decode
from kes.projections._aio import resolve
from kes.projections.dlq import DeadLetters
from kes.projections.projection import Projection, dispatch

log = logging.getLogger("kes.projections")

Key = tuple[str, int]
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, TypeError, UnicodeDecodeError)


class Strategy:
    """One processing guarantee: what happens on assignment, per batch, on revocation."""

    def __init__(self, projection: Projection, dead_letters: DeadLetters) -> None:
        self.projection = projection
        self.dead_letters = dead_letters

    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Set ``tp.offset`` where to start (left unset: the group's committed offset)."""

    def revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The partitions are leaving (``lost``: they are already someone else's)."""

    def process(self, consumer: Consumer, records: list[Message]) -> None:
        raise NotImplementedError

    def close(self, consumer: Consumer) -> None:
        """Before the consumer leaves the group."""


def recorded(msg: Message) -> RecordedEvent:
    return RecordedEvent(decode(msg.value()), Position(msg.topic(), msg.partition(), msg.offset()))


def where(msg: Message) -> str:
    return f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"


def backoff(projection: Projection, attempt: int) -> None:
    time.sleep(projection.retry_backoff_s * (2 ** (attempt - 1)))


def handle_or_park(
    projection: Projection,
    dead_letters: DeadLetters,
    msg: Message,
    call: Callable[[RecordedEvent], None],
    attempt: int = 1,
) -> bool:
    """Decode and handle ``msg``, retrying a failing handler with backoff; after the last
    attempt park it in the dead-letter topic. True when handled, False when parked.

    An undecodable record is parked at once: decoding the same bytes again cannot succeed.
    """
    try:
        event = recorded(msg)
    except DECODE_ERRORS as exc:
        log.warning("%s: %s cannot be decoded (%s); parked", projection.name, where(msg), exc)
        dead_letters.park(msg, exc, 1)
        return False
    while True:
        try:
            call(event)
            return True
        except Exception as exc:
            if attempt >= projection.max_attempts:
                log.error(
                    "%s: %s failed %d times, last with %r; parked in %s",
                    projection.name,
                    where(msg),
                    attempt,
                    exc,
                    dead_letters.topic,
                )
                dead_letters.park(msg, exc, attempt)
                return False
            log.warning("%s: %s failed (%r); retrying", projection.name, where(msg), exc)
            backoff(projection, attempt)
            attempt += 1


def next_offsets(records: list[Message]) -> dict[Key, int]:
    """Per partition, the offset after the last record of ``records``."""
    out: dict[Key, int] = {}
    for m in records:
        out[(m.topic(), m.partition())] = m.offset() + 1
    return out


def as_tps(offsets: dict[Key, int]) -> list[TopicPartition]:
    return [TopicPartition(t, p, o) for (t, p), o in offsets.items()]


def handle_batch(
    projection: Projection, dead_letters: DeadLetters, records: list[Message]
) -> dict[Key, int]:
    """Handle ``records`` in order (the fast path: a failure falls back to retries);
    returns the offset after the last record of each partition."""
    handlers = projection.handlers
    offsets: dict[Key, int] = {}
    for msg in records:
        offset = msg.offset()
        offsets[(msg.topic(), msg.partition())] = offset + 1
        try:
            envelope = decode(msg.value())
        except DECODE_ERRORS:
            handle_or_park(projection, dead_letters, msg, lambda e: dispatch(projection, e))
            continue
        handler = handlers.get(envelope.event_type)
        if handler is None:
            continue
        try:
            done = handler(RecordedEvent(envelope, Position(msg.topic(), msg.partition(), offset)))
            if done is not None:
                resolve(done)  # an async def handler: run to completion before the next
        except Exception as exc:
            log.warning("%s: %s failed (%r); retrying", projection.name, where(msg), exc)
            backoff(projection, 1)
            handle_or_park(projection, dead_letters, msg, lambda e: dispatch(projection, e), 2)
    return offsets


class AtMostOnce(Strategy):
    """Commit the batch's offsets (synchronously) first, then handle it. A crash
    mid-batch loses the rest of the batch; nothing is ever handled twice."""

    def process(self, consumer: Consumer, records: list[Message]) -> None:
        try:
            consumer.commit(offsets=as_tps(next_offsets(records)), asynchronous=False)
        except KafkaException as exc:
            # Not committed (the group moved on, most often): handling would risk a second
            # time on the new owner. Drop the batch; the owner starts at the last commit.
            log.warning("%s: commit refused (%s); batch not handled", self.projection.name, exc)
            return
        handle_batch(self.projection, self.dead_letters, records)


class AtLeastOnce(Strategy):
    """Handle the batch, then commit its offsets. A crash mid-batch hands the batch
    again to the next owner: nothing is lost, some events may be handled twice."""

    def __init__(self, projection: Projection, dead_letters: DeadLetters) -> None:
        super().__init__(projection, dead_letters)
        self.done: dict[Key, int] = {}

    def process(self, consumer: Consumer, records: list[Message]) -> None:
        offsets = handle_batch(self.projection, self.dead_letters, records)
        self.done.update(offsets)
        try:
            consumer.commit(offsets=as_tps(offsets), asynchronous=True)
        except KafkaException as exc:
            log.warning("%s: commit failed (%s); will be handled again", self.projection.name, exc)

    def revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        mine = {
            (tp.topic, tp.partition): self.done.pop((tp.topic, tp.partition))
            for tp in partitions
            if (tp.topic, tp.partition) in self.done
        }
        if mine:
            try:
                consumer.commit(offsets=as_tps(mine), asynchronous=False)
            except KafkaException as exc:
                log.info("%s: final commit on revoke failed: %s", self.projection.name, exc)

    def close(self, consumer: Consumer) -> None:
        if self.done:
            try:
                consumer.commit(offsets=as_tps(self.done), asynchronous=False)
            except KafkaException as exc:
                log.info("%s: final commit failed: %s", self.projection.name, exc)
            self.done.clear()
