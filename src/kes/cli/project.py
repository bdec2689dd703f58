"""``kes project``: run, replay and inspect projections (read models)."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from kes import logs, metrics
from kes.cli.options import (
    bootstrap_option,
    json_option,
    kafka_config,
    log_format_option,
    max_age_option,
    metrics_port_option,
    prefix_option,
    supervision_options,
)
from kes.kafka.config import KafkaConfig
from kes.processes import Supervision, read_state, state_file
from kes.projections.admin import (
    GroupStatus,
    group_status,
    load_projection,
    rewind,
    run_processes,
    start_offsets,
)
from kes.projections.derived import event_type_topics
from kes.projections.runner import ProjectionRunner, RunStats

database_option = click.option(
    "--database",
    envvar="KES_PROJECTION_DB",
    default=None,
    help="Read-model database of a SqlProjection: sqlite:///file.db or postgresql://... "
    "(env KES_PROJECTION_DB; default: the projection's `database`).",
)


@click.group()
def project() -> None:
    """Run, replay and inspect projections (read models, one consumer group each)."""


def _serve(runner: ProjectionRunner) -> RunStats:
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    signal.signal(signal.SIGINT, lambda *_: runner.stop())
    return runner.run()


def _supervised(
    spec: str | tuple[str, ...],
    config: KafkaConfig,
    processes: int,
    database: str | None,
    metrics_port: int | None,
    log_format: str,
    supervision: Supervision,
) -> NoReturn:
    os.environ["KES_LOG_FORMAT"] = log_format  # the members log alike
    raise SystemExit(run_processes(spec, config, processes, database, metrics_port, supervision))


@project.command()
@click.argument("spec")
@click.option("--processes", "-n", default=1, show_default=True, help="Group members to run.")
@database_option
@supervision_options
@metrics_port_option
@log_format_option
@bootstrap_option
@prefix_option
def run(
    spec: str,
    processes: int,
    database: str | None,
    supervise: bool,
    stall_timeout: float,
    max_restarts: int,
    metrics_port: int | None,
    log_format: str,
    bootstrap_servers: str,
    topic_prefix: str,
) -> None:
    """Run the projection SPEC (MODULE:CLASS) until interrupted.

    Example: kes project run examples.users.read_models:UserDirectory -n 3
    """
    logs.configure(logging.INFO, log_format)
    config = kafka_config(bootstrap_servers, topic_prefix)
    if processes < 1:
        raise click.BadParameter(f"must be >= 1, got {processes}", param_hint="--processes")
    if processes > 1 or supervise:
        state = state_file("project", load_projection(spec).name)
        sup = Supervision(max_restarts=max_restarts, stall_s=stall_timeout, state_file=state)
        _supervised(spec, config, processes, database, metrics_port, log_format, sup)
    if metrics_port is not None:
        metrics.serve(metrics_port)
    projection = load_projection(spec)()
    stats = _serve(ProjectionRunner(projection, config, database=database))
    click.echo(f"{projection.name}: {stats.records} events in {stats.seconds:.1f}s")


@project.command()
@click.argument("aggregate_types", nargs=-1, required=True)
@click.option("--processes", "-n", default=1, show_default=True, help="Group members to run.")
@supervision_options
@metrics_port_option
@log_format_option
@bootstrap_option
@prefix_option
def derive(
    aggregate_types: tuple[str, ...],
    processes: int,
    supervise: bool,
    stall_timeout: float,
    max_restarts: int,
    metrics_port: int | None,
    log_format: str,
    bootstrap_servers: str,
    topic_prefix: str,
) -> None:
    """Keep per-event-type topics (<event topic>.<EventType>) of AGGREGATE_TYPES, exactly once.

    Example: kes project derive User -n 2   (fills kes.events.User.UserCreated, ...)
    """
    logs.configure(logging.INFO, log_format)
    config = kafka_config(bootstrap_servers, topic_prefix)
    if processes < 1:
        raise click.BadParameter(f"must be >= 1, got {processes}", param_hint="--processes")
    if processes > 1 or supervise:
        name = event_type_topics(*aggregate_types).name
        state = state_file("project", name)
        sup = Supervision(max_restarts=max_restarts, stall_s=stall_timeout, state_file=state)
        _supervised(aggregate_types, config, processes, None, metrics_port, log_format, sup)
    if metrics_port is not None:
        metrics.serve(metrics_port)
    stats = _serve(ProjectionRunner(event_type_topics(*aggregate_types)(), config))
    click.echo(f"derived {stats.records} events in {stats.seconds:.1f}s")


def _parse_time(value: str) -> datetime:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (e.g. 2024-05-01T12:00:00Z)",
            param_hint="--from-time",
        ) from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@project.command()
@click.argument("spec")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before emptying the read model.")
@database_option
@bootstrap_option
@prefix_option
def reset(
    spec: str, yes: bool, database: str | None, bootstrap_servers: str, topic_prefix: str
) -> None:
    """Make the projection SPEC (MODULE:CLASS) start over: a SqlProjection's rows are
    emptied (its reset()) and its offsets set to the first event in one transaction;
    other projections get their group's offsets set there. Its next `kes project run`
    rebuilds it from the log (`kes project replay` does both at once). Stop its members
    first (refused otherwise)."""
    config = kafka_config(bootstrap_servers, topic_prefix)
    projection = load_projection(spec)()
    if not yes:
        click.confirm(f"Empty {projection.describe()} and start it over?", abort=True)
    topics = [config.topic(t) for t in projection.aggregate_types]
    firsts = {k: start for k, (start, _) in start_offsets(config, topics).items()}
    store = rewind(projection, config, firsts, database)
    if store is not None:
        store.close()
    click.echo(
        f"{projection.name}: reset to the first event of {', '.join(topics)}; the next "
        "`kes project run` rebuilds it."
    )


@project.command()
@click.argument("spec")
@click.option("--from-beginning", is_flag=True, help="Rebuild from the first event (default).")
@click.option(
    "--from-time",
    "from_time",
    metavar="ISO-TIME",
    help="Rebuild from the events whose event time (the envelope's `timestamp`, when the "
    "event happened, not when Kafka stored it) is at or after this time, e.g. "
    "2024-05-01T00:00:00Z (no zone: UTC). The whole log is read: earlier events are "
    "skipped, wherever they sit.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before emptying the read model.")
@database_option
@bootstrap_option
@prefix_option
def replay(
    spec: str,
    from_beginning: bool,
    from_time: str | None,
    yes: bool,
    database: str | None,
    bootstrap_servers: str,
    topic_prefix: str,
) -> None:
    """Rebuild the projection SPEC (MODULE:CLASS) from the log, then stop.

    A SqlProjection's rows are emptied (its reset()) and its offsets rewound in the same
    transaction; other projections get their group's offsets rewound. Stop the running
    members of the group first. The progress bar counts offsets (transaction markers
    occupy some); the summary counts events.
    """
    if from_beginning and from_time:
        raise click.UsageError("choose --from-beginning or --from-time, not both.")
    config = kafka_config(bootstrap_servers, topic_prefix)
    projection = load_projection(spec)()
    since = _parse_time(from_time) if from_time else None
    if not yes:
        click.confirm(
            f"Rebuild {projection.describe()} from "
            f"{'the events stamped since ' + since.isoformat() if since else 'the beginning'}?",
            abort=True,
        )
    topics = [config.topic(t) for t in projection.aggregate_types]
    positions = start_offsets(config, topics)
    total = sum(max(0, high - start) for start, high in positions.values())
    store = rewind(projection, config, {k: s for k, (s, _) in positions.items()}, database)
    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("offsets"),
        TextColumn("{task.fields[rate]:>10,.0f} events/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(projection.name, total=total or None, rate=0.0)

        def update(stats: RunStats) -> None:
            elapsed = max(1e-6, time.monotonic() - started)
            done = sum(
                min(stats.positions.get(key, start), high) - start
                for key, (start, high) in positions.items()
            )
            progress.update(task, completed=done, rate=stats.records / elapsed)

        runner = ProjectionRunner(
            projection, config, database=store, until_caught_up=True, on_batch=update, since=since
        )
        stats = _serve(runner)
        progress.update(task, completed=total)
    elapsed = time.monotonic() - started
    read = f"read {stats.records:,} events of {', '.join(topics)} into {projection.name}"
    if since is not None:
        read += f" (events stamped before {since.isoformat()} skipped)"
    console.print(
        f"{read} in {elapsed:.1f}s ({stats.records / max(elapsed, 1e-6):,.0f} events/s); "
        f"{stats.parked} parked in the dead-letter topic"
    )


@project.command()
@click.argument("group")
@click.option(
    "--aggregate-type",
    "-t",
    "aggregate_types",
    multiple=True,
    help="Also list partitions of this type's topic with no position yet.",
)
@click.option(
    "--database",
    default=None,
    help="Take positions from this database's kes_offsets (a SqlProjection's truth).",
)
@json_option
@bootstrap_option
@prefix_option
def status(
    group: str,
    aggregate_types: tuple[str, ...],
    database: str | None,
    as_json: bool,
    bootstrap_servers: str,
    topic_prefix: str,
) -> None:
    """Positions and lag per partition of the projection GROUP (its name)."""
    config = kafka_config(bootstrap_servers, topic_prefix)
    st = group_status(
        config, config.group_id(group), list(aggregate_types), database, checkpoint_name=group
    )
    supervisor = read_state(state_file("project", group))
    if as_json:
        extra = {"supervisor": supervisor} if supervisor is not None else {}
        click.echo(json.dumps(st.as_dict() | extra, indent=2))
        return
    console = Console()
    print_group(console, st)
    if supervisor is not None:
        print_supervisor(console, supervisor)


@project.command()
@click.argument("name")
@max_age_option
def alive(name: str, max_age: float) -> None:
    """Liveness probe of `kes project run --supervise` (or -n 2+) of the projection
    NAME, run in the same directory: exit 0 when its supervisor wrote its state within
    --max-age seconds and no member is stalled; exit 1 saying what is wrong otherwise."""
    raise SystemExit(probe(state_file("project", name), max_age))


def print_supervisor(console: Console, state: dict[str, Any]) -> None:
    """What a supervisor last wrote: its members, their restarts and errors."""
    age = time.time() - float(state["updated_at"])
    console.print(f"supervisor pid {state['supervisor_pid']}, state written {age:.0f}s ago")
    table = Table("member", "pid", "alive", "restarts", "last exit", "last error", "stalled")
    for m in state["members"]:
        table.add_row(
            str(m["index"]),
            str(m["pid"]),
            "yes" if m["alive"] else "no",
            str(m["restarts"]),
            "-" if m["last_exit"] is None else str(m["last_exit"]),
            m["last_error"] or "-",
            "yes" if m["stalled_since"] else "no",
        )
    console.print(table)


def probe(path: Path, max_age: float) -> int:
    """0 when the supervisor state at ``path`` is fresh and no member is stalled."""
    state = read_state(path)
    if state is None:
        click.echo(f"not alive: no supervisor state at {path} (not running here?)", err=True)
        return 1
    age = time.time() - float(state["updated_at"])
    if state.get("stopping"):
        click.echo(f"not alive: the supervisor (pid {state['supervisor_pid']}) stopped", err=True)
        return 1
    if age > max_age:
        click.echo(f"not alive: state last written {age:.0f}s ago (> {max_age:.0f}s)", err=True)
        return 1
    stalled = [m["index"] for m in state["members"] if m["stalled_since"]]
    if stalled:
        click.echo(f"not alive: member(s) {stalled} stalled", err=True)
        return 1
    click.echo(f"alive: {len(state['members'])} member(s), state written {age:.0f}s ago")
    return 0


def print_group(console: Console, st: GroupStatus) -> None:
    """A consumer group's positions and lag as a table."""
    console.print(
        f"group [bold]{st.group}[/] state {st.state}, {st.members} member(s), "
        f"positions from {st.source}, total lag {st.total_lag:,}"
    )
    table = Table("topic", "partition", "position", "end", "lag", "owner")
    for p in st.partitions:
        table.add_row(
            p.topic,
            str(p.partition),
            "-" if p.committed is None else f"{p.committed:,}",
            f"{p.end:,}",
            f"{p.lag:,}",
            p.owner or "-",
        )
    console.print(table)
