"""``kes dlq``: look at and replay records parked in a projection's dead-letter topic."""

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
from kes.projections.admin import load_projection
from kes.projections.checkpoints import open_checkpoints
from kes.projections.dlq import Parked, dlq_topic, read_parked
from kes.projections.errors import ProjectionError
from kes.projections.projection import KafkaProcessor, SqlProjection, dispatch
from kes.projections.runner import database_url, projection_key_ring


@click.group()
def dlq() -> None:
    """Records a projection could not handle, parked in <namespace>.dlq.<projection>."""


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
