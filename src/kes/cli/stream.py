"""``kes stream``: run and inspect stream-processing pipelines (Quix Streams)."""

from __future__ import annotations

import json
import os
from types import ModuleType

import click
from rich.console import Console

from kes import logs
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
from kes.cli.project import print_group, print_supervisor, probe
from kes.errors import KesError
from kes.processes import Supervision, read_state, state_file


def _runner() -> ModuleType:
    """kes.streams needs the optional Quix Streams; say how to get it when it is missing."""
    try:
        from kes.streams import runner
    except ImportError as exc:
        raise KesError(
            f"kes stream needs Quix Streams ({exc}); install it with pip install 'kes[streams]'."
        ) from exc
    return runner


state_dir_option = click.option(
    "--state-dir",
    envvar="KES_STREAM_STATE_DIR",
    default=".kes/streams",
    show_default=True,
    help="Local RocksDB state (a cache: deleting it is safe, it is rebuilt from the "
    "changelog topics). Env KES_STREAM_STATE_DIR.",
)


@click.group()
def stream() -> None:
    """Windows, joins and aggregations over event topics, exactly once (Quix Streams)."""


@stream.command()
@click.argument("spec")
@click.option("--processes", "-n", default=1, show_default=True, help="Group members to run.")
@state_dir_option
@click.option("--verbose", "-v", is_flag=True, help="Log what Quix Streams does (INFO).")
@supervision_options
@metrics_port_option
@log_format_option
@bootstrap_option
@prefix_option
def run(
    spec: str,
    processes: int,
    state_dir: str,
    verbose: bool,
    supervise: bool,
    stall_timeout: float,
    max_restarts: int,
    metrics_port: int | None,
    log_format: str,
    bootstrap_servers: str,
    topic_prefix: str,
) -> None:
    """Run the pipeline SPEC (MODULE:NAME, a kes.streams.Pipeline) until interrupted.

    Example: kes stream run examples.bank.streams:monitoring -n 2
    """
    level = "INFO" if verbose else "WARNING"
    logs.configure(level, log_format)
    config = kafka_config(bootstrap_servers, topic_prefix)
    if processes < 1:
        raise click.BadParameter(f"must be >= 1, got {processes}", param_hint="--processes")
    runner = _runner()
    pipeline = runner.load_pipeline(spec)
    if processes > 1 or supervise:
        os.environ["KES_LOG_FORMAT"] = log_format  # the members log alike
        sup = Supervision(
            max_restarts=max_restarts,
            stall_s=stall_timeout,
            state_file=state_file("stream", pipeline.name),
        )
        raise SystemExit(
            runner.run_processes(spec, config, processes, state_dir, level, metrics_port, sup)
        )
    if metrics_port is not None:
        runner.serve_metrics(config, pipeline, metrics_port, report_lag=True)
    click.echo(
        f"{pipeline.name}: group {pipeline.group(config)}, dead letters to "
        f"{pipeline.dead_letter_topic(config)}, late records to {pipeline.late_topic(config)}",
        err=True,
    )
    streams = pipeline.application(
        config, state_dir=_runner().member_state_dir(state_dir, pipeline, 0), loglevel=level
    )
    streams.app.run()


@stream.command()
@click.argument("spec")
@json_option
@bootstrap_option
@prefix_option
def status(spec: str, as_json: bool, bootstrap_servers: str, topic_prefix: str) -> None:
    """Lag per source partition of the pipeline SPEC (MODULE:NAME), its members, and
    how many records it reported late or parked as dead letters."""
    config = kafka_config(bootstrap_servers, topic_prefix)
    r = _runner()
    pipeline = r.load_pipeline(spec)
    st = r.pipeline_status(config, pipeline)
    supervisor = read_state(state_file("stream", pipeline.name))
    if as_json:
        extra = {"supervisor": supervisor} if supervisor is not None else {}
        click.echo(json.dumps(st.as_dict() | extra, indent=2))
        return
    console = Console()
    console.print(
        f"pipeline [bold]{st.pipeline}[/]: {st.late_records:,} late record(s), "
        f"{st.dead_letters:,} dead letter(s)"
    )
    print_group(console, st.group)
    for problem in st.topic_problems:
        console.print(f"[red]internal topic {problem}[/]")
    if supervisor is not None:
        print_supervisor(console, supervisor)


@stream.command()
@click.argument("spec")
@state_dir_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask before deleting.")
@bootstrap_option
@prefix_option
def reset(spec: str, state_dir: str, yes: bool, bootstrap_servers: str, topic_prefix: str) -> None:
    """Make the pipeline SPEC (MODULE:NAME) start over: delete its output topics, its
    changelog and repartition topics, its late and dead-letter topics, its consumer group
    and its members' local state (under --state-dir, as given to `run`). The next `kes
    stream run` recomputes everything from the source topics. Stop its members first
    (refused otherwise). Readers of its outputs (projections) need a reset of their own,
    and records parked by hand (`kes dlq park`) are read again."""
    config = kafka_config(bootstrap_servers, topic_prefix)
    pipeline = _runner().load_pipeline(spec)
    from kes.streams import reset as resetting

    planned = resetting.plan(config, pipeline, state_dir)
    click.echo(planned.describe())
    if not yes:
        click.confirm("Delete all of the above?", abort=True)
    resetting.reset(config, planned)
    click.echo(
        f"{pipeline.name}: reset; the next `kes stream run {spec}` recomputes it from its sources."
    )


@stream.command()
@click.argument("name")
@max_age_option
def alive(name: str, max_age: float) -> None:
    """Liveness probe of `kes stream run --supervise` (or -n 2+) of the pipeline NAME,
    run in the same directory: exit 0 when its supervisor wrote its state within
    --max-age seconds and no member is stalled; exit 1 saying what is wrong otherwise."""
    raise SystemExit(probe(state_file("stream", name), max_age))
