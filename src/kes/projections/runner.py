"""Runs a projection: joins its consumer group and feeds it batches under its guarantee.

The consumer group is the projection's ``name``; assignment is cooperative-sticky,
reads are ``read_committed`` and auto-commit is off: each guarantee decides when
offsets are committed, and where (Kafka, the read model's database, a transaction).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from kes import metrics
from kes.kafka.clients import group_consumer
from kes.kafka.config import KafkaConfig
from kes.kafka.consume import drain
from kes.kafka.topics import Topics
from kes.projections._aio import resolve
from kes.projections.checkpoints import CheckpointStore, open_checkpoints
from kes.projections.dlq import DeadLetters
from kes.projections.errors import ProjectionError
from kes.projections.guarantees import AtLeastOnce, AtMostOnce, Key, Strategy
from kes.projections.processor import KafkaExactlyOnce
from kes.projections.projection import KafkaProcessor, Projection, SqlProjection
from kes.projections.sql import SqlExactlyOnce

if TYPE_CHECKING:
    from kes.shredding.keyring import KeyRing

log = logging.getLogger("kes.projections")

DB_ENV = "KES_PROJECTION_DB"
LAG_EVERY_S = 1.0  # how often the kes_consumer_lag gauges are brought up to date


@dataclass
class RunStats:
    """What a run did so far: ``records`` read (events, handled or skipped),
    ``positions`` the next offset to read per partition."""

    records: int = 0
    parked: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)
    assigned: set[Key] = field(default_factory=set)
    positions: dict[Key, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def database_url(projection: SqlProjection, database: str | None) -> str:
    return database or os.environ.get(DB_ENV) or projection.database


class ProjectionRunner:
    """Feeds ``projection`` from its consumer group until :meth:`stop` (or, with
    ``until_caught_up``, until every partition is read to its end).

    ``since`` skips events whose event time (the envelope's ``timestamp``) is before
    it: they are read, their offsets advance, no handler sees them.

    ``keys`` decrypts personal fields; by default a ``KafkaKeyRing`` with the KEK of
    ``KES_KEK_FILE`` / ``KES_KEK``, checked here: a wrong KEK, or none for a projection
    whose aggregates declare personal fields, fails before anything is read.

    ``heartbeat`` is called after each batch, and (at most every second) while this
    member has nothing left to read: a supervisor that stops hearing it while the member
    has records to read knows it is frozen or hung (kes.processes).
    """

    def __init__(
        self,
        projection: Projection,
        config: KafkaConfig | None = None,
        *,
        database: str | CheckpointStore | None = None,
        until_caught_up: bool = False,
        batch_size: int = 5_000,
        poll_timeout_s: float = 0.5,
        on_batch: Callable[[RunStats], None] | None = None,
        on_assignment: Callable[[set[Key]], None] | None = None,
        since: datetime | None = None,
        keys: KeyRing | None = None,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        if since is not None and since.tzinfo is None:
            raise ProjectionError(f"since must be timezone-aware, got {since!r}.")
        self.projection = projection
        self.config = config or KafkaConfig.from_env()
        self._own_keys = keys is None
        self.keys = keys if keys is not None else projection_key_ring(self.config, projection)
        projection.key_ring = self.keys
        self.until_caught_up = until_caught_up
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.on_batch = on_batch
        self.on_assignment = on_assignment
        self.heartbeat = heartbeat
        self.stats = RunStats()
        self._stop = threading.Event()
        self._at_end: set[Key] = set()
        topics = Topics(self.config)
        infos = [
            topics.ensure_event_topic(t, role="projection") for t in projection.aggregate_types
        ]
        self.topics = [i.name for i in infos]
        self.partition_count = sum(i.partitions for i in infos)
        self.checkpoints: CheckpointStore | None = None
        self.strategy = self._strategy(database)
        self.strategy.since = since

    def _strategy(self, database: str | CheckpointStore | None) -> Strategy:
        p = self.projection
        if isinstance(p, SqlProjection):
            store = (
                database
                if isinstance(database, CheckpointStore)
                else open_checkpoints(database_url(p, database), asynchronous=p.is_async)
            )
            self.checkpoints = store
            _retry_setup(lambda: _setup(p, store))
            return SqlExactlyOnce(p, DeadLetters(self.config, p.name), store)
        if isinstance(p, KafkaProcessor):
            return KafkaExactlyOnce(p, self.config)
        dead_letters = DeadLetters(self.config, p.name)
        if p.processing_guarantee == "at_most_once":
            return AtMostOnce(p, dead_letters)
        return AtLeastOnce(p, dead_letters)

    @property
    def group(self) -> str:
        """The projection's consumer group (its name, in the config's namespace)."""
        return self.config.group_id(self.projection.name)

    def consumer(self) -> Consumer:
        return group_consumer(
            self.config,
            self.group,
            **{
                "enable.partition.eof": self.until_caught_up,
                "queued.max.messages.kbytes": 16384,  # prefetch per partition: bounds memory
                "fetch.max.bytes": 52428800,
                "max.partition.fetch.bytes": 10485760,
            },
        )

    # ---- group callbacks ---------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.strategy.assigned(consumer, partitions)
        consumer.incremental_assign(partitions)
        self.stats.assigned |= {(tp.topic, tp.partition) for tp in partitions}
        log.info("%s: assigned %s", self.projection.name, _names(partitions))
        if self.on_assignment is not None:
            self.on_assignment(set(self.stats.assigned))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.strategy.revoked(consumer, partitions)
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self.stats.assigned -= gone
        self._at_end -= gone
        metrics.forget_lag(self.projection.name, gone)
        log.info("%s: revoked %s", self.projection.name, _names(partitions))
        if self.on_assignment is not None:
            self.on_assignment(set(self.stats.assigned))

    # ---- the loop ------------------------------------------------------------------

    def run(self) -> RunStats:
        """Consume and handle until stopped; returns what was done."""
        consumer = self.consumer()
        consumer.subscribe(
            self.topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        log.info("%s: started as %s", self.projection.describe(), self.config.member_name)
        next_lag = 0.0
        try:
            while not self._stop.is_set():
                records = self._next_batch(consumer)
                if records:
                    started = time.monotonic()
                    self.strategy.process(consumer, records)
                    metrics.batch_handled(
                        self.projection.name, len(records), time.monotonic() - started
                    )
                    self.stats.records += len(records)
                    self.stats.batches += 1
                    positions = self.stats.positions
                    for m in records:
                        positions[(m.topic(), m.partition())] = m.offset() + 1
                    if self.on_batch is not None:
                        self.on_batch(self.stats)
                    if self.heartbeat is not None:
                        self.heartbeat()
                if time.monotonic() >= next_lag:
                    next_lag = time.monotonic() + LAG_EVERY_S
                    lags = _lags(consumer, self.stats.assigned)
                    metrics.lag(self.projection.name, lags)
                    if self.heartbeat is not None and not any(behind for _, _, behind in lags):
                        self.heartbeat()  # nothing to read: idle, not stalled
                if self.until_caught_up and self._caught_up():
                    break
        finally:
            self.stats.parked = self.strategy.dead_letters.parked
            try:
                self.strategy.close(consumer)
            finally:
                try:
                    consumer.close()  # leaves the group: revokes (and commits) now
                except KafkaException as exc:
                    log.info("%s: close: %s", self.projection.name, exc)
                self.strategy.dead_letters.close()
                if self.checkpoints is not None:
                    self.checkpoints.close()
                if self._own_keys:
                    self.keys.close()
        return self.stats

    def _next_batch(self, consumer: Consumer) -> list[Message]:
        msgs = drain(consumer, self.batch_size, self.poll_timeout_s)
        if not msgs:
            return msgs
        records: list[Message] = []
        at_end = self._at_end
        for m in msgs:
            err = m.error()
            if err is None:
                if at_end:
                    at_end.discard((m.topic(), m.partition()))
                records.append(m)
            elif err.code() == KafkaError._PARTITION_EOF:
                at_end.add((m.topic(), m.partition()))
            elif err.fatal():
                raise ProjectionError(f"{self.projection.name}: fatal consumer error: {err}")
            else:
                log.warning("%s: consumer: %s", self.projection.name, err)
        return records

    def _caught_up(self) -> bool:
        assigned = self.stats.assigned
        return len(assigned) == self.partition_count and assigned <= self._at_end

    def stop(self) -> None:
        """Finish the batch in hand, commit, leave the group."""
        self._stop.set()


def projection_key_ring(config: KafkaConfig, projection: Projection) -> KeyRing:
    """The namespace's key ring with the environment's KEK, checked now."""
    from kes.store.kafka.keys import KafkaKeyRing

    needs = projection.describe() if projection.reads_personal_data else None
    return KafkaKeyRing.from_env(config, required_by=needs)


def _lags(consumer: Consumer, assigned: set[Key]) -> list[tuple[str, int, int]]:
    """(topic, partition, records behind) of the assigned partitions, from what the
    consumer knows already: its position and the end its last fetch reported (no call
    to the broker)."""
    out: list[tuple[str, int, int]] = []
    tps = [TopicPartition(t, p) for t, p in assigned]
    try:
        positions = consumer.position(tps)
    except KafkaException:
        return out
    for tp in positions:
        if tp.offset < 0:
            continue  # nothing fetched yet
        try:
            _, high = consumer.get_watermark_offsets(tp, cached=True)
        except KafkaException:
            continue
        if high >= 0:
            out.append((tp.topic, tp.partition, max(0, high - tp.offset)))
    return out


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"


def _setup(projection: SqlProjection, store: CheckpointStore) -> None:
    store.setup()
    with store.transaction() as tx:
        resolve(projection.setup(tx))


def _retry_setup(fn: Callable[[], None]) -> None:
    # Processes starting together race on CREATE TABLE IF NOT EXISTS (PostgreSQL may
    # report a unique violation on its catalog): the loser tries again.
    for attempt in range(5):
        try:
            fn()
            return
        except Exception as exc:
            if attempt == 4:
                raise ProjectionError(f"cannot create the read model's tables: {exc}") from exc
            time.sleep(0.2 * (attempt + 1))
