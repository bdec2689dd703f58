"""``kes status``: one screen of a namespace (brokers, event topics, writers, consumers)."""

from __future__ import annotations

import json
import time

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from kes.cli.options import bootstrap_option, json_option, kafka_config, prefix_option
from kes.errors import InvalidInputError
from kes.status import NamespaceStatus, namespace_status


@click.command()
@click.option(
    "--watch",
    "-w",
    "watch",
    type=click.FloatRange(min=1.0),
    default=None,
    metavar="SECONDS",
    help="Refresh every SECONDS until interrupted (rates are per refresh).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="Without --watch: seconds between the two looks that give topic rates (0: none).",
)
@json_option
@bootstrap_option
@prefix_option
def status(
    watch: float | None,
    interval: float,
    as_json: bool,
    bootstrap_servers: str,
    topic_prefix: str | None,
) -> None:
    """Brokers, event topics and their rates, writers and the partitions they own,
    projections and pipelines with lag and dead letters, of one namespace.

    Example: kes status --watch 2      (kes status --json for scripts)
    """
    config = kafka_config(bootstrap_servers, topic_prefix)
    if watch is not None and as_json:
        raise InvalidInputError("--watch refreshes a screen; with --json, run kes status again.")
    first = namespace_status(config)
    if not first.topics and not first.consumers:
        raise InvalidInputError(
            f"namespace {config.ns!r} has no event topics and no projection or pipeline on "
            f"{config.bootstrap_servers}: check --namespace (KES_NAMESPACE) and "
            "--bootstrap-servers."
        )
    if watch is None:
        current = first
        if interval > 0:
            time.sleep(interval)
            current = namespace_status(config, first)
        if as_json:
            click.echo(json.dumps(current.as_dict(), indent=2))
        else:
            Console().print(render(current))
        return
    previous = first
    with Live(render(first), refresh_per_second=4, screen=False) as live:
        try:
            while True:
                time.sleep(watch)
                previous = namespace_status(config, previous)
                live.update(render(previous))
        except KeyboardInterrupt:
            pass


def render(st: NamespaceStatus) -> Group:
    """The status as rich tables."""
    brokers = ", ".join(
        f"{node} {addr}{' (controller)' if node == st.controller else ''}"
        for node, addr in sorted(st.brokers.items())
    )
    head = f"[bold]namespace {st.namespace}[/] on {st.bootstrap_servers} - brokers: {brokers}"

    topics = Table(title="event topics", title_justify="left")
    for col in ("aggregate type", "topic", "partitions", "replicas", "end offsets", "offsets/s"):
        topics.add_column(col, justify="right" if col in ("end offsets", "offsets/s") else "left")
    for t in st.topics:
        rate = "-" if t.offsets_per_s is None else f"{t.offsets_per_s:,.0f}"
        topics.add_row(
            t.aggregate_type,
            t.topic,
            str(t.partitions),
            str(t.replication_factor),
            f"{t.end_offsets:,}",
            rate,
        )

    writers = Table(title="writers (partition owners)", title_justify="left")
    for col in ("aggregate type", "group state", "member", "partitions"):
        writers.add_column(col)
    for w in st.writers:
        if not w.owners:
            writers.add_row(w.aggregate_type, w.state, "[red]none[/]", "-")
        for member, parts in sorted(w.owners.items()):
            writers.add_row(w.aggregate_type, w.state, member, ",".join(map(str, parts)) or "-")

    consumers = Table(title="projections and pipelines", title_justify="left")
    for col in ("name", "kind", "state", "members", "lag", "dead letters"):
        consumers.add_column(col, justify="right" if col in ("lag", "dead letters") else "left")
    for c in st.consumers:
        consumers.add_row(
            c.name,
            c.kind,
            c.state,
            str(c.members),
            f"{c.lag:,}",
            f"[red]{c.dead_letters:,}[/]" if c.dead_letters else "0",
        )
    return Group(head, topics, writers, consumers)
