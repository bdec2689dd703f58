"""Operator views and actions on projections: load one by name, status (positions and
lag per partition), rewind for a replay, run several processes."""

from __future__ import annotations

import dataclasses
import importlib
import multiprocessing
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from kes.errors import KesError, StoreUnavailableError
from kes.projections.checkpoints import CheckpointStore, open_checkpoints
from kes.projections.errors import ProjectionError
from kes.projections.projection import KafkaProcessor, Projection, SqlProjection
from kes.projections.runner import ProjectionRunner, database_url
from kes.store.kafka.config import KafkaConfig
from kes.store.kafka.topics import Topics


def load_projection(spec: str) -> type[Projection]:
    """``package.module:ClassName`` to the class (the current directory is importable)."""
    cls = import_attribute(spec, "examples.users.read_models:UserDirectory", ProjectionError)
    if not (isinstance(cls, type) and issubclass(cls, Projection)):
        raise ProjectionError(f"{spec!r}: {cls!r} is not a Projection subclass.")
    return cls


def import_attribute(spec: str, example: str, error: type[KesError]) -> Any:
    """``package.module:name`` to that object (the current directory is importable);
    ``error`` names what is wrong, with ``example`` as what to write."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise error(f"{spec!r} is not MODULE:NAME; write e.g. {example}.")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"cannot import {module_name!r} (from {spec!r}): {exc}") from exc
    if not hasattr(module, attr):
        raise error(f"{spec!r}: module {module_name} has no {attr!r}.")
    return getattr(module, attr)


# ---- several processes ------------------------------------------------------------------


def _run_child(spec: str, fields: dict[str, Any], database: str | None, index: int) -> None:
    fields = dict(fields, member_name=f"{fields['member_name']}-{index}")
    runner = ProjectionRunner(load_projection(spec)(), KafkaConfig(**fields), database=database)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    signal.signal(signal.SIGINT, lambda *_: runner.stop())
    runner.run()


def run_processes(spec: str, config: KafkaConfig, processes: int, database: str | None) -> int:
    """Run ``processes`` members of the projection's group; returns the worst exit code."""
    fields = dataclasses.asdict(config)
    fields.pop("logger", None)
    return run_members(
        _run_child, [(spec, fields, database, i) for i in range(processes)], "kes-project"
    )


def run_members(target: Callable[..., None], args: list[tuple[Any, ...]], name: str) -> int:
    """Run ``target(*a)`` for each ``a`` of ``args`` in its own (spawned) process until all
    end; SIGTERM/SIGINT are passed on to them. Returns the worst exit code."""
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=target, args=a, name=f"{name}-{i}") for i, a in enumerate(args)]
    for c in children:
        c.start()

    def forward(signum: int, _frame: Any) -> None:
        for c in children:
            if c.pid is not None and c.is_alive():
                c.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for c in children:
        c.join()
    return max(abs(c.exitcode or 0) for c in children)


# ---- status --------------------------------------------------------------------------------


@dataclass
class PartitionStatus:
    topic: str
    partition: int
    committed: int | None  # next offset to read, per the group (or the database)
    end: int  # high watermark
    lag: int  # records still to read (from the earliest one when there is no position)
    owner: str | None


@dataclass
class GroupStatus:
    group: str
    state: str
    members: int
    source: str  # "kafka" or the database URL the positions came from
    partitions: list[PartitionStatus]

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["total_lag"] = self.total_lag
        return d


def group_status(
    config: KafkaConfig,
    group: str,
    aggregate_types: list[str] | None = None,
    database: str | None = None,
) -> GroupStatus:
    """Positions and lag per partition of a projection's group.

    With ``database`` the positions are those in its ``kes_offsets`` table (the truth
    for a SqlProjection); otherwise the group's committed offsets in Kafka.
    """
    admin = AdminClient(config.base())
    try:
        desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
        state, members = str(desc.state).split(".")[-1], desc.members
        owners = {
            (tp.topic, tp.partition): m.client_id
            for m in members
            for tp in (m.assignment.topic_partitions if m.assignment else [])
        }
        listed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
        offsets = listed[group].result(timeout=10).topic_partitions or []
    except KafkaException as exc:
        raise StoreUnavailableError(
            f"cannot describe group {group!r} at {config.bootstrap_servers}: {exc}"
        ) from exc
    committed = {(tp.topic, tp.partition): tp.offset for tp in offsets if tp.offset >= 0}
    source = "kafka"
    if database is not None:
        store = open_checkpoints(database)
        try:
            with store.transaction() as tx:
                committed = store.load(tx, group)
        finally:
            store.close()
        source = store.url
    topics = {t for t, _ in committed}
    if aggregate_types:
        topics |= {config.topic(t) for t in aggregate_types}
    rows: list[PartitionStatus] = []
    admin_topics = Topics(config)
    consumer = Consumer(config.reader())
    try:
        for topic in sorted(topics):
            info = admin_topics.describe(topic)
            if info is None:
                continue
            for p in range(info.partitions):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=10, cached=False
                )
                pos = committed.get((topic, p))
                # No position yet: the group starts at the earliest record, all is to read.
                lag = max(0, high - (low if pos is None else pos))
                rows.append(PartitionStatus(topic, p, pos, high, lag, owners.get((topic, p))))
    finally:
        consumer.close()
    _discount_markers(config, rows)
    return GroupStatus(group, state, len(members), source, rows)


