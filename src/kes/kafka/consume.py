"""Reading Kafka to a known end: the one policy for commit markers and open transactions.

A ``read_committed`` consumer stops at a partition's *last stable offset*: below it lie
only decided records. A transaction that commits returns before its markers are written,
and one left open by a writer that died holds the LSO back until the coordinator aborts
it. So "read to the end" here always means: read until the consumer's position reaches
an offset taken beforehand (a high watermark, or one past a record known committed),
waiting while nothing arrives for at most ``wait_s`` (``KafkaConfig
.open_transaction_wait_s``: a transaction's timeout plus the broker's abort sweep). The
last offset of a partition is often a marker, never a record: compare positions, never
"last record offset + 1", with the high watermark.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from kes.errors import StoreUnavailableError
from kes.kafka.clients import offsets_client, reader
from kes.kafka.config import KafkaConfig
from kes.kafka.errors import kafka_errors
from kes.kafka.topics import Topics

__all__ = ["count_records", "drain", "end_offsets", "read_range", "scan", "watermarks"]

_JUST_CREATED = {
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
}


def drain(consumer: Consumer, max_messages: int, timeout: float) -> list[Message]:
    """Wait up to ``timeout`` for one record, then take what else is ready, without waiting.

    (``Consumer.consume(n, timeout)`` alone waits for all ``n`` or the full timeout.)
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    if max_messages <= 1:
        return [first]
    return [first, *consumer.consume(num_messages=max_messages - 1, timeout=0)]


def watermarks(
    config: KafkaConfig, topic: str, partition: int, timeout: float = 10.0, stable: bool = False
) -> tuple[int, int]:
    """(low, high) watermark of ``topic[partition]``, asked of its leader now: the high
    watermark is past every record written, committed or not (never the last stable
    offset: see ``offsets_client``).

    With ``stable`` the second is the last stable offset instead: where a read_committed
    reader starting now stops. A just-created topic, or a partition whose leader just
    moved (a broker died), may be unknown to the client for a moment: its metadata is
    refreshed and the query retried within ``timeout`` before it is called unavailable.
    """
    consumer = offsets_client(config, stable)
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition),
                timeout=max(0.5, deadline - time.monotonic()),
                cached=False,
            )
            return int(low), int(high)
        except Exception as exc:  # KafkaException
            err = exc.args[0] if exc.args else None
            code = err.code() if isinstance(err, KafkaError) else None
            if code in _JUST_CREATED and time.monotonic() < deadline:
                # This shared client follows no topic, so nothing else refreshes what it
                # knows of leaders: ask for the topic's metadata again (seen after a
                # broker crash: "Unknown partition" for as long as nobody asked).
                with contextlib.suppress(Exception):
                    consumer.list_topics(topic, timeout=max(0.5, deadline - time.monotonic()))
                time.sleep(0.1)
                continue
            with kafka_errors(f"reading the end offsets of {topic}[{partition}]"):
                raise


def end_offsets(config: KafkaConfig, topic: str, partitions: int) -> dict[int, int]:
    """Per partition, the offset a ``read_committed`` reader starting now would reach:
    the last stable offset (a ``read_committed`` consumer's ListOffsets answers it, not
    the high watermark), so no record committed later lands below it."""
    return {p: watermarks(config, topic, p, stable=True)[1] for p in range(partitions)}


