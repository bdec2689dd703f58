"""Options shared by every ``kes`` command that talks to Kafka."""

from __future__ import annotations

from typing import Any

import click

from kes.store.kafka import KafkaConfig

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
bootstrap_option = click.option(
    "--bootstrap-servers",
    envvar="KES_BOOTSTRAP_SERVERS",
    default="127.0.0.1:9092",
    show_default=True,
    help="Kafka to talk to (env KES_BOOTSTRAP_SERVERS).",
)
prefix_option = click.option(
    "--topic-prefix",
    envvar="KES_TOPIC_PREFIX",
    default="kes.events.",
    show_default=True,
    help="Prefix of event topic names (env KES_TOPIC_PREFIX).",
)


def kafka_config(bootstrap_servers: str, topic_prefix: str, **extra: Any) -> KafkaConfig:
    """The environment's KafkaConfig with the command line's servers and prefix on top."""
    return KafkaConfig.from_env(
        bootstrap_servers=bootstrap_servers, topic_prefix=topic_prefix, **extra
    )
