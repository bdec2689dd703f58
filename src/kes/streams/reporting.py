"""What a pipeline does with records it cannot use: bad records are parked in the
dead-letter topic, late records are written to the late topic. Both go through the
pipeline's transactional producer, so they commit (or abort) with its checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
from quixstreams import message_context
from quixstreams.dataframe import StreamingDataFrame

from kes import metrics
from kes.projections import dlq
from kes.streams.source import BadRecord, KeySerializer

log = logging.getLogger("kes.streams")


def dead_letter_filter(sdf: StreamingDataFrame, pipeline: str, topic: str) -> Callable[..., bool]:
    """A ``filter(..., metadata=True)`` callback that passes events and parks each
    :class:`BadRecord` (unreadable, or stamped with a time the cluster refuses) byte for
    byte in ``topic`` with the ``kes.dlq.*`` headers.
    (A filter, not a branch: Quix copies every value into each branch.)"""
    producer = sdf.processing_context.producer
    to_key = KeySerializer()

    def park(value: Any, key: Any, timestamp: int, original: Any) -> bool:
        if not isinstance(value, BadRecord):
            return True
        ctx = message_context()
        log.warning(
            "pipeline %s: %s[%d]@%d cannot be processed (%s); parked in %s",
            pipeline,
            ctx.topic,
            ctx.partition,
            ctx.offset,
            value.reason,
            topic,
            extra={
                "topic": ctx.topic,
                "partition": ctx.partition,
                "offset": ctx.offset,
                "consumer": pipeline,
            },
        )
        headers = dlq.parking_headers(
            list(original or []),
            pipeline,
            value.reason,
            value.error_type,
            (ctx.topic, ctx.partition, ctx.offset),
            attempts=1,
        )
        producer.produce(
            topic=topic, key=to_key(key), value=value.value, headers=headers, timestamp=timestamp
        )
        metrics.parked(pipeline)
        return False

    return park


def late_reporter(sdf: StreamingDataFrame, pipeline: str, topic: str) -> Callable[..., bool]:
    """An ``on_late`` callback for Quix windows on ``sdf``: each late record is written
    to ``topic`` as JSON (window, how late, source position, the value) and logged."""
    producer = sdf.processing_context.producer
    to_key = KeySerializer()

    def report(
        value: Any,
        key: Any,
        timestamp_ms: int,
        late_by_ms: int,
        start: int,
        end: int,
        store_name: str,
        topic_name: str,
        partition: int,
        offset: int,
    ) -> bool:
        record = {
            "pipeline": pipeline,
            "window": {"start": start, "end": end, "store": store_name},
            "timestampMs": timestamp_ms,
            "lateByMs": late_by_ms,
            "source": {"topic": topic_name, "partition": partition, "offset": offset},
            "key": key,
            "value": value,
        }
        producer.produce(
            topic=topic, key=to_key(key), value=msgspec.json.encode(record), timestamp=timestamp_ms
        )
        metrics.late_record(pipeline)
        log.warning(
            "pipeline %s: late record %s[%d]@%d for window [%d, %d) of %s, %d ms too late; "
            "written to %s",
            pipeline,
            topic_name,
            partition,
            offset,
            start,
            end,
            store_name,
            late_by_ms,
            topic,
            extra={
                "topic": topic_name,
                "partition": partition,
                "offset": offset,
                "consumer": pipeline,
            },
        )
        return False  # logged here already

    return report
