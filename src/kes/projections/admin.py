"""Operator views and actions on projections: load one by name, status (positions and
lag per partition), rewind for a replay, run several processes."""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)

from kes import logs, metrics
from kes.errors import StoreUnavailableError
from kes.kafka.clients import plain_consumer, reader
from kes.kafka.config import KafkaConfig
from kes.kafka.consume import read_range, watermarks
from kes.kafka.errors import kafka_errors
from kes.kafka.topics import Topics
from kes.processes import Supervision, import_attribute, run_members
from kes.projections._aio import resolve
from kes.projections.checkpoints import CheckpointStore, open_checkpoints
from kes.projections.derived import event_type_topics
from kes.projections.errors import ProjectionError
from kes.projections.projection import KafkaProcessor, Projection, SqlProjection
from kes.projections.runner import ProjectionRunner, database_url


def load_projection(spec: str) -> type[Projection]:
    """``package.module:ClassName`` to the class (the current directory is importable)."""
    cls = import_attribute(spec, "examples.users.read_models:UserDirectory", ProjectionError)
    if not (isinstance(cls, type) and issubclass(cls, Projection)):
        raise ProjectionError(f"{spec!r}: {cls!r} is not a Projection subclass.")
    return cls


# ---- several processes ------------------------------------------------------------------


def projection_for(spec: str | tuple[str, ...]) -> type[Projection]:
    """The projection a member runs: ``MODULE:CLASS``, or the aggregate types whose
    per-event-type topics it derives (``kes project derive``)."""
    return load_projection(spec) if isinstance(spec, str) else event_type_topics(*spec)


def _run_child(
    spec: str | tuple[str, ...],
    fields: dict[str, Any],
    database: str | None,
    index: int,
    metrics_port: int | None,
    heartbeat: Callable[[], None],
) -> None:
    logs.configure()
    if metrics_port is not None:
        metrics.serve(metrics_port + index)
    fields = dict(fields, member_name=f"{fields['member_name']}-{index}")
    runner = ProjectionRunner(
        projection_for(spec)(), KafkaConfig(**fields), database=database, heartbeat=heartbeat
    )
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    signal.signal(signal.SIGINT, lambda *_: runner.stop())
    runner.run()


def run_processes(
    spec: str | tuple[str, ...],
    config: KafkaConfig,
    processes: int,
    database: str | None,
    metrics_port: int | None = None,
    supervision: Supervision | None = None,
) -> int:
    """Run ``processes`` supervised members of the projection's group (member ``i``
    serves its metrics on ``metrics_port + i``); returns the worst exit code."""
    projection_for(spec)  # fail here, once, rather than in every member
    fields = dataclasses.asdict(config)
    fields.pop("logger", None)
    args = [(spec, fields, database, i, metrics_port) for i in range(processes)]
    return run_members(_run_child, args, "kes-project", supervision)


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
    must_exist: bool = True,
    checkpoint_name: str | None = None,
) -> GroupStatus:
    """Positions and lag per partition of a consumer group.

    With ``database`` the positions are those its ``kes_offsets`` table holds for
    ``checkpoint_name`` (the projection's name; the truth for a SqlProjection);
    otherwise the group's committed offsets in Kafka. A group with no member and no
    position is an error (a wrong name) unless not ``must_exist``.
    """
    admin = Topics(config).admin
    with kafka_errors(f"describing consumer group {group!r}"):
        desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
        listed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
        offsets = listed[group].result(timeout=10).topic_partitions or []
    state, members = str(desc.state).split(".")[-1], desc.members
    owners = {
        (tp.topic, tp.partition): m.client_id
        for m in members
        for tp in (m.assignment.topic_partitions if m.assignment else [])
    }
    committed = {(tp.topic, tp.partition): tp.offset for tp in offsets if tp.offset >= 0}
    if must_exist and not members and not committed and database is None:
        raise ProjectionError(_no_group(config, admin, group))
    source = "kafka"
    if database is not None:
        name = checkpoint_name or group
        stored, known, source = _stored_offsets(database, name)
        if must_exist and not stored and not members and not committed:
            hint = f" Projections with offsets there: {', '.join(known)}." if known else ""
            raise ProjectionError(
                f"projection {name!r} has no offsets in {source} and its consumer group "
                f"{group!r} no member and no position: a wrong name or database?{hint}"
            )
        committed = stored
    topics = {t for t, _ in committed}
    if aggregate_types:
        topics |= {config.topic(t) for t in aggregate_types}
    rows: list[PartitionStatus] = []
    admin_topics = Topics(config)
    consumer = reader(config)
    try:
        for topic in sorted(topics):
            info = admin_topics.describe(topic)
            if info is None:
                continue
            for p in range(info.partitions):
                low, high = watermarks(config, topic, p)
                pos = committed.get((topic, p))
                # No position yet: the group starts at the earliest record, all is to read.
                start = low if pos is None else max(pos, low)
                lag = max(0, high - start)
                if lag:
                    lag = _records_between(consumer, topic, p, start, high)
                rows.append(PartitionStatus(topic, p, pos, high, lag, owners.get((topic, p))))
    finally:
        consumer.close()
    return GroupStatus(group, state, len(members), source, rows)