def _discount_markers(config: KafkaConfig, rows: list[PartitionStatus], wait_s: float = 5) -> None:
    """Commit markers occupy offsets: a position just before a marker has nothing left to
    read, though the high watermark is past it. Look: if the next committed record is
    further on (or there is none), the lag is counted from it."""
    lagging = {(r.topic, r.partition): r for r in rows if r.lag}
    if not lagging:
        return
    consumer = Consumer(config.reader())
    try:
        # Each row's lag counts from where the group reads next (its position, or the
        # earliest record when it has none).
        consumer.assign([TopicPartition(t, p, r.end - r.lag) for (t, p), r in lagging.items()])
        open_ = set(lagging)
        deadline = time.monotonic() + wait_s
        while open_ and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            key = (msg.topic(), msg.partition())
            if key not in open_:
                continue
            open_.discard(key)
            r = lagging[key]
            err = msg.error()
            if err is not None and err.code() == KafkaError._PARTITION_EOF:
                r.lag = 0
            elif err is None:
                r.lag = max(0, r.end - msg.offset())
    finally:
        consumer.close()


# ---- replay ---------------------------------------------------------------------------------


def start_offsets(
    config: KafkaConfig, topics: list[str], from_time: datetime | None
) -> dict[tuple[str, int], tuple[int, int]]:
    """Per partition: (offset to start from, high watermark now)."""
    consumer = Consumer(config.reader())
    admin = Topics(config)
    out: dict[tuple[str, int], tuple[int, int]] = {}
    try:
        for topic in topics:
            info = admin.describe(topic)
            if info is None:
                continue
            for p in range(info.partitions):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=10, cached=False
                )
                out[(topic, p)] = (low, high)
            if from_time is not None:
                ms = int(from_time.timestamp() * 1000)
                tps = [TopicPartition(topic, p, ms) for p in range(info.partitions)]
                for tp in consumer.offsets_for_times(tps, timeout=10):
                    high = out[(topic, tp.partition)][1]
                    out[(topic, tp.partition)] = (high if tp.offset < 0 else tp.offset, high)
    finally:
        consumer.close()
    return out


def rewind(
    projection: Projection,
    config: KafkaConfig,
    offsets: dict[tuple[str, int], int],
    database: str | None = None,
) -> CheckpointStore | None:
    """Make the projection's next run start at ``offsets`` (and, for a SqlProjection,
    from an empty read model). Refused while members of its group are running."""
    if isinstance(projection, KafkaProcessor):
        raise ProjectionError(
            f"{projection.name} is a KafkaProcessor: replaying it would produce its outputs "
            "again. Delete its output topics and its consumer group, then run it."
        )
    status = group_status(config, projection.name)
    if status.members:
        raise ProjectionError(
            f"group {projection.name!r} has {status.members} running member(s); stop them "
            "before a replay (a running member would keep or commit its own positions)."
        )
    if isinstance(projection, SqlProjection):
        store = open_checkpoints(database_url(projection, database))
        store.setup()
        with store.transaction() as tx:
            projection.setup(tx)
            projection.reset(tx)
            store.reset(tx, projection.name, offsets)
        return store
    consumer = Consumer(dict(config.base(), **{"group.id": projection.name}))
    try:
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        deadline = time.monotonic() + 30
        while True:
            try:
                consumer.commit(offsets=tps, asynchronous=False)
                break
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise ProjectionError(
                        f"cannot rewind group {projection.name!r}: {exc}. Is a member "
                        "still leaving? Try again in a few seconds."
                    ) from exc
                time.sleep(1)
    finally:
        consumer.close()
    return None
