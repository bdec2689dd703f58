"""The writer processes of v2: one transaction spans partitions, and writers restarted one
at a time under load fail no append. Checked with a plain read_committed consumer."""

from __future__ import annotations

import dataclasses
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kes import NewEvent
from kes.kafka.consume import watermarks
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.faults import (
    check_acknowledged,
    check_streams,
    outcomes,
    read_log,
    read_topic,
    spawn_appender,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_one_transaction_carries_appends_of_many_partitions(kafka_config: KafkaConfig) -> None:
    """64 callers, one event each per append, 12 partitions: the writer's transactions each
    cover several partitions, so the log holds far fewer commit markers than appends.
    Markers are counted from offset gaps: every offset of a partition that holds no
    record is a transaction marker (kes is the only writer)."""
    config = dataclasses.replace(kafka_config, partitions=12)
    callers, each = 64, 30
    errors: list[BaseException] = []
    with KafkaEventStore(config) as store:
        store.owned_partitions("Span")

        def call(i: int) -> None:
            try:
                for n in range(each):
                    store.append("Span", f"s{i}-{n}", [NewEvent(event_type="E", payload={})], 0)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        stats = store.writer.stats
    assert not errors, errors[:3]
    topic = config.topic("Span")
    records = read_topic(config.bootstrap_servers, topic)
    appends = callers * each
    assert len(records) == appends
    ends = [watermarks(config, topic, p)[1] for p in range(config.partitions)]
    markers = sum(ends) - len(records)
    per_transaction = stats.partitions_written / stats.transactions
    print(
        f"\n{appends} appends, {stats.transactions} transactions covering "
        f"{per_transaction:.1f} partitions each, {markers} commit markers in the log"
    )
    assert stats.aborted == 0
    assert markers == stats.partitions_written  # the log agrees with the writer's count
    assert markers * 2 < appends, "about one marker per append: transactions do not batch"
    assert per_transaction > 3, "transactions do not span partitions"


def test_writers_restarted_one_at_a_time_under_load_fail_no_append(
    kafka_config: KafkaConfig, tmp_path: Path
) -> None:
    """Three writer processes with static membership (KES_INSTANCE_ID) and a client
    process (role client: everything forwarded) appending all along. Each writer is
    stopped (SIGTERM) and started again in turn: no append fails anywhere, every
    acknowledged one is in the log, streams stay gapless."""

    def writer(i: int, generation: int) -> subprocess.Popen[bytes]:
        config = dataclasses.replace(kafka_config, instance_id=f"w{i}")
        return spawn_appender(
            config,
            tmp_path / f"w{i}.jsonl",
            seconds=120,
            threads=2,
            ready=tmp_path / f"w{i}-{generation}.ready",
            index_dir=str(tmp_path / f"idx{i}"),
        )

    writers = {i: writer(i, 0) for i in range(3)}
    for i in range(3):
        wait_for(tmp_path / f"w{i}-0.ready", timeout=120)
    client_out = tmp_path / "client.jsonl"
    client = spawn_appender(
        dataclasses.replace(kafka_config, role="client"),
        client_out,
        seconds=120,
        threads=8,
        ready=tmp_path / "client.ready",
    )
    wait_for(tmp_path / "client.ready")
    time.sleep(4)
    restarts = []
    for i in range(3):
        started = time.time()
        writers[i].send_signal(signal.SIGTERM)
        assert writers[i].wait(timeout=60) == 0
        writers[i] = writer(i, 1)
        wait_for(tmp_path / f"w{i}-1.ready", timeout=120)
        restarts.append(time.time() - started)
        time.sleep(4)
    for p in [client, *writers.values()]:
        p.send_signal(signal.SIGTERM)
    assert client.wait(timeout=60) == 0
    for p in writers.values():
        assert p.wait(timeout=60) == 0

    outs = [client_out, *(tmp_path / f"w{i}.jsonl" for i in range(3))]
    result = outcomes(*outs)
    records = read_log(
        kafka_config.bootstrap_servers, kafka_config.topic("Race"), kafka_config.partitions
    )
    check_streams(records)
    check_acknowledged(records, result)
    client_ok = outcomes(client_out).ok
    latencies = sorted(r["t1"] - r["t0"] for r in client_ok)
    print(
        f"\nrolling restart ({', '.join(f'{s:.1f}s' for s in restarts)} per writer): client "
        f"{len(client_ok)} acknowledged, p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99.9 {latencies[int(len(latencies) * 0.999)] * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms; {len(result.error)} errors"
    )
    assert not result.error, f"appends failed during the restarts: {result.error[:3]}"
    assert len(client_ok) > 200, "the client hardly appended"


def test_a_client_reads_streams_while_no_writer_runs(kafka_config: KafkaConfig) -> None:
    """A process that owns nothing (role client) still reads when no writer is up: it
    falls back to reading the aggregate's partition itself."""
    with KafkaEventStore(kafka_config) as writer:
        for i in range(5):
            writer.append("Race", "a1", [NewEvent(event_type="E", payload={"n": i})], i)
    client_config = dataclasses.replace(kafka_config, role="client", request_timeout_s=10)
    with KafkaEventStore(client_config) as client:
        started = time.monotonic()
        assert client.stream_version("Race", "a1") == 5
        assert [e.payload["n"] for e in client.read_stream("Race", "a1", 2, 4)] == [1, 2, 3]
        assert client.read_stream("Race", "nobody") == []
        took = time.monotonic() - started
        assert client.member("Race").owned_partitions() == []  # it never became a writer
    print(f"\nreads without a writer answered in {took:.1f}s (owner wait 5 s each)")
