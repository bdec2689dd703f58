"""Operator commands on event topics: ``kes topics``, ``kes events``, ``kes index``."""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table

from kes.cli.options import bootstrap_option, json_option, kafka_config, prefix_option
from kes.envelope import RecordedEvent
from kes.errors import AggregateNotFoundError, StoreUnavailableError
from kes.kafka.config import KafkaConfig
from kes.kafka.consume import watermarks
from kes.kafka.topics import KINDS, TopicInfo, Topics, kinds_table
from kes.store.kafka import KafkaEventStore, rebuild_index


def _event_dict(e: RecordedEvent) -> dict[str, Any]:
    """An event as the CLI prints it; personal fields as stored: encrypted, in ``personal``
    (docs/wire-format.md), never decrypted here."""
    shown = {
        "eventId": e.event_id,
        "eventType": e.event_type,
        "timestamp": e.timestamp.isoformat(),
        "aggregateType": e.aggregate_type,
        "aggregateId": e.aggregate_id,
        "version": e.version,
        "schemaVersion": e.schema_version,
        "payload": e.payload,
        "metadata": e.metadata,
        "position": {
            "topic": e.position.topic,
            "partition": e.position.partition,
            "offset": e.position.offset,
        },
    }
    if e.envelope.personal:
        shown["personal"] = msgspec.to_builtins(e.envelope.personal)
    return shown


