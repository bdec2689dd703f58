"""``kes dlq``: look at and replay records parked in a projection's dead-letter topic,
and park by hand a record that stalls a group."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from confluent_kafka import KafkaException, TopicPartition
from rich.console import Console
from rich.table import Table

from kes.cli.options import bootstrap_option, json_option, kafka_config, prefix_option
from kes.envelope import Position, decode
from kes.kafka.clients import plain_consumer
from kes.kafka.config import KafkaConfig
from kes.kafka.errors import kafka_errors
from kes.kafka.topics import Topics
from kes.processes import import_attribute
from kes.projections.admin import load_projection
from kes.projections.checkpoints import CheckpointStore, open_checkpoints
from kes.projections.dlq import Parked, dlq_topic, read_parked
from kes.projections.errors import ProjectionError
from kes.projections.projection import KafkaProcessor, Projection, SqlProjection, dispatch
from kes.projections.runner import database_url, projection_key_ring
from kes.projections.skip import park_next


@click.group()
def dlq() -> None:
    """Records a projection or pipeline could not handle, parked in
    <namespace>.dlq.<name>; and parking by hand a record that stalls a group."""


def _replay_group(config: KafkaConfig, projection: str) -> str:
    return f"{config.ns}.dlq-replay.{projection}"


def _replayed_up_to(config: KafkaConfig, projection: str) -> int:
    c = plain_consumer(config, _replay_group(config, projection))
    try:
        with kafka_errors(f"reading how far {dlq_topic(config, projection)} was replayed"):
            [tp] = c.committed([TopicPartition(dlq_topic(config, projection), 0)], timeout=10)
    finally:
        c.close()
    return max(0, int(tp.offset))


def _mark_replayed(config: KafkaConfig, projection: str, next_offset: int) -> None:
    c = plain_consumer(config, _replay_group(config, projection))
    try:
        with kafka_errors(f"recording how far {dlq_topic(config, projection)} was replayed"):
            c.commit(
                offsets=[TopicPartition(dlq_topic(config, projection), 0, next_offset)],
                asynchronous=False,
            )
    finally:
        c.close()


def _row(p: Parked) -> dict[str, object]:
    return {
        "dlqOffset": p.dlq_offset,
        "topic": p.topic,
        "partition": p.partition,
        "offset": p.offset,
        "key": p.key.decode(errors="replace") if p.key else None,
        "errorType": p.error_type,
        "error": p.error,
        "attempts": p.attempts,
        "parkedAt": datetime.fromtimestamp(p.parked_at_ms / 1000, UTC).isoformat(),
    }


def _error_text(error_type: str, error: str) -> str:
    """``Type: message`` once: projections write the type into the message already."""
    if not error_type or error.startswith(f"{error_type}:"):
        return error
    return f"{error_type}: {error}"


def _require_dlq(config: KafkaConfig, name: str) -> None:
    topic = dlq_topic(config, name)
    topics = Topics(config)
    if topics.describe(topic) is not None:
        return
    prefix = dlq_topic(config, "")
    known = [n[len(prefix) :] for n in topics.names(prefix)]
    hint = (
        f"Names with dead letters in namespace {config.ns!r}: {', '.join(known)}."
        if known
        else f"Nothing in namespace {config.ns!r} has parked a record yet."
    )
    raise ProjectionError(
        f"no dead-letter topic {topic}: {name!r} is not the name of a projection or pipeline "
        "that has run here (its topic is created when it starts). "
        f"{hint} Check the name (a projection's `name`, not its class) and --namespace."
    )


@dlq.command("list")
@click.argument("projection")
@click.option("--all", "show_all", is_flag=True, help="Include records already replayed.")
@json_option
@bootstrap_option
@prefix_option
def list_(
    projection: str, show_all: bool, as_json: bool, bootstrap_servers: str, topic_prefix: str
) -> None:
    """The records parked by PROJECTION (its name, or a pipeline's), oldest first.

    A name with no dead-letter topic is an error (exit 1) listing those that have one.
    """
    config = kafka_config(bootstrap_servers, topic_prefix)
    _require_dlq(config, projection)
    start = 0 if show_all else _replayed_up_to(config, projection)
    rows = [_row(p) for p in read_parked(config, projection, start)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("dlq offset", "from", "key", "error", "attempts", "parked at")
    for r in rows:
        table.add_row(
            str(r["dlqOffset"]),
            f"{r['topic']}[{r['partition']}]@{r['offset']}",
            str(r["key"]),
            _error_text(str(r["errorType"]), str(r["error"]))[:80],
            str(r["attempts"]),
            str(r["parkedAt"]),
        )
    Console().print(table)
    click.echo(f"{len(rows)} parked record(s) in {dlq_topic(config, projection)}")


@dlq.command()
@click.argument("spec")
@click.option("--database", envvar="KES_PROJECTION_DB", default=None, help="As for `run`.")
@bootstrap_option
@prefix_option
def replay(spec: str, database: str | None, bootstrap_servers: str, topic_prefix: str) -> None:
    """Hand the parked records of SPEC (MODULE:CLASS) to its handlers again, in order.

    Each record handled is marked replayed (group kes.dlq-replay.<name>); the first that
    still fails stops the replay, with its error, and stays parked. For a SqlProjection
    each record's changes commit in their own transaction.
    """
    config = kafka_config(bootstrap_servers, topic_prefix)
    projection = load_projection(spec)()
    if isinstance(projection, KafkaProcessor):
        raise ProjectionError("replaying parked records of a KafkaProcessor is not supported.")
    name = projection.name
    store = None
    if isinstance(projection, SqlProjection):
        store = open_checkpoints(database_url(projection, database))
    done = 0
    projection.key_ring = projection_key_ring(config, projection)
    try:
        for p in read_parked(config, name, _replayed_up_to(config, name)):
            if p.value is None:
                raise ProjectionError(f"{dlq_topic(config, name)}@{p.dlq_offset} has no value.")
            try:
                position = Position(p.topic, p.partition, p.offset)
                event = projection.event_for(decode(p.value), position)
                if store is not None:
                    with store.transaction() as tx:
                        dispatch(projection, event, tx)
                else:
                    dispatch(projection, event)
            except Exception as exc:
                raise ProjectionError(
                    f"{dlq_topic(config, name)}@{p.dlq_offset} "
                    f"({p.topic}[{p.partition}]@{p.offset}) still fails: "
                    f"{type(exc).__name__}: {exc}. {done} record(s) before it "
                    "were replayed; fix the handler (or the data) and run again."
                ) from exc
            _mark_replayed(config, name, p.dlq_offset + 1)
            done += 1
    except KafkaException as exc:
        raise ProjectionError(f"replay of {dlq_topic(config, name)} stopped: {exc}") from exc
    finally:
        projection.key_ring.close()
        if store is not None:
            store.close()
    click.echo(f"replayed {done} parked record(s) of {name}")


@dlq.command()
@click.argument("spec")
@click.option("--partition", "-p", type=click.IntRange(min=0), required=True, help="Of the topic.")
@click.option(
    "--aggregate-type",
    "-t",
    help="Whose event topic the record is in (default: the one type SPEC reads).",
)
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    help="Where you expect the record: refused, changing nothing, when the record the "
    "group reads next is another one.",
)
@click.option("--reason", required=True, help="Why, stored with the parked record.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before parking.")
@click.option("--database", envvar="KES_PROJECTION_DB", default=None, help="As for `run`.")
@bootstrap_option
@prefix_option
def park(
    spec: str,
    partition: int,
    aggregate_type: str | None,
    offset: int | None,
    reason: str,
    yes: bool,
    database: str | None,
    bootstrap_servers: str,
    topic_prefix: str,
) -> None:
    """Park the record that the group of SPEC (a projection MODULE:CLASS, or a pipeline
    MODULE:NAME) reads next in one partition, and move the group past it.

    For a record that stalls a group every time it is read: a handler that hangs on it,
    a write made from it that Kafka refuses. Stop the group's members first (refused
    otherwise). The record goes to the dead-letter topic with your reason (`kes dlq
    list` shows it; `kes dlq replay` can give it back to a projection).

    Example: kes dlq park shop.read_models:Orders -p 2 --offset 1841 --reason "hangs"
    """
    config = kafka_config(bootstrap_servers, topic_prefix)
    name, group, types, checkpoints = _group_of(spec, config, database)
    if aggregate_type is None:
        if len(types) != 1:
            raise ProjectionError(
                f"{spec} reads {', '.join(types) or 'aggregate types set in its build'}: "
                "say which with --aggregate-type."
            )
        aggregate_type = types[0]
    topic = config.topic(aggregate_type)
    where = f"{topic}[{partition}]" + (f"@{offset}" if offset is not None else "")
    if not yes:
        click.confirm(f"Park the record {group!r} reads next in {where} and skip it?", abort=True)
    try:
        done = park_next(
            config,
            name,
            group,
            topic,
            partition,
            reason,
            expected_offset=offset,
            checkpoints=checkpoints,
        )
    finally:
        if checkpoints is not None:
            checkpoints.close()
    click.echo(
        f"parked {done.topic}[{done.partition}]@{done.offset} in "
        f"{done.dlq_topic}@{done.dlq_offset}; {group!r} goes on from offset {done.offset + 1}."
    )


def _group_of(
    spec: str, config: KafkaConfig, database: str | None
) -> tuple[str, str, list[str], CheckpointStore | None]:
    """(name, consumer group, aggregate types, offsets database) of a projection or
    pipeline SPEC."""
    target = import_attribute(spec, "examples.users.read_models:UserDirectory", ProjectionError)
    if isinstance(target, type) and issubclass(target, Projection):
        projection = target()
        checkpoints = None
        if isinstance(projection, SqlProjection):
            url = database_url(projection, database)
            checkpoints = open_checkpoints(url, asynchronous=projection.is_async)
        group = config.group_id(projection.name)
        return projection.name, group, list(projection.aggregate_types), checkpoints
    from kes.streams import Pipeline  # Quix Streams loads only for pipelines

    if isinstance(target, Pipeline):
        types = [a.aggregate_type for a in target.aggregates]
        return target.name, target.group(config), types, None
    raise ProjectionError(f"{spec!r}: {target!r} is neither a Projection class nor a Pipeline.")
