"""Options shared by every ``kes`` command that talks to Kafka."""

from __future__ import annotations

from typing import Any

import click

from kes.kafka.config import KafkaConfig
from kes.logs import FORMATS

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
bootstrap_option = click.option(
    "--bootstrap-servers",
    envvar="KES_BOOTSTRAP_SERVERS",
    default="127.0.0.1:9092",
    show_default=True,
    help="Kafka to talk to (env KES_BOOTSTRAP_SERVERS).",
)


log_format_option = click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    envvar="KES_LOG_FORMAT",
    default="text",
    show_default=True,
    help="Log lines as text, or as JSON objects for a log collector (env KES_LOG_FORMAT).",
)
metrics_port_option = click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    envvar="KES_METRICS_PORT",
    default=None,
    help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics (env KES_METRICS_PORT; "
    "KES_METRICS_HOST=0.0.0.0 for other hosts). With -n N, member i serves on PORT+i.",
)


max_age_option = click.option(
    "--max-age",
    type=click.FloatRange(min=1),
    default=15.0,
    show_default=True,
    help="Seconds within which the supervisor must have written its state.",
)


def supervision_options(fn: Any) -> Any:
    """``--supervise``, ``--stall-timeout`` and ``--max-restarts`` of ``run`` commands."""
    fn = click.option(
        "--max-restarts",
        type=click.IntRange(min=0),
        default=5,
        show_default=True,
        help="Restarts of one member within 10 minutes before every member is stopped and "
        "the command exits with status 1.",
    )(fn)
    fn = click.option(
        "--stall-timeout",
        type=click.FloatRange(min=0),
        default=300.0,
        show_default=True,
        help="Kill (SIGKILL) and restart a member that made no progress for this many "
        "seconds while it had records to read: frozen or hung (0: never).",
    )(fn)
    return click.option(
        "--supervise",
        is_flag=True,
        help="Run a single member (-n 1) as a supervised process too: restarted when it "
        "exits or stalls, its state shown by `status` and checked by `alive`. "
        "With -n 2 or more, members are always supervised.",
    )(fn)


def _remember_namespace(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta["kes.namespace"] = value


def prefix_option(fn: Any) -> Any:
    """``--namespace`` (every name kes gives Kafka) and ``--topic-prefix`` (event topics
    only); the command receives ``topic_prefix``."""
    fn = click.option(
        "--topic-prefix",
        envvar="KES_TOPIC_PREFIX",
        default=None,
        help="Prefix of event topic names (env KES_TOPIC_PREFIX; default <namespace>.events.).",
    )(fn)
    return click.option(
        "--namespace",
        envvar="KES_NAMESPACE",
        default=None,
        expose_value=False,
        callback=_remember_namespace,
        is_eager=True,
        help="Namespace of every topic, group and transactional id (env KES_NAMESPACE; "
        "default kes).",
    )(fn)


def kafka_config(bootstrap_servers: str, topic_prefix: str | None, **extra: Any) -> KafkaConfig:
    """The environment's KafkaConfig with the command line's settings on top."""
    ctx = click.get_current_context(silent=True)
    namespace = ctx.meta.get("kes.namespace") if ctx is not None else None
    return KafkaConfig.from_env(
        bootstrap_servers=bootstrap_servers, topic_prefix=topic_prefix, namespace=namespace, **extra
    )