@click.command()
@click.option(
    "--kinds", is_flag=True, help="Print every kind of topic kes creates (no Kafka needed)."
)
@bootstrap_option
@prefix_option
@json_option
def topics(kinds: bool, bootstrap_servers: str, topic_prefix: str | None, as_json: bool) -> None:
    """List event topics with partitions, replication and the settings that keep events."""
    if kinds:
        if as_json:
            click.echo(json.dumps([dataclasses.asdict(k) for k in KINDS], indent=2))
        else:
            click.echo(kinds_table())
        return
    config = kafka_config(bootstrap_servers, topic_prefix)
    infos = Topics(config).event_topics()
    keys = (
        "cleanup.policy",
        "retention.ms",
        "retention.bytes",
        "min.insync.replicas",
        "max.message.bytes",
    )
    rows = [
        {"topic": i.name, "partitions": i.partitions, "replication_factor": i.replication_factor}
        | {k: i.configs.get(k) for k in keys}
        for i in infos
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no event topics named {config.events_prefix}* on {bootstrap_servers}.")
        return
    table = Table(title=f"event topics on {bootstrap_servers}")
    for col in rows[0]:
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    Console().print(table)


@click.group()
def events() -> None:
    """Read events from Kafka."""


def _event_topic(config: KafkaConfig, aggregate_type: str) -> TopicInfo:
    """The event topic of ``aggregate_type``; an unknown type is an error naming the known."""
    topics = Topics(config)
    info = topics.describe(config.topic(aggregate_type))
    if info is not None:
        return info
    known = topics.aggregate_types()
    hint = (
        f"Aggregate types in namespace {config.ns!r}: {', '.join(known)}."
        if known
        else f"Namespace {config.ns!r} has no event topics at all."
    )
    raise AggregateNotFoundError(
        f"no aggregate type {aggregate_type!r}: topic {config.topic(aggregate_type)} does not "
        f"exist at {config.bootstrap_servers}. {hint} Check the spelling, and --namespace "
        "(KES_NAMESPACE) or --topic-prefix (KES_TOPIC_PREFIX)."
    )


def _print_events(evs: list[RecordedEvent], as_json: bool, title: str) -> None:
    if as_json:
        click.echo(json.dumps([_event_dict(e) for e in evs], indent=2))
        return
    table = Table(title=title)
    for col in ("version", "event type", "timestamp", "partition@offset", "payload"):
        table.add_column(col)
    for e in evs:
        table.add_row(
            str(e.version),
            e.event_type,
            e.timestamp.isoformat(timespec="milliseconds"),
            f"{e.position.partition}@{e.position.offset}",
            json.dumps(e.payload, ensure_ascii=False)[:80],
        )
    Console().print(table)


@events.command("read")
@click.argument("aggregate_type")
@click.argument("aggregate_id")
@click.option("--from-version", type=int, default=1, show_default=True)
@click.option("--to-version", type=int, default=None)
@click.option(
    "--timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for the owning writer to answer.",
)
@click.option(
    "--scan",
    is_flag=True,
    help="Read the aggregate's whole partition instead of asking a writer (works with no "
    "writer running; slow on big partitions).",
)
@bootstrap_option
@prefix_option
@json_option
def read_events(
    aggregate_type: str,
    aggregate_id: str,
    from_version: int,
    to_version: int | None,
    timeout: float,
    scan: bool,
    bootstrap_servers: str,
    topic_prefix: str,
    as_json: bool,
) -> None:
    """Print one aggregate's events (asks the writer that owns it for their offsets).

    An unknown aggregate type or id is an error (exit 1).
    """
    config = kafka_config(bootstrap_servers, topic_prefix, request_timeout_s=timeout)
    _event_topic(config, aggregate_type)
    with KafkaEventStore(config, role="client") as store:
        if scan:
            evs = store.scan_stream(aggregate_type, aggregate_id, from_version, to_version)
        else:
            try:
                evs = store.read_stream(aggregate_type, aggregate_id, from_version, to_version)
            except StoreUnavailableError as exc:
                raise StoreUnavailableError(
                    f"{exc} Nothing was changed (this was a read). Add --scan to read the "
                    "aggregate's partition directly, with no writer.",
                    "not_written",
                ) from exc
        if not evs and from_version == 1:
            how = "reading its whole partition" if scan else "asking its writer"
            raise AggregateNotFoundError(
                f"{aggregate_type} {aggregate_id!r} has no events ({how} in "
                f"{config.topic(aggregate_type)}). Check the id; `kes events tail "
                f"{aggregate_type} --from-beginning` lists the events of every id."
            )
    _print_events(evs, as_json, f"{aggregate_type} {aggregate_id}")


@events.command("tail")
@click.argument("aggregate_type")
@click.option("--from-beginning", is_flag=True, help="Start at the first event, not the end.")
@click.option("--limit", type=int, default=None, help="Stop after this many events.")
@bootstrap_option
@prefix_option
def tail_events(
    aggregate_type: str,
    from_beginning: bool,
    limit: int | None,
    bootstrap_servers: str,
    topic_prefix: str,
) -> None:
    """Follow the events of one aggregate type as JSON lines (Ctrl-C stops).

    An unknown aggregate type is an error (exit 1): it would never print anything.
    """
    config = kafka_config(bootstrap_servers, topic_prefix)
    info = _event_topic(config, aggregate_type)
    positions = None if from_beginning else _ends(config, info.name, info.partitions)
    click.echo(
        f"following {info.name} ({info.partitions} partitions) from "
        f"{'the first event' if from_beginning else 'the end'}; Ctrl-C stops.",
        err=True,
    )
    store = KafkaEventStore(config, role="client")
    stop = threading.Event()
    seen = 0
    try:
        for e in store.subscribe(aggregate_type, positions, stop=stop):
            click.echo(json.dumps(_event_dict(e), ensure_ascii=False))
            seen += 1
            if limit is not None and seen >= limit:
                break
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        store.close()


def _ends(config: KafkaConfig, topic: str, partitions: int) -> dict[int, int]:
    return {p: watermarks(config, topic, p)[1] for p in range(partitions)}


@click.group()
def index() -> None:
    """Inspect and rebuild a writer's version index (a cache of the log)."""


@index.command("rebuild")
@click.argument("aggregate_type")
@click.option("--index-dir", envvar="KES_INDEX_DIR", default=".kes/index", show_default=True)
@bootstrap_option
@prefix_option
@json_option
def rebuild(
    aggregate_type: str,
    index_dir: str,
    bootstrap_servers: str,
    topic_prefix: str,
    as_json: bool,
) -> None:
    """Rebuild the index files of every partition of AGGREGATE_TYPE from the log.

    Run it with the writers of that type stopped (they rebuild on their own when
    their index is missing or stale; this only saves them the work).
    """
    config = kafka_config(bootstrap_servers, topic_prefix, index_dir=index_dir)
    partitions, count, seconds = rebuild_index(config, aggregate_type)
    rate = count / seconds if seconds > 0 else 0.0
    if as_json:
        click.echo(
            json.dumps(
                {
                    "partitions": partitions,
                    "events": count,
                    "seconds": round(seconds, 3),
                    "events_per_s": round(rate),
                }
            )
        )
    else:
        click.echo(
            f"rebuilt {partitions} partition index(es) of {config.topic(aggregate_type)}"
            f" in {index_dir}: {count:,} events in {seconds:.2f}s ({rate:,.0f} events/s)"
        )