def read_range(
    consumer: Consumer,
    topic: str,
    partition: int,
    start: int,
    end: int,
    wait_s: float,
) -> Iterator[Message]:
    """The committed records of ``topic[partition]`` at offsets ``start <= o < end``, in
    order, read with ``consumer`` (assigned here); returns once its position reaches
    ``end``. Raises StoreUnavailableError when nothing moves for ``wait_s``.
    """
    if end <= start:
        return
    with kafka_errors(f"reading {topic}[{partition}] from offset {start}"):
        consumer.assign([TopicPartition(topic, partition, start)])
    idle_since = time.monotonic()
    while True:
        msgs = drain(consumer, 2000, 0.2)
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise StoreUnavailableError(f"reading {topic}[{partition}]: {err.str()}")
                if msg.offset() >= end:
                    return
                continue  # at the last stable offset: markers or an open transaction
            if msg.partition() != partition or msg.topic() != topic:
                continue
            offset = msg.offset()
            if offset < start:
                continue  # fetched before the assign: not ours
            if offset >= end:
                return
            idle_since = time.monotonic()
            yield msg
            if offset == end - 1:
                return
        if msgs:
            continue
        if time.monotonic() - idle_since > wait_s:
            position = _position(consumer, topic, partition)
            raise StoreUnavailableError(
                f"reading {topic}[{partition}] stopped at offset {position} before {end} for "
                f"{wait_s:.0f}s: a transaction left open holds it back longer than a "
                "transaction can last, or the broker is unhealthy. Check the broker; retry."
            )


def _position(consumer: Consumer, topic: str, partition: int) -> int | str:
    try:
        (tp,) = consumer.position([TopicPartition(topic, partition)])
        return int(tp.offset)
    except Exception:  # only for the message
        return "?"


def count_records(config: KafkaConfig, topic: str) -> int:
    """The committed records of ``topic`` (0 when it does not exist), counted by reading
    it: end offsets would count commit markers too. For small topics (dead letters)."""
    info = Topics(config).describe(topic)
    if info is None:
        return 0
    consumer = reader(config)
    try:
        count = 0
        for p in range(info.partitions):
            low, high = watermarks(config, topic, p)
            wait_s = config.open_transaction_wait_s
            count += sum(1 for _ in read_range(consumer, topic, p, low, high, wait_s))
        return count
    finally:
        consumer.close()


def scan(
    config: KafkaConfig,
    topic: str,
    partitions: int,
    from_positions: Mapping[int, int] | None = None,
    follow: bool = False,
    stop: threading.Event | None = None,
    only: set[int] | None = None,
) -> Iterator[Message]:
    """Every committed record of ``topic`` from the given offsets (default: the start).

    Without ``follow`` it ends when each partition's position reaches the high watermark
    it had when called (see the module's policy); with ``follow`` it goes on until
    ``stop`` is set. ``only`` limits it to some partitions.
    """
    consumer = reader(config)
    try:
        starts = from_positions or {}
        wanted = [p for p in range(partitions) if only is None or p in only]
        tps = [TopicPartition(topic, p, starts.get(p, OFFSET_BEGINNING)) for p in wanted]
        ends: dict[int, int] = {}
        if not follow:
            for tp in tps:
                low, high = watermarks(config, topic, tp.partition)
                ends[tp.partition] = high
                if tp.offset < 0:
                    tp.offset = low
            tps = [tp for tp in tps if ends[tp.partition] > tp.offset]
            if not tps:
                return
        with kafka_errors(f"reading {topic}"):
            consumer.assign(tps)
        open_parts = {tp.partition for tp in tps}
        idle_since = time.monotonic()
        wait_s = config.open_transaction_wait_s
        while open_parts or follow:
            if stop is not None and stop.is_set():
                return
            msgs = drain(consumer, 500, 0.2)
            for msg in msgs:
                err = msg.error()
                p = msg.partition()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise StoreUnavailableError(f"reading {topic}[{p}]: {err.str()}")
                    if not follow and msg.offset() >= ends.get(p, 0):
                        open_parts.discard(p)
                    continue
                if not follow:
                    if p not in open_parts:
                        continue
                    if msg.offset() >= ends[p] - 1:
                        open_parts.discard(p)
                        if msg.offset() >= ends[p]:
                            continue
                idle_since = time.monotonic()
                yield msg
            if msgs or follow:
                idle_since = time.monotonic() if follow else idle_since
                continue
            if time.monotonic() - idle_since > wait_s:
                raise StoreUnavailableError(
                    f"reading {topic} to its end: partitions {sorted(open_parts)} did not "
                    f"reach their end for {wait_s:.0f}s (a transaction left open, or an "
                    "unhealthy broker). Retry."
                )
    finally:
        consumer.close()
