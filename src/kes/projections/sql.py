"""Exactly once into SQL: a batch's read-model changes and its offsets, one transaction.

On assignment the consumer starts where the database says (``kes_offsets``), not where
the Kafka group says: the database is the truth. The offsets are also committed to the
Kafka group after each database commit, only so that lag shows in ``kes project status``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from kes import metrics
from kes.envelope import RecordedEvent
from kes.logs import record_fields
from kes.projections.checkpoints import CheckpointStore, Tx
from kes.projections.dlq import DeadLetters
from kes.projections.errors import CheckpointConflictError
from kes.projections.guarantees import (
    UNREADABLE,
    Key,
    Strategy,
    as_tps,
    backoff,
    next_offsets,
    to_event,
    where,
)
from kes.projections.projection import SqlProjection, dispatch
from kes.tracing import handler_span

log = logging.getLogger("kes.projections")


class _Poison(Exception):
    def __init__(self, index: int, error: BaseException) -> None:
        self.index = index
        self.error = error


class SqlExactlyOnce(Strategy):
    """The runner strategy of a :class:`SqlProjection`."""

    projection: SqlProjection

    def __init__(
        self, projection: SqlProjection, dead_letters: DeadLetters, store: CheckpointStore
    ) -> None:
        super().__init__(projection, dead_letters)
        self.store = store
        self.name = projection.name
        # Per assigned partition: the offset stored in the database (None: no row yet).
        self.stored: dict[Key, int | None] = {}
        self._consumer: Consumer | None = None

    # ---- assignment -----------------------------------------------------------

    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._consumer = consumer
        with self.store.transaction() as tx:
            offsets = self.store.load(tx, self.name)
        for tp in partitions:
            key = (tp.topic, tp.partition)
            stored = offsets.get(key)
            self.stored[key] = stored
            tp.offset = OFFSET_BEGINNING if stored is None else stored

    def revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.stored.pop((tp.topic, tp.partition), None)

    # ---- batches --------------------------------------------------------------

    def process(self, consumer: Consumer, records: list[Message]) -> None:
        self._consumer = consumer
        pending = self._fresh(records)
        while pending:
            try:
                self._commit(pending, handle=True)
                return
            except CheckpointConflictError as exc:
                log.info("%s", exc)
                self._resync(consumer)
                return
            except _Poison as poison:
                i = poison.index
                if i > 0 and not self._commit_quietly(pending[:i]):
                    return
                if not self._retry_or_park(pending[i], poison.error):
                    return
                pending = self._fresh(pending[i + 1 :])

    def _fresh(self, records: list[Message]) -> list[Message]:
        """Records of partitions we hold, not yet applied (a seek may bring some again)."""
        out = []
        for m in records:
            key = (m.topic(), m.partition())
            if key not in self.stored:
                continue  # revoked while the batch was in flight
            stored = self.stored[key]
            if stored is None or m.offset() >= stored:
                out.append(m)
        return out

    def _commit(self, records: list[Message], handle: bool) -> None:
        """Apply ``records`` (if ``handle``) and advance their offsets, in one transaction."""
        offsets = next_offsets(records)
        with self.store.transaction() as tx:
            if handle:
                self._apply(tx, records)
            self.store.advance(
                tx, self.name, {k: (self.stored.get(k), o) for k, o in offsets.items()}
            )
        self.stored.update(offsets)
        if self._consumer is not None:
            # advisory: the database is the truth; this is for `kes project status`
            with contextlib.suppress(KafkaException):
                self._consumer.commit(offsets=as_tps(offsets), asynchronous=True)

    def _apply(self, tx: Tx, records: list[Message]) -> None:
        projection = self.projection
        for i, msg in enumerate(records):
            try:
                event = to_event(projection, msg, self.since)
            except UNREADABLE as exc:
                raise _Poison(i, exc) from exc
            if event is None:
                continue
            try:
                with handler_span(projection.name, msg):
                    dispatch(projection, event, tx)
            except Exception as exc:
                raise _Poison(i, exc) from exc

    def _commit_quietly(self, records: list[Message]) -> bool:
        """Commit records known to be good (the prefix before a poison record)."""
        try:
            self._commit(records, handle=True)
            return True
        except CheckpointConflictError as exc:
            log.info("%s", exc)
        except _Poison as poison:  # a handler that fails only sometimes: start over
            log.warning("%s: handler failed on a record it had passed: %r", self.name, poison)
        if self._consumer is not None:
            self._resync(self._consumer)
        return False

    def _retry_or_park(self, msg: Message, error: BaseException) -> bool:
        """Handle one record alone, retrying; park it after the last attempt. The offset
        advance past it commits in the database either way. False on a conflict."""
        attempt = 1
        if not isinstance(error, UNREADABLE):
            while attempt < self.projection.max_attempts:
                backoff(self.projection, attempt)
                attempt += 1
                metrics.retried(self.name)
                try:
                    self._commit([msg], handle=True)
                    return True
                except CheckpointConflictError as exc:
                    log.info("%s", exc)
                    if self._consumer is not None:
                        self._resync(self._consumer)
                    return False
                except _Poison as poison:
                    error = poison.error
                    log.warning(
                        "%s: %s failed again (%r)",
                        self.name,
                        where(msg),
                        error,
                        extra=record_fields(msg, self.name),
                    )
        log.error(
            "%s: %s failed %d time(s), last with %r; parked in %s",
            self.name,
            where(msg),
            attempt,
            error,
            self.dead_letters.topic,
            extra=record_fields(msg, self.name),
        )
        # Parked before the offset moves past it: a crash in between parks it twice
        # (the DLQ is at-least-once), never zero times.
        self.dead_letters.park(msg, error, attempt)
        try:
            self._commit([msg], handle=False)
        except CheckpointConflictError as exc:
            log.info("%s", exc)
            if self._consumer is not None:
                self._resync(self._consumer)
            return False
        return True

    def _resync(self, consumer: Consumer) -> None:
        """Someone else moved our offsets: read them again and seek there."""
        with self.store.transaction() as tx:
            offsets = self.store.load(tx, self.name)
        for key in list(self.stored):
            stored = offsets.get(key)
            self.stored[key] = stored
            tp = TopicPartition(key[0], key[1], OFFSET_BEGINNING if stored is None else stored)
            try:
                consumer.seek(tp)
            except KafkaException as exc:
                log.info("%s: cannot seek %s[%d]: %s", self.name, key[0], key[1], exc)


def apply_event(projection: SqlProjection, event: RecordedEvent, tx: Tx) -> Any:
    """Run a SQL projection's handler for one event (for replays of parked records)."""
    return dispatch(projection, event, tx)
