"""Reading a backlog in the order it was appended, across partitions.

A Kafka consumer hands over what each fetch brought, partition after partition. Live,
that is about the order events happen. On a backlog it is not: a pipeline started on
history reads partition 0's history, then partition 1's, ..., so after a re-keying
event time jumps back by up to the backlog's whole span, and windows report most of
it late. :class:`AppendOrderBuffer` makes the consumer hand over records merged by
their Kafka timestamps (when kes appended them; for Quix's own topics, the event time
it wrote them with), waiting for each partition's next record unless the partition is
read to its end: the order a pipeline running all along would have seen.

Quix Streams already merges partitions this way for joins, but only partitions with
the same number; this buffer merges all of them. It replaces Quix's buffer in place
(``Application._consumer._buffer``, a private attribute: kes pins Quix 3.x, and
``tests/test_streams_backlog.py`` fails if that changes).
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter
from typing import Any

from confluent_kafka import TopicPartition
from quixstreams import Application
from quixstreams.internal_consumer.buffering import (
    Idleness,
    InternalConsumerBuffer,
    PartitionBuffer,
)

_next_timestamp = attrgetter("next_timestamp")


class AppendOrderBuffer(InternalConsumerBuffer):
    """Quix's consumer buffer, with every assigned partition in one group: ``pop`` gives
    the record with the smallest timestamp among the partitions' next records."""

    def __init__(self, max_partition_buffer_size: int = 10000) -> None:
        super().__init__(max_partition_buffer_size=max_partition_buffer_size)
        self._buffers: dict[tuple[str, int], PartitionBuffer] = {}

    def assign_partitions(self, topic_partitions: list[TopicPartition]) -> None:
        for tp in sorted(topic_partitions, key=lambda t: (t.topic, t.partition)):
            key = (tp.topic, tp.partition)
            if key not in self._buffers:
                self._buffers[key] = PartitionBuffer(
                    partition=tp.partition, topic=tp.topic, max_size=self._max_partition_buffer_size
                )

    def revoke_partitions(self, topic_partitions: list[TopicPartition]) -> None:
        for tp in topic_partitions:
            self._buffers.pop((tp.topic, tp.partition), None)

    def feed(
        self,
        messages: Iterable[Any],
        high_watermarks: dict[tuple[str, int], int],
        positions: dict[tuple[str, int], int] | None = None,
    ) -> None:
        buffers = self._buffers
        for message in messages:
            buffers[(message.topic(), message.partition())].append(message=message)
        for key, offset in high_watermarks.items():
            if key in buffers:
                buffers[key].set_high_watermark(offset)
        for key, offset in (positions or {}).items():
            if key in buffers:
                buffers[key].set_position(offset)

    def pop(self) -> Any:
        buffers = self._buffers.values()
        if not buffers:
            return None
        if len(buffers) > 1:
            for buffer in buffers:
                # Its next record may be older than every buffered one: wait for it.
                if buffer.empty() and buffer.idleness() != Idleness.IDLE:
                    return None
        return min(buffers, key=_next_timestamp).popleft()

    def pause_full(self) -> list[tuple[str, int]]:
        if len(self._buffers) == 1:
            return []
        paused = []
        for buffer in self._buffers.values():
            if not buffer.paused and buffer.full() and buffer.idleness() == Idleness.ACTIVE:
                buffer.pause()  # type: ignore[no-untyped-call]
                paused.append((buffer.topic, buffer.partition))
        return paused

    def resume_empty(self) -> list[tuple[str, int]]:
        resumed = []
        for buffer in self._buffers.values():
            if buffer.paused and (buffer.idleness() != Idleness.ACTIVE or not buffer.full()):
                buffer.resume()  # type: ignore[no-untyped-call]
                resumed.append((buffer.topic, buffer.partition))
        return resumed

    def clear(self, topic: str, partition: int) -> None:
        buffer = self._buffers.get((topic, partition))
        if buffer is not None:
            buffer.clear()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._buffers.clear()


def read_in_append_order(app: Application) -> None:
    """Make ``app`` (not yet running) read its partitions merged in append order."""
    app._consumer._buffer = AppendOrderBuffer(app._config.max_partition_buffer_size)
    app._dataframe_registry.require_time_alignment()  # type: ignore[no-untyped-call]
