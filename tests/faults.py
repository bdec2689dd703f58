"""Helpers for fault tests: run writer processes, read the log with a plain consumer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from kes import NewEvent, TransientError
from kes.store.kafka import KafkaConfig, KafkaEventStore


@dataclass
class Outcomes:
    ok: list[dict[str, Any]] = field(default_factory=list)
    conflict: list[dict[str, Any]] = field(default_factory=list)
    error: list[dict[str, Any]] = field(default_factory=list)
    started: list[dict[str, Any]] = field(default_factory=list)  # each append, before it

    def in_flight(self) -> list[dict[str, Any]]:
        """Appends started that never got an outcome: in flight when the process died."""
        ended = {r["id"] for r in self.ok + self.conflict + self.error}
        return [r for r in self.started if r["id"] not in ended]


def append_surely(
    store: KafkaEventStore, type_: str, aggregate_id: str, event: NewEvent, expected: Any
) -> int:
    """Append one event, retrying a transient failure with the same event (a repeat
    writes nothing) for up to two minutes, as an application rides out a broker outage.
    Returns the stream's new version."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return store.append(type_, aggregate_id, [event], expected).version
        except TransientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


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
    pause_in_commit: Path | None = None,
) -> subprocess.Popen[bytes]:
    fields, env = worker_args(config)
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
    if pause_in_commit is not None:
        cmd += ["--pause-in-commit", str(pause_in_commit)]
    root = Path(__file__).resolve().parent.parent
    return subprocess.Popen(cmd, cwd=root, env=env)


def worker_args(config: KafkaConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """A worker process's KafkaConfig fields (for its command line) and environment: the
    security settings travel in the environment as KES_KAFKA_*, never on a command line
    (``ps`` shows it). Workers read them back with :func:`client_from_env`."""
    fields = asdict(config)
    client = fields.pop("client")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KES_KAFKA_")}
    env.update({f"KES_KAFKA_{k.upper().replace('.', '_')}": str(v) for k, v in client.items()})
    return fields, env


def client_from_env() -> dict[str, Any]:
    return {
        k[len("KES_KAFKA_") :].lower().replace("_", "."): v
        for k, v in os.environ.items()
        if k.startswith("KES_KAFKA_")
    }


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
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                # Only the last line can be one a kill -9 cut short; any other unreadable
                # line would silently drop an acknowledgement from the checks.
                assert n == len(lines), f"{path}:{n} is not a JSON line: {line[:80]!r}"
                continue
            getattr(result, row["outcome"]).append(row)
    return result


@dataclass
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    def json(self) -> dict[str, Any]:
        assert self.value is not None
        result: dict[str, Any] = json.loads(self.value)
        return result


def read_topic(
    bootstrap: str,
    topic: str,
    partitions: int | None = None,
    seconds: float = 60,
    conf: dict[str, Any] | None = None,
) -> list[Record]:
    """Every committed record of ``topic`` (its first ``partitions``, default all), in offset
    order per partition, by a plain read_committed consumer (no kes code involved);
    ``conf``: security settings (a secured cluster's admin)."""
    consumer = Consumer(
        {
            **(conf or {}),
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            return []
        count = len(meta.partitions) if partitions is None else partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in range(count)])
        out: list[Record] = []
        done: set[int] = set()
        deadline = time.monotonic() + seconds
        while len(done) < count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    done.add(msg.partition())
                continue
            headers = {k: v for k, v in (msg.headers() or [])}
            out.append(Record(msg.partition(), msg.offset(), msg.key(), msg.value(), headers))
        assert len(done) == count, f"could not read every partition of {topic} to its end"
        return out
    finally:
        consumer.close()


def read_log(
    bootstrap_servers: str, topic: str, partitions: int, conf: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The envelopes of ``topic`` as dicts, with ``_partition``, ``_offset`` and ``_key``."""
    records = read_topic(bootstrap_servers, topic, partitions, seconds=120, conf=conf)
    assert all(r.key is not None for r in records), f"a record of {topic} has no key"
    return [
        {
            **r.json(),
            "_partition": r.partition,
            "_offset": r.offset,
            "_key": (r.key or b"").decode(),
        }
        for r in records
    ]


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
        got = by_id.get(refused["id"])
        assert got is None, (
            f"refused append was written: {refused}; in the log: version {got['version']} "
            f"at [{got['_partition']}]@{got['_offset']}, payload {got['payload']}"
        )
    return by_id
