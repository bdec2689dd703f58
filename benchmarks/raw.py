"""Raw confluent-kafka baselines, run in a child process (``python -m benchmarks.raw``)
so that nothing of kes shares their process: an idempotent acks=all producer sending
kes's exact record bytes, and one-record transactions, plain and fenced as kes fences.

Start-up is excluded as it is for kes: the producer is created, has its producer id and
the topic's metadata, and has delivered one record before a clock starts. Every
delivery error is counted (``delivery.report.only.error``: no per-record callback cost
on success) and returned; the harness fails a run that had any.
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from benchmarks.child import Child, serve
from benchmarks.common import latency_ms
from benchmarks.harness import DURABILITY, Bench
from kes.envelope import NewEvent, encode, headers, to_envelope


def payload_of(size: int) -> dict[str, Any]:
    """A payload whose JSON is about ``size`` bytes."""
    return {"userId": "u", "data": "x" * max(0, size - 24)}


def kes_record(size: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers kes writes for one event with a ``size``-byte payload."""
    env = to_envelope(
        "Bench", "agg-000001", 1, NewEvent(event_type="Written", payload=payload_of(size))
    )
    return encode(env), headers(env)


class RawBaseline:
    """The harness's handle on the child (one per workload, reused by every run)."""

    def __init__(self, bench: Bench) -> None:
        self.child = Child("benchmarks.raw", "--bootstrap", bench.bootstrap)

    def produce(self, topic: str, size: int, seconds: float) -> dict[str, Any]:
        """records/s for ``seconds`` (then flushed), with the delivery errors seen."""
        return self.child.call(op="produce", topic=topic, size=size, seconds=seconds)

    def transactions(
        self, topic: str, size: int, seconds: float, fenced_by: str | None = None
    ) -> dict[str, Any]:
        """Latencies of one-record transactions for ``seconds``: begin, produce, commit;
        with ``fenced_by`` (a topic the child's consumer group reads) as kes commits:
        produce, flush, send_offsets_to_transaction with the group's metadata, commit."""
        return self.child.call(
            op="transactions", topic=topic, size=size, seconds=seconds, fenced_by=fenced_by
        )

    def close(self) -> None:
        self.child.close()

    def __enter__(self) -> RawBaseline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- the child ---------------------------------------------------------------------------


class _Raw:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.errors: list[str] = []
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                **DURABILITY,
                "linger.ms": 5,
                "partitioner": "murmur2_random",
                "delivery.report.only.error": True,
                "on_delivery": self._delivered,
                "error_cb": self._error,
            }
        )
        self.warm: set[str] = set()
        self.txn: Producer | None = None
        self.groups: dict[str, tuple[Consumer, int]] = {}

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(err.name())

    def _error(self, err: KafkaError) -> None:
        self.errors.append(f"client: {err.name()}")

    def produce(self, topic: str, size: int, seconds: float) -> dict[str, Any]:
        value, hs = kes_record(size)
        p = self.producer
        if topic not in self.warm:  # metadata, producer id, connection: not timed
            p.produce(topic, value=value, key="warm-up", headers=hs)
            if p.flush(30):
                raise RuntimeError(f"warm-up record to {topic} not acknowledged in 30 s")
            self.warm.add(topic)
        self.errors = []
        n = 0
        started = time.perf_counter()
        stop_at = started + seconds
        while True:
            if n % 1000 == 0 and time.perf_counter() >= stop_at:
                break
            try:
                p.produce(topic, value=value, key=f"agg-{n % 10_000}", headers=hs)
                n += 1
            except BufferError:
                p.poll(0.005)
            if n % 100 == 0:
                p.poll(0)
        unflushed = p.flush(120)
        elapsed = time.perf_counter() - started
        return {
            "records": n,
            "seconds": elapsed,
            "rate": (n - unflushed) / elapsed,
            "errors": len(self.errors) + unflushed,
            "error_names": sorted(set(self.errors))[:5],
        }

    def _txn_producer(self) -> Producer:
        if self.txn is None:
            self.txn = Producer(
                {
                    "bootstrap.servers": self.bootstrap,
                    **DURABILITY,
                    "transactional.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
                    "transaction.timeout.ms": 10_000,
                    "linger.ms": 0,
                }
            )
            self.txn.init_transactions(30)
        return self.txn

    def _member(self, topic: str) -> tuple[Consumer, int]:
        """A consumer-group member reading ``topic`` (joined: it has an assignment), and
        one of its partitions."""
        if topic not in self.groups:
            consumer = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": f"bench-raw-fence-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "partition.assignment.strategy": "cooperative-sticky",
                }
            )
            consumer.subscribe([topic])
            deadline = time.monotonic() + 60
            while not consumer.assignment():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no assignment of {topic} within 60 s")
                consumer.poll(0.1)
            self.groups[topic] = (consumer, consumer.assignment()[0].partition)
        return self.groups[topic]

    def transactions(
        self, topic: str, size: int, seconds: float, fenced_by: str | None
    ) -> dict[str, Any]:
        value, hs = kes_record(size)
        producer = self._txn_producer()
        member = self._member(fenced_by) if fenced_by else None
        partition = member[1] if member else 0
        offset = 0

        def one() -> None:
            nonlocal offset
            producer.begin_transaction()
            producer.produce(topic, value=value, key="agg-1", headers=hs, partition=partition)
            if member is not None:
                consumer, p = member
                if producer.flush(10):
                    raise RuntimeError("record not acknowledged in 10 s")
                offset += 1
                producer.send_offsets_to_transaction(
                    [TopicPartition(fenced_by, p, offset)], consumer.consumer_group_metadata(), 10
                )
            producer.commit_transaction(10)

        for _ in range(3):  # warm-up: coordinator lookups, partitions added once
            one()
        latencies: list[float] = []
        stop_at = time.perf_counter() + seconds
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            one()
            latencies.append(time.perf_counter() - t)
            if member is not None:
                member[0].poll(0)
        return {"latency_ms": latency_ms(latencies), "transactions": len(latencies)}

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        if cmd["op"] == "produce":
            return self.produce(cmd["topic"], cmd["size"], cmd["seconds"])
        if cmd["op"] == "transactions":
            return self.transactions(cmd["topic"], cmd["size"], cmd["seconds"], cmd["fenced_by"])
        raise ValueError(f"unknown op {cmd['op']!r}")


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.raw")
    ap.add_argument("--bootstrap", required=True)
    args = ap.parse_args()
    raw = _Raw(args.bootstrap)
    serve(raw.handle, {"bootstrap": args.bootstrap})


if __name__ == "__main__":
    main()
