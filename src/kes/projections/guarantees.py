"""How a batch's offsets and its handling are ordered: the processing guarantees that
keep offsets in Kafka (at-most-once, at-least-once), and what every strategy shares."""

from __future__ import annotations

import logging
import time
from datetime import datetime

import msgspec
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from kes import metrics
from kes.domain import UnknownEventError
from kes.envelope import Position, decode
from kes.logs import record_fields
from kes.projections._aio import resolve
from kes.projections.dlq import DeadLetters
from kes.projections.projection import Projection, ProjectionEvent
from kes.tracing import handler_span

log = logging.getLogger("kes.projections")

Key = tuple[str, int]
# A record that raises one of these cannot be handled, however often it is tried: not a
# kes event, or one its aggregate class cannot upcast (no upcaster, a newer version).
UNREADABLE = (
    msgspec.DecodeError,
    msgspec.ValidationError,
    TypeError,
    UnicodeDecodeError,
    UnknownEventError,
)


class Strategy:
    """One processing guarantee: what happens on assignment, per batch, on revocation.

    ``since``: events stamped (event time) before it are skipped, not handled; a replay
    ``--from-time`` sets it.
    """

    def __init__(self, projection: Projection, dead_letters: DeadLetters) -> None:
        self.projection = projection
        self.dead_letters = dead_letters
        self.since: datetime | None = None

    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Set ``tp.offset`` where to start (left unset: the group's committed offset)."""

    def revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The partitions are leaving (``lost``: they are already someone else's)."""

    def process(self, consumer: Consumer, records: list[Message]) -> None:
        raise NotImplementedError

    def close(self, consumer: Consumer) -> None:
        """Before the consumer leaves the group."""


def to_event(
    projection: Projection, msg: Message, since: datetime | None = None
) -> ProjectionEvent | None:
    """What ``projection``'s handler receives for ``msg`` (decoded, upcast), or None when
    it has no handler for the event's type or the event was stamped before ``since``.
    Raises one of ``UNREADABLE`` when that cannot be done."""
    envelope = decode(msg.value())
    if envelope.event_type not in projection.handlers:
        return None
    if since is not None and envelope.timestamp < since:
        return None
    return projection.event_for(envelope, Position(msg.topic(), msg.partition(), msg.offset()))


def where(msg: Message) -> str:
    return f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"


def backoff(projection: Projection, attempt: int) -> None:
    time.sleep(projection.retry_backoff_s * (2 ** (attempt - 1)))


def handle_or_park(
    projection: Projection,
    dead_letters: DeadLetters,
    msg: Message,
    attempt: int = 1,
    since: datetime | None = None,
) -> bool:
    """Decode and handle ``msg``, retrying a failing handler with backoff; after the last
    attempt park it in the dead-letter topic. True when handled (or skipped), False
    when parked.

    An unreadable record is parked at once: reading the same bytes again cannot succeed.
    """
    try:
        event = to_event(projection, msg, since)
    except UNREADABLE as exc:
        log.warning(
            "%s: %s cannot be read (%s); parked",
            projection.name,
            where(msg),
            exc,
            extra=record_fields(msg, projection.name),
        )
        dead_letters.park(msg, exc, 1)
        return False
    if event is None:
        return True
    handler = projection.handlers[event.event_type]
    while True:
        try:
            with handler_span(projection.name, msg):
                done = handler(event)
                if done is not None:
                    resolve(done)
            return True
        except Exception as exc:
            if attempt >= projection.max_attempts:
                park_failed(projection, dead_letters, msg, exc, attempt)
                return False
            retry_after(projection, msg, exc, attempt)
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
    projection: Projection,
    dead_letters: DeadLetters,
    records: list[Message],
    since: datetime | None = None,
) -> dict[Key, int]:
    """Handle ``records`` in order (the fast path: a failure falls back to retries);
    returns the offset after the last record of each partition."""
    handlers = projection.handlers
    offsets: dict[Key, int] = {}
    for msg in records:
        offsets[(msg.topic(), msg.partition())] = msg.offset() + 1
        try:
            event = to_event(projection, msg, since)
        except UNREADABLE:
            handle_or_park(projection, dead_letters, msg)
            continue
        if event is None:
            continue
        try:
            with handler_span(projection.name, msg):
                done = handlers[event.event_type](event)
                if done is not None:
                    resolve(done)  # an async def handler: run to completion before the next
        except Exception as exc:
            if projection.max_attempts <= 1:
                park_failed(projection, dead_letters, msg, exc, 1)
                continue
            retry_after(projection, msg, exc, 1)
            handle_or_park(projection, dead_letters, msg, 2, since)
    return offsets


def retry_after(projection: Projection, msg: Message, error: Exception, attempt: int) -> None:
    """Say that attempt ``attempt`` on ``msg`` failed, count it, wait the backoff."""
    log.warning(
        "%s: %s failed (%r); retrying",
        projection.name,
        where(msg),
        error,
        extra=record_fields(msg, projection.name),
    )
    metrics.retried(projection.name)
    backoff(projection, attempt)


def park_failed(
    projection: Projection,
    dead_letters: DeadLetters,
    msg: Message,
    error: Exception,
    attempts: int,
) -> None:
    """Park ``msg`` whose handler failed ``attempts`` times (the last with ``error``)."""
    log.error(
        "%s: %s failed %d time(s), last with %r; parked in %s",
        projection.name,
        where(msg),
        attempts,
        error,
        dead_letters.topic,
        extra=record_fields(msg, projection.name),
    )
    dead_letters.park(msg, error, attempts)


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
        handle_batch(self.projection, self.dead_letters, records, self.since)


class AtLeastOnce(Strategy):
    """Handle the batch, then commit its offsets. A crash mid-batch hands the batch
    again to the next owner: nothing is lost, some events may be handled twice."""

    def __init__(self, projection: Projection, dead_letters: DeadLetters) -> None:
        super().__init__(projection, dead_letters)
        self.done: dict[Key, int] = {}

    def process(self, consumer: Consumer, records: list[Message]) -> None:
        offsets = handle_batch(self.projection, self.dead_letters, records, self.since)
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
