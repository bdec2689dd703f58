"""Helpers for fault tests: run writer processes, read the log with a plain consumer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from kes.store.kafka import KafkaConfig


@dataclass
class Outcomes:
    ok: list[dict[str, Any]] = field(default_factory=list)
    conflict: list[dict[str, Any]] = field(default_factory=list)
    error: list[dict[str, Any]] = field(default_factory=list)


def spawn_appender(
    config: KafkaConfig,
    out: Path,
    *,
    seconds: float,
    threads: int = 8,
    aggregates: int = 50,
    ready: Path | None = None,
    own_only: bool = False,
    index_dir: str | None = None,
    type_: str = "Race",
) -> subprocess.Popen[bytes]:
    fields = asdict(config)
    fields["member_name"] = f"appender-{uuid.uuid4().hex[:6]}"
    if index_dir is not None:
        fields["index_dir"] = index_dir
    cmd = [
        sys.executable,
        "-m",
        "tests.workers.appender",
        "--config",
        json.dumps(fields),
        "--seconds",
        str(seconds),
        "--threads",
        str(threads),
        "--aggregates",
        str(aggregates),
        "--out",
        str(out),
        "--type",
        type_,
    ]
    if ready is not None:
        cmd += ["--ready", str(ready)]
    if own_only:
        cmd.append("--own-only")
    root = Path(__file__).resolve().parent.parent
    return subprocess.Popen(cmd, cwd=root)


def wait_for(path: Path, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        time.sleep(0.1)
    raise TimeoutError(f"{path} did not appear within {timeout}s")


def outcomes(*paths: Path) -> Outcomes:
    result = Outcomes()
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line a kill -9 cut short
            getattr(result, row["outcome"]).append(row)
    return result


def read_log(bootstrap_servers: str, topic: str, partitions: int) -> list[dict[str, Any]]:
    """Every committed record of ``topic``, in offset order per partition, with a plain
    read_committed consumer (no kes code involved)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": uuid.uuid4().hex,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records: list[dict[str, Any]] = []
    done: set[int] = set()
    deadline = time.monotonic() + 120
    while len(done) < partitions and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                done.add(msg.partition())
            continue
        env = json.loads(msg.value())
        env["_partition"], env["_offset"] = msg.partition(), msg.offset()
        env["_key"] = msg.key().decode()
        records.append(env)
    consumer.close()
    assert len(done) == partitions, "could not read every partition to its end"
    return records


def check_streams(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Assert every aggregate's versions are exactly 1..n in log order; return the streams."""
    streams: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r["_partition"], r["_offset"])):
        assert r["_key"] == r["aggregateId"]
        streams[r["aggregateId"]].append(r)
    for agg, events in streams.items():
        versions = [e["version"] for e in events]
        assert versions == list(range(1, len(events) + 1)), f"{agg}: versions {versions}"
        assert len({e["_partition"] for e in events}) == 1
    return streams


def check_acknowledged(
    records: list[dict[str, Any]], result: Outcomes
) -> dict[str, dict[str, Any]]:
    """Every acknowledged append is in the log at its version; no refused one is."""
    by_id = {r["eventId"]: r for r in records}
    assert len(by_id) == len(records), "an event id appears twice in the log"
    for ok in result.ok:
        got = by_id.get(ok["id"])
        assert got is not None, f"acknowledged append lost: {ok}"
        assert got["version"] == ok["version"] and got["aggregateId"] == ok["agg"]
    for refused in result.conflict:
        assert refused["id"] not in by_id, f"refused append was written: {refused}"
    return by_id