def _stored_offsets(database: str, name: str) -> tuple[dict[tuple[str, int], int], list[str], str]:
    """The offsets ``database`` holds for projection ``name``, every name it holds offsets
    of, and its URL."""
    store = open_checkpoints(database)
    try:
        with store.transaction() as tx:
            try:
                return store.load(tx, name), store.projections(tx), store.url
            except Exception as exc:  # the driver's own error: no kes_offsets table
                raise ProjectionError(
                    f"{store.url} holds no projection offsets ({exc}); is it the read "
                    "model's database?"
                ) from exc
    finally:
        store.close()


def _no_group(config: KafkaConfig, admin: Any, group: str) -> str:
    try:
        listed = admin.list_consumer_groups().result(timeout=10)
        known = _projection_names(config, [g.group_id for g in listed.valid])
    except Exception:  # only for the hint
        known = []
    hint = (
        f" Consumer groups of projections and pipelines in namespace {config.ns!r}: "
        f"{', '.join(known[:20])}{', ...' if len(known) > 20 else ''}."
        if known
        else f" Namespace {config.ns!r} has no projection groups."
    )
    return (
        f"consumer group {group!r} does not exist (no member, no committed position). Check "
        f"the projection's name (its `name`, not its class) and the namespace (--namespace, "
        f"KES_NAMESPACE).{hint}"
    )


def _projection_names(config: KafkaConfig, groups: list[str]) -> list[str]:
    """The names, as ``kes project status`` takes them, of the groups in ``config``'s
    namespace that are not kes's own (writers, dead-letter replays, clients)."""
    own = tuple(f"{config.ns}.{part}." for part in ("writers", "dlq-replay"))
    prefix = config.group_id("")  # "" in the default namespace, else "<namespace>."
    return sorted(
        g[len(prefix) :]
        for g in groups
        if g.startswith(prefix) and not g.startswith(("kes-", *own))
    )


def _records_between(consumer: Consumer, topic: str, partition: int, start: int, end: int) -> int:
    """Committed records at offsets ``start <= o < end``: markers occupy offsets, so a
    position just before the last marker has nothing left to read. Counted by reading
    the first record at or after ``start``; the lag is counted from it."""
    wait_s = 5.0
    try:
        for msg in read_range(consumer, topic, partition, start, end, wait_s):
            return end - int(msg.offset())
    except StoreUnavailableError:
        return end - start  # held back by an open transaction: count it all
    return 0


# ---- replay ---------------------------------------------------------------------------------


def start_offsets(config: KafkaConfig, topics: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """Per partition of ``topics``: (its first offset, its high watermark now).

    A replay always starts there: even one ``--from-time`` must read the whole log, since
    an event stamped after that time (``NewEvent(timestamp=...)`` sets any time) can sit
    anywhere in it; the runner's ``since`` skips the earlier ones.
    """
    admin = Topics(config)
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for topic in topics:
        info = admin.describe(topic)
        if info is None:
            continue
        for p in range(info.partitions):
            out[(topic, p)] = watermarks(config, topic, p)
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
    group = config.group_id(projection.name)
    status = group_status(config, group, must_exist=False)
    if status.members:
        raise ProjectionError(
            f"group {group!r} has {status.members} running member(s); stop them "
            "before a replay (a running member would keep or commit its own positions)."
        )
    if isinstance(projection, SqlProjection):
        store = open_checkpoints(
            database_url(projection, database), asynchronous=projection.is_async
        )
        store.setup()
        with store.transaction() as tx:
            resolve(projection.setup(tx))
            resolve(projection.reset(tx))
            store.reset(tx, projection.name, offsets)
        return store
    tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
    commit_positions(config, group, tps, f"cannot rewind group {group!r}")
    return None


def commit_positions(
    config: KafkaConfig, group: str, positions: list[TopicPartition], failure: str
) -> None:
    """Commit ``positions`` as the (stopped) group's offsets, retrying for 30 s while a
    member that just stopped is still leaving; ``failure`` starts the error's message."""
    consumer = plain_consumer(config, group)
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                consumer.commit(offsets=positions, asynchronous=False)
                return
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise ProjectionError(
                        f"{failure}: {exc}. Is a member still leaving? Try again in a few seconds."
                    ) from exc
                time.sleep(1)
    finally:
        consumer.close()
