"""An operator's way past a record that stalls a group: park it and move on.

A projection parks a record its handler keeps failing on by itself, and a pipeline
parks one it cannot read; but a record can also stall a group in ways no member can
recognise from inside — a handler that hangs on it, a write derived from it that the
cluster refuses on every run. :func:`park_next` takes the record the stopped group
would read next on one partition, parks it in the group's dead-letter topic with the
operator's reason, and moves the group's position past it (``kes dlq park``).
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Message, TopicPartition

from kes.kafka.clients import plain_consumer, producer, reader
from kes.kafka.config import KafkaConfig
from kes.kafka.consume import read_range, watermarks
from kes.kafka.produce import send_and_confirm
from kes.kafka.topics import Topics
from kes.projections.admin import commit_positions, group_status
from kes.projections.checkpoints import CheckpointStore
from kes.projections.dlq import ensure_dlq_topic, parking_headers
from kes.projections.errors import ProjectionError

SKIPPED = "SkippedByOperator"  # the parked record's kes.dlq.errorType


@dataclass(frozen=True)
class Skipped:
    topic: str
    partition: int
    offset: int  # the record parked
    dlq_topic: str
    dlq_offset: int


def park_next(
    config: KafkaConfig,
    name: str,
    group: str,
    topic: str,
    partition: int,
    reason: str,
    *,
    expected_offset: int | None = None,
    checkpoints: CheckpointStore | None = None,
) -> Skipped:
    """Park the record that ``group`` (of the projection or pipeline ``name``) would read
    next in ``topic[partition]`` and move its position past it.

    Positions are the group's committed offsets, or with ``checkpoints`` the rows a
    SqlProjection keeps in its database. Refused, changing nothing, while the group has
    members, when the partition has nothing left to read, or when ``expected_offset``
    is given and the next record is another one. The record is parked before the
    position moves: if moving fails, running this again parks it a second time.
    """
    if not reason.strip():
        raise ProjectionError("give a --reason: it is stored with the parked record.")
    status = group_status(config, group, must_exist=False)
    if status.members:
        raise ProjectionError(
            f"group {group!r} has {status.members} running member(s); stop them first "
            "(a running member would read the record anyway and keep its own position)."
        )
    info = Topics(config).describe(topic)
    if info is None or not 0 <= partition < info.partitions:
        raise ProjectionError(
            f"{topic} has no partition {partition}"
            + (f" (it has {info.partitions})." if info is not None else " (no such topic).")
        )
    low, high = watermarks(config, topic, partition)
    stored = _stored(config, name, group, topic, partition, checkpoints)
    position = max(low, stored if stored is not None else low)
    msg = _first_record(config, topic, partition, position, high)
    if msg is None:
        raise ProjectionError(
            f"{group!r} has read all of {topic}[{partition}] (position {position}, end "
            f"{high}): no record stalls it there. `kes project status` / `kes stream "
            "status` show where each partition stands."
        )
    offset = int(msg.offset())
    if expected_offset is not None and offset != expected_offset:
        raise ProjectionError(
            f"the record {group!r} reads next in {topic}[{partition}] is at offset {offset}, "
            f"not {expected_offset}; nothing was parked. Run again with --offset {offset} "
            "if that is the one."
        )
    dlq = ensure_dlq_topic(config, name)
    headers = parking_headers(
        list(msg.headers() or []),
        name,
        f"skipped by an operator: {reason}",
        SKIPPED,
        (topic, partition, offset),
        attempts=0,
    )
    p = producer(config, **{"linger.ms": 0})
    try:
        _, dlq_offset = send_and_confirm(
            p,
            dlq,
            msg.key(),
            msg.value(),
            headers=headers,
            timeout_s=config.request_timeout_s,
            what=f"record {topic}[{partition}]@{offset} to park",
        )
    finally:
        p.flush(10)
    _move(config, name, group, topic, partition, stored, offset + 1, checkpoints)
    return Skipped(topic, partition, offset, dlq, dlq_offset)


def _stored(
    config: KafkaConfig,
    name: str,
    group: str,
    topic: str,
    partition: int,
    checkpoints: CheckpointStore | None,
) -> int | None:
    """The next offset the group reads in the partition; None: it has none yet."""
    if checkpoints is not None:
        with checkpoints.transaction() as tx:
            return checkpoints.load(tx, name).get((topic, partition))
    consumer = plain_consumer(config, group)
    try:
        [tp] = consumer.committed([TopicPartition(topic, partition)], timeout=10)
    finally:
        consumer.close()
    return int(tp.offset) if tp.offset >= 0 else None


def _first_record(
    config: KafkaConfig, topic: str, partition: int, start: int, end: int
) -> Message | None:
    """The first committed record at or after ``start`` (markers occupy offsets)."""
    consumer = reader(config)
    try:
        for msg in read_range(
            consumer, topic, partition, start, end, config.open_transaction_wait_s
        ):
            return msg
        return None
    finally:
        consumer.close()


def _move(
    config: KafkaConfig,
    name: str,
    group: str,
    topic: str,
    partition: int,
    stored: int | None,
    next_offset: int,
    checkpoints: CheckpointStore | None,
) -> None:
    if checkpoints is not None:
        with checkpoints.transaction() as tx:
            checkpoints.advance(tx, name, {(topic, partition): (stored, next_offset)})
        return
    failure = (
        f"the record was parked, but group {group!r} could not be moved past "
        f"{topic}[{partition}]@{next_offset - 1} (running this again parks it twice)"
    )
    commit_positions(config, group, [TopicPartition(topic, partition, next_offset)], failure)
